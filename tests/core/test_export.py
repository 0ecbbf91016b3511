"""tm23 export: extxyz (ASE, nequip), Parquet, a Hugging Face dataset folder (offline load_dataset), ASE db."""

from __future__ import annotations

import socket

import ase.db
import ase.io
import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from support import N_TEST, N_TRAIN

from tm23data import export as export_module
from tm23data import load_tm23
from tm23data.cli import main
from tm23data.export import export


def _same_frames(atoms_list, reference) -> None:
    """Exactly equal structures and labels (the store's values were parsed from ASE-written text, so
    ASE's writer reproduces them digit for digit)."""
    assert len(atoms_list) == len(reference)
    for a, r in zip(atoms_list, reference):
        assert a.get_chemical_symbols() == r.get_chemical_symbols()
        assert np.array_equal(a.positions, r.positions) and np.array_equal(a.cell.array, r.cell.array)
        assert list(a.pbc) == list(r.pbc)
        assert a.get_potential_energy() == r.get_potential_energy()
        assert np.array_equal(a.get_forces(), r.get_forces())
        assert np.array_equal(a.get_stress(), r.get_stress())


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_extxyz_is_read_back_by_ase_with_labels_in_the_calculator(cached, tmp_path):
    written = export("Ti", "cold", "extxyz", tmp_path / "xyz", validation=0.25, progress=False)
    assert [p.name for p in written] == ["Ti_cold_train.xyz", "Ti_cold_validation.xyz", "Ti_cold_test.xyz"]
    reference = load_tm23("Ti", "cold", validation=0.25, format="ase", progress=False)
    for path, name in zip(written, ["train", "validation", "test"]):
        images = ase.io.read(path, index=":")  # plain ase.io.read: format from the extension
        _same_frames(images, reference[name])
        assert [a.info["frame_id"] for a in images] == [a.info["frame_id"] for a in reference[name]]
        assert {a.info["regime"] for a in images} == {"cold"} and images[0].calc.name == "unknown"
    header = written[2].read_text().splitlines()[1]
    for key in ("energy=", "stress=", "Properties=species:S:1:pos:R:3:forces:R:3", 'pbc="T T T"', "Lattice="):
        assert key in header


def test_parquet_files_hold_the_load_tm23_tables(cached, tmp_path):
    written = export("Cu", "melt_5", "parquet", tmp_path, progress=False)
    assert [p.name for p in written] == ["Cu_melt_5_train.parquet", "Cu_melt_5_test.parquet"]
    expected = load_tm23("Cu", "melt_5", progress=False)
    for path, name in zip(written, ["train", "test"]):
        table = pq.read_table(path)
        assert table.num_rows == expected[name].num_rows and table.column_names == expected[name].column_names
        back = datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "hf-cache"))
        assert back.features == expected[name].features
        a = back.with_format("numpy", dtype=None)[:]
        b = expected[name].with_format("numpy", dtype=None)[:]
        assert list(a["frame_id"]) == list(b["frame_id"]) and np.array_equal(a["energy"], b["energy"])
        assert np.array_equal(a["stress"], b["stress"]) and a["stress"].dtype == np.float64
        assert all(np.array_equal(x, y) for x, y in zip(a["forces"], b["forces"]))


def test_hf_folder_loads_offline_with_load_dataset(cached, tmp_path, no_network):
    out = tmp_path / "tm23-hf"
    export("Cu", "cold", "hf", out, progress=False)
    export(["Ti", "W"], "full", "hf", out, validation=0.1, progress=False)  # more configs into the same folder
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n")
    card = yaml.safe_load(readme.split("---\n")[1])
    configs = {c["config_name"]: c for c in card["configs"]}
    assert set(configs) == {"Cu_cold", "Ti_full_val0p1_seed0", "W_full_val0p1_seed0"}
    assert configs["Cu_cold"]["data_files"] == [
        {"split": "train", "path": "data/Cu_cold/train-*.parquet"},
        {"split": "test", "path": "data/Cu_cold/test-*.parquet"},
    ]
    assert card["license"] == "cc-by-4.0" and card["size_categories"] == ["n<1K"]
    infos = {i["config_name"]: i for i in card["dataset_info"]}
    assert [s["num_examples"] for s in infos["Ti_full_val0p1_seed0"]["splits"]] == [24, 3, 9]
    for text in ("10.1038/s41524-024-01264-z", "@article{owen2024tm23", "CC-BY-4.0", "eV/Å³",
                 "| `Cu_cold` | Cu | cold |"):  # fmt: skip
        assert text in readme
    assert (out / "data" / "Cu_cold" / "split_manifest.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"], "only the dataset goes in the folder"

    cache = str(tmp_path / "hf-cache")
    for config, element, split, kwargs in (("Cu_cold", "Cu", "cold", {}),
                                           ("Ti_full_val0p1_seed0", "Ti", "full", {"validation": 0.1})):  # fmt: skip
        for name in ("train", "test") + (("validation",) if kwargs else ()):
            loaded = datasets.load_dataset(str(out), config, split=name, cache_dir=cache)
            expected = load_tm23(element, split, subset=name, progress=False, **kwargs)
            assert loaded.features == expected.features and loaded.num_rows == expected.num_rows
            a = loaded.with_format("numpy", dtype=None)[:]
            b = expected.with_format("numpy", dtype=None)[:]
            assert list(a["frame_id"]) == list(b["frame_id"]) and list(a["element"]) == [element] * len(b["energy"])
            for key in ("energy", "stress", "cell", "natoms", "pbc"):
                assert np.array_equal(a[key], b[key]), key
            for key in ("positions", "forces", "atomic_numbers"):
                assert all(np.array_equal(x, y) for x, y in zip(a[key], b[key])), key


def test_existing_files_are_kept_unless_overwrite(cached, tmp_path):
    out = tmp_path / "hf"
    export("Cu", "cold", "hf", out, validation=0.2, config_name="Cu_custom", progress=False)
    shard = out / "data" / "Cu_custom" / "validation-00000-of-00001.parquet"
    assert shard.is_file()
    with pytest.raises(FileExistsError, match="overwrite"):
        export("Cu", "cold", "hf", out, config_name="Cu_custom", progress=False)
    export("Cu", "cold", "hf", out, config_name="Cu_custom", overwrite=True, progress=False)
    assert not shard.exists(), "a subset the new export lacks must not linger"
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert [d["split"] for d in card["configs"][0]["data_files"]] == ["train", "test"]
    export("Cu", "cold", "extxyz", tmp_path / "x", progress=False)
    with pytest.raises(FileExistsError, match=r"Cu_cold_train.xyz already exists \(and 1 more\)"):
        export("Cu", "cold", "extxyz", tmp_path / "x", progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README.md").write_text("# my notes\n")
    with pytest.raises(FileExistsError, match="not written by tm23 export"):
        export("Cu", "cold", "hf", foreign, progress=False)
    assert (foreign / "README.md").read_text() == "# my notes\n" and not (foreign / "data").exists()
    export("Cu", "cold", "hf", foreign, overwrite=True, progress=False)
    assert export_module.CARD_MARKER in (foreign / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown export format"):
        export("Cu", "cold", "xls", tmp_path, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        export("Cu", "cold", "extxyz", tmp_path / "file", progress=False)


def test_failed_write_leaves_nothing_half_written(cached, tmp_path, monkeypatch):
    def broken_write(path, images, format):
        with open(path, "w") as fh:
            fh.write("31\npartial")
        raise OSError("disk full")

    monkeypatch.setattr(ase.io, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        export("Cu", "cold", "extxyz", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_ase_database(cached, tmp_path):
    (path,) = export("W", "cold_to_melt", "asedb", tmp_path, progress=False)
    assert path.name == "W_cold_to_melt.db"
    reference = load_tm23("W", "cold_to_melt", format="ase", progress=False)
    with ase.db.connect(path) as db:
        assert db.count() == 2 * (N_TRAIN + N_TEST)  # train: every cold frame; test: every melt frame
        for name in ("train", "test"):
            rows = list(db.select(subset=name, sort="id"))
            _same_frames([row.toatoms() for row in rows], reference[name])
            assert [row.frame_id for row in rows] == [a.info["frame_id"] for a in reference[name]]
            assert {row.split for row in rows} == {"cold_to_melt"} and {row.tm23_element for row in rows} == {"W"}
        assert db.count(regime="melt", subset="test") == N_TRAIN + N_TEST
        assert "CC-BY-4.0" in db.metadata["license"]


def test_cli_export(cached, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", "Cu,W", "--split", "melt", "--format", "hf", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "data/Cu_melt/train-00000-of-00001.parquet" in printed and "hf upload USER/NAME" in printed
    assert "load_dataset(" in printed and (out / "data" / "W_melt" / "test-00000-of-00001.parquet").is_file()
    assert main(["export", "Cu", "--split", "melt", "--format", "hf", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "Cu", "--split", "nope", "--format", "extxyz", str(tmp_path / "e")]) == 1
    assert "unknown split 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "Cu", "--format", "xls", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "export" in capsys.readouterr().out
    assert export_module.FORMATS == ("extxyz", "parquet", "hf", "asedb")
