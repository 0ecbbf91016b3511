"""The TM23 pipeline without VASP: ASE molecular dynamics and labels from an ASE calculator.

Same structures, temperatures, time step, thermostat, frame selection, split and archive format as the
VASP pipeline; only the physics differs, and the archive's provenance says which calculator made it:

- ``chgnet``: CHGNet (PyPI ``chgnet``, pretrained weights shipped in the wheel, trained on Materials Project
  PBE/PBE+U relaxations; covers all 27 metals). A machine-learned surrogate of PBE, not DFT.
- ``emt``: ASE's effective-medium theory, dependency-free, for Ag, Au, Cu, Ni, Pd, Pt only.
- ``sevennet-0``: SevenNet-0 (PyPI ``sevenn``, 11 July 2024 weights shipped in the wheel, trained on MPtrj,
  the same Materials Project PBE/PBE+U relaxations); offered here for the lattice check
  (:mod:`~tm23data.generation.latticecheck`), a second PBE-trained model beside CHGNet.
- ``auto``: CHGNet when installed, else EMT where it applies.

MD: ``ase.md.nose_hoover_chain.NoseHooverChainNVT`` with one thermostat (``md.thermostat_chain = 1``, plain
Nosé-Hoover as VASP's MDALGO = 2). VASP's SMASS = 0 means "a Nosé mass corresponding to a period of 40 time
steps" (200 fs); ASE's thermostat mass Q = N_f kT tdamp² oscillates with period π√2 tdamp, so ``tdamp`` =
200 fs / (π√2) ≈ 45.0 fs (:func:`~tm23data.generation.settings.nose_hoover_tdamp_fs`). Velocities start from a
seeded Maxwell-Boltzmann distribution at the target temperature. Step 1 is the starting structure, as in
VASP, so frames are taken at the same step numbers as from an AIMD (1010, 1020, ..., 11000 at full size).

Each finished (element, regime) is kept in the work folder, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .. import elements
from ..errors import StepError, UsageError
from ..frames import Frames
from ..torch_dtype import in_float32
from .settings import Settings
from .structures import Supercell, build_supercell

log = logging.getLogger(__name__)

EMT_ELEMENTS = frozenset({"Ag", "Au", "Cu", "Ni", "Pd", "Pt"})
CALCULATORS = ("auto", "chgnet", "emt", "sevennet-0")


class CalculatorUnavailable(StepError):
    """The calculator asked for cannot be used for this element (or is not installed)."""


@dataclass
class CalculatorInfo:
    name: str  # "chgnet" or "emt"
    description: str
    version: str

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "version": self.version}


def chgnet_available() -> bool:
    try:
        import chgnet  # noqa: F401
    except ImportError:
        return False
    return True


def sevennet_available() -> bool:
    try:
        import sevenn  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_calculator(name: str, element: str) -> str:
    """The concrete calculator ("chgnet" or "emt") that ``name`` means for ``element``."""
    elements.get(element)
    if name not in CALCULATORS:
        raise UsageError(f"calculator must be one of {', '.join(CALCULATORS)}, got {name!r}")
    if name == "auto":
        if chgnet_available():
            return "chgnet"
        if element in EMT_ELEMENTS:
            return "emt"
        raise CalculatorUnavailable(
            f"{element}: CHGNet is not installed and EMT covers only {', '.join(sorted(EMT_ELEMENTS))}; "
            "pip install chgnet (pretrained weights included)"
        )
    if name == "emt" and element not in EMT_ELEMENTS:
        raise CalculatorUnavailable(
            f"{element}: ASE's EMT has parameters only for {', '.join(sorted(EMT_ELEMENTS))} of the TM23 metals; "
            "use --calculator chgnet"
        )
    if name == "chgnet" and not chgnet_available():
        raise CalculatorUnavailable("CHGNet is not installed: pip install chgnet (pretrained weights included)")
    if name == "sevennet-0" and not sevennet_available():
        raise CalculatorUnavailable("SevenNet is not installed: pip install sevenn (SevenNet-0 weights included)")
    return name


_CHGNET_MODEL = None


def make_calculator(name: str, element: str, *, device: str | None = "cpu", threads: int | None = None):
    """(calculator, CalculatorInfo) for ``name`` (auto/chgnet/emt/sevennet-0) and ``element``; ``threads`` sets
    torch's CPU threads (on a shared machine, 1 thread is often faster than oversubscribed cores)."""
    concrete = resolve_calculator(name, element)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    if concrete == "emt":
        import ase
        from ase.calculators.emt import EMT

        return EMT(), CalculatorInfo("emt", "ASE EMT (effective-medium theory), a classical potential; not DFT",
                                     f"ase {ase.__version__}")  # fmt: skip
    if concrete == "sevennet-0":
        return _sevennet_calculator(device)
    global _CHGNET_MODEL
    import chgnet
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints its banner and device
        if _CHGNET_MODEL is None:
            _CHGNET_MODEL = in_float32(CHGNet.load)(verbose=False, use_device=device)
        calc = Float64Calculator(in_float32(CHGNetCalculator)(model=_CHGNET_MODEL, use_device=device,
                                                              on_isolated_atoms="ignore"))  # fmt: skip
    info = CalculatorInfo(
        "chgnet",
        f"CHGNet {_CHGNET_MODEL.version} pretrained universal potential (trained on Materials Project PBE/PBE+U "
        "relaxation data); a machine-learned surrogate, not DFT",
        f"chgnet {chgnet.__version__}, model {_CHGNET_MODEL.version}",
    )
    return calc, info


def _sevennet_calculator(device: str | None):
    """SevenNet-0 (11 July 2024) from the weights in the sevenn wheel; never downloads."""
    import sevenn
    from sevenn import _const

    path = getattr(_const, "SEVENNET_0_11Jul2024", "")
    if not os.path.isfile(path):
        raise CalculatorUnavailable(f"SevenNet-0: the installed sevenn {sevenn.__version__} ships no weights at "
                                    f"{path!r}; reinstall sevenn (its wheel ships them)")  # fmt: skip
    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)  # "no tensor-product accelerator"
        inner = in_float32(SevenNetCalculator)(path, device=device or "cpu")
    calc = Float64Calculator(inner)
    info = CalculatorInfo(
        "sevennet-0",
        "SevenNet-0 (11 July 2024) pretrained universal potential (trained on MPtrj, Materials Project PBE/PBE+U "
        "relaxation data); a machine-learned surrogate, not DFT",
        f"sevenn {sevenn.__version__}, model SevenNet-0 11Jul2024",
    )
    return calc, info


class Float64Calculator(Calculator):
    """Wraps a torch calculator (CHGNet, SevenNet) so that it runs in float32, its results are float64 and its
    prints are hushed."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad", category=UserWarning)
            in_float32(self.inner.calculate)(self.atoms.copy(), properties=None, system_changes=all_changes)
        r = self.inner.results
        self.results = {
            "energy": float(r["energy"]),
            "free_energy": float(r["energy"]),
            "forces": np.asarray(r["forces"], dtype=np.float64),
            "stress": np.asarray(r["stress"], dtype=np.float64),
        }


# --------------------------------------------------------------------------------------------------
# MD and labels


@dataclass
class Trajectory:
    """Frames (positions only) of one local MD run at the protocol's sample steps."""

    atoms: list
    steps: np.ndarray
    temperatures_K: np.ndarray  # instantaneous kinetic temperature at each kept frame
    wall_s: float


def md_seed(seed: int, element: str, regime: str) -> list[int]:
    return [int(seed), elements.get(element).Z, elements.REGIMES.index(regime)]


def run_md(supercell: Supercell, regime: str, calc, settings: Settings, *, progress: bool = True) -> Trajectory:
    """NVT Nosé-Hoover MD of ``supercell`` at the regime's temperature; returns the kept frames."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from tqdm.auto import tqdm

    md = settings.md
    element = supercell.element
    temperature = elements.get(element).temperature(regime)
    atoms = supercell.atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(md_seed(settings.structure.seed, element, regime))
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng, force_temp=True)
    Stationary(atoms)
    dyn = NoseHooverChainNVT(
        atoms,
        timestep=md.timestep_fs * units.fs,
        temperature_K=temperature,
        tdamp=md.thermostat_time_fs * units.fs,
        tchain=md.thermostat_chain,
    )
    sample = md.sample_steps()
    kept, temps = [], []
    start = time.perf_counter()
    done = 1  # step 1 is the starting structure
    with tqdm(total=int(sample[-1]), initial=1, desc=f"{element} {regime} MD ({temperature:.0f} K)", unit="step",
              disable=not progress, leave=False) as bar:  # fmt: skip
        for target in sample:
            n = int(target) - done
            if n:
                dyn.run(n)
                done = int(target)
                bar.update(n)
            _check_md(atoms, element, regime, int(target), temperature)
            kept.append(atoms.copy())
            temps.append(atoms.get_temperature())
    for a in kept:
        a.calc = None
    return Trajectory(kept, sample, np.array(temps), time.perf_counter() - start)


def _check_md(atoms, element: str, regime: str, step: int, temperature: float) -> None:
    from ase.geometry import get_distances

    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=True)
    np.fill_diagonal(d, np.inf)
    if d.min() < 1.0 or not np.isfinite(atoms.positions).all():
        raise StepError(
            f"{element} {regime}: at MD step {step} two atoms are {d.min():.2f} Å apart; the MD is unstable "
            "(reduce --timestep-fs or check the calculator)"
        )
    t_now = atoms.get_temperature()
    if t_now > 20 * max(temperature, 50):
        raise StepError(f"{element} {regime}: kinetic temperature {t_now:.0f} K at step {step} (target "
                           f"{temperature:.0f} K); the MD is unstable")  # fmt: skip


def label_frames(frames, calc, *, desc: str = "labelling", progress: bool = True) -> Frames:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign) of each frame from a fresh calculation."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from tqdm.auto import tqdm

    out = []
    for frame in tqdm(frames, desc=desc, unit="frame", disable=not progress, leave=False):
        atoms = frame.copy()
        atoms.calc = calc
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=float)
        stress = np.asarray(atoms.get_stress(voigt=True), dtype=float)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
        out.append(atoms)
    return Frames.from_atoms(out)


# --------------------------------------------------------------------------------------------------
# The whole local pipeline


@dataclass
class GenerateResult:
    archive: Path
    md5: str
    provenance: dict
    timings: dict = field(default_factory=dict)  # element -> regime -> {"md_s", "label_s", "frames"}

    @property
    def frames_per_second(self) -> float:
        frames = sum(t["frames"] for per in self.timings.values() for t in per.values() if not t.get("cached"))
        wall = sum(
            t["md_s"] + t["label_s"] for per in self.timings.values() for t in per.values() if not t.get("cached")
        )
        return frames / wall if wall else float("nan")


def archive_target(out: str | os.PathLike, symbols, calculator: str, n_frames: int) -> Path:
    """Where ``tm23 generate`` writes: ``out`` itself if it names a ``.zip``, else a file in the folder ``out``
    named after what it holds (``tm23_Cu_emt_50frames.zip``)."""
    path = Path(out)
    if path.suffix == ".zip":
        return path
    return path / f"tm23_{'-'.join(symbols)}_{calculator}_{n_frames}frames.zip"


def generate_local(
    element_symbols,
    archive_path: str | os.PathLike,
    *,
    calculator: str = "auto",
    settings: Settings | None = None,
    work_dir: str | os.PathLike | None = None,
    structures: dict[str, Supercell] | None = None,
    device: str | None = "cpu",
    threads: int | None = None,
    progress: bool = True,
) -> GenerateResult:
    """Run MD, label the kept frames and write a TM23-format archive at ``archive_path``."""
    from .assemble import base_provenance, write_generated_archive

    settings = settings or Settings()
    symbols = elements.resolve(element_symbols)
    for el in symbols:  # fail before any MD if a calculator cannot be had
        resolve_calculator(calculator, el)
    archive_path = Path(archive_path)
    work = Path(work_dir) if work_dir else archive_path.with_name(archive_path.stem + ".work")
    per_element: dict[str, dict[str, Frames]] = {}
    timings: dict = {}
    calc_infos = {}
    el_prov = {}
    for el in symbols:
        supercell = (structures or {}).get(el) or build_supercell(el, settings.structure)
        for note in supercell.notes:
            log.warning("%s: %s", el, note)
        calc, info = make_calculator(calculator, el, device=device, threads=threads)
        calc_infos[el] = info.to_dict()
        per_element[el] = {}
        timings[el] = {}
        regimes_prov = {}
        for regime in elements.REGIMES:
            key = _checkpoint_key(el, regime, supercell, info, settings)
            cached = _load_checkpoint(work, el, regime, key)
            temperature = elements.get(el).temperature(regime)
            if cached is not None:
                frames, meta = cached
                timings[el][regime] = {
                    "md_s": meta["md_s"],
                    "label_s": meta["label_s"],
                    "frames": len(frames),
                    "cached": True,
                }
            else:
                traj = run_md(supercell, regime, calc, settings, progress=progress)
                t0 = time.perf_counter()
                frames = label_frames(traj.atoms, calc, desc=f"{el} {regime} labels", progress=progress)
                label_s = time.perf_counter() - t0
                meta = {"key": key, "md_s": traj.wall_s, "label_s": label_s, "steps": traj.steps.tolist(),
                        "mean_temperature_K": float(traj.temperatures_K.mean())}  # fmt: skip
                _save_checkpoint(work, el, regime, frames, meta)
                timings[el][regime] = {"md_s": traj.wall_s, "label_s": label_s, "frames": len(frames)}
            per_element[el][regime] = frames
            regimes_prov[regime] = {
                "temperature_K": temperature,
                "md_seed": md_seed(settings.structure.seed, el, regime),
                "frames": len(frames),
                "first_step": int(settings.md.sample_steps()[0]),
                "last_step": int(settings.md.sample_steps()[-1]),
                "mean_temperature_of_kept_frames_K": round(meta["mean_temperature_K"], 1),
            }
        el_prov[el] = {"structure": supercell.to_dict(), "calculator": info.to_dict(), "regimes": regimes_prov}
    names = sorted({c["name"] for c in calc_infos.values()})
    provenance = base_provenance(
        "local",
        settings,
        what=(
            f"TM23-format archive regenerated locally with {' and '.join(n.upper() for n in names)} molecular "
            "dynamics and labels. NOT the published TM23 data (VASP 5.4.1, PBE); do not compare its numbers with "
            "the paper's"
        ),  # fmt: skip
        labels={"method": "ASE calculator", "calculators": calc_infos},
        extra_versions=("chgnet", "torch") if "chgnet" in names else (),
    )
    provenance["calculator"] = "+".join(names)
    provenance["md"] = {
        "integrator": "ase.md.nose_hoover_chain.NoseHooverChainNVT",
        "tchain": settings.md.thermostat_chain,
        "tdamp_fs": round(settings.md.thermostat_time_fs, 4),
        "thermostat_period_fs": settings.md.thermostat_period_fs,
        "timestep_fs": settings.md.timestep_fs,
        "initial_velocities": "Maxwell-Boltzmann at the target temperature (seeded), zero total momentum",
    }
    provenance["elements"] = el_prov
    md5 = write_generated_archive(archive_path, per_element, settings, provenance)
    return GenerateResult(archive_path, md5, provenance, timings)


def _checkpoint_key(element, regime, supercell: Supercell, info: CalculatorInfo, settings: Settings) -> str:
    payload = json.dumps({
        "element": element, "regime": regime, "md": settings.to_dict()["md"], "seed": settings.structure.seed,
        "tdamp_fs": settings.md.thermostat_time_fs,  # the SMASS -> tdamp mapping changed once: redo old runs
        "cell": np.round(supercell.atoms.cell.array, 8).tolist(),
        "positions": hashlib.sha256(np.round(supercell.atoms.positions, 8).tobytes()).hexdigest(),
        "calculator": info.to_dict(),
    }, sort_keys=True)  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _checkpoint_paths(work: Path, element: str, regime: str) -> tuple[Path, Path]:
    return work / f"{element}_{regime}.xyz", work / f"{element}_{regime}.json"


def _load_checkpoint(work: Path, element: str, regime: str, key: str):
    from ..extxyz import ExtxyzError, read_extxyz

    xyz, meta_path = _checkpoint_paths(work, element, regime)
    if not (xyz.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        frames = read_extxyz(xyz)
    except (OSError, ValueError, ExtxyzError):
        return None
    if len(frames) != len(meta.get("steps", [])):
        return None
    log.info("%s %s: reusing %s", element, regime, xyz)
    return frames, meta


def _save_checkpoint(work: Path, element: str, regime: str, frames: Frames, meta: dict) -> None:
    from ..atomic import write_atomic
    from ..extxyz import format_extxyz

    xyz, meta_path = _checkpoint_paths(work, element, regime)
    write_atomic(xyz, format_extxyz(frames))
    write_atomic(meta_path, json.dumps(meta))
