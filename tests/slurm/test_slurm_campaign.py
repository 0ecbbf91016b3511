"""The HPC path end to end on a real SLURM with the stand-in VASP: vasp-inputs -> submit aimd -> label
inputs -> submit labels -> collect -> the archive loads; in a folder with a space, moved between the AIMD
and the labels, with a relative POTCAR folder."""

from __future__ import annotations

import json
import shutil
import zipfile

from helpers import campaign_args, potcars, submissions, wait_idle

from tm23data import elements
from tm23data.cli import main


def test_campaign_end_to_end_moved_and_with_a_space(tmp_path, slurm, tm23_home, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    potcars(tmp_path / "my pots")
    root = tmp_path / "first place" / "camp"
    # a relative slurm.potcar_dir is stored absolute: the jobs run in other folders
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd",
                 *campaign_args(tmp_path, potcar_dir="my pots/paw")]) == 0  # fmt: skip
    assert json.loads((root / "campaign.json").read_text())["settings"]["slurm"]["potcar_dir"] == str(
        tmp_path / "my pots" / "paw"
    )
    assert '#SBATCH --output="' in (root / "Cu" / "cold" / "aimd" / "aimd.sbatch").read_text()
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    wait_idle()
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0  # everything done: nothing submitted
    assert len(submissions(root)) == 3
    for regime in elements.REGIMES:
        assert (root / "Cu" / regime / "aimd" / "STATUS").read_text() == "done\n"
        assert (root / "Cu" / regime / "aimd" / "seg000" / "POTCAR").read_text() == "stand-in PAW_PBE Cu_pv\n"
    # the campaign moves (another file system, a new user folder): its jobs run where it is now
    moved = tmp_path / "second place" / "camp 2"
    moved.parent.mkdir()
    shutil.move(root, moved)
    assert main(["vasp-inputs", str(moved), "--stage", "labels"]) == 0
    assert main(["slurm", "submit", str(moved), "--stage", "labels"]) == 0
    wait_idle()
    assert str(root) not in (moved / "Cu" / "cold" / "labels" / "labels.sbatch").read_text()
    capsys.readouterr()
    assert main(["slurm", "status", str(moved)]) == 0
    out = capsys.readouterr().out
    assert out.count(" done") >= 3 and "3/3" in out, out
    assert main(["collect", str(moved), str(tmp_path / "out.zip"), "--no-progress"]) == 0
    md5 = capsys.readouterr().out.split("md5:")[1].split()[0]
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
    assert prov["calculator"] == "vasp" and prov["labels"]["programs"] == ["fakevasp 5.4.1"]
    assert len(list((moved / "logs").glob("*-labels-*.out"))) == 3  # the label tasks wrote into the moved folder
    assert main(["import", str(tmp_path / "out.zip"), "--md5", md5]) == 0
    monkeypatch.setenv("TM23_MD5", md5)
    from tm23data import load_tm23

    ds = load_tm23("Cu", progress=False)
    assert len(ds["train"]) + len(ds["test"]) == 9
