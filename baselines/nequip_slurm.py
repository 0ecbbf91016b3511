"""A NequIP baseline as a self-continuing SLURM job (``tm23 baseline nequip ... --slurm``).

The job runs the same ``tm23 baseline nequip`` command; SLURM's warning signal (``--signal=B:USR1@S``)
is passed on to it, so the run saves ``last.ckpt`` and exits with 75 (:mod:`.nequip_run`); the job then
submits its own script again, and the next job continues from the checkpoint. The chain ends when the
run finishes (stop rule, ``max_epochs`` or the ``--max-time`` budget over all segments) or fails.

Scheduler options come from the campaigns' ``slurm.*`` settings (:class:`tm23data.generation.settings.SlurmSettings`:
account, partition, qos, cpus_per_task, mem, modules, setup, extra_sbatch such as ``--gres=gpu:1``, sbatch);
submission goes through the same scheduler layer (:class:`tm23data.generation.scheduler.Slurm`).

The job does not rely on the submitting shell's environment (many sites submit with ``--export=NONE``): it
runs the submitting Python by its absolute path and exports the ``TM23_*`` variables set at submission
(cache folder, archive choice, download limits), so every segment reads the same data.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ..atomic import write_atomic
from ..errors import UsageError
from .nequip_run import PREEMPTED_EXIT


def _q(text) -> str:
    text = str(text)
    if '"' in text:
        raise UsageError(f"{text}: a path for a SLURM job may not contain a double quote")
    return f'"{text}"'


def job_environment(environ=None) -> dict[str, str]:
    """The ``TM23_*`` variables of ``environ`` (default: this process's) that the job sets for itself."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items()) if k.startswith("TM23_")}


def job_script(command: list[str], slurm, *, script: Path, job_name: str, time_limit: str, signal_s: int,
               workdir: Path, env: dict[str, str] | None = None) -> str:  # fmt: skip
    """The job script's text: ``#SBATCH`` header from ``slurm`` settings, the command in the background with
    the warning signal passed on, and a resubmission of ``script`` when the command exits with 75; ``env``
    (default :func:`job_environment`) is exported before the command."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    for opt, value in (("account", slurm.account), ("partition", slurm.partition), ("qos", slurm.qos)):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines += [f"#SBATCH --time={time_limit}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1"]
    for opt, value in (("cpus-per-task", slurm.cpus_per_task), ("mem", slurm.mem)):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines += [f"#SBATCH --output={_q(script.with_suffix('.log'))}", "#SBATCH --open-mode=append",
              f"#SBATCH --signal=B:USR1@{int(signal_s)}"]  # fmt: skip
    lines += [f"#SBATCH {extra}" for extra in slurm.extra_sbatch]
    lines.append("# written by tm23 baseline nequip --slurm: resubmits itself until the run is finished")
    lines.append("set -u")
    lines += [f"module load {m} || {{ echo 'tm23: module load {m} failed (slurm.modules)' >&2; exit 1; }}"
              for m in slurm.modules]  # fmt: skip
    lines += [f"{line} || {{ echo {shlex.quote(f'tm23: setup line failed: {line} (slurm.setup)')} >&2; exit 1; }}"
              for line in slurm.setup]  # fmt: skip
    env = job_environment() if env is None else env
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    resubmit = shlex.join([*shlex.split(slurm.sbatch), str(script)])
    lines += [
        f"cd {shlex.quote(str(workdir))} || exit 1",
        'echo "tm23: job $SLURM_JOB_ID starts a segment on $(hostname) at $(date -u +%FT%TZ)"',
        f"{shlex.join(command)} &",
        "pid=$!",
        "trap 'kill -USR1 $pid 2>/dev/null' USR1 TERM   # the time-limit warning: the run saves last.ckpt",
        "wait $pid; rc=$?",
        "while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done   # the trap interrupted wait",
        'echo "tm23: segment ended with status $rc"',
        f"if [ $rc -eq {PREEMPTED_EXIT} ]; then",
        f"  next=$({resubmit} --parsable) && echo \"tm23: continued by job $next\" || exit 1",
        "  exit 0",
        "fi",
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def submit_nequip(command: list[str], slurm, *, out: str, name: str, time_limit: str, signal_s: int = 300,
                  dry_run: bool = False) -> dict:  # fmt: skip
    """Write ``OUT/NAME.sbatch`` (log: ``OUT/NAME.log``) and submit it; returns ``{"script", "job_id"}``
    (``job_id`` None on a dry run)."""
    from ..generation.scheduler import Slurm, parse_time_s

    limit = parse_time_s(time_limit)
    if limit is not None and limit <= signal_s + 30:
        raise UsageError(f"--slurm-time {time_limit} leaves no training time before the {signal_s} s warning "
                         "signal; give a longer time or a smaller --slurm-signal")  # fmt: skip
    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{name}.sbatch"
    write_atomic(script, job_script(command, slurm, script=script, job_name=f"tm23-{name}", time_limit=time_limit,
                                    signal_s=signal_s, workdir=Path.cwd()))  # fmt: skip
    script.chmod(0o755)
    if dry_run:
        return {"script": str(script), "job_id": None}
    job = Slurm(sbatch=slurm.sbatch, squeue=slurm.squeue).submit(script)
    return {"script": str(script), "job_id": job}
