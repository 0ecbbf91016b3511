"""Periodic radius graphs (neighbour lists) of TM23 frames, computed with vesin and cached on disk.

Convention, shared by :mod:`tm23data.pyg` and :mod:`tm23data.collate`: for every edge ``(i, j)`` with
integer cell shift ``S`` (a row of ``shifts``), the edge vector in Å is

    D = positions[j] - positions[i] + S @ cell          (cell rows are lattice vectors)

exactly as ``ase.neighborlist.neighbor_list("ijSD", atoms, cutoff)`` defines it, and ``|D| < cutoff``.
The list is *full* (every pair appears as ``(i, j, S)`` and ``(j, i, -S)``), contains periodic images of
an atom itself (``i == j`` with ``S != 0``) when the cell is shorter than the cutoff, and never the pair
``(i, i, 0)``. Edges are sorted by ``i``.

The cache holds the graphs of *every* frame of an element's store (all splits share it) in one HDF5 file
per (store fingerprint, cutoff, :data:`GRAPH_FORMAT_VERSION`), written to a temporary file under a lock
and renamed into place; every dataset carries an xxh3-64 digest (:mod:`tm23data.h5io`). Only numeric arrays
are stored and read back: nothing is ever unpickled.
"""

from __future__ import annotations

import math
import re
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__, config, elements
from .errors import StepError, UsageError
from .frames import Frames
from .h5io import ChecksummedFile, open_or_build, write_atomically
from .provenance import utc_now

#: Bumped whenever the cached graphs could change (layout, convention, or neighbour-list semantics).
GRAPH_FORMAT_VERSION = 1


class GraphCacheError(StepError):
    """A cached graph file is damaged, incomplete or stale (it is rebuilt)."""


def check_cutoff(cutoff) -> float:
    """``cutoff`` as a positive, finite float in Å, or a ValueError that says what was wrong."""
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise UsageError(f"cutoff must be a number of Å, got {cutoff!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"cutoff must be a positive, finite distance in Å, got {cutoff!r}")
    return value


class NeighborList:
    """A reusable periodic radius-graph builder (one vesin half list, mirrored into a full list).

    ``NeighborList(5.0)(positions, cell, pbc)`` returns ``(edge_index, shifts)``: ``edge_index`` (2, E)
    int64 with rows ``i`` and ``j``, ``shifts`` (E, 3) int64 (see the module docstring for the convention).
    """

    def __init__(self, cutoff: float):
        import vesin

        self.cutoff = check_cutoff(cutoff)
        # A half list is ~40% cheaper in vesin than a full one; mirroring it in numpy costs microseconds.
        # One thread: frames of ~50-100 atoms are too small to gain from vesin's threading.
        self._nl = vesin.NeighborList(cutoff=self.cutoff, full_list=False, n_threads=1)

    def __call__(self, positions, cell, pbc) -> tuple[np.ndarray, np.ndarray]:
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        cell = np.ascontiguousarray(cell, dtype=np.float64)
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise UsageError(f"positions must have shape (N, 3), got {positions.shape}")
        if cell.shape != (3, 3):
            raise UsageError(f"cell must have shape (3, 3) (rows are lattice vectors), got {cell.shape}")
        if pbc.all():
            degenerate = abs(np.linalg.det(cell)) < 1e-9
        else:
            degenerate = bool(pbc.any()) and np.linalg.matrix_rank(cell[pbc]) < int(pbc.sum())
        if degenerate:
            raise UsageError(
                f"the periodic lattice vectors of cell {cell.tolist()} (pbc {pbc.tolist()}) are degenerate; "
                "a periodic graph needs linearly independent lattice vectors along periodic directions"
            )
        if len(positions) == 0:
            return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3), dtype=np.int64)
        pairs, shifts = self._nl.compute(positions, cell, [bool(p) for p in pbc], "PS", copy=False)
        pairs = pairs.astype(np.int64)
        shifts = shifts.astype(np.int64)
        i = np.concatenate([pairs[:, 0], pairs[:, 1]])
        j = np.concatenate([pairs[:, 1], pairs[:, 0]])
        s = np.concatenate([shifts, -shifts])
        order = np.argsort(i, kind="stable")
        return np.stack([i[order], j[order]]), s[order]


def radius_graph_pbc(positions, cell, pbc, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Full periodic radius graph of one frame: ``(edge_index (2, E) int64, shifts (E, 3) int64)``.

    ``positions`` (N, 3) Å, ``cell`` (3, 3) Å with rows as lattice vectors, ``pbc`` (3,) bools,
    ``cutoff`` Å. The edge ``(i, j, S)`` has vector ``positions[j] - positions[i] + S @ cell`` (ASE's
    ``neighbor_list('ijS')`` convention; the same set of edges).
    """
    return NeighborList(cutoff)(positions, cell, pbc)


@dataclass
class Graphs:
    """Radius graphs of a block of frames in compact flat arrays.

    ``pairs[:, edge_offsets[k]:edge_offsets[k + 1]]`` are the (i, j) rows of frame ``k``, indexed within
    that frame (0..natoms-1); ``shifts`` the matching integer cell shifts. Small integer dtypes (int16 /
    int8 when they fit) keep the cache of a 3000-frame element at tens of MB; :meth:`edges` returns int64.
    """

    cutoff: float
    edge_offsets: np.ndarray  # (F+1,) int64
    pairs: np.ndarray  # (2, E) int16 or int32, frame-local atom indices
    shifts: np.ndarray  # (E, 3) int8 or int32

    def __len__(self) -> int:
        return len(self.edge_offsets) - 1

    @property
    def num_edges(self) -> np.ndarray:
        """(F,) number of edges of each frame."""
        return np.diff(self.edge_offsets)

    def edges(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(edge_index (2, E_k) int64, shifts (E_k, 3) int64)`` of frame ``k`` (frame-local indices)."""
        a, b = self.edge_offsets[k], self.edge_offsets[k + 1]
        return self.pairs[:, a:b].astype(np.int64), self.shifts[a:b].astype(np.int64)


def build_graphs(frames: Frames, cutoff: float, *, progress: bool = False, desc: str = "radius graphs") -> Graphs:
    """Radius graphs of every frame of ``frames`` (about 0.5 ms per 53-atom frame at 5 Å)."""
    from tqdm.auto import tqdm

    nl = NeighborList(cutoff)
    off = frames.offsets
    pair_blocks, shift_blocks = [], []
    counts = np.zeros(len(frames), dtype=np.int64)
    for k in tqdm(range(len(frames)), desc=desc, disable=not progress, leave=False, mininterval=1.0):
        edge_index, shifts = nl(frames.positions[off[k] : off[k + 1]], frames.cell[k], frames.pbc[k])
        pair_blocks.append(edge_index)
        shift_blocks.append(shifts)
        counts[k] = edge_index.shape[1]
    edge_offsets = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum(counts, out=edge_offsets[1:])
    max_atoms = int(frames.natoms.max()) if len(frames) else 0
    pairs = np.concatenate(pair_blocks, axis=1) if pair_blocks else np.zeros((2, 0), np.int64)
    shifts = np.concatenate(shift_blocks) if shift_blocks else np.zeros((0, 3), np.int64)
    pair_dtype = np.int16 if max_atoms <= np.iinfo(np.int16).max else np.int32
    shift_dtype = np.int8 if not len(shifts) or np.abs(shifts).max() <= np.iinfo(np.int8).max else np.int32
    return Graphs(nl.cutoff, edge_offsets, pairs.astype(pair_dtype), shifts.astype(shift_dtype))


# --------------------------------------------------------------------------------------------------
# On-disk cache


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder of cached graphs: ``root`` or ``$TM23_HOME/processed/graphs``."""
    return Path(root) if root is not None else config.home() / "processed" / "graphs"


def cache_path(store, cutoff: float, root: str | os.PathLike | None = None) -> Path:
    """Cache file of ``store``'s graphs at ``cutoff``: named by element, fingerprint, exact cutoff and format."""
    cutoff = check_cutoff(cutoff)
    if store.element not in elements.symbols() or not re.fullmatch(r"[0-9a-f]{20,}", str(store.fingerprint)):
        raise GraphCacheError(f"{store.path}: element {store.element!r} or fingerprint is not valid; "
                              "no cache path is built from it")  # fmt: skip
    token = repr(cutoff).replace(".", "p").replace("-", "m").replace("+", "")  # repr round-trips exactly
    name = f"{store.element}-{store.fingerprint[:20]}-rc{token}-v{GRAPH_FORMAT_VERSION}.h5"
    return cache_dir(root) / name


def load_graphs(store, cutoff: float, *, root: str | os.PathLike | None = None, progress: bool = True) -> Graphs:
    """The graphs of every frame of ``store`` at ``cutoff``: read from the cache if it is valid, else built
    (under a file lock, written atomically) and cached. A damaged or stale file is rebuilt with a warning."""
    cutoff = check_cutoff(cutoff)

    def build(path: Path) -> None:
        graphs = build_graphs(store.frames, cutoff, progress=progress, desc=f"{store.element}: radius graphs")
        _write_graphs(path, graphs, store)

    return open_or_build(cache_path(store, cutoff, root), lambda p: open_graphs(p, store, cutoff), build,
                         GraphCacheError)  # fmt: skip


def open_graphs(path: Path, store, cutoff: float) -> Graphs:
    """Read and validate a cache file against ``store`` and ``cutoff``; GraphCacheError if it does not fit."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            h = ChecksummedFile(h5)
            expected = {
                "format_version": GRAPH_FORMAT_VERSION,
                "fingerprint": store.fingerprint,
                "content_hash": store.content_hash,
                "cutoff": float(cutoff),
                "n_frames": len(store),
            }
            for key, want in expected.items():
                if h.meta.get(key) != want:
                    raise GraphCacheError(
                        f"{path}: graph cache is stale ({key} is {h.meta.get(key)!r}, expected {want!r})"
                    )
            graphs = Graphs(
                cutoff=float(h.meta["cutoff"]),
                edge_offsets=h.read("edge_offsets").astype(np.int64),
                pairs=h.read("pairs"),
                shifts=h.read("shifts"),
            )
    except GraphCacheError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:  # truncation, h5io.ChecksumError, ...
        raise GraphCacheError(f"{path}: graph cache is unreadable or damaged ({err})") from None
    _check_graphs(path, graphs, store.frames.natoms)
    return graphs


def _check_graphs(path: Path, graphs: Graphs, natoms: np.ndarray) -> None:
    off, pairs, shifts = graphs.edge_offsets, graphs.pairs, graphs.shifts
    problems = []
    if len(off) != len(natoms) + 1 or off[0] != 0 or np.any(np.diff(off) < 0):
        problems.append("edge offsets are not a monotone index of the frames")
    elif off[-1] != pairs.shape[1] or pairs.shape[0] != 2 or shifts.shape != (pairs.shape[1], 3):
        problems.append(f"{off[-1]} edges indexed, but pairs {pairs.shape} and shifts {shifts.shape}")
    elif pairs.size:
        frame_of_edge = np.repeat(np.arange(len(natoms)), np.diff(off))
        if pairs.min() < 0 or np.any(pairs.max(axis=0) >= natoms[frame_of_edge]):
            problems.append("an edge points at an atom outside its frame")
    if problems:
        raise GraphCacheError(f"{path}: inconsistent graph cache ({'; '.join(problems)})")


def _write_graphs(path: Path, graphs: Graphs, store) -> None:
    import vesin

    meta = {
        "format_version": GRAPH_FORMAT_VERSION,
        "element": store.element,
        "fingerprint": store.fingerprint,
        "content_hash": store.content_hash,
        "cutoff": float(graphs.cutoff),
        "n_frames": len(store),
        "n_edges": int(graphs.edge_offsets[-1]),
        "convention": "D = positions[j] - positions[i] + shifts @ cell; full list sorted by i; "
        "pairs rows are (i, j), frame-local",
        "neighbor_list": f"vesin {getattr(vesin, '__version__', '?')}",
        "tm23data_version": __version__,
        "created": utc_now(),
    }
    with write_atomically(path, meta) as h:
        h.write("edge_offsets", graphs.edge_offsets)
        h.write("pairs", graphs.pairs)
        h.write("shifts", graphs.shifts)
