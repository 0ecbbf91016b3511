"""The VASP job scripts without a scheduler, for what a real single-node SLURM cannot be made to do: all 81
scripts of a 27-metal campaign pass bash -n and are submitted with the options a site needs (a stand-in
sbatch answering "id;cluster" as multi-cluster sites do), and scripts run by hand on states no scheduler
makes on demand (an XDATCAR cut at a line end, labels from old static inputs); the shell logic equal to its
Python twin. The campaign end to end, time limits, crashes, damaged outputs and resubmissions run on the
real scheduler in tests/slurm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tm23data import elements
from tm23data.cli import main
from tm23data.generation.slurm import Campaign, static_script

FAKE_VASP = f"{sys.executable} -m tm23data.generation.fakevasp"
SMALL = ["--frames", "3", "--equilibration-fs", "10", "--interval-fs", "10"]  # 8 MD steps, frames at steps 4, 6, 8


@pytest.fixture
def fakebin(tmp_path, monkeypatch):
    """sbatch that records its arguments and prints a job id; squeue that lists the ids in RUNNING; module."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/bash\n"
        f'echo "$@" >> {bin_dir}/sbatch_calls\n'
        f"n=$(wc -l < {bin_dir}/sbatch_calls)\n"
        'echo "$((1000 + n));cluster"\n'
    )
    (bin_dir / "squeue").write_text(f"#!/bin/bash\ncat {bin_dir}/RUNNING 2>/dev/null\nexit 0\n")
    (bin_dir / "module").write_text("#!/bin/bash\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for var in (
        "TM23_FAKE_VASP_UNCONVERGED",
        "TM23_FAKE_VASP_CRASH",
        "TM23_FAKE_VASP_MAX_STEPS",
        "TM23_FAKE_VASP_FAIL_IDS",
    ):
        monkeypatch.delenv(var, raising=False)
    return bin_dir


def _calls(bin_dir: Path) -> list[str]:
    path = bin_dir / "sbatch_calls"
    return path.read_text().splitlines() if path.exists() else []


def _potcars(tmp_path) -> Path:
    folder = tmp_path / "paw"
    for name in ("Cu_pv", "Ag"):
        (folder / name).mkdir(parents=True)
        (folder / name / "POTCAR").write_text(f"stand-in PAW_PBE {name}\n")
    return folder


def _run(script: Path, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)  # fmt: skip


def test_scripts_for_all_elements_pass_bash_n(tmp_path, fakebin):
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), *elements.symbols(), "--stage", "aimd",
                 "--set", "slurm.account=proj123", "--set", "slurm.partition=cpu", "--set", "slurm.qos=normal",
                 "--set", "slurm.modules=vasp/5.4.1,intel/2020", "--set", "slurm.ntasks_per_node=48",
                 "--set", "slurm.extra_sbatch=--constraint=skylake", "--set", "slurm.setup=source ~/env.sh",
                 "--set", "slurm.potcar_dir=/shared/paw"]) == 0  # fmt: skip
    campaign = Campaign.open(root)
    scripts = sorted(root.glob("*/*/aimd/aimd.sbatch"))
    assert len(scripts) == 81
    for script in scripts:
        res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, (script, res.stderr)
    text = (root / "W" / "melt" / "aimd" / "aimd.sbatch").read_text()
    for line in ("#SBATCH --account=proj123", "#SBATCH --partition=cpu", "#SBATCH --qos=normal",
                 "#SBATCH --ntasks-per-node=48", "#SBATCH --constraint=skylake", "#SBATCH --signal=B:USR1@900",
                 "module load vasp/5.4.1", "module load intel/2020", "source ~/env.sh", "POTCAR_DIR=/shared/paw",
                 "TOTAL=11000", "srun vasp_std", "#SBATCH --job-name=tm23-W-melt-aimd"):  # fmt: skip
        assert line in text, line
    assert "TEBEG = 4618.75" in (root / "W" / "melt" / "aimd" / "INCAR").read_text()  # 1.25 x 3695 K
    static = static_script(campaign, root / "W" / "melt" / "labels", "tm23-W-melt-labels")
    (tmp_path / "static.sbatch").write_text(static)
    assert subprocess.run(["bash", "-n", str(tmp_path / "static.sbatch")]).returncode == 0
    assert "#SBATCH --output=" in static and "%A_%a" in static
    # every AIMD is submitted once, with no array; the dry run submits nothing; "1001;cluster" is read as 1001
    before = (root / "state.json").read_bytes()
    assert main(["slurm", "submit", str(root), "--stage", "aimd", "--dry-run"]) == 0
    assert _calls(fakebin) == [] and (root / "state.json").read_bytes() == before
    assert main(["slurm", "submit", str(root), "--stage", "aimd", "--elements", "W", "Cu"]) == 0
    calls = _calls(fakebin)
    assert len(calls) == 6 and all(c.startswith("--parsable ") and c.endswith("aimd.sbatch") for c in calls)
    state = json.loads((root / "state.json").read_text())
    assert {s["job_id"] for s in state["submissions"]} == {str(1001 + k) for k in range(6)}


def test_campaign_structure_follows_the_rule_until_the_aimd_starts(tmp_path, fakebin):
    root = tmp_path / "camp"
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd"]) == 0
    assert Campaign.open(root).structure("Cu").natoms == 71  # default rule: the published 3x3x2 cell
    assert "  71" in (root / "Cu" / "warm" / "aimd" / "POSCAR").read_text()
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--supercell-rule", "vectors"]) == 0
    assert Campaign.open(root).structure("Cu").natoms == 31
    (root / "Cu" / "cold" / "aimd" / "seg000").mkdir()  # the AIMD has started: the structure is fixed
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--supercell-rule", "tm23"]) == 0
    assert Campaign.open(root).structure("Cu").natoms == 31
    assert (
        main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--structure", str(root / "structures" / "Cu.vasp")])
        == 1
    )


def _count_configs_bash(xdatcar: Path) -> int:
    """The job script's own ``count_configs`` function, run on one file."""
    from tm23data.generation.jobscripts import shell_function

    body = shell_function("count_configs", "aimd")
    res = subprocess.run(["bash", "-c", body + 'count_configs "$1"', "bash", str(xdatcar)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return int(res.stdout)


def test_half_written_xdatcar_configuration_is_not_a_step(tmp_path, fakebin):
    """A hard kill can stop VASP at a line end inside a configuration: it must not count as an MD step, or the
    next segment runs one step short and the AIMD is called done with 7 of 8 steps."""
    from tm23data.generation.campaign import _count_configurations
    from tm23data.generation.vaspout import read_xdatcar

    root = tmp_path / "camp"
    paw = _potcars(tmp_path)
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", "--regimes", "cold", *SMALL,
                 "--set", f"slurm.vasp_command_aimd={FAKE_VASP}", "--set", f"slurm.potcar_dir={paw}"]) == 0  # fmt: skip
    script = root / "Cu" / "cold" / "aimd" / "aimd.sbatch"
    res = _run(script, env={"TM23_FAKE_VASP_MAX_STEPS": "5"})
    assert "partial: 5 of 8 steps" in res.stdout, res.stdout + res.stderr
    xdatcar = root / "Cu" / "cold" / "aimd" / "seg000" / "XDATCAR"
    full = xdatcar.read_text()
    lines = full.splitlines(keepends=True)
    natoms = sum(int(x) for x in lines[6].split())
    assert natoms == 71 and _count_configurations(xdatcar) == _count_configs_bash(xdatcar) == 5
    block = lines[-(natoms + 1) :]  # header + coordinates of configuration 5
    header6 = block[0].replace("5", "6")
    cases = {  # text appended after the 5 complete configurations -> complete configurations
        "header only": (header6, 5),
        "header and 10 lines, cut at a line end": (header6 + "".join(block[1:11]), 5),
        "cut inside a line": (header6 + "".join(block[1:11]) + block[11][:15], 5),
        "all lines but the last newline": (header6 + "".join(block[1:]).rstrip("\n"), 5),
        "complete": (header6 + "".join(block[1:]), 6),
    }
    for name, (extra, expected) in cases.items():
        xdatcar.write_text(full + extra)
        assert _count_configurations(xdatcar) == expected, name
        assert _count_configs_bash(xdatcar) == expected, name
        assert len(read_xdatcar(xdatcar, allow_truncated=True).steps) == expected, name  # the same rule
    # the line-aligned kill: the resubmission runs the 3 missing steps, and the AIMD ends with all 8
    xdatcar.write_text(full + cases["header and 10 lines, cut at a line end"][0])
    assert Campaign.open(root).aimd_state("Cu", "cold")["steps_done"] == 5
    res = _run(script)
    assert "3 of 8 steps to go" in res.stdout and "tm23: done" in res.stdout, res.stdout + res.stderr
    assert Campaign.open(root).aimd_state("Cu", "cold")["steps_done"] == 8
    seg1 = root / "Cu" / "cold" / "aimd" / "seg001" / "XDATCAR"
    assert _count_configurations(seg1) == _count_configs_bash(seg1) == 3


def _run_label_tasks(root: Path) -> list[str]:
    """Run every planned label array task in place of SLURM; returns the scripts' output."""
    from tm23data.generation.slurm import plan

    out = []
    for p in plan(Campaign.open(root), "labels", busy={}):
        tasks = p.script.parent / "tasks" / "t.txt"
        tasks.parent.mkdir(exist_ok=True)
        tasks.write_text("".join(" ".join(t) + "\n" for t in p.tasks))
        for k in range(len(p.tasks)):
            res = _run(p.script, tasks, env={"SLURM_ARRAY_TASK_ID": str(k)})
            assert res.returncode == 0, res.stdout + res.stderr
            out.append(res.stdout)
    return out


def test_labels_from_old_static_inputs_are_redone(tmp_path, fakebin, capsys):
    """After the static INCAR/KPOINTS change (e.g. `tm23 kpoints choose --apply`), labels made with the old
    ones are not done any more: they are planned again, and collect refuses them until they are redone."""
    from tm23data.generation.slurm import plan
    from tm23data.generation.vasp import static_inputs_hash

    root = tmp_path / "camp"
    paw = _potcars(tmp_path)
    assert main(["vasp-inputs", str(root), "Cu", "--stage", "aimd", *SMALL, "--set", f"slurm.vasp_command={FAKE_VASP}",
                 "--set", f"slurm.vasp_command_aimd={FAKE_VASP}", "--set", f"slurm.potcar_dir={paw}"]) == 0  # fmt: skip
    for regime in elements.REGIMES:
        assert _run(root / "Cu" / regime / "aimd" / "aimd.sbatch").returncode == 0
    assert main(["vasp-inputs", str(root), "--stage", "labels"]) == 0
    _run_label_tasks(root)
    labels = root / "Cu" / "cold" / "labels"
    # the job script records the same hash as Python computes: nothing left to plan
    assert (labels / "runs" / "0000" / "INPUTS.sha256").read_text().strip() == static_inputs_hash(labels)
    assert plan(Campaign.open(root), "labels", busy={}) == []
    assert main(["collect", str(root), str(tmp_path / "old.zip"), "--no-progress"]) == 0
    # new static settings, label inputs rewritten: every frame is stale
    assert main(["vasp-inputs", str(root), "--stage", "labels", "--set", "vasp.kpoints.Cu=4x4x4",
                 "--set", "vasp.incar_static.ENCUT=600"]) == 0  # fmt: skip
    state = Campaign.open(root).refresh_state()["static"]["Cu/cold/labels"]
    assert (state["n_done"], state["n_stale"], state["n_missing"]) == (0, 3, 3)
    planned = plan(Campaign.open(root), "labels", busy={})
    assert sum(p.n_frames for p in planned) == 9
    capsys.readouterr()
    assert main(["slurm", "status", str(root)]) == 0
    assert "3 frame(s) labelled with other INCAR/KPOINTS/POTCAR" in capsys.readouterr().out
    assert main(["collect", str(root), str(tmp_path / "new.zip"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "9 frame(s) have no valid label" in err and "labelled with other static inputs" in err
    assert not (tmp_path / "new.zip").exists()
    assert (labels / "runs" / "0000" / "STATUS").read_text() == "done\n"  # collect leaves the marker alone
    # the job script itself will not skip a stale "done" run either
    task = labels / "tasks" / "one.txt"
    task.parent.mkdir(exist_ok=True)
    task.write_text("0000\n")
    res = _run(labels / "labels.sbatch", task, env={"SLURM_ARRAY_TASK_ID": "0"})
    assert "0000 was labelled with other INCAR/KPOINTS/POTCAR; running it again" in res.stdout, res.stdout
    assert "4 4 4" in (labels / "runs" / "0000" / "KPOINTS").read_text()
    assert "ENCUT = 600" in (labels / "runs" / "0000" / "INCAR").read_text()
    # redo the rest; then the archive is made, and says which inputs its labels came from
    outputs = _run_label_tasks(root)
    assert len(outputs) == 3 and "tm23: 0000" not in outputs[0]  # cold 0000 is current now: not planned
    assert main(["collect", str(root), str(tmp_path / "new.zip"), "--no-progress"]) == 0
    with zipfile.ZipFile(tmp_path / "new.zip") as zf:
        prov = json.loads(zf.read("benchmarking_master_collection/PROVENANCE.json"))
    assert prov["settings"]["vasp"]["incar_static"]["ENCUT"] == 600
    assert prov["elements"]["Cu"]["regimes"]["cold"]["static_inputs_sha256"] == static_inputs_hash(labels)


def test_shell_inputs_hash_and_scf_test_equal_python(tmp_path):
    """The static template's inputs_hash and scf_converged give what tm23data computes on the same files."""
    from tm23data.generation.fakevasp import outcar_text
    from tm23data.generation.jobscripts import shell_function
    from tm23data.generation.labels import _outcar_verdict
    from tm23data.generation.vasp import static_inputs_hash

    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "INCAR").write_text("ENCUT = 600\n")
    (folder / "KPOINTS").write_text("auto\n0\nGamma\n4 4 4\n")
    for potcar in ("POTCAR.spec", "POTCAR"):
        (folder / potcar).write_text("Cu_pv\n")
        res = subprocess.run(["bash", "-c", shell_function("inputs_hash", "static") + 'inputs_hash "$1"', "bash",
                              str(folder)], capture_output=True, text=True, check=True)  # fmt: skip
        assert res.stdout.strip() == static_inputs_hash(folder), potcar
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", cubic=True)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    for converged in (True, False):
        outcar = tmp_path / f"OUTCAR-{converged}"
        outcar.write_text(outcar_text([atoms], {"NELM": 60, "EDIFF": 1e-6}, n_scf=9 if converged else 60,
                                      converged=converged))  # fmt: skip
        res = subprocess.run(["bash", "-c", shell_function("scf_converged", "static") + 'scf_converged "$1"', "bash",
                              str(outcar)])  # fmt: skip
        assert (res.returncode == 0) == _outcar_verdict(outcar, None) == converged
