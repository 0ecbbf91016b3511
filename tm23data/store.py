"""The HDF5 cache of one element: every distinct frame once, flat arrays, member lists, provenance.

Built once from the archive (under a lock, written to a temporary file and renamed), keyed by the
archive's md5, and rebuilt whenever its fingerprint no longer matches or it fails to read back: every
dataset carries an xxh3-64 digest checked on every load (a few GB/s, so a 3000-frame store still loads in
milliseconds), so a corrupt or truncated store is detected, never served.

Frames are identified by content (BLAKE2b over structure and labels): the 2700cwm members may repeat the
per-temperature frames, and each distinct frame is stored once; members are lists of frame indices.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, config, elements, manifest
from .archive import Archive
from .config import ArchiveSource
from .errors import StepError
from .extxyz import READER_VERSION, parse_extxyz
from .fetch import fetch_archive
from .frames import HASH_VERSION, Frames
from .h5io import ChecksummedFile, open_or_build, write_atomically
from .provenance import Origin, utc_now

log = logging.getLogger(__name__)

#: Bumped whenever the store's layout changes (invalidates every store).
STORE_FORMAT_VERSION = 1
REGIME_NAMES = (*elements.REGIMES, "unknown")  # code -1 -> "unknown" (a 2700cwm frame in no per-T file)
UNKNOWN_REGIME = -1


class StoreError(StepError):
    """The store cannot be built (bad archive content); the message names member and frame."""


class CorruptStoreError(StoreError):
    """The store on disk is truncated, damaged or stale."""


def fingerprint(element: str, archive_md5: str) -> str:
    """Identity of a store's content: changes when the archive or the way it is processed changes."""
    key = f"tm23-store:{STORE_FORMAT_VERSION}:{READER_VERSION}:{HASH_VERSION}:{element}:{archive_md5}"
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Store:
    """A validated store of one element, loaded into memory (a few MB per element)."""

    path: Path
    element: str
    fingerprint: str
    archive_md5: str
    frames: Frames
    regime: np.ndarray  # (F,) int8, index into REGIME_NAMES (-1 unknown)
    frame_id: np.ndarray  # (F,) str, e.g. "Ti-cold-0123"
    frame_hash: np.ndarray  # (F, 16) uint8 content hash
    structure_hash: np.ndarray  # (F, 16) uint8 structure-only hash
    members: dict[str, np.ndarray]  # kind -> frame indices in file order
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def content_hash(self) -> str:
        return str(self.attrs["content_hash"])

    @property
    def origin(self) -> Origin:
        """Where these frames came from: the published archive, a generated one, or unknown."""
        return Origin.of(self.archive_md5, self.attrs.get("provenance"), self.element)

    def regime_names(self, indices=None) -> np.ndarray:
        codes = self.regime if indices is None else self.regime[np.asarray(indices)]
        return np.array(REGIME_NAMES, dtype=object)[codes]


def store_path(element: str, source: ArchiveSource | None = None) -> Path:
    source = source or config.archive_source()
    return source.store_dir() / f"{element}.h5"


def load_store(element: str, source: ArchiveSource | None = None, *, progress: bool = True) -> Store:
    """The store of ``element``: opened if valid, else (re)built from the archive (fetched if needed)."""
    elements.get(element)
    source = source or config.archive_source()
    expected = fingerprint(element, source.md5)
    return open_or_build(
        store_path(element, source),
        lambda path: open_store(path, expected),
        lambda path: build_store(element, source, path, progress=progress),
        CorruptStoreError,
    )


def open_store(path: Path, expected_fingerprint: str | None = None) -> Store:
    """Read and validate a store; CorruptStoreError if it is damaged, truncated or stale."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            h = ChecksummedFile(h5)
            attrs = h.meta
            if expected_fingerprint and attrs.get("fingerprint") != expected_fingerprint:
                raise CorruptStoreError(f"{path}: store fingerprint is stale (built by another format or archive)")
            frames = Frames(
                natoms=np.diff(h.read("frames/offsets")),
                numbers=h.read("atoms/numbers").astype(np.int64),
                positions=h.read("atoms/positions"),
                forces=h.read("atoms/forces"),
                energy=h.read("frames/energy"),
                free_energy=h.read("frames/free_energy"),
                stress=h.read("frames/stress"),
                cell=h.read("frames/cell"),
                pbc=h.read("frames/pbc").astype(bool),
            )
            member_index, member_bounds = h.read("members/index").astype(np.int64), h.read("members/bounds")
            store = Store(
                path=path,
                element=attrs["element"],
                fingerprint=attrs["fingerprint"],
                archive_md5=attrs["archive_md5"],
                frames=frames,
                regime=h.read("frames/regime"),
                frame_id=h.read("frames/frame_id").astype(str),
                frame_hash=h.read("frames/frame_hash"),
                structure_hash=h.read("frames/structure_hash"),
                members={
                    kind.name: member_index[member_bounds[k] : member_bounds[k + 1]]
                    for k, kind in enumerate(manifest.MEMBER_KINDS)
                },
                attrs=attrs,
            )
    except CorruptStoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as err:  # truncation, h5io.ChecksumError, ...
        raise CorruptStoreError(f"{path}: store is unreadable or damaged ({err})") from None
    _check_consistency(store)
    return store


def _check_consistency(store: Store) -> None:
    n = len(store.frames)
    problems = []
    if np.any(store.frames.natoms <= 0):
        problems.append("a frame has no atoms")
    if int(store.attrs.get("n_frames", -1)) != n:
        problems.append(f"{n} frames, attributes say {store.attrs.get('n_frames')}")
    for name in ("regime", "frame_id", "frame_hash", "structure_hash"):
        if len(getattr(store, name)) != n:
            problems.append(f"{name} has {len(getattr(store, name))} rows for {n} frames")
    for kind, idx in store.members.items():
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            problems.append(f"member {kind} points outside the frames")
    if problems:
        raise CorruptStoreError(f"{store.path}: inconsistent store ({'; '.join(problems)})")


def build_store(element: str, source: ArchiveSource, path: Path, *, progress: bool = True) -> Path:
    """Parse the 8 members of ``element`` and write the store atomically at ``path``."""
    from tqdm.auto import tqdm

    archive_path = fetch_archive(source, progress=progress)
    with Archive(archive_path) as archive:
        if element not in archive.elements():
            raise StoreError(_not_in_archive(element, source, archive.elements()))
        names = archive.members(element)
        parsed: dict[str, Frames] = {}
        for kind in tqdm(list(names), desc=f"{element}: reading archive", disable=not progress, leave=False):
            member = f"{archive_path.name}:{names[kind]}"
            frames = parse_extxyz(archive.read(names[kind]), source=member)
            _check_frames(frames, element, member)
            parsed[kind] = frames
        provenance = archive.provenance()
    assembled = _assemble(element, parsed)
    attrs = {
        "format_version": STORE_FORMAT_VERSION,
        "reader_version": READER_VERSION,
        "hash_version": HASH_VERSION,
        "element": element,
        "archive_md5": source.md5,
        "archive_name": archive_path.name,
        "fingerprint": fingerprint(element, source.md5),
        "tm23data_version": __version__,
        "created": utc_now(),
        "n_frames": len(assembled["frames"]),
        "content_hash": _content_hash(assembled["frame_hash"]),
        "units": "positions/cell: Å; energy: eV; forces: eV/Å; stress: eV/Å³ (ASE sign: positive = tensile)",
        "provenance": provenance or "published TM23 archive (VASP 5.4.1, PBE)",
    }
    _write_h5(path, assembled, attrs)
    return path


def _not_in_archive(element: str, source: ArchiveSource, present: list[str]) -> str:
    """Which archive lacks ``element``, how it was chosen, and which archives in the cache have it."""
    import os

    from .registry import find, having

    entry = find(source.md5)
    label = f"{entry.name!r} (md5 {source.md5})" if entry else f"md5 {source.md5}"
    chosen = next((f", chosen by {v}" for v in ("TM23_ARCHIVE", "TM23_MD5") if os.environ.get(v)), "")
    others = [e for e in having(element) if e.md5 != source.md5]
    where = ("; archives in the cache that have it: " + ", ".join(
        f"{e.name!r} (md5 {e.md5}{'' if e.present else ', not downloaded yet'})" for e in others)
        + f". Pass archive={others[0].name!r} (--archive {others[0].name})"
        + (", or unset that variable to use the published archive" if chosen else "")) if others else \
        "; no archive in the cache has it (`tm23 archives` lists them)"  # fmt: skip
    return (f"{element} is not in the archive {label}{chosen}, which holds {', '.join(present) or 'no element'}"
            f"{where}")


def _check_frames(frames: Frames, element: str, member: str) -> None:
    z = elements.get(element).Z
    if len(frames) == 0:
        raise StoreError(f"{member}: no frames; the member is empty")
    empty = np.flatnonzero(frames.natoms == 0)
    if len(empty):
        raise StoreError(f"{member}: frame {int(empty[0])} has no atoms (its first line says 0); the file is "
                         "damaged or not a TM23 member")  # fmt: skip
    off = frames.offsets
    wrong = np.flatnonzero(frames.numbers != z)
    if len(wrong):
        frame = int(np.searchsorted(off, wrong[0], side="right") - 1)
        raise StoreError(
            f"{member}: frame {frame} contains atomic number {int(frames.numbers[wrong[0]])}, but this member "
            f"should hold only {element} (Z={z}); the archive is mislabelled"
        )
    for label, missing in (
        ("energy", np.isnan(frames.energy)),
        ("forces", np.add.reduceat(np.isnan(frames.forces).any(axis=1), off[:-1]) > 0),
    ):
        if missing.any():
            raise StoreError(
                f"{member}: frame {int(np.flatnonzero(missing)[0])} has no {label}; TM23 frames must carry energy "
                "and forces (stress may be absent)"
            )


def _assemble(element: str, parsed: dict[str, Frames]) -> dict:
    """Distinct frames in first-seen order (per-temperature members first) and each member's indices."""
    index_of: dict[bytes, int] = {}
    picks: list[tuple[str, int]] = []  # (kind, position in member) of each distinct frame
    regime, frame_id, source_member, source_index = [], [], [], []
    members: dict[str, np.ndarray] = {}
    hashes_by_kind = {kind: frames.content_hashes() for kind, frames in parsed.items()}
    for kind_code, kind in enumerate(k.name for k in manifest.MEMBER_KINDS):
        info = manifest.KIND_BY_NAME[kind]
        idx = []
        for j, digest in enumerate(hashes_by_kind[kind]):
            if digest not in index_of:
                index_of[digest] = len(picks)
                picks.append((kind, j))
                if info.regime is not None:
                    offset = len(parsed[f"{info.regime}_nequip_train"]) if info.part == "test" else 0
                    regime.append(elements.REGIMES.index(info.regime))
                    frame_id.append(f"{element}-{info.regime}-{offset + j:04d}")
                else:
                    regime.append(UNKNOWN_REGIME)
                    frame_id.append(f"{element}-{kind}-{j:04d}")
                source_member.append(kind_code)
                source_index.append(j)
            idx.append(index_of[digest])
        members[kind] = np.array(idx, dtype=np.int64)
    frames = Frames.concat(
        [parsed[kind].take([j for k, j in picks if k == kind]) for kind in (k.name for k in manifest.MEMBER_KINDS)]
    )
    # Frames.concat groups by member; picks are in that same order because members are walked in order.
    digests = list(index_of)
    return {
        "frames": frames,
        "regime": np.array(regime, dtype=np.int8),
        "frame_id": np.array(frame_id, dtype="S"),
        "frame_hash": np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 16),
        "structure_hash": np.frombuffer(b"".join(frames.structure_hashes()), dtype=np.uint8).reshape(-1, 16),
        "source_member": np.array(source_member, dtype=np.int8),
        "source_index": np.array(source_index, dtype=np.int32),
        "members": members,
    }


def _content_hash(frame_hash: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(frame_hash).tobytes(), digest_size=16).hexdigest()


def _write_h5(path: Path, assembled: dict, attrs: dict) -> None:
    frames: Frames = assembled["frames"]
    kinds = [k.name for k in manifest.MEMBER_KINDS]
    with write_atomically(path, {**attrs, "member_kinds": kinds}) as h:
        h.write("frames/offsets", frames.offsets)
        h.write("frames/energy", frames.energy)
        h.write("frames/free_energy", frames.free_energy)
        h.write("frames/stress", frames.stress)
        h.write("frames/cell", frames.cell)
        h.write("frames/pbc", frames.pbc.astype(np.uint8))
        for key in ("regime", "frame_id", "frame_hash", "structure_hash", "source_member", "source_index"):
            h.write(f"frames/{key}", assembled[key])  # source_member indexes member_kinds
        h.write("atoms/numbers", frames.numbers.astype(np.uint8))
        h.write("atoms/positions", frames.positions)
        h.write("atoms/forces", frames.forces)
        # The 8 member lists, concatenated in member_kinds order, with their bounds.
        lists = [assembled["members"][kind] for kind in kinds]
        h.write("members/index", np.concatenate(lists).astype(np.int32))
        h.write("members/bounds", np.cumsum([0] + [len(x) for x in lists]))
