"""What the published TM23 archive is: its URLs, checksum and member names (see dataset_card.md).

Materials Cloud Archive record 2024.48, DOI 10.24435/materialscloud:6c-b3 (CC-BY-4.0).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import elements
from .errors import UsageError

ARCHIVE_NAME = "benchmarking_master_collection-20240316T202423Z-001.zip"

#: Mirrors in the order they are tried: the current Materials Cloud URL, then the older URL form.
ARCHIVE_URLS: tuple[str, ...] = (
    f"https://archive.materialscloud.org/records/tcrks-ymp88/files/{ARCHIVE_NAME}?download=1",
    f"https://archive.materialscloud.org/record/file?record_id=2113&filename={ARCHIVE_NAME}",
)

#: md5 of the published zip as asserted by a public importer (single source; a mismatch is reported, never served).
ARCHIVE_MD5 = "52b2c471591c8a8a88717f3fbdff6e37"

DOI = "10.24435/materialscloud:6c-b3"
RECORD_URL = "https://archive.materialscloud.org/records/tcrks-ymp88"
LICENSE = "CC-BY-4.0"

#: Folder inside the zip that holds every member.
MEMBER_DIR = "benchmarking_master_collection"


@dataclass(frozen=True)
class MemberKind:
    """One of the 8 files per element: which regime (None for the combined file) and which part."""

    name: str
    regime: str | None
    part: str  # "train" or "test"


#: The 8 members per element, per-temperature files first (they define each frame's regime).
MEMBER_KINDS: tuple[MemberKind, ...] = (
    *(MemberKind(f"{r}_nequip_{p}", r, p) for r in elements.REGIMES for p in ("train", "test")),
    MemberKind("2700cwm_train", None, "train"),
    MemberKind("2700cwm_test", None, "test"),
)
KIND_BY_NAME: dict[str, MemberKind] = {k.name: k for k in MEMBER_KINDS}


def member_name(element: str, kind: str) -> str:
    """Path of a member inside the zip, e.g. ``benchmarking_master_collection/Ti_cold_nequip_train.xyz``."""
    if kind not in KIND_BY_NAME:
        raise UsageError(f"unknown member kind {kind!r}; expected one of {', '.join(KIND_BY_NAME)}")
    return f"{MEMBER_DIR}/{element}_{kind}.xyz"


def member_names(element: str) -> dict[str, str]:
    """Kind -> member path for the 8 members of ``element``."""
    return {k.name: member_name(element, k.name) for k in MEMBER_KINDS}
