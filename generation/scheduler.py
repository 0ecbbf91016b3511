"""A batch scheduler as the campaign (and any other job submitter) sees it, and its SLURM implementation.

The interface is deliberately small and generic: submit a script with options and get a job id; ask which
jobs (and which tasks of a job array) are queued or running and why pending; cancel; read a partition's
limits. A failing query is an error (:class:`SchedulerError`), never "nothing queued": deciding from a
failed ``squeue`` that a running job had ended is how a live run gets submitted twice.
"""

from __future__ import annotations

import getpass
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import StepError

ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING",
          "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED")  # fmt: skip


class SchedulerError(StepError):
    """The scheduler could not be asked or refused a request; the message says which command and why."""


@dataclass(frozen=True)
class JobState:
    """One job, or one task (``task`` set) or pending range of tasks (``task`` None) of an array."""

    job_id: str  #: the id sbatch returned (an array's base id)
    task: int | None
    state: str  #: SLURM's state name: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
    reason: str = ""  #: why pending (Resources, Priority, PartitionTimeLimit, Dependency, ...)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass(frozen=True)
class Partition:
    name: str
    max_time_s: int | None  #: None: no limit
    nodes: int
    cpus_per_node: int | None
    default: bool


def parse_time_s(text: str) -> int | None:
    """SLURM time strings (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in seconds; None for
    infinite/unlimited."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "none", ""):
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(x) for x in text.split(":")]
        h, m, s = (parts + [0, 0])[:3]
    else:
        parts = [int(x) for x in text.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, m, s = 0, parts[0], parts[1]
        else:
            h, m, s = parts[:3]
    return ((days * 24 + h) * 60 + m) * 60 + s


class Slurm:
    """SLURM through its commands (``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``sinfo``); each may be a
    command line (e.g. ``ssh login sbatch``)."""

    def __init__(self, sbatch: str = "sbatch", squeue: str = "squeue", *, sacct: str = "sacct",
                 scancel: str = "scancel", sinfo: str = "sinfo", timeout_s: float = 60):  # fmt: skip
        self.cmds = {"sbatch": sbatch, "squeue": squeue, "sacct": sacct, "scancel": scancel, "sinfo": sinfo}
        self.timeout_s = timeout_s

    def _run(self, name: str, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [*shlex.split(self.cmds[name]), *args]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise SchedulerError(f"{cmd[0]}: command not found; is this a SLURM login node? "
                                 f"(set slurm.{name} to the command)") from None  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SchedulerError(f"{shlex.join(cmd)} did not answer within {self.timeout_s:.0f} s "
                                 "(controller busy or down?); nothing was decided, try again") from None  # fmt: skip
        if check and res.returncode != 0:
            raise SchedulerError(f"{shlex.join(cmd)} failed with status {res.returncode}: "
                                 f"{(res.stderr or res.stdout).strip()}")  # fmt: skip
        return res

    def submit(self, script: str | Path, options: list[str] | None = None, args: list[str] | None = None) -> str:
        """Submit ``script`` with sbatch ``options`` and script ``args``; returns the job id."""
        res = self._run("sbatch", ["--parsable", *(options or []), str(script), *(args or [])])
        return res.stdout.strip().split(";")[0]

    def submit_command(self, script, options=None, args=None) -> list[str]:
        """The sbatch command line :meth:`submit` runs (for dry runs)."""
        return [*shlex.split(self.cmds["sbatch"]), "--parsable", *(options or []), str(script), *(args or [])]

    def states(self, job_ids) -> list[JobState]:
        """Queued/running jobs and array tasks among ``job_ids`` (squeue), plus, where accounting exists,
        the final state of those that have left the queue (sacct). Raises :class:`SchedulerError` when
        squeue fails."""
        ids = {str(j) for j in job_ids}
        if not ids:
            return []
        # all of the user's jobs: `-j` with ids that have all left the queue exits 1 like a real failure
        res = self._run("squeue", ["-h", "-u", getpass.getuser(), "-o", "%F|%K|%T|%r"])
        out, seen = [], set()
        for line in res.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 4 or parts[0] not in ids:
                continue
            base, task, state, reason = parts
            out.append(JobState(base, int(task) if task.isdigit() else None, state, reason if reason != "None" else ""))
            seen.add(base)
        return out + [s for s in self.accounting(ids - seen) if s.job_id not in seen]

    def accounting(self, job_ids) -> list[JobState]:
        """Final states from sacct; empty when accounting is not configured (no accounting storage)."""
        ids = sorted({str(j) for j in job_ids})
        if not ids:
            return []
        try:
            res = self._run("sacct", ["-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ids)], check=False)
        except SchedulerError:
            return []
        if res.returncode != 0:
            return []  # "Slurm accounting storage is disabled"
        out = []
        for line in res.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 2:
                continue
            m = re.fullmatch(r"(\d+)(?:_(\d+))?", parts[0])
            if m and m.group(1) in ids:
                task = int(m.group(2)) if m.group(2) else None
                out.append(JobState(m.group(1), task, parts[1].split()[0]))
        return out

    def cancel(self, job_ids) -> None:
        ids = [str(j) for j in job_ids]
        if ids:
            self._run("scancel", ids)

    def partitions(self) -> dict[str, Partition]:
        """Every partition's time limit, node count and CPUs per node (``sinfo``)."""
        res = self._run("sinfo", ["-h", "-o", "%P|%l|%D|%c"])
        out: dict[str, Partition] = {}
        for line in res.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 4:
                continue
            name, limit, nodes, cpus = parts
            default = name.endswith("*")
            name = name.rstrip("*")
            prev = out.get(name)
            n = int(nodes) + (prev.nodes if prev else 0)  # one line per node state
            c = int(cpus.rstrip("+")) if cpus.rstrip("+").isdigit() else None
            out[name] = Partition(name, parse_time_s(limit), n, c, default)
        return out

    def partition(self, name: str | None) -> Partition | None:
        """The partition ``name`` (the default one when None); None where sinfo cannot tell."""
        parts = self.partitions()
        if name is None:
            return next((p for p in parts.values() if p.default), None)
        return parts.get(name)
