"""VASP output parsing: hand-written vasprun.xml/OUTCAR fixtures with known numbers (units and stress sign),
truncated files, SCF convergence, and the checks that reject a static run."""

from __future__ import annotations

import numpy as np
import pytest

from tm23data.generation import fakevasp
from tm23data.generation.labels import FAILED, MISSING, OK, UNCONVERGED, parse_static
from tm23data.generation.vaspout import (
    TruncatedOutputError,
    VaspOutputError,
    read_outcar,
    read_vasprun,
    read_xdatcar,
)

#: 1 kBar in eV/Å³ (0.1 GPa = 1e8 Pa = 1e8 J/m³; 1 eV = 1.602176634e-19 J; 1 Å³ = 1e-30 m³), written out
#: here so the test does not rely on the constant the code uses.
KBAR = 1e8 * 1e-30 / 1.602176634e-19

# Two Cu atoms in a 3.6 Å cubic cell; stress in kBar with VASP's sign; the e_0_energy of <calculation>/<energy>
# is wrong on purpose (VASP 5 bug): energy(sigma->0) must come from the last electronic step's e_0 - e_fr.
VASPRUN = """<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">5.4.1  </i>
 </generator>
 <incar>
  <i type="int" name="IBRION">    -1</i>
  <i type="int" name="ISIF">     2</i>
 </incar>
 <kpoints>
  <varray name="kpointlist" >
   <v>       0.00000000       0.00000000       0.00000000 </v>
  </varray>
  <varray name="weights" >
   <v>       1.00000000 </v>
  </varray>
 </kpoints>
 <parameters>
  <separator name="electronic" >
   <i type="int" name="NELM">     NELM_VALUE</i>
   <i name="EDIFF">      0.00000100</i>
  </separator>
 </parameters>
 <atominfo>
  <atoms>       2 </atoms>
  <types>       1 </types>
  <array name="atoms" >
   <set>
    <rc><c>Cu</c><c>   1</c></rc>
    <rc><c>Cu</c><c>   1</c></rc>
   </set>
  </array>
 </atominfo>
 <structure name="initialpos" >
  <crystal>
   <varray name="basis" >
    <v>       3.60000000       0.00000000       0.00000000 </v>
    <v>       0.00000000       3.60000000       0.00000000 </v>
    <v>       0.00000000       0.00000000       3.60000000 </v>
   </varray>
  </crystal>
  <varray name="positions" >
   <v>       0.00000000       0.00000000       0.00000000 </v>
   <v>       0.50000000       0.50000000       0.00000000 </v>
  </varray>
 </structure>
 <calculation>
  <scstep>
   <energy>
    <i name="e_fr_energy">     -7.00000000 </i>
    <i name="e_wo_entrp">      -6.90000000 </i>
    <i name="e_0_energy">      -6.95000000 </i>
   </energy>
  </scstep>
  <scstep>
   <energy>
    <i name="e_fr_energy">     -7.40000000 </i>
    <i name="e_wo_entrp">      -7.38000000 </i>
    <i name="e_0_energy">      -7.39000000 </i>
   </energy>
  </scstep>
  <structure>
   <crystal>
    <varray name="basis" >
     <v>       3.60000000       0.00000000       0.00000000 </v>
     <v>       0.00000000       3.60000000       0.00000000 </v>
     <v>       0.00000000       0.00000000       3.60000000 </v>
    </varray>
   </crystal>
   <varray name="positions" >
    <v>       0.00000000       0.00000000       0.00000000 </v>
    <v>       0.50000000       0.50000000       0.00000000 </v>
   </varray>
  </structure>
  <varray name="forces" >
   <v>       0.10000000      -0.20000000       0.30000000 </v>
   <v>      -0.10000000       0.20000000      -0.30000000 </v>
  </varray>
  <varray name="stress" >
   <v>      10.00000000       1.00000000       2.00000000 </v>
   <v>       1.00000000      20.00000000       3.00000000 </v>
   <v>       2.00000000       3.00000000      30.00000000 </v>
  </varray>
  <energy>
   <i name="e_fr_energy">     -7.40000000 </i>
   <i name="e_wo_entrp">      -7.38000000 </i>
   <i name="e_0_energy">      -7.40000000 </i>
  </energy>
 </calculation>
</modeling>
"""

OUTCAR = """ vasp.5.4.1 24Jun15 (build Aug 01 2020) complex

 POTCAR:    PAW_PBE Cu_pv 06Sep2000
 POTCAR:    PAW_PBE Cu_pv 06Sep2000
   ions per type =               2
   k-points           NKPTS =      1   k-points in BZ     NKDIM =      1   number of bands    NBANDS=     24
   NELM   =     60;   NELMIN=  2; NELMDL= -5     # of ELM steps
   EDIFF  = 0.1E-05   stopping-criterion for ELM
   ISPIN  =      1    spin polarized calculation?
 k-points in reciprocal lattice and weights: Gamma
   0.00000000  0.00000000  0.00000000       1.000

----------------------------------------- Iteration      1(   1)  ---------------------------------------
----------------------------------------- Iteration      1(   2)  ---------------------------------------
EDIFF_LINE
  FORCE on cell =-STRESS in cart. coord.  units (eV):
  Direction    XX          YY          ZZ          XY          YZ          ZX
  in kB      10.00000    20.00000    30.00000     1.00000     3.00000     2.00000

      direct lattice vectors                 reciprocal lattice vectors
     3.600000000  0.000000000  0.000000000     0.277777778  0.000000000  0.000000000
     0.000000000  3.600000000  0.000000000     0.000000000  0.277777778  0.000000000
     0.000000000  0.000000000  3.600000000     0.000000000  0.000000000  0.277777778

 POSITION                                       TOTAL-FORCE (eV/Angst)
 -----------------------------------------------------------------------------------
      0.00000      0.00000      0.00000         0.100000     -0.200000      0.300000
      1.80000      1.80000      0.00000        -0.100000      0.200000     -0.300000
 -----------------------------------------------------------------------------------

  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)
  ---------------------------------------------------
  free  energy   TOTEN  =        -7.40000000 eV

  energy  without entropy=       -7.38000000  energy(sigma->0) =       -7.39000000

 General timing and accounting informations for this job:
"""

EXPECTED_STRESS = -KBAR * np.array([[10.0, 1.0, 2.0], [1.0, 20.0, 3.0], [2.0, 3.0, 30.0]])  # ASE sign: negated
EXPECTED_FORCES = np.array([[0.1, -0.2, 0.3], [-0.1, 0.2, -0.3]])


def _vasprun(tmp_path, nelm=60, name="vasprun.xml"):
    path = tmp_path / name
    path.write_text(VASPRUN.replace("NELM_VALUE", str(nelm)))
    return path


def _outcar(tmp_path, converged=True):
    path = tmp_path / "OUTCAR"
    line = " ------------------------ aborting loop because EDIFF is reached ----------------------------------------"
    path.write_text(OUTCAR.replace("EDIFF_LINE", line if converged else ""))
    return path


def test_vasprun_units_sign_and_energy(tmp_path):
    run = read_vasprun(_vasprun(tmp_path))
    step = run.steps[0]
    assert run.symbols == ["Cu", "Cu"] and run.program == "vasp 5.4.1"
    assert step.free_energy == pytest.approx(-7.40)  # TOTEN
    assert step.energy == pytest.approx(-7.39)  # sigma->0, not the wrong -7.40 of <calculation>/<energy>
    assert np.allclose(step.forces, EXPECTED_FORCES)
    assert np.allclose(step.stress, EXPECTED_STRESS, rtol=1e-6)
    assert step.stress[0, 0] == pytest.approx(-6.2415091e-3, rel=1e-6)  # 10 kBar compressive -> -6.24e-3 eV/Å³
    assert np.allclose(step.positions, [[0, 0, 0], [1.8, 1.8, 0]])
    assert step.n_scf == 2 and step.scf_last_change == pytest.approx(0.4)
    assert run.parameters["NELM"] == 60 and run.parameters["EDIFF"] == pytest.approx(1e-6)
    # ASE's own reader gives the same (it is how the published extxyz files were made)
    import ase.io

    ref = ase.io.read(tmp_path / "vasprun.xml", format="vasp-xml")
    assert ref.get_potential_energy() == pytest.approx(step.energy, abs=1e-12)
    assert np.allclose(run.atoms(0).get_stress(), ref.get_stress(), atol=1e-15)


def test_outcar_units_sign_and_scf(tmp_path):
    run = read_outcar(_outcar(tmp_path))
    step = run.steps[0]
    assert step.energy == pytest.approx(-7.39) and step.free_energy == pytest.approx(-7.40)
    assert np.allclose(step.forces, EXPECTED_FORCES)
    assert np.allclose(step.stress, EXPECTED_STRESS, rtol=1e-6)  # XX YY ZZ XY YZ ZX order handled
    assert step.n_scf == 2 and step.scf_converged is True
    assert run.parameters["NELM"] == 60
    assert read_outcar(_outcar(tmp_path, converged=False)).steps[0].scf_converged is False


def test_truncated_files_name_file_and_line(tmp_path):
    text = VASPRUN.replace("NELM_VALUE", "60")
    cut = text[: text.index('<varray name="forces"')]
    (tmp_path / "vasprun.xml").write_text(cut)
    with pytest.raises(TruncatedOutputError, match=r"vasprun.xml, line \d+: .*after 0 complete ionic step"):
        read_vasprun(tmp_path / "vasprun.xml")
    kept = read_vasprun(tmp_path / "vasprun.xml", allow_truncated=True)
    assert not kept.complete and len(kept.steps) == 0
    # OUTCAR without VASP's closing summary
    (tmp_path / "OUTCAR").write_text(OUTCAR.replace(" General timing and accounting informations for this job:\n", ""))
    with pytest.raises(TruncatedOutputError, match="OUTCAR does not end with VASP's timing summary"):
        read_outcar(tmp_path / "OUTCAR")
    # XDATCAR cut inside the last configuration
    images = _images(3)
    (tmp_path / "XDATCAR").write_text(fakevasp.xdatcar_text(images, truncate_last=True))
    with pytest.raises(TruncatedOutputError, match=r"XDATCAR, line \d+: XDATCAR ends inside configuration 3"):
        read_xdatcar(tmp_path / "XDATCAR")
    kept = read_xdatcar(tmp_path / "XDATCAR", allow_truncated=True)
    assert len(kept.steps) == 2 and not kept.complete
    # damaged, not truncated: a clear error with the line
    lines = fakevasp.xdatcar_text(images).splitlines()
    lines[9] = "  0.1  abc  0.3"
    (tmp_path / "XDATCAR").write_text("\n".join(lines) + "\n")
    with pytest.raises(VaspOutputError, match=r"XDATCAR, line 10: expected 3 coordinates"):
        read_xdatcar(tmp_path / "XDATCAR")


def _images(n, natoms_cell=2, seed=0):
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(natoms_cell)
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        out.append(a)
    return out


def test_xdatcar_matches_ase(tmp_path):
    import ase.io

    images = _images(4)
    (tmp_path / "XDATCAR").write_text(fakevasp.xdatcar_text(images))
    ours = read_xdatcar(tmp_path / "XDATCAR")
    ref = ase.io.read(tmp_path / "XDATCAR", index=":", format="vasp-xdatcar")
    assert len(ours) == len(ref) == 4
    for s, r in zip(ours.steps, ref):
        assert np.allclose(s.positions, r.positions, atol=1e-12) and np.allclose(s.cell, r.cell.array)


# --------------------------------------------------------------------------------------------------
# Static labels: accepted and rejected runs


def test_parse_static_accepts_a_good_run(tmp_path):
    _vasprun(tmp_path)
    result = parse_static(tmp_path)
    assert result.status == OK and result.path.name == "vasprun.xml"
    atoms = result.atoms
    assert atoms.get_potential_energy() == pytest.approx(-7.39)
    assert np.allclose(atoms.get_stress(voigt=False), EXPECTED_STRESS, rtol=1e-6)
    # the frame it should have labelled: same structure -> ok; another one -> failed, with the reason
    assert parse_static(tmp_path, expected=atoms.copy()).status == OK
    other = atoms.copy()
    other.positions[1] += [0.2, 0, 0]
    bad = parse_static(tmp_path, expected=other)
    assert bad.status == FAILED and "does not belong to this frame" in bad.message
    shifted = atoms.copy()
    shifted.positions[0] += [3.6, 0, 0]  # a lattice translation is the same frame
    assert parse_static(tmp_path, expected=shifted).status == OK


def test_parse_static_rejects_unconverged_and_incomplete_runs(tmp_path):
    (tmp_path / "a").mkdir()
    _vasprun(tmp_path / "a", nelm=2)  # used all NELM = 2 steps, last change 0.4 eV >> EDIFF
    res = parse_static(tmp_path / "a")
    assert res.status == UNCONVERGED and "NELM = 2" in res.message and "vasprun.xml" in res.message
    (tmp_path / "b").mkdir()
    _outcar(tmp_path / "b", converged=False)
    res = parse_static(tmp_path / "b", prefer="outcar")
    assert res.status == UNCONVERGED
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "vasprun.xml").write_text(VASPRUN.replace("NELM_VALUE", "60").replace(
        VASPRUN[VASPRUN.index('  <varray name="stress"'):VASPRUN.index("  <energy>\n   <i name=\"e_fr_energy\">     -7.40000000 </i>\n   <i name=\"e_wo_entrp\">      -7.38000000 </i>\n   <i name=\"e_0_energy\">      -7.40000000")], ""))  # fmt: skip
    res = parse_static(tmp_path / "c")
    assert res.status == FAILED and "ISIF >= 2" in res.message  # no stress
    (tmp_path / "d").mkdir()
    assert parse_static(tmp_path / "d").status == MISSING
    (tmp_path / "e").mkdir()
    text = VASPRUN.replace("NELM_VALUE", "60")
    (tmp_path / "e" / "vasprun.xml").write_text(text[: len(text) // 2])
    res = parse_static(tmp_path / "e")
    assert res.status == FAILED and "stops inside" in res.message
    # a cut vasprun.xml next to a complete OUTCAR: the OUTCAR is used
    _outcar(tmp_path / "e")
    assert parse_static(tmp_path / "e").status == OK


def test_fakevasp_files_read_like_vasp(tmp_path):
    """The stand-in VASP's files parse the same with ASE's readers and ours (used by the pipeline tests)."""
    import ase.io
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    images = []
    for a in _images(2):
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, free_energy=e + 1e-3, forces=f, stress=s)
        images.append(a)
    incar = {"NELM": 60, "EDIFF": 1e-6, "IBRION": -1, "ISIF": 2}
    (tmp_path / "vasprun.xml").write_text(fakevasp.vasprun_text(images, incar))
    (tmp_path / "OUTCAR").write_text(fakevasp.outcar_text(images, incar))
    ours_xml, ours_out = read_vasprun(tmp_path / "vasprun.xml"), read_outcar(tmp_path / "OUTCAR")
    ase_xml = ase.io.read(tmp_path / "vasprun.xml", index=":", format="vasp-xml")
    for k, ref in enumerate(images):
        for atoms in (ours_xml.atoms(k), ours_out.atoms(k), ase_xml[k]):
            assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-7)
            assert np.allclose(atoms.get_forces(), ref.get_forces(), atol=1e-6)
            assert np.allclose(atoms.get_stress(), ref.get_stress(), atol=1e-8)


def test_scf_rule():
    from tm23data.generation.labels import scf_converged

    assert scf_converged(12, 60, 1e-6, None, 1e-3) is True  # stopped before NELM: EDIFF was reached
    assert scf_converged(60, 60, 1e-6, None, 1e-3) is False  # used every step, still changing
    assert scf_converged(60, 60, 1e-6, None, 1e-8) is True  # reached EDIFF exactly at the last step
    assert scf_converged(60, 60, 1e-6, False, 1e-8) is False  # the OUTCAR's explicit verdict wins
    assert scf_converged(None, None, None, None, None) is None


def test_outcar_overrules_a_vasprun_that_looks_converged(tmp_path):
    _vasprun(tmp_path)  # 2 of 60 steps: looks converged
    _outcar(tmp_path, converged=False)  # but VASP never printed "aborting loop because EDIFF is reached"
    assert parse_static(tmp_path).status == UNCONVERGED
