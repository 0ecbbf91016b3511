"""An AIMD job that reaches its time limit: SLURM signals it (--signal=B:USR1@stop_margin_s), the job writes a
STOPCAR, VASP stops cleanly, and the resubmission continues from CONTCAR to the end."""

from __future__ import annotations

import json
import subprocess

from helpers import campaign_args, queued, submissions, wait_for, wait_idle

from tm23data.cli import main


def test_time_limit_stop_and_resume(tmp_path, slurm, monkeypatch, capsys):
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--regimes", "cold", *campaign_args(tmp_path),
                 "--set", "md.regimes=cold", "--set", "slurm.time_aimd=00:10:00",
                 "--set", "slurm.stop_margin_s=300"]) == 0  # fmt: skip
    monkeypatch.setenv("TM23_FAKE_VASP_STEP_S", "8")  # 8 steps of 8 s
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    job = submissions(root)[0]["job_id"]
    wait_for(lambda: any(j == job and s == "RUNNING" for j, s, _ in queued()), 30, "the AIMD job running")
    # the limit moves to 4 minutes: under the 300 s margin, so SLURM signals the job at its next check
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=00:04:00"], check=True)
    wait_idle(150)
    aimd = root / "Cu" / "cold" / "aimd"
    status = (aimd / "STATUS").read_text()
    assert status.startswith("partial: ") and "of 8 steps" in status, status
    log = (root / "logs" / f"tm23-Cu-cold-aimd-{job}.out").read_text()
    assert "time limit near, asked VASP to stop" in log and (aimd / "seg000" / "STOPCAR").is_file()
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    assert "partial (1 segments)" in capsys.readouterr().out
    monkeypatch.delenv("TM23_FAKE_VASP_STEP_S")
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    wait_idle()
    assert (aimd / "STATUS").read_text() == "done\n"
    assert "starts from seg000/CONTCAR" in (root / "logs" / f"tm23-Cu-cold-aimd-{submissions(root)[1]['job_id']}.out").read_text()
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    assert "8/8" in capsys.readouterr().out
    # frames at steps 4, 6, 8 of the one trajectory, taken from the segment that holds each
    assert main(["vasp-inputs", str(root), "--stage", "labels"]) == 0
    meta = json.loads((aimd.parent / "frames.json").read_text())
    cut = int(status.split()[1])  # steps made by the first segment
    assert meta["steps"] == [4, 6, 8] and len(meta["sources"]) == (2 if 4 <= cut < 8 else 1), (cut, meta)
