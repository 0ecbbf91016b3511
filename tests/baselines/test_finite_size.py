"""The paper's finite-size check (Fig. 7) through the local pipeline: a large cell at explicit repeats
without vacancy (Os: 8x8x5 = 640 atoms in the paper; here Cu 4x4x5 = 320 with EMT, to stay quick), frames
split 4:1 per regime (the paper: 200 train / 50 test at 1.25 T_melt), then the FLARE grid on the melt split."""

from __future__ import annotations

import json
import zipfile

import pytest

pytestmark = pytest.mark.flare
pytest.importorskip("flare.bffs.sgp._C_flare",
                    reason="mir-flare is not installed: run `bash scripts/install_flare.sh` (or `tm23 install-flare`)")  # fmt: skip

from tm23data.cli import main  # noqa: E402


def test_large_cell_archive_and_the_flare_grid_on_its_melt_frames(tm23_home, tmp_path, capsys):
    big = tmp_path / "big.zip"
    assert main(["generate", "Cu", "--calculator", "emt", "--set", "structure.repeat=4,4,5",
                 "--set", "structure.vacancy=false", "--frames", "5", "--train-fraction", "0.8",
                 "--equilibration-fs", "10", "--interval-fs", "10", str(big), "--no-progress"]) == 0  # fmt: skip
    assert "320 atoms (4x4x5, no vacancy)" in capsys.readouterr().out
    with zipfile.ZipFile(big) as zf:
        st = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))["elements"]["Cu"]["structure"]
    assert (st["natoms"], st["n_sites"], st["vacancy_site"], st["rule"]) == (320, 320, None, "explicit")
    assert main(["import", str(big), "--name", "cu320"]) == 0
    out = tmp_path / "grid"
    assert main(["--archive", "cu320", "grid", "flare", "Cu", "--split", "melt", "--n-train", "4", "--n-test", "1",
                 "--r-cut", "4", "5", "--n-max", "2", "--l-max", "0", "--out", str(out)]) == 0  # fmt: skip
    rows = json.loads((out / "grid.json").read_text())["rows"]
    assert [r["r_cut"] for r in rows] == [4.0, 5.0] and all(r["forces_mae"] > 0 for r in rows)
