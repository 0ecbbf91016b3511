"""Job scripts of a campaign: an ``#SBATCH`` header from the settings, then a shell body from the package-data
templates (``templates/*.sh``). The logic the bodies share with Python (counting MD steps in XDATCAR, the
static inputs hash, the SCF convergence test) is tested for equality with its Python twin on the same files.

Paths are written absolute and quoted; ``tm23 slurm submit`` writes the scripts again from the campaign's
current folder before each submission, so a moved campaign runs where it is now.
"""

from __future__ import annotations

import shlex
from functools import cache
from importlib import resources
from pathlib import Path


@cache
def template(name: str) -> str:
    """The shell template ``templates/NAME.sh`` (package data)."""
    return resources.files("tm23data.generation").joinpath("templates", f"{name}.sh").read_text()


def _q(path) -> str:
    """A path for an ``#SBATCH`` line: double-quoted (sbatch splits unquoted values at spaces)."""
    text = str(path)
    if '"' in text:
        raise ValueError(f"{text}: a campaign path may not contain a double quote")
    return f'"{text}"'


def sbatch_header(campaign, job_name: str, time_limit: str, *, array: bool, signal: int | None,
                  status_file: Path | None = None) -> list[str]:  # fmt: skip
    s = campaign.settings.slurm
    logs = campaign.root / "logs"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    for opt, value in (("account", s.account), ("partition", s.partition), ("qos", s.qos)):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines.append(f"#SBATCH --time={time_limit}")
    lines.append(f"#SBATCH --nodes={s.nodes}")
    for opt, value in (("ntasks-per-node", s.ntasks_per_node), ("cpus-per-task", s.cpus_per_task), ("mem", s.mem)):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines.append(f"#SBATCH --output={_q(logs / ('%x-%A_%a.out' if array else '%x-%j.out'))}")
    if signal:
        lines.append(f"#SBATCH --signal=B:USR1@{int(signal)}")
    for extra in s.extra_sbatch:
        lines.append(f"#SBATCH {extra}")
    lines.append("# written by tm23data.generation; submit with `tm23 slurm submit`, which keeps state.json")
    lines.append("set -uo pipefail")
    status = shlex.quote(str(status_file)) if status_file else "''"
    lines.append(f"tm23_abort() {{  # a setup step failed: say so in the log (and STATUS), stop\n"
                 f"  echo \"tm23: $1\" >&2; [ -z {status} ] || printf 'failed: %s\\n' \"$1\" > {status}; exit 1\n}}")
    for module in s.modules:
        lines.append(f"module load {module} || tm23_abort {shlex.quote(f'module load {module} failed (slurm.modules)')}")
    for k, line in enumerate(s.setup):
        lines.append(f"{line} || tm23_abort {shlex.quote(f'setup line {k + 1} failed: {line} (slurm.setup)')}")
    lines.append(f"POTCAR_DIR={shlex.quote(s.potcar_dir or '')}")
    lines.append("CLEANUP=(" + " ".join(shlex.quote(c) for c in s.cleanup) + ")")
    lines.append(template("potcar").rstrip("\n"))
    return lines


def aimd_script(campaign, element: str, regime: str) -> str:
    """The batch script of one AIMD (resumable: each run adds a segment continuing from the last CONTCAR)."""
    s = campaign.settings.slurm
    folder = campaign.aimd_dir(element, regime)
    nblock = int(campaign.settings.vasp.incar("aimd").get("NBLOCK", 1) or 1)
    lines = sbatch_header(campaign, f"tm23-{element}-{regime}-aimd", s.time_aimd, array=False,
                          signal=s.stop_margin_s, status_file=folder / "STATUS")  # fmt: skip
    lines.append(f"AIMD_DIR={shlex.quote(str(folder))}")
    lines.append(f"TOTAL={campaign.settings.md.total_steps}  # MD steps of the protocol")
    lines.append(f"NBLOCK={nblock}")
    lines.append("run_vasp() {\n  " + s.vasp_command_aimd + "\n}")
    lines.append(template("aimd").rstrip("\n"))
    return "\n".join(lines) + "\n"


def static_script(campaign, folder: Path, job_name: str) -> str:
    """The array job script of a static set (labels or k-point runs): task k runs the frame ids on line k+1
    of the tasks file given as the script's argument."""
    s = campaign.settings.slurm
    lines = sbatch_header(campaign, job_name, s.time_labels, array=True, signal=None)
    lines.append(f"STATIC_DIR={shlex.quote(str(Path(folder).resolve()))}")
    lines.append("run_vasp() {\n  " + s.vasp_command + "\n}")
    lines.append(template("static").rstrip("\n"))
    return "\n".join(lines) + "\n"


def shell_function(name: str, template_name: str) -> str:
    """The text of one shell function ``name() { ... }`` of a template (for the equality tests)."""
    text = template(template_name)
    start = text.index(f"{name}() {{")
    end = text.index("\n}\n", start) + 3
    return text[start:end]
