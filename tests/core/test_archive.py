"""Reading archives safely: hostile names, links, size bombs, damage; and the writer's published layout."""

from __future__ import annotations

import stat
import zipfile

import pytest

from tm23data import manifest
from tm23data.archive import Archive, ArchiveError, UnsafeArchiveError


def _zip(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data, *mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode:
                info.external_attr = mode[0] << 16
            zf.writestr(info, data)
    return path


def test_published_member_names(synthetic_zip):
    path, _ = synthetic_zip
    with Archive(path) as ar:
        assert ar.elements() == ["Cu", "Ti", "W"]
        names = ar.members("Ti")
        assert names["2700cwm_train"] == "benchmarking_master_collection/Ti_2700cwm_train.xyz"
        assert names["melt_nequip_test"] == "benchmarking_master_collection/Ti_melt_nequip_test.xyz"
        assert sorted(names) == sorted(k.name for k in manifest.MEMBER_KINDS) and len(names) == 8
        header = ar.read(names["cold_nequip_train"]).split(b"\n")[1].decode()
    # Exactly the published header keys, in the published order.
    keys = [tok.split("=")[0] for tok in header.replace('"', "").split() if "=" in tok]
    assert keys == ["Lattice", "Properties", "energy", "stress", "pbc"]
    assert "Properties=species:S:1:pos:R:3:forces:R:3" in header


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../evil.xyz", "benchmarking_master_collection/../../evil.xyz", "C:/evil.xyz", "..\\evil.xyz"],
)
def test_hostile_member_names_refuse_the_archive(tmp_path, name):
    path = _zip(tmp_path / "hostile.zip", [(name, b"x")])
    with pytest.raises(UnsafeArchiveError) as err:
        Archive(path)
    assert str(path) in str(err.value) and repr(name) in str(err.value)


def test_symlink_member_is_refused(tmp_path):
    path = _zip(tmp_path / "link.zip", [("benchmarking_master_collection/Cu_cold_nequip_train.xyz", b"/etc/passwd",
                                         stat.S_IFLNK | 0o777)])  # fmt: skip
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        Archive(path)


def test_member_size_is_bounded(tmp_path, monkeypatch):
    path = _zip(tmp_path / "big.zip", [("benchmarking_master_collection/Cu_cold_nequip_train.xyz", b"1" * 5000)])
    monkeypatch.setenv("TM23_MAX_MEMBER_BYTES", "4096")
    with pytest.raises(UnsafeArchiveError, match="over the 4096-byte limit"):
        Archive(path)


def test_zip_bomb_ratio_is_refused(tmp_path):
    path = _zip(tmp_path / "bomb.zip", [("benchmarking_master_collection/Cu_cold_nequip_train.xyz", b"\0" * (8 << 20))])
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        Archive(path)


def test_extraction_stays_inside_destination(synthetic_zip, tmp_path):
    path, _ = synthetic_zip
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "raw" / "Cu"
    with Archive(path) as ar:
        written = ar.extract("Cu", dest)
        assert sorted(p.name for p in written) == sorted(
            n.split("/")[-1] for n in manifest.member_names("Cu").values()
        )
        assert all(p.parent == dest.resolve() for p in written)
        assert written[0].read_bytes() == ar.read(manifest.member_name("Cu", "cold_nequip_train"))
    assert list(outside.iterdir()) == []
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_missing_members_are_listed(synthetic_zip):
    path, _ = synthetic_zip
    with Archive(path) as ar, pytest.raises(ArchiveError) as err:
        ar.members("Os")
    assert "Os_2700cwm_train.xyz" in str(err.value) and "Cu, Ti, W" in str(err.value)


def test_damaged_member_is_reported(synthetic_zip, tmp_path):
    path, _ = synthetic_zip
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(manifest.member_name("Cu", "warm_nequip_test"))
    # Flip bytes inside the compressed data of that member (after its local header).
    start = info.header_offset + 30 + len(info.filename.encode()) + 40
    for i in range(start, start + 16):
        data[i] ^= 0x5A
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    with Archive(damaged) as ar, pytest.raises(ArchiveError) as err:
        ar.read(info.filename)
    assert "Cu_warm_nequip_test.xyz" in str(err.value) and "damaged" in str(err.value)


def test_not_a_zip(tmp_path):
    path = tmp_path / "nope.zip"
    path.write_text("hello")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        Archive(path)


def test_writer_is_deterministic(tmp_path):
    from tm23data.generation.synthetic import synthetic_archive

    md5_a = synthetic_archive(tmp_path / "a.zip", ["Cu"], 2, 1, seed=3)
    md5_b = synthetic_archive(tmp_path / "b.zip", ["Cu"], 2, 1, seed=3)
    assert md5_a == md5_b
    with Archive(tmp_path / "a.zip") as ar:
        assert ar.provenance()["calculator"] == {"Cu": "EMT"}
