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

from . import config, manifest
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
    """Bounded retries per mirror with exponential backoff (seconds)."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: tuple[float, float] = (15.0, 60.0)  # connect, read

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt)


def fetch_archive(
    source: ArchiveSource | None = None, *, progress: bool = True, retry: RetryPolicy | None = None
) -> Path:
    """Return the path of the verified archive, downloading it if needed (safe across processes)."""
    from filelock import FileLock

    source = source or config.archive_source()
    target = source.archive_path()
    if target.exists():
        return target
    if config.offline():
        raise OfflineError(_missing_message(source, config.offline_reason()))
    if not source.urls:
        raise DownloadError(_missing_message(source, f"no URL is known for the archive with md5 {source.md5}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.exists():  # another process finished while we waited
            return target
        errors: list[tuple[str, DownloadError]] = []
        for url in source.urls:
            try:
                _download(url, target, source.md5, progress=progress, retry=retry or RetryPolicy())
                return target
            except (DownloadError, ChecksumError) as err:
                errors.append((url, err))
        if all(isinstance(err, ChecksumError) for _, err in errors):
            raise errors[-1][1]
        raise DownloadError(
            f"could not download {source.filename} (md5 {source.md5}):\n  "
            + "\n  ".join(f"{url}: {err}" for url, err in errors)
            + f"\nDownload it by hand from {manifest.RECORD_URL} and run `tm23 import PATH.zip`. Without a network: "
            "make a TM23-format archive locally (`tm23 generate`) and `tm23 import` it."
        )


def _missing_message(source: ArchiveSource, why: str) -> str:
    return (
        f"the TM23 archive {source.filename} (md5 {source.md5}) is not in {source.archive_dir()} and {why}. "
        f"Get it on a machine with internet (`tm23 download`, or from {manifest.RECORD_URL}), copy the zip here "
        f"and run `tm23 import PATH.zip`; or set TM23_HOME to a cache that holds it."
    )


def _download(url: str, target: Path, md5: str, *, progress: bool, retry: RetryPolicy) -> None:
    """Download ``url`` into ``target`` (already locked), resuming ``target.part`` across failures."""
    import requests
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    meta = target.with_name(target.name + ".part.json")
    validator = _read_validator(meta, url)
    if validator is None and part.exists():
        part.unlink()  # bytes of unknown origin: never append to them
    session = requests.Session()
    attempt = failures = 0
    bar = None
    try:
        while True:
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
                if validator:
                    headers["If-Range"] = validator
            try:
                with session.get(url, headers=headers, stream=True, timeout=retry.timeout) as resp:
                    if resp.status_code in (404, 410):
                        raise DownloadError(f"HTTP {resp.status_code} (not found)")
                    if resp.status_code == 416 and offset:  # nothing left to send: the part is complete
                        break
                    if resp.status_code in (401, 403):
                        raise DownloadError(f"HTTP {resp.status_code} (access denied; check the URL or mirror)")
                    if resp.status_code >= 400:
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
                    if bar is None:
                        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                   desc=target.name[:40], disable=not progress, leave=False)
                    else:
                        bar.reset(total=total)
                        bar.update(offset)
                    with open(part, "ab" if append else "wb") as fh:
                        for block in resp.iter_content(STREAM_CHUNK):
                            fh.write(block)
                            bar.update(len(block))
                    if total is not None and part.stat().st_size < total:
                        raise _Retryable(f"connection closed at {part.stat().st_size} of {total} bytes")
                    break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    _Retryable) as err:  # fmt: skip
                progressed = part.exists() and part.stat().st_size > offset
                why = None if progressed else _unreachable(err)
                if why:  # no such host, or nothing listening: retrying cannot help, go to the next mirror now
                    raise DownloadError(why) from None
                failures += 1
                attempt = 0 if progressed else attempt + 1  # a drop after progress is resumed, not counted
                if attempt >= retry.attempts or failures >= retry.attempts * 10:
                    raise DownloadError(f"gave up after {failures} failed requests: {err}") from None
                wait = retry.delay(attempt - 1)
                if progressed:
                    log.warning("download of %s interrupted (%s); resuming in %.1fs", url, err, wait)
                else:
                    log.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, err, attempt,
                                retry.attempts - 1, wait)
                time.sleep(wait)
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


class _Retryable(Exception):
    pass


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
    from filelock import FileLock

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
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            with atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
                copied = file_md5(tmp)
                if copied != source.md5:  # the file changed while it was being copied
                    raise md5_mismatch(f"copy of {path}", source.md5, copied)
    register(target, source.md5, name=name, source=str(path.resolve()), stamp=stamp)
    return target
