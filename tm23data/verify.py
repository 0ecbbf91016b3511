"""``tm23 verify``: remove temporaries left by killed processes, re-hash the archive (a damaged one is
quarantined and fetched again when a URL is configured), re-check every cached store against its content hashes
(rebuilding damaged ones), and report how members overlap and whether every split is clean."""

from __future__ import annotations

import numpy as np

from . import config, elements, upkeep
from .archive import Archive, ArchiveError
from .errors import StepError
from .fetch import fetch_archive
from .hashes import file_md5
from .selection import Selection
from .splits import STANDARD_SPLITS
from .store import REGIME_NAMES, CorruptStoreError, StoreError, fingerprint, load_store, open_store, store_path


def verify(symbols: list[str] | None = None) -> dict:
    source = config.archive_source()
    problems: list[str] = []
    report: dict = {"archive": {"expected_md5": source.md5}, "elements": {}, "problems": problems}
    removed = upkeep.remove_stale_temporaries()
    report["removed_temporaries"] = [str(p) for p in removed]
    archive_path = source.archive_path()
    in_archive: list[str] = []
    if archive_path.exists():
        md5 = file_md5(archive_path)
        report["archive"].update(path=str(archive_path), md5=md5, md5_ok=md5 == source.md5)
        if md5 != source.md5:
            moved = upkeep.quarantine(archive_path, f"md5 {md5} differs from the expected {source.md5}")
            report["archive"]["quarantined"] = str(moved)
            archive_path = _refetch(source, report, problems, f"{archive_path}: md5 {md5} differs from the expected "
                                    f"{source.md5}; it was moved to {moved}")  # fmt: skip
        else:
            upkeep.record_verified(archive_path, md5)
        if archive_path is not None:
            try:
                with Archive(archive_path) as archive:
                    in_archive = archive.elements()
                    report["archive"]["provenance"] = archive.provenance()
            except ArchiveError as err:
                problems.append(str(err))
    else:
        report["archive"]["note"] = f"{archive_path} is absent; only cached stores are checked"
    # stores are named <El>.h5; anything else there (a temporary file being written) is not ours to judge
    known = set(elements.symbols())
    cached = sorted(p.stem for p in source.store_dir().glob("*.h5") if p.stem in known)
    chosen = elements.resolve(symbols) if symbols else sorted(set(in_archive) | set(cached))
    archive_ok = bool(in_archive)
    for el in chosen:
        report["elements"][el] = _verify_element(el, source, archive_ok, problems)
    report["ok"] = not problems
    return report


def _refetch(source, report: dict, problems: list[str], what: str):
    """Fetch the archive again after a quarantine, when a URL is configured and the network is allowed."""
    if not source.urls or config.offline():
        problems.append(f"{what}; no URL to fetch it again from (or offline): `tm23 import PATH.zip` the right file")
        return None
    try:
        path = fetch_archive(source, progress=False)
    except (StepError, ValueError) as err:
        problems.append(f"{what}; fetching it again failed: {err}")
        return None
    report["archive"]["repaired"] = f"fetched again into {path}"
    report["archive"]["md5_ok"] = True
    return path


def _verify_element(el: str, source, archive_ok: bool, problems: list[str]) -> dict:
    path = store_path(el, source)
    out: dict = {"store": str(path)}
    status = "ok"
    try:
        store = open_store(path, fingerprint(el, source.md5))
        if not _hashes_match(store):
            raise CorruptStoreError(f"{path}: stored arrays no longer match their content hashes")
    except (CorruptStoreError, FileNotFoundError) as err:
        if not archive_ok:
            problems.append(f"{el}: {err}; the archive is not available to rebuild it")
            out["store_status"] = "unusable"
            return out
        if path.exists():
            path.unlink()
            status = f"was damaged ({err}); rebuilt"
        else:
            status = "built"
        try:
            store = load_store(el, source, progress=False)
        except (StoreError, ValueError) as build_err:
            problems.append(f"{el}: {build_err}")
            out["store_status"] = "cannot be built"
            return out
    out["store_status"] = status
    out["unique_frames"] = len(store)
    out["members"] = {kind: int(len(idx)) for kind, idx in store.members.items()}
    out["duplicates_within_members"] = {
        kind: int(len(idx) - len(np.unique(idx))) for kind, idx in store.members.items() if len(np.unique(idx)) < len(idx)
    }
    out["overlap"] = {}
    for kind in ("2700cwm_train", "2700cwm_test"):
        regimes = store.regime[store.members[kind]]
        out["overlap"][kind] = {
            "frames": int(len(regimes)),
            "also_in_per_temperature": int(np.sum(regimes >= 0)),
            "by_regime": {REGIME_NAMES[r]: int(np.sum(regimes == r)) for r in np.unique(regimes)},
        }
    out["splits"] = {}
    for name in STANDARD_SPLITS:
        try:
            Selection.from_stores([store], name)
            out["splits"][name] = "ok"
        except ValueError as err:
            out["splits"][name] = str(err)
            if not name.startswith("melt_"):  # learning curves may exceed a small (regenerated) archive
                problems.append(f"{el} split {name}: {err}")
    return out


def _hashes_match(store) -> bool:
    content = np.frombuffer(b"".join(store.frames.content_hashes()), dtype=np.uint8).reshape(-1, 16)
    structure = np.frombuffer(b"".join(store.frames.structure_hashes()), dtype=np.uint8).reshape(-1, 16)
    return np.array_equal(content, store.frame_hash) and np.array_equal(structure, store.structure_hash)
