"""The adapters that take a weights file (``mace:PATH``, ...) on models built here with random weights and saved
the way their package saves models (published weights cannot be downloaded offline): the evaluation equals the
package's own calculator on the same frames, forces and stress are the gradients of the energy, the record
names the package and the weights' sha256, runs resume."""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np
import pytest
from support import needs

from tm23data.baselines.evaluate import evaluate
from tm23data.baselines.models import load_model
from tm23data.cli import main
from tm23data.errors import UsageError
from tm23data.selection import Selection

MACE_INSTALL = "make .venv/.tm23-mace (pip install --no-deps mace-torch==0.3.16 + its deps; README)"
needs_mace = needs("mace", "torch_ema", "prettytable", "hostlist", "configargparse", "git", install=MACE_INSTALL)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _finite_difference_checks(calc, atoms, h=1e-4, coords=((0, 0), (1, 1), (2, 2), (3, 0))):
    """Forces against minus the central-difference energy gradient at ``coords`` (atom, axis), and the stress
    against the central-difference derivative of the energy under symmetric strain (ASE sign: dE/de / V)."""
    atoms = atoms.copy()
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    assert np.abs(forces).max() > 1e-3  # a random model still has forces to compare
    for i, k in coords:
        e = []
        for step in (h, -h):
            moved = atoms.copy()
            moved.positions[i, k] += step
            moved.calc = calc
            e.append(moved.get_potential_energy())
        assert forces[i, k] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=1e-7)
    cell, volume = atoms.get_cell().array, atoms.get_volume()
    for a, b in ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2)):
        e = []
        for step in (h, -h):
            strain = np.eye(3)
            strain[a, b] += step / (2 if a != b else 1)
            strain[b, a] += step / 2 if a != b else 0
            strained = atoms.copy()
            strained.set_cell(cell @ strain, scale_atoms=True)
            strained.calc = calc
            e.append(strained.get_potential_energy())
        assert stress[a, b] == pytest.approx((e[0] - e[1]) / (2 * h) / volume, abs=1e-8)


def _same_as_direct(res, calc, element, split):
    """The run's predictions equal ``calc`` called on the same test frames, frame by frame (float64)."""
    p = res.predictions()
    sel = Selection.open(element, split, progress=False)
    ids = list(sel.frame_ids("test"))
    frames = sel.frames("test")
    offsets = np.concatenate([[0], np.cumsum(p["natoms"])])
    for j, fid in enumerate(p["frame_id"]):
        atoms = frames.to_atoms(ids.index(fid))
        atoms.calc = calc
        assert p["energy"][j] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(p["forces"][offsets[j] : offsets[j + 1]], atoms.get_forces(), atol=1e-10)
        np.testing.assert_allclose(p["stress"][j], atoms.get_stress(voigt=False), atol=1e-12)
    return p


# --- MACE -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mace_file(tmp_path_factory):
    """A small ScaleShiftMACE for Cu (Z 29; r_max 5 Å, 8 channels, l <= 1, 2 layers) with random weights, saved
    as MACE saves a model (``torch.save`` of the module, what ``MACECalculator(model_paths=...)`` reads)."""
    import torch

    from tm23data.baselines.models import _quiet_mace_import

    _quiet_mace_import("mace", MACE_INSTALL)
    from e3nn import o3
    from mace import modules

    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # as the MACE-MP releases; the adapter runs it in float64
    try:
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=5.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=1, hidden_irreps=o3.Irreps("8x0e+8x1o"),
            MLP_irreps=o3.Irreps("8x0e"), atomic_energies=np.array([-3.7]), avg_num_neighbors=12.0,
            atomic_numbers=[29], correlation=2, gate=torch.nn.functional.silu, atomic_inter_scale=2.0,
            atomic_inter_shift=0.0,
        )  # fmt: skip
    finally:
        torch.set_default_dtype(saved)
    path = tmp_path_factory.mktemp("mace") / "tiny-Cu.model"
    torch.save(model, path)
    return path


@needs_mace
def test_mace_evaluation_is_mace_itself_and_resumes(cached, tmp_path, mace_file):
    from mace.calculators import MACECalculator

    out = tmp_path / "runs"
    res = evaluate(f"mace:{mace_file}", "Cu", "cold", out=out, shift_frames=3, progress=False)
    direct = MACECalculator(model_paths=[str(mace_file)], device="cpu", default_dtype="float64")
    p = _same_as_direct(res, direct, "Cu", "cold")
    assert len(p["energy"]) == res.data["n_frames"]["test"] == 3 and np.isfinite(res.metrics["stress"]["mae"])
    info = res.data["model_info"]
    assert info["package"] == "mace" and info["version"] == metadata.version("mace-torch")
    assert info["calculator"] == "MACECalculator" and info["weights_sha256"] == _sha256(mace_file)
    assert res.data["versions"]["mace"] == metadata.version("mace-torch")
    assert res.path.name == "mace-tiny-Cu.model_Cu_cold"
    again = evaluate(f"mace:{mace_file}", "Cu", "cold", out=out, shift_frames=3, progress=False)
    assert again.data["created"] == res.data["created"]  # resumed, not recomputed


@needs_mace
def test_mace_forces_and_stress_are_energy_gradients(cached, mace_file):
    calc = load_model(f"mace:{mace_file}").calculator
    atoms = Selection.open("Cu", "cold", progress=False).frames("test").to_atoms(0)
    _finite_difference_checks(calc, atoms)


@needs_mace
def test_cli_mace_mp_alias_scores_the_same_model(cached, tmp_path, mace_file, capsys):
    out = tmp_path / "runs"
    assert main(["evaluate", f"mace-mp:{mace_file}", "--elements", "Cu", "--split", "cold", "--out", str(out),
                 "--no-progress", "--shift-frames", "3"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "Cu" in printed and "cuequivariance" not in printed  # mace's import-time print is kept off stdout
    alias = np.load(out / "mace-mp-tiny-Cu.model_Cu_cold" / "predictions.npz")
    direct = evaluate(f"mace:{mace_file}", "Cu", "cold", out=out, shift_frames=3, progress=False).predictions()
    np.testing.assert_array_equal(alias["energy"], direct["energy"])
    np.testing.assert_array_equal(alias["forces"], direct["forces"])


@needs_mace
def test_mace_errors_name_the_file(cached, tmp_path, mace_file):
    import torch

    not_a_model = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, not_a_model)
    with pytest.raises(UsageError, match="not a MACE model"):
        load_model(f"mace:{not_a_model}")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="garbage.model is not a MACE model file"):
        load_model(f"mace:{garbage}")
    with pytest.raises(UsageError, match=r"Ti is not among the elements of the mace model \(Cu\)"):
        evaluate(f"mace:{mace_file}", "Ti", "cold", out=tmp_path / "runs", shift_frames=0, progress=False)
