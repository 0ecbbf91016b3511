"""Hostile or odd input the data layer must refuse clearly or read as ASE does (issue 11 items 3, 4, 8, 9, 11)."""

from __future__ import annotations

import io
import zipfile

import ase.io
import numpy as np
import pytest

from tm23data import config
from tm23data.archive import Archive, ArchiveError, UnsafeArchiveError
from tm23data.extxyz import ExtxyzError, parse_extxyz

LATTICE = 'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0"'
ATOMS = "Cu 0.0 0.0 0.0 0.1 -0.2 0.3\nCu 2.0 2.0 0.0 -0.1 0.2 -0.3\n"
FIXED = ("Cu       0.00000000       0.00000000       0.00000000       0.10000000      -0.20000000       0.30000000\n"
         "Cu       2.00000000       2.00000000       0.00000000      -0.10000000       0.20000000      -0.30000000\n")  # fmt: skip


def test_duplicate_member_names_are_refused_naming_the_member(tmp_path):
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("benchmarking_master_collection/Cu_cold_nequip_train.xyz", "first")
        zf.writestr("benchmarking_master_collection/Cu_cold_nequip_train.xyz", "second")
    with pytest.raises(UnsafeArchiveError, match="Cu_cold_nequip_train.xyz.*more than once"):
        Archive(path)


@pytest.mark.parametrize("fast", [True, False])
def test_asymmetric_9_value_stress_is_rebuilt_from_the_upper_triangle_as_ase_does(fast):
    header = f'{LATTICE} Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 stress="1 2 3 4 5 6 7 8 9" pbc="T T T"'
    text = f"2\n{header}\n{FIXED if fast else ATOMS}" * 2
    frames = parse_extxyz(text.encode(), fast=fast)
    for i, atoms in enumerate(ase.io.read(io.StringIO(text), index=":", format="extxyz")):
        assert np.array_equal(frames.stress[i], atoms.get_stress(voigt=False))
    assert np.array_equal(frames.stress[0], frames.stress[0].T)


def test_z_column_wins_over_species_as_in_ase():
    text = f"2\n{LATTICE} Properties=species:S:1:Z:I:1:pos:R:3 pbc=\"T T T\"\nCu 74 0 0 0\nCu 74 2 2 0\n"
    frames = parse_extxyz(text.encode())
    assert list(frames.numbers) == list(ase.io.read(io.StringIO(text), format="extxyz").numbers) == [74, 74]


def test_forces_declared_twice_are_refused_as_ase_refuses():
    text = f"2\n{LATTICE} Properties=species:S:1:pos:R:3:forces:R:3:forces:R:3\n" + "".join(
        line + " 1 1 1\n" for line in ATOMS.splitlines())  # fmt: skip
    with pytest.raises(Exception):
        ase.io.read(io.StringIO(text), format="extxyz")
    with pytest.raises(ExtxyzError, match="line 2.*forces.*more than once"):
        parse_extxyz(text.encode(), source="dup.xyz")


@pytest.mark.parametrize("header", ["=", "=x", "energy=1 =2"])
def test_header_starting_with_equals_names_file_and_line(header):
    with pytest.raises(ExtxyzError, match=r"bad\.xyz, line 2"):
        parse_extxyz(f"2\n{header}\n{ATOMS}".encode(), source="bad.xyz")


def _flagged(path, flag_bits=0, compress_type=zipfile.ZIP_STORED):
    name = "benchmarking_master_collection/Cu_cold_nequip_train.xyz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, "2\n\n")
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.index(sig)
        data[at + flag_at] |= flag_bits
        data[at + method_at : at + method_at + 2] = compress_type.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return name


@pytest.mark.parametrize("kind", ["encrypted", "ppmd"])
def test_encrypted_or_unsupported_members_name_archive_and_member(tmp_path, kind):
    path = tmp_path / f"{kind}.zip"
    name = _flagged(path, flag_bits=1) if kind == "encrypted" else _flagged(path, compress_type=98)
    with pytest.raises(ArchiveError) as err:
        with Archive(path) as archive:
            archive.read(name)
    assert str(path) in str(err.value) and name in str(err.value)


def test_tm23_url_keeps_commas_inside_a_url(tm23_home, monkeypatch):
    url = "https://mirror.example/get?files=a.zip,b.zip&sig=x,y"
    monkeypatch.setenv("TM23_URL", url)
    assert config.archive_source().urls == (url,)
    monkeypatch.setenv("TM23_URL", f"{url} https://two.example/t.zip,https://three.example/t.zip")
    assert config.archive_source().urls == (url, "https://two.example/t.zip", "https://three.example/t.zip")
