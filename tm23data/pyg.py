"""TM23 splits as PyTorch Geometric datasets of periodic radius graphs.

    from torch_geometric.loader import DataLoader
    from tm23data.pyg import TM23Dataset

    train = TM23Dataset("Ti", split="cold_to_melt", subset="train", cutoff=5.0, dtype=torch.float32)
    for batch in DataLoader(train, batch_size=32, shuffle=True):
        batch.pos, batch.z, batch.edge_index, batch.cell_shifts, batch.cell   # (N,3) (N,) (2,E) (E,3) (B,3,3)
        batch.energy, batch.forces, batch.stress                              # (B,) (N,3) (B,3,3)

Each ``Data`` holds one frame: ``pos`` (N, 3) Å, ``z`` (N,) atomic numbers, ``cell`` (1, 3, 3) Å (rows
are lattice vectors), ``pbc`` (1, 3), ``edge_index`` (2, E) and integer ``cell_shifts`` (E, 3) of the
full periodic radius graph at ``cutoff``, ``energy`` and ``free_energy`` (1,) eV (NaN if absent), ``forces`` (N, 3) eV/Å, ``stress``
(1, 3, 3) eV/Å³ with ASE's sign (positive = tensile; NaN if the frame has none), ``natoms`` (1,),
``regime`` ('cold', 'warm', 'melt' or 'unknown'), ``frame_id`` and ``element`` (strings). Per-frame
tensors have a leading 1, so a ``Batch`` stacks them to (B, ...).

Edge convention (as ``ase.neighborlist.neighbor_list('ijSD')``): with ``i, j = edge_index``,
``pos[j] - pos[i] + cell_shifts @ cell`` is the vector from atom ``i`` to the image of atom ``j``, shorter
than the cutoff. The list is full (both directions) and includes periodic images of an atom itself when
the cell is shorter than the cutoff. In a ``Batch`` use :func:`edge_vectors` (it picks each edge's cell).
Under PyG's default ``flow="source_to_target"`` a message therefore travels from ``i`` (PyG's source,
``x_j`` in ``message``) to ``j`` (the target that aggregates); the graph being symmetric, every pair
exchanges messages both ways.

Graphs of every frame of an element are computed once with vesin and cached in HDF5 under
``$TM23_HOME/processed/graphs`` keyed by the store's fingerprint, the cutoff and the graph format version
(see :mod:`tm23data.neighbors`); nothing is pickled. PyG's own ``processed/`` machinery (which uses
``torch.save``) is not used: this class implements ``len``/``get`` over in-memory arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from .collate import edge_vectors
from .config import ArchiveSource
from .errors import UsageError
from .neighbors import Graphs, check_cutoff, load_graphs
from .selection import Selection
from .splits import check_subset
from .store import REGIME_NAMES

__all__ = ["TM23Dataset", "edge_vectors", "frame_to_data"]


class TM23Dataset(Dataset):
    """One subset of a TM23 split (one element or several) as ``torch_geometric.data.Data`` graphs.

    Args:
        element: a symbol (``"Ti"``) or a list (``["Cu", "Ti"]``: frames of each element in turn).
        split: a standard split (``full``, ``cold``, ``cold_to_melt``, ``melt_300``, ...; see ``tm23 splits``).
        subset: ``"train"``, ``"test"``, ``"validation"`` (needs ``validation``), or an HF split string
            such as ``"train[:100]"`` or ``"train+test"``.
        cutoff: radius of the graph in Å.
        validation, seed: carve a seeded fraction of train into ``validation`` (as ``load_tm23``).
        dtype: float dtype of positions, cell and labels (default float64, lossless; models usually
            want ``torch.float32``).
        transform: applied to every ``Data`` on access (PyG semantics).
        source: which archive (default: ``TM23_URL``/``TM23_MD5`` or the published one).
        cache_root: folder of the graph cache (default ``$TM23_HOME/processed/graphs``).
        progress: show progress bars while building stores or graphs.
        archive: which archive (a name from ``tm23 archives``, a zip, a folder of member files, URL#md5=HEX);
            see :func:`tm23data.load_tm23`.
    """

    def __init__(
        self,
        element: str | list[str],
        split: str = "full",
        subset: str = "train",
        cutoff: float = 5.0,
        *,
        validation: float | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
        transform=None,
        source: ArchiveSource | None = None,
        cache_root=None,
        progress: bool = True,
        archive=None,
    ):
        _check_dtype(dtype)
        cutoff = check_cutoff(cutoff)
        check_subset(subset, split, validation)  # a typo is reported before any download
        selection = Selection.open(element, split, validation=validation, seed=seed, source=source, progress=progress,
                                   archive=archive)  # fmt: skip
        self._setup(selection, subset, cutoff, dtype=dtype, transform=transform, cache_root=cache_root,
                    progress=progress)  # fmt: skip

    @classmethod
    def from_selection(cls, selection: Selection, subset: str = "train", cutoff: float = 5.0, *,
                       dtype: torch.dtype = torch.float64, transform=None, cache_root=None,
                       progress: bool = True) -> TM23Dataset:  # fmt: skip
        """The dataset of ``subset`` of a :class:`tm23data.selection.Selection` (``selection.to_pyg(...)``)."""
        _check_dtype(dtype)
        self = cls.__new__(cls)
        self._setup(selection, subset, check_cutoff(cutoff), dtype=dtype, transform=transform,
                    cache_root=cache_root, progress=progress)  # fmt: skip
        return self

    def _setup(self, selection: Selection, subset: str, cutoff: float, *, dtype, transform, cache_root, progress):
        self.selection, self.cutoff = selection, cutoff
        self.split, self.subset, self.dtype = selection.split, subset, dtype
        self.elements = list(selection.elements)
        blocks = selection.blocks(subset)
        self.stores = [store for store, _ in blocks]
        self.manifests = list(selection.manifests)
        self.selections = [idx for _, idx in blocks]
        self.graphs = [load_graphs(store, cutoff, root=cache_root, progress=progress) for store in self.stores]
        sizes = np.array([len(s) for s in self.selections], dtype=np.int64)
        self._block_start = np.concatenate([[0], np.cumsum(sizes)])
        super().__init__(root=None, transform=transform, log=False)

    # --- PyG Dataset interface ---------------------------------------------------------------------

    def len(self) -> int:
        return int(self._block_start[-1])

    def get(self, idx: int) -> Data:
        if not 0 <= idx < self.len():
            raise IndexError(f"frame {idx} is out of range for a dataset of {self.len()} frames")
        block = int(np.searchsorted(self._block_start, idx, side="right") - 1)
        frame = int(self.selections[block][idx - self._block_start[block]])
        return frame_to_data(self.stores[block], frame, self.graphs[block], self.dtype)

    # --- conveniences ------------------------------------------------------------------------------

    def _runs(self) -> list[tuple[int, np.ndarray]]:
        """(element block, store frame indices) in dataset order, as runs of one block each; follows PyG's
        index view, so slices (``ds[2:5]``), ``shuffle()`` and ``index_select`` are honoured."""
        idx = np.asarray(self.indices(), dtype=np.int64)
        block = np.searchsorted(self._block_start, idx, side="right") - 1
        cuts = np.flatnonzero(np.diff(block)) + 1
        return [
            (int(block[run[0]]), self.selections[int(block[run[0]])][idx[run] - self._block_start[block[run[0]]]])
            for run in np.split(np.arange(len(idx)), cuts)
            if len(run)
        ] or [(0, self.selections[0][:0])]

    @property
    def frame_ids(self) -> list[str]:
        """Frame ids in dataset order (e.g. ``'Ti-cold-0123'``)."""
        return [str(fid) for block, sel in self._runs() for fid in self.stores[block].frame_id[sel]]

    def frames(self):
        """The dataset's frames (all elements, dataset order) as one :class:`tm23data.frames.Frames`."""
        from .frames import Frames

        return Frames.concat([self.stores[block].frames.take(sel) for block, sel in self._runs()])

    def evaluator(self):
        """A :class:`tm23data.metrics.Evaluator` over this dataset's labels (stress only if every frame has it).

        Predictions must follow dataset order (``DataLoader(..., shuffle=False)``; for a ``shuffle()``d or
        sliced view, that view's order).
        """
        from .metrics import Evaluator

        regimes = np.concatenate([self.stores[block].regime_names(sel) for block, sel in self._runs()])
        name = f"{'+'.join(self.elements)}/{self.split}/{self.subset}"
        return Evaluator.from_frames(self.frames(), regimes, name=name)

    def __repr__(self) -> str:
        return (f"TM23Dataset({'+'.join(self.elements)}, split={self.split!r}, subset={self.subset!r}, "
                f"cutoff={self.cutoff}, frames={len(self)})")  # fmt: skip


def _check_dtype(dtype) -> None:
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise UsageError(f"dtype must be a floating torch dtype such as torch.float32, got {dtype!r}")


def frame_to_data(store, frame: int, graphs: Graphs, dtype: torch.dtype = torch.float64) -> Data:
    """Frame ``frame`` of ``store`` with its graph from ``graphs`` as a ``Data`` (see the module docstring)."""
    fr = store.frames
    a, b = int(fr.offsets[frame]), int(fr.offsets[frame + 1])
    edge_index, shifts = graphs.edges(frame)
    # torch.tensor copies: a transform that edits a Data in place must never reach the store's arrays.
    return Data(
        pos=torch.tensor(fr.positions[a:b], dtype=dtype),
        z=torch.tensor(fr.numbers[a:b], dtype=torch.int64),
        cell=torch.tensor(fr.cell[frame], dtype=dtype).unsqueeze(0),
        pbc=torch.tensor(fr.pbc[frame]).unsqueeze(0),
        edge_index=torch.from_numpy(edge_index),
        cell_shifts=torch.from_numpy(shifts),
        energy=torch.tensor([fr.energy[frame]], dtype=dtype),
        free_energy=torch.tensor([fr.free_energy[frame]], dtype=dtype),
        forces=torch.tensor(fr.forces[a:b], dtype=dtype),
        stress=torch.tensor(fr.stress[frame], dtype=dtype).unsqueeze(0),
        natoms=torch.tensor([b - a], dtype=torch.int64),
        regime=str(REGIME_NAMES[store.regime[frame]]),
        frame_id=str(store.frame_id[frame]),
        element=store.element,
    )
