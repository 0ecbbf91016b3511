"""The HDF5 store: lossless against the archive, frames stored once, rebuilt when stale or damaged."""

from __future__ import annotations

import io
import json
import logging
import zipfile

import ase.io
import h5py
import numpy as np
import pytest
from support import N_TEST, N_TRAIN

from tm23data import config, manifest
from tm23data.archive import write_archive
from tm23data.fetch import OfflineError, import_archive
from tm23data.frames import full_3x3_to_voigt
from tm23data.generation.synthetic import synthetic_archive, synthetic_members
from tm23data.store import STORE_FORMAT_VERSION, StoreError, fingerprint, load_store, store_path


def test_store_round_trips_every_member_losslessly(cached, synthetic_zip):
    store = load_store("Ti", progress=False)
    path, _ = synthetic_zip
    with zipfile.ZipFile(path) as zf:
        for kind, name in manifest.member_names("Ti").items():
            ref = ase.io.read(io.StringIO(zf.read(name).decode()), index=":", format="extxyz")
            frames = store.frames.take(store.members[kind])
            off = frames.offsets
            assert len(ref) == len(frames)
            for i, atoms in enumerate(ref):
                a, b = off[i], off[i + 1]
                assert np.array_equal(atoms.positions, frames.positions[a:b])
                assert np.array_equal(atoms.get_forces(), frames.forces[a:b])
                assert atoms.get_potential_energy() == frames.energy[i]
                assert np.array_equal(atoms.get_stress(), full_3x3_to_voigt(frames.stress[i]))
                assert np.array_equal(atoms.cell.array, frames.cell[i])
                assert np.array_equal(atoms.numbers, frames.numbers[a:b])


def test_repeated_frames_are_stored_once_with_regimes(cached):
    store = load_store("Cu", progress=False)
    assert len(store) == 3 * (N_TRAIN + N_TEST)  # 2700cwm repeats the per-temperature frames
    assert len(store.members["2700cwm_train"]) == 3 * N_TRAIN
    cwm = store.regime_names(store.members["2700cwm_train"])
    assert list(cwm) == ["cold"] * N_TRAIN + ["warm"] * N_TRAIN + ["melt"] * N_TRAIN
    assert store.frame_id[store.members["melt_nequip_test"][0]] == f"Cu-melt-{N_TRAIN:04d}"
    assert len(set(store.frame_id)) == len(store)
    with h5py.File(store.path) as h5:
        meta = json.loads(h5.attrs["tm23data"])
        assert meta["format_version"] == STORE_FORMAT_VERSION and meta["element"] == "Cu"
        assert meta["archive_md5"] == cached and meta["fingerprint"] == fingerprint("Cu", cached)
        digests = json.loads(h5.attrs["xxh3_64"])
        assert all(len(digests[d].split(":")[-1]) == 16 for d in ("atoms/positions", "frames/energy", "members/index"))
        assert digests["frames/energy"].startswith("<f8[")  # dtype and shape are part of the digest
        assert "tm23data" in digests  # and so is the metadata
        # Flat per-atom arrays with per-frame offsets.
        assert h5["atoms/positions"].shape == (int(store.frames.natoms.sum()), 3)
        assert h5["frames/offsets"].shape == (len(store) + 1,)


def test_distinct_cwm_frames_have_unknown_regime(tm23_home, tmp_path, monkeypatch):
    md5 = synthetic_archive(tmp_path / "a.zip", ["Cu"], 3, 1, cwm_repeats=False)
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(tmp_path / "a.zip")
    store = load_store("Cu", progress=False)
    assert len(store) == 2 * 3 * 4
    assert set(store.regime_names(store.members["2700cwm_train"])) == {"unknown"}
    assert store.frame_id[store.members["2700cwm_test"][1]] == "Cu-2700cwm_test-0001"


def test_warm_load_does_not_rebuild(cached):
    first = load_store("W", progress=False)
    mtime = first.path.stat().st_mtime_ns
    again = load_store("W", progress=False)
    assert again.path.stat().st_mtime_ns == mtime and again.content_hash == first.content_hash


def _flip_bytes_in_dataset(path, dataset):
    with h5py.File(path) as h5:
        offset = h5[dataset].id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        chunk = bytearray(fh.read(32))
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.parametrize("damage", ["truncate", "flip positions", "flip energy", "zero file", "stale format"])
def test_damaged_store_is_detected_and_rebuilt(cached, damage, caplog):
    good = load_store("Cu", progress=False)
    path = good.path
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip positions":
        _flip_bytes_in_dataset(path, "atoms/positions")
    elif damage == "flip energy":
        _flip_bytes_in_dataset(path, "frames/energy")
    elif damage == "zero file":
        path.write_bytes(b"")
    else:
        with h5py.File(path, "r+") as h5:
            meta = json.loads(h5.attrs["tm23data"])
            h5.attrs["tm23data"] = json.dumps({**meta, "fingerprint": "an older format"})
    with caplog.at_level(logging.WARNING, logger="tm23data"):
        rebuilt = load_store("Cu", progress=False)
    assert "rebuilding" in caplog.text
    assert np.array_equal(rebuilt.frames.positions, good.frames.positions)
    assert np.array_equal(rebuilt.frames.energy, good.frames.energy)
    assert rebuilt.content_hash == good.content_hash


def test_offline_without_archive_says_what_to_do(tm23_home, monkeypatch):
    monkeypatch.setenv("TM23_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        load_store("Ti", progress=False)
    text = str(err.value)
    assert manifest.ARCHIVE_NAME in text and manifest.ARCHIVE_MD5 in text
    assert "tm23 import" in text and "tm23 download" in text


def test_offline_with_store_needs_no_archive(cached, monkeypatch):
    store = load_store("Ti", progress=False)
    for p in config.archive_source().archive_dir().glob("*.zip"):
        p.unlink()
    monkeypatch.setenv("TM23_OFFLINE", "1")
    assert load_store("Ti", progress=False).content_hash == store.content_hash


def test_mislabelled_member_is_refused(tm23_home, tmp_path, monkeypatch):
    members = synthetic_members("Cu", 2, 1)
    members["melt_nequip_train"].numbers[:] = 28  # Ni atoms in a Cu file
    md5 = write_archive(tmp_path / "bad.zip", {"Cu": members})
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(tmp_path / "bad.zip")
    with pytest.raises(StoreError) as err:
        load_store("Cu", progress=False)
    assert "Cu_melt_nequip_train.xyz" in str(err.value) and "atomic number 28" in str(err.value)
    assert not store_path("Cu").exists(), "a failed build leaves no store behind"


def test_member_without_forces_is_refused(tm23_home, tmp_path, monkeypatch):
    members = synthetic_members("Cu", 2, 1)
    members["cold_nequip_test"].forces[:] = np.nan
    md5 = write_archive(tmp_path / "noforces.zip", {"Cu": members})
    monkeypatch.setenv("TM23_MD5", md5)
    import_archive(tmp_path / "noforces.zip")
    with pytest.raises(StoreError, match="Cu_cold_nequip_test.xyz: frame 0 has no forces"):
        load_store("Cu", progress=False)


def test_frame_without_atoms_is_refused_with_its_member(tm23_home, tmp_path, monkeypatch):
    import zipfile

    from tm23data.hashes import file_md5

    good = tmp_path / "good.zip"
    write_archive(good, {"Cu": synthetic_members("Cu", 2, 1)})
    member = "benchmarking_master_collection/Cu_cold_nequip_test.xyz"
    bad = tmp_path / "empty_frame.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == member:  # a frame whose count line says 0 atoms
                data += b'0\nLattice="7 0 0 0 7 0 0 0 7" Properties=species:S:1:pos:R:3:forces:R:3 energy=0.0\n'
            dst.writestr(name, data)
    monkeypatch.setenv("TM23_MD5", file_md5(bad))
    import_archive(bad)
    with pytest.raises(StoreError, match="Cu_cold_nequip_test.xyz: frame 1 has no atoms"):
        load_store("Cu", progress=False)
    assert not store_path("Cu").exists()


def test_store_size_close_to_raw_arrays(cached):
    store = load_store("W", progress=False)
    fr = store.frames
    raw = sum(a.nbytes for a in (fr.positions, fr.forces, fr.energy, fr.stress, fr.cell)) + fr.numbers.size
    # Small stores carry fixed HDF5 overhead; the ratio at TM23 size is measured in benchmarks/.
    assert store.path.stat().st_size < 1.2 * raw + 64 * 1024
