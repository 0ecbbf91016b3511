"""Structure from dynamics, for any model: a short NVT run from a data-set frame at the regime's temperature,
its radial distribution function against the data set's for that regime (:mod:`tm23data.generation.rdf`), and
whether the run stayed physical.

The thermostat is Bussi's stochastic velocity rescaling (:class:`ase.md.bussi.Bussi`), which keeps a conserved
energy (potential + kinetic - the energy the thermostat put in): its drift per ps measures how well the model's
forces integrate (a model whose forces are not the gradient of its energy, or a step too long, drifts). Checks:

- ``min_distance_A``: the closest approach of two atoms over the run; below ``overlap_fraction`` (0.6) of the
  starting frame's, atoms have run into each other;
- ``drift_eV_per_atom_per_ps``: the slope of the conserved energy (least squares);
- ``rdf_difference``: integral of |g_model - g_data| dr over [0, r_max] divided by the integral of g_data (0: the
  same structure).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import elements
from ..errors import UsageError
from ..frames import Frames


@dataclass
class DynamicsResult:
    """A short NVT run and its checks (units in the field names)."""

    model: str
    element: str
    regime: str
    temperature_K: float
    steps: int
    timestep_fs: float
    mean_temperature_K: float
    min_distance_A: float
    start_min_distance_A: float
    drift_eV_per_atom_per_ps: float
    rdf_difference: float
    stable: bool
    wall_s: float
    r_A: list = field(default_factory=list)
    g_model: list = field(default_factory=list)
    g_data: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def run_nvt(model, element: str, regime: str = "cold", *, steps: int = 200, timestep_fs: float = 2.0,
            taut_fs: float = 100.0, sample_every: int = 10, frame: int = 0, r_max: float = 6.0, n_bins: int = 60,
            overlap_fraction: float = 0.6, max_drift: float = 0.01, device: str = "cpu", source=None, seed: int = 0,
            progress: bool = True) -> DynamicsResult:  # fmt: skip
    """Run ``steps`` NVT steps of ``model`` (a spec of :func:`.models.load_model`) from frame ``frame`` of the
    element's ``regime`` frames (train and test of the store), at the regime's temperature, and compare the
    run's g(r) with the data set's for that regime. ``stable``: no overlap and |drift| <= ``max_drift``
    eV/atom/ps."""
    from ase import units
    from ase.md.bussi import Bussi
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from tqdm.auto import tqdm

    from ..generation.rdf import rdf_of_frames
    from ..store import REGIME_NAMES, load_store
    from .models import load_model

    if regime not in elements.REGIMES:
        raise UsageError(f"regime {regime!r}: choose from {', '.join(elements.REGIMES)}")
    if steps < sample_every or sample_every < 1:
        raise UsageError("steps must be at least sample_every, and sample_every at least 1")
    store = load_store(element, source, progress=progress)
    idx = np.flatnonzero(store.regime == REGIME_NAMES.index(regime))
    if not len(idx):
        raise UsageError(f"{element}: the store has no {regime} frames")
    if not 0 <= frame < len(idx):
        raise UsageError(f"{element} {regime}: frame {frame} out of range (0..{len(idx) - 1})")
    temperature = elements.get(element).temperature(regime)
    calc = load_model(model, device)
    atoms = store.frames.to_atoms(int(idx[frame]))
    atoms.calc = calc.calculator
    start_min = _min_distance(atoms)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    dyn = Bussi(atoms, timestep_fs * units.fs, temperature_K=temperature, taut=taut_fs * units.fs,
                rng=np.random.default_rng(seed + 1))  # fmt: skip
    images, conserved, times, temps, min_d = [], [], [], [], start_min
    t0 = time.perf_counter()
    with tqdm(total=steps, desc=f"{calc.name} {element} {regime} NVT", unit="step", disable=not progress,
              leave=False) as bar:  # fmt: skip
        for step in range(0, steps, sample_every):
            dyn.run(sample_every)
            bar.update(sample_every)
            epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
            conserved.append((epot + ekin - dyn.transferred_energy) / len(atoms))
            times.append((step + sample_every) * timestep_fs / 1000.0)
            temps.append(atoms.get_temperature())
            min_d = min(min_d, _min_distance(atoms))
            images.append(atoms.copy())
    wall = time.perf_counter() - t0
    drift = float(np.polyfit(times, conserved, 1)[0]) if len(times) > 1 else 0.0
    traj = Frames.from_atoms(images)  # positions only: labels NaN
    half = images[len(images) // 2 :]  # the second half, after the start has relaxed
    r, g_model = rdf_of_frames(traj, range(len(images) - len(half), len(images)), r_max, n_bins)
    _, g_data = rdf_of_frames(store.frames, idx, r_max, n_bins)
    dr = r[1] - r[0]
    diff = float(np.sum(np.abs(g_model - g_data)) * dr / max(np.sum(g_data) * dr, 1e-12))
    stable = bool(min_d >= overlap_fraction * start_min and abs(drift) <= max_drift and np.isfinite(conserved).all())
    return DynamicsResult(calc.name, element, regime, temperature, steps, timestep_fs, float(np.mean(temps)),
                          float(min_d), float(start_min), drift, diff, stable, wall, r.tolist(), g_model.tolist(),
                          g_data.tolist())  # fmt: skip


def _min_distance(atoms) -> float:
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, 4.0)
    return float(d.min()) if len(d) else float("inf")


def plot_rdf_comparison(result: DynamicsResult, path):
    """g(r) of the run (dashed) over the data set's (solid) for the regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .results import save_figure

    fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
    ax.plot(result.r_A, result.g_data, "k-", label=f"TM23 {result.regime}")
    ax.plot(result.r_A, result.g_model, "r--", label=f"{result.model} NVT {result.temperature_K:.0f} K")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(f"{result.element}: {'stable' if result.stable else 'UNSTABLE'}, RDF difference {result.rdf_difference:.2f}")
    ax.legend(frameon=False)
    return save_figure(fig, path)
