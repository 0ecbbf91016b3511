"""Selection: the one split object behind load_tm23, the exports, the evaluator and the baselines. Its frames
equal the HF view's and ASE's, its evaluator equals the one built from the store by hand, subset strings
follow HF's grammar without importing datasets, and names are checked before anything is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from support import N_TEST, N_TRAIN

from tm23data import Selection, load_tm23
from tm23data.metrics import Evaluator
from tm23data.splits import SplitError, parse_subset, resolve_split
from tm23data.store import load_store


def test_frames_and_arrays_equal_the_hf_rows(cached):
    sel = Selection.open("Ti", "full", validation=0.25, seed=3, progress=False)
    ds = load_tm23("Ti", "full", validation=0.25, seed=3, format="numpy", progress=False)
    assert sel.sizes() == {k: len(v) for k, v in ds.items()}
    for subset in sel.subsets:
        arrays = sel.arrays(subset)
        rows = ds[subset]
        assert list(arrays["frame_id"]) == list(rows["frame_id"])
        assert list(arrays["regime"]) == list(rows["regime"]) and set(arrays["element"]) == {"Ti"}
        off = arrays["offsets"]
        for k in range(len(rows)):
            a, b = off[k], off[k + 1]
            assert np.array_equal(arrays["positions"][a:b], rows[k]["positions"])
            assert np.array_equal(arrays["forces"][a:b], rows[k]["forces"])
            assert arrays["energy"][k] == rows[k]["energy"] and np.array_equal(arrays["stress"][k], rows[k]["stress"])
    assert sel.hash == sel.manifest.hash == resolve_split(sel.store, "full", validation=0.25, seed=3).hash


def test_evaluator_equals_one_built_by_hand(cached):
    store = load_store("Cu", progress=False)
    manifest = resolve_split(store, "cold_to_melt")
    frames = store.frames.take(manifest.subsets["test"])
    by_hand = Evaluator(frames.natoms, frames.energy, frames.forces, frames.stress, store.regime_names(manifest.subsets["test"]))
    ev = Selection.open("Cu", "cold_to_melt", progress=False).evaluator("test")
    pred = {"energy": frames.energy + 0.01 * frames.natoms, "forces": frames.forces * 1.1, "stress": frames.stress * 0.9}
    assert ev.eval(pred) == by_hand.eval(pred)
    assert Evaluator.for_split("Cu", "cold_to_melt").eval(pred) == by_hand.eval(pred)


def test_stress_is_scored_only_if_every_frame_has_it(cached):
    frames = Selection.open("W", "melt", progress=False).frames("test")
    assert Evaluator.from_frames(frames).stress is not None
    frames.stress[1] = np.nan
    assert Evaluator.from_frames(frames).stress is None


def test_several_elements_keep_element_order(cached):
    sel = Selection.open(["W", "Cu"], "cold", progress=False)
    assert sel.elements == ("W", "Cu") and sel.sizes() == {"train": 2 * N_TRAIN, "test": 2 * N_TEST}
    assert list(sel.element_column("test")) == ["W"] * N_TEST + ["Cu"] * N_TEST
    atoms = sel.to_atoms("test")
    assert [a.info["frame_id"] for a in atoms] == list(sel.frame_ids("test"))
    assert [a.info["frame_id"] for a in atoms] == [a.info["frame_id"] for a in load_tm23(["W", "Cu"], "cold", subset="test", format="ase", progress=False)]
    with pytest.raises(ValueError, match="holds 2 elements"):
        sel.store
    assert len(sel.hash) == 64 and sel.hash != Selection.open(["Cu", "W"], "cold", progress=False).hash


def test_subset_strings_select_per_element(cached):
    sel = Selection.open("Ti", "full", progress=False)
    ids = sel.frame_ids("train")
    assert list(sel.frame_ids("train[:4]")) == list(ids[:4])
    assert list(sel.frame_ids("train[-2:]+test[:1]")) == [*ids[-2:], sel.frame_ids("test")[0]]
    with pytest.raises(SplitError, match="no subset 'validation'.*validation=F"):
        sel.frames("validation")


SPECS = ["train", "test", "train+test", "train[:100]", "train[-5:]", "test[10%:]", "train[:10%]+test[-5:]",
         "train[33%:66%]", "validation[1:-1]", "train[:100%]", "train[-100%:]", "train[3000:]", "train[-3000:10]",
         "train[0:0]", "test[1%:2%](pct1_dropremainder)", "train[50%:](closest)", "train[1%:5]", "train[:5%]",
         *(f"test[{a}:{b}]" for a in ("", "-301", "-1", "0", "7", "299", "2500") for b in ("", "-2500", "-3", "0", "300")),
         *(f"train[{a}:{b}]" for a in ("", "-100%", "-33%", "1%", "99%") for b in ("", "-1%", "2%", "67%", "100%"))]  # fmt: skip


def test_subset_grammar_matches_hf_read_instruction():
    from datasets import ReadInstruction

    sizes = {"train": 2430, "validation": 270, "test": 300}
    for spec in SPECS:
        expected = [(i.splitname, i.from_, i.to) for i in ReadInstruction.from_spec(spec).to_absolute(sizes)]
        assert parse_subset(spec, sizes) == expected, spec
    for bad in ("foo", "train[:200%]", "test(bad)", "train[1:2:3]", "", "train[a:]"):
        with pytest.raises(SplitError):
            parse_subset(bad, sizes)


def test_numpy_path_imports_neither_datasets_nor_torch(cached, tm23_home):
    load_store("W", progress=False)  # a warm cache: the fast reader parses with pyarrow when building
    code = (
        "import json, sys, time; t = time.perf_counter()\n"
        "from tm23data import Selection\n"
        "a = Selection.open('W', 'full', progress=False).arrays('train')\n"
        "print(json.dumps({'n': len(a['energy']), 'heavy': [m for m in ('datasets', 'torch', 'pyarrow') if m in sys.modules]}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got == {"n": 3 * N_TRAIN, "heavy": []}


def test_names_are_checked_before_any_download(tm23_home, monkeypatch):
    monkeypatch.setenv("TM23_URL", "http://127.0.0.1:9/never.zip")  # nothing listens on port 9 (discard)
    start = time.perf_counter()
    with pytest.raises(SplitError, match="unknown split 'fulll'"):
        Selection.open("Cu", "fulll")
    with pytest.raises(ValueError, match="not a TM23 element"):
        Selection.open("Cx", "full")
    with pytest.raises(ValueError, match="format must be one of"):
        load_tm23("Cu", format="xyz")
    assert time.perf_counter() - start < 1.0
    assert not (tm23_home / "archives").exists()
