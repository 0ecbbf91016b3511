"""FLARE baseline: a tiny sparse GP trains and predicts; energy, forces and stress are consistent with finite
differences of its own energy (sign and Voigt order of stress included); uncertainty-based sparse selection,
hyperparameter optimisation, save/load, the result file and the grid search.

Needs mir-flare (built by scripts/install_flare.sh, which CI runs); skipped with a reason otherwise."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.flare
pytest.importorskip("flare.bffs.sgp._C_flare",
                    reason="mir-flare is not installed: run `bash scripts/install_flare.sh` (or `tm23 install-flare`)")  # fmt: skip

from tm23data.baselines import results  # noqa: E402
from tm23data.baselines.flare import (  # noqa: E402
    FlareSettings,
    FlareSGP,
    ase_stress_to_flare,
    flare_stress_to_ase,
    optimisation_schedule,
    quiet_stdout,
    train_flare,
)
from tm23data.frames import Frames  # noqa: E402
from tm23data.generation.synthetic import synthetic_frames  # noqa: E402
from tm23data.splits import resolve_split  # noqa: E402
from tm23data.store import load_store  # noqa: E402

SMALL = FlareSettings(r_cut=4.5, n_max=5, l_max=2, optimize_start=4)


@pytest.fixture(scope="module")
def cu_frames():
    return synthetic_frames("Cu", "warm", 14, seed=0)  # EMT labels: energy, forces, stress consistent


@pytest.fixture(scope="module")
def model(cu_frames):
    return FlareSGP(SMALL, [29]).fit(cu_frames.take(range(10)))


def _copy(frames: Frames) -> Frames:
    return Frames(**{k: getattr(frames, k).copy() for k in Frames.__dataclass_fields__})


def _sheared(frames: Frames, i: int) -> Frames:
    """Frame ``i`` in a sheared cell, so that every stress component (off-diagonal too) is different."""
    one = _copy(frames.take([i]))
    strain = np.array([[1.0, 0.03, -0.02], [0.01, 0.98, 0.04], [-0.03, 0.02, 1.02]])
    one.cell[0] = one.cell[0] @ strain
    one.positions[:] = one.positions @ strain
    return one


def test_stress_conversion_is_sign_flip_in_flare_voigt_order():
    ase = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]])
    assert ase_stress_to_flare(ase).tolist() == [-1.0, -6.0, -5.0, -2.0, -4.0, -3.0]  # xx xy xz yy yz zz
    np.testing.assert_array_equal(flare_stress_to_ase(ase_stress_to_flare(ase)), ase)


def test_predictions_are_derivatives_of_the_predicted_energy(model, cu_frames):
    one = _sheared(cu_frames, 12)
    pred = model.predict(one)

    def energy(frames):
        return model.predict(frames)["energy"][0]

    h = 1e-5
    for atom in (0, 7):
        for c in range(3):
            plus, minus = _copy(one), _copy(one)
            plus.positions[atom, c] += h
            minus.positions[atom, c] -= h
            fd = -(energy(plus) - energy(minus)) / (2 * h)
            assert pred["forces"][atom, c] == pytest.approx(fd, rel=1e-4, abs=1e-5)
    # ASE stress = (1/V) dE/d(strain): symmetric strain applied to cell and positions
    volume = abs(np.linalg.det(one.cell[0]))
    fd_stress = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] += h / 2
            eps[b, a] += h / 2
            strained = []
            for sign in (1, -1):
                s = _copy(one)
                s.cell[0] = s.cell[0] @ (np.eye(3) + sign * eps)
                s.positions[:] = s.positions @ (np.eye(3) + sign * eps)
                strained.append(energy(s))
            fd_stress[a, b] = (strained[0] - strained[1]) / (2 * h) / volume
    assert np.abs(fd_stress).min() > 1e-4  # every component is non-trivial, so order errors would show
    np.testing.assert_allclose(pred["stress"][0], fd_stress, rtol=1e-5, atol=1e-8)


def test_tiny_sgp_learns_the_emt_labels(model, cu_frames):
    from tm23data.metrics import Evaluator

    test = cu_frames.take(range(10, 14))
    m = Evaluator(test.natoms, test.energy, test.forces, test.stress).eval(model.predict(test))
    # a 10-frame GP already beats a constant model (100%) by far on all three labels
    assert m["forces"]["percent"] < 25
    assert m["energy_per_atom"]["percent"] < 10
    assert m["stress"]["percent"] < 40
    assert model.n_sparse == 10  # one environment per frame (the paper's sparse set)
    assert len(model.sparse_atoms) == 10 and all(len(a) == 1 for a in model.sparse_atoms)


def test_initial_hyperparameters_follow_the_paper(cu_frames):
    m = FlareSGP(SMALL, [29])
    m.reference_natoms = 31
    h = m.initial_hyperparameters(cu_frames)
    assert h[0] == 2.0 and h[3] == 0.005
    assert h[1] == pytest.approx(0.001 * 31)  # 1 meV/atom on the total energy of 31 atoms
    assert h[2] == pytest.approx(0.05 * np.abs(cu_frames.forces).mean())  # scaled with the force magnitude
    fixed = FlareSGP(FlareSettings(sigma_f=0.05), [29])
    fixed.reference_natoms = 31
    assert fixed.initial_hyperparameters(cu_frames)[2] == 0.05


def test_sparse_environments_are_the_most_uncertain(cu_frames):
    """Each new frame contributes the environment the current GP is least certain about."""
    s = FlareSettings(r_cut=4.5, n_max=5, l_max=2, optimize=False, envs_per_frame=2)
    m = FlareSGP(s, [29]).fit(cu_frames.take(range(3)))
    struc = m._structure(cu_frames, 3, labels=False)
    variances = np.asarray(m.sgp.compute_cluster_uncertainties(struc)[0])
    again = FlareSGP(s, [29]).fit(cu_frames.take(range(4)))
    assert sorted(again.sparse_atoms[3]) == sorted(np.argsort(-variances)[:2])
    assert variances[again.sparse_atoms[3]].min() >= np.sort(variances)[-2]
    # the first frame's choice is seeded (no GP yet): same seed, same environments
    assert np.array_equal(again.sparse_atoms[0], FlareSGP(s, [29]).fit(cu_frames.take([0])).sparse_atoms[0])


def test_hyperparameter_optimisation_raises_the_likelihood(cu_frames):
    s = FlareSettings(r_cut=4.5, n_max=5, l_max=2, optimize=False)
    m = FlareSGP(s, [29]).fit(cu_frames.take(range(8)))
    record = m.optimize_hyperparameters()
    assert record["log_likelihood"] > record["initial_log_likelihood"]
    assert record["iterations"] >= 1
    assert not np.allclose(record["hyperparameters"], m.initial_hyperparameters_used)
    assert np.allclose(np.array(m.sgp.hyperparameters), record["hyperparameters"])
    assert m.likelihood == pytest.approx(record["log_likelihood"], rel=1e-8)
    assert optimisation_schedule(50, 10, 2.0) == {10, 20, 40, 50}


def test_schedule_optimises_periodically_while_frames_are_added(model):
    assert [h["frames"] for h in model.history] == [4, 8, 10]
    # each optimisation starts from the previous one's result, and the model keeps the last one
    for before, after in zip(model.history, model.history[1:]):
        np.testing.assert_allclose(after["initial_hyperparameters"], before["hyperparameters"])
    np.testing.assert_allclose(np.array(model.sgp.hyperparameters), model.history[-1]["hyperparameters"])


def test_sparse_selection_with_two_species_matches_flares_own_choice():
    """FLARE lists variances grouped by species, not in atom order; the atoms picked must be FLARE's own."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from tm23data.baselines.flare import import_flare, most_uncertain_atoms

    rng = np.random.default_rng(1)
    frames = []
    for _ in range(3):
        a = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
        a.numbers[rng.permutation(len(a))[:12]] = 79  # Au interleaved with Cu
        a.rattle(0.1, seed=int(rng.integers(1_000_000)))
        a.calc = EMT()
        a.get_forces(), a.get_stress()  # labels: from_atoms takes what the calculator has computed
        frames.append(a)
    frames = Frames.from_atoms(frames)
    s = FlareSettings(r_cut=4.5, n_max=4, l_max=2, optimize=False, energy_reference=None)
    m = FlareSGP(s, [29, 79], reference_natoms=32).fit(frames.take([0, 1]))
    struc = m._structure(frames, 2, labels=True)
    ours = sorted(most_uncertain_atoms(m.sgp, struc, 3).tolist())
    m.sgp.add_training_structure(struc, [-1], 1.0, 1.0, 1.0)
    m.sgp.add_uncertain_environments(struc, [3])
    assert ours == sorted(m.sgp.sparse_indices[0][-1])
    assert import_flare() is not None


def test_frames_without_energy_labels_do_not_poison_the_reference(cu_frames):
    frames = _copy(cu_frames.take(range(6)))
    frames.energy[2] = np.nan  # trained on its forces and stress only
    settings = FlareSettings(r_cut=4.5, n_max=4, l_max=2, optimize=False)
    m = FlareSGP(settings, [29]).fit(frames)
    labelled = [0, 1, 3, 4, 5]
    assert m.energy_reference[29] == pytest.approx(frames.energy[labelled].sum() / frames.natoms[labelled].sum())
    assert np.isfinite(m.predict(cu_frames.take([10, 11]))["energy"]).all()
    frames.forces[0, 0] = np.nan
    with pytest.raises(ValueError, match="training frame 0 lacks force labels"):
        FlareSGP(settings, [29]).fit(frames)


def assert_same_gp_predictions(model, got, expected) -> None:
    """A reloaded model rebuilds the GP from scratch: the same least-squares system A alpha = b, solved by
    Householder QR in another order of operations. A backward-stable solve gives |d alpha| / |alpha| <=
    n eps kappa(A), and A^T A = Sigma^-1, so kappa(A) = sqrt(cond(Sigma)); a prediction f = K alpha inherits
    that relative error on the scale of the largest prediction. The tolerance follows from this model's own
    conditioning (a near-singular sparse set on one machine, a well-conditioned one on another), not from a
    number seen on one machine; a real difference (other hyperparameters or sparse points) is ~1e-2."""
    kappa = float(np.sqrt(np.linalg.cond(np.asarray(model.sgp.Sigma))))
    rel = max(model.n_sparse, 1) * np.finfo(np.float64).eps * kappa
    for key in ("energy", "forces", "stress"):
        scale = float(np.abs(expected[key]).max())
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=rel * scale, err_msg=key)


def test_save_load_round_trip_reproduces_predictions(model, cu_frames, tmp_path):
    path = model.save(tmp_path / "m.flare.npz")
    assert not list(tmp_path.glob(".*"))  # atomic write, no temporary left
    back = FlareSGP.load(path)
    test = cu_frames.take(range(10, 14))
    assert_same_gp_predictions(back, back.predict(test), model.predict(test))
    np.testing.assert_allclose(back.hyperparameters, np.array(model.sgp.hyperparameters))
    assert back.likelihood == pytest.approx(model.likelihood, rel=1e-8)
    assert back.settings == model.settings and back.n_sparse == model.n_sparse


def test_quiet_stdout_silences_cpp_prints(model, capfd):
    with quiet_stdout():
        model.sgp.compute_likelihood_stable()  # prints "like comp data ..." from C++
    assert "like comp" not in capfd.readouterr().out
    model.sgp.compute_likelihood_stable()
    assert "like comp" in capfd.readouterr().out


def test_settings_are_validated():
    with pytest.raises(NotImplementedError, match="B1"):
        FlareSettings(descriptor="B1")
    with pytest.raises(ValueError, match="power"):
        FlareSettings(power=3)
    assert FlareSettings(n_max=7, l_max=4).descriptor_dim() == 140  # paper Table 1: Cu, ACE dim 140


def test_train_flare_writes_a_result_that_matches_its_predictions(cached, tmp_path):
    out = tmp_path / "runs"
    res = train_flare("Ti", "cold_to_warm", FlareSettings(r_cut=4.5, n_max=4, l_max=2, optimize_start=5), out=out)
    assert sorted(p.name for p in out.iterdir()) == ["flare_Ti_cold_to_warm"]
    d = res.data
    store = load_store("Ti", progress=False)
    manifest = resolve_split(store, "cold_to_warm")
    assert d["n_frames"] == manifest.sizes() and d["validation"] is None
    assert d["training"]["frames_used"] == len(manifest.subsets["train"]) == d["training"]["n_sparse"]
    assert d["settings"]["descriptor_dim"] == FlareSettings(n_max=4, l_max=2).descriptor_dim()
    assert "mir-flare" in d["versions"] and d["timing"]["train_s_per_frame"] > 0
    p = res.predictions()
    test = store.frames.take(manifest.subsets["test"])
    for q, pred, ref in (("forces", p["forces"], test.forces), ("stress", p["stress"], test.stress),
                         ("energy_per_atom", p["energy"] / p["natoms"], test.energy / test.natoms)):  # fmt: skip
        mae = np.abs(pred - ref).mean()
        assert d["metrics"][q]["mae"] == pytest.approx(mae, rel=1e-12)
        assert d["metrics"][q]["percent"] == pytest.approx(100 * mae / np.abs(ref).mean(), rel=1e-12)
    # the saved model reproduces the saved predictions
    back = FlareSGP.load(res.path / "model.flare.npz")
    assert_same_gp_predictions(back, back.predict(test), p)
    assert results.load_result(res.path).data == d


def test_grid_search_on_a_subset(cached, tmp_path):
    from tm23data.baselines.grid import flare_grid

    base = FlareSettings(optimize_start=4)
    rep = flare_grid("Cu", split="full", r_cuts=(4.0, 5.0), n_maxes=(3,), l_maxes=(1, 2), n_train=6, n_test=4,
                     base=base, out=tmp_path)  # fmt: skip
    assert rep["n_train"] == 6 and rep["n_test"] == 4
    assert [(r["r_cut"], r["l_max"]) for r in rep["rows"]] == [(4.0, 1), (4.0, 2), (5.0, 1), (5.0, 2)]
    assert rep["best"] == min(rep["rows"], key=lambda r: r["forces_mae"])
    assert {"Cu-cold-0000", "Cu-melt-0008"} <= set(rep["train_frame_ids"])  # evenly spaced: both ends
    for name in ("grid.csv", "grid.json", "grid.png", "grid.md"):
        assert (tmp_path / name).stat().st_size > 0
    md = (tmp_path / "grid.md").read_text()  # one table row per point, the best one marked
    assert md.count("**best**") == 1 and len([x for x in md.splitlines() if x.startswith("| 4") or x.startswith("| 5")]) == 4
