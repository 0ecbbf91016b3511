"""Submitting a campaign's missing work to the scheduler, asking it what runs, and cancelling.

What is done comes from the run folders (:meth:`.campaign.Campaign.refresh_state`); what is queued or running
comes from the scheduler, per array task (:meth:`.scheduler.Slurm.states`), so a frame whose task still runs
is never submitted again. A scheduler that cannot be asked stops the submission. Requests that can never run
(a time limit above the partition's, more nodes than it has, a stop margin that leaves no time for MD) are
refused before sbatch is called.
"""

from __future__ import annotations

import datetime as _dt
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .. import elements
from ..atomic import write_atomic
from ..errors import UsageError
from ..provenance import utc_now
from .campaign import DONE, STAGES, Campaign, CampaignError, static_ids
from .scheduler import JobState, SchedulerError, Slurm, parse_time_s

log = logging.getLogger(__name__)


def scheduler_for(campaign: Campaign) -> Slurm:
    s = campaign.settings.slurm
    return Slurm(s.sbatch, s.squeue)


@dataclass
class Planned:
    """One sbatch call: what it runs, its options and the script's arguments."""

    stage: str
    what: str  # "Cu/cold" or a folder
    script: Path
    options: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    n_frames: int = 0
    tasks_file: Path | None = None
    tasks: list[list[str]] | None = None
    limit: int | None = None  #: the array's %N
    job_id: str | None = None


@dataclass
class Activity:
    """What the scheduler says about the campaign's submissions."""

    states: dict[str, list[JobState]]  #: job id -> its queued/running records (and final ones from sacct)
    busy: dict[str, set[str]]  #: {"aimd": {"Cu/cold"}, "<static folder>": {frame ids}}
    active_limits: int = 0  #: sum of the %N of static arrays still active
    active_static: list[str] = field(default_factory=list)


def activity(campaign: Campaign, state: dict, scheduler: Slurm | None = None) -> Activity:
    """Ask the scheduler about every recorded submission (raises :class:`SchedulerError` if it cannot)."""
    subs = state.get("submissions", [])
    ids = sorted({str(s["job_id"]) for s in subs if s.get("job_id")})
    found = (scheduler or scheduler_for(campaign)).states(ids) if ids else []
    by_job: dict[str, list[JobState]] = {}
    for st in found:
        by_job.setdefault(st.job_id, []).append(st)
    busy: dict[str, set[str]] = {}
    act = Activity(by_job, busy)
    for sub in subs:
        live = [x for x in by_job.get(str(sub.get("job_id")), []) if x.active]
        if not live:
            continue
        if sub["stage"] == "aimd":
            busy.setdefault("aimd", set()).add(sub["what"])
            continue
        act.active_limits += int(sub.get("limit") or 1)
        act.active_static.append(str(sub["job_id"]))
        tasks = sub.get("tasks")
        frames = busy.setdefault(sub["folder"], set())
        if tasks is None or any(x.task is None or x.task >= len(tasks) for x in live):
            frames.update(sub.get("frames", []))  # a pending range, or a record without its tasks: all of them
        else:
            for x in live:
                frames.update(tasks[x.task])
    return act


def plan(campaign: Campaign, stage: str, element_symbols=None, regimes=None, *, include_failed: bool = True,
         busy: dict | None = None, write_state: bool = True, scheduler: Slurm | None = None) -> list[Planned]:  # fmt: skip
    """The sbatch calls that cover what is neither done nor queued/running (nothing is submitted); ``busy``
    (see :class:`Activity`) instead of asking the scheduler."""
    if stage not in STAGES:
        raise UsageError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    state = campaign.refresh_state(write=write_state)
    if busy is None:
        busy = activity(campaign, state, scheduler).busy
    out: list[Planned] = []
    if stage == "aimd":
        campaign.require_aimd("--stage aimd")
        for el, regime in campaign.pairs(element_symbols, regimes):
            key = f"{el}/{regime}"
            st = state["aimd"][key]
            if st["status"] == "no inputs":
                raise CampaignError(f"{key}: no AIMD inputs; run `tm23 vasp-inputs {campaign.root} {el} --stage aimd`")
            if st["status"] == DONE or (st["status"] == "failed" and not include_failed):
                continue
            if key in busy.get("aimd", set()):
                log.warning("%s: its AIMD job is still queued or running; not submitted again", key)
                continue
            out.append(Planned("aimd", key, campaign.aimd_dir(el, regime) / "aimd.sbatch"))
        return out
    s = campaign.settings.slurm
    for what, folder in _static_folders(campaign, stage, element_symbols, regimes):
        rel = str(folder.relative_to(campaign.root))
        if rel not in state["static"]:
            raise CampaignError(f"{what}: no static inputs in {folder}; run `tm23 vasp-inputs {campaign.root} "
                                f"--stage labels` (or `tm23 kpoints write`) first")  # fmt: skip
        st = state["static"][rel]
        todo = [i for i in static_ids(folder) if _todo(i, st, include_failed) and i not in busy.get(rel, set())]
        if not todo:
            continue
        chunks = [todo[k : k + s.chunk_size] for k in range(0, len(todo), s.chunk_size)]
        script = folder / ("labels.sbatch" if stage == "labels" else "static.sbatch")
        for start in range(0, len(chunks), s.max_array_size):
            part = chunks[start : start + s.max_array_size]
            out.append(Planned(stage, what, script, n_frames=sum(map(len, part)), tasks=part))
    return out


def _static_folders(campaign: Campaign, stage: str, element_symbols, regimes) -> list[tuple[str, Path]]:
    if stage == "labels":
        return [(f"{el}/{r}", campaign.labels_dir(el, r)) for el, r in campaign.pairs(element_symbols, regimes)]
    out = []
    for el in elements.resolve(element_symbols) if element_symbols else campaign.elements:
        kdir = campaign.kpoints_dir(el)
        if kdir.is_dir():
            out += [(f"{el}/kpoints/{p.name}", p) for p in sorted(kdir.iterdir()) if (p / "poscars").is_dir()]
    return out


def _todo(frame: str, st: dict, include_failed: bool) -> bool:
    if frame in st["failed"]:
        return include_failed
    return frame not in expand(st["done"])


def expand(ranges: str) -> set[str]:
    """The ids of a '0000-0099,0120' range string."""
    out = set()
    for part in filter(None, ranges.split(",")):
        if "-" in part:
            a, b = part.split("-")
            out.update(f"{n:0{len(a)}d}" for n in range(int(a), int(b) + 1))
        else:
            out.add(part)
    return out


def share(budget: int, sizes: list[int]) -> list[int]:
    """Concurrency limits for arrays of ``sizes`` tasks that sum to at most ``budget`` (each >= 1 and at most
    its size); with fewer slots than arrays every array gets 1 (the caller chains the rest)."""
    limits = [1] * len(sizes)
    left = budget - len(sizes)
    while left > 0 and any(lim < n for lim, n in zip(limits, sizes)):
        for k, n in enumerate(sizes):
            if left > 0 and limits[k] < n:
                limits[k] += 1
                left -= 1
    return limits


def check_request(campaign: Campaign, stage: str, scheduler: Slurm) -> list[str]:
    """Why the jobs of ``stage`` could never run as set up (empty: nothing found); the sbatch options
    to add (``--ntasks-per-node`` from the partition when unset) are returned by :func:`extra_options`."""
    s = campaign.settings.slurm
    key = "time_aimd" if stage == "aimd" else "time_labels"
    limit = getattr(s, key)
    try:
        limit_s = parse_time_s(limit)
    except ValueError:
        return [f"slurm.{key}={limit!r} is not a SLURM time (D-HH:MM:SS or HH:MM:SS)"]
    problems = []
    if stage == "aimd" and limit_s is not None and s.stop_margin_s * 2 > limit_s:
        problems.append(f"slurm.stop_margin_s={s.stop_margin_s} s is more than half of slurm.time_aimd={limit} "
                        f"({limit_s} s): each AIMD job would stop after a few MD steps; lower slurm.stop_margin_s "
                        "or raise slurm.time_aimd")  # fmt: skip
    try:
        part = scheduler.partition(s.partition)
        names = sorted(scheduler.partitions())
    except SchedulerError as err:
        log.info("partition limits not checked: %s", err)
        return problems
    if part is None:
        if s.partition:
            problems.append(f"slurm.partition={s.partition}: no such partition (sinfo lists {', '.join(names)})")
        return problems
    if part.max_time_s is not None and limit_s is not None and limit_s > part.max_time_s:
        problems.append(f"slurm.{key}={limit} is above the time limit of partition {part.name} "
                        f"({_hms(part.max_time_s)}): the job would pend for ever; set --set slurm.{key}=... at most "
                        f"{_hms(part.max_time_s)} (or another slurm.partition)")  # fmt: skip
    if s.nodes > part.nodes:
        problems.append(f"slurm.nodes={s.nodes}: partition {part.name} has {part.nodes} node(s)")
    return problems


def extra_options(campaign: Campaign, scheduler: Slurm) -> list[str]:
    """``--ntasks-per-node`` = the partition's CPUs per node when slurm.ntasks_per_node is unset (else srun
    would start VASP as one MPI rank)."""
    s = campaign.settings.slurm
    if s.ntasks_per_node:
        return []
    try:
        part = scheduler.partition(s.partition)
    except SchedulerError:
        return []
    if part is None or not part.cpus_per_node:
        return []
    return [f"--ntasks-per-node={part.cpus_per_node // max(1, s.cpus_per_task or 1)}"]


def _hms(seconds: int) -> str:
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{sec:02d}"


def submit(campaign: Campaign, stage: str, element_symbols=None, regimes=None, *, dry_run: bool = False,
           include_failed: bool = True, echo=print, scheduler: Slurm | None = None) -> list[Planned]:  # fmt: skip
    """Submit what is missing (``dry_run``: print the sbatch calls and write nothing). The job scripts are
    written again first, from the campaign's current folder and settings."""
    scheduler = scheduler or scheduler_for(campaign)
    state = campaign.refresh_state(write=not dry_run)
    act = activity(campaign, state, scheduler)
    planned = plan(campaign, stage, element_symbols, regimes, include_failed=include_failed, busy=act.busy,
                   write_state=False)  # fmt: skip
    if not planned:
        echo(f"nothing to submit for stage {stage}: everything is done or already queued")
        return planned
    problems = check_request(campaign, stage, scheduler)
    if problems:
        raise CampaignError("not submitted, the jobs could never run as set up:\n  " + "\n  ".join(problems))
    extra = extra_options(campaign, scheduler)
    if not dry_run:
        campaign.rewrite_scripts()  # paths of the folder as it is now (a moved campaign), current settings
        (campaign.root / "logs").mkdir(parents=True, exist_ok=True)
    arrays = [p for p in planned if p.tasks is not None]
    budget = campaign.settings.slurm.max_concurrent - act.active_limits
    lanes = max(1, budget)
    for p, lim in zip(arrays, share(lanes, [len(p.tasks) for p in arrays])):
        p.limit = lim
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    submitted: list[str] = []
    for k, p in enumerate(planned):
        p.options = list(extra)
        if p.tasks is not None:
            p.tasks_file = p.script.parent / "tasks" / f"{stamp}-{k}.txt"
            p.args = [str(p.tasks_file)]
            p.options.append(f"--array=0-{len(p.tasks) - 1}%{p.limit}")
            n = len(submitted)
            after = [submitted[n - lanes]] if n >= lanes else (act.active_static if budget <= 0 else [])
            if after:  # slurm.max_concurrent is per campaign: more arrays than slots wait for earlier ones
                p.options.append("--dependency=afterany:" + ":".join(after))
        if dry_run:
            echo(f"[dry run] {p.what}: {shlex.join(scheduler.submit_command(p.script, p.options, p.args))}"
                 + (f"  ({p.n_frames} frames in {len(p.tasks)} tasks)" if p.tasks else ""))  # fmt: skip
            if p.tasks is not None:
                submitted.append(f"<{k}>")
            continue
        if p.tasks is not None:
            write_atomic(p.tasks_file, "".join(" ".join(t) + "\n" for t in p.tasks))
        p.job_id = scheduler.submit(p.script, p.options, p.args)
        record = {"stage": p.stage, "what": p.what, "job_id": p.job_id, "script": str(p.script),
                  "submitted_utc": utc_now(), "command": scheduler.submit_command(p.script, p.options, p.args),
                  "log": str(campaign.root / "logs" / (_job_name(p) + ("-%A_%a.out" if p.tasks else f"-{p.job_id}.out")))}  # fmt: skip
        if p.tasks is not None:
            submitted.append(p.job_id)
            record.update({"folder": str(p.script.parent.relative_to(campaign.root)), "tasks_file": str(p.tasks_file),
                           "frames": [i for t in p.tasks for i in t], "tasks": p.tasks, "limit": p.limit})  # fmt: skip
        campaign.record_submission(record)
        echo(f"submitted {p.what} ({p.stage}): job {p.job_id}"
             + (f", {p.n_frames} frames in {len(p.tasks)} tasks" if p.tasks else ""))  # fmt: skip
    return planned


def _job_name(p: Planned) -> str:
    for line in p.script.read_text().splitlines():
        if line.startswith("#SBATCH --job-name="):
            return line.split("=", 1)[1]
    return p.script.stem


def cancel(campaign: Campaign, stage: str | None = None, element_symbols=None, scheduler: Slurm | None = None) -> list[str]:
    """Cancel the campaign's queued and running jobs (of ``stage`` / ``element_symbols`` only, if given);
    returns their ids. Their frames stay not done, so the next submit covers them."""
    scheduler = scheduler or scheduler_for(campaign)
    state = campaign.refresh_state()
    act = activity(campaign, state, scheduler)
    els = set(elements.resolve(element_symbols)) if element_symbols else None
    ids = []
    for sub in state.get("submissions", []):
        jid = str(sub.get("job_id"))
        if not any(x.active for x in act.states.get(jid, [])):
            continue
        if stage and sub["stage"] != stage:
            continue
        if els and sub["what"].split("/")[0] not in els:
            continue
        ids.append(jid)
    scheduler.cancel(ids)
    return ids


def status(campaign: Campaign, scheduler: Slurm | None = None) -> tuple[list[dict], str]:
    """Per element, regime and stage: done / running / pending (reason) / failed (log) / missing, from the
    folders and the scheduler. Returns (rows, note); the note says when the scheduler could not be asked."""
    scheduler = scheduler or scheduler_for(campaign)
    state = campaign.refresh_state()
    note = ""
    try:
        act = activity(campaign, state, scheduler)
    except SchedulerError as err:
        act, note = Activity({}, {}), f"SLURM not asked ({err}); queued/running jobs are not shown"
    last: dict[tuple[str, str], dict] = {}
    for sub in state.get("submissions", []):
        last[(sub["stage"], sub.get("folder") or sub["what"])] = sub
    rows = []
    for key, a in state["aimd"].items():
        sub = last.get(("aimd", key))
        live = [x for x in act.states.get(str(sub["job_id"]), [])] if sub else []
        row = {"what": key, "stage": "aimd", "steps": f"{a['steps_done']}/{a['steps_total']}"}
        if a["status"] == DONE:
            row["state"] = "done"
        elif any(x.state == "RUNNING" for x in live):
            row["state"] = f"running (job {sub['job_id']})"
        elif any(x.active for x in live):
            x = next(x for x in live if x.active)
            row["state"] = f"pending (job {sub['job_id']}: {x.reason or x.state})"
        elif a["status"] == "failed" or any(x.state in ("FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") for x in live):
            row["state"] = f"failed: {a.get('note') or live[0].state} (log {sub['log'] if sub else 'none'})"
        elif any(x.state == "CANCELLED" for x in live):
            row["state"] = "cancelled: " + a["status"]
        elif a["status"] == "no inputs":
            row["state"] = "no inputs"
        elif a["status"] == "partial":
            row["state"] = f"partial ({a['segments']} segments): resubmit to continue"
        else:
            row["state"] = "missing (not submitted, or ended without a trace" + (f"; log {sub['log']}" if sub else "") + ")"
        rows.append(row)
    for folder, st in state["static"].items():
        busy = act.busy.get(folder, set())
        running, pending = set(), set()
        sub = last.get(("labels" if folder.endswith("/labels") else "kpoints", folder))
        if sub:
            tasks = sub.get("tasks") or [sub.get("frames", [])]
            for x in act.states.get(str(sub["job_id"]), []):
                frames = tasks[x.task] if x.task is not None and x.task < len(tasks) else sub.get("frames", [])
                (running if x.state == "RUNNING" else pending if x.active else set()).update(frames)
        reasons = sorted({x.reason for x in act.states.get(str(sub["job_id"]), []) if x.state == "PENDING"}) if sub else []
        failed = {i: f"{why} (log {campaign.root / folder / 'runs' / i / 'vasp.log'})" for i, why in st["failed"].items()
                  if i not in busy}  # fmt: skip
        missing = st["n_missing"] - len((busy - set(st["failed"])) & expand(st["missing"]))
        rows.append({"what": folder, "stage": "labels" if folder.endswith("/labels") else "kpoints",
                     "done": st["n_done"], "running": len(running), "pending": len(pending - running),
                     "pending_reason": ", ".join(r for r in reasons if r), "failed": failed, "missing": missing,
                     "stale": st.get("n_stale", 0), "n_frames": st["n_frames"]})  # fmt: skip
    return rows, note
