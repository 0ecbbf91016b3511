"""Running a campaign's job scripts without SLURM (as a compute node would), for the generation tier's tests:
the stand-in VASP, stand-in PAW folders, and a fake sbatch/squeue on PATH that records what was submitted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAKE_VASP = f"{sys.executable} -m tm23data.generation.fakevasp"

#: The stand-in POTCAR header lines VASP and tm23data read (ZVAL: valence electrons of the dataset).
ZVALS = {"Cu_pv": 17.0, "Ag": 11.0}


def potcars(folder: Path) -> Path:
    """``folder/paw/NAME/POTCAR`` for Cu_pv and Ag, each with a VASP-style header stating its ZVAL."""
    folder = Path(folder) / "paw"
    for name, zval in ZVALS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "POTCAR").write_text(
            f"  PAW_PBE {name} 06Sep2000\n 17.0000000000000\n parameters from PSCTR are:\n"
            f"   TITEL  = PAW_PBE {name} 06Sep2000\n   POMASS =   63.546; ZVAL   =   {zval:.3f}    mass and valenz\n"
        )  # fmt: skip
    return folder


def campaign_args(paw: Path, frames: int = 2) -> list[str]:
    """`tm23 vasp-inputs` options of a tiny campaign: ``frames`` per regime, 2 MD steps apart after 2, in the
    small cells of rule "vectors" (Cu: 31 atoms)."""
    return ["--frames", str(frames), "--equilibration-fs", "10", "--interval-fs", "10", "--supercell-rule", "vectors",
            "--set", f"slurm.vasp_command={FAKE_VASP}", "--set", f"slurm.vasp_command_aimd={FAKE_VASP}",
            "--set", f"slurm.potcar_dir={paw}"]  # fmt: skip


def run_script(script: Path, *args, env=None) -> subprocess.CompletedProcess:
    """Run a job script with bash as the node would, without the stand-in's failure knobs of the caller."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TM23_FAKE_VASP_")}
    res = subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True,
                         env={**base, **(env or {})}, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def run_tasks(script: Path, task_file: Path) -> None:
    """Every array task of ``task_file`` (one line of frame ids per task) with ``script``."""
    for k in range(len(Path(task_file).read_text().splitlines())):
        run_script(script, task_file, env={"SLURM_ARRAY_TASK_ID": str(k)})


def fake_slurm(folder: Path) -> Path:
    """A folder with ``sbatch`` (records its arguments in ``sbatch_calls``, prints a job id) and an empty
    ``squeue``; put it first on PATH."""
    bin_dir = Path(folder) / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "sbatch").write_text("#!/bin/bash\n"
                                    f'echo "$@" >> {bin_dir}/sbatch_calls\n'
                                    f"n=$(wc -l < {bin_dir}/sbatch_calls)\n"
                                    'echo "$((1000 + n));cluster"\n')  # fmt: skip
    (bin_dir / "squeue").write_text("#!/bin/bash\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def sbatch_calls(bin_dir: Path) -> list[list[str]]:
    path = Path(bin_dir) / "sbatch_calls"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []
