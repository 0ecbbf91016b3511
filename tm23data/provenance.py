"""Where results come from: timestamps and the versions of the packages that shape them, written into every
store, archive, run folder and report the package makes."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second (``2026-12-02T06:27:06+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions(*names: str) -> dict[str, str]:
    """``{"python": "3.11.7", name: version, ...}`` for the installed distributions among ``names``."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
