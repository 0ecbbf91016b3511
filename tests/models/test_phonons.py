"""Phonon dispersions of any model (paper Fig. 8): a model against itself is identical, against a stiffer or
softer copy of itself the difference has the right size and sign."""

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from support import needs

pytestmark = needs("phonopy", "matplotlib")


class ScaledEMT(EMT):
    """EMT with its whole energy surface multiplied by ``s``: same equilibrium, force constants x s, so every
    phonon frequency x sqrt(s)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or ["positions", "numbers", "cell", "pbc"])
        for key in ("energy", "free_energy", "forces", "stress", "energies"):
            if key in self.results:
                self.results[key] = self.results[key] * self.s


def test_emt_against_emt_is_identical(tmp_path):
    from tm23data.baselines.phonons import compare_phonons

    rep = compare_phonons("Cu", "emt", "emt", npoints=31, out=tmp_path)
    ref, mod = (np.array(rep["bands"][k]["frequencies_THz"]) for k in ("reference", "model"))
    np.testing.assert_array_equal(ref, mod)
    assert rep["frequency_mae_THz"] == 0.0
    assert ref.shape == (31, 3) and abs(ref[0]).max() < 0.05  # Γ: acoustic modes at zero
    assert 5 < ref.max() < 10  # EMT copper: ~8 THz at X (experiment ~7.3)
    assert json.loads((tmp_path / "phonons_Cu.json").read_text())["element"] == "Cu"
    assert (tmp_path / "phonons_Cu.png").stat().st_size > 1000


@pytest.mark.parametrize("s", [1.21, 0.81])
def test_a_scaled_surface_moves_every_frequency_by_sqrt_s(s):
    from tm23data.baselines.phonons import compare_phonons

    rep = compare_phonons("Cu", ScaledEMT(s), "emt", npoints=31)
    ref, mod = (np.array(rep["bands"][k]["frequencies_THz"]) for k in ("reference", "model"))
    away = ref > 0.5  # away from Γ, where both are ~0
    np.testing.assert_allclose(mod[away] / ref[away], np.sqrt(s), rtol=1e-5)
    assert np.sign(rep["frequency_mean_difference_THz"]) == np.sign(s - 1)
    assert rep["frequency_mae_THz"] == pytest.approx(abs(np.sqrt(s) - 1) * np.abs(ref).mean(), rel=1e-3)


def test_structures_without_a_phonon_setup_are_refused():
    from tm23data.baselines.phonons import primitive_cell
    from tm23data.errors import UsageError

    with pytest.raises(UsageError, match="Mn"):
        primitive_cell("Mn")


def test_cli_phonons(tmp_path, capsys):
    from tm23data.cli import main

    assert main(["phonons", "Cu", "--model", "emt", "--out", str(tmp_path), "--npoints", "11"]) == 0
    assert "frequency MAE 0.000 THz" in capsys.readouterr().out
    assert main(["phonons", "Mn", "--model", "emt", "--out", str(tmp_path)]) == 1
    assert "fcc, bcc and hcp" in capsys.readouterr().err
