"""TM23 frames as ``ase.Atoms``: the view for ASE-based codes (calculators, MD, ``ase.db``, MACE's readers).

Each frame becomes an ``Atoms`` with numbers, positions (Å), cell (Å, rows are lattice vectors) and pbc, and a
``SinglePointCalculator`` holding the labels that are present: ``energy`` and ``free_energy`` (eV),
``forces`` (eV/Å) and ``stress`` (Voigt, eV/Å³, ASE sign: positive = tensile), so ``atoms.get_forces()``
returns the DFT forces. ``atoms.info`` carries ``frame_id``, ``regime`` and ``element``.

    from tm23data import Selection
    atoms = Selection.open("Ti", "melt").to_atoms("test")      # or load_tm23("Ti", "melt", format="ase")
"""

from __future__ import annotations

import numpy as np

from .store import Store


def to_atoms(store: Store, indices) -> list:
    """Frames ``indices`` of ``store`` as ``ase.Atoms`` with their labels and ids (see the module docstring)."""
    out = []
    regimes = store.regime_names(indices)
    for i, regime in zip(np.asarray(indices), regimes):
        atoms = store.frames.to_atoms(int(i))
        atoms.info.update(frame_id=str(store.frame_id[i]), regime=str(regime), element=store.element)
        out.append(atoms)
    return out


def selection_atoms(selection, subset: str) -> list:
    """The frames of ``subset`` of a :class:`tm23data.selection.Selection` as ``ase.Atoms`` (element order)."""
    return [atoms for store, idx in selection.blocks(subset) for atoms in to_atoms(store, idx)]
