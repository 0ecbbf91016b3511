"""The adapters that take a weights file (``mace:``, ``mattersim:``, ``orb:``, ``fairchem:PATH``) on models built
here with random weights and saved the way their package saves models (published weights cannot be downloaded
offline): the evaluation equals the package's own calculator on the same frames, forces and stress are the
gradients of the energy, the record names the package and the weights' sha256, runs resume. (A compiled NequIP
model: tests/baselines/test_baselines_nequip.py.)"""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np
import pytest
from support import fresh_torch_state, needs

from tm23data.baselines.evaluate import evaluate
from tm23data.baselines.models import load_model
from tm23data.cli import main
from tm23data.errors import UsageError
from tm23data.selection import Selection

MACE_INSTALL = "make .venv/.tm23-mace (pip install --no-deps mace-torch==0.3.16 + its deps; README)"
needs_mace = needs("mace", "torch_ema", "prettytable", install=MACE_INSTALL)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _finite_difference_checks(calc, atoms, h=1e-4, force_tol=1e-7, stress_tol=1e-8,
                              coords=((0, 0), (1, 1), (2, 2), (3, 0))):  # fmt: skip
    """Forces against minus the central-difference energy gradient at ``coords`` (atom, axis), and the stress
    against the central-difference derivative of the energy under symmetric strain (ASE sign: dE/de / V);
    tolerances in eV/Å and eV/Å³ (a float32 model's energies limit them)."""
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
        assert forces[i, k] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=force_tol)
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
        assert stress[a, b] == pytest.approx((e[0] - e[1]) / (2 * h) / volume, abs=stress_tol)


def _same_as_direct(res, calc, element, split, tol=(1e-9, 1e-10, 1e-12)):
    """The run's predictions equal ``calc`` called on the same test frames, frame by frame, to ``tol``
    (energy eV, forces eV/Å, stress eV/Å³: the same computation, so only the summation order may differ)."""
    p = res.predictions()
    sel = Selection.open(element, split, progress=False)
    ids = list(sel.frame_ids("test"))
    frames = sel.frames("test")
    offsets = np.concatenate([[0], np.cumsum(p["natoms"])])
    for j, fid in enumerate(p["frame_id"]):
        atoms = frames.to_atoms(ids.index(fid))
        atoms.calc = calc
        assert p["energy"][j] == pytest.approx(atoms.get_potential_energy(), abs=tol[0])
        np.testing.assert_allclose(p["forces"][offsets[j] : offsets[j + 1]], atoms.get_forces(), atol=tol[1])
        np.testing.assert_allclose(p["stress"][j], atoms.get_stress(voigt=False), atol=tol[2])
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

    with fresh_torch_state():  # float32 as the MACE-MP releases (the adapter runs it in float64), e3nn eager
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=5.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=1, hidden_irreps=o3.Irreps("8x0e+8x1o"),
            MLP_irreps=o3.Irreps("8x0e"), atomic_energies=np.array([-3.7]), avg_num_neighbors=12.0,
            atomic_numbers=[29], correlation=2, gate=torch.nn.functional.silu, atomic_inter_scale=2.0,
            atomic_inter_shift=0.0,
        )  # fmt: skip
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


# --- MatterSim ------------------------------------------------------------------------------------------

needs_mattersim = needs("mattersim", "deprecated", "loguru", "torch_runstats", "torch_ema",
                        install="make .venv/.tm23-mattersim (pip install --no-deps mattersim==1.2.3 + its deps; README)")  # fmt: skip


@pytest.fixture(scope="session")
def mattersim_file(tmp_path_factory):
    """A small M3GNet (2 blocks, 16 units, cutoff 5 Å) with random weights, saved as MatterSim saves a model
    (``Potential.save``). Weights ~ N(0, 0.3) and energy scale 100 with the per-atom energy of one frame
    shifted away: the random network's forces are then ~0.2 eV/Å instead of ~1e-4, so that a float32
    finite difference can see them."""
    import torch
    from ase.build import bulk
    from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
    from mattersim.forcefield.potential import MatterSimCalculator, Potential

    from tm23data.torch_dtype import in_float32

    @in_float32
    def build():
        torch.manual_seed(0)
        model = M3Gnet(num_blocks=2, units=16, max_l=2, max_n=2, cutoff=5.0, threebody_cutoff=4.0, device="cpu")
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3)
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.calc = MatterSimCalculator(potential=Potential(model, device="cpu"), device="cpu")
        e_atom = atoms.get_potential_energy() / len(atoms)
        with torch.no_grad():
            model.normalizer.scale.fill_(100.0)
            model.normalizer.shift.fill_(-100.0 * e_atom)
        return Potential(model, device="cpu")

    path = tmp_path_factory.mktemp("mattersim") / "tiny-m3gnet.pth"
    build().save(str(path))
    return path


@needs_mattersim
def test_mattersim_evaluation_is_mattersim_itself_and_resumes(cached, tmp_path, mattersim_file):
    from mattersim.forcefield.potential import MatterSimCalculator

    out = tmp_path / "runs"
    res = evaluate(f"mattersim:{mattersim_file}", "Cu", "cold", out=out, shift_frames=3, progress=False)
    direct = MatterSimCalculator.from_checkpoint(str(mattersim_file), device="cpu")
    _same_as_direct(res, direct, "Cu", "cold", tol=(1e-4, 1e-6, 1e-8))  # float32: ~1e-7 relative
    info = res.data["model_info"]
    assert info["package"] == "mattersim" and info["version"] == metadata.version("mattersim")
    assert info["calculator"] == "MatterSimCalculator" and info["weights_sha256"] == _sha256(mattersim_file)
    assert np.abs(res.predictions()["forces"]).max() > 1e-2 and np.isfinite(res.metrics["stress"]["mae"])
    again = evaluate(f"mattersim:{mattersim_file}", "Cu", "cold", out=out, shift_frames=3, progress=False)
    assert again.data["created"] == res.data["created"]


@needs_mattersim
def test_mattersim_forces_and_stress_are_energy_gradients_even_after_float64(cached, mattersim_file):
    """In float32, so a step of 0.01 Å and 2e-3 eV/Å (forces ~0.2 eV/Å); with torch's default dtype set to
    float64 first, as a NequIP model in the same process leaves it."""
    import torch

    calc = load_model(f"mattersim:{mattersim_file}").calculator
    atoms = Selection.open("Cu", "cold", progress=False).frames("test").to_atoms(0)
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _finite_difference_checks(calc, atoms, h=1e-2, force_tol=3e-3, stress_tol=3e-4)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(saved)


@needs_mattersim
def test_mattersim_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    import torch

    bad = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(3)}, bad)
    with pytest.raises(UsageError, match="weights.pth is not a MatterSim checkpoint"):
        load_model(f"mattersim:{bad}")


# --- ORB ------------------------------------------------------------------------------------------------

needs_orb = needs("orb_models", "tree", "cached_path", "boto3", "google_crc32c",
                  install="make .venv/.tm23-orb (pip install --no-deps orb-models==0.5.5 + its deps; README)")  # fmt: skip


@pytest.fixture(scope="session")
def orb_file(tmp_path_factory):
    """orb-v3 conservative with random weights, saved as the released checkpoints are (``torch.save`` of the
    state dict, 100 MB: orb's loaders build the full 25.5 M-parameter architecture, so no smaller model fits)."""
    import torch
    from orb_models.forcefield import pretrained

    torch.manual_seed(0)
    model = pretrained.orb_v3_conservative_architecture(device="cpu")
    path = tmp_path_factory.mktemp("orb") / "random-orb-v3.ckpt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
@needs_orb
def test_orb_evaluation_is_orb_itself_with_energy_gradients(cached, tmp_path, orb_file):
    """Slow: the full orb-v3 architecture takes ~3 s per 32-atom frame on this 2-core CPU."""
    import torch
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.calculator import ORBCalculator

    out = tmp_path / "runs"
    res = evaluate(f"orb:{orb_file}", "Cu", "cold", out=out, max_frames=2, shift_frames=1, progress=False)
    direct = ORBCalculator(pretrained.orb_v3_conservative_inf_omat(weights_path=str(orb_file), device="cpu",
                                                                   precision="float32-highest", compile=False),
                           device="cpu")  # fmt: skip
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the adapter keeps orb in float32 whatever the default
    try:
        model = load_model(f"orb:{orb_file}")
        atoms = Selection.open("Cu", "cold", progress=False).frames("test").to_atoms(0)
        _finite_difference_checks(model.calculator, atoms, h=1e-2, force_tol=3e-3, stress_tol=3e-4,
                                  coords=((0, 0), (1, 2)))  # fmt: skip
    finally:
        torch.set_default_dtype(saved)
    _same_as_direct(res, direct, "Cu", "cold", tol=(1e-3, 1e-5, 1e-7))
    info = res.data["model_info"]
    assert info["package"] == "orb_models" and info["version"] == metadata.version("orb-models")
    assert info["calculator"] == "ORBCalculator" and info["weights_sha256"] == _sha256(orb_file)
    again = evaluate(f"orb:{orb_file}", "Cu", "cold", out=out, max_frames=2, shift_frames=1, progress=False)
    assert again.data["created"] == res.data["created"]
    with pytest.raises(UsageError, match="no architecture 'orb_v9'"):
        load_model(f"orb-orb_v9:{orb_file}")
    with pytest.raises(UsageError, match="is not a state dict of orb-models' orb_v3_direct_20_omat"):
        load_model(f"orb-orb_v3_direct_20_omat:{orb_file}")  # another architecture: keys do not match


# --- fairchem -------------------------------------------------------------------------------------------

needs_fairchem = needs("fairchem", "torchtnt", "submitit", "wandb", "backoff",
                       install="make .venv/.tm23-fairchem (pip install --no-deps fairchem-core==2.24.0 + its deps; README)")  # fmt: skip


def _tiny_uma(path, dataset="omat"):
    """A tiny conservative eSCN-MD (UMA's backbone: 8 channels, l <= 1, one layer, cutoff 5 Å) with a
    ``dataset`` energy/forces/stress head and random weights, saved as fairchem saves inference checkpoints
    (``torch.save`` of an ``MLIPInferenceCheckpoint``: model and tasks config, state and EMA state). The
    normalisers' rmsd of 100 makes its forces large enough for a float32 finite difference; max_neighbors 100
    is above the 42 neighbours of fcc Cu within 5 Å (a cap below that makes the energy jump: seen with 30)."""
    import hydra
    import torch
    from fairchem.core.units.mlip_unit.api.inference import MLIPInferenceCheckpoint

    backbone = {"model": "fairchem.core.models.uma.escn_md.eSCNMDBackbone", "max_num_elements": 100,
                "sphere_channels": 8, "lmax": 1, "mmax": 1, "otf_graph": True, "max_neighbors": 100, "cutoff": 5.0,
                "edge_channels": 8, "num_distance_basis": 16, "direct_forces": False, "regress_forces": True,
                "regress_stress": True, "num_layers": 1, "hidden_channels": 8, "norm_type": "rms_norm_sh",
                "act_type": "gate", "ff_type": "grid", "dataset_list": [dataset]}  # fmt: skip
    heads = {"efs": {"module": "fairchem.core.models.uma.escn_moe.DatasetSpecificMoEWrapper",
                     "head_cls": "fairchem.core.models.uma.escn_md.MLP_EFS_Head", "head_kwargs": {"wrap_property": False},
                     "dataset_names": [dataset]}}  # fmt: skip
    config = {"_target_": "fairchem.core.models.base.HydraModel", "backbone": backbone, "heads": heads,
              "pass_through_head_outputs": True}  # fmt: skip

    def task(prop, level, dim, rmsd):
        return {"_target_": "fairchem.core.units.mlip_unit.mlip_unit.Task", "name": f"{dataset}_{prop}",
                "level": level, "property": prop, "datasets": [dataset],
                "out_spec": {"_target_": "fairchem.core.units.mlip_unit.mlip_unit.OutputSpec", "dim": dim,
                             "dtype": "float32"},
                "normalizer": {"_target_": "fairchem.core.modules.normalization.normalizer.Normalizer", "mean": 0.0,
                               "rmsd": rmsd}}  # fmt: skip

    tasks = [task("energy", "system", [1], 100.0), task("forces", "atom", [3], 100.0),
             task("stress", "system", [1, 9], 100.0)]  # fmt: skip
    torch.manual_seed(0)
    model = hydra.utils.instantiate(config)
    ema = torch.optim.swa_utils.AveragedModel(model)
    torch.save(MLIPInferenceCheckpoint(model_config=config, model_state_dict=model.state_dict(),
                                       ema_state_dict=ema.state_dict(), tasks_config=tasks), path)  # fmt: skip
    return path


@pytest.fixture(scope="session")
def fairchem_file(tmp_path_factory):
    return _tiny_uma(tmp_path_factory.mktemp("fairchem") / "tiny-uma.pt")


@needs_fairchem
def test_fairchem_evaluation_is_fairchem_itself_with_energy_gradients(cached, tmp_path, fairchem_file):
    import torch
    from fairchem.core import FAIRChemCalculator, pretrained_mlip

    out = tmp_path / "runs"
    res = evaluate(f"fairchem:{fairchem_file}", "Cu", "cold", out=out, max_frames=2, shift_frames=1, progress=False)
    unit = pretrained_mlip.load_predict_unit(str(fairchem_file), inference_settings="batch", device="cpu")
    _same_as_direct(res, FAIRChemCalculator(unit, task_name="omat"), "Cu", "cold", tol=(1e-3, 1e-5, 1e-7))
    info = res.data["model_info"]
    assert info["package"] == "fairchem" and info["version"] == metadata.version("fairchem-core")
    assert info["calculator"] == "FAIRChemCalculator" and info["weights_sha256"] == _sha256(fairchem_file)
    again = evaluate(f"fairchem:{fairchem_file}", "Cu", "cold", out=out, max_frames=2, shift_frames=1,
                     progress=False)  # fmt: skip
    assert again.data["created"] == res.data["created"]
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        calc = load_model(f"fairchem:{fairchem_file}").calculator
        atoms = Selection.open("Cu", "cold", progress=False).frames("test").to_atoms(0)
        _finite_difference_checks(calc, atoms, h=1e-2, force_tol=3e-3, stress_tol=3e-4, coords=((0, 0), (1, 2)))
    finally:
        torch.set_default_dtype(saved)
    bad = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, bad)
    with pytest.raises(UsageError, match="weights.pt is not a fairchem inference checkpoint"):
        load_model(f"fairchem:{bad}")
    molecules = _tiny_uma(tmp_path / "omol-only.pt", dataset="omol")
    with pytest.raises(UsageError, match=r"omol-only.pt has no omat task \(it has omol\)"):
        load_model(f"fairchem:{molecules}")
