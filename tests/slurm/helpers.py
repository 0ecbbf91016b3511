"""What the slurm tier's tests share: a small campaign with the stand-in VASP, and waiting for the queue."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAKE_VASP = f"{sys.executable} -m tm23data.generation.fakevasp"
SMALL = ["--frames", "3", "--equilibration-fs", "10", "--interval-fs", "10"]  # 8 MD steps, frames at steps 4, 6, 8


def potcars(folder: Path) -> Path:
    folder = Path(folder) / "paw"
    for name in ("Cu_pv", "Ag"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "POTCAR").write_text(f"stand-in PAW_PBE {name}\n")
    return folder


def campaign_args(tmp_path, *extra, potcar_dir=None) -> list[str]:
    return [*SMALL, "--set", f"slurm.vasp_command={FAKE_VASP}", "--set", f"slurm.vasp_command_aimd={FAKE_VASP}",
            "--set", f"slurm.potcar_dir={potcar_dir or potcars(tmp_path)}", "--set", "slurm.ntasks_per_node=1",
            *extra]  # fmt: skip


def queued() -> list[tuple[str, str, str]]:
    """(job id, state, reason) of every job in the queue (array tasks as 12_3)."""
    res = subprocess.run(["squeue", "-h", "-o", "%i|%T|%r"], capture_output=True, text=True, check=True)
    return [tuple(line.split("|")) for line in res.stdout.splitlines() if line.strip()]


def wait_for(cond, timeout: float = 90, what: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail(f"{what} not reached after {timeout} s (queue: {queued()})")
        time.sleep(0.3)


def wait_idle(timeout: float = 90) -> None:
    """Until the queue is empty (every job ended)."""
    wait_for(lambda: not queued(), timeout, "empty queue")


def submissions(root: Path) -> list[dict]:
    return json.loads((root / "state.json").read_text()).get("submissions", [])


def job_field(job_id: str, name: str) -> str:
    """One field of `scontrol show job` (e.g. Comment, NumTasks)."""
    res = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True, check=True)
    for item in res.stdout.split():
        if item.startswith(name + "="):
            return item.split("=", 1)[1]
    return ""
