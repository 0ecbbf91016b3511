"""Archives as things you name: the cache's list of the archives it holds, and what ``archive=`` means.

Every archive in the cache (``$TM23_HOME/archives/<md5>/``) has an entry in ``archives/registry.json``: its
name, md5, elements, origin (published, generated - with how it was made - or unknown), when and from where
it was imported. ``tm23 archives`` lists them; ``tm23 import PATH [--name NAME]`` adds one. The published
archive is always known as ``published``, whether downloaded yet or not.

``archive=`` (``load_tm23``, ``TM23Dataset``, ``Selection.open``, ``export``; ``tm23 --archive`` or
``TM23_ARCHIVE`` for every command and the processes it starts) accepts, as HF's ``load_dataset`` accepts a
path:

- the name or md5 of an archive in the cache (``"published"``, ``"cu-emt"``, ``"52b2c471..."``);
- a path to a TM23-format zip: verified (every member name, size and compression ratio; the elements it holds)
  and imported on first use; later uses of the same unchanged file are not hashed again;
- a path to a folder of extracted member files (``Cu_2700cwm_train.xyz``, ... as other TM23 loaders or
  ``tm23 download --extract`` leave them): packed into a zip with fixed timestamps (so the same files always
  give the same md5), then as a zip;
- a URL with its md5, ``https://host/file.zip#md5=<32 hex>`` (the md5 names the archive's caches, so a URL
  without one is refused rather than trusted).

``TM23_MD5`` / ``TM23_URL`` keep working; an explicit ``archive=`` wins over them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import config, manifest
from .atomic import write_atomic
from .config import ArchiveSource
from .errors import UsageError, did_you_mean
from .provenance import Origin, utc_now

PUBLISHED_NAME = "published"
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}$")


@dataclass(frozen=True)
class ArchiveEntry:
    """One archive of the cache (or the published one, not downloaded yet: ``present`` is False)."""

    name: str
    md5: str
    filename: str
    elements: tuple[str, ...]
    origin: dict  # Origin.to_json()
    imported: str | None = None  # UTC, ISO 8601
    source: str | None = None  # the file, folder or URL it came from
    stamp: tuple | None = None  # (size, mtime_ns) of ``source`` when imported: reused without hashing again

    @property
    def path(self) -> Path:
        return config.home() / "archives" / self.md5 / self.filename

    @property
    def present(self) -> bool:
        return self.path.is_file()

    @property
    def published(self) -> bool:
        return self.md5 == manifest.ARCHIVE_MD5

    def to_source(self) -> ArchiveSource:
        urls = manifest.ARCHIVE_URLS if self.published else ()
        return ArchiveSource(urls=urls, md5=self.md5, filename=self.filename)

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path), "present": self.present}


def _registry_path() -> Path:
    return config.home() / "archives" / "registry.json"


def _read() -> dict[str, dict]:
    try:
        records = json.loads(_registry_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged list is rebuilt from the archives themselves (see entries())
    return {md5: r for md5, r in records.items() if isinstance(r, dict) and config.is_md5(md5)}


def _write(records: dict[str, dict]) -> None:
    _registry_path().parent.mkdir(parents=True, exist_ok=True)
    write_atomic(_registry_path(), json.dumps(records, indent=1, sort_keys=True))


def _lock():
    from filelock import FileLock

    _registry_path().parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(_registry_path()) + ".lock")


def _entry(record: dict) -> ArchiveEntry:
    return ArchiveEntry(**{**record, "elements": tuple(record.get("elements", ())),
                           "stamp": tuple(record["stamp"]) if record.get("stamp") else None})  # fmt: skip


def _describe(path: Path, md5: str) -> tuple[tuple[str, ...], dict]:
    """(elements, origin) read from the zip itself (member names, PROVENANCE.json)."""
    from .archive import Archive

    with Archive(path) as archive:
        return tuple(archive.elements()), Origin.of(md5, archive.provenance()).to_json()


def register(path: str | os.PathLike, md5: str, *, name: str | None = None, source: str | None = None,
             stamp: tuple | None = None) -> ArchiveEntry:  # fmt: skip
    """Record the archive at ``path`` (already in the cache under ``archives/<md5>/``) under ``name``.

    The default name is ``published`` for the published md5, else the zip's file name without ``.zip``
    (made unique with the md5's first 8 characters if another archive has it). A name given twice for two
    archives is refused."""
    path = Path(path)
    if name is not None and not _NAME_RE.match(name):
        raise UsageError(f"archive name {name!r} must start with a letter or digit and hold only letters, digits, "
                         "'_', '-', '+' or '.' (64 at most)")  # fmt: skip
    elements_, origin = _describe(path, md5)
    with _lock():
        records = _read()
        taken = {r["name"]: m for m, r in records.items() if m != md5}
        if md5 == manifest.ARCHIVE_MD5:
            if name not in (None, PUBLISHED_NAME):
                raise UsageError(f"the published archive is always named {PUBLISHED_NAME!r}")
            name = PUBLISHED_NAME
        elif name is None:
            old = records.get(md5, {}).get("name")
            name = old or re.sub(r"[^\w.+-]", "_", path.name.removesuffix(".zip"))[:55] or "archive"
            if name in taken or name == PUBLISHED_NAME:
                name = f"{name}-{md5[:8]}"
        elif name in taken or name == PUBLISHED_NAME:
            raise UsageError(f"the name {name!r} is already taken by the archive with md5 "
                             f"{taken.get(name, manifest.ARCHIVE_MD5)}; choose another (`tm23 archives` lists them)")  # fmt: skip
        old = records.get(md5, {})
        record = {"name": name, "md5": md5, "filename": path.name, "elements": list(elements_), "origin": origin,
                  "imported": old.get("imported") or utc_now(), "source": source or old.get("source"),
                  "stamp": list(stamp) if stamp else old.get("stamp")}  # fmt: skip
        records[md5] = record
        _write(records)
    return _entry(record)


def entries() -> list[ArchiveEntry]:
    """Every archive the cache knows (registered, or found in ``archives/<md5>/`` and registered now), and
    the published archive (present or not); published first, then by name."""
    records = _read()
    folder = config.home() / "archives"
    found = []
    if folder.is_dir():
        for sub in folder.iterdir():
            if sub.is_dir() and config.is_md5(sub.name) and sub.name not in records:
                zips = sorted(p for p in sub.glob("*.zip") if not p.name.startswith("."))
                if zips:
                    found.append((zips[0], sub.name))
    for path, md5 in found:  # archives imported before the registry existed, or a list that was damaged
        try:
            records[md5] = asdict(register(path, md5))
        except Exception:  # noqa: BLE001 - an unreadable zip is reported by `tm23 verify`, not here
            continue
    out = [_entry(r) for r in records.values()]
    if not any(e.published for e in out):
        out.append(ArchiveEntry(PUBLISHED_NAME, manifest.ARCHIVE_MD5, manifest.ARCHIVE_NAME,
                                tuple(e.symbol for e in _all_elements()), Origin("published", manifest.ARCHIVE_MD5).to_json(),
                                source=manifest.RECORD_URL))  # fmt: skip
    return sorted(out, key=lambda e: (not e.published, e.name))


def _all_elements():
    from . import elements

    return elements.all_elements()


def find(spec: str) -> ArchiveEntry | None:
    """The archive named ``spec`` or with md5 ``spec``, if the cache knows it."""
    spec = str(spec).strip()
    for entry in entries():
        if spec in (entry.name, entry.md5):
            return entry
    return None


def having(element: str) -> list[ArchiveEntry]:
    """The archives that hold ``element``."""
    return [e for e in entries() if element in e.elements]


# --------------------------------------------------------------------------------------------------
# What archive= means


def resolve(archive) -> ArchiveSource:
    """The :class:`ArchiveSource` meant by ``archive`` (see the module docstring); imports a path on first use."""
    if isinstance(archive, ArchiveSource):
        return archive
    if archive is None:
        return config.archive_source()
    text = os.fspath(archive) if isinstance(archive, os.PathLike) else str(archive)
    if re.match(r"^https?://", text):
        return _from_url(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        return _from_zip(path)
    entry = find(text)
    if entry is not None:
        return entry.to_source()
    if config.is_md5(text.lower()):
        raise UsageError(f"no archive with md5 {text} in the cache ({config.home() / 'archives'}); import it with "
                         "`tm23 import PATH.zip` (`tm23 archives` lists what is there)")  # fmt: skip
    names = [e.name for e in entries()]
    looks_like_path = os.sep in text or text.endswith(".zip")
    raise UsageError(
        (f"{text}: no such file or folder" if looks_like_path else f"unknown archive {text!r}.")
        + did_you_mean(text, names) + f" Archives in the cache: {', '.join(names)}; archive= also takes a path "
        "to a zip or to a folder of member files, or URL#md5=HEX"
    )


def _from_url(url: str) -> ArchiveSource:
    base, _, fragment = url.partition("#")
    m = re.fullmatch(r"md5=([0-9a-fA-F]{32})", fragment)
    if not m:
        raise UsageError(f"{url}: a URL needs its md5, as {base}#md5=<32 hex digits> (the md5 names the archive's "
                         "caches; an archive is never used unverified)")  # fmt: skip
    md5 = m.group(1).lower()
    entry = find(md5)
    return ArchiveSource(urls=(base,), md5=md5, filename=entry.filename if entry else config.filename_from_url(base))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


def _from_zip(path: Path) -> ArchiveSource:
    from .fetch import import_archive
    from .hashes import file_md5

    path = path.resolve()
    stamp = _stamp(path)
    for entry in entries():  # the same unchanged file as before: no second md5 of a large file
        if entry.source == str(path) and entry.stamp == stamp and entry.present:
            return entry.to_source()
    md5 = file_md5(path)
    entry = find(md5)
    if entry is None or not entry.present:
        filename = path.name if re.fullmatch(r"[\w+-][\w.+-]*\.zip", path.name) else config.CUSTOM_ARCHIVE_NAME
        import_archive(path, ArchiveSource(urls=(), md5=md5, filename=filename), stamp=stamp)
        entry = find(md5)
    elif entry.source != str(path) or entry.stamp != stamp:
        entry = register(entry.path, md5, name=entry.name, source=str(path), stamp=stamp)
    return entry.to_source()


def _from_folder(folder: Path) -> ArchiveSource:
    """Pack the member files of ``folder`` into a TM23-format zip (fixed timestamps: the same files give the
    same md5) and use that; an unchanged folder is not packed again."""
    from .archive import pack_member_files

    folder = folder.resolve()
    label = f"folder {folder}"
    files = sorted(p for p in folder.iterdir() if p.is_file())
    stamp = (len(files), sum(p.stat().st_size for p in files), max((p.stat().st_mtime_ns for p in files), default=0))
    for entry in entries():
        if entry.source == label and entry.stamp == stamp and entry.present:
            return entry.to_source()
    home = config.home()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tm23-pack-", dir=home) as tmp:
        stem = re.sub(r"[^\w.+-]", "_", folder.name) or "folder"
        zip_path = Path(tmp) / f"{stem}.zip"
        md5 = pack_member_files(folder, zip_path)
        from .fetch import import_archive

        target = import_archive(zip_path, ArchiveSource(urls=(), md5=md5, filename=zip_path.name))
    entry = register(target, md5, name=find(md5).name, source=label, stamp=stamp)
    return entry.to_source()
