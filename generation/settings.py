"""Every setting of the generation pipeline, in one documented and overridable place.

The values reproduce the paper's Methods ("Training data acquisition") where the paper states them; the
rest are our choices and are marked so. Units are part of every name (``_fs``, ``_K``, ``_A``).

- :class:`MDSettings`: the trajectory protocol (5 fs steps, 5 ps equilibration, a frame every 50 fs,
  1000 frames = 55 ps, Nosé mass of 40 time steps) and the train/test rule (first 90 % train).
- :class:`StructureSettings`: the supercell rule (every lattice vector >= 7 Å) and the vacancy seed.
- :class:`VaspSettings`: INCAR tags of the AIMD and of the static relabelling, k-points and PAW choices.
- :class:`SlurmSettings`: how jobs are submitted (account, partition, time, modules, VASP command...).

Override from Python (``Settings().override({"vasp.incar_static.ENCUT": 600})``), from a JSON file
(``tm23 vasp-inputs --settings my.json``, nested like :meth:`Settings.to_dict`) or on the command line
(``--set vasp.incar_static.ENCUT=600 --set slurm.partition=gpu``). Unknown keys are errors, never ignored.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import elements, overrides
from ..errors import UsageError

#: Materials Project's default PAW datasets (pymatgen MPRelaxSet, functional "PBE") for the 27 metals.
#: The paper's own choices (its Supplementary Table 2) are not available; override per element with
#: ``--set vasp.potcar.W=W_sv``.
MP_POTCARS: dict[str, str] = {
    "Ag": "Ag", "Au": "Au", "Cd": "Cd", "Co": "Co", "Cr": "Cr_pv", "Cu": "Cu_pv", "Fe": "Fe_pv", "Hf": "Hf_pv",
    "Hg": "Hg", "Ir": "Ir", "Mn": "Mn_pv", "Mo": "Mo_pv", "Nb": "Nb_pv", "Ni": "Ni_pv", "Os": "Os_pv", "Pd": "Pd",
    "Pt": "Pt", "Re": "Re_pv", "Rh": "Rh_pv", "Ru": "Ru_pv", "Ta": "Ta_pv", "Tc": "Tc_pv", "Ti": "Ti_pv",
    "V": "V_pv", "W": "W_pv", "Zn": "Zn", "Zr": "Zr_sv",
}  # fmt: skip

#: INCAR tags shared by the AIMD and the static runs (paper: VASP 5.4.1, PBE, ENCUT 520 eV,
#: Methfessel-Paxton sigma 0.2 eV, no spin polarisation). GGA = PE is PBE, stated explicitly.
INCAR_COMMON: dict[str, object] = {
    "GGA": "PE",  # PBE (paper)
    "ENCUT": 520,  # eV (paper)
    "ISMEAR": 1,  # Methfessel-Paxton, first order (paper)
    "SIGMA": 0.2,  # eV (paper)
    "ISPIN": 1,  # no spin polarisation (paper)
    "ISYM": 0,  # no symmetry: MD snapshots have none (issue 4)
    "LWAVE": False,  # our choice: nothing is restarted from WAVECAR
    "LCHARG": False,  # our choice
}

#: AIMD (paper: NVT Nosé-Hoover, Nosé mass of 40 steps, 5 fs, 55 ps, Γ only). TEBEG/TEEND and NSW are
#: filled in per regime from the melting temperature and :class:`MDSettings`.
INCAR_AIMD: dict[str, object] = {
    "IBRION": 0,  # molecular dynamics
    # no MDALGO: the classic Nosé thermostat of a stock VASP 5.4.1 (the paper's version); see VaspSettings.thermostat
    "SMASS": 0,  # Nosé mass giving a period of 40 time steps (paper; documented for the classic thermostat)
    "ISIF": 0,  # our choice: fixed cell, no stress needed during MD (NVT at the ground-state volume)
    "PREC": "Normal",  # our choice (not stated in the paper)
    "EDIFF": 1e-5,  # eV, our choice
    "NELMIN": 4,  # our choice, the usual MD setting
    "LREAL": "Auto",  # our choice: real-space projection is accurate enough for sampling 30-70 atoms
    "NBLOCK": 1,  # every step goes to XDATCAR (extraction keeps every 10th)
    "NWRITE": 1,  # smaller OUTCAR
}

#: Static relabelling of each extracted frame (issue 4: IBRION=-1, NSW=0, ISIF=2 for stress).
INCAR_STATIC: dict[str, object] = {
    "IBRION": -1,
    "NSW": 0,
    "ISIF": 2,  # stress tensor is computed (and written) only for ISIF >= 2
    "PREC": "Accurate",  # our choice
    "EDIFF": 1e-6,  # eV, our choice
    "NELM": 100,  # our choice: a run that needs all 100 steps is rejected as unconverged
    "LREAL": False,  # our choice: reciprocal-space projection for accurate forces and stress
    "ALGO": "Normal",
}


def nose_hoover_tdamp_fs(period_fs: float) -> float:
    """ASE ``NoseHooverChainNVT`` ``tdamp`` (fs) for a thermostat oscillation period ``period_fs`` (fs).

    ASE sets the first thermostat mass Q = N_f kT tdamp². Linearising Nosé-Hoover around equilibrium
    (dξ/dt = (2K - N_f kT)/Q, dK/dt = -2ξK) gives ω² = 2 N_f kT / Q = 2 / tdamp², i.e. a period of
    π√2 tdamp ≈ 4.44 tdamp. Using the period itself as tdamp (VASP's "40 time steps") would make the
    thermostat 4.4x slower than VASP's SMASS = 0, so tdamp = period / (π√2).
    """
    return float(period_fs) / (math.pi * math.sqrt(2.0))


# Conversions of the dict settings' entries (used by tm23data.overrides through the fields' metadata)


def _incar_tag(name: str) -> str:
    return str(name).upper()


def _incar_value(value, key: str):
    return parse_incar_value(value) if isinstance(value, str) else value


def _element_key(name: str) -> str:
    return elements.get(name).symbol


def _potcar_value(value, key: str) -> str:
    return str(value)


def _parse_mesh(value, key: str) -> list[int]:
    if isinstance(value, str):
        value = value.replace("x", " ").replace(",", " ").split()
    try:
        mesh = [int(v) for v in value]
    except (TypeError, ValueError):
        raise UsageError(f"setting {key!r} takes three integers such as 3x3x5, got {value!r}") from None
    if len(mesh) != 3 or min(mesh) < 1:
        raise UsageError(f"setting {key!r} takes three positive integers such as 3x3x5, got {value!r}")
    return mesh


def parse_incar_value(text: str):
    """An INCAR value from text: .TRUE./.FALSE. -> bool, integers, floats (1E-6), else the string."""
    t = text.strip()
    low = t.lower()
    if low in (".true.", "true", "t"):
        return True
    if low in (".false.", "false", "f"):
        return False
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


#: Metadata of the INCAR-tag dict fields: tag names upper-cased, text values parsed as INCAR values.
_INCAR = {"key": _incar_tag, "value": _incar_value}


@dataclass
class MDSettings:
    """Trajectory protocol (paper, Methods). Durations in fs; temperatures come from the elements table."""

    timestep_fs: float = 5.0  #: POTIM (paper)
    equilibration_fs: float = 5000.0  #: first 5 ps discarded (paper)
    interval_fs: float = 50.0  #: a frame every 50 fs (paper)
    n_frames: int = 1000  #: frames kept per regime (paper: 1000, i.e. 55 ps in all)
    nose_mass_steps: int = 40  #: Nosé mass as an oscillation period in time steps (paper; VASP SMASS = 0)
    thermostat_chain: int = 1  #: local runs: 1 = plain Nosé-Hoover as in VASP (ASE's default would be 3)
    train_fraction: float = 0.9  #: first 90 % of each trajectory is train, last 10 % test (paper: 900/100)
    regimes: tuple[str, ...] = elements.REGIMES

    def __post_init__(self) -> None:
        self.regimes = tuple(self.regimes)
        for name in ("timestep_fs", "interval_fs"):
            if not getattr(self, name) > 0:
                raise UsageError(f"md.{name} must be > 0, got {getattr(self, name)}")
        if self.equilibration_fs < 0:
            raise UsageError(f"md.equilibration_fs must be >= 0, got {self.equilibration_fs}")
        if int(self.n_frames) != self.n_frames or self.n_frames < 2:
            raise UsageError(f"md.n_frames must be an integer >= 2 (one train and one test frame), got {self.n_frames}")
        for name in ("equilibration_fs", "interval_fs"):
            steps = getattr(self, name) / self.timestep_fs
            if abs(steps - round(steps)) > 1e-9:
                raise UsageError(
                    f"md.{name} = {getattr(self, name)} fs is not a whole number of {self.timestep_fs} fs time steps"
                )
        if not 0 < self.train_fraction < 1:
            raise UsageError(f"md.train_fraction must be between 0 and 1, got {self.train_fraction}")
        for regime in self.regimes:
            if regime not in elements.REGIMES:
                raise UsageError(f"unknown regime {regime!r} in md.regimes; TM23 regimes are {elements.REGIMES}")

    @property
    def equilibration_steps(self) -> int:
        return round(self.equilibration_fs / self.timestep_fs)

    @property
    def stride_steps(self) -> int:
        """MD steps between kept frames (paper: 50 fs / 5 fs = 10)."""
        return round(self.interval_fs / self.timestep_fs)

    @property
    def total_steps(self) -> int:
        """NSW of the AIMD (paper: 11000 = 55 ps)."""
        return self.equilibration_steps + self.n_frames * self.stride_steps

    @property
    def duration_fs(self) -> float:
        return self.total_steps * self.timestep_fs

    @property
    def thermostat_period_fs(self) -> float:
        """Period of the thermostat's temperature oscillation: VASP's SMASS = 0 means 40 time steps = 200 fs."""
        return self.nose_mass_steps * self.timestep_fs

    @property
    def thermostat_time_fs(self) -> float:
        """ASE ``tdamp`` (fs) whose temperature oscillation has the period of :attr:`thermostat_period_fs`
        (45.0 fs for 40 x 5 fs); see :func:`nose_hoover_tdamp_fs`."""
        return nose_hoover_tdamp_fs(self.thermostat_period_fs)

    def sample_steps(self):
        """1-based MD step numbers of the kept frames: after the equilibration, every ``stride`` steps,
        i.e. steps 1010, 1020, ..., 11000 in the paper's protocol; step 1 is the starting structure (t = 0),
        so these are at t = (step - 1) x 5 fs = 5.045 ... 54.995 ps."""
        import numpy as np

        return self.equilibration_steps + self.stride_steps * np.arange(1, self.n_frames + 1, dtype=np.int64)

    @property
    def n_train(self) -> int:
        """Training frames per regime: round(train_fraction x n_frames), at least 1 and leaving 1 for test."""
        n = int(math.floor(self.train_fraction * self.n_frames + 0.5))
        return min(max(n, 1), self.n_frames - 1)

    @property
    def n_test(self) -> int:
        return self.n_frames - self.n_train


@dataclass
class StructureSettings:
    """Supercell rule (paper: every lattice vector >= 7 Å, 32 to 71 atoms, then one vacancy at a random site)."""

    min_length_A: float = 7.0
    #: "fill" (default, inferred): the most sites up to 72 with every vector >= min_length_A: reproduces the
    #: one published cell (Cu 3x3x2, 71 atoms) and puts every metal in the paper's 32-71 atoms;
    #: "vectors": the fewest repeats with every lattice vector >= min_length_A (the paper's wording alone:
    #: fcc 2x2x2 = 31 atoms, below the paper's range and not the published Cu cell; small, for quick tests);
    #: "images": every atom >= min_length_A from its periodic images (Methods' wording; same cells as vectors);
    #: "tm23": the published supercell where the lattice table records it (Cu: 3x3x2), else "vectors".
    rule: str = "fill"
    seed: int = 0  #: vacancy site and MD velocities derive from this seed, the element and the regime
    #: explicit repeats of the conventional cell, replacing the rule (e.g. [8, 8, 5]: the 640-site Os cell of
    #: the paper's finite-size check, Fig. 7)
    repeat: list[int] | None = None
    vacancy: bool = True  #: delete one seeded site (TM23); false: the perfect supercell

    def __post_init__(self) -> None:
        if self.rule not in SUPERCELL_RULES:
            raise UsageError(f"structure.rule must be one of {', '.join(SUPERCELL_RULES)}, got {self.rule!r}")
        if not self.min_length_A > 0:
            raise UsageError(f"structure.min_length_A must be > 0, got {self.min_length_A}")
        if self.repeat is not None and (len(self.repeat) != 3 or min(int(n) for n in self.repeat) < 1):
            raise UsageError(f"structure.repeat must be three positive integers (e.g. 8,8,5), got {self.repeat}")


SUPERCELL_RULES = ("vectors", "images", "tm23", "fill")
THERMOSTATS = ("nose", "mdalgo2")


@dataclass
class VaspSettings:
    """INCAR tags, k-points and PAW datasets. Any INCAR tag can be added or overridden."""

    incar_common: dict = field(default_factory=lambda: dict(INCAR_COMMON), metadata=_INCAR)
    incar_aimd: dict = field(default_factory=lambda: dict(INCAR_AIMD), metadata=_INCAR)
    incar_static: dict = field(default_factory=lambda: dict(INCAR_STATIC), metadata=_INCAR)
    #: Static k-mesh per element (Γ-centred), e.g. {"Cu": [3, 3, 5]}; fill in with `tm23 kpoints`.
    kpoints: dict = field(default_factory=dict, metadata={"key": _element_key, "value": _parse_mesh})
    #: Elements without a converged mesh get n_i = max(1, ceil(kpoint_length_A / |a_i|)) (our placeholder).
    kpoint_length_A: float = 30.0
    #: "nose": IBRION=0 with SMASS and no MDALGO, the Nosé thermostat of a stock VASP 5.4.1 build (default);
    #: "mdalgo2": MDALGO=2, the Nosé-Hoover of builds compiled with -Dtbdyn (VASP >= 5.4 with tbdyn, or 6.x).
    thermostat: str = "nose"
    potcar_functional: str = "PBE"  #: pymatgen functional name (Materials Project's legacy PBE set)
    potcar: dict = field(default_factory=lambda: dict(MP_POTCARS), metadata={"key": _element_key, "value": _potcar_value})
    #: Static labels only (paper, Fig. 9d-e): electrons added per atom, so that NELECT = (ZVAL + this) x atoms
    #: with ZVAL read from the POTCAR; None (default) writes no NELECT (VASP's neutral count). ``tm23
    #: derive-labels --nelect-per-atom`` sets it; the AIMD is never changed.
    static_nelect_per_atom: float | None = None

    def __post_init__(self) -> None:
        if self.thermostat not in THERMOSTATS:
            raise UsageError(f"vasp.thermostat must be one of {', '.join(THERMOSTATS)}, got {self.thermostat!r}")

    def incar(self, stage: str) -> dict:
        """Merged INCAR tags of ``stage`` ("aimd" or "static"), stage tags overriding common ones."""
        if stage not in ("aimd", "static"):
            raise UsageError(f"stage must be 'aimd' or 'static', got {stage!r}")
        out = dict(self.incar_common)
        if stage == "aimd" and self.thermostat == "mdalgo2":
            out["MDALGO"] = 2
        out.update(self.incar_aimd if stage == "aimd" else self.incar_static)
        return {k.upper(): v for k, v in out.items() if v is not None}

    def potcar_symbol(self, element: str) -> str:
        if element not in self.potcar:
            raise UsageError(f"no PAW dataset chosen for {element}; set one with --set vasp.potcar.{element}=NAME")
        return self.potcar[element]


@dataclass
class SlurmSettings:
    """How jobs are written and submitted. Times are SLURM time strings (D-HH:MM:SS or HH:MM:SS)."""

    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    time_aimd: str = "2-00:00:00"  #: per AIMD segment; the run resumes from CONTCAR when resubmitted
    time_labels: str = "04:00:00"  #: per array task (a chunk of frames)
    nodes: int = 1
    ntasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    modules: list[str] = field(default_factory=list)  #: `module load` these, in order
    setup: list[str] = field(default_factory=list)  #: extra shell lines run before VASP (e.g. `source env.sh`)
    #: extra `#SBATCH` options, e.g. ["--constraint=cpu"]; on the command line a comma starts a new option only
    #: before "-" (`--set slurm.extra_sbatch=--constraint=a,b,--gres=gpu:1` gives two)
    extra_sbatch: list[str] = field(default_factory=list, metadata={"split": overrides.split_options})
    vasp_command: str = "srun vasp_std"  #: static labels
    vasp_command_aimd: str = "srun vasp_std"  #: AIMD (Γ only: `srun vasp_gam` is about twice as fast)
    chunk_size: int = 20  #: frames per array task
    max_concurrent: int = 50  #: the `%N` limit of `--array`
    max_array_size: int = 1000  #: split larger submissions (SLURM's MaxArraySize is often 1001)
    stop_margin_s: int = 900  #: ask VASP to stop cleanly (STOPCAR) this long before the time limit
    potcar_dir: str | None = None  #: folder with NAME/POTCAR, used by the jobs when only POTCAR.spec exists
    cleanup: list[str] = field(default_factory=lambda: ["WAVECAR", "CHG", "CHGCAR", "PROCAR", "DOSCAR", "EIGENVAL"])
    sbatch: str = "sbatch"  #: the submit command (a path, for tests)
    squeue: str = "squeue"

    def __post_init__(self) -> None:
        for name in ("chunk_size", "max_concurrent", "max_array_size", "nodes"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"slurm.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class Settings:
    md: MDSettings = field(default_factory=MDSettings)
    structure: StructureSettings = field(default_factory=StructureSettings)
    vasp: VaspSettings = field(default_factory=VaspSettings)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["md"]["regimes"] = list(self.md.regimes)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        return cls().override(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Settings:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as err:
            raise UsageError(f"{path}: {err}") from None

    def override(self, changes: dict) -> Settings:
        """A copy with ``changes`` applied: nested dicts ({"md": {"n_frames": 50}}) or dotted keys
        ({"md.n_frames": 50, "vasp.incar_static.ENCUT": 600}); text values are converted to each setting's
        type (:mod:`tm23data.overrides`). Unknown keys are errors listing the valid ones."""
        return overrides.apply(self, changes)
