"""The local pipeline (ASE MD + EMT or CHGNet) end to end: `tm23 generate` -> archive -> load_tm23."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tm23data.cli import main
from tm23data.generation.local import CalculatorUnavailable, label_frames, resolve_calculator, run_md
from tm23data.generation.settings import Settings
from tm23data.generation.structures import build_supercell

# 12 frames per regime every 50 fs after 100 fs, in the small 2x2x2 Cu cell (31 atoms; the default rule's is 71)
FAST = ["--frames", "12", "--equilibration-fs", "100", "--supercell-rule", "vectors"]


def test_generate_cu_with_emt_is_loadable(tmp_path, tm23_home, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["generate", "Cu", "--calculator", "emt", *FAST, str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    archive = out / "tm23_Cu_emt_12frames.zip"
    md5 = text.split("md5:")[1].split()[0]
    # the exact follow-up commands are printed
    assert f"tm23 import {archive} --md5 {md5}" in text and f"export TM23_MD5={md5}" in text
    from tm23data.hashes import file_md5

    assert file_md5(archive) == md5 and (out / (archive.name + ".md5")).read_text().split()[0] == md5
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
    assert len([n for n in names if n.endswith(".xyz")]) == 8
    assert prov["calculator"] == "emt" and prov["published_tm23"] is False and "NOT the published" in prov["what"]
    assert prov["md"]["tdamp_fs"] == pytest.approx(45.016, abs=1e-3) and prov["md"]["tchain"] == 1
    assert prov["md"]["thermostat_period_fs"] == 200
    assert prov["elements"]["Cu"]["structure"]["natoms"] == 31
    assert prov["elements"]["Cu"]["regimes"]["melt"]["temperature_K"] == pytest.approx(1.25 * 1358)
    assert prov["settings"]["md"]["n_frames"] == 12 and "ase" in prov["versions"]
    # through the data layer, as any TM23 archive
    assert main(["import", str(archive), "--md5", md5]) == 0
    monkeypatch.setenv("TM23_MD5", md5)
    from tm23data import load_tm23

    ds = load_tm23("Cu", progress=False)
    assert len(ds["train"]) == 33 and len(ds["test"]) == 3  # 11 + 1 per regime, first 90 % train
    cold = load_tm23("Cu", split="cold", format="ase", progress=False)
    assert len(cold["train"]) == 11 and cold["train"][0].info["frame_id"] == "Cu-cold-0000"
    # the labels are EMT's, in ASE units and sign (positions are stored to 1e-8 Å, hence the tolerances)
    from ase.calculators.emt import EMT

    atoms = cold["test"][0]
    ref = atoms.copy()
    ref.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    assert np.allclose(atoms.get_forces(), ref.get_forces(), atol=1e-6)
    assert np.allclose(atoms.get_stress(), ref.get_stress(), atol=1e-8)
    pos = np.array([a.positions for a in cold["train"]])
    assert np.abs(np.diff(pos, axis=0)).max() > 0.05  # atoms move between frames 50 fs apart
    # the hotter the regime, the larger the forces (crystalline -> molten)
    from tm23data.stats import element_stats

    stats = element_stats("Cu")
    assert stats["cold"]["mav"]["forces"] < stats["warm"]["mav"]["forces"] < stats["melt"]["mav"]["forces"]

    # a second run resumes from the work folder (no MD) and gives the same frames
    member = "benchmarking_master_collection/Cu_melt_nequip_train.xyz"
    with zipfile.ZipFile(archive) as zf:
        first = zf.read(member)
    archive.unlink()  # the second run must write it again, from the work folder
    capsys.readouterr()
    assert main(["generate", "Cu", "--calculator", "emt", *FAST, str(out), "--no-progress"]) == 0
    assert "reused from the work folder" in capsys.readouterr().out
    with zipfile.ZipFile(archive) as zf:
        again = zf.read(member)
    assert again == first


def test_md_protocol_and_seeds():
    settings = Settings().override({"md.n_frames": 3, "md.equilibration_fs": 20, "md.interval_fs": 10})
    from ase.calculators.emt import EMT

    sc = build_supercell("Au")
    a = run_md(sc, "warm", EMT(), settings, progress=False)
    b = run_md(sc, "warm", EMT(), settings, progress=False)
    assert a.steps.tolist() == [6, 8, 10]  # step 1 is the start; 4 steps of equilibration, then every 2 steps
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a.atoms, b.atoms))  # seeded
    other = run_md(sc, "warm", EMT(), settings.override({"structure.seed": 1}), progress=False)
    assert not np.allclose(other.atoms[0].positions, a.atoms[0].positions)
    frames = label_frames(a.atoms, EMT(), progress=False)
    assert len(frames) == 3 and not np.isnan(frames.stress).any()


def test_calculator_choice():
    assert resolve_calculator("emt", "Pt") == "emt"
    with pytest.raises(CalculatorUnavailable, match="EMT has parameters only for Ag, Au, Cu, Ni, Pd, Pt"):
        resolve_calculator("emt", "W")
    from tm23data.generation.local import chgnet_available

    if chgnet_available():
        assert resolve_calculator("auto", "W") == "chgnet" and resolve_calculator("auto", "Cu") == "chgnet"
    else:
        assert resolve_calculator("auto", "Cu") == "emt"
        with pytest.raises(CalculatorUnavailable, match="pip install chgnet"):
            resolve_calculator("auto", "W")
    assert main(["generate", "W", "--calculator", "emt", "--frames", "2", "/tmp/never"]) == 1


@pytest.mark.slow
def test_generate_with_chgnet(tmp_path, tm23_home, monkeypatch):
    """CHGNet (all 27 metals): a tiny run on hcp Ti; labels are CHGNet's, float64, ASE sign."""
    from tm23data.generation.local import generate_local, make_calculator

    settings = Settings().override({"md.n_frames": 3, "md.equilibration_fs": 10, "md.interval_fs": 10})
    result = generate_local(["Ti"], tmp_path / "ti.zip", calculator="chgnet", settings=settings, progress=False)
    assert result.provenance["calculator"] == "chgnet" and "chgnet" in result.provenance["versions"]
    from tm23data.config import archive_source
    from tm23data.fetch import import_archive

    import_archive(result.archive, archive_source(md5=result.md5))
    monkeypatch.setenv("TM23_MD5", result.md5)
    from tm23data import load_tm23

    atoms = load_tm23("Ti", format="ase", subset="test", progress=False)[0]
    calc, _ = make_calculator("chgnet", "Ti")
    ref = atoms.copy()
    ref.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-4)
    # compressing the crystal gives compressive (negative, ASE sign) stress
    sc = build_supercell("Ti").atoms
    sc.set_cell(sc.cell.array * 0.97, scale_atoms=True)
    sc.calc = calc
    assert np.trace(sc.get_stress(voigt=False)) < 0


def test_generate_in_the_cell_of_an_archive(synthetic_zip, tmp_path, capsys):
    """--structure-from-archive: the supercell is read from a TM23 archive's frames (here the synthetic one,
    made at ASE's experimental a = 3.61 Å), and differences with the lattice table are reported."""
    path, _ = synthetic_zip
    out = tmp_path / "cu.zip"
    args = ["generate", "Cu", "--calculator", "emt", "--frames", "2", "--equilibration-fs", "10", "--interval-fs", "10"]
    assert main([*args, "--structure-from-archive", str(path), str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "31 atoms (2x2x2" in text and "frames give a = 3.61 Å" in text
    with zipfile.ZipFile(out) as zf:
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
        header = zf.read("benchmarking_master_collection/Cu_cold_nequip_train.xyz").decode().splitlines()[1]
    assert prov["elements"]["Cu"]["structure"]["lattice_source"] == "cell read from TM23 frames"
    assert 'Lattice="7.22 0.0 0.0 0.0 7.22 0.0 0.0 0.0 7.22"' in header


def test_thermostat_period_is_40_steps(monkeypatch):
    """VASP's SMASS = 0 makes the temperature oscillate with a period of 40 time steps; the tdamp that run_md
    gives ASE must do the same (tdamp = 200 fs was 4.4x too slow: ~178 steps)."""
    from ase import Atoms, units
    from ase.calculators.calculator import Calculator, all_changes
    from ase.calculators.emt import EMT
    from ase.md import nose_hoover_chain
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    used = {}

    class Spy(nose_hoover_chain.NoseHooverChainNVT):
        def __init__(self, *args, **kwargs):
            used.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(nose_hoover_chain, "NoseHooverChainNVT", Spy)
    settings = Settings().override({"md.n_frames": 2, "md.equilibration_fs": 0, "md.interval_fs": 5})
    run_md(build_supercell("Cu"), "cold", EMT(), settings, progress=False)
    assert used["tchain"] == 1 and used["timestep"] == pytest.approx(5 * units.fs)

    class Free(Calculator):  # ideal gas: the temperature oscillation is the thermostat's alone
        implemented_properties = ("energy", "forces", "stress")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3)), "stress": np.zeros(6)}

    target = 1000.0
    gas = Atoms("Cu31", positions=np.random.default_rng(1).uniform(0, 7.2, (31, 3)), cell=[7.2] * 3, pbc=True)
    gas.calc = Free()
    MaxwellBoltzmannDistribution(gas, temperature_K=1.1 * target, rng=np.random.default_rng(0), force_temp=True)
    Stationary(gas)
    dyn = nose_hoover_chain.NoseHooverChainNVT(gas, timestep=used["timestep"], temperature_K=target,
                                               tdamp=used["tdamp"], tchain=1)  # fmt: skip
    dev = []
    for _ in range(400):
        dyn.run(1)
        dev.append(gas.get_temperature() - target)
    dev = np.array(dev)
    up = np.flatnonzero((dev[:-1] < 0) & (dev[1:] >= 0))  # upward zero crossings, one per period
    assert len(up) >= 5
    assert np.diff(up).mean() == pytest.approx(40, abs=2)  # time steps
    # work folders made with another tdamp (the old 200 fs mapping) are not reused
    from tm23data.generation import local
    from tm23data.generation import settings as settings_module

    info = local.CalculatorInfo("emt", "EMT", "test")
    key = local._checkpoint_key("Cu", "cold", build_supercell("Cu"), info, Settings())
    monkeypatch.setattr(settings_module, "nose_hoover_tdamp_fs", lambda period_fs: period_fs)
    assert local._checkpoint_key("Cu", "cold", build_supercell("Cu"), info, Settings()) != key


def test_chgnet_labels_after_something_set_torch_to_float64():
    """A process that loaded a NequIP model (torch default float64) can still label frames with CHGNet."""
    pytest.importorskip("chgnet")
    import torch
    from ase.build import bulk

    from tm23data.generation.local import make_calculator

    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        calc, _ = make_calculator("chgnet", "Cu")
        atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
        atoms.calc = calc
        assert -6 < atoms.get_potential_energy() / len(atoms) < -2 and torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(saved)
