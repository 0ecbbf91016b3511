"""``load_tm23``: a split of one or several elements as a Hugging Face ``DatasetDict`` (or ASE Atoms).

The split itself is a :class:`tm23data.selection.Selection`; this module turns it into Arrow tables.

Arrow columns are built zero-copy from the store's flat arrays, and each ``Dataset`` gets a fingerprint
derived from the store and split hashes (HF would otherwise hash the whole table), so a warm load costs
milliseconds. ``format="numpy"``/``"torch"`` go through ``with_format(..., dtype=None)``: the usual HF
formatting, but keeping float64 and int64 (HF's default casts floats to float32, which is not lossless).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from . import manifest
from .config import ArchiveSource
from .errors import UsageError
from .splits import check_subset
from .store import REGIME_NAMES, Store

if TYPE_CHECKING:
    import datasets

    from .selection import Selection

FORMATS = (None, "python", "numpy", "torch", "arrow", "pandas", "ase")

#: Columns of every row, in order, with their units.
#: Part of every Dataset fingerprint: bump it when the columns change, so HF's caches are not reused.
TABLE_VERSION = "columns-2"  # 2: free_energy

COLUMNS = {
    "frame_id": "stable identifier, e.g. 'Ti-cold-0123' (element, regime, index in the trajectory)",
    "element": "chemical symbol",
    "regime": "'cold', 'warm' or 'melt' (0.25, 0.75, 1.25 x T_melt)",
    "natoms": "number of atoms",
    "atomic_numbers": "(N,) atomic numbers",
    "positions": "(N, 3) Å",
    "forces": "(N, 3) eV/Å",
    "energy": "total energy of the cell, eV",
    "free_energy": "free energy of the cell (the extxyz free_energy key, with the smearing entropy), eV; NaN if absent",
    "stress": "(3, 3) eV/Å³, ASE sign convention (positive = tensile); NaN if absent",
    "cell": "(3, 3) Å, rows are lattice vectors",
    "pbc": "(3,) periodic boundary conditions",
}


def load_tm23(
    element: str | list[str],
    split: str = "full",
    *,
    subset: str | None = None,
    validation: float | None = None,
    seed: int = 0,
    format: str | None = None,
    source: ArchiveSource | None = None,
    progress: bool = True,
    archive=None,
):
    """Load a TM23 split.

    Args:
        element: a symbol (``"Ti"``) or a list of symbols; several elements are concatenated and the
            ``element`` column tells them apart.
        split: ``full``, ``cold``, ``warm``, ``melt``, ``cold_to_warm``, ``cold_to_melt``,
            ``melt_100`` ... ``melt_900`` (or any ``{regime}_{N}``); see ``tm23 splits``.
        subset: return one ``Dataset`` instead of a ``DatasetDict``: ``"train"``, ``"test"``,
            ``"validation"``, or an HF split string such as ``"train[:100]"``, ``"test[10%:]"``.
        validation: carve this seeded random fraction of train (a float; the paper used 0.1 for NequIP) or
            this number of train frames (an int) into a ``validation`` subset.
        seed: seed of the validation carve.
        format: ``None`` (Python objects), ``"numpy"``, ``"torch"`` (both keep float64),
            ``"arrow"``, ``"pandas"``, or ``"ase"`` (lists of ``ase.Atoms`` with a SinglePointCalculator).
        source: which archive (default: ``TM23_URL``/``TM23_MD5`` or the published one).
        progress: show progress bars while downloading or building the cache.
        archive: which archive: a name or md5 from ``tm23 archives``, a path to a TM23-format zip (imported on
            first use) or to a folder of extracted member files, or ``URL#md5=HEX``; default: ``TM23_ARCHIVE``,
            ``TM23_MD5``, else the published archive.

    The same split as numpy arrays, without importing ``datasets``: :class:`tm23data.selection.Selection`.
    """
    from .selection import Selection

    check_format(format)
    if subset is not None:
        check_subset(subset, split, validation)  # a typo is reported before any download
    selection = Selection.open(element, split, validation=validation, seed=seed, source=source, progress=progress,
                               archive=archive)  # fmt: skip
    if format == "ase":
        return selection.to_atoms(subset)
    return to_datasets(selection, subset=subset, format=format)


def check_format(format: str | None) -> None:
    """A UsageError unless ``format`` is one :func:`load_tm23` knows."""
    if format not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(str(f) for f in FORMATS)}, got {format!r}")


def to_datasets(selection: Selection, *, subset: str | None = None, format: str | None = None):
    """A ``DatasetDict`` of every subset of ``selection`` (or the ``Dataset`` of ``subset``) in ``format``."""
    import datasets

    check_format(format)
    if format == "ase":
        raise UsageError("format='ase' gives ase.Atoms, not a Dataset: use Selection.to_atoms()")
    names = [subset] if subset is not None else list(selection.subsets)
    wholes = [_whole_table(store) for store in selection.stores]
    built = {name: _dataset(selection, wholes, name) for name in names}
    if format not in (None, "python"):
        built = {name: ds.with_format(format, dtype=None) if format in ("numpy", "torch") else ds.with_format(format)
                 for name, ds in built.items()}  # fmt: skip
    return built[subset] if subset is not None else datasets.DatasetDict(built)


def features() -> datasets.Features:
    from datasets import Array2D, Features, List, Value

    return Features(
        {
            "frame_id": Value("string"),
            "element": Value("string"),
            "regime": Value("string"),
            "natoms": Value("int64"),
            "atomic_numbers": List(Value("int64")),
            "positions": Array2D((None, 3), "float64"),
            "forces": Array2D((None, 3), "float64"),
            "energy": Value("float64"),
            "free_energy": Value("float64"),
            "stress": Array2D((3, 3), "float64"),
            "cell": Array2D((3, 3), "float64"),
            "pbc": List(Value("bool"), length=3),
        }
    )


def arrow_table(store: Store, indices: np.ndarray | None = None, *, whole=None):
    """The rows ``indices`` (default: all, in store order) as a pyarrow Table with :func:`features`.

    The whole store becomes one table whose arrays are views of the store's buffers (no per-atom copy);
    a subset is a concatenation of slices of it, one per contiguous run of frames (splits are a few
    runs, e.g. the first 900 frames of each trajectory), or one gather for scattered selections.
    ``whole`` passes that table in when it was already built."""
    whole = whole if whole is not None else _whole_table(store)
    if indices is None:
        return whole
    indices = np.asarray(indices, dtype=np.int64)
    runs = np.split(indices, np.flatnonzero(np.diff(indices) != 1) + 1) if len(indices) else []
    if 0 < len(runs) <= 64:
        return pa_concat([whole.slice(int(r[0]), len(r)) for r in runs])
    return whole.take(indices)


def pa_concat(tables):
    import pyarrow as pa

    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _whole_table(store: Store):
    import pyarrow as pa
    from datasets.features.features import Array2DExtensionType

    frames = store.frames
    n = len(frames)
    per_frame_3 = pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32))
    offsets = pa.array(frames.offsets.astype(np.int32))

    def rows_of(values: np.ndarray, outer: pa.Array, shape) -> pa.Array:
        flat = values.reshape(-1)
        inner = pa.ListArray.from_arrays(pa.array(np.arange(0, len(flat) + 1, 3, dtype=np.int32)), pa.array(flat))
        return pa.ExtensionArray.from_storage(Array2DExtensionType(shape, "float64"), pa.ListArray.from_arrays(outer, inner))

    columns = {
        "frame_id": pa.array(store.frame_id, type=pa.string()),
        "element": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), [store.element]).cast(pa.string()),
        "regime": pa.array(np.asarray(REGIME_NAMES)[store.regime], type=pa.string()),
        "natoms": pa.array(frames.natoms.astype(np.int64, copy=False)),
        "atomic_numbers": pa.ListArray.from_arrays(offsets, pa.array(frames.numbers.astype(np.int64, copy=False))),
        "positions": rows_of(frames.positions, offsets, (None, 3)),
        "forces": rows_of(frames.forces, offsets, (None, 3)),
        "energy": pa.array(frames.energy),
        "free_energy": pa.array(frames.free_energy),
        "stress": rows_of(frames.stress, per_frame_3, (3, 3)),
        "cell": rows_of(frames.cell, per_frame_3, (3, 3)),
        "pbc": pa.FixedSizeListArray.from_arrays(pa.array(frames.pbc.reshape(-1)), 3),
    }
    return pa.table(columns)


def _dataset(selection: Selection, wholes, subset: str):
    import datasets

    blocks = selection.blocks(subset)
    table = pa_concat([arrow_table(store, idx, whole=w) for (store, idx), w in zip(blocks, wholes)])
    key = ":".join(
        [TABLE_VERSION]
        + [s.fingerprint for s in selection.stores]
        + [m.hash for m in selection.manifests]
        + [hashlib.sha256(np.ascontiguousarray(idx).tobytes()).hexdigest() for _, idx in blocks]
    )
    # Features are inferred from the table's Arrow types (the same as features()): passing them in
    # would deep-copy and re-validate them, which costs more than the rest of a warm load.
    ds = datasets.Dataset(table, split=datasets.NamedSplit(subset), fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16])
    ds.info.description = (
        f"TM23 {'+'.join(selection.elements)}, split {selection.split}, subset {subset} (Owen, Torrisi et al., "
        f"npj Comput. Mater. 2024). Units: Å, eV, eV/Å, eV/Å³ (ASE sign). Data: {selection.origin.summary()}."
    )
    ds.info.citation, ds.info.homepage, ds.info.license = CITATION, manifest.RECORD_URL, manifest.LICENSE
    return ds


CITATION = """@article{owen2024tm23,
  title   = {Complexity of many-body interactions in transition metals via machine-learned force fields
             from the {TM23} data set},
  author  = {Owen, Cameron J. and Torrisi, Steven B. and Xie, Yu and Batzner, Simon and Bystrom, Kyle and
             Coulter, Jennifer and Musaelian, Albert and Sun, Lixin and Kozinsky, Boris},
  journal = {npj Computational Materials},
  volume  = {10},
  pages   = {92},
  year    = {2024},
  doi     = {10.1038/s41524-024-01264-z}
}"""
