"""Plain-torch batching of TM23 frames (no PyTorch Geometric needed).

Frames are ragged (each has its own number of atoms), so a batch concatenates the atoms of its frames
and carries a ``batch`` vector (the frame of each atom) and ``ptr`` offsets, as PyG does::

    from torch.utils.data import DataLoader
    from tm23data import load_tm23
    from tm23data.collate import collate_frames, torch_loader

    ds = load_tm23("Ti", split="cold", subset="train", format="torch")
    loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate_frames)   # row by row
    loader = torch_loader(ds, batch_size=32, shuffle=True)                          # faster: fetches slices
    for b in loader:
        b["positions"]   # (sum N, 3) Å            b["batch"]  (sum N,) frame index of each atom
        b["forces"]      # (sum N, 3) eV/Å         b["energy"] (B,) eV
        b["stress"]      # (B, 3, 3) eV/Å³, ASE sign (positive = tensile); NaN where a frame has none
        b["cell"]        # (B, 3, 3) Å, rows are lattice vectors

``FrameCollator(cutoff=5.0)`` also adds a periodic radius graph (``edge_index`` with global atom indices and
integer ``cell_shifts``); :func:`edge_vectors` turns it into differentiable edge vectors, optionally under
a strain for stress by autograd. Both follow the convention of :mod:`tm23data.neighbors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .errors import UsageError

#: Per-atom columns of a ``load_tm23`` row (concatenated over frames) and their trailing shapes.
PER_ATOM = {"atomic_numbers": (), "positions": (3,), "forces": (3,)}
#: Per-frame columns (stacked over frames).
PER_FRAME = {"natoms": (), "energy": (), "free_energy": (), "stress": (3, 3), "cell": (3, 3), "pbc": (3,)}
#: String columns, returned as lists.
STRINGS = ("frame_id", "element", "regime")
FLOATS = ("positions", "forces", "energy", "free_energy", "stress", "cell")


def edge_vectors(pos, edge_index, cell_shifts, cell, batch=None, strain=None) -> torch.Tensor:
    """Edge vectors ``pos[j] - pos[i] + cell_shifts @ cell`` (E, 3) in Å for ``edge_index = [i; j]``.

    Differentiable with respect to ``pos``, ``cell`` and ``strain``. ``cell`` is (3, 3) or (B, 3, 3)
    (one per frame; then ``batch`` (N,) gives each atom's frame). ``strain`` (B, 3, 3), if given,
    deforms every vector as ``v @ (1 + strain)``: pass zeros with ``requires_grad=True`` and the stress
    in ASE's convention is ``dE/dstrain / volume`` (eV/Å³), the forces ``-dE/dpos``.
    """
    i, j = edge_index[0], edge_index[1]
    cell = cell.to(pos.dtype)
    if cell.dim() == 2:
        cell = cell.unsqueeze(0)
    if cell.shape[0] == 1:
        edge_frame = torch.zeros_like(i)
    elif batch is None:
        raise UsageError(f"cell has {cell.shape[0]} frames: pass batch (the frame of each atom)")
    else:
        edge_frame = batch[i]
    shifts = torch.einsum("ek,ekl->el", cell_shifts.to(pos.dtype), cell[edge_frame])
    vectors = pos[j] - pos[i] + shifts
    if strain is not None:
        strain = strain.to(pos.dtype).reshape(-1, 3, 3)
        vectors = vectors + torch.einsum("ek,ekl->el", vectors, strain[edge_frame])
    return vectors


class FrameCollator:
    """Collate ``load_tm23`` rows into one batch of concatenated atoms (a picklable callable).

    Accepts what a ``torch.utils.data.DataLoader`` hands over: a list of rows (``ds[i]`` with any
    format: torch, numpy or Python lists), one dict of columns (``ds[[i, j, ...]]``), or a pyarrow
    Table of rows (what :func:`torch_loader` fetches: the fastest). Returns a dict of tensors:

    - per atom: ``positions`` (A, 3) Å, ``forces`` (A, 3) eV/Å, ``atomic_numbers`` (A,), ``batch`` (A,)
    - per frame: ``natoms`` (B,), ``energy`` (B,) eV, ``stress`` (B, 3, 3) eV/Å³ (ASE sign; NaN if
      absent), ``cell`` (B, 3, 3) Å, ``pbc`` (B, 3), ``ptr`` (B+1,) where each frame's atoms start
    - lists: ``frame_id``, ``element``, ``regime`` (those present in the rows)
    - with ``cutoff``: ``edge_index`` (2, E) int64 over the batch's atoms and ``cell_shifts`` (E, 3)
      int64, so that ``positions[j] - positions[i] + cell_shifts @ cell[batch[i]]`` is the edge vector
      (computed with vesin in float64, about 0.5 ms per 53-atom frame at 5 Å).

    ``dtype`` casts the float tensors (e.g. ``torch.float32`` for training); the default keeps float64.
    """

    def __init__(self, cutoff: float | None = None, dtype: torch.dtype | None = None):
        from .neighbors import check_cutoff

        self.cutoff = None if cutoff is None else check_cutoff(cutoff)
        self.dtype = dtype
        self._nl = None

    def __getstate__(self):
        return {"cutoff": self.cutoff, "dtype": self.dtype, "_nl": None}

    def __call__(self, batch) -> dict:
        columns = _arrow_columns(batch) if _is_arrow(batch) else _columns(batch)
        missing = [k for k in ("positions", "atomic_numbers", "cell", "pbc") if k not in columns]
        if missing:
            raise KeyError(
                f"rows lack the column(s) {', '.join(missing)}; collate rows of load_tm23(...) "
                f"(columns {', '.join(PER_ATOM) + ', ' + ', '.join(PER_FRAME)})"
            )
        out: dict = {}
        for key in STRINGS:
            if key in columns:
                out[key] = [str(v) for v in columns[key]]
        for key, shape in PER_FRAME.items():
            if key in columns:
                out[key] = _stack(columns[key], shape, key)
        for key, shape in PER_ATOM.items():
            if key in columns:
                out[key] = _concat(columns[key], shape, key)
        counts = torch.from_numpy(columns.pop("_counts")) if "_counts" in columns else _counts(columns["positions"])
        if "natoms" in out and not torch.equal(out["natoms"].to(torch.int64), counts):
            raise UsageError(f"natoms {out['natoms'].tolist()} disagrees with the rows' positions {counts.tolist()}")
        out["natoms"] = counts
        out["atomic_numbers"] = out["atomic_numbers"].to(torch.int64)
        out["pbc"] = out["pbc"].to(torch.bool)
        n_frames = len(counts)
        out["ptr"] = torch.zeros(n_frames + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=out["ptr"][1:])
        # np.repeat, not torch.repeat_interleave: the latter takes milliseconds when torch's threads
        # compete for the cores (e.g. DataLoader workers), for a microsecond job.
        out["batch"] = torch.from_numpy(np.repeat(np.arange(n_frames), counts.numpy()))
        if self.cutoff is not None:
            out["edge_index"], out["cell_shifts"] = self._graph(out)
        if self.dtype is not None:
            for key in FLOATS:
                if key in out:
                    out[key] = out[key].to(self.dtype)
        return out

    def _graph(self, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        from .neighbors import NeighborList

        if self._nl is None:
            self._nl = NeighborList(self.cutoff)
        pos = out["positions"].to(torch.float64).numpy()
        cell = out["cell"].to(torch.float64).numpy()
        pbc = out["pbc"].numpy()
        ptr = out["ptr"].numpy()
        edges, shifts = [], []
        for k in range(len(ptr) - 1):
            e, s = self._nl(pos[ptr[k] : ptr[k + 1]], cell[k], pbc[k])
            edges.append(e + ptr[k])
            shifts.append(s)
        if not edges:
            return torch.zeros((2, 0), dtype=torch.int64), torch.zeros((0, 3), dtype=torch.int64)
        return torch.from_numpy(np.concatenate(edges, axis=1)), torch.from_numpy(np.concatenate(shifts))


#: Collate without a graph, keeping float64: ``DataLoader(ds, batch_size=32, collate_fn=collate_frames)``.
collate_frames = FrameCollator()


def torch_loader(
    dataset,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    drop_last: bool = False,
    cutoff: float | None = None,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
    **loader_kwargs,
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` that fetches each batch as one slice of ``dataset`` and collates it with
    :class:`FrameCollator`.

    A Hugging Face dataset (any format) is read through :class:`ArrowFrames`: one ``take`` on its Arrow
    table per batch, turned into tensors without per-row Python work (about 25x faster than HF's torch
    formatting). Any other map-style dataset gets ``dataset[[i, j, ...]]``. Other keyword arguments
    (``num_workers``, ``pin_memory``...) go to ``DataLoader``."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    if batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size}")
    if type(dataset).__module__.startswith("datasets.") and hasattr(dataset, "with_format"):
        dataset = ArrowFrames(dataset)
    sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=BatchSampler(sampler, batch_size, drop_last),
        collate_fn=FrameCollator(cutoff, dtype),
        **loader_kwargs,
    )


class ArrowFrames(torch.utils.data.Dataset):
    """A Hugging Face dataset seen as its Arrow table; ``frames[[i, j, ...]]`` is a ``pyarrow.Table`` of
    those rows (for :class:`FrameCollator`). Any ``select``/``shuffle`` mapping is applied once, here."""

    def __init__(self, dataset):
        import pyarrow as pa

        table = dataset.with_format("arrow")[:].combine_chunks()  # one chunk: take() is ~10x faster
        # Plain storage types instead of HF's Array2D extension type, whose instances are rebuilt (from
        # JSON) for every array a batch touches; values and layout are the same.
        columns = [pa.chunked_array([c.storage if isinstance(c, pa.ExtensionArray) else c for c in col.chunks],
                                    type=col.type.storage_type if isinstance(col.type, pa.ExtensionType) else col.type)
                   for col in table.columns]  # fmt: skip
        self.table = pa.Table.from_arrays(columns, names=table.column_names)

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, indices):
        import pyarrow as pa

        if isinstance(indices, (int, np.integer)):
            indices = [int(indices)]
        return self.table.take(pa.array(np.asarray(indices, dtype=np.int64)))


# --------------------------------------------------------------------------------------------------


def _is_arrow(batch) -> bool:
    return type(batch).__module__.startswith("pyarrow") and hasattr(batch, "column_names")


def _arrow_columns(table) -> dict:
    """Columns of a pyarrow Table of ``load_tm23`` rows as flat numpy arrays (per-atom values of all rows
    concatenated), plus ``_counts`` (atoms per row) from the list offsets."""
    columns: dict = {}
    for name in table.column_names:
        column = table.column(name)
        if name in STRINGS:
            columns[name] = column.to_pylist()
        elif name in PER_ATOM or name in PER_FRAME:
            shape = PER_ATOM.get(name, PER_FRAME.get(name))
            values = np.concatenate([_flat(chunk) for chunk in column.chunks]) if column.num_chunks else np.zeros(0)
            columns[name] = values.reshape(-1, *shape)
    if "positions" in table.column_names:
        columns["_counts"] = np.concatenate([_lengths(chunk) for chunk in table.column("positions").chunks])
    return columns


def _flat(array) -> np.ndarray:
    """The leaf values of a (nested, possibly extension-typed) Arrow array, respecting offsets and slices."""
    import pyarrow as pa

    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False)


def _lengths(array) -> np.ndarray:
    import pyarrow as pa

    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    return np.asarray(array.value_lengths().to_numpy(zero_copy_only=False), dtype=np.int64)


def _columns(batch) -> dict:
    if isinstance(batch, Mapping):
        if "natoms" in batch and np.ndim(batch["natoms"]) == 0:
            raise TypeError("got one row (a dict with a scalar 'natoms'); pass a list of rows, e.g. [ds[0]], "
                            "or a slice of columns, ds[0:1]")  # fmt: skip
        # HF's numpy format hands ragged columns (frames of different sizes) as object arrays of arrays
        return {k: list(v) if isinstance(v, np.ndarray) and v.dtype == object else v for k, v in batch.items()}
    if isinstance(batch, Sequence) and batch and all(isinstance(row, Mapping) for row in batch):
        return {key: [row[key] for row in batch] for key in batch[0]}
    if isinstance(batch, Sequence) and not batch:
        raise UsageError("cannot collate an empty batch")
    raise TypeError(
        f"expected a list of load_tm23 rows (dicts) or a dict of columns, got {type(batch).__name__}; "
        "load the split with load_tm23(..., format='torch')"
    )


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value))


def _stack(values, shape: tuple, key: str) -> torch.Tensor:
    """Per-frame values -> (B, *shape): a stacked tensor as is, or a list of per-frame values stacked."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        tensor = _as_tensor(values)
    else:
        tensor = torch.stack([_as_tensor(v) for v in values]) if len(values) else torch.zeros((0, *shape))
    if tuple(tensor.shape[1:]) != shape:
        raise UsageError(f"column {key!r} has per-frame shape {tuple(tensor.shape[1:])}, expected {shape}")
    return tensor


def _concat(values, shape: tuple, key: str) -> torch.Tensor:
    """Per-atom values -> (A, *shape): HF hands a (B, N, *shape) tensor when all frames have N atoms,
    else a list of (N_k, *shape) tensors."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        tensor = _as_tensor(values)
        return tensor.reshape(-1, *shape)
    parts = [_as_tensor(v).reshape(-1, *shape) for v in values]
    if not parts:
        return torch.zeros((0, *shape))
    return torch.cat(parts)


def _counts(positions) -> torch.Tensor:
    if isinstance(positions, (torch.Tensor, np.ndarray)):
        b, n = positions.shape[:2]
        return torch.full((b,), n, dtype=torch.int64)
    return torch.tensor([len(p) for p in positions], dtype=torch.int64)
