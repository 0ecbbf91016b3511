"""Periodic radius graphs (vesin) against ASE, the PyG dataset, its batching and its on-disk cache."""

from __future__ import annotations

import json
import logging
import pickle

import h5py
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list
from support import N_TEST, N_TRAIN
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from tm23data import load_tm23, neighbors
from tm23data.neighbors import NeighborList, cache_path, radius_graph_pbc
from tm23data.pyg import TM23Dataset, edge_vectors
from tm23data.splits import SplitError
from tm23data.store import load_store


def _rattled(atoms: Atoms, seed: int, amplitude: float = 0.15) -> Atoms:
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(0.0, amplitude, atoms.positions.shape)
    return atoms


def _sheared(atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.07, -0.04], [0.02, 0.97, 0.05], [0.0, -0.03, 1.04]]),
                   scale_atoms=True)  # fmt: skip
    return atoms


def _unwrapped(atoms: Atoms) -> Atoms:
    """Some atoms moved by whole lattice vectors: the same crystal, positions far outside the cell."""
    atoms = atoms.copy()
    atoms.positions[::3] += 2 * atoms.cell[0] - 3 * atoms.cell[2] + atoms.cell[1]
    return atoms


def _slab(atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    atoms.pbc = [True, True, False]
    return atoms


STRUCTURES = {
    # Cells shorter than twice the cutoff: images of the same atom are neighbours several times over.
    "fcc-primitive": (bulk("Cu", "fcc", a=3.61), 5.0),
    "bcc-primitive": (bulk("W", "bcc", a=3.16), 5.0),
    "hcp-primitive": (bulk("Ti", "hcp", a=2.95, c=4.69), 5.0),
    "fcc-cubic-2x2x2-rattled": (_rattled(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), 0), 5.0),
    "bcc-cubic-3x3x3-rattled": (_rattled(bulk("W", "bcc", a=3.16, cubic=True).repeat(3), 1), 5.0),
    "hcp-3x3x2-sheared": (_sheared(_rattled(bulk("Ti", "hcp", a=2.95, c=4.69).repeat((3, 3, 2)), 2)), 5.0),
    "bcc-unwrapped": (_unwrapped(_rattled(bulk("W", "bcc", a=3.16, cubic=True).repeat(2), 3)), 4.0),
    "fcc-slab-mixed-pbc": (_slab(_rattled(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), 4)), 4.5),
    "fcc-large-cutoff": (bulk("Cu", "fcc", a=3.61, cubic=True), 7.5),
}


def _ase_edges(atoms: Atoms, cutoff: float) -> dict:
    i, j, S, D = neighbor_list("ijSD", atoms, cutoff)
    return {(a, b, tuple(s)): d for a, b, s, d in zip(i.tolist(), j.tolist(), S.tolist(), D)}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_edges_equal_ase_neighbor_list(name):
    atoms, cutoff = STRUCTURES[name]
    edge_index, shifts = radius_graph_pbc(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    assert edge_index.dtype == shifts.dtype == np.int64
    assert edge_index.shape[0] == 2 and shifts.shape == (edge_index.shape[1], 3)
    ours = {(a, b, tuple(s)) for a, b, s in zip(edge_index[0].tolist(), edge_index[1].tolist(), shifts.tolist())}
    reference = _ase_edges(atoms, cutoff)
    assert len(ours) == edge_index.shape[1], "duplicate edges"
    assert ours == set(reference)
    # The documented convention gives ASE's distance vectors, edge by edge.
    vectors = atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shifts @ atoms.cell.array
    expected = np.array([reference[(a, b, tuple(s))] for a, b, s in
                         zip(edge_index[0].tolist(), edge_index[1].tolist(), shifts.tolist())])  # fmt: skip
    np.testing.assert_allclose(vectors, expected, atol=1e-12)
    assert np.all(np.diff(edge_index[0]) >= 0), "edges are sorted by i"


def test_small_cells_have_self_images_and_no_self_loop():
    atoms, cutoff = STRUCTURES["bcc-primitive"]
    edge_index, shifts = radius_graph_pbc(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    assert np.all(edge_index == 0)  # one atom: every neighbour is an image of itself
    assert not np.any(np.all(shifts == 0, axis=1))
    assert len(edge_index[0]) == 8 + 6 + 12  # bcc shells within 5 Å at a = 3.16 Å: a√3/2, a, a√2


def test_graph_input_errors():
    with pytest.raises(ValueError, match="positive, finite"):
        NeighborList(-1.0)
    with pytest.raises(ValueError, match="cutoff must be a number"):
        NeighborList("five")
    with pytest.raises(ValueError, match="degenerate"):
        radius_graph_pbc(np.zeros((2, 3)), np.diag([3.0, 3.0, 0.0]), True, 5.0)
    with pytest.raises(ValueError, match=r"positions must have shape \(N, 3\)"):
        radius_graph_pbc(np.zeros((4, 2)), np.eye(3) * 3, True, 5.0)
    edge_index, shifts = radius_graph_pbc(np.zeros((0, 3)), np.eye(3) * 3, True, 5.0)
    assert edge_index.shape == (2, 0) and shifts.shape == (0, 3)


# --------------------------------------------------------------------------------------------------
# The dataset


@pytest.mark.parametrize("element", ["Cu", "Ti", "W"])
def test_dataset_graphs_equal_ase_on_store_frames(cached, element):
    ds = TM23Dataset(element, "full", "test", cutoff=5.0, progress=False)
    atoms_list = load_tm23(element, "full", subset="test", format="ase", progress=False)
    assert len(ds) == len(atoms_list) == 3 * N_TEST
    for k in (0, len(ds) // 2, len(ds) - 1):
        data, atoms = ds[k], atoms_list[k]
        assert data.frame_id == atoms.info["frame_id"]
        ours = {(a, b, tuple(s)) for a, b, s in
                zip(data.edge_index[0].tolist(), data.edge_index[1].tolist(), data.cell_shifts.tolist())}  # fmt: skip
        assert ours == set(_ase_edges(atoms, 5.0))


def test_data_fields_units_and_dtypes(cached):
    ds = TM23Dataset("Ti", "cold_to_melt", "test", cutoff=4.5, progress=False)
    rows = load_tm23("Ti", "cold_to_melt", subset="test", format="numpy", progress=False)
    assert len(ds) == len(rows) == N_TRAIN + N_TEST
    data, row = ds[1], rows[1]
    assert isinstance(data, Data)
    assert data.pos.dtype == data.forces.dtype == data.energy.dtype == data.stress.dtype == torch.float64
    assert data.z.dtype == data.edge_index.dtype == data.cell_shifts.dtype == data.natoms.dtype == torch.int64
    n = int(row["natoms"])
    assert data.num_nodes == n and data.pos.shape == (n, 3) and data.forces.shape == (n, 3)
    assert data.cell.shape == data.stress.shape == (1, 3, 3) and data.pbc.shape == (1, 3)
    assert data.energy.shape == data.natoms.shape == (1,)
    assert np.array_equal(data.pos.numpy(), row["positions"])
    assert np.array_equal(data.forces.numpy(), row["forces"])
    assert np.array_equal(data.stress[0].numpy(), row["stress"])
    assert np.array_equal(data.cell[0].numpy(), row["cell"])
    assert data.energy.item() == row["energy"] and data.natoms.item() == n
    assert data.z.tolist() == [22] * n and data.pbc.tolist() == [[True, True, True]]
    assert (data.frame_id, data.regime, data.element) == (row["frame_id"], "melt", "Ti")
    assert float(edge_vectors(data.pos, data.edge_index, data.cell_shifts, data.cell).norm(dim=1).max()) < 4.5
    single = TM23Dataset("Ti", "cold_to_melt", "test", cutoff=4.5, dtype=torch.float32, progress=False)[1]
    assert single.pos.dtype == single.energy.dtype == single.stress.dtype == single.cell.dtype == torch.float32
    assert torch.equal(single.edge_index, data.edge_index)


def test_dataloader_batches_concatenate_correctly(cached):
    ds = TM23Dataset(["Cu", "W"], "cold", "train", cutoff=5.0, progress=False)
    frames = [ds[k] for k in (0, N_TRAIN + 2, 3, N_TRAIN + 5)]
    batch = Batch.from_data_list(frames)
    loader_batch = next(iter(DataLoader(torch.utils.data.Subset(ds, [0, N_TRAIN + 2, 3, N_TRAIN + 5]), batch_size=4)))
    for b in (batch, loader_batch):
        assert b.num_graphs == 4 and b.cell.shape == b.stress.shape == (4, 3, 3) and b.energy.shape == (4,)
        assert b.natoms.tolist() == [31, 53, 31, 53] and b.num_nodes == 31 + 53 + 31 + 53
        assert b.element == ["Cu", "W", "Cu", "W"] and b.frame_id == [f.frame_id for f in frames]
        vectors = edge_vectors(b.pos, b.edge_index, b.cell_shifts, b.cell, b.batch)
        # Per-frame edge vectors (each with its own cell) are what the batch gives, in order.
        expected = torch.cat([edge_vectors(f.pos, f.edge_index, f.cell_shifts, f.cell) for f in frames])
        assert torch.allclose(vectors, expected, atol=1e-12)
        assert torch.equal(b.batch[b.edge_index[0]], b.batch[b.edge_index[1]]), "edges stay inside their frame"
    with pytest.raises(ValueError, match="pass batch"):
        edge_vectors(batch.pos, batch.edge_index, batch.cell_shifts, batch.cell)


def test_loader_iterates_a_whole_subset_with_shuffle(cached):
    ds = TM23Dataset("W", "full", "train", cutoff=5.0, progress=False)
    seen = []
    for b in DataLoader(ds, batch_size=5, shuffle=True):
        seen += b.frame_id
    assert sorted(seen) == sorted(ds.frame_ids) and len(seen) == 3 * N_TRAIN


def test_multi_element_dataset_matches_load_tm23_order(cached):
    ds = TM23Dataset(["Cu", "Ti"], "melt", "test", cutoff=5.0, progress=False)
    hf = load_tm23(["Cu", "Ti"], "melt", subset="test", progress=False)
    assert len(ds) == 2 * N_TEST and ds.frame_ids == list(hf["frame_id"])
    assert [ds[k].element for k in range(len(ds))] == list(hf["element"])
    assert ds[N_TEST].z[0].item() == 22 and ds[0].z[0].item() == 29
    ev = ds.evaluator()
    exact = ev.eval({"energy": np.array(list(hf["energy"])), "forces": [np.array(f) for f in hf["forces"]],
                     "stress": np.array(hf["stress"])})  # fmt: skip
    assert exact["forces"]["mae"] == exact["energy_per_atom"]["mae"] == exact["stress"]["mae"] == 0.0
    assert repr(ds) == "TM23Dataset(Cu+Ti, split='melt', subset='test', cutoff=5.0, frames=6)"


def test_shuffled_and_sliced_views_keep_ids_frames_and_evaluator_in_their_order(cached):
    """PyG's index views (``shuffle()``, slices, index_select) reorder ``get``; frame ids, frames and the
    evaluator must follow the same order, or metrics would pair predictions with the wrong labels."""
    ds = TM23Dataset(["Cu", "Ti"], "full", "test", cutoff=5.0, progress=False)
    torch.manual_seed(3)
    for view in (ds.shuffle(), ds[2:5], ds.index_select([7, 0, N_TEST * 3 + 1, 2])):
        items = [view[k] for k in range(len(view))]
        assert view.frame_ids == [d.frame_id for d in items]
        frames = view.frames()
        assert np.array_equal(frames.energy, [d.energy.item() for d in items])
        labels = {"energy": np.array([d.energy.item() for d in items]), "forces": [d.forces.numpy() for d in items],
                  "stress": np.array([d.stress[0].numpy() for d in items])}  # fmt: skip
        exact = view.evaluator().eval(labels)
        assert exact["forces"]["mae"] == exact["energy_per_atom"]["mae"] == exact["stress"]["mae"] == 0.0
    assert ds.shuffle().frame_ids != ds.frame_ids or len(ds) < 2
    assert sorted(ds.shuffle().frame_ids) == sorted(ds.frame_ids)


def test_subsets_validation_slicing_and_errors(cached):
    assert len(TM23Dataset("Cu", "full", "train[:5]", progress=False)) == 5
    assert len(TM23Dataset("Cu", "full", "train+test", progress=False)) == 3 * (N_TRAIN + N_TEST)
    val = TM23Dataset("Cu", "full", "validation", validation=0.1, progress=False)
    carved = load_tm23("Cu", "full", validation=0.1, progress=False)["validation"]
    assert len(val) == 3 and val.frame_ids == list(carved["frame_id"])
    ds = TM23Dataset("Cu", "cold", "train", progress=False)
    sub = ds[2:5]
    assert len(sub) == 3 and sub[0].frame_id == ds[2].frame_id and "frames=3" in repr(sub)
    with pytest.raises(IndexError):
        ds.get(len(ds))
    with pytest.raises(ValueError, match="cutoff"):
        TM23Dataset("Cu", "cold", "train", cutoff=0.0, progress=False)
    with pytest.raises(ValueError, match="floating torch dtype"):
        TM23Dataset("Cu", "cold", "train", dtype=torch.int32, progress=False)
    with pytest.raises(ValueError, match="validation"):
        TM23Dataset("Cu", "cold", "validation", progress=False)


def test_transform_editing_data_never_touches_the_store(cached):
    def shake(data):
        data.pos += 1.0
        data.forces.zero_()
        return data

    ds = TM23Dataset("Cu", "cold", "train", transform=shake, progress=False)
    first = ds[0].pos.clone()
    assert torch.equal(ds[0].pos, first), "in-place edits leaked into the stored arrays"
    store = load_store("Cu", progress=False)
    assert np.abs(store.frames.forces).sum() > 0


# --------------------------------------------------------------------------------------------------
# The cache


def test_cache_is_written_once_keyed_and_loaded_without_pickle(cached, tm23_home):
    ds = TM23Dataset("W", "cold", "train", cutoff=5.0, progress=False)
    store = load_store("W", progress=False)
    path = cache_path(store, 5.0)
    assert path.is_file() and path.parent == tm23_home / "processed" / "graphs"
    assert store.fingerprint[:20] in path.name and "rc5p0" in path.name
    with h5py.File(path) as h5:  # numeric arrays only, each with a checksum
        assert {k: h5[k].dtype.kind for k in h5} == {"edge_offsets": "i", "pairs": "i", "shifts": "i"}
        assert set(json.loads(h5.attrs["xxh3_64"])) == {"edge_offsets", "pairs", "shifts"}
        meta = json.loads(h5.attrs["tm23data"])
        assert meta["fingerprint"] == store.fingerprint and meta["cutoff"] == 5.0

    def forbidden(*args, **kwargs):
        raise AssertionError("the graph cache must not be rebuilt or unpickled")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(neighbors, "build_graphs", forbidden)
        patch.setattr(pickle, "load", forbidden)
        patch.setattr(pickle, "loads", forbidden)
        patch.setattr(torch, "load", forbidden)
        again = TM23Dataset("W", "full", "test", cutoff=5.0, progress=False)  # another split: same cache
        first = again[0]
        assert torch.equal(ds[0].cell_shifts, TM23Dataset("W", "cold", "train", progress=False)[0].cell_shifts)
    assert torch.equal(first.edge_index, TM23Dataset("W", "full", "test", progress=False)[0].edge_index)
    TM23Dataset("W", "cold", "train", cutoff=4.0, progress=False)  # another cutoff: another file
    assert cache_path(store, 4.0).is_file() and cache_path(store, 4.0) != path


@pytest.mark.parametrize("damage", ["bytes", "truncate", "stale"])
def test_damaged_or_stale_cache_is_rebuilt(cached, damage, caplog):
    reference = TM23Dataset("Ti", "cold", "train", cutoff=5.0, progress=False)[4]
    path = cache_path(load_store("Ti", progress=False), 5.0)
    if damage == "bytes":
        with h5py.File(path) as h5:
            offset = h5["pairs"].id.get_offset()
        raw = bytearray(path.read_bytes())
        raw[offset + 10 : offset + 20] = bytes(b ^ 0xFF for b in raw[offset + 10 : offset + 20])
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        with h5py.File(path, "r+") as h5:
            h5.attrs["tm23data"] = json.dumps({**json.loads(h5.attrs["tm23data"]), "fingerprint": "0" * 64})
    with caplog.at_level(logging.WARNING, logger="tm23data"):
        rebuilt = TM23Dataset("Ti", "cold", "train", cutoff=5.0, progress=False)[4]
    assert "rebuilding" in caplog.text and str(path) in caplog.text
    assert torch.equal(rebuilt.edge_index, reference.edge_index)
    assert torch.equal(rebuilt.cell_shifts, reference.cell_shifts)
    assert not list(path.parent.glob(".*.tmp*")), "no temporary file is left behind"


def test_subset_typo_is_reported_before_any_download(tm23_home, monkeypatch):
    monkeypatch.setenv("TM23_OFFLINE", "1")
    with pytest.raises(SplitError, match="no subset 'tran'. Did you mean 'train'?"):
        TM23Dataset("Cu", "full", "tran")


def test_free_energy_is_a_field_of_every_view(tm23_home, tmp_path, monkeypatch):
    """The store keeps the files' free_energy; the HF column, the torch batch and PyG's Data carry it."""
    import dataclasses

    from tm23data.archive import write_archive
    from tm23data.fetch import import_archive
    from tm23data.generation.synthetic import synthetic_members

    members = synthetic_members("Cu", 3, 2)
    members = {k: dataclasses.replace(f, free_energy=f.energy - 0.0125 * f.natoms) for k, f in members.items()}
    path = tmp_path / "free.zip"
    md5 = write_archive(path, {"Cu": members})
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(path)
    store = load_store("Cu", progress=False)
    test = load_tm23("Cu", "full", subset="test", format="numpy", progress=False)[:]
    assert np.array_equal(test["free_energy"], test["energy"] - 0.0125 * test["natoms"])
    graphs = TM23Dataset("Cu", "full", "test", progress=False)
    for data in graphs:
        i = int(np.flatnonzero(store.frame_id == data.frame_id)[0])
        assert data.free_energy.dtype == torch.float64 and float(data.free_energy) == store.frames.free_energy[i]
    assert Batch.from_data_list(list(graphs)).free_energy.shape == (len(graphs),)
