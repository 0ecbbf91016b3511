"""Resumable NequIP runs: one work folder per run, trained in segments until the stop rule or the budget.

The paper's NequIP runs took up to three weeks of wall time; schedulers give a job hours. A run therefore
lives in ``OUT/.NAME.partial`` until it is finished and evaluated, and is then renamed to ``OUT/NAME``:

- ``run.json``: what the run is (element, split, archive, every setting that shapes the model): a rerun
  whose settings differ is refused (:class:`ResumableRun`), never mixed into the same checkpoint;
- ``segments.json``: one entry per ``nequip-train`` process (started, ended, wall time, how it ended:
  ``finished``, ``preempted`` (a signal: the checkpoint was saved, exit :data:`PREEMPTED_EXIT`) or
  ``crashed``), listed again in the final ``result.json`` under ``training.segments``;
- ``last.ckpt``: Lightning's full training state (saved at every epoch end and on a signal).

Rerunning the same command continues from ``last.ckpt`` (``nequip-train -cn config.yaml ++ckpt_path=...``
in the same folder, with the same config): the epoch count, the plateau scheduler (x0.2 after 100 epochs
without improvement), the 1e-5 learning-rate stop and Lightning's ``max_time`` timer are restored from
the checkpoint, so the stop rule and the wall-time budget count across segments.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from ..atomic import write_atomic
from ..errors import StepError, UsageError
from ..provenance import utc_now

#: Exit status of a NequIP run stopped by a signal after saving its checkpoint (EX_TEMPFAIL: "try again"):
#: the job script resubmits, a rerun of the same command continues. Here, not in nequip_callbacks, so that
#: reading run folders (tm23 baseline status) needs no Lightning.
PREEMPTED_EXIT = 75

log = logging.getLogger(__name__)

RUN_JSON, SEGMENTS_JSON, LAST_CKPT = "run.json", "segments.json", "last.ckpt"
#: Settings that may change between segments without changing the model or the protocol.
RESUMABLE_CHANGES = ("device", "num_workers")


class Preempted(StepError):
    """Training stopped on a signal after saving its checkpoint; rerun the same command to continue."""

    exit_code = PREEMPTED_EXIT


def work_path(out: str | os.PathLike, name: str) -> Path:
    return Path(out).resolve() / f".{name}.partial"


def read_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


class ResumableRun:
    """The work folder of one run (``OUT/.NAME.partial``), created or continued.

    ``identity`` is what must not change between segments (element, split, archive md5, settings).
    Entering a folder whose ``run.json`` differs raises :class:`UsageError` naming the differences. On an
    exception the folder stays where it is, resumable; :meth:`commit` renames it to ``OUT/NAME``.
    """

    def __init__(self, out: str | os.PathLike, name: str, identity: dict, *, overwrite: bool = False):
        self.final = Path(out).resolve() / name
        self.path = work_path(out, name)
        self.identity = json.loads(json.dumps(identity))
        self.overwrite = overwrite
        self.committed = False
        self.resumed = False

    def __enter__(self) -> ResumableRun:
        if self.final.exists() and not self.overwrite:
            raise FileExistsError(f"{self.final} exists (a finished run); choose another --out/--name or pass "
                                  "--overwrite")  # fmt: skip
        if self.path.exists() and self.overwrite:
            shutil.rmtree(self.path)
        if self.path.exists():
            previous = read_json(self.path / RUN_JSON, None)
            if previous is None:
                raise UsageError(f"{self.path} has no {RUN_JSON}: not a resumable run folder; remove it or pass "
                                 "--overwrite")  # fmt: skip
            diff = identity_diff(previous, self.identity)
            if diff:
                raise UsageError(
                    f"{self.path} holds an unfinished run with other settings ({'; '.join(diff)}); rerun with the "
                    "same settings to continue it, or pass --overwrite (or another --name) to start a new run"
                )
            self.resumed = (self.path / LAST_CKPT).is_file()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
            write_atomic(self.path / RUN_JSON, json.dumps(self.identity, indent=2) + "\n")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.committed and self.path.exists():
            log.warning("run %s stopped (%s); rerun the same command to continue from %s", self.final.name,
                        exc_type.__name__, self.path / LAST_CKPT)  # fmt: skip

    @property
    def checkpoint(self) -> Path | None:
        """The checkpoint to continue from, if any."""
        path = self.path / LAST_CKPT
        return path if path.is_file() else None

    @property
    def segments(self) -> list[dict]:
        return read_json(self.path / SEGMENTS_JSON, [])

    def start_segment(self, **info) -> dict:
        segments = self.segments
        seg = {"index": len(segments), "started": utc_now(), "host": socket.gethostname(),
               "resumed_from": LAST_CKPT if self.checkpoint else None, **info, "ended": None, "exit": "running",
               "wall_s": None}  # fmt: skip
        seg["_t0"] = time.perf_counter()
        self._write_segments([*segments, seg])
        return seg

    def end_segment(self, seg: dict, exit: str, **info) -> None:
        segments = self.segments
        done = {**seg, "ended": utc_now(), "exit": exit, "wall_s": time.perf_counter() - seg["_t0"], **info}
        segments[seg["index"]] = done
        self._write_segments(segments)

    def _write_segments(self, segments: list[dict]) -> None:
        clean = [{k: v for k, v in s.items() if not k.startswith("_")} for s in segments]
        write_atomic(self.path / SEGMENTS_JSON, json.dumps(clean, indent=2) + "\n")

    def commit(self) -> Path:
        from .results import replace_folder

        replace_folder(self.path, self.final)
        self.committed = True
        return self.final


def identity_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every difference (nested dicts flattened with dots), ignoring the settings in
    :data:`RESUMABLE_CHANGES`."""
    out = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += identity_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def total_wall_s(segments: list[dict]) -> float:
    return float(sum(s.get("wall_s") or 0.0 for s in segments))


# --- status ----------------------------------------------------------------------------------------------


def run_status(folder: str | os.PathLike) -> dict:
    """Where one run stands: ``finished`` (``result.json``), ``preempted`` / ``crashed`` / ``running`` (its
    last segment), epochs done, last validation force MAE, learning rate, wall time over segments."""
    from .nequip import read_training_log
    from .results import RESULT_JSON

    folder = Path(folder)
    name = folder.name[1 : -len(".partial")] if folder.name.endswith(".partial") else folder.name
    segments = read_json(folder / SEGMENTS_JSON, [])
    result = read_json(folder / RESULT_JSON, None)
    if result is not None:
        segments = segments or result.get("training", {}).get("segments", [])
    training = read_training_log(folder / "metrics.csv")
    if result is not None:
        state = "finished"
    elif segments:
        state = segments[-1]["exit"]
        if state == "running" and not _alive(segments[-1]):
            state = "crashed"
    else:
        state = "not started"
    identity = read_json(folder / RUN_JSON, None) or (result or {})
    return {
        "name": name,
        "state": state,
        "element": identity.get("element"),
        "split": identity.get("split"),
        "segments": len(segments),
        "epochs": training.epochs,
        "lr": training.final_lr,
        "best_val_forces_mae": training.best_val_forces_mae,
        "wall_s": total_wall_s(segments),
        "checkpoint": (folder / LAST_CKPT).is_file(),
        "path": str(folder),
    }


def _alive(segment: dict) -> bool:
    """Whether the process of a ``running`` segment still runs (same host only; elsewhere assume it does)."""
    pid = segment.get("pid")
    if pid is None or segment.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_runs(path: str | os.PathLike) -> list[dict]:
    """The status of every NequIP run folder (finished ``NAME`` or unfinished ``.NAME.partial``) at or
    directly under ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder (give the --out folder of tm23 baseline nequip)")
    candidates = [path] if (path / RUN_JSON).is_file() or (path / SEGMENTS_JSON).is_file() else sorted(path.iterdir())
    rows = []
    for folder in candidates:
        if not folder.is_dir():
            continue
        if (folder / RUN_JSON).is_file() or (folder / SEGMENTS_JSON).is_file() or (
            (folder / "result.json").is_file() and (folder / "best.ckpt").is_file()
        ):
            rows.append(run_status(folder))
    return rows
