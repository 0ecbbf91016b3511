"""Offline check of the lattice table: relax each metal's conventional cell with CHGNet (a universal potential
trained on Materials Project PBE relaxations, weights inside its wheel) and report its a and c/a beside the
table's value.

CHGNet learned MP's PBE cells, so its relaxed constants are a PBE-consistent estimate where the table holds an
experimental value (hcp metals, Hg, alpha-Mn): PBE overestimates 4d/5d lattice constants by ~1 % against
experiment, which at fixed volume is several GPa of stress in every label. CHGNet's own error against MP PBE
is itself ~1 % in a: a large disagreement flags the row, a small one does not prove it (the exact routes stay
``--structure-from-archive`` and ``--materials-project``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .structures import lattice


@dataclass
class LatticeCheck:
    element: str
    structure: str
    certainty: str
    table_a_A: float
    table_c_over_a: float | None
    relaxed_a_A: float
    relaxed_c_over_a: float | None
    calculator: str

    @property
    def da_percent(self) -> float:
        """(relaxed - table) / table x 100 for a."""
        return 100.0 * (self.relaxed_a_A - self.table_a_A) / self.table_a_A

    def to_dict(self) -> dict:
        return {**self.__dict__, "da_percent": self.da_percent}


def relax_cell(atoms, calc, fmax: float = 1e-3, steps: int = 300):
    """``atoms`` relaxed in place (positions and cell, space group kept) with ``calc``; returns them."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    import warnings

    atoms = atoms.copy()
    atoms.calc = calc
    atoms.set_constraint(FixSymmetry(atoms))
    with warnings.catch_warnings():  # CHGNet's pymatgen conversion warns that it drops the symmetry constraint;
        warnings.simplefilter("ignore")  # ASE applies it; scipy's logm warns at 1e-13
        BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    return atoms


def check_lattice(element: str, calc, calculator: str = "chgnet") -> LatticeCheck:
    """The table's conventional cell of ``element`` relaxed with ``calc``, beside the table's constants."""
    entry = lattice(element)
    cell0 = entry.conventional_cell()
    relaxed = relax_cell(cell0, calc)
    scale = np.linalg.norm(relaxed.cell.array, axis=1) / np.linalg.norm(cell0.cell.array, axis=1)
    a = entry.a_A * float(scale[0])
    c_over_a = entry.c_over_a * float(scale[2] / scale[0]) if entry.c_over_a else None
    return LatticeCheck(element, entry.structure, entry.certainty, entry.a_A, entry.c_over_a, a, c_over_a, calculator)
