"""FLARE baseline: a sparse Gaussian process on ACE B2 descriptors (mir-flare's C++ core), as in the paper.

The paper (Methods, "FLARE"): ACE B2 descriptors (B1 optional), normalized dot-product kernel raised to the
power 2 (1 optional); hyperparameters [σ, σ_E, σ_F, σ_S] start at 2.0, 0.001 eV/atom, 0.05 eV/Å (scaled
with the data's force magnitude) and 0.005 eV/Å³ and are optimised by L-BFGS-B on the log marginal
likelihood (gradient tolerance 1e-4, at most 200 iterations) periodically while training frames are added;
from each training frame the sparse set takes the environment(s) the current GP is most uncertain about
(2700 frames gave 2700 sparse environments: one per frame, the default here).

Conventions (FLARE's, converted at the boundary): FLARE's energy label is the total energy; here a per-atom
reference energy (the training set's mean, ``energy_reference="mean"``) is subtracted first, like nequip's
per-type energy shift, and added back to predictions. σ_E applies to the total energy, so the per-atom value
is multiplied by the frame's atom count (``rel_e_noise`` handles frames of other sizes). FLARE's stress is
-(ASE stress) in the Voigt order (xx, xy, xz, yy, yz, zz); :meth:`FlareSGP.predict` returns eV/Å³ 3x3
tensors with the ASE sign, like every other tm23data array.

Models are saved in a format of our own (``.flare.npz``: settings, optimised hyperparameters, the training
frames and the chosen sparse environments; :meth:`FlareSGP.save`): FLARE's JSON writer fails on numpy 2,
and rebuilding the GP from these inputs reproduces its predictions exactly.

mir-flare is an optional dependency built by ``tm23 install-flare`` (scripts/install_flare.sh).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import overrides
from ..errors import StepError, UsageError
from ..frames import Frames
from ..splits import evenly_spaced

log = logging.getLogger(__name__)

FORMAT = "tm23data.flare-sgp/1"
#: Initial hyperparameters of the paper.
PAPER_SIGMA = 2.0
PAPER_SIGMA_E_PER_ATOM = 0.001  # eV/atom
PAPER_SIGMA_S = 0.005  # eV/Å³
#: With ``sigma_f="auto"``, σ_F starts at this fraction of the training forces' mean absolute value
#: (0.05 eV/Å at 1 eV/Å): the paper scaled σ_F with the trajectory temperature, i.e. the force magnitude.
AUTO_SIGMA_F_FRACTION = 0.05
#: FLARE's stress Voigt order.
FLARE_VOIGT = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


class FlareNotInstalled(StepError):
    """mir-flare cannot be imported; the message says how to install it."""


def import_flare():
    """mir-flare's C++ module, or a clear error saying how to install it."""
    try:
        from flare.bffs.sgp import _C_flare
    except ImportError as err:
        raise FlareNotInstalled(
            f"mir-flare is not importable ({err}). Build and install it offline with `tm23 install-flare` "
            "(or `bash scripts/install_flare.sh`) in the active virtual environment; see baselines/README.md."
        ) from None
    return _C_flare


def flare_available() -> bool:
    try:
        import_flare()
    except FlareNotInstalled:
        return False
    return True


@dataclass
class FlareSettings:
    """Descriptor, kernel, initial hyperparameters and training schedule of a FLARE sparse GP."""

    descriptor: str = "B2"
    r_cut: float = 5.0  # Å
    n_max: int = 8
    l_max: int = 3
    power: int = 2  # normalized dot-product kernel power ζ
    radial_basis: str = "chebyshev"
    cutoff_function: str = "quadratic"
    sigma: float = PAPER_SIGMA
    sigma_e: float = PAPER_SIGMA_E_PER_ATOM  # eV/atom (times the atom count: FLARE's label is the total energy)
    sigma_f: float | str = "auto"  # eV/Å, or "auto": AUTO_SIGMA_F_FRACTION x mean |F| of the training frames
    sigma_s: float = PAPER_SIGMA_S  # eV/Å³
    envs_per_frame: int = 1  # sparse environments taken from each training frame, most uncertain first
    optimize: bool = True
    optimize_start: int = 10  # first hyperparameter optimisation after this many frames,
    optimize_factor: float = 2.0  # then each time the frame count grows by this factor, and after the last frame
    max_iterations: int = 200  # L-BFGS-B
    gradient_tolerance: float = 1e-4
    energy_reference: str | None = "mean"  # "mean": subtract the training mean energy per atom; None: raw totals
    kuu_jitter: float = 1e-8
    seed: int = 0  # picks the first frame's environment(s), before any uncertainty exists
    train_energy: bool = True
    train_forces: bool = True
    train_stress: bool = True
    max_time: float | None = None  # seconds: stop adding frames after this (then the final optimisation)

    def __post_init__(self):
        if self.descriptor != "B2":
            raise NotImplementedError(
                f"descriptor {self.descriptor!r}: mir-flare 1.4.0 exposes the ACE B2 descriptor (and B3) but no "
                "B1 to Python, so only 'B2' is supported here"
            )
        if self.power not in (1, 2):
            raise UsageError(f"kernel power must be 1 or 2 (paper), got {self.power}")
        if not self.r_cut > 0 or self.n_max < 1 or self.l_max < 0:
            raise UsageError(f"need r_cut > 0, n_max >= 1, l_max >= 0 (got {self.r_cut}, {self.n_max}, {self.l_max})")
        if isinstance(self.sigma_f, str) and self.sigma_f != "auto":
            raise UsageError(f"sigma_f must be a number (eV/Å) or 'auto', got {self.sigma_f!r}")
        if self.envs_per_frame < 1:
            raise UsageError("envs_per_frame must be >= 1")
        if self.energy_reference not in ("mean", None):
            raise UsageError(f"energy_reference must be 'mean' or None, got {self.energy_reference!r}")
        if self.optimize_factor <= 1 or self.optimize_start < 1:
            raise UsageError("optimize_start >= 1 and optimize_factor > 1 are required")

    def descriptor_dim(self, n_species: int = 1) -> int:
        """B2 length, the paper's Eq. (1): (n_max n_s + 1) n_max n_s / 2 (l_max + 1)."""
        n = self.n_max * n_species
        return (n + 1) * n // 2 * (self.l_max + 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlareSettings:
        """Settings from a dict (``to_dict``'s, a result file's, or ``--set`` text values); unknown keys are errors."""
        return overrides.apply(cls(), d, label="FLARE")


@contextlib.contextmanager
def quiet_stdout(enabled: bool = True):
    """Silence C++ ``std::cout`` (FLARE's likelihood prints debug lines) by pointing file descriptor 1 at
    /dev/null for the duration."""
    if not enabled:
        yield
        return
    fd = 1  # C++ writes to file descriptor 1 whatever Python's sys.stdout is
    sys.stdout.flush()
    _flush_c_stdio()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        _flush_c_stdio()  # C++ std::cout goes through C stdio, which buffers when stdout is not a terminal
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _flush_c_stdio() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - no C runtime symbols (not Linux/macOS)
        pass


def most_uncertain_atoms(sgp, struc, k: int) -> np.ndarray:
    """Indices of the ``k`` atoms of ``struc`` whose environments have the largest predictive variance.

    FLARE returns the variances grouped by species (all atoms of type 0, then type 1, ...), not in atom
    order; map them back before picking atoms."""
    variances = np.asarray(sgp.compute_cluster_uncertainties(struc)[0])
    codes = np.asarray(struc.species)
    order = np.concatenate([np.flatnonzero(codes == t) for t in np.unique(codes)])
    return order[np.argsort(-variances, kind="stable")[:k]]


def optimisation_schedule(n_frames: int, start: int, factor: float) -> set[int]:
    """Frame counts after which the hyperparameters are optimised: start, start*factor, ..., and n_frames."""
    points, k = set(), float(start)
    while k < n_frames:
        points.add(int(round(k)))
        k *= factor
    points.add(n_frames)
    return points


def ase_stress_to_flare(stress: np.ndarray) -> np.ndarray:
    """(3, 3) eV/Å³ with the ASE sign -> FLARE's (6,) Voigt (xx, xy, xz, yy, yz, zz), sign flipped."""
    return -np.array([stress[i, j] for i, j in FLARE_VOIGT])


def flare_stress_to_ase(voigt: np.ndarray) -> np.ndarray:
    """FLARE's (6,) Voigt (xx, xy, xz, yy, yz, zz) -> (3, 3) eV/Å³ with the ASE sign."""
    out = np.empty((3, 3))
    for v, (i, j) in zip(voigt, FLARE_VOIGT):
        out[i, j] = out[j, i] = -v
    return out


def fit_and_score(settings: FlareSettings, train: Frames, test: Frames, evaluator) -> tuple[FlareSGP, dict, float]:
    """Train one model on ``train`` and score it on ``test`` with ``evaluator`` (the grid's and the label
    sets' step): returns (model, the evaluator's metrics, training seconds). Stress is scored only where the
    test frames have it."""
    tic = time.perf_counter()
    model = FlareSGP(settings, np.unique(train.numbers)).fit(train)
    train_s = time.perf_counter() - tic
    pred = model.predict(test)
    if evaluator.stress is None:
        pred["stress"] = None
    return model, evaluator.eval(pred), train_s


class FlareSGP:
    """A FLARE sparse GP for one set of species, trained on tm23data :class:`~tm23data.frames.Frames`.

    ``species`` are atomic numbers; ``hyperparameters`` ([σ, σ_E total, σ_F, σ_S]) are the starting point of
    :meth:`fit` (default: derived from the settings and the training data, :meth:`initial_hyperparameters`).
    """

    def __init__(self, settings: FlareSettings, species, *, hyperparameters=None, energy_reference=None,
                 reference_natoms: int | None = None):  # fmt: skip
        C = import_flare()
        self.settings = settings
        self.species = [int(z) for z in species]
        self.species_code = {z: i for i, z in enumerate(self.species)}
        s = settings
        # Python keeps references to descriptor and kernel: SparseGP and Structure hold raw pointers.
        self._descriptor = C.B2(s.radial_basis, s.cutoff_function, [0.0, float(s.r_cut)], [],
                                [len(self.species), s.n_max, s.l_max],
                                np.full((len(self.species), len(self.species)), float(s.r_cut)))  # fmt: skip
        self.energy_reference = dict(energy_reference or {})
        self.reference_natoms = reference_natoms
        self._given_hyperparameters = None if hyperparameters is None else np.asarray(hyperparameters, dtype=float)
        self.hyperparameters = self._given_hyperparameters  # the current ones once trained or loaded
        self._kernel = None
        self.sgp = None
        self.train_frames: Frames | None = None
        self.sparse_atoms: list[np.ndarray] = []
        self.history: list[dict] = []
        self.initial_hyperparameters_used: np.ndarray | None = None

    # --- building blocks ---------------------------------------------------------------------------

    def _new_sgp(self, hyps: np.ndarray):
        C = import_flare()
        self._kernel = C.NormalizedDotProduct(float(hyps[0]), int(self.settings.power))
        sgp = C.SparseGP([self._kernel], float(hyps[1]), float(hyps[2]), float(hyps[3]))
        sgp.Kuu_jitter = float(self.settings.kuu_jitter)
        return sgp

    def _codes(self, numbers: np.ndarray) -> list[int]:
        try:
            return [self.species_code[int(z)] for z in numbers]
        except KeyError as err:
            raise UsageError(f"atomic number {err.args[0]} is not among the model's species {self.species}") from None

    def _structure(self, frames: Frames, i: int, *, labels: bool):
        C = import_flare()
        off = frames.offsets
        a, b = off[i], off[i + 1]
        struc = C.Structure(frames.cell[i], self._codes(frames.numbers[a:b]), frames.positions[a:b],
                            float(self.settings.r_cut), [self._descriptor])  # fmt: skip
        if labels:
            s = self.settings
            if s.train_energy and np.isfinite(frames.energy[i]):
                struc.energy = np.array([frames.energy[i] - self._reference_energy(frames.numbers[a:b])])
            if s.train_forces and np.isfinite(frames.forces[a:b]).all():
                struc.forces = np.ascontiguousarray(frames.forces[a:b]).reshape(-1)
            if s.train_stress and np.isfinite(frames.stress[i]).all():
                struc.stresses = ase_stress_to_flare(frames.stress[i])
        return struc

    def _reference_energy(self, numbers: np.ndarray) -> float:
        return float(sum(self.energy_reference.get(int(z), 0.0) for z in numbers))

    def initial_hyperparameters(self, frames: Frames) -> np.ndarray:
        """[σ, σ_E (total, for ``reference_natoms`` atoms), σ_F, σ_S] from the settings and ``frames``."""
        s = self.settings
        sigma_f = s.sigma_f
        if sigma_f == "auto":
            finite = np.isfinite(frames.forces)
            if not finite.any():
                raise UsageError("sigma_f='auto' needs force labels, and these frames have none; pass sigma_f")
            sigma_f = AUTO_SIGMA_F_FRACTION * float(np.mean(np.abs(frames.forces[finite])))
        return np.array([s.sigma, s.sigma_e * self.reference_natoms, float(sigma_f), s.sigma_s])

    @property
    def n_sparse(self) -> int:
        return 0 if self.sgp is None else int(self.sgp.n_sparse)

    @property
    def likelihood(self) -> float | None:
        return None if self.sgp is None else float(self.sgp.log_marginal_likelihood)

    def descriptor_dim(self) -> int:
        return self.settings.descriptor_dim(len(self.species))

    # --- training ------------------------------------------------------------------------------------

    def fit(self, frames: Frames, *, progress: bool = False) -> FlareSGP:
        """Add ``frames`` one by one, each with its ``envs_per_frame`` most uncertain environments (the
        first frame's are drawn with ``seed``), optimising the hyperparameters on the schedule."""
        s = self.settings
        if len(frames) == 0:
            raise UsageError("no training frames")
        if s.train_forces:  # mir-flare crashes (segfault) on a frame added without its forces
            incomplete = np.add.reduceat((~np.isfinite(frames.forces)).any(axis=1), frames.offsets[:-1]) > 0
            if incomplete.any():
                raise UsageError(f"training frame {int(np.flatnonzero(incomplete)[0])} lacks force labels; drop "
                                 "such frames or set train_forces=False")  # fmt: skip
        if self.reference_natoms is None:
            self.reference_natoms = int(np.median(frames.natoms))
        if s.energy_reference == "mean" and not self.energy_reference:
            if len(self.species) != 1:
                raise NotImplementedError("energy_reference='mean' needs a single species; pass energy_reference")
            labelled = np.isfinite(frames.energy)  # frames without an energy label are trained on forces only
            if not labelled.any():
                raise UsageError("energy_reference='mean' needs at least one frame with an energy label")
            per_atom = np.sum(frames.energy[labelled]) / np.sum(frames.natoms[labelled])
            self.energy_reference = {self.species[0]: float(per_atom)}
        given = self._given_hyperparameters
        self.initial_hyperparameters_used = given.copy() if given is not None else self.initial_hyperparameters(frames)
        self.sgp = self._new_sgp(self.initial_hyperparameters_used)
        self.sparse_atoms, self.history = [], []
        done = 0
        schedule = optimisation_schedule(len(frames), s.optimize_start, s.optimize_factor) if s.optimize else set()
        rng = np.random.default_rng(s.seed)
        start = time.perf_counter()
        bar = tqdm(total=len(frames), desc="FLARE fit", unit="frame", disable=not progress, leave=False)
        for i in range(len(frames)):
            struc = self._structure(frames, i, labels=True)
            n = struc.noa
            k = min(s.envs_per_frame, n)
            if self.sgp.n_sparse == 0:
                chosen = np.sort(rng.choice(n, size=k, replace=False))
            else:
                chosen = np.sort(most_uncertain_atoms(self.sgp, struc, k))
            self.sgp.add_training_structure(struc, [-1], frames.natoms[i] / self.reference_natoms, 1.0, 1.0)
            self.sgp.add_specific_environments(struc, [int(c) for c in chosen])
            self.sgp.update_matrices_QR()
            self.sparse_atoms.append(chosen.astype(np.int64))
            done = i + 1
            over_time = s.max_time is not None and time.perf_counter() - start > s.max_time
            if done in schedule or (over_time and s.optimize):
                self.history.append({"frames": done, **self.optimize_hyperparameters()})
            bar.update(1)
            bar.set_postfix(sparse=self.sgp.n_sparse, refresh=False)
            if over_time:
                log.warning("FLARE: max_time %.0f s reached after %d of %d frames", s.max_time, done, len(frames))
                break
        bar.close()
        self.hyperparameters = np.array(self.sgp.hyperparameters)
        self.train_frames = frames.take(np.arange(done))
        return self

    def optimize_hyperparameters(self) -> dict:
        """L-BFGS-B on the negative log marginal likelihood and its analytic gradient (FLARE's
        ``compute_likelihood_gradient_stable``); keeps the best finite point seen, and the starting point if
        nothing better was found (the analytic gradient is unreliable on ill-conditioned sparse sets)."""
        from scipy.optimize import minimize

        s, sgp = self.settings, self.sgp
        x0 = np.array(sgp.hyperparameters, dtype=float)
        lower = np.array([1e-3 * x0[0], 1e-3 * x0[1], 1e-3 * x0[2], 1e-3 * x0[3]])
        best = {"x": x0.copy(), "f": np.inf}
        evaluations = 0

        def objective(x):
            nonlocal evaluations
            evaluations += 1
            with quiet_stdout():
                sgp.set_hyperparameters(np.asarray(x, dtype=float))
                value = -sgp.compute_likelihood_gradient_stable(True)
            grad = -np.array(sgp.likelihood_gradient, dtype=float)
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return 1e300, np.zeros_like(x)
            if value < best["f"]:
                best.update(x=np.array(x, dtype=float), f=value)
            return value, grad

        tic = time.perf_counter()
        with quiet_stdout():
            sgp.precompute_KnK()
        initial = objective(x0)[0]
        result = minimize(objective, x0, jac=True, method="L-BFGS-B",
                          bounds=[(lo, None) for lo in lower],
                          options={"gtol": s.gradient_tolerance, "maxiter": s.max_iterations})  # fmt: skip
        with quiet_stdout():
            sgp.set_hyperparameters(best["x"])
            sgp.compute_likelihood_gradient_stable(True)
        return {
            "initial_hyperparameters": np.asarray(x0, dtype=float).tolist(),
            "hyperparameters": best["x"].tolist(),
            "log_likelihood": -float(best["f"]),
            "initial_log_likelihood": -float(initial),
            "iterations": int(result.nit),
            "evaluations": evaluations,
            "converged": bool(result.success),
            "message": str(result.message),
            "seconds": time.perf_counter() - tic,
        }

    # --- prediction ------------------------------------------------------------------------------------

    def predict(self, frames: Frames) -> dict[str, np.ndarray]:
        """Mean energy (eV, total), forces (eV/Å, flat over atoms) and stress ((F, 3, 3) eV/Å³, ASE sign)."""
        if self.sgp is None:
            raise StepError("the model is not trained (call fit or load)")
        energy = np.empty(len(frames))
        forces = np.empty((int(frames.natoms.sum()), 3))
        stress = np.empty((len(frames), 3, 3))
        off = frames.offsets
        for i in range(len(frames)):
            struc = self._structure(frames, i, labels=False)
            self.sgp.predict_mean(struc)
            efs = np.asarray(struc.mean_efs)
            n = int(frames.natoms[i])
            energy[i] = efs[0] + self._reference_energy(frames.numbers[off[i] : off[i + 1]])
            forces[off[i] : off[i + 1]] = efs[1 : 1 + 3 * n].reshape(n, 3)
            stress[i] = flare_stress_to_ase(efs[1 + 3 * n :])
        return {"energy": energy, "forces": forces, "stress": stress}

    # --- persistence ------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (settings, hyperparameters, training frames, sparse environments) atomically."""
        from importlib import metadata

        from .results import atomic_savez

        if self.sgp is None or self.train_frames is None:
            raise StepError("nothing to save: the model is not trained")
        fr = self.train_frames
        meta = {
            "format": FORMAT,
            "settings": self.settings.to_dict(),
            "species": self.species,
            "hyperparameters": [float(h) for h in self.sgp.hyperparameters],
            "energy_reference": {str(k): v for k, v in self.energy_reference.items()},
            "reference_natoms": self.reference_natoms,
            "history": self.history,
            "mir_flare_version": metadata.version("mir-flare"),
            "units": "Å, eV, eV/Å, eV/Å³ (ASE sign); hyperparameters [σ, σ_E total (eV), σ_F (eV/Å), σ_S (eV/Å³)]",
        }
        counts = np.array([len(a) for a in self.sparse_atoms], dtype=np.int64)
        return atomic_savez(
            path, meta=np.array(json.dumps(meta)), natoms=fr.natoms, numbers=fr.numbers, positions=fr.positions,
            cell=fr.cell, pbc=fr.pbc, energy=fr.energy, forces=fr.forces, stress=fr.stress,
            sparse_counts=counts, sparse_atoms=np.concatenate(self.sparse_atoms) if len(counts) else counts,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> FlareSGP:
        """Rebuild a saved model: same training structures, sparse environments and hyperparameters."""
        path = Path(path)
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != FORMAT:
                raise UsageError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
            arrays = {k: npz[k] for k in npz.files if k != "meta"}
        n = len(arrays["natoms"])
        frames = Frames(natoms=arrays["natoms"], numbers=arrays["numbers"], positions=arrays["positions"],
                        forces=arrays["forces"], energy=arrays["energy"], free_energy=np.full(n, np.nan),
                        stress=arrays["stress"], cell=arrays["cell"], pbc=arrays["pbc"])  # fmt: skip
        settings = FlareSettings.from_dict(meta["settings"])
        model = cls(settings, meta["species"], hyperparameters=meta["hyperparameters"],
                    energy_reference={int(k): v for k, v in meta["energy_reference"].items()},
                    reference_natoms=meta["reference_natoms"])  # fmt: skip
        model.sgp = model._new_sgp(model.hyperparameters)
        bounds = np.concatenate([[0], np.cumsum(arrays["sparse_counts"])])
        for i in range(n):
            struc = model._structure(frames, i, labels=True)
            atoms = arrays["sparse_atoms"][bounds[i] : bounds[i + 1]]
            model.sgp.add_training_structure(struc, [-1], frames.natoms[i] / model.reference_natoms, 1.0, 1.0)
            model.sgp.add_specific_environments(struc, [int(a) for a in atoms])
            model.sparse_atoms.append(np.asarray(atoms, dtype=np.int64))
        model.sgp.update_matrices_QR()
        with quiet_stdout():
            model.sgp.precompute_KnK()
            model.sgp.compute_likelihood_gradient_stable(True)
        model.train_frames = frames
        model.history = meta.get("history", [])
        return model


# --- a baseline run ------------------------------------------------------------------------------------------


def train_flare(
    element: str,
    split: str = "full",
    settings: FlareSettings | None = None,
    *,
    out: str | os.PathLike = "tm23-results",
    name: str | None = None,
    overwrite: bool = False,
    source=None,
    max_train_frames: int | None = None,
    progress: bool = False,
):
    """Train a FLARE SGP on the training frames of ``element``/``split`` (in trajectory order; FLARE needs
    no validation set), evaluate on the test set, save the model, and write the run folder ``OUT/NAME``
    (default ``flare_{element}_{split}``). ``max_train_frames`` keeps that many training frames, evenly
    spaced over the set (a budget for quick runs; None = all)."""
    from ..selection import Selection
    from . import results

    settings = settings or FlareSettings()
    import_flare()
    selection = Selection.open(element, split, source=source)
    store, manifest = selection.store, selection.manifest
    train_idx = manifest.subsets["train"]
    if max_train_frames is not None and max_train_frames < len(train_idx):
        train_idx = train_idx[evenly_spaced(len(train_idx), max_train_frames)]
    test_idx = manifest.subsets["test"]
    train_frames, test_frames = store.frames.take(train_idx), selection.frames("test")
    species = np.unique(train_frames.numbers)
    name = name or f"flare_{element}_{split}"
    with results.RunDir(out, name, overwrite=overwrite) as run:
        model = FlareSGP(settings, species)
        tic = time.perf_counter()
        model.fit(train_frames, progress=progress)
        train_s = time.perf_counter() - tic
        n_used = len(model.train_frames)
        tic = time.perf_counter()
        pred = model.predict(test_frames)
        predict_s = time.perf_counter() - tic
        evaluator = selection.evaluator("test")
        if evaluator.stress is None:
            pred["stress"] = None
        metrics = evaluator.eval(pred)
        model.save(run.path / "model.flare.npz")
        opt_s = sum(h["seconds"] for h in model.history)
        record = results.result_record(
            model="flare", element=element, split=split, manifest=manifest, store=store,
            settings={**settings.to_dict(), "descriptor_dim": model.descriptor_dim(),
                      "initial_hyperparameters": model.initial_hyperparameters_used.tolist()},
            metrics=metrics,
            timing={"train_s": train_s, "train_s_per_frame": train_s / n_used, "hyperopt_s": opt_s,
                    "predict_s": predict_s,
                    "predict_s_per_atom": predict_s / max(1, int(test_frames.natoms.sum()))},
            training={"frames_used": n_used, "frames_available": len(manifest.subsets["train"]),
                      "n_sparse": model.n_sparse, "hyperparameters": model.hyperparameters.tolist(),
                      "hyperparameter_labels": ["sigma", "sigma_e_total_eV", "sigma_f_eV_per_A", "sigma_s_eV_per_A3"],
                      "reference_natoms": model.reference_natoms,
                      "energy_reference_eV_per_atom": {str(k): v for k, v in model.energy_reference.items()},
                      "log_likelihood": model.likelihood, "optimisations": model.history},
            files={"model": "model.flare.npz"},
        )  # fmt: skip
        results.write_result(run.path, record, results.prediction_arrays(test_frames, pred, store.frame_id[test_idx]))
        final = run.commit()
    return results.load_result(final)

