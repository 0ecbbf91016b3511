"""Running a campaign's job scripts without SLURM (as a compute node would), for the generation tier's tests:
the stand-in VASP, stand-in PAW folders with their ZVAL, and the job scripts run with bash."""

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
