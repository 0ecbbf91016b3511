"""A NequIP baseline on the real single-node SLURM: `tm23 baseline nequip --slurm` submits a job; SLURM
delivers the time-limit warning (USR1 to the batch shell, as `--signal=B:USR1@S` does), the run saves
last.ckpt and exits 75, the job submits its continuation, which trains to the end of the wall-time budget
(counted over both segments) and evaluates.

The warning is sent with `scancel --batch --signal=USR1`, the very signal to the very process that the time
limit sends, at once instead of at slurmctld's next 30-s time-limit check; the time-limit path itself is
tested by test_slurm_time_limit.py (and the job script's `#SBATCH --signal` line here)."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import queued, wait_for, wait_idle

pytest.importorskip("nequip", reason="nequip is not installed (pip install -e '.[nequip]')")

from tm23data.baselines.nequip_run import find_runs  # noqa: E402
from tm23data.cli import main  # noqa: E402

TINY = ["r_max=4.0", "num_layers=1", "l_max=0", "num_features=4", "radial_mlp_depth=1", "radial_mlp_width=8",
        "num_bessels=4", "batch_size=6", "seed=3"]  # fmt: skip


def test_nequip_job_warned_of_its_time_limit_is_continued_by_the_next_job(tmp_path, slurm, cached, monkeypatch):
    monkeypatch.chdir(tmp_path)
    budget_s = 20
    sets = [f"--set={x}" for x in TINY]
    assert main(["baseline", "nequip", "Cu", "--out", "res", "--device", "cpu", "--max-time", str(budget_s), *sets,
                 "--slurm", "--slurm-time", "00:10:00", "--slurm-signal", "300"]) == 0  # fmt: skip
    work = tmp_path / "res" / ".nequip_Cu_full.partial"
    assert "#SBATCH --signal=B:USR1@300" in (tmp_path / "res" / "nequip_Cu_full.sbatch").read_text()

    def epochs() -> int:
        timing = work / "timing.jsonl"
        return sum('"epoch"' in x for x in timing.read_text().splitlines()) if timing.is_file() else 0

    wait_for(lambda: epochs() >= 2, 240, "the first job training")
    [(job, _, _)] = queued()
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)  # the time-limit warning
    wait_for(lambda: (work / "segments.json").is_file() and "preempted" in (work / "segments.json").read_text(),
             60, "the first segment preempted")  # fmt: skip
    wait_idle(300)
    final = tmp_path / "res" / "nequip_Cu_full"
    log = (tmp_path / "res" / "nequip_Cu_full.log").read_text()
    assert "segment ended with status 75" in log and "continued by job" in log, log[-3000:]
    res = json.loads((final / "result.json").read_text())
    segs = res["training"]["segments"]
    assert [s["exit"] for s in segs] == ["preempted", "finished"], segs
    assert segs[0]["slurm_job"] == job and segs[1]["slurm_job"] != job and segs[1]["resumed_from"] == "last.ckpt"
    # the budget is Lightning's training time over both segments: the second stops once the total is reached
    train_s = [json.loads(x) for x in (final / "timing.jsonl").read_text().splitlines()]
    trained = sum(e["train_s"] for e in train_s if e["event"] == "epoch")
    assert trained < budget_s * 1.2 and sum(s["wall_s"] for s in segs) > trained
    assert res["metrics"]["forces"]["mae"] > 0
    [row] = find_runs(tmp_path / "res")
    assert (row["state"], row["segments"]) == ("finished", 2)
