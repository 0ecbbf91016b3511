"""Where things live and which archive is meant, from the environment (read at call time, so tests and
long-running processes see changes).

- ``TM23_HOME``: cache root (default: the user's cache directory, e.g. ``~/.cache/tm23data``).
- ``TM23_ARCHIVE``: which archive every command uses (a name or md5 from ``tm23 archives``, a path to a zip or
  a folder of member files, or ``URL#md5=HEX``; see :mod:`tm23data.registry`); ``tm23 --archive`` sets it.
- ``TM23_URL``: one or more mirror URLs (separated by spaces, or by commas before
  ``scheme://``; a comma inside a URL stays in it) that replace the published ones.
- ``TM23_MD5``: the md5 of the archive those URLs serve (default: the published archive's md5).
- ``TM23_OFFLINE=1``: never touch the network.
- ``TM23_MAX_MEMBER_BYTES``: largest archive member accepted, uncompressed (default 2 GiB).
- ``TM23_MAX_DOWNLOAD_BYTES``: largest download accepted when the archive's size is not known (default 4 GiB).
- ``TM23_STALL_TIMEOUT``: seconds a download may go with less than ``TM23_MIN_RATE`` bytes/s (default 60, 1024).
- ``TM23_DOWNLOAD_DEADLINE``: optional overall limit on one download, in seconds (default none).
- ``TM23_LOCK_TIMEOUT``: seconds to wait for another process's download or build (default 1800).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

from . import manifest
from .errors import UsageError

#: File name of an archive known only by its md5 (TM23_MD5 without TM23_URL) and imported under a name that
#: is not a plain ``*.zip`` name.
CUSTOM_ARCHIVE_NAME = "archive.zip"


def home() -> Path:
    """Cache root: ``$TM23_HOME`` or the platform's user cache directory."""
    env = os.environ.get("TM23_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tm23data", appauthor=False))


_offline_reason: str | None = None


@contextmanager
def settings(*, home: str | os.PathLike | None = None, offline_reason: str | None = None,
             archive: str | None = None) -> Iterator[None]:  # fmt: skip
    """Within the block, use the cache root ``home``, (with ``offline_reason``, e.g. "--offline was given")
    never touch the network, and use ``archive`` (see ``TM23_ARCHIVE``); child processes inherit all three
    (``TM23_HOME``, ``TM23_OFFLINE``, ``TM23_ARCHIVE``). Restored after."""
    global _offline_reason
    saved = {k: os.environ.get(k) for k in ("TM23_HOME", "TM23_OFFLINE", "TM23_ARCHIVE")}
    saved_reason = _offline_reason
    try:
        if home is not None:
            os.environ["TM23_HOME"] = str(home)
        if offline_reason is not None:
            os.environ["TM23_OFFLINE"] = "1"
            _offline_reason = offline_reason
        if archive is not None:
            os.environ["TM23_ARCHIVE"] = str(archive)
        yield
    finally:
        _offline_reason = saved_reason
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def offline() -> bool:
    """True when ``TM23_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("TM23_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def offline_reason() -> str:
    """Why the network is off, for error messages: ``--offline was given`` or ``TM23_OFFLINE=1 is set``."""
    return _offline_reason or "TM23_OFFLINE=1 is set"


#: Default largest member accepted (bytes, uncompressed); the largest published member is a few tens of MB.
MAX_MEMBER_BYTES = 2 << 30


def max_member_bytes() -> int:
    """``$TM23_MAX_MEMBER_BYTES`` or 2 GiB: the bound on any archive member's uncompressed size."""
    text = os.environ.get("TM23_MAX_MEMBER_BYTES", "").strip()
    if not text:
        return MAX_MEMBER_BYTES
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"TM23_MAX_MEMBER_BYTES must be a number of bytes, got {text!r}") from None
    if value <= 0:
        raise UsageError(f"TM23_MAX_MEMBER_BYTES must be positive, got {value}")
    return value


def _env_number(name: str, default: float | None, *, integer: bool = False) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise UsageError(f"{name} must be a {'whole ' if integer else ''}number, got {text!r}") from None
    if not value > 0:
        raise UsageError(f"{name} must be positive, got {text!r}")
    return value


def max_download_bytes() -> int:
    """``$TM23_MAX_DOWNLOAD_BYTES`` or 4 GiB: the bound on a download whose size is not known."""
    return int(_env_number("TM23_MAX_DOWNLOAD_BYTES", 4 << 30, integer=True))


def stall_timeout() -> float:
    """``$TM23_STALL_TIMEOUT`` (s, default 60): a download slower than ``min_rate()`` for this long is cut."""
    return float(_env_number("TM23_STALL_TIMEOUT", 60.0))


def min_rate() -> float:
    """``$TM23_MIN_RATE`` (bytes/s, default 1024): the slowest transfer counted as progress."""
    return float(_env_number("TM23_MIN_RATE", 1024.0))


def download_deadline() -> float | None:
    """``$TM23_DOWNLOAD_DEADLINE`` (s): optional overall limit on one download (all retries), else None."""
    return _env_number("TM23_DOWNLOAD_DEADLINE", None)


def lock_timeout() -> float:
    """``$TM23_LOCK_TIMEOUT`` (s, default 1800): how long to wait for another process's download or build."""
    return float(_env_number("TM23_LOCK_TIMEOUT", 1800.0))


_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


def is_md5(text: str) -> bool:
    """Whether ``text`` is 32 lower-case hexadecimal characters (an md5 as the cache's folders name it)."""
    return bool(_MD5_RE.match(text))


def check_md5(value: str, what: str = "md5") -> str:
    value = value.strip().lower()
    if not _MD5_RE.match(value):
        raise UsageError(f"{what} must be 32 hexadecimal characters, got {value!r}")
    return value


@dataclass(frozen=True)
class ArchiveSource:
    """One archive: where to fetch it (in order) and the md5 it must have.

    The md5 identifies the archive everywhere: cache folders and HDF5 stores are keyed by it, so a
    regenerated or mirrored archive never mixes with the published one.
    """

    urls: tuple[str, ...]
    md5: str
    filename: str

    @property
    def is_published(self) -> bool:
        return self.md5 == manifest.ARCHIVE_MD5

    def archive_dir(self) -> Path:
        return home() / "archives" / self.md5

    def archive_path(self) -> Path:
        """The archive in its md5 folder: under :attr:`filename` or, since the folder is keyed by md5, any zip
        placed there (a mirror's or an import's name); the path to download to when there is none."""
        named = self.archive_dir() / self.filename
        if named.exists():
            return named
        other = _existing_name(self.md5)
        return self.archive_dir() / other if other else named

    def store_dir(self) -> Path:
        return home() / "stores" / self.md5


def archive_source(md5: str | None = None, urls: str | list[str] | tuple[str, ...] | None = None) -> ArchiveSource:
    """The archive meant by the arguments, else by ``TM23_ARCHIVE``, else by ``TM23_URL``/``TM23_MD5``, else
    the published one."""
    if md5 is None and urls is None and os.environ.get("TM23_ARCHIVE", "").strip():
        from .registry import resolve  # the registry reads archives; imported here, when it is asked for

        return resolve(os.environ["TM23_ARCHIVE"].strip())
    what = "md5" if md5 else "TM23_MD5" if os.environ.get("TM23_MD5") else "md5"
    md5 = check_md5(md5 or os.environ.get("TM23_MD5") or manifest.ARCHIVE_MD5, what)
    if urls is None:
        urls = os.environ.get("TM23_URL") or ()
    if isinstance(urls, str):
        urls = split_urls(urls)
    urls = tuple(urls)
    if not urls:
        if md5 != manifest.ARCHIVE_MD5:
            # A custom archive without a URL can still be used once imported (tm23 import).
            return ArchiveSource(urls=(), md5=md5, filename=_existing_name(md5) or CUSTOM_ARCHIVE_NAME)
        return ArchiveSource(urls=manifest.ARCHIVE_URLS, md5=md5, filename=manifest.ARCHIVE_NAME)
    return ArchiveSource(urls=urls, md5=md5, filename=filename_from_url(urls[0]))


def split_urls(text: str) -> list[str]:
    """Mirror URLs from one string: separated by whitespace, or by a comma that starts another URL
    (``...,https://``), so a comma inside a URL's query string stays part of it."""
    return [u for u in re.split(r"\s+|,(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)", text) if u and u.strip(",")]


def filename_from_url(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    if not name or not name.endswith(".zip") or not re.match(r"^[\w.+-]+$", name):
        return manifest.ARCHIVE_NAME
    return name


def _existing_name(md5: str) -> str | None:
    """The name under which an archive with this md5 was imported (temporary files start with '.')."""
    folder = home() / "archives" / md5
    if folder.is_dir():
        zips = sorted(p.name for p in folder.glob("*.zip") if not p.name.startswith("."))
        if zips:
            return zips[0]
    return None
