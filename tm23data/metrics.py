"""The paper's metrics: MAE, RMSE, MAV and % error = MAE / MAV x 100 (its Eq. 2) for energy per atom,
forces and stress (and, beside it, the % of the labels' spread about their mean, which for energies does not
depend on the pseudopotential's reference energy; see :func:`summarize`), an evaluator that checks predictions against a split's labels, and the learning-curve
power law error = a * N^b.

Conventions (as in the paper and nequip): energies are compared per atom (eV/atom); forces and stress
component-wise over all atoms / all 9 components (eV/Å, eV/Å³, ASE sign); MAV is the mean absolute value
of the reference labels of the evaluated set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UsageError

QUANTITIES = ("energy_per_atom", "forces", "stress")
UNITS = {"energy_per_atom": "eV/atom", "forces": "eV/Å", "stress": "eV/Å³"}


def mae(pred, true) -> float:
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64))))


def rmse(pred, true) -> float:
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def mav(true) -> float:
    """Mean absolute value of the labels."""
    return float(np.mean(np.abs(np.asarray(true, dtype=np.float64))))


def mad(true) -> float:
    """Mean absolute deviation of the labels about their mean (the spread a model has to explain)."""
    true = np.asarray(true, dtype=np.float64)
    return float(np.mean(np.abs(true - true.mean()))) if true.size else float("nan")


def percent_error(pred, true) -> float:
    """The paper's % error: MAE / MAV x 100."""
    return 100.0 * mae(pred, true) / mav(true)


def summarize(pred, true) -> dict[str, float]:
    """MAE, RMSE, MAV and the paper's ``percent`` (MAE / MAV x 100), and ``percent_of_spread`` = MAE / MAD x 100
    with MAD the mean absolute deviation of the labels about their mean.

    For energies the two differ by orders of magnitude: the MAV of total energies per atom is set by the
    pseudopotential's reference energy (about -0.3 eV/atom for Hg, -13 for W), so the same MAE gives a ~40x
    different paper % error; the spread about the test-set mean does not depend on that reference. Forces and
    stress average to ~0, so their two figures nearly agree."""
    error = mae(pred, true)
    spread = mad(true)
    return {"mae": error, "rmse": rmse(pred, true), "mav": mav(true), "percent": 100.0 * error / mav(true),
            "mad": spread, "percent_of_spread": 100.0 * error / spread if spread else float("nan")}  # fmt: skip


class Evaluator:
    """Checks predictions for a set of frames and reports the paper's metrics (OGB-style).

    Build it from reference labels (``Evaluator.for_split("Ti", "full")`` reads the test subset of a
    split from the store). ``eval`` takes a dict with ``energy`` (F,) total energies in eV, ``forces``
    (sum N, 3) in frame order or a list of (N_i, 3), and optionally ``stress`` (F, 3, 3) or Voigt (F, 6).
    """

    expected_input_format = (
        "dict with 'energy': (F,) eV total per frame; 'forces': (sum of atoms, 3) eV/Å in frame order or a "
        "list of (N_i, 3); optional 'stress': (F, 3, 3) or Voigt (F, 6) eV/Å³, ASE sign"
    )

    def __init__(self, natoms, energy, forces, stress=None, regime=None, *, name: str = ""):
        self.natoms = np.asarray(natoms, dtype=np.int64)
        self.energy = np.asarray(energy, dtype=np.float64)
        self.forces = _stack_forces(forces, self.natoms, "reference forces")
        self.stress = None if stress is None else _as_3x3(stress, len(self.natoms), "reference stress")
        self.regime = None if regime is None else np.asarray(regime, dtype=object)
        self.name = name
        if self.energy.shape != self.natoms.shape:
            raise UsageError(f"reference energy has shape {self.energy.shape}, expected {self.natoms.shape}")

    @classmethod
    def from_frames(cls, frames, regime=None, *, name: str = "") -> Evaluator:
        """The reference labels of ``frames`` (a :class:`tm23data.frames.Frames`); stress is scored only if
        every frame has a stress label (a partial stress set would make the MAV meaningless)."""
        stress = frames.stress if bool(frames.has_stress.all()) and len(frames) else None
        return cls(frames.natoms, frames.energy, frames.forces, stress, regime, name=name)

    @classmethod
    def for_split(cls, element, split: str, subset: str = "test", **split_kwargs) -> Evaluator:
        """Reference labels of ``subset`` of ``split`` for ``element`` (one symbol or several), from the store;
        ``split_kwargs`` are those of :meth:`tm23data.selection.Selection.open` (validation, seed, source)."""
        from .selection import Selection

        return Selection.open(element, split, progress=False, **split_kwargs).evaluator(subset)

    def eval(self, predictions: dict) -> dict:
        """Metrics per quantity (keys of :data:`QUANTITIES`), plus ``per_regime`` when regimes are known."""
        n = len(self.natoms)
        if "energy" not in predictions or "forces" not in predictions:
            raise UsageError(f"predictions need 'energy' and 'forces': {self.expected_input_format}")
        energy = np.asarray(predictions["energy"], dtype=np.float64).reshape(-1)
        if energy.shape != (n,):
            raise UsageError(f"predicted energy has {energy.size} values for {n} frames of {self.name or 'the set'}")
        forces = _stack_forces(predictions["forces"], self.natoms, "predicted forces")
        stress = None
        if predictions.get("stress") is not None:
            if self.stress is None:
                raise UsageError("stress was predicted but the reference frames have no stress labels")
            stress = _as_3x3(predictions["stress"], n, "predicted stress")
        mask = np.ones(n, dtype=bool)
        result = self._metrics(energy, forces, stress, mask)
        if self.regime is not None and len(set(self.regime)) > 1:
            result["per_regime"] = {
                str(r): self._metrics(energy, forces, stress, self.regime == r) for r in dict.fromkeys(self.regime)
            }
        return result

    def _metrics(self, energy, forces, stress, mask) -> dict:
        atom_mask = np.repeat(mask, self.natoms)
        out = {
            "n_frames": int(mask.sum()),
            "n_atoms": int(self.natoms[mask].sum()),
            "energy_per_atom": summarize(energy[mask] / self.natoms[mask], self.energy[mask] / self.natoms[mask]),
            "forces": summarize(forces[atom_mask], self.forces[atom_mask]),
        }
        if stress is not None:
            out["stress"] = summarize(stress[mask], self.stress[mask])
        out["units"] = {k: UNITS[k] for k in QUANTITIES if k in out}
        return out


def _stack_forces(forces, natoms: np.ndarray, what: str) -> np.ndarray:
    if isinstance(forces, (list, tuple)):
        if len(forces) != len(natoms):
            raise UsageError(f"{what}: {len(forces)} arrays for {len(natoms)} frames")
        for i, (f, n) in enumerate(zip(forces, natoms)):
            if np.shape(f) != (n, 3):
                raise UsageError(f"{what}: frame {i} has shape {np.shape(f)}, expected ({n}, 3)")
        forces = np.concatenate([np.asarray(f, dtype=np.float64) for f in forces]) if len(forces) else np.zeros((0, 3))
    forces = np.asarray(forces, dtype=np.float64)
    if forces.shape != (int(natoms.sum()), 3):
        raise UsageError(f"{what} has shape {forces.shape}, expected ({int(natoms.sum())}, 3) for {len(natoms)} frames")
    return forces


def _as_3x3(stress, n: int, what: str) -> np.ndarray:
    from .frames import voigt_to_full_3x3

    stress = np.asarray(stress, dtype=np.float64)
    if stress.shape == (n, 6):
        return np.stack([voigt_to_full_3x3(s) for s in stress]) if n else np.zeros((0, 3, 3))
    if stress.shape != (n, 3, 3):
        raise UsageError(f"{what} has shape {stress.shape}, expected ({n}, 3, 3) or Voigt ({n}, 6)")
    return stress


@dataclass(frozen=True)
class PowerLaw:
    """error = a * N^b, fitted by least squares in log-log space (the paper's learning exponents);
    ``b_stderr`` is the standard error of the exponent (NaN from two points, which a line always fits)."""

    a: float
    b: float
    r2: float
    b_stderr: float = float("nan")

    def __call__(self, n) -> np.ndarray:
        return self.a * np.asarray(n, dtype=np.float64) ** self.b


def fit_power_law(n_train, errors) -> PowerLaw:
    """Fit ``errors = a * n_train**b``; ``r2`` is the coefficient of determination of the log-log fit."""
    n_train = np.asarray(n_train, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    if n_train.shape != errors.shape or n_train.ndim != 1 or len(n_train) < 2:
        raise UsageError("need at least two (N, error) pairs of equal length")
    if not (np.all(n_train > 0) and np.all(errors > 0) and np.all(np.isfinite(errors))):
        raise UsageError("training sizes and errors must be positive and finite for a log-log fit")
    x, y = np.log(n_train), np.log(errors)
    b, log_a = np.polyfit(x, y, 1)
    residual = y - (log_a + b * x)
    total = y - y.mean()
    r2 = 1.0 - float(residual @ residual) / float(total @ total) if np.any(total) else 1.0
    spread = x - x.mean()
    if not np.any(spread):
        raise UsageError("a power law needs at least two different training sizes")
    # ordinary least squares: var(b) = s^2 / sum (x - mean x)^2 with s^2 = residual sum of squares / (n - 2)
    dof = len(x) - 2
    b_stderr = float(np.sqrt(float(residual @ residual) / dof / float(spread @ spread))) if dof else float("nan")
    return PowerLaw(a=float(np.exp(log_a)), b=float(b), r2=r2, b_stderr=b_stderr)


def force_label_differences(forces_a, forces_b) -> dict[str, float]:
    """How two label sets of the same frames differ in their forces (the paper's Fig. 9c, e.g. SIGMA 1.0 eV vs
    0.2 eV), in eV/Å: ``radial`` = mean over atoms of ||F_a| - |F_b|| (magnitudes only), ``vector`` = mean of
    |F_a - F_b| (the difference vector first, so it also carries the change of direction), ``angular_deg`` =
    mean angle between F_a and F_b. ``vector`` well above ``radial`` means the labels changed direction."""
    a = np.asarray(forces_a, dtype=float).reshape(-1, 3)
    b = np.asarray(forces_b, dtype=float).reshape(-1, 3)
    if a.shape != b.shape:
        raise ValueError(f"force label sets differ in shape: {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    cos = np.clip((a[ok] * b[ok]).sum(axis=1) / (na[ok] * nb[ok]), -1.0, 1.0)
    return {
        "radial": float(np.mean(np.abs(na - nb))),
        "vector": float(np.mean(np.linalg.norm(a - b, axis=1))),
        "angular_deg": float(np.degrees(np.arccos(cos)).mean()) if ok.any() else 0.0,
        "n_atoms": int(len(a)),
    }
