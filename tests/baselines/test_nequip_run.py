"""NequIP at the paper's scale: devices and DDP in the generated config, a 2-process CPU (gloo) DDP run,
interrupted runs (SIGTERM saves a checkpoint, the same command continues it, other settings are refused),
and ``tm23 baseline status``."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("nequip", reason="nequip is not installed (pip install -e '.[nequip]')")

from tm23data.baselines.nequip import NequIPSettings, nequip_config, train_nequip  # noqa: E402
from tm23data.baselines.nequip_callbacks import PREEMPTED_EXIT  # noqa: E402
from tm23data.baselines.nequip_run import ResumableRun, find_runs, identity_diff  # noqa: E402
from tm23data.cli import main  # noqa: E402

TINY = dict(r_max=4.0, num_layers=1, l_max=0, num_features=4, radial_mlp_depth=1, radial_mlp_width=8,
            num_bessels=4, batch_size=6, seed=3)  # fmt: skip


def _callbacks(cfg) -> dict:
    return {c["_target_"].rsplit(".", 1)[1]: c for c in cfg["trainer"]["callbacks"]}


def test_devices_and_nodes_reach_lightning_and_set_the_effective_batch():
    one = nequip_config("Ti", "full", NequIPSettings(device="cpu"))["trainer"]
    assert (one["accelerator"], one["devices"], one["num_nodes"]) == ("cpu", 1, 1) and "strategy" not in one
    s = NequIPSettings(device="cuda", devices=4, num_nodes=2, batch_size=5)
    many = nequip_config("Ti", "full", s)["trainer"]
    assert (many["accelerator"], many["devices"], many["num_nodes"], many["strategy"]) == ("gpu", 4, 2, "ddp")
    assert s.world_size == 8 and s.effective_batch_size == 40
    assert "PreemptionCheckpoint" in _callbacks(nequip_config("Ti", "full", s))
    with pytest.raises(ValueError, match="device must be"):
        NequIPSettings(device="tpu")
    with pytest.raises(ValueError, match="devices and num_nodes"):
        NequIPSettings(devices=0)


def test_cli_flags_set_the_devices(tmp_path, cached):
    path = tmp_path / "config.yaml"
    assert main(["baseline", "nequip", "Cu", "--device", "cpu", "--devices", "2", "--num-nodes", "3",
                 "--config-only", str(path)]) == 0  # fmt: skip
    text = path.read_text()
    assert "devices: 2" in text and "num_nodes: 3" in text and "strategy: ddp" in text and "accelerator: cpu" in text


def test_a_rerun_with_other_settings_is_refused(tmp_path):
    identity = {"element": "Cu", "split": "full", "settings": NequIPSettings(**TINY).to_dict()}
    with ResumableRun(tmp_path, "r", identity):
        pass
    assert (tmp_path / ".r.partial" / "run.json").is_file()
    other = {**identity, "settings": {**identity["settings"], "learning_rate": 0.01, "devices": 2}}
    with pytest.raises(ValueError, match=r"(?s)other settings.*devices: 1 -> 2.*learning_rate: 0.005 -> 0.01"):
        ResumableRun(tmp_path, "r", other).__enter__()
    # the device itself may change between segments (a CPU start continued on a GPU)
    moved = {**identity, "settings": {**identity["settings"], "device": "cuda"}}
    assert identity_diff(identity, moved) == []
    with ResumableRun(tmp_path, "r", moved) as run:
        assert not run.resumed  # no checkpoint yet
    with ResumableRun(tmp_path, "r", other, overwrite=True):
        pass  # --overwrite starts over
    assert json.loads((tmp_path / ".r.partial" / "run.json").read_text())["settings"]["devices"] == 2


#: Epochs of the SIGTERM test: enough left after the second that the signal lands in training, not after it.
EPOCHS = 12


def _wait_for(predicate, timeout: float, proc=None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_sigterm_saves_a_checkpoint_and_the_same_command_continues_to_the_end(cached, tmp_path):
    """SIGTERM after the first epoch: exit 75, last.ckpt saved, segment 'preempted'; other settings are refused;
    the same command then trains the remaining epochs only (max_epochs counts across segments), evaluates,
    and lists both segments in result.json."""
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    cmd = [sys.executable, "-m", "tm23data.cli", "baseline", "nequip", "Cu", "--split", "full", "--out",
           str(tmp_path), "--max-epochs", str(EPOCHS), "--device", "cpu", *sets]  # fmt: skip
    work = tmp_path / ".nequip_Cu_full.partial"
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def epochs_done() -> int:
        timing = work / "timing.jsonl"
        lines = timing.read_text().splitlines() if timing.is_file() else []
        return sum('"epoch"' in line for line in lines)

    _wait_for(lambda: epochs_done() >= 2, 240, proc)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == PREEMPTED_EXIT, out
    assert (work / "last.ckpt").is_file()
    segments = json.loads((work / "segments.json").read_text())
    assert [s["exit"] for s in segments] == ["preempted"] and segments[0]["wall_s"] > 0
    stopped_at = epochs_done()
    assert stopped_at < EPOCHS
    [row] = find_runs(tmp_path)
    assert (row["state"], row["segments"], row["checkpoint"]) == ("preempted", 1, True)

    settings = NequIPSettings(**TINY, max_epochs=EPOCHS, device="cpu")
    with pytest.raises(ValueError, match="learning_rate"):
        train_nequip("Cu", "full", NequIPSettings(**{**TINY, "learning_rate": 0.001}, max_epochs=EPOCHS), out=tmp_path)
    res = train_nequip("Cu", "full", settings, out=tmp_path)
    assert not work.exists() and res.path == tmp_path / "nequip_Cu_full"
    segs = res.data["training"]["segments"]
    assert [s["exit"] for s in segs] == ["preempted", "finished"] and segs[1]["resumed_from"] == "last.ckpt"
    timing = [json.loads(x) for x in (res.path / "timing.jsonl").read_text().splitlines()]
    epochs = [e["epoch"] for e in timing if e["event"] == "epoch"]
    # every epoch, none beyond; the cut epoch's record is missing when the signal landed on its last batch
    # (known limitation: nequip_callbacks.PreemptionCheckpoint)
    assert set(epochs) <= set(range(EPOCHS)) and len(set(range(EPOCHS)) - set(epochs)) <= 1, epochs
    assert res.data["training"]["epochs"] == EPOCHS
    assert res.data["timing"]["train_s"] == pytest.approx(sum(s["wall_s"] for s in segs))
    assert res.metrics["forces"]["mae"] > 0
    [row] = find_runs(tmp_path)
    assert (row["state"], row["segments"]) == ("finished", 2)


def test_two_process_cpu_ddp_training(cached, tmp_path):
    """--devices 2 on CPU: Lightning's DDP with gloo, two ranks; the run finishes and is evaluated."""
    settings = NequIPSettings(**TINY, max_epochs=2, device="cpu", devices=2)
    res = train_nequip("Cu", "full", settings, out=tmp_path)
    log = (res.path / "train.log").read_text()
    assert "distributed_backend=gloo" in log and "All distributed processes registered" in log, log[-3000:]
    assert res.data["settings"]["effective_batch_size"] == 12
    assert res.data["training"]["epochs"] == 2 and res.metrics["forces"]["mae"] > 0


def test_slurm_dry_run_writes_a_self_continuing_job(cached, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TM23_ARCHIVE", str(tmp_path / "a b.zip"))
    argv = ["baseline", "nequip", "Cu", "--out", "res", "--device", "cpu", "--max-epochs", "3", "--slurm",
            "--slurm-time", "00:10:00", "--slurm-signal", "60", "--set", "slurm.partition=gpu",
            "--set=slurm.extra_sbatch=--gres=gpu:1", "--set", "batch_size=2", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    script = (tmp_path / "res" / "nequip_Cu_full.sbatch").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=00:10:00", "#SBATCH --signal=B:USR1@60",
                 "#SBATCH --gres=gpu:1", "if [ $rc -eq 75 ]; then"):  # fmt: skip
        assert line in script
    run_line = next(x for x in script.splitlines() if "tm23data.cli" in x)
    assert "--slurm" not in run_line and "slurm." not in run_line and "--dry-run" not in run_line
    assert "--max-epochs 3" in run_line and "batch_size=2" in run_line
    # nothing taken from the submitting shell (sites submit with --export=NONE): absolute Python, TM23_* set
    assert run_line.startswith(shlex.quote(sys.executable) + " -m tm23data.cli")
    assert f"export TM23_HOME={shlex.quote(os.environ['TM23_HOME'])}" in script
    assert f"export TM23_ARCHIVE={shlex.quote(str(tmp_path / 'a b.zip'))}" in script
    assert not list((tmp_path / "res").glob(".*.partial"))  # nothing trained
    subprocess.run(["bash", "-n", str(tmp_path / "res" / "nequip_Cu_full.sbatch")], check=True)  # valid bash
    assert main(["baseline", "nequip", "Cu", "--set", "slurm.partition=gpu", "--config-only", "x.yaml"]) == 1
    assert main([*argv[:-1], "--devices", "2", "--dry-run"]) == 1


def test_status_lists_unfinished_runs_with_their_last_segment(tmp_path, capsys):
    identity = {"element": "Cu", "split": "full", "settings": NequIPSettings(**TINY).to_dict()}
    with ResumableRun(tmp_path, "a", identity) as run:
        seg = run.start_segment(pid=os.getpid())
        run.end_segment(seg, "preempted")
        run.start_segment(pid=2**22 + 12345)  # a process that is gone: the segment crashed
    with ResumableRun(tmp_path, "b", identity) as run:
        run.end_segment(run.start_segment(pid=os.getpid()), "preempted")
    rows = {r["name"]: r for r in find_runs(tmp_path)}
    assert (rows["a"]["state"], rows["a"]["segments"]) == ("crashed", 2)
    assert (rows["b"]["state"], rows["b"]["segments"], rows["b"]["checkpoint"]) == ("preempted", 1, False)
    assert main(["baseline", "status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "crashed" in out and "preempted" in out and "segments" in out
    assert main(["baseline", "status", str(tmp_path / "nowhere")]) == 1
