"""Keeping the cache trustworthy: a record of the verified archive (so every build re-checks it cheaply and
knows the size a download must have), quarantine of a damaged or foreign archive, and removal of temporary
files whose writing process is gone (a killed build or import)."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from . import config
from .atomic import write_atomic
from .errors import ChecksumError
from .hashes import file_md5
from .locks import pid_alive

log = logging.getLogger(__name__)

RECORD_NAME = "archive.json"
#: Temporary names written by :func:`tm23data.atomic.atomic_path`: ``.<stem>.<pid>.<thread>.tmp<suffix>``.
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.\d+\.tmp(\.\w+)?$")


def _record_path(md5: str) -> Path:
    return config.home() / "archives" / md5 / RECORD_NAME


def read_record(md5: str) -> dict:
    try:
        record = json.loads(_record_path(md5).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def record_verified(path: Path, md5: str) -> None:
    """Note the size and modification time of an archive whose md5 was just verified."""
    st = path.stat()
    try:
        write_atomic(_record_path(md5), json.dumps({"name": path.name, "size": st.st_size,
                                                    "mtime_ns": st.st_mtime_ns, "md5": md5}))  # fmt: skip
    except OSError as err:  # a read-only cache still works: the md5 is then checked on each build
        log.debug("cannot record the verified archive %s: %s", path, err)


def expected_size(md5: str) -> int | None:
    """Size of the archive with this md5, known once it was verified here (kept through a quarantine)."""
    size = read_record(md5).get("size")
    return size if isinstance(size, int) and size > 0 else None


def archive_is_intact(path: Path, md5: str, *, full: bool = False) -> bool:
    """Cheap check (name, size and mtime as recorded at verification); the full md5 when they changed,
    when there is no record, or with ``full``."""
    record = read_record(md5)
    st = path.stat()
    if not full and record.get("name") == path.name and record.get("size") == st.st_size \
            and record.get("mtime_ns") == st.st_mtime_ns:  # fmt: skip
        return True
    if file_md5(path) != md5:
        return False
    record_verified(path, md5)
    return True


def quarantine(path: Path, why: str) -> Path:
    """Move a damaged or foreign archive out of its slot into ``$TM23_HOME/quarantine`` (kept for inspection)."""
    folder = config.home() / "quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{path.name}"
    os.replace(path, target)
    log.warning("%s: %s; moved to %s", path, why, target)
    return target


def verified_archive(source) -> Path | None:
    """The cached archive of ``source`` if it is intact; a damaged or foreign one is quarantined (None)."""
    path = source.archive_path()
    if not path.exists():
        return None
    if archive_is_intact(path, source.md5):
        return path
    try:
        quarantine(path, f"md5 differs from the expected {source.md5}")
    except OSError as err:  # e.g. a read-only cache: refuse the archive rather than serve it
        raise ChecksumError(str(path), source.md5, file_md5(path), f"It cannot be moved aside ({err}); delete it "
                            "and download or `tm23 import` the right file.", kind="md5") from None  # fmt: skip
    return None


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files under ``folder`` whose writing process no longer exists on this host."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.rglob(".*.tmp*"):
        m = _TEMP_RE.match(path.name)
        if m and path.is_file() and not pid_alive(int(m.group(1))):
            out.append(path)
    return sorted(out)


def remove_stale_temporaries(folder: Path | None = None) -> list[Path]:
    """Remove (and return) the stale temporaries under ``folder`` (default: the whole cache)."""
    removed = []
    for path in stale_temporaries(folder or config.home()):
        try:
            path.unlink()
            removed.append(path)
        except OSError as err:
            log.warning("cannot remove stale temporary %s: %s", path, err)
    if removed:
        log.warning("removed %d temporary file(s) left by killed processes: %s", len(removed),
                    ", ".join(p.name for p in removed))  # fmt: skip
    return removed
