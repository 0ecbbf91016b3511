"""Metrics on hand-computed values, the evaluator's checks, and the power-law fit."""

from __future__ import annotations

import numpy as np
import pytest

from tm23data.metrics import Evaluator, fit_power_law, mae, mav, percent_error, rmse, summarize


def test_hand_computed_values():
    true = np.array([1.0, -2.0, 3.0, -4.0])
    pred = np.array([1.5, -2.0, 2.0, -4.5])
    assert mae(pred, true) == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert rmse(pred, true) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 0.25) / 4))
    assert mav(true) == pytest.approx(2.5)
    assert percent_error(pred, true) == pytest.approx(100 * 0.5 / 2.5)
    assert summarize(pred, true)["percent"] == pytest.approx(20.0)


def test_evaluator_energy_per_atom_forces_and_stress():
    natoms = np.array([2, 4])
    energy = np.array([-10.0, -20.0])
    forces = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 2.0], [1, 1, 1], [0, 0, 0], [-2, 0, 0]])
    stress = np.stack([np.eye(3) * 0.01, np.eye(3) * -0.02])
    ev = Evaluator(natoms, energy, forces, stress, regime=["cold", "melt"])
    pred_forces = forces + 0.1
    result = ev.eval({"energy": energy + np.array([0.2, 0.4]), "forces": pred_forces, "stress": stress + 0.001})
    # Energy per atom: errors 0.2/2 and 0.4/4 = 0.1 each; labels -5 and -5 per atom.
    assert result["energy_per_atom"]["mae"] == pytest.approx(0.1)
    assert result["energy_per_atom"]["mav"] == pytest.approx(5.0)
    assert result["energy_per_atom"]["percent"] == pytest.approx(2.0)
    assert result["forces"]["mae"] == pytest.approx(0.1)
    assert result["forces"]["mav"] == pytest.approx(np.abs(forces).mean())
    assert result["stress"]["mae"] == pytest.approx(0.001)
    assert result["stress"]["mav"] == pytest.approx((0.03 + 0.06) / 18)
    assert result["units"]["forces"] == "eV/Å"
    assert result["per_regime"]["melt"]["n_atoms"] == 4
    assert result["per_regime"]["cold"]["forces"]["mae"] == pytest.approx(0.1)
    # Ragged forces and Voigt stress are accepted.
    voigt = np.array([[0.011, 0.011, 0.011, 0.001, 0.001, 0.001], [-0.019, -0.019, -0.019, 0.001, 0.001, 0.001]])
    ragged = ev.eval({"energy": energy, "forces": [pred_forces[:2], pred_forces[2:]], "stress": voigt})
    assert ragged["forces"]["mae"] == pytest.approx(0.1) and ragged["stress"]["mae"] == pytest.approx(0.001)


def test_evaluator_rejects_wrong_shapes():
    ev = Evaluator([2, 3], [-1.0, -2.0], np.zeros((5, 3)))
    with pytest.raises(ValueError, match="3 values for 2 frames"):
        ev.eval({"energy": [1, 2, 3], "forces": np.zeros((5, 3))})
    with pytest.raises(ValueError, match=r"expected \(5, 3\)"):
        ev.eval({"energy": [1, 2], "forces": np.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"frame 1 has shape \(2, 3\)"):
        ev.eval({"energy": [1, 2], "forces": [np.zeros((2, 3)), np.zeros((2, 3))]})
    with pytest.raises(ValueError, match="no stress labels"):
        ev.eval({"energy": [1, 2], "forces": np.zeros((5, 3)), "stress": np.zeros((2, 3, 3))})
    with pytest.raises(ValueError, match="need 'energy' and 'forces'"):
        ev.eval({"energy": [1, 2]})


def test_evaluator_for_split(cached):
    ev = Evaluator.for_split("Cu", "cold_to_melt")
    assert len(ev.natoms) == 12 and ev.name == "Cu/cold_to_melt/test"
    perfect = ev.eval({"energy": ev.energy, "forces": ev.forces, "stress": ev.stress})
    assert perfect["forces"]["mae"] == 0.0 and perfect["energy_per_atom"]["percent"] == 0.0


def test_power_law_recovers_exact_exponent():
    n = np.array([100, 300, 500, 700, 900])
    fit = fit_power_law(n, 2.0 * n**-0.45)
    assert fit.a == pytest.approx(2.0) and fit.b == pytest.approx(-0.45) and fit.r2 == pytest.approx(1.0)
    assert fit(400) == pytest.approx(2.0 * 400**-0.45)
    noisy = fit_power_law(n, 2.0 * n**-0.45 * np.array([1.1, 0.9, 1.05, 0.95, 1.0]))
    assert 0.5 < noisy.r2 < 1.0
    with pytest.raises(ValueError):
        fit_power_law([100], [1.0])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([100, 200], [1.0, 0.0])
    with pytest.raises(ValueError, match="two different training sizes"):
        fit_power_law([100, 100], [1.0, 0.5])


def test_power_law_exponent_uncertainty_is_the_least_squares_standard_error():
    """Against scipy's linregress on the logs (an independent implementation of the same regression)."""
    from scipy.stats import linregress

    n = np.array([100, 300, 500, 700, 900])
    err = 2.0 * n**-0.45 * np.array([1.1, 0.9, 1.05, 0.95, 1.0])
    fit, ref = fit_power_law(n, err), linregress(np.log(n), np.log(err))
    assert fit.b == pytest.approx(ref.slope, rel=1e-12) and fit.b_stderr == pytest.approx(ref.stderr, rel=1e-10)
    assert fit_power_law(n, 2.0 * n**-0.5).b_stderr == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(fit_power_law([100, 200], [1.0, 0.5]).b_stderr)  # two points: no residual to estimate it from


def test_both_energy_percent_errors_on_hand_computed_values():
    true = np.array([-13.0, -12.0, -14.0, -13.0])  # W-like energies per atom, eV/atom
    pred = true + np.array([0.01, -0.01, 0.01, -0.01])
    s = summarize(pred, true)
    # MAE 0.01; MAV = 13; MAD about the mean (-13) = (0 + 1 + 1 + 0) / 4 = 0.5
    assert s["mae"] == pytest.approx(0.01) and s["mav"] == pytest.approx(13.0) and s["mad"] == pytest.approx(0.5)
    assert s["percent"] == pytest.approx(100 * 0.01 / 13) and s["percent_of_spread"] == pytest.approx(2.0)
    # another reference energy: labels -0.3, 0.7, -1.3, -0.3 (MAV 0.65): the paper's % grows 20x, the spread's stays
    shifted = summarize(pred + 12.7, true + 12.7)
    assert shifted["percent"] == pytest.approx(100 * 0.01 / 0.65) == pytest.approx(20 * s["percent"])
    assert shifted["percent_of_spread"] == pytest.approx(s["percent_of_spread"])


def test_force_label_differences_separate_magnitude_and_direction():
    from tm23data.metrics import force_label_differences

    a = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    rotated = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]])  # atom 0 turned by 90°, same magnitudes
    d = force_label_differences(a, rotated)
    assert d["radial"] == pytest.approx(0.0)
    assert d["vector"] == pytest.approx(np.sqrt(2) / 2)
    assert d["angular_deg"] == pytest.approx(45.0)
    scaled = force_label_differences(a, 1.5 * a)  # magnitudes only: |0.5| and |1.0| -> 0.75 both ways
    assert scaled["radial"] == pytest.approx(0.75) and scaled["vector"] == pytest.approx(0.75)
    assert scaled["angular_deg"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        force_label_differences(a, a[:1])
