"""What a real scheduler does that a stand-in cannot: array tasks that outlive their base record, a failing
squeue, collect while tasks run, a failed STATUS, settings that change, partition limits, pending reasons,
cancel, failing module loads, and the per-campaign concurrency limit."""

from __future__ import annotations

import pytest
from helpers import campaign_args, job_field, queued, submissions, wait_for, wait_idle

from tm23data.cli import main


@pytest.fixture
def aimd_done(tmp_path, slurm):
    """A Cu campaign (cold regime only) whose AIMD has run, with its label inputs (3 frames)."""
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--regimes", "cold", *campaign_args(tmp_path),
                 "--set", "md.regimes=cold"]) == 0  # fmt: skip
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    wait_idle()
    assert main(["vasp-inputs", str(root), "--stage", "labels"]) == 0
    return root


def _running_tasks() -> list[str]:
    return [j for j, state, _ in queued() if state == "RUNNING" and "_" in j]


def test_running_tasks_are_left_alone_by_submit_and_collect(aimd_done, tmp_path, monkeypatch, capsys):
    """Items 1 and 3: a task still running after its array's base record ended is seen (squeue %F/%K), its
    frames are not submitted again, and collect neither packs nor marks them."""
    root = aimd_done
    monkeypatch.setenv("TM23_FAKE_VASP_STEP_S", "6")
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.chunk_size=1"]) == 0
    wait_for(_running_tasks, 60, "a running array task")
    assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 0
    assert len([s for s in submissions(root) if s["stage"] == "labels"]) == 1  # nothing submitted twice
    capsys.readouterr()
    assert main(["collect", str(root), str(tmp_path / "early.zip"), "--no-progress"]) == 1
    assert "still queued or running" in capsys.readouterr().err
    runs = root / "Cu" / "cold" / "labels" / "runs"
    assert not any((p / "STATUS").is_file() and "failed" in (p / "STATUS").read_text() for p in runs.glob("0*"))
    assert main(["slurm", "status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "running" in out and "pending" in out
    wait_idle(120)
    assert [(p / "STATUS").read_text() for p in sorted(runs.glob("0*"))] == ["done\n"] * 3
    # item 4: a frame whose job said failed is not packed, though its outputs parse; submit runs it again
    (runs / "0001" / "STATUS").write_text("failed: the node died\n")
    monkeypatch.delenv("TM23_FAKE_VASP_STEP_S")
    assert main(["collect", str(root), str(tmp_path / "a.zip"), "--no-progress"]) == 1
    assert "0001" in capsys.readouterr().err
    assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 0
    assert submissions(root)[-1]["frames"] == ["0001"]
    wait_idle()
    assert (runs / "0001" / "STATUS").read_text() == "done\n"
    capsys.readouterr()
    assert main(["collect", str(root), str(tmp_path / "a.zip"), "--no-progress"]) == 1  # only cold was run:
    assert "no frames for regime(s) warm, melt" in capsys.readouterr().err  # every frame of it is accepted now


def test_failing_squeue_stops_the_submission(aimd_done, slurm, capsys):
    """Item 2: with the controller down, squeue exits 1: nothing is submitted, the user is told why."""
    root = aimd_done
    assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 0
    n = len(submissions(root))
    slurm.stop_controller()
    try:
        capsys.readouterr()
        assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 1
        err = capsys.readouterr().err
        assert "squeue" in err and "failed with status" in err
        assert len(submissions(root)) == n
        assert main(["slurm", "status", str(root)]) == 0
        assert "SLURM not asked" in capsys.readouterr().out
    finally:
        slurm.restart_controller()
    wait_idle()


def test_settings_dry_run_and_impossible_requests(aimd_done, capsys):
    """Items 8, 9, 11: empty and later list values of extra_sbatch; a dry run with --set saves nothing; a
    time limit above the partition's, too many nodes and a stop margin eating the time limit are refused
    before sbatch."""
    root = aimd_done
    script = root / "Cu" / "cold" / "labels" / "labels.sbatch"
    before = ((root / "campaign.json").read_bytes(), script.read_bytes())
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--dry-run",
                 "--set", "slurm.partition=short", "--set", "slurm.time_labels=00:01:00", "--set", "slurm.chunk_size=1"]) == 0  # fmt: skip
    assert "--array=0-2%" in capsys.readouterr().out
    assert ((root / "campaign.json").read_bytes(), script.read_bytes()) == before and not queued()
    for changes, words in ((["slurm.partition=short", "slurm.time_labels=00:05:00"], "above the time limit of partition short"),
                           (["slurm.nodes=3"], "has 1 node(s)"),
                           (["slurm.partition=nowhere"], "no such partition"),
                           (["slurm.time_aimd=00:20:00"], "stop_margin_s=900")):  # fmt: skip
        stage = "aimd" if "time_aimd" in changes[0] else "labels"
        if stage == "aimd":
            (root / "Cu" / "cold" / "aimd" / "STATUS").write_text("partial: 1 of 8\n")
            for seg in (root / "Cu" / "cold" / "aimd").glob("seg*"):
                (seg / "XDATCAR").unlink()
        args = [a for c in changes for a in ("--set", c)]
        assert main(["slurm", "submit", str(root), "--stage", stage, *args]) == 1, changes
        assert words in capsys.readouterr().err, changes
        assert not queued()
    n = len(submissions(root))
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.partition=main",
                 "--set", "slurm.nodes=1", "--set", "slurm.time_aimd=2-00:00:00", "--set", "slurm.extra_sbatch=",
                 "--set", "slurm.extra_sbatch=--comment=tm23test", "--set", "slurm.extra_sbatch=--comment=tm23test",
                 "--set", "slurm.time_labels=00:01:00", "--set", "slurm.extra_sbatch=--comment=tm23test"]) == 0  # fmt: skip
    assert "#SBATCH --comment=tm23test" in script.read_text() and "#SBATCH -\n" not in script.read_text()
    job = submissions(root)[n]["job_id"]
    assert job_field(job, "Comment") == "tm23test"
    wait_idle()
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.extra_sbatch="]) == 0
    assert "--comment" not in script.read_text()


def test_pending_reason_cancel_and_resubmit(aimd_done, capsys):
    """Item 11: status asks the scheduler: pending with SLURM's reason; cancelled tasks are missing again and
    the next submit covers them."""
    root = aimd_done
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.extra_sbatch=--begin=now+600"]) == 0
    wait_for(lambda: any(r == "BeginTime" for _, _, r in queued()), 30, "a pending job")
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    assert "BeginTime" in capsys.readouterr().out
    assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 0  # pending: not submitted twice
    assert len([s for s in submissions(root) if s["stage"] == "labels"]) == 1
    assert main(["slurm", "cancel", str(root)]) == 0
    wait_idle(30)
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.extra_sbatch="]) == 0
    assert len([s for s in submissions(root) if s["stage"] == "labels"]) == 2
    wait_idle()
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    assert "3/3" in capsys.readouterr().out


def test_failed_module_load_stops_the_job_and_status_names_the_log(tmp_path, slurm, capsys):
    """Item 12: a `module load` that fails stops the job with a clear message; status says failed, with the
    log; with ntasks_per_node unset the job gets the partition's CPUs per node as MPI ranks."""
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--regimes", "cold", *campaign_args(tmp_path),
                 "--set", "md.regimes=cold", "--set", "slurm.modules=vasp/6.4.0", "--set", "slurm.ntasks_per_node="]) == 0  # fmt: skip
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    job = submissions(root)[0]["job_id"]
    assert job_field(job, "NumTasks") == str(slurm.cpus)
    wait_idle()
    status = (root / "Cu" / "cold" / "aimd" / "STATUS").read_text()
    assert status.startswith("failed: module load vasp/6.4.0 failed"), status
    assert not list((root / "Cu" / "cold" / "aimd").glob("seg*"))  # VASP never started
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "failed: module load vasp/6.4.0 failed" in out and f"tm23-Cu-cold-aimd-{job}.out" in out
    assert "module load vasp/6.4.0 failed" in (root / "logs" / f"tm23-Cu-cold-aimd-{job}.out").read_text()


def test_max_concurrent_is_per_campaign(tmp_path, slurm):
    """Item 10: three label arrays with slurm.max_concurrent=1 never run two tasks at once."""
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", *campaign_args(tmp_path)]) == 0
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    wait_idle()
    assert main(["vasp-inputs", str(root), "--stage", "labels"]) == 0
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.max_concurrent=1",
                 "--set", "slurm.chunk_size=3"]) == 0  # fmt: skip
    assert len(submissions(root)) == 6  # three AIMD jobs, three label arrays of one task each
    most = 0
    while queued():
        most = max(most, len([1 for _, state, _ in queued() if state == "RUNNING"]))
    assert most == 1
    runs = sorted(root.glob("Cu/*/labels/runs/0*/STATUS"))
    assert len(runs) == 9 and all(p.read_text() == "done\n" for p in runs)


def test_kpoint_stage(aimd_done, capsys):
    """The k-point convergence runs as arrays on the scheduler, then `kpoints choose` reads them."""
    root = aimd_done
    assert main(["kpoints", "write", str(root), "Cu", "--meshes", "1x1x1,2x2x2", "--frames", "2"]) == 0
    assert main(["slurm", "submit", str(root), "--stage", "kpoints"]) == 0
    assert [s["stage"] for s in submissions(root)].count("kpoints") == 2
    wait_idle()
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "kpoints/Cu/1x1x1" in out and "kpoints/Cu/2x2x2" in out and out.count("2/2") == 2, out
    assert main(["kpoints", "choose", str(root), "Cu", "--apply"]) == 0
    assert "chosen mesh" in capsys.readouterr().out
    assert main(["slurm", "submit", str(root), "--stage", "kpoints"]) == 0  # all done: nothing new
    assert [s["stage"] for s in submissions(root)].count("kpoints") == 2


def test_crashed_and_damaged_frames_are_found_and_exactly_they_are_redone(aimd_done, tmp_path, monkeypatch, capsys):
    """A frame whose VASP crashes is failed with its log; a frame marked done whose output was damaged
    afterwards is caught by collect (and marked failed); the next submit runs exactly those two."""
    root = aimd_done
    runs = root / "Cu" / "cold" / "labels" / "runs"
    monkeypatch.setenv("TM23_FAKE_VASP_FAIL_IDS", "0001")
    assert main(["slurm", "submit", str(root), "--stage", "labels", "--set", "slurm.chunk_size=2"]) == 0
    wait_idle()
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "frame 0001: failed: VASP exited with status 1" in out, out
    monkeypatch.delenv("TM23_FAKE_VASP_FAIL_IDS")
    run = runs / "0000"
    (run / "vasprun.xml").write_text((run / "vasprun.xml").read_text()[:2000])
    (run / "OUTCAR").write_text((run / "OUTCAR").read_text()[:3000])
    assert main(["collect", str(root), str(tmp_path / "out.zip"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "2 frame(s) have no valid label" in err, err
    assert (run / "STATUS").read_text().startswith("failed:") and not (tmp_path / "out.zip").exists()
    assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 0
    assert submissions(root)[-1]["frames"] == ["0000", "0001"]
    wait_idle()
    assert [(p / "STATUS").read_text() for p in sorted(runs.glob("0*"))] == ["done\n"] * 3
