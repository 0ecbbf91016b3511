"""One split of one or more elements from one archive: the object every view, export, evaluator and baseline
goes through.

    from tm23data import Selection

    sel = Selection.open("Ti", "full", validation=0.1, seed=0)
    sel.sizes()                     # {"train": 2430, "validation": 270, "test": 300}
    sel.frames("train")             # tm23data.frames.Frames: flat numpy arrays (Å, eV, eV/Å, eV/Å³ ASE sign)
    sel.arrays("test[:10]")         # dict of numpy arrays with frame ids, regimes and elements
    sel.evaluator("test")           # tm23data.metrics.Evaluator over the test labels
    sel.to_hf(), sel.to_atoms("test"), sel.to_pyg("train", cutoff=5.0), sel.export("extxyz", "out/")

Opening a selection loads each element's store (built from the archive on first use) and resolves the split
against it (:func:`tm23data.splits.resolve_split`: frozen frame indices, content hashes, the seeded
validation carve, train/test disjointness). A subset is a name (``train``, ``validation``, ``test``) or an
HF-style string (``train[:100]``, ``test[10%:]``, ``train+test``) applied to each element's subsets; frames
keep element order, then subset order. Everything numpy-only (``frames``, ``arrays``, ``evaluator``,
``manifests``) imports neither Hugging Face ``datasets`` nor torch; the conversions import what they need.
The conversions themselves live in the view modules (:mod:`.hf`, :mod:`.atoms`, :mod:`.pyg`, :mod:`.export`);
these methods are their one entry point.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import elements
from .config import ArchiveSource
from .errors import UsageError
from .frames import Frames
from .provenance import Origin, combined
from .splits import SplitDefinition, SplitManifest, resolve_split
from .store import Store, load_store

if TYPE_CHECKING:
    from .metrics import Evaluator


@dataclass(frozen=True)
class Selection:
    """A resolved split of ``elements`` (one store and one manifest per element, in order)."""

    split: str
    stores: tuple[Store, ...]
    manifests: tuple[SplitManifest, ...]
    validation: float | None = None
    seed: int = 0

    @classmethod
    def open(
        cls,
        element: str | list[str] | tuple[str, ...],
        split: str | SplitDefinition = "full",
        *,
        validation: float | None = None,
        seed: int = 0,
        source: ArchiveSource | None = None,
        progress: bool = True,
        archive=None,
    ) -> Selection:
        """Load the store of each element of ``element`` (a symbol or a list) and resolve ``split`` on it.

        Args:
            element: ``"Ti"`` or ``["Cu", "Ti"]``.
            split: a standard split name (``tm23 splits`` lists them) or a :class:`SplitDefinition`.
            validation: carve this seeded random fraction (a float; paper, NequIP: 0.1) or number (an int) of
                train frames into ``validation``.
            seed: seed of that carve.
            source: which archive, as an :class:`ArchiveSource` (``archive`` is the friendlier way).
            progress: show progress bars while downloading or building a store.
            archive: which archive: a name or md5 from ``tm23 archives``, a path to a zip or to a folder of
                member files, or ``URL#md5=HEX`` (default: ``TM23_ARCHIVE``, ``TM23_MD5``, else the published one).
        """
        from .splits import check_validation, get_split

        validation = check_validation(validation)  # checked, like the names, before any download
        symbols = elements.resolve(element)
        definition = split if isinstance(split, SplitDefinition) else get_split(split)  # checked before any download
        if archive is not None or (source is not None and not isinstance(source, ArchiveSource)):
            from .registry import resolve  # so the baselines' source= takes a name or path too

            source = resolve(archive if archive is not None else source)
        stores = [load_store(el, source, progress=progress) for el in symbols]
        return cls.from_stores(stores, definition, validation=validation, seed=seed)

    @classmethod
    def from_stores(cls, stores, split: str | SplitDefinition, *, validation: float | None = None,
                    seed: int = 0) -> Selection:  # fmt: skip
        """Resolve ``split`` on stores already loaded (no I/O)."""
        stores = tuple(stores)
        if not stores:
            raise UsageError("a selection needs at least one element")
        manifests = tuple(resolve_split(store, split, validation=validation, seed=seed) for store in stores)
        return cls(manifests[0].name, stores, manifests, manifests[0].validation, seed)

    # --- what it holds -------------------------------------------------------------------------------

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(store.element for store in self.stores)

    @property
    def subsets(self) -> tuple[str, ...]:
        """Subset names in order: ``train``, [``validation``,] ``test``."""
        return tuple(self.manifests[0].subsets)

    @property
    def store(self) -> Store:
        """The store, for a selection of one element."""
        return self._single().stores[0]

    @property
    def manifest(self) -> SplitManifest:
        """The split manifest (frame indices and hashes), for a selection of one element."""
        return self._single().manifests[0]

    @property
    def hash(self) -> str:
        """Identity of the frames of every subset of every element (one manifest hash when one element)."""
        if len(self.manifests) == 1:
            return self.manifests[0].hash
        return hashlib.sha256(":".join(m.hash for m in self.manifests).encode()).hexdigest()

    @property
    def origin(self) -> Origin:
        """Where the frames came from (published archive, generated, or unknown); a mix never reads as published."""
        return combined(store.origin for store in self.stores)

    @property
    def name(self) -> str:
        """``Ti/full`` or ``Cu+Ti/full``."""
        return f"{'+'.join(self.elements)}/{self.split}"

    def _single(self) -> Selection:
        if len(self.stores) != 1:
            raise UsageError(f"{self.name} holds {len(self.stores)} elements; use .stores / .manifests")
        return self

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {v}" for k, v in self.sizes().items())
        return f"Selection({self.name}, {sizes})"

    # --- frames of a subset --------------------------------------------------------------------------

    def blocks(self, subset: str = "train") -> list[tuple[Store, np.ndarray]]:
        """(store, frame indices into it) per element for ``subset`` (a name or an HF-style string)."""
        return [(store, manifest.select(subset)) for store, manifest in zip(self.stores, self.manifests)]

    def sizes(self, subset: str | None = None) -> dict[str, int]:
        """Frames per subset (all elements together), or ``{subset: n}`` for one subset string."""
        names = self.subsets if subset is None else (subset,)
        return {name: sum(len(idx) for _, idx in self.blocks(name)) for name in names}

    def frames(self, subset: str = "train") -> Frames:
        """The frames of ``subset`` as one :class:`Frames` (element order, then subset order)."""
        return Frames.concat([store.frames.take(idx) for store, idx in self.blocks(subset)])

    def frame_ids(self, subset: str = "train") -> np.ndarray:
        """(F,) frame ids such as ``'Ti-cold-0123'``."""
        return np.concatenate([store.frame_id[idx] for store, idx in self.blocks(subset)])

    def regimes(self, subset: str = "train") -> np.ndarray:
        """(F,) regime of each frame: ``'cold'``, ``'warm'``, ``'melt'`` (``'unknown'`` for a combined-file frame)."""
        return np.concatenate([store.regime_names(idx) for store, idx in self.blocks(subset)]).astype(str)

    def element_column(self, subset: str = "train") -> np.ndarray:
        """(F,) chemical symbol of each frame."""
        return np.concatenate([np.full(len(idx), store.element) for store, idx in self.blocks(subset)])

    def arrays(self, subset: str = "train") -> dict[str, np.ndarray]:
        """Numpy arrays of ``subset``: per frame ``frame_id``, ``element``, ``regime``, ``natoms``, ``energy``
        (eV), ``free_energy`` (eV), ``stress`` (F, 3, 3) eV/Å³ (ASE sign; NaN if absent), ``cell`` (F, 3, 3) Å,
        ``pbc``; per atom, concatenated over frames, ``atomic_numbers``, ``positions`` (Å), ``forces`` (eV/Å);
        ``offsets`` (F+1,) where each frame's atoms start. Imports neither ``datasets`` nor torch."""
        frames = self.frames(subset)
        return {
            "frame_id": self.frame_ids(subset),
            "element": self.element_column(subset),
            "regime": self.regimes(subset),
            "natoms": frames.natoms,
            "offsets": frames.offsets,
            "atomic_numbers": frames.numbers,
            "positions": frames.positions,
            "forces": frames.forces,
            "energy": frames.energy,
            "free_energy": frames.free_energy,
            "stress": frames.stress,
            "cell": frames.cell,
            "pbc": frames.pbc,
        }

    def evaluator(self, subset: str = "test") -> Evaluator:
        """A :class:`tm23data.metrics.Evaluator` over the labels of ``subset`` (stress only if every frame has it)."""
        from .metrics import Evaluator

        return Evaluator.from_frames(self.frames(subset), self.regimes(subset), name=f"{self.name}/{subset}")

    def has_stress(self, subset: str = "train") -> bool:
        """Whether every frame of ``subset`` has a stress label."""
        return bool(self.frames(subset).has_stress.all())

    def to_json(self) -> list[dict]:
        """The manifests as JSON-able records (frame ids per subset, sizes, hashes), one per element."""
        return [m.to_json(store) for store, m in zip(self.stores, self.manifests)]

    # --- conversions (implemented by the view modules) -----------------------------------------------

    def to_hf(self, subset: str | None = None, format: str | None = None):
        """A Hugging Face ``DatasetDict`` (or one ``Dataset`` for ``subset``); see :func:`tm23data.hf.load_tm23`."""
        from .hf import to_datasets

        return to_datasets(self, subset=subset, format=format)

    def to_atoms(self, subset: str | None = None):
        """``ase.Atoms`` with SinglePointCalculator labels: a list for ``subset``, else ``{subset: [...]}``."""
        from .atoms import selection_atoms

        if subset is not None:
            return selection_atoms(self, subset)
        return {name: selection_atoms(self, name) for name in self.subsets}

    def to_pyg(self, subset: str = "train", cutoff: float = 5.0, **kwargs):
        """A :class:`tm23data.pyg.TM23Dataset` of periodic radius graphs (``kwargs``: dtype, transform, ...)."""
        from .pyg import TM23Dataset

        return TM23Dataset.from_selection(self, subset, cutoff, **kwargs)

    def export(self, format: str, out, **kwargs):
        """Write the selection as ``format`` (extxyz, parquet, hf, asedb) into the folder ``out``; see
        :func:`tm23data.export.export`. Returns the files written."""
        from .export import export_selection

        return export_selection(self, format, out, **kwargs)

