"""Plain-torch batching of load_tm23 rows, multi-element loads, and autograd forces/stress on the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.lj import LennardJones
from support import N_TEST, N_TRAIN
from torch.utils.data import DataLoader

from tm23data import load_tm23
from tm23data.collate import ArrowFrames, FrameCollator, collate_frames, edge_vectors, torch_loader
from tm23data.store import load_store

NATOMS = {"Cu": 31, "Ti": 35, "W": 53}


def test_rows_and_slices_collate_to_the_same_batch(cached):
    ds = load_tm23(["Cu", "Ti"], "cold", subset="train", format="torch", progress=False)
    picks = [0, N_TRAIN + 1, 4, N_TRAIN + 7]  # ragged: 31- and 35-atom frames interleaved
    from_rows = collate_frames([ds[i] for i in picks])
    from_slice = collate_frames(ds[picks])
    from_arrow = collate_frames(ArrowFrames(ds)[picks])  # what torch_loader fetches
    from_same_size = collate_frames(ds[[0, 1]])  # HF stacks equal-sized frames into (B, N, 3) tensors
    for b in (from_rows, from_slice, from_arrow):
        assert b["natoms"].tolist() == [31, 35, 31, 35]
        assert b["positions"].shape == b["forces"].shape == (132, 3) and b["positions"].dtype == torch.float64
        assert b["batch"].tolist() == [0] * 31 + [1] * 35 + [2] * 31 + [3] * 35
        assert b["ptr"].tolist() == [0, 31, 66, 97, 132]
        assert b["energy"].shape == (4,) and b["stress"].shape == b["cell"].shape == (4, 3, 3)
        assert b["pbc"].dtype == torch.bool and b["atomic_numbers"].dtype == torch.int64
        assert b["element"] == ["Cu", "Ti", "Cu", "Ti"] and b["regime"] == ["cold"] * 4
        for k, i in enumerate(picks):
            row = ds[i]
            atoms = slice(int(b["ptr"][k]), int(b["ptr"][k + 1]))
            assert torch.equal(b["positions"][atoms], row["positions"])
            assert torch.equal(b["forces"][atoms], row["forces"])
            assert torch.equal(b["stress"][k], row["stress"]) and b["energy"][k] == row["energy"]
            assert b["frame_id"][k] == row["frame_id"]
    for other in (from_slice, from_arrow):
        assert set(other) == set(from_rows)
        for key, value in from_rows.items():
            if isinstance(value, torch.Tensor):
                same = torch.equal(value, other[key]) or (value.is_floating_point() and torch.allclose(
                    value, other[key], rtol=0, atol=0, equal_nan=True))  # free_energy is NaN where absent
                assert same and value.dtype == other[key].dtype, key
            else:
                assert value == other[key], key
    assert from_same_size["positions"].shape == (62, 3) and from_same_size["batch"].tolist() == [0] * 31 + [1] * 31


def test_torch_dataloader_over_a_split(cached):
    ds = load_tm23("W", "full", subset="train", format="torch", progress=False)
    store = load_store("W", progress=False)
    by_id = dict(zip(store.frame_id, store.frames.energy))
    rows = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=collate_frames)
    slices = torch_loader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    for loader in (rows, slices):
        ids, sizes = [], []
        for b in loader:
            ids += b["frame_id"]
            sizes.append(len(b["natoms"]))
            assert [by_id[i] for i in b["frame_id"]] == b["energy"].tolist()
            assert len(b["positions"]) == int(b["natoms"].sum()) == len(b["batch"])
        assert sorted(ids) == sorted(ds["frame_id"]) and sizes == [4] * 6 + [3]
    assert [len(b["natoms"]) for b in torch_loader(ds, batch_size=4, drop_last=True)] == [4] * 6
    # A selected / shuffled HF dataset (an indices mapping over the table) is read in its own order.
    picked = ds.shuffle(seed=1).select(range(5))
    assert [b["frame_id"] for b in torch_loader(picked, batch_size=5)] == [list(picked["frame_id"])]
    assert torch.equal(next(iter(torch_loader(picked, batch_size=5)))["forces"],
                       torch.cat([picked[i]["forces"] for i in range(5)]))  # fmt: skip


def test_numpy_and_python_rows_and_float32(cached):
    rows_np = load_tm23("Cu", "melt", subset="test", format="numpy", progress=False)
    rows_py = load_tm23("Cu", "melt", subset="test", progress=False)
    a = collate_frames([rows_np[i] for i in range(N_TEST)])
    b = collate_frames([rows_py[i] for i in range(N_TEST)])
    assert torch.equal(a["positions"], b["positions"]) and torch.equal(a["stress"], b["stress"])
    c = FrameCollator(dtype=torch.float32)([rows_np[i] for i in range(N_TEST)])
    assert c["positions"].dtype == c["energy"].dtype == c["stress"].dtype == c["cell"].dtype == torch.float32
    assert c["atomic_numbers"].dtype == c["batch"].dtype == torch.int64


def test_collate_errors_say_what_to_do(cached):
    with pytest.raises(ValueError, match="empty batch"):
        collate_frames([])
    with pytest.raises(KeyError, match="positions"):
        collate_frames([{"energy": 1.0, "cell": np.eye(3), "pbc": [True] * 3, "atomic_numbers": [1]}])
    with pytest.raises(TypeError, match="format='torch'"):
        collate_frames(torch.zeros(3))
    row = dict(load_tm23("Cu", "cold", subset="test", format="torch", progress=False)[0])
    row["natoms"] = torch.tensor(30)
    with pytest.raises(ValueError, match="natoms"):
        collate_frames([row])
    with pytest.raises(ValueError, match="cutoff"):
        FrameCollator(cutoff=float("nan"))
    with pytest.raises(TypeError, match="one row"):
        collate_frames(load_tm23("Cu", "cold", subset="test", progress=False)[0])


def test_ragged_numpy_column_slice_collates_like_rows(cached):
    """HF's numpy format gives frames of different sizes as object arrays; they batch like a list of rows."""
    ds = load_tm23(["Cu", "Ti"], "cold", subset="train", format="numpy", progress=False)
    picks = [0, N_TRAIN]  # a Cu frame (31 atoms) and a Ti frame (35 atoms)
    sliced = collate_frames(ds[picks])
    rows = collate_frames([ds[i] for i in picks])
    assert sliced["natoms"].tolist() == [NATOMS["Cu"], NATOMS["Ti"]]
    for key in ("positions", "forces", "atomic_numbers", "batch", "energy", "stress", "cell"):
        assert torch.equal(sliced[key], rows[key]), key


def test_graph_collate_gives_ase_lennard_jones_forces_and_stress(cached):
    """A Lennard-Jones energy on the collated graph, differentiated by autograd, reproduces ASE's forces
    and stress frame by frame: this pins the edge/shift convention, batching of cells and the stress sign."""
    sigma, epsilon, cutoff = 2.3, 0.3, 5.0
    atoms = load_tm23(["Cu", "Ti", "W"], "warm", subset="test[:1]", format="ase", progress=False)
    rows = load_tm23(["Cu", "Ti", "W"], "warm", subset="test[:1]", format="torch", progress=False)
    b = FrameCollator(cutoff=cutoff)([rows[i] for i in range(3)])
    assert b["edge_index"].shape[0] == 2 and b["cell_shifts"].shape == (b["edge_index"].shape[1], 3)
    pos = b["positions"].clone().requires_grad_(True)
    strain = torch.zeros((3, 3, 3), dtype=torch.float64, requires_grad=True)
    r = edge_vectors(pos, b["edge_index"], b["cell_shifts"], b["cell"], b["batch"], strain).norm(dim=1)
    assert float(r.detach().max()) < cutoff
    shift = 4 * epsilon * ((sigma / cutoff) ** 12 - (sigma / cutoff) ** 6)
    pair = 0.5 * (4 * epsilon * ((sigma / r) ** 12 - (sigma / r) ** 6) - shift)
    energy = torch.zeros(3, dtype=torch.float64).index_add(0, b["batch"][b["edge_index"][0]], pair)
    d_pos, d_strain = torch.autograd.grad(energy.sum(), [pos, strain])
    volume = torch.linalg.det(b["cell"]).abs()
    for k, a in enumerate(atoms):
        a.calc = LennardJones(sigma=sigma, epsilon=epsilon, rc=cutoff, smooth=False)
        atoms_k = slice(int(b["ptr"][k]), int(b["ptr"][k + 1]))
        assert energy[k].item() == pytest.approx(a.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(-d_pos[atoms_k].numpy(), a.get_forces(), atol=1e-10)
        np.testing.assert_allclose((d_strain[k] / volume[k]).numpy(), a.get_stress(voigt=False), atol=1e-12)


def test_multi_element_load_concatenates_with_element_column(cached):
    both = load_tm23(["Ti", "Cu"], "cold_to_warm", validation=0.2, seed=3, progress=False)
    ti = load_tm23("Ti", "cold_to_warm", validation=0.2, seed=3, progress=False)
    cu = load_tm23("Cu", "cold_to_warm", validation=0.2, seed=3, progress=False)
    assert list(both) == ["train", "validation", "test"]
    for name in both:
        assert both[name].num_rows == ti[name].num_rows + cu[name].num_rows
        assert list(both[name]["element"]) == ["Ti"] * ti[name].num_rows + ["Cu"] * cu[name].num_rows
        assert list(both[name]["frame_id"]) == list(ti[name]["frame_id"]) + list(cu[name]["frame_id"])
        assert list(both[name]["energy"]) == list(ti[name]["energy"]) + list(cu[name]["energy"])
        assert list(both[name]["natoms"]) == [NATOMS["Ti"]] * ti[name].num_rows + [NATOMS["Cu"]] * cu[name].num_rows
    assert both["test"].features == ti["test"].features
    assert both["train"]._fingerprint not in (ti["train"]._fingerprint, cu["train"]._fingerprint)
    # Subset strings apply per element, then concatenate.
    head = load_tm23(["Ti", "Cu"], "cold_to_warm", subset="test[:2]", progress=False)
    assert list(head["frame_id"]) == list(ti["test"]["frame_id"])[:2] + list(cu["test"]["frame_id"])[:2]
    # torch format: ragged rows of both elements batch with the plain collate.
    rows = load_tm23(["Ti", "Cu"], "cold_to_warm", subset="test", format="torch", progress=False)
    batch = next(iter(torch_loader(rows, batch_size=len(rows))))
    assert batch["positions"].shape == ((N_TRAIN + N_TEST) * (NATOMS["Ti"] + NATOMS["Cu"]), 3)
    assert set(batch["atomic_numbers"].tolist()) == {22, 29}
    atoms = load_tm23(["Ti", "Cu"], "cold_to_warm", subset="test", format="ase", progress=False)
    assert [a.info["element"] for a in atoms] == batch["element"]
