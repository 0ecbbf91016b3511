"""VASP inputs: INCAR, KPOINTS, POSCAR and POTCAR (or POTCAR.spec) for the AIMD and the static relabelling.

Every file appears atomically (written to a temporary name, then renamed); the 1000 POSCARs of a regime are
written into a temporary folder that replaces ``poscars/`` in one rename, so a folder of inputs is either
complete or absent. POSCARs are formatted here with numpy (81,000 of them take seconds; pymatgen's writer
would take minutes) and checked against ASE's and pymatgen's readers in the tests.

POTCARs come from pymatgen when it is configured with the PAW files (``PMG_VASP_PSP_DIR``); otherwise a
``POTCAR.spec`` names the chosen PAW dataset (Materials Project defaults unless overridden, see
:data:`tm23data.generation.settings.MP_POTCARS`) and the job scripts assemble the POTCAR from
``slurm.potcar_dir`` on the cluster.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from .. import elements
from ..atomic import write_atomic
from ..errors import StepError, UsageError
from .settings import Settings, VaspSettings

# --------------------------------------------------------------------------------------------------
# Formats


def format_incar(tags: dict, header: str = "") -> str:
    """INCAR text, one ``TAG = value`` per line (booleans as .TRUE./.FALSE.)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for key, value in tags.items():
        lines.append(f"{key.upper()} = {_incar_value(value)}")
    return "\n".join(lines) + "\n"


def _incar_value(value) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, float):
        text = repr(value)
        return text.upper() if "e" in text else text
    if isinstance(value, (list, tuple)):
        return " ".join(_incar_value(v) for v in value)
    return str(value)


def format_kpoints(mesh, comment: str = "") -> str:
    """A Γ-centred automatic mesh (Γ-centred meshes keep hexagonal symmetry; 1x1x1 is Γ only)."""
    mesh = [int(k) for k in mesh]
    return f"{comment or 'Gamma-centred mesh'}\n0\nGamma\n{mesh[0]} {mesh[1]} {mesh[2]}\n0 0 0\n"


def format_poscar(symbols, cell, positions, comment: str = "") -> str:
    """POSCAR (VASP 5, direct coordinates wrapped into [0, 1)) from symbols, cell (Å) and Cartesian
    positions (Å). Atoms must be grouped by species (TM23 cells hold one species)."""
    cell = np.asarray(cell, dtype=float)
    frac = np.linalg.solve(cell.T, np.asarray(positions, dtype=float).T).T
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0  # -1e-17 wraps to 1.0 in floating point
    species, counts = [], []
    for s in symbols:
        if species and species[-1] == s:
            counts[-1] += 1
        else:
            if s in species:
                raise UsageError("format_poscar: atoms of one species must be contiguous")
            species.append(s)
            counts.append(1)
    out = [comment.replace("\n", " ") or " ".join(species), "1.0"]
    out += ["  %.12f %.12f %.12f" % tuple(row) for row in cell]
    out.append("  " + " ".join(species))
    out.append("  " + " ".join(str(c) for c in counts))
    out.append("Direct")
    return "\n".join(out) + "\n" + ("  %.12f %.12f %.12f\n" * len(frac)) % tuple(frac.ravel().tolist())


def static_kmesh(element: str, cell, vasp: VaspSettings) -> tuple[list[int], str]:
    """The static k-mesh of ``element``: the converged one in the settings if given, else the placeholder
    n_i = max(1, ceil(kpoint_length_A / |a_i|)). Returns (mesh, where it came from)."""
    if element in vasp.kpoints:
        return [int(k) for k in vasp.kpoints[element]], "converged mesh from settings (vasp.kpoints)"
    lengths = np.linalg.norm(np.asarray(cell, dtype=float), axis=1)
    mesh = [max(1, int(math.ceil(vasp.kpoint_length_A / length - 1e-9))) for length in lengths]
    return mesh, (f"placeholder: ceil({vasp.kpoint_length_A:g} Å / |a_i|); converge it with `tm23 kpoints` and set "
                  f"vasp.kpoints.{element}")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# POTCAR


def pymatgen_psp_dir() -> str | None:
    """The PAW folder pymatgen is configured with (PMG_VASP_PSP_DIR in the environment or ~/.config/.pmgrc.yaml)."""
    if os.environ.get("PMG_VASP_PSP_DIR"):
        return os.environ["PMG_VASP_PSP_DIR"]
    try:
        from pymatgen.core import SETTINGS
    except ImportError:
        return None
    return SETTINGS.get("PMG_VASP_PSP_DIR")


def potcar_files(element: str, vasp: VaspSettings) -> dict[str, str]:
    """{"POTCAR": text} through pymatgen when it is configured, else {"POTCAR.spec": "<PAW name>\\n"}."""
    name = vasp.potcar_symbol(element)
    if pymatgen_psp_dir():
        from pymatgen.io.vasp.inputs import Potcar

        try:
            potcar = Potcar([name], functional=vasp.potcar_functional)
        except Exception as err:  # noqa: BLE001 - pymatgen raises many types for missing/odd PAW files
            raise StepError(
                f"{element}: pymatgen is configured with PAW files ({pymatgen_psp_dir()}) but cannot give "
                f"{name} for functional {vasp.potcar_functional} ({type(err).__name__}: {err}). Fix PMG_VASP_PSP_DIR or choose another "
                f"dataset with --set vasp.potcar.{element}=NAME"
            ) from None
        return {"POTCAR": str(potcar)}
    return {"POTCAR.spec": name + "\n"}


def potcar_zvals(text: str, source: str = "POTCAR") -> list[float]:
    """The valence electron counts (``ZVAL = ...`` of each dataset's header, in file order) of a POTCAR."""
    import re

    found = [float(m.group(1)) for m in re.finditer(r"\bZVAL\s*=\s*([-+]?\d+(?:\.\d*)?(?:[Ee][-+]?\d+)?)", text)]
    if not found:
        raise StepError(f"{source}: no 'ZVAL = ...' line; it is not a VASP POTCAR (each PAW dataset's header "
                        "states its valence as ZVAL)")  # fmt: skip
    return found


def local_potcar_text(element: str, settings: Settings) -> tuple[str, str] | None:
    """(text, where it came from) of ``element``'s POTCAR as the jobs will use it, if readable on this machine:
    through pymatgen when configured, else ``slurm.potcar_dir/NAME/POTCAR`` (or ``.gz``); None if neither."""
    import gzip

    files = potcar_files(element, settings.vasp)
    if "POTCAR" in files:
        return files["POTCAR"], f"pymatgen ({pymatgen_psp_dir()})"
    name = settings.vasp.potcar_symbol(element)
    folder = settings.slurm.potcar_dir
    if not folder:
        return None
    plain, packed = Path(folder).expanduser() / name / "POTCAR", Path(folder).expanduser() / name / "POTCAR.gz"
    if plain.is_file():
        return plain.read_text(errors="replace"), str(plain)
    if packed.is_file():
        return gzip.decompress(packed.read_bytes()).decode(errors="replace"), str(packed)
    return None


def static_nelect(element: str, natoms: int, settings: Settings) -> dict | None:
    """NELECT of the static labels of ``element`` with ``natoms`` atoms when ``vasp.static_nelect_per_atom`` is
    set (paper, Fig. 9d-e): (ZVAL + change) x atoms, with ZVAL from the POTCAR the jobs will use. Returns
    {"NELECT", "zval", "natoms", "change_per_atom", "neutral", "potcar"}; None when the setting is unset."""
    change = settings.vasp.static_nelect_per_atom
    if change is None:
        return None
    name = settings.vasp.potcar_symbol(element)
    found = local_potcar_text(element, settings)
    if found is None:
        where = settings.slurm.potcar_dir or "not set"
        raise StepError(
            f"{element}: NELECT (vasp.static_nelect_per_atom = {change:+g} electrons per atom) needs the ZVAL of "
            f"{name} from its POTCAR, and none is readable here: pymatgen has no PAW files (PMG_VASP_PSP_DIR) and "
            f"slurm.potcar_dir ({where}) has no {name}/POTCAR. Point one of them at the PAW folder the jobs use "
            "(e.g. --set slurm.potcar_dir=DIR) and write the inputs again"
        )  # fmt: skip
    text, source = found
    zvals = potcar_zvals(text, source)
    if len(zvals) != 1:
        raise StepError(f"{source}: {len(zvals)} PAW datasets (ZVAL lines); a TM23 cell has one species, {element}")
    neutral = zvals[0] * natoms
    return {"NELECT": round(neutral + float(change) * natoms, 6), "zval": zvals[0], "natoms": int(natoms),
            "change_per_atom": float(change), "neutral": round(neutral, 6), "potcar": source}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Writing the inputs of one run


def aimd_incar(element: str, regime: str, settings: Settings) -> dict:
    """INCAR tags of the AIMD of ``element`` in ``regime``: TEBEG = TEEND = fraction x T_melt, NSW and POTIM
    from the MD protocol."""
    tags = settings.vasp.incar("aimd")
    temperature = elements.get(element).temperature(regime)
    tags.update({
        "SYSTEM": f"TM23 {element} {regime} AIMD",
        "TEBEG": round(temperature, 4),
        "TEEND": round(temperature, 4),
        "POTIM": settings.md.timestep_fs,
        "NSW": settings.md.total_steps,
    })  # fmt: skip
    return {"SYSTEM": tags.pop("SYSTEM"), **tags}


def static_incar(element: str, regime: str, settings: Settings) -> dict:
    tags = settings.vasp.incar("static")
    return {"SYSTEM": f"TM23 {element} {regime} static label", **tags}


def write_aimd_inputs(directory: str | os.PathLike, supercell, regime: str, settings: Settings) -> dict[str, Path]:
    """INCAR, KPOINTS (Γ only), POSCAR, POTCAR or POTCAR.spec of one AIMD run, and inputs.json saying what
    they are. Returns {name: path}."""
    directory = Path(directory)
    element = supercell.element
    atoms = supercell.atoms
    temperature = elements.get(element).temperature(regime)
    files = {
        "INCAR": format_incar(aimd_incar(element, regime, settings),
                              header=f"tm23data generation: {element} {regime} ({temperature:.2f} K) NVT AIMD, "
                              f"{settings.md.total_steps} x {settings.md.timestep_fs:g} fs"),  # fmt: skip
        "KPOINTS": format_kpoints([1, 1, 1], "Gamma point only (AIMD)"),
        "POSCAR": format_poscar(atoms.get_chemical_symbols(), atoms.cell.array, atoms.positions,
                                f"TM23 {supercell.describe()}"),
        **potcar_files(element, settings.vasp),
    }  # fmt: skip
    written = {name: write_atomic(directory / name, text) for name, text in files.items()}
    meta = {"element": element, "regime": regime, "temperature_K": temperature, "stage": "aimd",
            "structure": supercell.to_dict(), "nsw": settings.md.total_steps}  # fmt: skip
    written["inputs.json"] = write_atomic(directory / "inputs.json", json.dumps(meta, indent=2))
    return written


#: Written by the static job script into each run folder: the :func:`static_inputs_hash` it ran with.
INPUTS_HASH_FILE = "INPUTS.sha256"


def static_inputs_hash(directory: str | os.PathLike) -> str:
    """sha256 (hex) of the static inputs a run in ``directory/runs/`` gets: INCAR, KPOINTS, and POTCAR or
    else POTCAR.spec, each as its name, a newline and its bytes. The static job script computes the same with
    ``sha256sum`` and records it per run, so a label made with other settings (e.g. after ``kpoints choose
    --apply`` or an INCAR change) is told apart from a current one and redone."""
    import hashlib

    directory = Path(directory)
    h = hashlib.sha256()
    potcar = "POTCAR" if (directory / "POTCAR").is_file() else "POTCAR.spec"
    for name in ("INCAR", "KPOINTS", potcar):
        h.update(name.encode() + b"\n")
        try:
            h.update((directory / name).read_bytes())
        except FileNotFoundError:
            pass  # the job script's ``cat`` of a missing file adds nothing either
    return h.hexdigest()


def stale_inputs(run: str | os.PathLike, current_hash: str) -> str:
    """Why the static run folder ``run`` was made with other inputs than those hashing to ``current_hash``
    ("" if it was not). Runs from before the hash was recorded are judged by their INCAR and KPOINTS copies."""
    run = Path(run)
    try:
        recorded = (run / INPUTS_HASH_FILE).read_text().strip()
    except OSError:
        recorded = None
    if recorded is not None:
        if recorded == current_hash:
            return ""
        return (f"{run}: labelled with other static inputs (INCAR/KPOINTS/POTCAR sha256 {recorded[:12]}) than the "
                f"current ones in {run.parent.parent} ({current_hash[:12]}); it must be run again")  # fmt: skip
    def read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    differ = [name for name in ("INCAR", "KPOINTS") if read(run / name) != read(run.parent.parent / name)]
    if differ:
        return (f"{run}: its {' and '.join(differ)} differ from the current ones in {run.parent.parent}; "
                "labelled with other settings, it must be run again")  # fmt: skip
    return ""


def frame_id(index: int, n_frames: int) -> str:
    """File name stem of frame ``index``: zero-padded to at least 4 digits (0000 ... 0999)."""
    return f"{index:0{max(4, len(str(n_frames - 1)))}d}"


def write_static_inputs(
    directory: str | os.PathLike,
    element: str,
    regime: str,
    frames,
    settings: Settings,
    *,
    kmesh: list[int] | None = None,
) -> dict:
    """Inputs of the static relabelling of ``frames`` (``ase.Atoms`` list, or (symbols, cell, positions)
    triples): shared INCAR, KPOINTS and POTCAR[.spec], and ``poscars/NNNN.vasp`` per frame. Returns a
    summary (mesh and where it came from, frame count, :func:`static_inputs_hash`). Finished runs in
    ``runs/`` are kept; those made with other inputs no longer count as done (see :func:`stale_inputs`)."""
    directory = Path(directory)
    frames = list(frames)
    if not frames:
        raise UsageError(f"{element} {regime}: no frames to label")
    symbols0, cell0, _ = _unpack(frames[0])
    mesh, mesh_source = (list(kmesh), "given") if kmesh is not None else static_kmesh(element, cell0, settings.vasp)
    if len({len(_unpack(f)[0]) for f in frames}) != 1:
        raise UsageError(f"{element} {regime}: frames of different sizes in one static set")
    incar = static_incar(element, regime, settings)
    header = f"tm23data generation: {element} {regime} static relabelling (energy, forces, stress)"
    nelect = static_nelect(element, len(symbols0), settings)
    if nelect is not None:
        incar["NELECT"] = nelect["NELECT"]
        header += (f"\nNELECT = (ZVAL {nelect['zval']:g} {nelect['change_per_atom']:+g}) x {nelect['natoms']} atoms "
                   f"(neutral: {nelect['neutral']:g})")  # fmt: skip; where ZVAL came from: inputs.json
    shared = {
        "INCAR": format_incar(incar, header=header),
        "KPOINTS": format_kpoints(mesh, f"static labels, {mesh_source}"),
        **potcar_files(element, settings.vasp),
    }  # fmt: skip
    for name, text in shared.items():
        write_atomic(directory / name, text)
    stale = {"POTCAR", "POTCAR.spec"} - set(shared)
    for name in stale:  # a POTCAR.spec left from an earlier run without pymatgen, or the other way round
        (directory / name).unlink(missing_ok=True)
    n = len(frames)
    tmp = directory / f".poscars.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for i, frame in enumerate(frames):
            symbols, cell, positions = _unpack(frame)
            text = format_poscar(symbols, cell, positions, f"TM23 {element} {regime} frame {i}")
            with open(tmp / f"{frame_id(i, n)}.vasp", "w") as fh:
                fh.write(text)
        _replace_dir(tmp, directory / "poscars")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    summary = {"element": element, "regime": regime, "stage": "static", "n_frames": n, "kmesh": mesh,
               "kmesh_source": mesh_source, "potcar": settings.vasp.potcar_symbol(element),
               "potcar_file": "POTCAR" if "POTCAR" in shared else "POTCAR.spec",
               "inputs_sha256": static_inputs_hash(directory)}  # fmt: skip
    if nelect is not None:
        summary["nelect"] = nelect
    write_atomic(directory / "inputs.json", json.dumps(summary, indent=2))
    return summary


def _unpack(frame):
    if hasattr(frame, "get_chemical_symbols"):
        return frame.get_chemical_symbols(), frame.cell.array, frame.positions
    return frame


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target`` (replacing it): rename the old one aside, rename, delete the old."""
    old = target.with_name(f".{target.name}.old.{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old)
