"""Settings and VASP inputs: the protocol's numbers, INCAR/KPOINTS/POSCAR/POTCAR.spec for all 27 metals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tm23data import elements
from tm23data.generation.settings import MP_POTCARS, MDSettings, Settings
from tm23data.generation.structures import build_supercell
from tm23data.generation.vasp import (
    aimd_incar,
    static_incar,
    format_incar,
    format_poscar,
    static_kmesh,
    write_aimd_inputs,
    write_static_inputs,
)
from tm23data.generation.vaspout import read_incar


def test_protocol_numbers():
    md = MDSettings()
    assert md.total_steps == 11000 and md.duration_fs == 55000  # 55 ps of 5 fs steps
    steps = md.sample_steps()
    assert len(steps) == 1000 and steps[0] == 1010 and steps[-1] == 11000  # first 5 ps dropped, every 50 fs
    assert np.all(np.diff(steps) == 10)
    assert md.thermostat_period_fs == 200  # Nosé mass of 40 steps (VASP SMASS = 0)
    assert md.thermostat_time_fs == pytest.approx(200 / (np.pi * np.sqrt(2)))  # ASE tdamp ≈ 45.0 fs
    assert (md.n_train, md.n_test) == (900, 100)
    small = MDSettings(n_frames=50)
    assert (small.n_train, small.n_test) == (45, 5)
    assert (MDSettings(n_frames=12).n_train, MDSettings(n_frames=2).n_train) == (11, 1)
    with pytest.raises(ValueError, match="not a whole number"):
        MDSettings(interval_fs=52)
    with pytest.raises(ValueError, match="train_fraction"):
        MDSettings(train_fraction=1.0)


def test_settings_overrides_and_errors(tmp_path):
    s = Settings().override(
        {
            "md.n_frames": "50",
            "vasp.incar_static.encut": "600",
            "slurm.partition": "cpu",
            "vasp.kpoints.Cu": "3x3x5",
            "vasp.potcar.W": "W_sv",
            "slurm.modules": "vasp,intel",
        }
    )
    assert s.md.n_frames == 50 and s.vasp.incar("static")["ENCUT"] == 600
    assert s.vasp.kpoints["Cu"] == [3, 3, 5] and s.vasp.potcar_symbol("W") == "W_sv"
    assert s.slurm.partition == "cpu" and s.slurm.modules == ["vasp", "intel"]
    nested = Settings().override({"vasp": {"incar_aimd": {"EDIFF": 1e-6}}, "md": {"n_frames": 20}})
    assert nested.vasp.incar("aimd")["EDIFF"] == 1e-6 and nested.md.n_frames == 20
    assert Settings.from_dict(s.to_dict()) == s  # round trip
    assert Settings().override({"vasp.incar_aimd.LREAL": "none"}).vasp.incar("aimd").get("LREAL") == "none"
    with pytest.raises(ValueError, match="unknown setting 'md.frames'.*md.n_frames"):
        Settings().override({"md.frames": 3})
    with pytest.raises(ValueError, match="takes an integer"):
        Settings().override({"md.n_frames": "many"})
    with pytest.raises(ValueError, match="three positive integers"):
        Settings().override({"vasp.kpoints.Cu": "3x3"})
    with pytest.raises(KeyError):
        Settings().override({"vasp.potcar.Xx": "Xx"})
    path = tmp_path / "bad.json"
    path.write_text('{"md": {"n_frames": 5,}}')
    with pytest.raises(ValueError, match="bad.json, line 1"):
        Settings.load(path)
    path.write_text(json.dumps({"slurm": {"acount": "x"}}))
    with pytest.raises(ValueError, match="slurm.acount"):
        Settings.load(path)


def test_aimd_incar_for_every_element_and_regime(tmp_path):
    settings = Settings()
    for el in elements.symbols():
        for regime in elements.REGIMES:
            tags = aimd_incar(el, regime, settings)
            t = elements.get(el).temperature(regime)
            assert tags["TEBEG"] == tags["TEEND"] == pytest.approx(t, abs=1e-4)
            assert {k: tags[k] for k in ("IBRION", "SMASS", "POTIM", "NSW", "ISYM", "ISPIN", "ENCUT",
                                          "ISMEAR", "SIGMA")} == {
                "IBRION": 0, "SMASS": 0, "POTIM": 5.0, "NSW": 11000, "ISYM": 0, "ISPIN": 1,
                "ENCUT": 520, "ISMEAR": 1, "SIGMA": 0.2}  # fmt: skip
            assert "MDALGO" not in tags  # stock VASP 5.4.1: the classic Nosé thermostat
    # written and read back (ours and pymatgen's INCAR parser agree)
    sc = build_supercell("Hf")
    write_aimd_inputs(tmp_path / "hf", sc, "melt", settings)
    ours = read_incar(tmp_path / "hf" / "INCAR")
    from pymatgen.io.vasp.inputs import Incar, Kpoints

    theirs = Incar.from_file(tmp_path / "hf" / "INCAR")
    assert ours["TEBEG"] == pytest.approx(1.25 * 2506) and theirs["TEBEG"] == pytest.approx(1.25 * 2506)
    assert theirs["LWAVE"] is False and theirs["NSW"] == 11000 and theirs["EDIFF"] == pytest.approx(1e-5)
    k = Kpoints.from_file(tmp_path / "hf" / "KPOINTS")
    assert tuple(k.kpts[0]) == (1, 1, 1) and k.style.name == "Gamma"  # Γ only
    assert (tmp_path / "hf" / "POTCAR.spec").read_text() == "Hf_pv\n"
    meta = json.loads((tmp_path / "hf" / "inputs.json").read_text())
    assert meta["structure"]["natoms"] == 71 and meta["nsw"] == 11000  # 6x3x2 hexagonal cells less one


def test_static_incar_kpoints_and_poscars(tmp_path):
    settings = Settings().override({"vasp.kpoints.W": "4x4x4"})
    frames = []
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = build_supercell("Zr").atoms.copy()
        a.positions += rng.normal(0, 0.3, a.positions.shape)  # some atoms leave the cell: wrapped in the POSCAR
        frames.append(a)
    summary = write_static_inputs(tmp_path / "labels", "Zr", "warm", frames, settings)
    tags = read_incar(tmp_path / "labels" / "INCAR")
    assert {k: tags[k] for k in ("IBRION", "NSW", "ISIF", "ENCUT", "ISMEAR", "SIGMA", "ISPIN")} == {
        "IBRION": -1, "NSW": 0, "ISIF": 2, "ENCUT": 520, "ISMEAR": 1, "SIGMA": 0.2, "ISPIN": 1}  # fmt: skip
    assert summary["kmesh"] == static_kmesh("Zr", frames[0].cell.array, settings.vasp)[0]
    assert "placeholder" in summary["kmesh_source"]
    assert static_kmesh("W", np.eye(3) * 9.56, settings.vasp) == (
        [4, 4, 4],
        "converged mesh from settings (vasp.kpoints)",
    )
    import ase.io
    from pymatgen.io.vasp.inputs import Poscar

    names = sorted(p.name for p in (tmp_path / "labels" / "poscars").iterdir())
    assert names == [f"{i:04d}.vasp" for i in range(5)]
    for i, frame in enumerate(frames):
        path = tmp_path / "labels" / "poscars" / f"{i:04d}.vasp"
        back = ase.io.read(path, format="vasp")
        assert np.allclose(back.cell.array, frame.cell.array, atol=1e-10)
        frac = np.linalg.solve(frame.cell.array.T, (back.positions - frame.positions).T).T
        assert np.abs(frac - np.round(frac)).max() < 1e-10  # same atoms, up to lattice translations
        assert (back.get_scaled_positions(wrap=False) >= 0).all() and (back.get_scaled_positions(wrap=False) < 1).all()
        pmg = Poscar.from_file(path).structure
        assert len(pmg) == len(frame) and np.allclose(pmg.lattice.matrix, frame.cell.array)
    # nothing half-written left behind
    assert not [p for p in (tmp_path / "labels").rglob("*.tmp")]
    # rewriting replaces the folder of POSCARs as a whole
    write_static_inputs(tmp_path / "labels", "Zr", "warm", frames[:2], settings)
    assert len(list((tmp_path / "labels" / "poscars").iterdir())) == 2


def test_potcar_choice_is_the_materials_project_default():
    from importlib import resources

    import yaml

    with resources.files("pymatgen.io.vasp").joinpath("MPRelaxSet.yaml").open() as fh:
        mp = yaml.safe_load(fh)
    assert mp["POTCAR_FUNCTIONAL"] == Settings().vasp.potcar_functional
    assert MP_POTCARS == {el: mp["POTCAR"][el] for el in elements.symbols()}


def test_potcar_through_pymatgen_when_configured(tmp_path, monkeypatch):
    """With PMG_VASP_PSP_DIR set, the POTCAR comes from pymatgen (here a broken setup, reported clearly)."""
    from tm23data.generation.vasp import potcar_files

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    import pymatgen.core

    monkeypatch.setitem(pymatgen.core.SETTINGS, "PMG_VASP_PSP_DIR", None)
    assert potcar_files("Cu", Settings().vasp) == {"POTCAR.spec": "Cu_pv\n"}
    monkeypatch.setenv("PMG_VASP_PSP_DIR", str(tmp_path / "psp"))
    with pytest.raises(RuntimeError, match="cannot give Cu_pv"):
        potcar_files("Cu", Settings().vasp)

    import pymatgen.io.vasp.inputs as inputs

    class FakePotcar:  # stands in for the licensed PAW files: checks what pymatgen is asked for
        def __init__(self, symbols, functional):
            self.symbols, self.functional = symbols, functional

        def __str__(self):
            return f"PAW_{self.functional} {' '.join(self.symbols)}\n"

    monkeypatch.setattr(inputs, "Potcar", FakePotcar)
    assert potcar_files("W", Settings().override({"vasp.potcar.W": "W_sv"}).vasp) == {"POTCAR": "PAW_PBE W_sv\n"}
    write_static_inputs(tmp_path / "w", "W", "cold", [build_supercell("W").atoms], Settings())
    assert (tmp_path / "w" / "POTCAR").read_text() == "PAW_PBE W_pv\n" and not (tmp_path / "w" / "POTCAR.spec").exists()


def test_format_helpers():
    text = format_incar({"LREAL": False, "EDIFF": 1e-6, "ENCUT": 520, "ALGO": "Normal"}, header="two\nlines")
    assert text.splitlines() == ["# two", "# lines", "LREAL = .FALSE.", "EDIFF = 1E-06", "ENCUT = 520", "ALGO = Normal"]
    with pytest.raises(ValueError, match="contiguous"):
        format_poscar(["Cu", "Ag", "Cu"], np.eye(3) * 5, np.zeros((3, 3)))


def test_thermostat_tags_per_vasp_build():
    """Stock VASP 5.4.1 (the paper's): no MDALGO, SMASS=0; a -Dtbdyn build: MDALGO=2 as an option."""
    from tm23data.errors import UsageError
    from tm23data.generation.settings import VaspSettings

    stock = aimd_incar("Cu", "melt", Settings())
    assert "MDALGO" not in stock and stock["SMASS"] == 0 and stock["IBRION"] == 0
    tbdyn = aimd_incar("Cu", "melt", Settings(vasp=VaspSettings(thermostat="mdalgo2")))
    assert tbdyn["MDALGO"] == 2 and tbdyn["SMASS"] == 0
    assert "MDALGO" not in static_incar("Cu", "melt", Settings(vasp=VaspSettings(thermostat="mdalgo2")))
    with pytest.raises(UsageError, match="thermostat"):
        VaspSettings(thermostat="langevin")
