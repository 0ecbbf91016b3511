"""The TM23 zip: safe reading of its members, safe extraction, and writing archives in the same format.

The archive is treated as untrusted input: member names that are absolute, contain ``..`` or are links
are refused, member sizes and compression ratios are bounded, and nothing is written outside the folder
asked for. Members are parsed straight from the zip; extraction is only for users who want the files.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from . import config, elements, manifest
from .atomic import atomic_path, write_atomic
from .errors import DataError, UsageError
from .frames import Frames

#: Largest compression ratio accepted (text extxyz deflates ~3-5x; zip bombs reach thousands).
MAX_RATIO = 100
PROVENANCE_NAME = f"{manifest.MEMBER_DIR}/PROVENANCE.json"
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_MEMBER_RE = re.compile(rf"^{manifest.MEMBER_DIR}/([A-Z][a-z]?)_([a-z0-9_]+)\.xyz$")


class ArchiveError(DataError):
    """The archive lacks what is needed or is damaged; the message names the archive and member."""


class UnsafeArchiveError(ArchiveError):
    """A member could escape the destination or exhaust memory; the archive is refused."""


class Archive:
    """An opened TM23 zip whose member names and sizes have been checked."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as err:
            raise ArchiveError(f"{self.path}: not a readable zip archive ({err}); delete it and download again") from None
        self._infos = {}
        for info in self._zip.infolist():
            _check_member(self.path, info)
            if info.filename in self._infos:  # zipfile would silently serve the last entry
                raise UnsafeArchiveError(f"{self.path}: member {info.filename!r} appears more than once; archive "
                                         "refused (which copy is meant is ambiguous)")  # fmt: skip
            self._infos[info.filename] = info

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def names(self) -> list[str]:
        return list(self._infos)

    def elements(self) -> list[str]:
        """Symbols with at least one member in the archive."""
        found = {m.group(1) for name in self._infos if (m := _MEMBER_RE.match(name))}
        return sorted(found)

    def members(self, element: str) -> dict[str, str]:
        """Kind -> member name for ``element``; error naming every missing member."""
        elements.get(element)
        names = manifest.member_names(element)
        missing = [name for name in names.values() if name not in self._infos]
        if missing:
            have = ", ".join(self.elements()) or "none"
            raise ArchiveError(
                f"{self.path}: missing member(s) {', '.join(missing)} (elements present: {have}). "
                "The archive is incomplete or not a TM23 archive; download it again or rebuild it."
            )
        return names

    def read(self, name: str) -> bytes:
        """Bytes of member ``name``, with its declared size bounded and its CRC checked."""
        if name not in self._infos:
            raise ArchiveError(f"{self.path}: no member {name}")
        info = self._infos[name]
        try:
            with self._zip.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (RuntimeError, NotImplementedError) as err:  # encrypted or unsupported, if not caught on open
            raise ArchiveError(f"{self.path}: member {name} cannot be read ({err}); rebuild the archive") from None
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:  # CRC mismatch, bad deflate, truncation
            raise ArchiveError(f"{self.path}: member {name} is damaged ({err}); download the archive again") from None
        if len(data) != info.file_size:
            raise ArchiveError(f"{self.path}: member {name} holds {len(data)} bytes, its header says {info.file_size}")
        return data

    def regime_frames(self, element: str, regime: str) -> tuple[Frames, Frames]:
        """(train, test) frames of one regime of ``element``, parsed from its two per-temperature members."""
        from .extxyz import parse_extxyz

        names = self.members(element)
        if regime not in elements.REGIMES:
            raise UsageError(f"unknown regime {regime!r}; TM23 regimes are {', '.join(elements.REGIMES)}")
        train, test = (names[f"{regime}_nequip_{part}"] for part in ("train", "test"))
        return (parse_extxyz(self.read(train), f"{self.path}:{train}"),
                parse_extxyz(self.read(test), f"{self.path}:{test}"))  # fmt: skip

    def provenance(self) -> dict | None:
        """The PROVENANCE.json written by ``tm23data.generation`` (None for the published archive)."""
        if PROVENANCE_NAME not in self._infos:
            return None
        return json.loads(self.read(PROVENANCE_NAME))

    def extract(self, element: str, destination: str | os.PathLike) -> list[Path]:
        """Write the 8 members of ``element`` into ``destination`` (each atomically); return their paths."""
        destination = Path(destination).resolve()
        destination.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in self.members(element).values():
            target = (destination / PurePosixPath(name).name).resolve()
            if target.parent != destination:  # defence in depth: names were already checked
                raise UnsafeArchiveError(f"{self.path}: member {name} would be written outside {destination}")
            write_atomic(target, self.read(name))
            paths.append(target)
        return paths


def _check_member(path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (
        name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name)
        or ".." in parts
        or "\x00" in name
    ):
        raise UnsafeArchiveError(f"{path}: member name {name!r} is absolute or climbs out with '..'; archive refused")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{path}: member {name!r} is encrypted; TM23 archives are not. Re-zip it without a "
                           "password")  # fmt: skip
    if info.compress_type not in _METHODS:
        raise ArchiveError(f"{path}: member {name!r} uses compression method {info.compress_type}, which cannot be "
                           "read (supported: stored, deflate, bzip2, lzma). Re-zip it with deflate")  # fmt: skip
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{path}: member {name!r} is a symbolic link; archive refused")
    limit = config.max_member_bytes()
    if info.file_size > limit:
        raise UnsafeArchiveError(
            f"{path}: member {name!r} declares {info.file_size} bytes, over the {limit}-byte limit "
            "(raise TM23_MAX_MEMBER_BYTES if you trust this archive)"
        )
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1 << 20:
        raise UnsafeArchiveError(
            f"{path}: member {name!r} expands {info.file_size / info.compress_size:.0f}x, more than text does; "
            "archive refused as a possible zip bomb"
        )


# --------------------------------------------------------------------------------------------------
# Writing archives in the published layout


def members_from_regimes(per_regime: dict[str, tuple[Frames, Frames]]) -> dict[str, Frames]:
    """The 8 members from (train, test) frames of each regime, as the paper built them: per-temperature
    files, and 2700cwm = cold, warm, melt training frames (and test frames) concatenated in that order."""
    missing = [r for r in elements.REGIMES if r not in per_regime]
    if missing:
        raise UsageError(f"frames missing for regime(s) {', '.join(missing)}")
    out: dict[str, Frames] = {}
    for regime in elements.REGIMES:
        train, test = per_regime[regime]
        out[f"{regime}_nequip_train"] = train
        out[f"{regime}_nequip_test"] = test
    out["2700cwm_train"] = Frames.concat([per_regime[r][0] for r in elements.REGIMES])
    out["2700cwm_test"] = Frames.concat([per_regime[r][1] for r in elements.REGIMES])
    return out


def write_archive(
    path: str | os.PathLike, members: dict[str, dict[str, Frames]], provenance: dict | None = None
) -> str:
    """Write a zip with the published member names: ``members[element][kind]`` -> frames.

    The file appears atomically; returns its md5 (the value to give as ``TM23_MD5``)."""
    from .extxyz import format_extxyz
    from .hashes import file_md5

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for element, kinds in members.items():
            elements.get(element)
            unknown = set(kinds) - set(manifest.KIND_BY_NAME)
            if unknown:
                raise UsageError(f"unknown member kind(s) {sorted(unknown)} for {element}")
            for kind, frames in kinds.items():
                zf.writestr(_zipinfo(manifest.member_name(element, kind)), format_extxyz(frames))
        if provenance is not None:
            zf.writestr(_zipinfo(PROVENANCE_NAME), json.dumps(provenance, indent=2, sort_keys=True))
    return file_md5(path)


def pack_member_files(folder: str | os.PathLike, path: str | os.PathLike) -> str:
    """Pack a folder of extracted member files (``Cu_2700cwm_train.xyz``, ..., and ``PROVENANCE.json`` if
    there) into a zip with the published member names and fixed timestamps, so the same files always give the
    same md5; returns it. Files that are not TM23 members are left out; a folder with none is an error."""
    from .hashes import file_md5

    folder = Path(folder)
    wanted = {f"{m.group(1)}_{m.group(2)}.xyz" for name in _published_names() if (m := _MEMBER_RE.match(name))}
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.name in wanted or p.name == "PROVENANCE.json"))
    if not any(p.suffix == ".xyz" for p in files):
        raise ArchiveError(f"{folder}: no TM23 member files (expected names like Cu_2700cwm_train.xyz, "
                           "Ti_cold_nequip_test.xyz)")  # fmt: skip
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in files:
            if file.stat().st_size > config.max_member_bytes():
                raise UnsafeArchiveError(f"{file}: {file.stat().st_size} bytes, above the member limit "
                                         f"{config.max_member_bytes()} (TM23_MAX_MEMBER_BYTES)")  # fmt: skip
            with open(file, "rb") as src, zf.open(_zipinfo(f"{manifest.MEMBER_DIR}/{file.name}"), "w") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    return file_md5(path)


def _published_names():
    return [manifest.member_name(e.symbol, k.name) for e in elements.all_elements() for k in manifest.MEMBER_KINDS]


def _zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 3, 16, 20, 24, 23))  # fixed: same frames, same bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info
