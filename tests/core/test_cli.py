"""The tm23 command, run in-process."""

from __future__ import annotations

import json

import h5py
import pytest
from http_server import ArchiveServer

from tm23data import manifest
from tm23data.cli import main
from tm23data.store import store_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_data_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("info", "download", "import", "verify", "splits", "stats"):
        assert command in out
    for command in ("info", "download", "import", "verify", "splits", "stats"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: tm23" in capsys.readouterr().out


def test_info(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    for symbol in ("Ti", "Zr", "Hg", "Au"):
        assert f"\n{symbol} " in out
    assert "485.2" in out and "2426.2" in out  # Ti cold and melt temperatures (0.25 and 1.25 x 1941 K)
    assert manifest.ARCHIVE_MD5 in out and manifest.DOI in out
    code, out, _ = run(capsys, "info", "Os", "--json")
    record = json.loads(out)
    assert record["elements"][0]["symbol"] == "Os" and record["elements"][0]["temperatures_K"]["melt"] == 1.25 * 3306


def test_unknown_element_is_a_clear_error(capsys):
    code, _, err = run(capsys, "info", "ti")
    assert code == 1 and "did you mean 'Ti'" in err


def test_download_extract_and_offline(capsys, tm23_home, synthetic_zip, monkeypatch, tmp_path):
    path, md5 = synthetic_zip
    server = ArchiveServer(path.read_bytes())
    try:
        monkeypatch.setenv("TM23_URL", server.url())
        monkeypatch.setenv("TM23_MD5", md5)
        code, out, _ = run(capsys, "download", "Cu", "--no-progress", "--extract", str(tmp_path / "raw"))
        assert code == 0 and "Cu: 36 frames cached" in out
        assert (tmp_path / "raw" / "Cu" / "Cu_melt_nequip_test.xyz").exists()
        assert store_path("Cu").exists()
    finally:
        server.close()
    monkeypatch.setenv("TM23_HOME", str(tmp_path / "empty"))
    code, _, err = run(capsys, "--offline", "download", "Ti")
    assert code == 1 and "--offline was given" in err and "tm23 import" in err


def test_import(capsys, tm23_home, synthetic_zip, tmp_path):
    path, md5 = synthetic_zip
    code, out, _ = run(capsys, "import", str(path), "--md5", md5)
    assert code == 0 and f"export TM23_MD5={md5}" in out
    code, _, err = run(capsys, "import", str(path))  # checked against the published md5
    assert code == 1 and manifest.ARCHIVE_MD5 in err and md5 in err


def test_splits_and_stats(capsys, cached):
    code, out, _ = run(capsys, "splits", "Ti")
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert lines["full"][1:4] == ["27", "-", "9"] and len(lines["full"][4]) == 16
    assert "unavailable" in " ".join(lines["melt_900"])
    code, out, _ = run(capsys, "splits", "Ti", "--split", "cold_to_melt", "--validation", "0.1", "--json", "-")
    manifest_json = json.loads(out)[0]
    assert manifest_json["split"] == "cold_to_melt" and manifest_json["subsets"]["validation"]["size"] == 1
    code, _, err = run(capsys, "splits", "Ti", "--validation", "1.5")
    assert code != 0 and "--validation must be a fraction between 0 and 1" in err
    code, out, _ = run(capsys, "stats", "Cu", "W")
    assert code == 0 and "Cu:" in out and "W:" in out and "melt" in out
    code, out, _ = run(capsys, "stats", "Cu", "--json")
    stats = json.loads(out)["Cu"]["regimes"]
    assert stats["cold"]["frames"] == 12 and stats["melt"]["mav"]["forces"] > stats["cold"]["mav"]["forces"]


def test_verify_reports_overlap_and_repairs(capsys, cached):
    code, out, _ = run(capsys, "verify", "Cu")
    assert code == 0, out
    assert "2700cwm_train: 27/27 frames repeat per-temperature frames" in out and out.rstrip().endswith("OK")
    with h5py.File(store_path("Cu"), "r+") as h5:
        h5["atoms/forces"][0, 0] += 1.0  # damage written through HDF5 itself: only the digest can tell
    code, out, _ = run(capsys, "verify", "Cu")
    assert code == 0 and "was damaged" in out and "rebuilt" in out
    code, out, _ = run(capsys, "verify", "Cu", "--json")
    assert json.loads(out)["elements"]["Cu"]["store_status"] == "ok"


def test_verify_leaves_files_being_written_alone(capsys, cached):
    tmp = store_path("Cu").parent / ".Cu.99999.1.tmp.h5"  # another process building a store
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half")
    code, out, _ = run(capsys, "verify", "--json")
    assert code == 0 and ".Cu" not in json.loads(out)["elements"] and tmp.read_bytes() == b"half"


def test_verify_flags_a_corrupt_archive(capsys, cached):
    from tm23data import config

    archive = next(config.archive_source().archive_dir().glob("*.zip"))
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF
    archive.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify")
    assert code == 1 and "MISMATCH" in out and "FAILED" in out
