"""A NequIP baseline on the real single-node SLURM: `tm23 baseline nequip --slurm` submits a job; its time
limit is cut so SLURM sends the warning signal, the run saves last.ckpt and exits 75, the job submits its
continuation, which trains to the end of the wall-time budget (counted over both segments) and evaluates."""

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


@pytest.mark.slow  # ~3.5 min of real training on 2 cores: outside the default run's 10-minute budget
def test_nequip_job_cut_by_its_time_limit_is_continued_by_the_next_job(tmp_path, slurm, cached, monkeypatch):
    monkeypatch.chdir(tmp_path)
    budget_s = 90
    sets = [f"--set={x}" for x in TINY]
    assert main(["baseline", "nequip", "Cu", "--out", "res", "--device", "cpu", "--max-time", str(budget_s), *sets,
                 "--slurm", "--slurm-time", "00:10:00", "--slurm-signal", "300"]) == 0  # fmt: skip
    work = tmp_path / "res" / ".nequip_Cu_full.partial"

    def epochs() -> int:
        timing = work / "timing.jsonl"
        return sum('"epoch"' in x for x in timing.read_text().splitlines()) if timing.is_file() else 0

    wait_for(lambda: epochs() >= 2, 240, "the first job training")
    [(job, _, _)] = queued()
    # a limit under the 300 s warning margin: SLURM signals the job at its next check
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=00:04:00"], check=True)
    wait_for(lambda: (work / "segments.json").is_file() and "preempted" in (work / "segments.json").read_text(),
             180, "the first segment preempted")  # fmt: skip
    wait_idle(600)
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
