"""Fetch the archive: stream to ``.part``, resume with HTTP Range, retry with backoff, try mirrors in order,
verify the md5, then rename atomically. A file lock makes concurrent callers share one download.

Modelled on pooch's ``core.py`` (download -> verify -> atomic move). The final file exists only once
verified, so its presence means "verified"; ``tm23 verify`` re-hashes it on demand.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import config, locks, manifest, upkeep
from .atomic import atomic_path, fsync_file
from .config import ArchiveSource
from .errors import ChecksumError, StepError
from .hashes import file_md5

log = logging.getLogger(__name__)

STREAM_CHUNK = 1 << 16  # network reads: a dropped connection loses at most this much


class DownloadError(StepError):
    """Every mirror failed; the message lists what happened at each."""


def md5_mismatch(what: str, expected: str, actual: str) -> ChecksumError:
    """The error for bytes that do not have the expected md5 (they are never used)."""
    return ChecksumError(what, expected, actual, "The file was not used. If you built or mirrored the archive "
                         f"yourself, set TM23_MD5={actual} (or pass --md5) only if you trust it.", kind="md5")  # fmt: skip


class OfflineError(StepError):
    """TM23_OFFLINE=1 and something must be fetched."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries per mirror with exponential backoff (seconds); a transfer slower than ``min_rate``
    bytes/s for ``stall`` seconds is cut and retried; ``deadline`` bounds one mirror's download overall.
    ``None`` takes the value from the environment (see :mod:`tm23data.config`)."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    connect_timeout: float = 15.0
    stall: float | None = None
    min_rate: float | None = None
    deadline: float | None = None

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt)

    def resolved(self) -> RetryPolicy:
        from dataclasses import replace

        return replace(self, stall=self.stall or config.stall_timeout(), min_rate=self.min_rate or config.min_rate(),
                       deadline=self.deadline or config.download_deadline())  # fmt: skip


OFFLINE_ROUTE = "Without a network: make a TM23-format archive locally (`tm23 generate`) and `tm23 import` it."


def fetch_archive(
    source: ArchiveSource | None = None, *, progress: bool = True, retry: RetryPolicy | None = None
) -> Path:
    """Return the path of the verified archive, downloading it if needed (safe across processes).

    A cached archive is re-checked cheaply (size and mtime as verified) and fully when those changed; one
    that fails is quarantined and fetched again."""
    source = source or config.archive_source()
    found = upkeep.verified_archive(source)
    if found is not None:
        return found
    target = source.archive_dir() / source.filename
    if config.offline():
        raise OfflineError(_missing_message(source, config.offline_reason()))
    if not source.urls:
        raise DownloadError(_missing_message(source, f"no URL is known for the archive with md5 {source.md5}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.held(str(target) + ".lock", f"downloading {source.filename}"):
        found = upkeep.verified_archive(source)  # another process finished while we waited
        if found is not None:
            return found
        upkeep.remove_stale_temporaries(target.parent)
        errors: list[tuple[str, DownloadError]] = []
        policy = (retry or RetryPolicy()).resolved()
        for url in source.urls:
            try:
                _download(url, target, source.md5, progress=progress, retry=policy)
                upkeep.record_verified(target, source.md5)
                return target
            except (DownloadError, ChecksumError) as err:
                errors.append((url, err))
        if all(isinstance(err, ChecksumError) for _, err in errors):
            raise errors[-1][1]
        raise DownloadError(
            f"could not download {source.filename} (md5 {source.md5}):\n  "
            + "\n  ".join(f"{url}: {err}" for url, err in errors)
            + f"\nDownload it by hand from {manifest.RECORD_URL} and run `tm23 import PATH.zip`. {OFFLINE_ROUTE}"
        )


def _missing_message(source: ArchiveSource, why: str) -> str:
    return (
        f"the TM23 archive {source.filename} (md5 {source.md5}) is not in {source.archive_dir()} and {why}. "
        f"Get it on a machine with internet (`tm23 download`, or from {manifest.RECORD_URL}), copy the zip here "
        f"and run `tm23 import PATH.zip`; or set TM23_HOME to a cache that holds it. {OFFLINE_ROUTE}"
    )


def _retry_after(resp, limit: float) -> float | None:
    """Seconds asked by a Retry-After header (a number of seconds), bounded by ``limit``."""
    value = resp.headers.get("Retry-After", "").strip()
    return min(limit, float(value)) if value.isdigit() else None


def _download(url: str, target: Path, md5: str, *, progress: bool, retry: RetryPolicy) -> None:
    """Download ``url`` into ``target`` (already locked), resuming ``target.part`` across failures."""
    import requests
    import urllib3
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    meta = target.with_name(target.name + ".part.json")
    validator = _read_validator(meta, url)
    if validator is None and part.exists():
        part.unlink()  # bytes of unknown origin: never append to them
    known_size = upkeep.expected_size(md5)
    limit = known_size or config.max_download_bytes()
    started = time.monotonic()
    session = requests.Session()
    attempt = failures = 0
    bar = None
    try:
        while True:
            if retry.deadline and time.monotonic() - started > retry.deadline:
                raise DownloadError(f"not complete after the {retry.deadline:.0f} s deadline (TM23_DOWNLOAD_DEADLINE)")
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
                if validator:
                    headers["If-Range"] = validator
            wait = None
            try:
                with session.get(url, headers=headers, stream=True, timeout=(retry.connect_timeout, retry.stall)) as resp:
                    if resp.status_code in (404, 410):
                        raise DownloadError(f"HTTP {resp.status_code} (not found)")
                    if resp.status_code == 416 and offset:  # nothing left to send: the part is complete
                        break
                    if resp.status_code in (401, 403):
                        raise DownloadError(f"HTTP {resp.status_code} (access denied; check the URL or mirror)")
                    if resp.status_code >= 400:
                        wait = _retry_after(resp, retry.max_backoff) if resp.status_code in (429, 503) else None
                        raise _Retryable(f"HTTP {resp.status_code}")
                    if resp.status_code == 206 and _range_start(resp) != offset:
                        part.unlink(missing_ok=True)  # the server sent another range: start over
                        raise _Retryable(f"asked for bytes from {offset}, got {resp.headers.get('Content-Range')}")
                    append = resp.status_code == 206
                    if not append:
                        offset = 0
                    validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
                    meta.write_text(json.dumps({"url": url, "validator": validator}))
                    total = _total_size(resp, offset)
                    if total is not None and total > limit:
                        part.unlink(missing_ok=True)
                        raise DownloadError(_too_big(total, limit, known_size))
                    if bar is None:
                        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                   desc=target.name[:40], disable=not progress, leave=False)
                    else:
                        bar.reset(total=total)
                        bar.update(offset)
                    with open(part, "ab" if append else "wb") as fh:
                        _stream(resp, fh, bar, retry, started, offset, limit, known_size, part)
                    if total is not None and part.stat().st_size < total:
                        raise _Retryable(f"connection closed at {part.stat().st_size} of {total} bytes")
                    break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError, _Retryable) as err:  # fmt: skip
                progressed = part.exists() and part.stat().st_size > offset
                why = None if progressed else _unreachable(err)
                if why:  # no such host, or nothing listening: retrying cannot help, go to the next mirror now
                    raise DownloadError(why) from None
                delay, attempt, failures = _retry_or_give_up(err, url, part, offset, retry, (attempt, failures))
                time.sleep(wait if wait is not None else delay)
            except requests.RequestException as err:  # a bad URL, redirect loop, ...: try the next mirror
                raise DownloadError(f"{type(err).__name__}: {err}") from None
    finally:
        if bar is not None:
            bar.close()
        session.close()
    actual = file_md5(part)
    if actual != md5:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise md5_mismatch(f"download from {url}", md5, actual)
    fsync_file(part)  # an archive that is present counts as verified: it must be on disk whole
    os.replace(part, target)
    meta.unlink(missing_ok=True)


def _retry_or_give_up(err, url, part: Path, offset: int, retry: RetryPolicy, counts) -> tuple[float, int, int]:
    """(seconds to wait, attempt, failures) after a transient failure, or DownloadError once retries are spent."""
    attempt, failures = counts
    failures += 1
    progressed = part.exists() and part.stat().st_size > offset and not isinstance(err, _Stalled)
    attempt = 0 if progressed else attempt + 1  # a drop after progress is resumed, not counted
    if attempt >= retry.attempts or failures >= retry.attempts * 10:
        raise DownloadError(f"gave up after {failures} failed requests: {err}") from None
    wait = retry.delay(attempt - 1)
    if progressed:
        log.warning("download of %s interrupted (%s); resuming in %.1fs", url, err, wait)
    else:
        log.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, err, attempt, retry.attempts - 1, wait)
    return wait, attempt, failures


def _stream(resp, fh, bar, retry: RetryPolicy, started: float, offset: int, limit: int, known, part: Path) -> None:
    """Copy the body to ``fh`` as bytes arrive; cut a transfer slower than ``retry.min_rate`` for
    ``retry.stall`` s, past the deadline, or beyond ``limit`` bytes (then the part is removed)."""
    size = offset
    window_start, window_bytes = time.monotonic(), 0
    read = getattr(resp.raw, "read1", None) or resp.raw.read
    while True:
        block = read(STREAM_CHUNK)
        if not block:
            return
        fh.write(block)
        bar.update(len(block))
        size += len(block)
        window_bytes += len(block)
        if size > limit:
            fh.close()
            part.unlink(missing_ok=True)
            raise DownloadError(_too_big(size, limit, known))
        now = time.monotonic()
        if retry.deadline and now - started > retry.deadline:
            raise DownloadError(f"not complete after the {retry.deadline:.0f} s deadline (TM23_DOWNLOAD_DEADLINE)")
        if now - window_start >= retry.stall:
            if window_bytes < retry.min_rate * (now - window_start):
                raise _Stalled(f"stalled: {window_bytes} bytes in {now - window_start:.0f} s, under the "
                                 f"{retry.min_rate:.0f} B/s minimum (TM23_MIN_RATE, TM23_STALL_TIMEOUT)")  # fmt: skip
            window_start, window_bytes = now, 0


def _too_big(size: int, limit: int, known) -> str:
    what = f"the archive's verified size, {known} bytes" if known else f"the {limit}-byte limit (TM23_MAX_DOWNLOAD_BYTES)"
    return f"the server sends {size} bytes or more, beyond {what}; the partial file was removed"


class _Retryable(Exception):
    pass


class _Stalled(_Retryable):
    """Too slow to count as progress: retried, but each one uses up an attempt."""


def _unreachable(err: BaseException) -> str | None:
    """Why the host cannot be reached at all (its name does not resolve, or nothing listens on the port), or
    None for a transient failure (a reset, a timeout, a 5xx) that deserves its bounded retries."""
    import socket

    seen, stack = set(), [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "the host name does not resolve (no network, or a wrong URL)"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused (nothing listens at that address)"
        stack += [getattr(e, "reason", None), e.__cause__, e.__context__,
                  *(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))]  # fmt: skip
    return None


def _range_start(resp) -> int | None:
    value = resp.headers.get("Content-Range", "")  # "bytes START-END/TOTAL"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_size(resp, offset: int) -> int | None:
    if resp.status_code == 206:
        try:
            return int(resp.headers["Content-Range"].rsplit("/", 1)[1])
        except (KeyError, ValueError, IndexError):
            return None
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _read_validator(meta: Path, url: str) -> str | None:
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return info.get("validator") if info.get("url") == url else None


def import_archive(path: str | os.PathLike, source: ArchiveSource | None = None, *, name: str | None = None,
                   stamp: tuple | None = None) -> Path:  # fmt: skip
    """Adopt a manually downloaded or self-built archive: verify its md5, copy it atomically into the cache and
    list it in the cache's registry (under ``name``; see :mod:`tm23data.registry`)."""
    from .registry import register

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    source = source or config.archive_source()
    actual = file_md5(path)
    if actual != source.md5:
        raise md5_mismatch(f"{path}", source.md5, actual)
    filename = source.filename
    if filename == config.CUSTOM_ARCHIVE_NAME and re.fullmatch(r"[\w+-][\w.+-]*\.zip", path.name):
        filename = path.name  # a self-built archive keeps its own (safe, .zip) name
    target = source.archive_dir() / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.held(str(target) + ".lock", f"importing {path}"):
        upkeep.remove_stale_temporaries(target.parent)
        present = source.archive_path()
        if present.exists() and not upkeep.archive_is_intact(present, source.md5, full=True):
            upkeep.quarantine(present, f"md5 differs from the expected {source.md5}; replaced by {path}")
        elif present.exists():
            register(present, source.md5, name=name, source=str(path.resolve()), stamp=stamp)
            return present
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
            copied = file_md5(tmp)
            if copied != source.md5:  # the file changed while it was being copied
                raise md5_mismatch(f"copy of {path}", source.md5, copied)
        upkeep.record_verified(target, source.md5)
    register(target, source.md5, name=name, source=str(path.resolve()), stamp=stamp)
    return target
