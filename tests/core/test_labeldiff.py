"""`tm23 compare-labels` on two label sets whose differences are known by construction: per regime, forces
scaled by 1.1 (a purely radial change), forces reversed (a purely angular one: |F| kept, 180°), stress and
energy shifted; and frames that are not the same are refused, naming the frame."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from support import needs

from tm23data import elements
from tm23data.archive import write_archive
from tm23data.cli import main
from tm23data.errors import DataError
from tm23data.labeldiff import compare_archives


@pytest.fixture(scope="module")
def label_sets(tmp_path_factory):
    from tm23data.generation.synthetic import synthetic_members

    tmp = tmp_path_factory.mktemp("labels")
    a = synthetic_members("Cu", 3, 1, seed=3)
    b = copy.deepcopy(a)
    for part in ("train", "test"):
        cold, warm, melt = (b[f"{r}_nequip_{part}"] for r in elements.REGIMES)
        cold.forces *= 1.1
        cold.energy += 0.01 * cold.natoms  # +0.01 eV/atom, the same for every frame
        warm.forces *= -1.0
        melt.stress += 0.001
    for kind in ("2700cwm_train", "2700cwm_test"):  # not read by the comparison; kept consistent anyway
        b[kind] = a[kind]
    write_archive(tmp / "a.zip", {"Cu": a}, {"what": "set A"})
    write_archive(tmp / "b.zip", {"Cu": b}, {"what": "set B", "settings": {"vasp": {"incar_static": {"SIGMA": 1.0}}}})
    return tmp, a


def test_known_differences_per_regime(label_sets):
    tmp, a = label_sets
    report = compare_archives(tmp / "a.zip", tmp / "b.zip")
    rows = {r["regime"]: r for r in report.rows}
    assert list(rows) == ["cold", "warm", "melt", "all"]
    cold_f = np.concatenate([a[f"cold_nequip_{p}"].forces for p in ("train", "test")])
    mean_f = np.linalg.norm(cold_f, axis=1).mean()
    cold = rows["cold"]
    assert (cold["n_frames"], cold["n_atoms"]) == (4, 4 * 31)
    assert cold["force_radial"] == pytest.approx(0.1 * mean_f, rel=1e-6)
    assert cold["force_vector"] == pytest.approx(0.1 * mean_f, rel=1e-6)  # same direction: vector = radial
    assert cold["force_angle_deg"] == pytest.approx(0.0, abs=1e-3)
    assert cold["energy_shift"] == pytest.approx(0.01, abs=1e-7) and cold["energy_spread"] == pytest.approx(0, abs=1e-7)
    assert cold["force_mav_b"] == pytest.approx(1.1 * cold["force_mav_a"], rel=1e-6)
    warm = rows["warm"]
    assert warm["force_radial"] == pytest.approx(0.0, abs=1e-7)
    assert warm["force_vector"] == pytest.approx(2 * warm["force_mav_a"], rel=1e-6)
    assert warm["force_angle_deg"] == pytest.approx(180.0, abs=1e-3)
    assert warm["force_vector_over_radial"] is None or warm["force_vector_over_radial"] > 1e3
    melt = rows["melt"]
    assert melt["force_vector"] == pytest.approx(0.0, abs=1e-12) and melt["stress_mae"] == pytest.approx(0.001, rel=1e-6)
    assert cold["stress_mae"] == pytest.approx(0.0, abs=1e-12)
    assert rows["all"]["n_frames"] == 12
    assert rows["all"]["force_radial"] == pytest.approx((cold["force_radial"] + melt["force_radial"] + warm["force_radial"]) / 3,
                                                        rel=1e-9)  # equal atom counts per regime
    md = report.to_markdown()
    assert "set B [static SIGMA = 1.0 eV]" in md and md.count("\n| Cu |") == 4
    train_only = {r["regime"]: r for r in compare_archives(tmp / "a.zip", tmp / "b.zip", subset="train").rows}
    assert train_only["cold"]["n_frames"] == 3 and train_only["all"]["n_frames"] == 9
    cold_train = np.linalg.norm(a["cold_nequip_train"].forces, axis=1).mean()
    assert train_only["cold"]["force_radial"] == pytest.approx(0.1 * cold_train, rel=1e-6)
    csv_rows = report.to_csv().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("element,regime,n_frames,n_atoms,energy_shift_eV/atom")


def test_other_frames_are_refused(label_sets, tmp_path):
    tmp, a = label_sets
    moved = copy.deepcopy(a)
    test = moved["warm_nequip_test"]
    test.positions[5] += 0.01  # frame 3 of warm (3 train + this one test)
    write_archive(tmp_path / "moved.zip", {"Cu": moved})
    with pytest.raises(DataError, match=r"Cu warm frame 3: positions differ by up to 0.01"):
        compare_archives(tmp / "a.zip", tmp_path / "moved.zip")


@needs("matplotlib", extra="plot")
def test_cli_writes_markdown_csv_and_png(label_sets, tmp_path, capsys):
    tmp, _ = label_sets
    assert main(["compare-labels", str(tmp / "a.zip"), str(tmp / "b.zip"), "--markdown", str(tmp_path / "r.md"),
                 "--csv", str(tmp_path / "r.csv"), "--png", str(tmp_path / "r.png")]) == 0  # fmt: skip
    assert (tmp_path / "r.md").read_text().startswith("# Label differences, B - A")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare-labels", str(tmp / "a.zip"), str(tmp / "b.zip"), "--elements", "Ti"]) == 1
    assert "Ti not in both archives" in capsys.readouterr().err
