"""The extended-XYZ reader: equal to ase.io.read on every array, both parsing paths, malformed input."""

from __future__ import annotations

import io
from dataclasses import fields

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from tm23data.extxyz import ExtxyzError, format_extxyz, parse_extxyz
from tm23data.frames import Frames, full_3x3_to_voigt
from tm23data.generation.synthetic import synthetic_frames


def assert_same_frames(a: Frames, b: Frames):
    for f in fields(Frames):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        assert np.array_equal(x, y, equal_nan=True), f.name
        if x.dtype.kind == "f":  # bit-identical, including the sign of zero
            assert np.array_equal(np.signbit(x), np.signbit(y)), f.name


def assert_equals_ase(text: str, frames: Frames):
    """Every array we return equals what ase.io.read returns."""
    ref = ase.io.read(io.StringIO(text), index=":", format="extxyz")
    assert len(ref) == len(frames)
    off = frames.offsets
    for i, atoms in enumerate(ref):
        a, b = off[i], off[i + 1]
        assert np.array_equal(atoms.numbers, frames.numbers[a:b])
        assert np.array_equal(atoms.positions, frames.positions[a:b])
        assert np.array_equal(atoms.cell.array, frames.cell[i])
        assert np.array_equal(atoms.pbc, frames.pbc[i])
        results = atoms.calc.results if atoms.calc else {}
        if "forces" in results:
            assert np.array_equal(results["forces"], frames.forces[a:b])
        else:
            assert np.isnan(frames.forces[a:b]).all()
        for key in ("energy", "free_energy"):
            if key in results:
                assert results[key] == getattr(frames, key)[i]
            else:
                assert np.isnan(getattr(frames, key)[i])
        if "stress" in results:
            assert np.array_equal(results["stress"], full_3x3_to_voigt(frames.stress[i]))
        else:
            assert np.isnan(frames.stress[i]).all()


@pytest.fixture(scope="module")
def tm23_text():
    frames = Frames.concat([synthetic_frames("W", r, 4, seed=1) for r in ("cold", "melt")])
    return format_extxyz(frames).decode(), frames


def test_published_layout_equals_ase_and_both_paths_agree(tm23_text):
    text, written = tm23_text
    fast = parse_extxyz(text.encode(), "W.xyz")
    general = parse_extxyz(text.encode(), "W.xyz", fast=False)
    assert_same_frames(fast, general)
    assert_equals_ase(text, fast)
    # The file holds 8-decimal text: what we read is what ASE reads from it, not the calculator's floats.
    assert np.allclose(fast.positions, written.positions, atol=1e-8)


def test_fixed_width_numbers_are_bit_exact():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0, 5, 600), [0.0, -0.0, -1e-9, 123456.1, -99999.99999999]])
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    n = len(atoms)
    images = []
    for k in range(0, len(values) - 2 * 3 * n, 2 * 3 * n):
        a = atoms.copy()
        a.positions = values[k : k + 3 * n].reshape(n, 3)
        forces = values[k + 3 * n : k + 6 * n].reshape(n, 3)
        a.calc = SinglePointCalculator(a, energy=float(values[k]), forces=forces, stress=np.zeros(6))
        images.append(a)
    buf = io.StringIO()
    ase.io.write(buf, images, format="extxyz")
    text = buf.getvalue()
    assert_same_frames(parse_extxyz(text.encode()), parse_extxyz(text.encode(), fast=False))
    assert_equals_ase(text, parse_extxyz(text.encode()))


HEADER = 'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.5 pbc="T T T"'
ATOMS = ["Cu 0.0 0.0 0.0 0.1 -0.2 0.3", "Cu 2.0 2.0 0.0 -0.1 0.2 -0.3"]


def frame(header=HEADER, atoms=ATOMS):
    return f"{len(atoms)}\n{header}\n" + "\n".join(atoms) + "\n"


VARIANTS = {
    "key order": 'pbc="T T T" energy=-10.5 Properties=species:S:1:pos:R:3:forces:R:3 Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0"',
    "stress 9": HEADER + ' stress="0.1 0.01 0.02 0.01 0.2 0.03 0.02 0.03 0.3"',
    "stress asymmetric 9": HEADER + ' stress="0.1 0.04 0.05 0.01 0.2 0.06 0.02 0.03 0.3"',
    "free_energy": HEADER + " free_energy=-10.75",
    "quoted energy": HEADER.replace("energy=-10.5", 'energy="-10.5"'),
    "braces lattice": HEADER.replace('Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0"', "Lattice={4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0}"),
    "extra keys": HEADER + ' config_type="melt frame" time=12.5 is_md',
    "pbc partial": HEADER.replace('pbc="T T T"', 'pbc="T F T"'),
    "no pbc key": HEADER.replace(' pbc="T T T"', ""),
    "no lattice": 'Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.5',
    "no properties": 'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" energy=-10.5',
    "integer energy": HEADER.replace("energy=-10.5", "energy=-10"),
    "exponents": HEADER.replace("energy=-10.5", "energy=-1.05e1"),
}


# The same atoms in ASE's fixed-width layout, which the fast (fixed-width) path takes.
FIXED_ATOMS = ["Cu   0.00000000   0.00000000   0.00000000   0.10000000  -0.20000000   0.30000000",
               "Cu   2.00000000   2.00000000   0.00000000  -0.10000000   0.20000000  -0.30000000"]  # fmt: skip


def _two_frames(header: str, fixed_width: bool) -> str:
    """Two frames with different energies and stresses (so values cannot leak between frames)."""
    atoms = FIXED_ATOMS if fixed_width else ATOMS
    if "Properties" not in header:  # species and positions only
        atoms = [" ".join(a.split()[:4]) for a in atoms] if not fixed_width else [a[:41] for a in atoms]
        atoms[1] += "" if fixed_width else "5"  # "2.0 2.0 0.05": lines of different widths
    second = header.replace("-10.5", "-11.25").replace('stress="0.1', 'stress="0.7')
    return frame(header, atoms) + frame(second, atoms)


@pytest.mark.parametrize("layout", ["variable width", "fixed width"])
@pytest.mark.parametrize("name", VARIANTS)
def test_header_variants_equal_ase(name, layout):
    from tm23data.extxyz import _FixedWidthParser

    text = _two_frames(VARIANTS[name], fixed_width=layout == "fixed width")
    fast_result = _FixedWidthParser(text.encode()).parse()
    assert (fast_result is None) == (layout == "variable width"), "the intended parsing path was not taken"
    got = parse_extxyz(text.encode(), name)
    assert_same_frames(got, parse_extxyz(text.encode(), name, fast=False))
    assert_equals_ase(text, got)


def test_extra_columns_and_species_forms():
    header = HEADER.replace(
        "Properties=species:S:1:pos:R:3:forces:R:3", "Properties=species:S:1:pos:R:3:energies:R:1:forces:R:3:tags:I:1"
    )
    atoms = ["cu 0.0 0.0 0.0 -3.5 0.1 -0.2 0.3 7", "CU 2.0 2.0 0.0 -3.4 -0.1 0.2 -0.3 8"]
    text = frame(header, atoms)
    got = parse_extxyz(text.encode())
    assert_equals_ase(text, got)
    assert got.numbers.tolist() == [29, 29]
    z_text = frame(HEADER.replace("species:S:1", "Z:I:1"), [a.replace("Cu", "29") for a in ATOMS])
    assert_equals_ase(z_text, parse_extxyz(z_text.encode()))


def test_mixed_species_fixed_width():
    atoms = bulk("NiAl", "cesiumchloride", a=2.9).repeat((2, 2, 2))
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)), stress=np.zeros(6))
    buf = io.StringIO()
    ase.io.write(buf, [atoms, atoms], format="extxyz")
    got = parse_extxyz(buf.getvalue().encode())
    assert_equals_ase(buf.getvalue(), got)
    assert sorted(set(got.numbers.tolist())) == [13, 28]


def test_voigt_6_stress_is_accepted():
    # ASE's own reader refuses a 6-value stress; we read it as Voigt (xx yy zz yz xz xy).
    from tm23data.extxyz import _FixedWidthParser

    for atoms in (ATOMS, FIXED_ATOMS):  # the general path, then the fixed-width one
        text = frame(HEADER + ' stress="1 2 3 4 5 6"', atoms) * 2
        assert (_FixedWidthParser(text.encode()).parse() is None) == (atoms is ATOMS)
        got = parse_extxyz(text.encode())
        assert np.array_equal(got.stress, [[[1, 6, 5], [6, 2, 4], [5, 4, 3]]] * 2)


def test_crlf_line_endings():
    text = frame().replace("\n", "\r\n") * 2
    assert_equals_ase(frame() * 2, parse_extxyz(text.encode()))


def test_empty_file():
    assert len(parse_extxyz(b"")) == 0


MALFORMED = {
    "count is not a number": ("x\n" + frame(), 1, "number of atoms"),
    "truncated frame": (frame() + "2\n" + HEADER + "\nCu 0 0 0 0 0 0\n", 8, "file ends inside a frame"),
    "missing column": (frame(atoms=[ATOMS[0], "Cu 2.0 2.0 0.0 -0.1 0.2"]), 4, "expected 7 columns"),
    "bad number": (frame(atoms=[ATOMS[0], "Cu 2.0 2.x 0.0 -0.1 0.2 -0.3"]), 4, "'2.x' is not a number"),
    "unknown symbol": (frame(atoms=[ATOMS[0], "Qq 2.0 2.0 0.0 -0.1 0.2 -0.3"]), 4, "unknown chemical symbol"),
    "lattice of 8": (frame(HEADER.replace("0.0 0.0 4.0", "0.0 4.0")), 2, "Lattice must have 9 numbers"),
    "stress of 5": (frame(HEADER + ' stress="1 2 3 4 5"'), 2, "stress must have 9 or 6"),
    "energy not a number": (frame(HEADER.replace("energy=-10.5", "energy=abc")), 2, "not numeric"),
    "bad property type": (frame(HEADER.replace("forces:R:3", "forces:X:3")), 2, "unknown property type"),
    "no positions": (frame(HEADER.replace("pos:R:3", "p:R:3")), 2, "no pos:R:3"),
    "blank line inside": (frame() + "\n" + frame(), 5, "blank line"),
}


def test_fast_path_never_moves_header_numbers_between_frames():
    """6 + 12 stress numbers in two frames add up to 2 x 9: the fast path must not split them evenly."""
    text = frame(HEADER + ' stress="1 2 3 4 5 6"', FIXED_ATOMS) + frame(
        HEADER + ' stress="' + " ".join(str(k) for k in range(100, 112)) + '"', FIXED_ATOMS
    )
    with pytest.raises(ExtxyzError, match="stress must have 9 or 6") as err:
        parse_extxyz(text.encode(), "W.xyz")
    assert err.value.line == 6


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_input_names_file_and_line(name):
    text, line, message = MALFORMED[name]
    with pytest.raises(ExtxyzError) as err:
        parse_extxyz(text.encode(), "Ti_cold_nequip_train.xyz")
    assert err.value.source == "Ti_cold_nequip_train.xyz"
    assert err.value.line == line, str(err.value)
    assert f"Ti_cold_nequip_train.xyz, line {line}:" in str(err.value)
    assert message in str(err.value)


def test_fast_path_declines_what_it_cannot_prove(tm23_text):
    """A single misaligned atom line in a fixed-width file must not be misread: the general path takes over."""
    text, _ = tm23_text
    lines = text.split("\n")
    lines[5] = lines[5].replace("  ", " ", 1) + " "  # same length, one column shifted left
    broken = "\n".join(lines)
    assert_same_frames(parse_extxyz(broken.encode()), parse_extxyz(broken.encode(), fast=False))
    assert_equals_ase(broken, parse_extxyz(broken.encode()))


def test_published_layout_takes_the_fixed_width_path(tm23_text):
    from tm23data.extxyz import _FixedWidthParser

    text, _ = tm23_text
    assert _FixedWidthParser(text.encode()).parse() is not None
    assert _FixedWidthParser(frame().encode()).parse() is None  # variable-width numbers: general path
