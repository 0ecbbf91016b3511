"""Reading VASP output: vasprun.xml (streamed), XDATCAR and OUTCAR, with truncation detected and reported.

Units and signs on the way out are the data layer's: positions and cell in Å, energies in eV, forces in
eV/Å, stress in eV/Å³ with the ASE sign (VASP writes kBar with the opposite sign: ``s_ase = -0.1 GPa x
s_vasp``). ``energy`` is VASP's energy(sigma->0) and ``free_energy`` its TOTEN, exactly as ASE's readers
give them (including ASE's correction of the e_0_energy that VASP 5 writes wrongly in vasprun.xml).

Every error names the file, and the line where the problem is when there is one.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError


def _kbar() -> float:
    """kBar -> eV/Å³ (0.1 GPa, ASE's constant, so values match ASE's readers bit for bit)."""
    from ase.units import GPa

    return 0.1 * GPa


class VaspOutputError(DataError):
    """Unreadable or inconsistent VASP output; the message names the file (and line)."""


class TruncatedOutputError(VaspOutputError):
    """The output stops in the middle (the run was killed, is still running, or the file was cut)."""


@dataclass
class VaspStep:
    """One ionic step. Missing quantities are None."""

    positions: np.ndarray  # (N, 3) Cartesian, Å
    cell: np.ndarray  # (3, 3) Å, rows are lattice vectors
    energy: float | None = None  # eV, energy(sigma->0)
    free_energy: float | None = None  # eV, TOTEN
    forces: np.ndarray | None = None  # (N, 3) eV/Å
    stress: np.ndarray | None = None  # (3, 3) eV/Å³, ASE sign
    n_scf: int | None = None  # electronic steps taken
    scf_converged: bool | None = None  # when the file says so explicitly (OUTCAR)
    scf_last_change: float | None = None  # |dE| of the last electronic step, eV


@dataclass
class VaspRun:
    """What one output file holds."""

    path: Path
    kind: str  # "vasprun", "xdatcar", "outcar"
    symbols: list[str]
    steps: list[VaspStep]
    parameters: dict = field(default_factory=dict)  # upper-case INCAR-like tags that were found
    complete: bool = True  # False: truncated and accepted with allow_truncated
    truncation: str = ""  # what was dropped, when not complete
    program: str = ""  # e.g. "vasp 5.4.1"
    records_every: int = 1  # MD steps per record (XDATCAR with NBLOCK > 1)

    def __len__(self) -> int:
        return len(self.steps)

    def atoms(self, i: int = -1, labels: bool = True):
        """Step ``i`` as ``ase.Atoms`` with a SinglePointCalculator holding the labels present."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        from ..frames import full_3x3_to_voigt

        step = self.steps[i]
        atoms = Atoms(self.symbols, positions=step.positions, cell=step.cell, pbc=True)
        if labels:
            results = {}
            if step.energy is not None:
                results["energy"] = step.energy
            if step.free_energy is not None:
                results["free_energy"] = step.free_energy
            if step.forces is not None:
                results["forces"] = step.forces
            if step.stress is not None:
                results["stress"] = full_3x3_to_voigt(step.stress)
            if results:
                atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms


# --------------------------------------------------------------------------------------------------
# vasprun.xml


def vasprun_is_complete(path: str | os.PathLike) -> bool:
    """Cheap check: a finished vasprun.xml ends with ``</modeling>``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256))
            return b"</modeling>" in fh.read()
    except OSError:
        return False


def read_vasprun(path: str | os.PathLike, *, labels: bool = True, allow_truncated: bool = False) -> VaspRun:
    """Stream ``vasprun.xml`` (memory stays small for 11000-step MD runs).

    ``labels=False`` skips energies/forces/stress (AIMD extraction needs positions only). A file that stops
    early raises :class:`TruncatedOutputError` unless ``allow_truncated``, which keeps the complete steps.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kbar = _kbar()
    symbols: list[str] = []
    parameters: dict = {}
    incar: dict = {}
    steps: list[VaspStep] = []
    program = ""
    cell = None
    depth_tags: list[str] = []
    try:
        context = ET.iterparse(path, events=("start", "end"))
        for event, elem in context:
            if event == "start":
                depth_tags.append(elem.tag)
                continue
            depth_tags.pop()
            tag = elem.tag
            parent = depth_tags[-1] if depth_tags else None
            if tag == "generator":
                items = {i.get("name"): (i.text or "").strip() for i in elem.iter("i")}
                program = f"{items.get('program', 'vasp')} {items.get('version', '')}".strip()
            elif tag == "incar" and parent == "modeling":
                for i in elem.iter("i"):
                    incar[i.get("name", "").upper()] = _xml_value(i)
            elif tag == "parameters" and parent == "modeling":
                for i in elem.iter("i"):
                    parameters[i.get("name", "").upper()] = _xml_value(i)
                elem.clear()
            elif tag == "atominfo":
                arr = elem.find("array[@name='atoms']/set")
                symbols = [rc[0].text.strip() for rc in arr] if arr is not None else []
            elif tag == "structure" and parent == "modeling" and elem.get("name") == "initialpos":
                cell = _basis(elem)
            elif tag == "calculation" and parent == "modeling":
                steps.append(_calculation(elem, path, len(symbols), labels, parameters, kbar))
                elem.clear()
    except ET.ParseError as err:
        line = err.position[0] if hasattr(err, "position") else "?"
        inside = depth_tags[-1] if depth_tags else "the document"
        message = (
            f"{path}, line {line}: vasprun.xml stops inside <{inside}> after {len(steps)} complete ionic step(s) "
            f"({err}). The run was killed, is still running, or the file was cut."
        )
        if not allow_truncated:
            raise TruncatedOutputError(
                message + " Use the XDATCAR/OUTCAR of the same run, or allow truncated output "
                "(--allow-truncated) to keep the complete steps."
            ) from None
        return VaspRun(path, "vasprun", symbols, steps, {**incar, **parameters}, False, message, program)
    if not symbols:
        raise VaspOutputError(f"{path}: no <atominfo> block; not a vasprun.xml")
    del cell
    return VaspRun(path, "vasprun", symbols, steps, {**incar, **parameters}, True, "", program)


def _xml_value(item):
    text = (item.text or "").strip()
    kind = item.get("type", "float")
    try:
        if kind == "int":
            return int(text)
        if kind == "logical":
            return text.upper().startswith("T")
        if kind == "string":
            return text
        return float(text)
    except ValueError:
        return text


def _basis(structure) -> np.ndarray:
    rows = structure.find("crystal/varray[@name='basis']")
    return np.array([[float(x) for x in v.text.split()] for v in rows])


def _varray(elem, name: str) -> np.ndarray | None:
    arr = elem.find(f"varray[@name='{name}']")
    if arr is None:
        return None
    return np.array([[float(x) for x in v.text.split()] for v in arr])


def _calculation(elem, path: Path, natoms: int, labels: bool, parameters: dict, kbar: float) -> VaspStep:
    structure = elem.find("structure")
    if structure is None:
        raise VaspOutputError(f"{path}: a <calculation> has no <structure>")
    cell = _basis(structure)
    frac = _varray(structure, "positions")
    if frac is None or len(frac) != natoms:
        raise VaspOutputError(
            f"{path}: a <calculation> has {0 if frac is None else len(frac)} positions for {natoms} atoms"
        )
    step = VaspStep(positions=frac @ cell, cell=cell)
    scsteps = elem.findall("scstep")
    step.n_scf = len(scsteps)
    if len(scsteps) >= 2:
        e = [float(s.find("energy/i[@name='e_fr_energy']").text) for s in scsteps[-2:]]
        step.scf_last_change = abs(e[1] - e[0])
    if not labels:
        return step
    energy = elem.find("energy")
    if energy is not None and energy.find("i[@name='e_fr_energy']") is not None:
        free = float(energy.find("i[@name='e_fr_energy']").text)
        # As ASE: e_fr_energy of <calculation>/<energy> includes PSTRESS*V; e_0_energy there is wrong in
        # VASP 5, so take e_0 - e_fr from the last electronic step.
        pstress = float(parameters.get("PSTRESS", 0.0) or 0.0)
        if pstress:
            free -= pstress * kbar * abs(np.linalg.det(cell))
        de = 0.0
        if scsteps:
            last = scsteps[-1].find("energy")
            de = float(last.find("i[@name='e_0_energy']").text) - float(last.find("i[@name='e_fr_energy']").text)
        step.free_energy = free
        step.energy = free + de
    step.forces = _varray(elem, "forces")
    stress = _varray(elem, "stress")
    if stress is not None:
        step.stress = -kbar * stress
    return step


# --------------------------------------------------------------------------------------------------
# XDATCAR

_CONFIG_RE = re.compile(r"^\s*(Direct|Cartesian)\s+configuration\s*=\s*(\d+)", re.IGNORECASE)


def read_xdatcar(path: str | os.PathLike, *, allow_truncated: bool = False, records_every: int = 1) -> VaspRun:
    """Parse an XDATCAR (VASP 5 format, fixed or variable cell). Positions only; Cartesian Å.

    ``records_every``: MD steps per record (the run's NBLOCK). A last line without its newline is still
    being written (or was cut) and is not read, so a configuration counts only once its last coordinate line
    is whole: the same rule as the AIMD job's step count (``slurm._count_configurations``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    text = path.read_text()
    lines = text.splitlines()
    if text and not text.endswith(("\n", "\r")):
        lines = lines[:-1]
    n = len(lines)
    i = 0
    steps: list[VaspStep] = []
    symbols: list[str] = []
    cell = None
    natoms = 0

    def fail(line_no: int, message: str, truncated: bool = False):
        cls = TruncatedOutputError if truncated else VaspOutputError
        raise cls(f"{path}, line {line_no}: {message}")

    def header(at: int) -> int:
        nonlocal cell, symbols, natoms
        if at + 7 > n:
            fail(n, "the file ends inside a header", truncated=True)
        try:
            scale = float(lines[at + 1].split()[0])
            vectors = np.array([[float(x) for x in lines[at + k].split()[:3]] for k in (2, 3, 4)])
        except (ValueError, IndexError):
            fail(at + 2, "expected the scale factor and three lattice vectors of an XDATCAR header")
        if scale < 0:  # negative scale = volume
            scale = (-scale / abs(np.linalg.det(vectors))) ** (1 / 3)
        names = lines[at + 5].split()
        try:
            counts = [int(x) for x in lines[at + 6].split()]
        except ValueError:
            fail(at + 6, f"expected atom counts, found {lines[at + 6].strip()!r} (VASP 4 XDATCARs without the "
                         "element line are not supported)")  # fmt: skip
        if len(names) != len(counts):
            fail(at + 7, f"{len(names)} element names but {len(counts)} counts")
        new_symbols = [s for s, c in zip(names, counts) for _ in range(c)]
        if symbols and new_symbols != symbols:
            fail(at + 6, "the atoms change between headers")
        symbols = new_symbols
        natoms = len(symbols)
        cell = vectors * scale
        return at + 7

    i = header(0)
    truncated = ""
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        m = _CONFIG_RE.match(lines[i])
        if m is None:
            i = header(i)  # variable cell: a new header precedes each configuration
            continue
        cartesian = m.group(1).lower() == "cartesian"
        block = lines[i + 1 : i + 1 + natoms]
        if len(block) < natoms:
            truncated = _truncated_xdatcar(path, i + 1 + len(block), len(steps), allow_truncated)
            break
        try:
            coords = np.array([row.split()[:3] for row in block], dtype=float)
            if coords.shape != (natoms, 3):
                raise ValueError
        except ValueError:
            bad = next(k for k, row in enumerate(block) if not _three_floats(row))
            if i + 1 + natoms >= n or _CONFIG_RE.match(block[bad]):
                truncated = _truncated_xdatcar(path, i + 2 + bad, len(steps), allow_truncated)
                break
            fail(i + 2 + bad, f"expected 3 coordinates, found {block[bad].strip()!r}")
        positions = coords if cartesian else coords @ cell
        steps.append(VaspStep(positions=positions, cell=cell.copy()))
        i += 1 + natoms
    return VaspRun(path, "xdatcar", symbols, steps, {}, not truncated, truncated, "", records_every)


def _three_floats(row: str) -> bool:
    parts = row.split()
    if len(parts) < 3:
        return False
    try:
        [float(x) for x in parts[:3]]
    except ValueError:
        return False
    return True


def _truncated_xdatcar(path: Path, line: int, complete: int, allow: bool) -> str:
    """The note kept when truncated output is allowed; raises otherwise."""
    if not allow:
        raise TruncatedOutputError(
            f"{path}, line {line}: XDATCAR ends inside configuration {complete + 1} after {complete} complete "
            "configuration(s). The run was killed or is still running; allow truncated output (--allow-truncated) "
            "to keep the complete configurations."
        )
    return f"{path}, line {line}: the last configuration ({complete + 1}) was incomplete and was dropped"


# --------------------------------------------------------------------------------------------------
# OUTCAR

_ITER_RE = re.compile(r"Iteration\s+(\d+)\s*\(\s*(\d+)\)")


def read_outcar(path: str | os.PathLike, *, allow_truncated: bool = False) -> VaspRun:
    """Parse an OUTCAR with ASE's reader (positions, forces, energies, stress converted as ASE does), plus
    what ASE does not report: electronic steps per ionic step, whether EDIFF was reached, NELM/EDIFF/POTIM,
    and whether the run finished (VASP's closing timing summary)."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    text = path.read_text(errors="replace")
    parameters = _outcar_parameters(text)
    finished = "General timing and accounting informations for this job" in text
    scf = _outcar_scf(text)
    program = ""
    m = re.search(r"^\s*((?:fake)?vasp\.[\w.]+)", text, re.MULTILINE)  # fakevasp: tm23data's stand-in
    if m:
        program = m.group(1)
    try:
        images = ase.io.read(path, index=":", format="vasp-out")
    except Exception as err:  # ASE's OUTCAR parser raises assorted types on damaged files
        raise VaspOutputError(f"{path}: cannot parse the OUTCAR ({type(err).__name__}: {err})") from None
    steps = []
    from ..frames import voigt_to_full_3x3

    for k, atoms in enumerate(images):
        results = atoms.calc.results if atoms.calc is not None else {}
        stress = results.get("stress")
        n_scf, converged, change = scf[k] if k < len(scf) else (None, None, None)
        steps.append(VaspStep(
            positions=atoms.positions.copy(), cell=atoms.cell.array.copy(), energy=results.get("energy"),
            free_energy=results.get("free_energy"),
            forces=None if results.get("forces") is None else np.asarray(results["forces"], dtype=float),
            stress=None if stress is None else voigt_to_full_3x3(np.asarray(stress, dtype=float)),
            n_scf=n_scf, scf_converged=converged, scf_last_change=change,
        ))  # fmt: skip
    symbols = images[0].get_chemical_symbols() if images else []
    if not finished:
        message = (
            f"{path}: the OUTCAR does not end with VASP's timing summary after {len(steps)} complete ionic "
            "step(s); the run was killed, crashed or is still running."
        )
        if not allow_truncated:
            raise TruncatedOutputError(
                message + " Allow truncated output (--allow-truncated) to keep the complete steps."
            )
        return VaspRun(path, "outcar", symbols, steps, parameters, False, message, program)
    if not steps:
        raise VaspOutputError(f"{path}: no complete ionic step in the OUTCAR")
    return VaspRun(path, "outcar", symbols, steps, parameters, True, "", program)


def _outcar_parameters(text: str) -> dict:
    out = {}
    for name, pattern, kind in (
        ("NELM", r"NELM\s*=\s*(-?\d+)", int),
        ("EDIFF", r"EDIFF\s*=\s*([-+.\dEe]+)", float),
        ("POTIM", r"POTIM\s*=\s*([-+.\dEe]+)", float),
        ("NBLOCK", r"NBLOCK\s*=\s*(\d+)", int),
        ("IBRION", r"IBRION\s*=\s*(-?\d+)", int),
        ("NSW", r"NSW\s*=\s*(\d+)", int),
        ("ISIF", r"ISIF\s*=\s*(\d+)", int),
    ):
        m = re.search(pattern, text)
        if m:
            try:
                out[name] = kind(m.group(1))
            except ValueError:
                pass
    return out


def _outcar_scf(text: str) -> list[tuple[int, bool, float | None]]:
    """Per ionic step: (electronic steps, EDIFF reached?, None)."""
    out: list[list] = []
    current = None
    for line in text.splitlines():
        if "Iteration" in line:
            m = _ITER_RE.search(line)
            if m:
                ionic, elec = int(m.group(1)), int(m.group(2))
                if current is None or ionic != current:
                    out.append([elec, False, None])
                    current = ionic
                else:
                    out[-1][0] = max(out[-1][0], elec)
        elif "aborting loop because EDIFF is reached" in line and out:
            out[-1][1] = True
    return [tuple(x) for x in out]  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# INCAR


def read_incar(path: str | os.PathLike) -> dict:
    """INCAR tags (upper case) with values converted (bools, ints, floats); comments after ! or # dropped."""
    from .settings import parse_incar_value

    path = Path(path)
    out = {}
    for line_no, raw in enumerate(path.read_text().splitlines(), start=1):
        line = re.split(r"[!#]", raw, maxsplit=1)[0]
        for part in line.split(";"):
            if not part.strip():
                continue
            if "=" not in part:
                raise VaspOutputError(f"{path}, line {line_no}: expected TAG = VALUE, found {part.strip()!r}")
            key, value = part.split("=", 1)
            out[key.strip().upper()] = parse_incar_value(value)
    return out
