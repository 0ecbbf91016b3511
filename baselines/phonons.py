"""``tm23 phonons``: phonon dispersions of any model (paper Fig. 8, Cu and Os) and how far two models' bands are
apart.

With each model: the primitive cell of the element's TM23 structure (lattice table of :mod:`tm23data.generation`)
is relaxed (positions and cell, :class:`ase.filters.FrechetCellFilter` + BFGS), phonopy displaces atoms in a
supercell at least ``min_length`` Å wide, the model's forces give the force constants, and frequencies (THz) are
computed along the standard path of the relaxed cell (ASE's :meth:`ase.cell.Cell.bandpath`, Setyawan-Curtarolo;
no seekpath needed). Two models are compared at the same fractional q-points: frequency MAE (THz) and the
signed mean difference (model - reference), on one plot.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError


@dataclass
class Bands:
    """A phonon band structure: ``frequencies`` (Q, B) THz at ``qpoints`` (Q, 3) fractional reciprocal
    coordinates of ``cell``; ``distances`` (Q,) 1/Å along the path; special points at ``ticks``."""

    model: str
    cell: np.ndarray
    path: str
    qpoints: np.ndarray
    distances: np.ndarray
    frequencies: np.ndarray
    ticks: list = field(default_factory=list)  # [(distance, label)]
    lattice: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"model": self.model, "path": self.path, "cell_A": self.cell.tolist(), "lattice": self.lattice,
                "qpoints": self.qpoints.tolist(), "distances_inv_A": self.distances.tolist(),
                "frequencies_THz": self.frequencies.tolist(), "ticks": self.ticks}  # fmt: skip


def primitive_cell(element: str):
    """The primitive cell of the element's TM23 structure at the lattice table's constants."""
    from ase.build import bulk

    from ..generation.structures import lattice

    entry = lattice(element)
    if entry.structure in ("fcc", "bcc"):
        return bulk(element, entry.structure, a=entry.a_A)
    if entry.structure == "hcp":
        return bulk(element, "hcp", a=entry.a_A, c=entry.a_A * entry.c_over_a)
    raise UsageError(f"{element}: phonons are set up for fcc, bcc and hcp metals; {element} is {entry.structure}")


def relax(atoms, calc, *, fmax: float = 1e-4, steps: int = 300):
    """``atoms`` relaxed with ``calc`` (positions and cell, ``fmax`` eV/Å); a copy, with the calculator attached."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calc
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    if not opt.run(fmax=fmax, steps=steps):
        raise UsageError(f"the cell did not relax to fmax {fmax} eV/Å in {steps} steps; pass a larger fmax")
    return atoms


def phonon_bands(atoms, calc, *, model: str = "", min_length: float = 10.0, distance: float = 0.01,
                 npoints: int = 101, path: str | None = None, qpoints=None) -> Bands:  # fmt: skip
    """Frequencies of ``atoms`` (a relaxed primitive cell) with ``calc``: finite displacements of ``distance`` Å
    in a supercell at least ``min_length`` Å along each vector; along ``path`` (default the cell's standard
    path), or at ``qpoints`` (fractional, from another :class:`Bands`) to compare two models point by point."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:], scaled_positions=atoms.get_scaled_positions())
    repeat = [max(1, math.ceil(min_length / n)) for n in atoms.cell.lengths()]
    ph = Phonopy(unit, supercell_matrix=np.diag(repeat), primitive_matrix=None)
    ph.generate_displacements(distance=distance)
    forces = []
    from ase import Atoms

    for sc in ph.supercells_with_displacements:
        image = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        image.calc = calc
        forces.append(image.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    bandpath = atoms.cell.bandpath(path, npoints=npoints) if qpoints is None else None
    q = np.asarray(bandpath.kpts if qpoints is None else qpoints, dtype=np.float64)
    ph.run_qpoints(q)
    freqs = np.asarray(ph.get_qpoints_dict()["frequencies"], dtype=np.float64)
    if bandpath is not None:
        x, special_x, labels = bandpath.get_linear_kpoint_axis()
        ticks = [(float(d), "Γ" if lab == "G" else lab) for d, lab in zip(special_x, labels)]
        path_name = bandpath.path
    else:
        x = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(q @ atoms.cell.reciprocal(), axis=0), axis=1))]
        ticks, path_name = [], "given q-points"
    return Bands(model, atoms.cell[:].copy(), path_name, q, np.asarray(x), freqs, ticks,
                 {"a_A": float(atoms.cell.lengths()[0]), "volume_A3_per_atom": atoms.get_volume() / len(atoms),
                  "supercell": repeat})  # fmt: skip


def compare_phonons(element: str, model, reference="emt", *, device: str = "cpu", min_length: float = 10.0,
                    npoints: int = 101, relax_cell: bool = True, fmax: float = 1e-4, out=None) -> dict:  # fmt: skip
    """Bands of ``element`` with ``model`` and ``reference`` (any specs of :func:`.models.load_model`), each on
    its own relaxed cell, compared at the reference's fractional q-points: ``frequency_mae_THz``,
    ``frequency_mean_difference_THz`` (model - reference; positive = model stiffer). With ``out``, writes
    ``phonons_ELEMENT.json`` and ``.png`` there."""
    from .models import load_model

    cell = primitive_cell(element)
    ref_model = load_model(reference, device)
    mod_model = load_model(model, device)
    ref_cell = relax(cell, ref_model.calculator, fmax=fmax) if relax_cell else cell
    ref = phonon_bands(ref_cell, ref_model.calculator, model=ref_model.name, min_length=min_length, npoints=npoints)
    mod_cell = relax(cell, mod_model.calculator, fmax=fmax) if relax_cell else cell
    mod = phonon_bands(mod_cell, mod_model.calculator, model=mod_model.name, min_length=min_length, qpoints=ref.qpoints)
    mod.distances, mod.ticks, mod.path = ref.distances, ref.ticks, ref.path  # same fractional points, same axis
    diff = mod.frequencies - ref.frequencies
    report = {"element": element, "model": mod_model.identity(), "reference": ref_model.identity(),
              "frequency_mae_THz": float(np.mean(np.abs(diff))), "frequency_mean_difference_THz": float(diff.mean()),
              "max_frequency_THz": {"model": float(mod.frequencies.max()), "reference": float(ref.frequencies.max())},
              "bands": {"model": mod.to_json(), "reference": ref.to_json()}}  # fmt: skip
    if out is not None:
        from .results import atomic_write_json

        out = Path(out)
        report["files"] = {"json": str(atomic_write_json(out / f"phonons_{element}.json", report)),
                           "plot": str(plot_bands([ref, mod], out / f"phonons_{element}.png", title=element))}  # fmt: skip
    return report


def plot_bands(bands: list[Bands], path: str | os.PathLike, *, title: str = "") -> Path:
    """The band structures on one axis (first solid black, then coloured dashed), special points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .results import save_figure

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    styles = [("k", "-"), ("tab:red", "--"), ("tab:blue", ":"), ("tab:green", "-.")]
    for b, (color, ls) in zip(bands, styles):
        for k in range(b.frequencies.shape[1]):
            ax.plot(b.distances, b.frequencies[:, k], color=color, ls=ls, lw=1.2, label=b.model if k == 0 else None)
    for x, _ in bands[0].ticks:
        ax.axvline(x, color="0.8", lw=0.6)
    ax.set_xticks([x for x, _ in bands[0].ticks], [lab for _, lab in bands[0].ticks])
    ax.set_xlim(bands[0].distances[0], bands[0].distances[-1])
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_ylabel("frequency (THz)")
    ax.set_title(f"{title} phonons" if title else "phonons")
    ax.legend(frameon=False)
    return save_figure(fig, path)
