"""Standard splits: sizes, disjointness by content, frozen hashes, seeded validation, HF split strings."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support import N_TEST, N_TRAIN

from tm23data.archive import write_archive
from tm23data.errors import UsageError
from tm23data.fetch import import_archive
from tm23data.generation.synthetic import synthetic_members
from tm23data.splits import (
    STANDARD_SPLITS,
    SplitError,
    carve_validation,
    evenly_spaced,
    get_split,
    learning_curve_size,
    resolve_split,
)
from tm23data.store import load_store

EXPECTED = {
    "full": (3 * N_TRAIN, 3 * N_TEST),
    "cold": (N_TRAIN, N_TEST),
    "warm": (N_TRAIN, N_TEST),
    "melt": (N_TRAIN, N_TEST),
    "cold_to_warm": (N_TRAIN + N_TEST, N_TRAIN + N_TEST),
    "cold_to_melt": (N_TRAIN + N_TEST, N_TRAIN + N_TEST),
}


@pytest.fixture
def store(cached):
    return load_store("Ti", progress=False)


@pytest.mark.parametrize("name", EXPECTED)
def test_sizes_regimes_and_disjointness(store, name):
    m = resolve_split(store, name)
    assert (len(m.subsets["train"]), len(m.subsets["test"])) == EXPECTED[name]
    train, test = m.subsets["train"], m.subsets["test"]
    # Disjoint by content and by structure, checked independently of the code under test.
    assert not {bytes(h) for h in store.frame_hash[train]} & {bytes(h) for h in store.frame_hash[test]}
    assert not {bytes(h) for h in store.structure_hash[train]} & {bytes(h) for h in store.structure_hash[test]}
    regimes_train, regimes_test = set(store.regime_names(train)), set(store.regime_names(test))
    if name in ("cold", "warm", "melt"):
        assert regimes_train == regimes_test == {name}
    elif name.startswith("cold_to_"):
        assert regimes_train == {"cold"} and regimes_test == {name.split("_")[-1]}
    else:
        assert regimes_train == regimes_test == {"cold", "warm", "melt"}


def test_full_split_is_the_paper_recipe(store):
    m = resolve_split(store, "full")
    per_regime_train = [list(store.members[f"{r}_nequip_train"]) for r in ("cold", "warm", "melt")]
    per_regime_test = [list(store.members[f"{r}_nequip_test"]) for r in ("cold", "warm", "melt")]
    assert list(m.subsets["train"]) == sum(per_regime_train, [])  # first frames of each trajectory
    assert list(m.subsets["test"]) == sum(per_regime_test, [])  # last frames of each trajectory


def test_learning_curve_takes_first_n_melt_frames(store):
    m = resolve_split(store, "melt_5")
    assert list(m.subsets["train"]) == list(store.members["melt_nequip_train"][:5])
    assert list(m.subsets["test"]) == list(store.members["melt_nequip_test"])
    assert [f"melt_{n}" for n in (100, 300, 500, 700, 900)] == [n for n in STANDARD_SPLITS if n.startswith("melt_")]
    with pytest.raises(SplitError, match="only 9"):
        resolve_split(store, "melt_100")


def test_hash_is_frozen_and_content_addressed(store):
    a, b = resolve_split(store, "cold_to_melt"), resolve_split(store, "cold_to_melt")
    assert a.hash == b.hash and len(a.hash) == 64
    assert a.hash != resolve_split(store, "cold_to_warm").hash
    assert resolve_split(store, "melt_4").hash != resolve_split(store, "melt_5").hash


def test_seeded_validation(store):
    a = resolve_split(store, "full", validation=0.1, seed=1)
    b = resolve_split(store, "full", validation=0.1, seed=1)
    c = resolve_split(store, "full", validation=0.1, seed=2)
    assert list(a.subsets) == ["train", "validation", "test"]
    assert np.array_equal(a.subsets["validation"], b.subsets["validation"]) and a.hash == b.hash
    assert not np.array_equal(a.subsets["validation"], c.subsets["validation"])
    assert len(a.subsets["validation"]) == round(0.1 * 3 * N_TRAIN)
    full_train = resolve_split(store, "full").subsets["train"]
    assert sorted([*a.subsets["train"], *a.subsets["validation"]]) == sorted(full_train)
    assert not set(a.subsets["train"]) & set(a.subsets["validation"])


def test_carve_validation_bounds():
    train, val = carve_validation(np.arange(100), 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90 and np.all(np.diff(val) > 0)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(SplitError):
            carve_validation(np.arange(10), bad, seed=0)


def test_hf_split_strings(store):
    m = resolve_split(store, "full")
    assert list(m.select("train[:5]")) == list(m.subsets["train"][:5])
    assert list(m.select("test[-2:]")) == list(m.subsets["test"][-2:])
    assert len(m.select("train[10%:20%]")) == round(0.2 * 27) - round(0.1 * 27)
    assert list(m.select("train+test")) == [*m.subsets["train"], *m.subsets["test"]]
    with pytest.raises(SplitError, match="bad subset"):
        m.select("validation")


def test_unknown_split_lists_valid_names():
    with pytest.raises(SplitError) as err:
        get_split("hot")
    assert "cold_to_melt" in str(err.value) and "melt_100" in str(err.value)
    assert get_split("warm_7").n_train == 7


def test_subsampled_split_takes_evenly_spaced_frames_of_its_base(store):
    """``full_12x6``: the grid searches' smaller sets, N training and M test frames spread over the base split."""
    full, sub = resolve_split(store, "full"), resolve_split(store, "full_12x6", validation=0.25, seed=1)
    n_train, n_test = len(full.subsets["train"]), len(full.subsets["test"])
    picked = full.subsets["train"][np.round(np.linspace(0, n_train - 1, 12)).astype(int)]
    assert sorted([*sub.subsets["train"], *sub.subsets["validation"]]) == sorted(picked)  # validation carved from the 12
    assert list(sub.subsets["test"]) == list(full.subsets["test"][np.round(np.linspace(0, n_test - 1, 6)).astype(int)])
    assert store.frame_id[picked[0]] == store.frame_id[full.subsets["train"][0]]  # both ends kept
    assert store.frame_id[picked[-1]] == store.frame_id[full.subsets["train"][-1]]
    assert sub.name == "full_12x6" and sub.hash != full.hash
    assert get_split("melt_6_4x2").n_train == 6 and get_split("melt_6_4x2").subsample == (4, 2)
    with pytest.raises(SplitError, match=f"asks for {n_train + 1} training and 2 test frames"):
        resolve_split(store, f"full_{n_train + 1}x2")
    for bad in ("nope_2x1", "full_2x1_2x1", "full_0x1"):
        with pytest.raises(SplitError, match="unknown split"):
            get_split(bad)
    assert list(evenly_spaced(5, 9)) == [0, 1, 2, 3, 4] and list(evenly_spaced(9, 1)) == [0]
    assert learning_curve_size("melt_300") == ("melt", 300) and learning_curve_size("full_12x6") is None


def test_train_test_leak_is_refused(tm23_home, tmp_path, monkeypatch):
    members = synthetic_members("Cu", 3, 1)
    # A test frame that repeats a training frame (content) ...
    members["cold_nequip_test"] = members["cold_nequip_train"].take([0])
    md5 = write_archive(tmp_path / "leak.zip", {"Cu": members})
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(tmp_path / "leak.zip")
    store = load_store("Cu", progress=False)
    with pytest.raises(SplitError, match="same content") as err:
        resolve_split(store, "cold")
    assert "Cu-cold-0000" in str(err.value)


def test_structure_leak_with_other_labels_is_refused(tm23_home, tmp_path, monkeypatch):
    members = synthetic_members("Cu", 3, 1)
    leaked = members["warm_nequip_train"].take([1])
    leaked.energy[:] += 1.0  # same structure, different labels
    members["warm_nequip_test"] = leaked
    md5 = write_archive(tmp_path / "leak2.zip", {"Cu": members})
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(tmp_path / "leak2.zip")
    with pytest.raises(SplitError, match="same structure"):
        resolve_split(load_store("Cu", progress=False), "warm")


def test_manifest_json(store):
    m = resolve_split(store, "cold_to_warm")
    record = m.to_json(store)
    assert record["subsets"]["train"]["frame_ids"][0] == "Ti-cold-0000"
    assert record["subsets"]["test"]["size"] == N_TRAIN + N_TEST and record["hash"] == m.hash


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "ful"}, "unknown split 'ful'. Did you mean 'full'?"),
        ({"split": "colld"}, "Did you mean 'cold'?"),
        ({"split": "full", "subset": "tset"}, "no subset 'tset'. Did you mean 'test'?"),
        ({"split": "full", "subset": "train[:5"}, "is not NAME or NAME[FROM:TO]"),
        ({"split": "full", "subset": "validation"}, "pass validation=F"),
        ({"split": "full", "format": "torchh"}, "format must be one of"),
    ],
)
def test_names_are_checked_before_any_download(tm23_home, monkeypatch, kwargs, message):
    """With an empty cache and no network, a typo is reported as a typo, not as the missing archive."""
    from tm23data import load_tm23

    monkeypatch.setenv("TM23_OFFLINE", "1")
    with pytest.raises(UsageError, match=re.escape(message)):
        load_tm23("Cu", **kwargs)
    assert not tm23_home.exists() or not any(tm23_home.rglob("*.h5"))


def test_validation_as_a_count_of_frames(cached):
    from tm23data import Selection, load_tm23
    from tm23data.cli import main

    store = load_store("Ti", progress=False)
    by_count = resolve_split(store, "full", validation=4, seed=1)
    assert len(by_count.subsets["validation"]) == 4 and len(by_count.subsets["train"]) == 3 * N_TRAIN - 4
    by_fraction = resolve_split(store, "full", validation=4 / (3 * N_TRAIN), seed=1)
    assert np.array_equal(by_count.subsets["validation"], by_fraction.subsets["validation"])  # same carve
    assert by_count.validation == 4 and by_fraction.validation != 4 and by_count.hash == by_fraction.hash
    assert load_tm23("Ti", "full", validation=4, progress=False)["validation"].num_rows == 4
    assert Selection.open("Ti", "cold", validation=1, progress=False).sizes() == {"train": N_TRAIN - 1, "validation": 1, "test": N_TEST}
    assert main(["splits", "Ti", "--split", "cold", "--validation", "2"]) == 0


@pytest.mark.parametrize("bad", [1.5, -1, 0.999999 + 1, "0.1", True])
def test_validation_values_that_mean_nothing_are_refused(bad):
    from tm23data.splits import check_validation

    with pytest.raises(UsageError, match="validation must be"):
        check_validation(bad)


def test_a_count_as_large_as_train_is_refused(cached):
    with pytest.raises(UsageError, match="leaves no training frames"):
        resolve_split(load_store("Ti", progress=False), "cold", validation=N_TRAIN)
