"""The table of the 27 metals."""

from __future__ import annotations

import pytest

from tm23data import elements

ARCHIVE_ELEMENTS = "Ag Au Cd Co Cr Cu Fe Hf Hg Ir Mn Mo Nb Ni Os Pd Pt Re Rh Ru Ta Tc Ti V W Zn Zr".split()
MELTING = {"Ag": 1235, "Au": 1337, "Cd": 594, "Co": 1768, "Cr": 2180, "Cu": 1358, "Fe": 1811, "Hf": 2506, "Hg": 234,
           "Ir": 2739, "Mn": 1519, "Mo": 2896, "Nb": 2750, "Ni": 1728, "Os": 3306, "Pd": 1828, "Pt": 2041, "Re": 3459,
           "Rh": 2237, "Ru": 2607, "Ta": 3290, "Tc": 2430, "Ti": 1941, "V": 2183, "W": 3695, "Zn": 693, "Zr": 2128}  # fmt: skip


def test_table_is_the_27_metals():
    assert elements.symbols() == ARCHIVE_ELEMENTS
    for el in elements.all_elements():
        assert el.melting_K == MELTING[el.symbol]
        assert 4 <= el.group <= 12 and 4 <= el.period <= 6
        assert el.mp_id.startswith("mp-")
    from ase.data import atomic_numbers

    assert all(atomic_numbers[e.symbol] == e.Z for e in elements.all_elements())
    # Periodic-table order: period, then group.
    assert [e.symbol for e in elements.all_elements()][:9] == ["Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn"]


def test_temperatures_are_derived():
    ti = elements.get("Ti")
    assert ti.temperatures == {"cold": 0.25 * 1941, "warm": 0.75 * 1941, "melt": 1.25 * 1941}
    with pytest.raises(ValueError, match="cold, warm, melt"):
        ti.temperature("hot")


def test_resolve_keeps_order_and_drops_repeats():
    assert elements.resolve(["W", "Cu", "W"]) == ["W", "Cu"]
    assert elements.resolve("Os") == ["Os"]
    with pytest.raises(ValueError):
        elements.resolve([])
