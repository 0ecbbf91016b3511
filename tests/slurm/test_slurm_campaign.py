"""The HPC path end to end on a real SLURM with the stand-in VASP: vasp-inputs -> submit aimd -> label
inputs -> submit labels -> collect -> the archive loads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tm23data import elements
from tm23data.cli import main

FAKE_VASP = f"{sys.executable} -m tm23data.generation.fakevasp"
SMALL = ["--frames", "3", "--equilibration-fs", "10", "--interval-fs", "10"]  # 8 MD steps, frames at steps 4, 6, 8


def potcars(tmp_path) -> Path:
    folder = tmp_path / "paw"
    for name in ("Cu_pv", "Ag"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "POTCAR").write_text(f"stand-in PAW_PBE {name}\n")
    return folder


def campaign_args(tmp_path, *extra) -> list[str]:
    return [*SMALL, "--set", f"slurm.vasp_command={FAKE_VASP}", "--set", f"slurm.vasp_command_aimd={FAKE_VASP}",
            "--set", f"slurm.potcar_dir={potcars(tmp_path)}", *extra]  # fmt: skip


def queued() -> list[str]:
    res = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True)
    return [line for line in res.stdout.splitlines() if line.strip()]


def wait_idle(timeout: float = 90) -> None:
    """Until the queue is empty (every job ended)."""
    end = time.monotonic() + timeout
    while queued():
        if time.monotonic() > end:
            pytest.fail(f"jobs still queued after {timeout} s: {queued()}")
        time.sleep(0.5)


def test_campaign_end_to_end(tmp_path, slurm, tm23_home, monkeypatch, capsys):
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", *campaign_args(tmp_path)]) == 0
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0
    wait_idle()
    state = json.loads((root / "state.json").read_text())
    assert main(["slurm", "submit", str(root), "--stage", "aimd"]) == 0  # everything done: nothing submitted
    assert len(json.loads((root / "state.json").read_text())["submissions"]) == len(state["submissions"]) == 3
    for regime in elements.REGIMES:
        assert (root / "Cu" / regime / "aimd" / "STATUS").read_text() == "done\n"
    assert main(["vasp-inputs", str(root), "--stage", "labels"]) == 0
    assert main(["slurm", "submit", str(root), "--stage", "labels"]) == 0
    wait_idle()
    capsys.readouterr()
    assert main(["collect", str(root), str(tmp_path / "out.zip"), "--no-progress"]) == 0
    md5 = capsys.readouterr().out.split("md5:")[1].split()[0]
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
    assert prov["calculator"] == "vasp" and prov["labels"]["programs"] == ["fakevasp 5.4.1"]
    logs = sorted((root / "logs").glob("*.out"))
    assert len(logs) == 6  # one per AIMD job and per label array task
    assert main(["import", str(tmp_path / "out.zip"), "--md5", md5]) == 0
    monkeypatch.setenv("TM23_MD5", md5)
    from tm23data import load_tm23

    ds = load_tm23("Cu", progress=False)
    assert len(ds["train"]) + len(ds["test"]) == 9
