"""Structures: the lattice table, the supercell rule for all 27 metals, the vacancy, overrides and the
archive-reading path."""

from __future__ import annotations

import numpy as np
import pytest
from support import needs

from tm23data import elements
from tm23data.frames import Frames
from tm23data.generation.settings import StructureSettings
from tm23data.generation.structures import (
    StructureError,
    build_supercell,
    cell_from_frames,
    from_materials_project,
    lattice,
    lattice_table,
    min_image_distance,
    perpendicular_widths,
    read_structure_file,
    select_gga_entry,
    supercell_from_frames,
    supercell_repeat,
)

#: (repeat, atoms after the vacancy) under the default rule: every conventional lattice vector >= 7 Å.
EXPECTED_VECTORS = {
    "Ag": ((2, 2, 2), 31), "Au": ((2, 2, 2), 31), "Cd": ((3, 3, 2), 35), "Co": ((3, 3, 2), 35), "Cr": ((3, 3, 3), 53),
    "Cu": ((2, 2, 2), 31), "Fe": ((3, 3, 3), 53), "Hf": ((3, 3, 2), 35), "Hg": ((3, 3, 2), 53), "Ir": ((2, 2, 2), 31),
    "Mn": ((1, 1, 1), 57), "Mo": ((3, 3, 3), 53), "Nb": ((3, 3, 3), 53), "Ni": ((2, 2, 2), 31), "Os": ((3, 3, 2), 35),
    "Pd": ((2, 2, 2), 31), "Pt": ((2, 2, 2), 31), "Re": ((3, 3, 2), 35), "Rh": ((2, 2, 2), 31), "Ru": ((3, 3, 2), 35),
    "Ta": ((3, 3, 3), 53), "Tc": ((3, 3, 2), 35), "Ti": ((3, 3, 2), 35), "V": ((3, 3, 3), 53), "W": ((3, 3, 3), 53),
    "Zn": ((3, 3, 2), 35), "Zr": ((3, 3, 2), 35),
}  # fmt: skip


def test_table_covers_the_27_metals_with_source_and_certainty():
    table = lattice_table()
    assert sorted(table) == elements.symbols()
    for el, entry in table.items():
        assert entry.source and entry.certainty in ("archive", "pbe", "pbe-estimate", "experimental"), el
        assert entry.structure == elements.get(el).structure, el  # one structure per metal, as the elements table
    # the Materials Project PBE values are marked pbe; hcp metals where CHGNet and SevenNet-0 agree carry their
    # mean (pbe-estimate, above experiment for Ru), the others keep the experimental value and say "unverified"
    assert lattice("W").certainty == "pbe" and lattice("W").a_A == pytest.approx(3.1874)
    ru = lattice("Ru")
    assert ru.certainty == "pbe-estimate" and ru.a_exp_A == pytest.approx(2.70) and ru.a_A > ru.a_exp_A
    assert lattice("Zr").certainty == "experimental" and "unverified" in lattice("Zr").source
    assert lattice("Zr").a_A == lattice("Zr").a_exp_A and "disagree" in lattice("Zr").expected_error
    assert lattice("Hg").certainty == "experimental" and "unusable" in lattice("Hg").expected_error
    assert lattice("Cu").certainty == "archive" and lattice("Cu").a_A == 3.621262
    assert lattice("Cu").tm23_repeat == (3, 3, 2)


@pytest.mark.parametrize("element", sorted(EXPECTED_VECTORS))
def test_supercell_of_every_metal(element):
    """Rule "vectors" (the paper's wording alone): the fewest repeats with every vector >= 7 Å."""
    sc = build_supercell(element, StructureSettings(rule="vectors"))
    repeat, natoms = EXPECTED_VECTORS[element]
    assert sc.repeat == repeat
    assert sc.natoms == natoms == sc.n_sites - 1
    assert (sc.atoms.cell.lengths() >= 7.0).all()
    assert set(sc.atoms.get_chemical_symbols()) == {element}
    assert sc.atoms.pbc.all()
    # one repeat fewer along any axis would break the rule: the supercell is the smallest one
    unit = np.asarray(sc.atoms.cell.array) / np.array(repeat)[:, None]
    for axis in range(3):
        if repeat[axis] > 1:
            assert np.linalg.norm(unit[axis]) * (repeat[axis] - 1) < 7.0
    # no two atoms closer than in the crystal (2.1 Å is below every metal's nearest neighbours; alpha-Mn: 2.18 Å)
    from ase.neighborlist import neighbor_list

    assert neighbor_list("d", sc.atoms, 2.1).size == 0
    assert 31 <= sc.natoms <= 71  # fcc: 32 sites, 31 atoms: one below the paper's 32-71 atoms


def test_special_cells():
    entry = lattice("Mn")
    mn = entry.conventional_cell(a_A=entry.a_exp_A)
    assert len(mn) == 58  # alpha-Mn, I-43m
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", mn, 3.0)
    assert 2.2 < d.min() < 2.3  # alpha-Mn's shortest bond at the experimental a, ~2.24 Å
    # the default (pbe-estimate) a scales the same fractional positions
    scaled = d.min() * entry.a_A / entry.a_exp_A
    assert neighbor_list("d", entry.conventional_cell(), 3.0).min() == pytest.approx(scaled)
    hg = lattice("Hg").conventional_cell()
    assert len(hg) == 3  # hexagonal setting of R-3m
    d = neighbor_list("d", hg, 3.2)
    assert d.min() == pytest.approx(2.99, abs=1e-6)  # rhombohedral a = nearest-neighbour distance
    hcp = lattice("Ti").conventional_cell()
    assert len(hcp) == 2 and hcp.cell.cellpar()[5] == pytest.approx(120)


def test_rules_and_the_published_cu_cell():
    cu = build_supercell("Cu", StructureSettings(rule="vectors"))
    assert cu.repeat == (2, 2, 2) and any("3x3x2" in n for n in cu.notes)  # the disagreement is reported
    assert not any("3x3x2" in n for n in build_supercell("Cu").notes)  # the default rule gives the published cell
    tm23 = build_supercell("Cu", StructureSettings(rule="tm23"))
    assert tm23.repeat == (3, 3, 2) and tm23.natoms == 71
    assert np.allclose(tm23.atoms.cell.lengths(), [10.863786, 10.863786, 7.242524])  # the published Lattice header
    assert not any("3x3x2" in n for n in tm23.notes)
    # images: every atom >= 7 Å from its periodic images; for TM23's cells the same supercells as "vectors"
    for el in elements.symbols():
        sc = build_supercell(el, StructureSettings(rule="images"))
        assert sc.repeat == EXPECTED_VECTORS[el][0], el
        assert min_image_distance(sc.atoms.cell.array) >= 7.0
    # ... but not for a skewed cell, where a vector can be long and an image still close
    skew = np.array([[3.0, 0, 0], [2.9, 1.0, 0], [0, 0, 7.5]])
    assert supercell_repeat(skew, 7.0, "vectors") == (3, 3, 1)
    rep = supercell_repeat(skew, 7.0, "images")
    assert min_image_distance(skew * np.array(rep)[:, None]) >= 7.0
    assert min_image_distance(skew * np.array([3, 3, 1])[:, None]) < 7.0
    assert np.allclose(perpendicular_widths(np.diag([3.0, 4.0, 5.0])), [3.0, 4.0, 5.0])
    assert build_supercell("W", StructureSettings(min_length_A=10, rule="vectors")).repeat == (4, 4, 4)
    assert build_supercell("W", repeat=(2, 2, 2)).natoms == 15
    assert supercell_repeat(np.diag([3.5, 3.5, 7.0]), 7.0) == (2, 2, 1)


def test_vacancy_is_seeded():
    a = build_supercell("Pt", StructureSettings(seed=3))
    b = build_supercell("Pt", StructureSettings(seed=3))
    assert a.vacancy_index == b.vacancy_index and np.array_equal(a.atoms.positions, b.atoms.positions)
    sites = {build_supercell("Pt", StructureSettings(seed=s)).vacancy_index for s in range(12)}
    assert len(sites) > 3  # the seed moves the vacancy
    perfect = lattice("Pt").conventional_cell().repeat(a.repeat)
    missing = perfect.positions[a.vacancy_index]
    assert np.min(np.linalg.norm(a.atoms.positions - missing, axis=1)) > 2.0  # that site really is empty


def test_structure_file_override(tmp_path):
    import ase.io
    from ase.build import bulk

    prim = bulk("Ni", "fcc", a=3.52)  # primitive, 1 atom: standardised to the 4-atom cubic cell
    ase.io.write(tmp_path / "POSCAR", prim, format="vasp")
    ase.io.write(tmp_path / "ni.cif", prim)
    for path in (tmp_path / "POSCAR", tmp_path / "ni.cif"):
        unit = read_structure_file(path, "Ni")
        assert len(unit) == 4 and np.allclose(unit.cell.lengths(), 3.52, atol=1e-4)
        sc = build_supercell("Ni", unit_cell=unit, lattice_source=f"file {path}")
        assert sc.natoms == 71 and sc.repeat == (3, 3, 2) and sc.certainty == "user"
    with pytest.raises(StructureError, match="expected only Cu"):
        read_structure_file(tmp_path / "POSCAR", "Cu")
    with pytest.raises(FileNotFoundError):
        read_structure_file(tmp_path / "nope.cif", "Ni")


class _Entry:
    def __init__(self, entry_id, run_type, structure=None):
        self.entry_id, self.parameters, self.structure = entry_id, {"run_type": run_type}, structure


def test_materials_project_takes_the_gga_entry_never_r2scan():
    gga, scan = _Entry("mp-23-GGA", "GGA"), _Entry("mp-23-r2SCAN", "r2SCAN")
    assert select_gga_entry([scan, gga], "mp-23") is gga
    bare = _Entry("mp-23-GGA", None)  # run type only in the id
    assert select_gga_entry([bare], "mp-23") is bare
    with pytest.raises(StructureError, match="no GGA .*r2SCAN"):
        select_gga_entry([scan], "mp-23")


def test_materials_project_with_a_fake_rester():
    from pymatgen.core import Lattice, Structure

    a = 3.51
    prim = Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), ["Ni"], [[0, 0, 0]])
    scan = Structure(Lattice.cubic(3.46), ["Ni"] * 4, [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])

    class Rester:
        calls = []

        def get_entries(self, mp_id, **kwargs):
            self.calls.append((mp_id, kwargs))
            return [_Entry(f"{mp_id}-r2SCAN", "r2SCAN", scan), _Entry(f"{mp_id}-GGA", "GGA", prim)]

    rester = Rester()
    unit, source = from_materials_project("Ni", rester=rester)
    assert rester.calls[0][0] == "mp-23"  # the mp-id of the elements table
    assert len(unit) == 4 and np.allclose(unit.cell.lengths(), a)  # the GGA cell, standardised
    assert "GGA" in source


def test_materials_project_without_mp_api_or_key_says_what_to_do(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mp_api", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mp_api.client", None)
    with pytest.raises(RuntimeError, match="pip install mp-api"):
        from_materials_project("Cu")


def _frames_of(atoms_list) -> Frames:
    return Frames.from_atoms(atoms_list)


def test_cell_from_frames_reports_disagreements():
    published = build_supercell("Cu", StructureSettings(rule="tm23")).atoms  # what the real archive holds
    frames = _frames_of([published.copy() for _ in range(3)])
    found = cell_from_frames("Cu", frames, StructureSettings(rule="tm23"))
    assert found.repeat == (3, 3, 2) and found.natoms == 71 and found.a_A == pytest.approx(3.621262)
    assert found.disagreements == []
    # the default rule ("fill") gives the published cell; "vectors" disagrees and says so
    assert cell_from_frames("Cu", frames).disagreements == []
    found = cell_from_frames("Cu", frames, StructureSettings(rule="vectors"))
    assert any("3x3x2" in d and "2x2x2" in d for d in found.disagreements)
    # a lattice constant other than the table's is reported with its size
    w = build_supercell("W").atoms
    w.set_cell(w.cell.array * 1.01, scale_atoms=True)
    found = cell_from_frames("W", _frames_of([w]))
    assert any("+1.00 %" in d for d in found.disagreements)
    sc = supercell_from_frames("W", _frames_of([w]))
    assert sc.natoms == 71 and np.allclose(sc.atoms.cell.array, w.cell.array)


def test_cell_from_frames_refuses_more_than_one_volume():
    a = build_supercell("W").atoms
    b = a.copy()
    b.set_cell(a.cell.array * 1.02, scale_atoms=True)
    with pytest.raises(StructureError, match="frame 1 has another cell"):
        cell_from_frames("W", _frames_of([a, b]))


def test_structures_command_with_an_archive(synthetic_zip, capsys):
    from tm23data.cli import main

    path, _ = synthetic_zip
    assert main(["structures", "Cu", "W", "--archive", str(path), "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    # the synthetic archive uses ASE's experimental lattice constants, not the table's: reported
    assert report["Cu"]["archive"]["natoms"] == 31  # the synthetic archive's own (small) cell
    assert any("lattice" in d for d in report["Cu"]["archive"]["disagreements"])
    assert main(["structures"]) == 0
    out = capsys.readouterr().out
    assert "Hg" in out and "experimental" in out and "3x3x2" in out


def test_fill_rule_reproduces_the_published_cu_cell_and_the_paper_range():
    """The default rule, "fill" (inferred): most sites up to 72 with every vector >= 7 Å; Cu is the published
    3x3x2, and every metal lands in the paper's 32-71 atoms."""
    from tm23data import elements

    assert StructureSettings().rule == "fill"
    cu = build_supercell("Cu")
    assert cu.repeat == (3, 3, 2) and cu.natoms == 71
    for el in elements.symbols():
        sc = build_supercell(el)
        assert 32 <= sc.natoms <= 71, (el, sc.repeat, sc.natoms)
        assert min(np.linalg.norm(sc.atoms.cell.array, axis=1)) >= 7.0 - 1e-9


def test_every_lattice_row_states_source_certainty_and_expected_error():
    from tm23data.generation.structures import CERTAINTIES

    for el, entry in lattice_table().items():
        assert entry.source and entry.expected_error and entry.certainty in CERTAINTIES, el
        assert "shared/" not in entry.source + entry.expected_error
        if entry.certainty == "pbe-estimate":  # the models named with versions, the experimental value kept beside
            assert "CHGNet" in entry.source and "SevenNet-0" in entry.source and "sevenn" in entry.source, el
            assert "check-lattice" in entry.source and "PBE" in entry.expected_error, el
            assert entry.a_exp_A and entry.a_exp_A != entry.a_A, el
            assert (entry.c_over_a_exp is not None) == (entry.structure == "hcp"), el
        if entry.certainty == "experimental":  # says why no estimate and where the exact cell is
            assert entry.a_exp_A == entry.a_A and "PBE" in entry.expected_error, el
            assert "--materials-project" in entry.expected_error and "--structure-from-archive" in entry.expected_error
        if entry.certainty in ("pbe", "archive"):
            assert entry.a_exp_A is None, el


def test_cell_constants_read_back_every_structure():
    """a, c/a, alpha built into a conventional cell come back out (Hg: rhombohedral a and alpha from the
    hexagonal setting); no model needed."""
    from tm23data.generation.latticecheck import cell_constants

    for el in ("Cu", "W", "Zr", "Hg", "Mn"):
        entry = lattice(el)
        a, c_over_a, alpha = cell_constants(entry, entry.conventional_cell(a_A=3.1, c_over_a=1.7, alpha_deg=65.0))
        assert a == pytest.approx(3.1)
        assert c_over_a == (pytest.approx(1.7) if entry.structure == "hcp" else None), el
        assert alpha == (pytest.approx(65.0) if entry.structure == "rhombohedral" else None), el


def test_combine_agrees_only_when_a_and_c_over_a_both_agree():
    from tm23data.errors import UsageError
    from tm23data.generation.latticecheck import LatticeCheck, combine, parse_models

    def check(a, c):
        return LatticeCheck("Zr", "hcp", "experimental", 3.23, 1.593, None, 3.23, a, c, None, "m")

    same_a = combine([check(3.20, 1.60), check(3.21, 1.63)])  # a 0.31 %, c/a 1.86 % apart
    assert same_a.a_A == pytest.approx(3.205) and same_a.shape == pytest.approx(1.615) and not same_a.agree
    both = combine([check(3.20, 1.60), check(3.21, 1.605)])
    assert both.agree and both.spread_a_percent == pytest.approx(100 * 0.01 / 3.205)
    assert not combine([check(3.20, 1.60), check(3.22, 1.60)]).agree  # a 0.62 % apart
    assert parse_models("CHGNet, sevennet-0") == ("chgnet", "sevennet-0")
    with pytest.raises(UsageError, match="chgnet, sevennet-0"):
        parse_models("mace")


def test_estimate_rows_apply_the_rule_to_the_table(tmp_path):
    """--write-table: the mean where the models agree (pbe-estimate, models and date named), the
    experimental value where they disagree or do not keep the cell, and an earlier estimate withdrawn."""
    import csv

    from tm23data.generation.latticecheck import LatticeCheck, combine, estimate_rows, write_table

    def est(el, pairs, certainty=None):
        entry = lattice(el)
        return combine([LatticeCheck(el, entry.structure, certainty or entry.certainty, entry.a_A, entry.c_over_a,
                                     entry.alpha_deg, entry.a_exp_A, a, c if entry.structure == "hcp" else None,
                                     c if entry.structure == "rhombohedral" else None, m, f"{m} 9.9")
                        for m, (a, c) in zip(("chgnet", "sevennet-0"), pairs)])  # fmt: skip

    estimates = {
        "Zr": est("Zr", [(3.250, 1.600), (3.256, 1.604)]),  # agree: 0.18 % / 0.25 %
        "Os": est("Os", [(2.770, 1.556), (2.760, 1.577)]),  # c/a 1.3 % apart
        "Hg": est("Hg", [(3.19, 86.6), (3.57, 60.0)]),  # not kept at all
        "Ti": est("Ti", [(2.93, 1.59), (2.93, 1.62)]),  # an earlier pbe-estimate no longer agrees
        "W": est("W", [(3.1874 * 1.001, None), (3.1874 * 0.998, None)]),  # the calibration row
    }
    fields, rows = estimate_rows(estimates, "2031-01-02")
    by = {r["symbol"]: r for r in rows}
    zr = by["Zr"]
    assert zr["certainty"] == "pbe-estimate" and zr["a_A"] == "3.253" and zr["c_over_a"] == "1.602"
    assert zr["a_exp_A"] == "3.23" and "2031-01-02" in zr["source"] and "SevenNet-0 (sevennet-0 9.9)" in zr["source"]
    assert "a 0.18 %, c/a 0.25 %" in zr["expected_error"] and "1 fcc/bcc" in zr["expected_error"]
    assert "CHGNet 0.10 %, SevenNet-0 0.20 %" in zr["expected_error"]
    assert by["Os"]["certainty"] == "experimental" and by["Os"]["a_A"] == by["Os"]["a_exp_A"]
    assert "disagree" in by["Os"]["expected_error"] and "--materials-project" in by["Os"]["expected_error"]
    assert "unusable" in by["Hg"]["expected_error"] and by["Hg"]["alpha_deg"] == by["Hg"]["alpha_exp_deg"]
    ti = by["Ti"]
    assert ti["certainty"] == "experimental" and (ti["a_A"], ti["c_over_a"]) == (ti["a_exp_A"], ti["c_over_a_exp"])
    assert "CHGNet" not in ti["source"] and "unverified" in ti["source"]
    assert by["W"]["a_A"] == "3.1874" and by["Cu"]["certainty"] == "archive"  # MP and archive rows untouched
    write_table(tmp_path / "lattice.csv", fields, rows)
    with open(tmp_path / "lattice.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == rows
    from tm23data.cli import main

    assert main(["structures", "Cu", "--write-table", str(tmp_path / "x.csv")]) == 1  # needs --check-lattice
    assert not (tmp_path / "x.csv").exists()


def test_lattice_check_relaxes_with_chgnet_offline():
    pytest.importorskip("chgnet", reason="chgnet is not installed (pip install -e '.[generation]')")
    from tm23data.generation.latticecheck import check_lattice
    from tm23data.generation.local import make_calculator

    check = check_lattice("Cu", make_calculator("chgnet", "Cu")[0])
    assert check.table_a_A == pytest.approx(3.621262) and abs(check.da_percent) < 2.0
    assert check.relaxed_c_over_a is None and check.to_dict()["da_percent"] == check.da_percent


def test_explicit_repeats_and_no_vacancy_give_the_finite_size_cell():
    """structure.repeat / structure.vacancy: the 640-atom Os cell of the paper's finite-size check (Fig. 7)."""
    from tm23data.errors import UsageError
    from tm23data.generation.settings import Settings

    s = Settings().override({"structure.repeat": "8,8,5", "structure.vacancy": "false"}).structure
    os640 = build_supercell("Os", s)
    assert os640.repeat == (8, 8, 5) and os640.natoms == os640.n_sites == 640 and os640.vacancy_index is None
    assert os640.to_dict()["vacancy_site"] is None and os640.describe() == "Os supercell 8x8x5 without vacancy"
    assert neighbor_list_empty(os640.atoms)
    cu = build_supercell("Cu", StructureSettings(repeat=[4, 4, 5]))  # explicit: no note about the published cell
    assert cu.natoms == 319 and cu.rule == "explicit" and not any("3x3x2" in n for n in cu.notes)
    with pytest.raises(UsageError, match="three positive integers"):
        StructureSettings(repeat=[8, 8])


def neighbor_list_empty(atoms) -> bool:
    from ase.neighborlist import neighbor_list

    return neighbor_list("d", atoms, 2.2).size == 0


@needs("sevenn")
def test_check_lattice_command_reproduces_a_pbe_estimate_row_with_sevennet(capsys):
    """One model, one hcp metal through the command: SevenNet-0 lands within half the recorded spread (plus
    the table's rounding) of the pbe-estimate mean, starting from the experimental cell."""
    import json

    from tm23data.cli import main
    from tm23data.generation.latticecheck import AGREE_PERCENT

    entry = lattice("Tc")
    assert entry.certainty == "pbe-estimate"
    assert main(["structures", "Tc", "--check-lattice", "sevennet-0", "--threads", "1", "--json"]) == 0
    (check,) = json.loads(capsys.readouterr().out)["Tc"]["lattice_check"]["models"]
    assert check["calculator"] == "sevennet-0" and check["exp_a_A"] == entry.a_exp_A
    tol = AGREE_PERCENT / 2 + 0.05
    assert abs(check["da_percent"]) <= tol
    assert abs(100 * (check["relaxed_c_over_a"] / entry.c_over_a - 1)) <= tol
    assert check["relaxed_a_A"] > entry.a_exp_A  # PBE's larger a, not the experimental cell it started from
