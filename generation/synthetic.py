"""Small TM23-format archives in seconds, for tests, benchmarks and trying the package without the data: the
published member names and header keys, small supercells (rule "vectors": fcc 31 atoms, not the default
rule's 71, to stay quick), rattled instead of molecular dynamics, and labels
from a real ASE calculator (EMT where it applies, Lennard-Jones otherwise) so that energy, forces and stress
are mutually consistent. Never mistaken for TM23: the archive carries a PROVENANCE.json saying how it was made.
(:mod:`.local` runs the real protocol, MD included, with CHGNet or EMT.)
"""

from __future__ import annotations

import os

import numpy as np

from .. import elements
from ..archive import members_from_regimes, write_archive
from ..frames import Frames
from .local import EMT_ELEMENTS
from .settings import StructureSettings
from .structures import build_supercell

#: Rattle amplitude (Å) standing in for the thermal disorder of each regime.
RATTLE = {"cold": 0.04, "warm": 0.10, "melt": 0.22}


def _unit_cell(element: str):
    """The conventional cell at ASE's reference lattice constant, which differs from the lattice table's, as
    a real archive's cell may (alpha-Mn and rhombohedral Hg are approximated by bcc: this is test data)."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[element]] or {}
    structure = elements.get(element).structure
    structure = structure if structure in ("fcc", "bcc", "hcp") else "bcc"
    if structure == ref.get("symmetry"):
        return bulk(element, structure, cubic=structure != "hcp")
    return bulk(element, structure, a=ref.get("a", 3.0), cubic=structure != "hcp")


def calculator(element: str, atoms):
    """EMT for the six metals it covers, else a Lennard-Jones potential fitted to the nearest-neighbour
    distance (both give energy, forces and stress)."""
    if element in EMT_ELEMENTS:
        from ase.calculators.emt import EMT

        return EMT()
    from ase.calculators.lj import LennardJones
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, 4.0)
    sigma = float(d.min()) / 2 ** (1 / 6)
    return LennardJones(sigma=sigma, epsilon=0.3, rc=2.5 * sigma, smooth=True)


def synthetic_frames(element: str, regime: str, n_frames: int, *, seed: int = 0, min_length: float = 7.0) -> Frames:
    """``n_frames`` rattled copies of the element's supercell, labelled by a real calculator."""
    from ase.calculators.singlepoint import SinglePointCalculator

    base = build_supercell(element, StructureSettings(min_length_A=min_length, seed=seed, rule="vectors"),
                           unit_cell=_unit_cell(element),
                           lattice_source="ASE reference data (synthetic test data)", certainty="synthetic").atoms
    calc = calculator(element, base)
    rng = np.random.default_rng([seed, elements.REGIMES.index(regime), elements.get(element).Z])
    images = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, RATTLE[regime], atoms.positions.shape)
        # extxyz stores 8 decimals: label the stored geometry, so that re-evaluating the same calculator on
        # the archive reproduces its labels to round-off (the exact case of ``tm23 evaluate emt``)
        atoms.positions = np.round(atoms.positions, 8)
        atoms.cell = np.round(atoms.cell[:], 8)
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=False)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
        images.append(atoms)
    return Frames.from_atoms(images)


def synthetic_members(
    element: str, n_train: int = 9, n_test: int = 3, *, seed: int = 0, min_length: float = 7.0, cwm_repeats=True
) -> dict[str, Frames]:
    """The 8 members of one element. With ``cwm_repeats`` the 2700cwm files repeat the per-temperature
    frames (as the published archive is believed to); otherwise they hold frames of their own."""
    per_regime = {}
    for regime in elements.REGIMES:
        frames = synthetic_frames(element, regime, n_train + n_test, seed=seed, min_length=min_length)
        per_regime[regime] = (frames.take(range(n_train)), frames.take(range(n_train, n_train + n_test)))
    members = members_from_regimes(per_regime)
    if not cwm_repeats:
        other = {r: synthetic_frames(element, r, n_train + n_test, seed=seed + 1000, min_length=min_length)
                 for r in elements.REGIMES}  # fmt: skip
        members["2700cwm_train"] = Frames.concat([other[r].take(range(n_train)) for r in elements.REGIMES])
        members["2700cwm_test"] = Frames.concat(
            [other[r].take(range(n_train, n_train + n_test)) for r in elements.REGIMES]
        )
    return members


def synthetic_archive(
    path: str | os.PathLike,
    element_symbols=("Cu",),
    n_train: int = 9,
    n_test: int = 3,
    *,
    seed: int = 0,
    min_length: float = 7.0,
    cwm_repeats: bool = True,
) -> str:
    """Write a TM23-format zip for ``element_symbols`` at ``path``; returns its md5."""
    members = {
        el: synthetic_members(el, n_train, n_test, seed=seed, min_length=min_length, cwm_repeats=cwm_repeats)
        for el in element_symbols
    }
    provenance = {
        "what": "synthetic TM23-format archive for tests (rattled crystals, not molecular dynamics)",
        "calculator": {el: ("EMT" if el in EMT_ELEMENTS else "LennardJones") for el in element_symbols},
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
    }
    return write_archive(path, members, provenance)
