"""Digests the package computes: md5 of files (archives are identified by it) and xxh3-64 of arrays (every
cached HDF5 dataset carries one)."""

from __future__ import annotations

import hashlib
import os

import numpy as np

CHUNK = 1 << 20


def file_md5(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """Hex md5 of a file, read in 1 MiB blocks."""
    return _file_digest(path, hashlib.md5(), chunk)


def _file_digest(path, h, chunk: int) -> str:
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """Hex xxh3-64 of an array's bytes (several GB/s: cheap enough to check a whole cache on every load)."""
    import xxhash

    return xxhash.xxh3_64_hexdigest(np.ascontiguousarray(array).data.cast("B"))


def file_sha256(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file (model weights are identified by it)."""
    return _file_digest(path, hashlib.sha256(), chunk)
