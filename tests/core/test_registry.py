"""Archives a user can name: the registry of the cache, and archive= as a name, md5, zip, folder or URL."""

from __future__ import annotations

import json

import numpy as np
import pytest
from http_server import ArchiveServer

from tm23data import Selection, load_tm23, manifest
from tm23data.archive import Archive, write_archive
from tm23data.cli import main
from tm23data.errors import UsageError
from tm23data.fetch import import_archive
from tm23data.generation.synthetic import synthetic_members
from tm23data.registry import entries, find, resolve
from tm23data.store import StoreError


@pytest.fixture
def cu_only(tmp_path_factory):
    """(path, md5) of a second archive: Cu only, other frames (another seed), no PROVENANCE.json."""
    path = tmp_path_factory.mktemp("cu") / "my_cu.zip"
    return path, write_archive(path, {"Cu": synthetic_members("Cu", 4, 2, seed=7)})


def test_two_archives_side_by_side(cached, cu_only, capsys):
    path, md5 = cu_only
    assert main(["import", str(path), "--name", "cu7"]) == 0
    out = capsys.readouterr().out
    assert "name: cu7" in out and "--archive cu7" in out
    names = {e.name: e for e in entries()}
    assert set(names) >= {"published", "cu7"} and names["cu7"].md5 == md5 and names["cu7"].elements == ("Cu",)
    assert names["cu7"].origin["kind"] == "unknown" and not names["published"].present
    synthetic = find(cached)
    assert synthetic is not None and synthetic.elements == ("Cu", "Ti", "W") and synthetic.origin["kind"] == "generated"
    a = Selection.open("Cu", "cold", archive="cu7", progress=False)
    b = Selection.open("Cu", "cold", archive=cached, progress=False)  # by md5
    assert Selection.open("Cu", "cold", source="cu7", progress=False).store.archive_md5 == md5  # baselines' source=
    assert a.sizes()["train"] == 4 and b.sizes()["train"] == 9 and a.store.path.parent != b.store.path.parent
    assert not np.array_equal(a.frames("test").positions[:3], b.frames("test").positions[:3])
    assert main(["archives"]) == 0
    listing = capsys.readouterr().out
    assert "cu7" in listing and md5 in listing and cached in listing and "published" in listing
    assert main(["archives", "--json"]) == 0
    assert {e["name"] for e in json.loads(capsys.readouterr().out)} >= {"cu7", "published"}
    # the global option works after the subcommand, and for every command
    assert main(["stats", "Cu", "--archive", "cu7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Cu"]["regimes"]["cold"]["frames"] == 6


def test_an_element_missing_from_the_chosen_archive_names_the_archives_that_have_it(cached, cu_only, monkeypatch):
    path, md5 = cu_only
    import_archive(path, resolve(f"{path}").__class__(urls=(), md5=md5, filename=path.name), name="cu7")
    monkeypatch.setenv("TM23_MD5", md5)
    with pytest.raises(StoreError) as err:
        load_tm23("W", "cold", progress=False)
    text = str(err.value)
    assert "W is not in the archive 'cu7'" in text and "chosen by TM23_MD5" in text and "unset that variable" in text
    assert f"(md5 {cached})" in text and "'published'" in text and "download it again" not in text


def test_a_zip_path_is_verified_and_imported_on_first_use_only(tm23_home, cu_only, monkeypatch):
    path, md5 = cu_only
    ds = load_tm23("Cu", "cold", archive=path, progress=False)
    assert ds["train"].num_rows == 4
    entry = find(md5)
    assert entry.present and entry.source == str(path.resolve()) and entry.name == "my_cu"
    import tm23data.hashes

    def no_hashing(*args, **kwargs):
        raise AssertionError("an unchanged file was hashed again")

    monkeypatch.setattr(tm23data.hashes, "file_md5", no_hashing)
    assert resolve(str(path)).md5 == md5


def test_a_damaged_or_foreign_zip_path_is_refused(tm23_home, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(Exception, match="not a readable zip"):
        load_tm23("Cu", "cold", archive=bad, progress=False)
    assert not [e for e in entries() if not e.published]


def test_a_folder_of_member_files(tm23_home, cu_only, tmp_path):
    path, md5 = cu_only
    folder = tmp_path / "extracted"
    with Archive(path) as archive:
        archive.extract("Cu", folder)
    (folder / "notes.txt").write_text("not a member")
    from_folder = Selection.open("Cu", "full", archive=folder, progress=False)
    import_archive(path, resolve(str(path)))  # the zip itself, for comparison
    from_zip = Selection.open("Cu", "full", archive=md5, progress=False)
    for name in ("train", "test"):
        a, b = from_folder.frames(name), from_zip.frames(name)
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.forces, b.forces)
        assert np.array_equal(a.energy, b.energy)
    entry = find(from_folder.store.archive_md5)
    assert entry.source == f"folder {folder.resolve()}"
    # the same files pack to the same zip (fixed timestamps): the same archive, not a new one each time
    before = len(entries())
    assert resolve(folder).md5 == from_folder.store.archive_md5 and len(entries()) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match="no TM23 member files"):
        resolve(empty)


def test_a_url_needs_its_md5(tm23_home, cu_only):
    path, md5 = cu_only
    server = ArchiveServer(path.read_bytes())
    try:
        with pytest.raises(UsageError, match="needs its md5"):
            load_tm23("Cu", "cold", archive=server.url(), progress=False)
        ds = load_tm23("Cu", "cold", archive=f"{server.url()}#md5={md5}", progress=False)
        assert ds["test"].num_rows == 2 and find(md5) is not None
    finally:
        server.close()


def test_unknown_names_and_taken_names(tm23_home, cu_only):
    path, md5 = cu_only
    import_archive(path, resolve(str(path)), name="cu7")
    with pytest.raises(UsageError, match="Did you mean 'cu7'"):
        resolve("cu8")
    with pytest.raises(UsageError, match="no archive with md5"):
        resolve("0" * 32)
    with pytest.raises(UsageError, match="no such file"):
        resolve("nothere/x.zip")
    other = path.with_name("other.zip")
    md5_other = write_archive(other, {"Cu": synthetic_members("Cu", 3, 2, seed=8)})
    with pytest.raises(UsageError, match="already taken"):
        import_archive(other, resolve(str(path)).__class__(urls=(), md5=md5_other, filename="other.zip"), name="cu7")
    with pytest.raises(UsageError, match="always named 'published'"):
        from tm23data.registry import register

        register(path, manifest.ARCHIVE_MD5, name="mine")


def test_the_registry_is_rebuilt_from_the_archives(cached, tm23_home):
    listing = tm23_home / "archives" / "registry.json"
    assert find(cached) is not None and listing.exists()
    listing.write_text("{ damaged")
    assert find(cached) is not None and find(cached).elements == ("Cu", "Ti", "W")
    assert json.loads(listing.read_text())[cached]["md5"] == cached


def test_the_archive_environment_variable_chooses_for_everything(cached, cu_only, monkeypatch, capsys):
    path, md5 = cu_only
    monkeypatch.delenv("TM23_MD5")
    monkeypatch.setenv("TM23_ARCHIVE", str(path))
    assert Selection.open("Cu", "cold", progress=False).store.archive_md5 == md5
    monkeypatch.setenv("TM23_ARCHIVE", cached)
    assert Selection.open("Ti", "cold", progress=False).store.archive_md5 == cached
