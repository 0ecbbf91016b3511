"""Short NVT with any model from a data-set frame: g(r) against the data set's, and the stability checks that
catch a model whose forces do not integrate its energy."""

import numpy as np
import pytest
from ase.calculators.emt import EMT

from tm23data.baselines.dynamics import run_nvt
from tm23data.errors import UsageError


class PushyEMT(EMT):
    """EMT whose forces are twice the gradient of its energy: MD with it cannot conserve energy."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or ["positions", "numbers", "cell", "pbc"])
        self.results["forces"] = 2.0 * self.results["forces"]


@pytest.mark.parametrize("regime", ["cold", "melt"])
def test_emt_runs_stably_and_keeps_the_data_structure(cached, regime, tmp_path):
    res = run_nvt("emt", "Cu", regime, steps=100, progress=False)
    assert res.stable and abs(res.drift_eV_per_atom_per_ps) < 1e-3
    assert res.min_distance_A > 0.6 * res.start_min_distance_A
    assert 0.3 * res.temperature_K < res.mean_temperature_K < 2.0 * res.temperature_K
    assert res.rdf_difference < 0.5  # EMT made the labels: the same structure up to short-run noise
    g = np.array(res.g_model)
    r = np.array(res.r_A)
    assert 2.2 < r[g.argmax()] < 2.8  # first shell of fcc Cu at a/sqrt(2) = 2.55 Å
    from tm23data.baselines.dynamics import plot_rdf_comparison

    assert plot_rdf_comparison(res, tmp_path / "rdf.png").stat().st_size > 1000


def test_non_conservative_forces_are_flagged(cached):
    good = run_nvt("emt", "Cu", "cold", steps=100, progress=False)
    bad = run_nvt(PushyEMT(), "Cu", "cold", steps=100, progress=False)
    assert abs(bad.drift_eV_per_atom_per_ps) > 20 * abs(good.drift_eV_per_atom_per_ps)
    assert not bad.stable


def test_bad_arguments(cached):
    with pytest.raises(UsageError, match="regime"):
        run_nvt("emt", "Cu", "hot")
    with pytest.raises(UsageError, match="out of range"):
        run_nvt("emt", "Cu", "cold", frame=10_000, progress=False)


def test_cli_dynamics(cached, tmp_path, capsys):
    from tm23data.cli import main

    assert main(["dynamics", "Cu", "--model", "emt", "--steps", "40", "--out", str(tmp_path)]) == 0
    assert "stable" in capsys.readouterr().out
    assert (tmp_path / "dynamics_Cu_cold.json").is_file() and (tmp_path / "dynamics_Cu_cold.png").is_file()
