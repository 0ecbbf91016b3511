"""Checksummed HDF5 datasets for every cache the package writes (stores, processed graphs).

Datasets are stored contiguous; the xxh3-64 digest of each one's bytes goes into a single JSON attribute
on the file (one attribute read instead of one per dataset: h5py's per-object overhead, not the bytes,
dominates small reads). xxh3 runs at several GB/s, so verifying a whole 3000-frame store on every load
costs well under a millisecond, and any damaged byte is caught rather than served.
"""

from __future__ import annotations

import json

import numpy as np

DIGEST_ATTR = "xxh3_64"


class ChecksumError(OSError):
    """A dataset's bytes no longer match the digest written with them."""


def digest(array: np.ndarray) -> str:
    import xxhash

    return xxhash.xxh3_64_hexdigest(np.ascontiguousarray(array).data.cast("B"))


class ChecksummedFile:
    """Wraps an open ``h5py.File``: ``write`` records digests (call ``close`` to store them), ``read`` checks."""

    def __init__(self, h5):
        self.h5 = h5
        self._digests: dict[str, str] = {}
        if h5.mode == "r":
            try:
                self._digests = json.loads(h5.attrs[DIGEST_ATTR])
            except (KeyError, ValueError, TypeError):
                raise ChecksumError(f"{h5.filename}: no dataset digests; the file was not written by tm23data") from None

    def write(self, name: str, data) -> None:
        data = np.ascontiguousarray(data)
        self.h5.create_dataset(name, data=data)
        self._digests[name] = digest(data)

    def read(self, name: str) -> np.ndarray:
        data = self.h5[name][()]
        if self._digests.get(name) != digest(data):
            raise ChecksumError(f"{self.h5.filename}: dataset {name} fails its checksum (damaged)")
        return data

    def close(self) -> None:
        """Store the digests of everything written (call last, before closing the file)."""
        self.h5.attrs[DIGEST_ATTR] = json.dumps(self._digests, sort_keys=True)
