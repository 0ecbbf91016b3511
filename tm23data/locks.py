"""Cross-process locks that say who holds them: beside ``X.lock`` the holder writes ``X.lock.owner.json``
(pid, host, start time, what it does), atomically, so a waiter that gives up after a bounded wait can name
the process it waited for instead of hanging silently."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import config
from .atomic import write_atomic
from .errors import StepError
from .provenance import utc_now

log = logging.getLogger(__name__)


class LockTimeout(StepError):
    """Another process held a cache lock for longer than ``TM23_LOCK_TIMEOUT``; the message names it."""


def owner(lock_path: str | os.PathLike) -> dict | None:
    """The owner record of a held lock, or None."""
    try:
        return json.loads(Path(str(lock_path) + ".owner.json").read_text())
    except (OSError, ValueError):
        return None


def describe(record: dict | None) -> str:
    if not record:
        return "held by a process that left no owner record"
    alive = " (no longer running)" if record.get("host") == socket.gethostname() and not pid_alive(record.get("pid", 0)) else ""
    return (f"held by pid {record.get('pid')}{alive} on {record.get('host')} since {record.get('started')} "
            f"({record.get('doing', 'working')})")  # fmt: skip


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (``os.kill(pid, 0)``; a process of another user counts)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def held(lock_path: str | os.PathLike, doing: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the file lock ``lock_path`` (waiting at most ``timeout`` s, default ``TM23_LOCK_TIMEOUT``),
    with an owner record beside it while held."""
    from filelock import FileLock, Timeout

    timeout = config.lock_timeout() if timeout is None else timeout
    lock = FileLock(str(lock_path))
    record_path = Path(str(lock_path) + ".owner.json")
    started = time.monotonic()
    try:
        lock.acquire(timeout=min(timeout, 2.0))
    except Timeout:
        log.warning("waiting for %s, %s", lock_path, describe(owner(lock_path)))
        try:
            lock.acquire(timeout=max(0.0, timeout - (time.monotonic() - started)))
        except Timeout:
            raise LockTimeout(
                f"gave up after waiting {timeout:.0f} s for {lock_path}, {describe(owner(lock_path))}. Wait for it "
                "to finish, stop it, or raise TM23_LOCK_TIMEOUT; a lock whose holder is gone is released by the "
                "system, so a stuck holder is still running"
            ) from None
    try:
        write_atomic(record_path, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "started": utc_now(), "doing": doing}))  # fmt: skip
        yield
    finally:
        record_path.unlink(missing_ok=True)
        lock.release()
