"""FLARE per label set (paper Fig. 9a, 9e): the same frames with two label sets give one row each, named from
the provenance's change; identical labels give identical errors (only the labels matter), other labels other
errors; archives of other frames are refused. Needs mir-flare (scripts/install_flare.sh)."""

from __future__ import annotations

import copy

import pytest

pytestmark = pytest.mark.flare
pytest.importorskip("flare.bffs.sgp._C_flare",
                    reason="mir-flare is not installed: run `bash scripts/install_flare.sh` (or `tm23 install-flare`)")  # fmt: skip

from tm23data.archive import write_archive  # noqa: E402
from tm23data.baselines.flare import FlareSettings  # noqa: E402
from tm23data.baselines.labelsets import flare_per_label_set  # noqa: E402
from tm23data.errors import DataError  # noqa: E402

SMALL = FlareSettings(r_cut=4.5, n_max=4, l_max=2, optimize_start=5)


def test_one_row_per_label_set(tmp_path):
    from tm23data.generation.synthetic import synthetic_members

    a = synthetic_members("Cu", 3, 1, seed=5)
    b = copy.deepcopy(a)
    for frames in b.values():
        frames.forces *= 1.5
        frames.forces[::3] *= -1.0  # not a rescaled PES: other labels of the same frames
    write_archive(tmp_path / "a.zip", {"Cu": a}, {"what": "A", "settings": {"vasp": {"incar_static": {"SIGMA": 0.2}}}})
    write_archive(tmp_path / "same.zip", {"Cu": a}, {"what": "A again"})
    write_archive(tmp_path / "b.zip", {"Cu": b}, {"what": "B", "change": {"SIGMA": 1.0},
                                                  "settings": {"vasp": {"incar_static": {"SIGMA": 1.0}}}})  # fmt: skip
    rep = flare_per_label_set("Cu", [tmp_path / "a.zip", tmp_path / "same.zip", tmp_path / "b.zip"], settings=SMALL,
                              out=tmp_path / "out")  # fmt: skip
    rows = rep["rows"]
    assert [(r["label_set"], r["sigma_eV"]) for r in rows] == [("as generated", 0.2), ("as generated", None),
                                                                ("SIGMA = 1.0", 1.0)]  # fmt: skip
    assert rows[0]["n_train"] == 9 and rows[0]["n_test"] == 3
    assert rows[0]["forces_percent"] == pytest.approx(rows[1]["forces_percent"], rel=1e-9)
    assert rows[2]["forces_percent"] != pytest.approx(rows[0]["forces_percent"], rel=1e-3)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| b.zip | SIGMA = 1.0 | 1.0 |" in md
    assert len((tmp_path / "out" / "labelsets.csv").read_text().splitlines()) == 4
    moved = copy.deepcopy(a)
    for frames in moved.values():
        frames.positions += 0.05
    write_archive(tmp_path / "moved.zip", {"Cu": moved}, {"what": "other frames"})
    with pytest.raises(DataError, match="positions differ"):
        flare_per_label_set("Cu", [tmp_path / "a.zip", tmp_path / "moved.zip"], settings=SMALL)
