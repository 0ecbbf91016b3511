"""Cached stores: metadata, dtype and shape are covered by the digests, and stored text never names a file
(issue 11 item 1)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from tm23data.neighbors import GraphCacheError, cache_path
from tm23data.store import load_store


def _rewrite_meta(path, change):
    with h5py.File(path, "r+") as h5:
        h5.attrs["tm23data"] = change(h5.attrs["tm23data"])


@pytest.mark.parametrize("element", ["Cx", "../../../x"])
def test_changed_metadata_is_detected_and_rebuilt(cached, element):
    good = load_store("Cu", progress=False)
    _rewrite_meta(good.path, lambda text: text.replace('"element": "Cu"', json.dumps({"element": element})[1:-1]))
    again = load_store("Cu", progress=False)
    assert again.element == "Cu"
    assert again.content_hash == good.content_hash


def test_same_bytes_as_another_dtype_are_not_served(cached):
    good = load_store("Cu", progress=False)
    with h5py.File(good.path, "r+") as h5:
        raw = h5["frames/energy"][()]
        del h5["frames/energy"]
        h5.create_dataset("frames/energy", data=raw.view(np.int64))
    again = load_store("Cu", progress=False)
    assert again.frames.energy.dtype == np.float64
    assert np.array_equal(again.frames.energy, good.frames.energy)


def test_no_cache_path_from_an_unvalidated_element(tmp_path):
    store = SimpleNamespace(element="../../../x", fingerprint="0" * 64, path=tmp_path / "x.h5")
    with pytest.raises(GraphCacheError, match="not valid"):
        cache_path(store, 5.0, root=tmp_path)
