"""The HDF5 caches the package writes (element stores, radius graphs): checksummed, atomic, rebuilt when bad.

- Datasets are contiguous; the xxh3-64 digest of each one's dtype, shape and bytes, and of the metadata
  text, goes into one JSON attribute, and the metadata into another (one attribute read each: h5py's per-object overhead, not the bytes, dominates
  small reads). xxh3 runs at several GB/s, so checking a whole 3000-frame store on every load costs well
  under a millisecond, and any damaged byte is caught rather than served.
- A cache is written to a temporary file, marked complete last, and renamed into place.
- :func:`open_or_build` opens a cache if it is valid and otherwise (re)builds it under a file lock, so
  concurrent processes build it once.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from .atomic import atomic_path
from .errors import ChecksumError, DataError
from .hashes import array_digest

log = logging.getLogger(__name__)

DIGEST_ATTR = "xxh3_64"
META_ATTR = "tm23data"
T = TypeVar("T")


class CacheFileError(DataError):
    """A cache file is incomplete or was not written by tm23data (it is rebuilt)."""


class ChecksummedFile:
    """An open ``h5py.File`` whose datasets carry digests: ``write`` records them, ``read`` checks them."""

    def __init__(self, h5):
        self.h5 = h5
        self._digests: dict[str, str] = {}
        if h5.mode == "r":
            if not h5.attrs.get("complete"):
                raise CacheFileError(f"{h5.filename}: not completely written")
            try:
                self._digests = json.loads(h5.attrs[DIGEST_ATTR])
                meta_text = h5.attrs[META_ATTR]
                self.meta: dict = json.loads(meta_text)
            except (KeyError, ValueError, TypeError):
                raise CacheFileError(f"{h5.filename}: no digests or metadata; not written by tm23data") from None
            actual = _text_digest(meta_text)
            if self._digests.get(META_ATTR) != actual:
                raise ChecksumError(f"{h5.filename}: metadata", str(self._digests.get(META_ATTR)), actual,
                                    "The cache is damaged; it is rebuilt.", kind="xxh3-64")

    def write(self, name: str, data) -> None:
        data = np.ascontiguousarray(data)
        self.h5.create_dataset(name, data=data)
        self._digests[name] = _digest(data)

    def read(self, name: str) -> np.ndarray:
        data = self.h5[name][()]
        actual = _digest(data)
        if self._digests.get(name) != actual:
            raise ChecksumError(f"{self.h5.filename}: dataset {name}", str(self._digests.get(name)), actual,
                                "The cache is damaged; it is rebuilt.", kind="xxh3-64")
        return data


def _digest(data: np.ndarray) -> str:
    """Digest of an array's dtype, shape and bytes: the same bytes read as another type are not the same data."""
    return f"{data.dtype.str}{list(data.shape)}:{array_digest(data)}"


def _text_digest(text) -> str:
    raw = text.encode() if isinstance(text, str) else bytes(text)
    return array_digest(np.frombuffer(raw, dtype=np.uint8))


@contextmanager
def write_atomically(path: Path, meta: dict):
    """Yield a :class:`ChecksummedFile` on a temporary file next to ``path``; on success store the digests
    and ``meta``, mark the file complete and rename it to ``path``. On failure nothing appears."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            out = ChecksummedFile(h5)
            yield out
            meta_text = json.dumps(meta, indent=1, ensure_ascii=False)
            h5.attrs[META_ATTR] = meta_text
            out._digests[META_ATTR] = _text_digest(meta_text)
            h5.attrs[DIGEST_ATTR] = json.dumps(out._digests, sort_keys=True)
            h5.attrs["complete"] = True  # written last


def open_or_build(path: Path, open_: Callable[[Path], T], build: Callable[[Path], None], invalid: type[Exception]) -> T:
    """``open_(path)`` if it succeeds; if it raises ``invalid`` (or there is no file), ``build(path)`` under
    a file lock (once across processes) and open the result."""
    from .locks import held
    from .upkeep import remove_stale_temporaries

    if path.exists():
        try:
            return open_(path)
        except invalid as err:
            log.warning("%s; rebuilding it", err)
    path.parent.mkdir(parents=True, exist_ok=True)
    with held(str(path) + ".lock", f"building {path.name}"):
        remove_stale_temporaries(path.parent)  # left by a killed build
        if path.exists():  # built by another process while we waited, or still bad
            try:
                return open_(path)
            except invalid:
                pass
        build(path)
    return open_(path)
