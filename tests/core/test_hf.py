"""load_tm23: columns and units, lossless values, formats, multi-element, errors."""

from __future__ import annotations

import io
import zipfile

import ase.io
import datasets
import numpy as np
import pytest
from support import N_TEST, N_TRAIN

from tm23data import load_tm23, manifest
from tm23data.elements import UnknownElementError
from tm23data.frames import full_3x3_to_voigt


def test_datasetdict_columns_and_values_match_files(cached, synthetic_zip):
    ds = load_tm23("Ti", split="cold_to_melt", progress=False)
    assert isinstance(ds, datasets.DatasetDict) and list(ds) == ["train", "test"]
    assert ds["train"].num_rows == ds["test"].num_rows == N_TRAIN + N_TEST
    expected_columns = {"frame_id", "element", "regime", "natoms", "atomic_numbers", "positions", "forces",
                        "energy", "free_energy", "stress", "cell", "pbc"}  # fmt: skip
    assert set(ds["train"].column_names) == expected_columns
    # Values are exactly what ASE reads from the member files.
    path, _ = synthetic_zip
    with zipfile.ZipFile(path) as zf:
        melt = ase.io.read(io.StringIO(zf.read(manifest.member_name("Ti", "melt_nequip_train")).decode()), index=":",
                            format="extxyz")
    row = ds["test"].with_format("numpy", dtype=None)[0]
    ref = melt[0]
    assert row["frame_id"] == "Ti-melt-0000" and row["regime"] == "melt" and row["element"] == "Ti"
    assert row["natoms"] == len(ref) == row["positions"].shape[0]
    assert np.array_equal(row["positions"], ref.positions)
    assert np.array_equal(row["forces"], ref.get_forces())
    assert row["energy"] == ref.get_potential_energy()
    assert np.array_equal(row["free_energy"], ref.calc.results.get("free_energy", np.nan), equal_nan=True)
    assert np.array_equal(full_3x3_to_voigt(row["stress"]), ref.get_stress())
    assert np.array_equal(row["cell"], ref.cell.array)
    assert list(row["pbc"]) == [True] * 3 and list(row["atomic_numbers"]) == [22] * len(ref)


def test_numeric_formats_keep_float64(cached):
    ds = load_tm23("Cu", "full", subset="train", format="numpy", progress=False)
    row = ds[0]
    for key in ("positions", "forces", "energy", "stress", "cell"):
        assert str(row[key].dtype).endswith("float64"), key
    assert str(row["atomic_numbers"].dtype).endswith("int64")


def test_ase_format(cached):
    atoms = load_tm23("W", "melt_4", format="ase", progress=False)
    assert len(atoms["train"]) == 4 and len(atoms["test"]) == N_TEST
    a = atoms["train"][0]
    assert a.info["frame_id"] == "W-melt-0000" and a.info["regime"] == "melt"
    assert a.get_forces().shape == (len(a), 3) and a.get_stress().shape == (6,)
    assert isinstance(a.get_potential_energy(), float)
    single = load_tm23("W", "full", subset="test[:2]", format="ase", progress=False)
    assert [x.info["frame_id"] for x in single] == ["W-cold-0009", "W-cold-0010"]


def test_subset_strings_and_validation(cached):
    ds = load_tm23("Cu", "full", validation=0.1, seed=0, progress=False)
    assert list(ds) == ["train", "validation", "test"]
    assert ds["validation"].num_rows == 3 and ds["train"].num_rows == 24
    assert load_tm23("Cu", "full", subset="train[:5]", progress=False).num_rows == 5


def test_multi_element(cached):
    ds = load_tm23(["Cu", "Ti"], split="melt", progress=False)
    assert ds["train"].num_rows == 2 * N_TRAIN
    assert ds["train"]["element"] == ["Cu"] * N_TRAIN + ["Ti"] * N_TRAIN


@pytest.mark.parametrize(
    "bad, hint", [("Tx", "Ti"), ("ti", "case-sensitive: did you mean 'Ti'"), ("Al", "not one of the 27 d-block")]
)
def test_unknown_element_errors(cached, bad, hint):
    with pytest.raises(UnknownElementError) as err:
        load_tm23(bad, progress=False)
    assert hint in str(err.value) and "Zr" in str(err.value)


def test_fingerprint_identifies_content(cached):
    a = load_tm23("Cu", "full", subset="test", progress=False)
    b = load_tm23("Cu", "full", subset="test", progress=False)
    c = load_tm23("Cu", "full", subset="train", progress=False)
    assert a._fingerprint == b._fingerprint != c._fingerprint
    assert "CC-BY-4.0" in a.info.license and "10.1038/s41524-024-01264-z" in a.info.citation


def test_bad_format(cached):
    with pytest.raises(ValueError, match="format must be one of"):
        load_tm23("Cu", format="tensorflow", progress=False)
