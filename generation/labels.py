"""Static labels: parse each static VASP run, check it, and reject what cannot be trusted.

A run is accepted only if it holds exactly one ionic step with energy, forces and stress (ISIF >= 2), its
electronic loop reached EDIFF, and its structure is the frame it was asked to label (a mixed-up folder is
caught). Units and signs come out as the data layer keeps them: eV, eV/Å, eV/Å³ with ASE's sign (VASP's
kBar negated and scaled by 0.1 GPa), energy = energy(sigma->0), free_energy = TOTEN.

SCF convergence: from OUTCAR, the "aborting loop because EDIFF is reached" line of the last ionic step;
from vasprun.xml (which has no such line), fewer electronic steps than NELM, or, at exactly NELM steps, a
last energy change below EDIFF (pymatgen's ``converged_electronic`` uses the first test alone).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .vaspout import TruncatedOutputError, VaspOutputError, VaspRun, read_outcar, read_vasprun, vasprun_is_complete

#: Status of one frame's label.
OK, UNCONVERGED, FAILED, MISSING = "ok", "unconverged", "failed", "missing"


@dataclass
class LabelResult:
    """The outcome of one static run; ``atoms`` (with a SinglePointCalculator) only when status is ok."""

    status: str
    message: str
    path: Path | None = None
    atoms: object | None = None
    n_scf: int | None = None
    program: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def parse_static(
    run: str | os.PathLike, expected=None, *, prefer: str = "vasprun", position_tol_A: float = 1e-3
) -> LabelResult:
    """Parse the static run in folder (or file) ``run``; ``expected`` (``ase.Atoms``) is the frame it should
    have labelled. Never raises for a bad run: the result says what is wrong."""
    run = Path(run)
    candidates = _outputs(run, prefer)
    if not candidates:
        return LabelResult(MISSING, f"{run}: no vasprun.xml or OUTCAR", run)
    problems = []
    for path in candidates:
        try:
            parsed = read_vasprun(path) if path.name.startswith("vasprun") else read_outcar(path)
        except (TruncatedOutputError, VaspOutputError) as err:
            problems.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 - any parser failure is a failed run, reported with its file
            problems.append(f"{path}: unreadable ({type(err).__name__}: {err})")
            continue
        return _check(parsed, expected, position_tol_A)
    return LabelResult(FAILED, "; ".join(problems), candidates[0])


def _outputs(run: Path, prefer: str) -> list[Path]:
    if run.is_file():
        return [run]
    vasprun, outcar = run / "vasprun.xml", run / "OUTCAR"
    order = [vasprun, outcar] if prefer == "vasprun" else [outcar, vasprun]
    found = [p for p in order if p.is_file()]
    # a vasprun.xml cut short is useless for a static run; an OUTCAR may still say why it stopped
    if vasprun in found and outcar in found and not vasprun_is_complete(vasprun):
        found = [outcar, vasprun]
    return found


def _check(parsed: VaspRun, expected, tol: float) -> LabelResult:
    path = parsed.path
    if len(parsed.steps) != 1:
        return LabelResult(FAILED, f"{path}: {len(parsed.steps)} ionic steps; a static label needs exactly one "
                                   "(IBRION = -1, NSW = 0)", path)  # fmt: skip
    step = parsed.steps[0]
    missing = [name for name in ("energy", "forces") if getattr(step, name) is None]
    if step.stress is None:
        missing.append("stress (the run needs ISIF >= 2)")
    if missing:
        return LabelResult(FAILED, f"{path}: no {', '.join(missing)}", path)
    nelm = parsed.parameters.get("NELM")
    ediff = parsed.parameters.get("EDIFF")
    converged = scf_converged(step.n_scf, nelm, ediff, step.scf_converged, step.scf_last_change)
    if converged and parsed.kind == "vasprun":  # the OUTCAR next to it says explicitly; it has the last word
        converged = _outcar_verdict(path.with_name("OUTCAR"), converged)
    if converged is False:
        return LabelResult(
            UNCONVERGED,
            f"{path}: electronic loop not converged ({step.n_scf} steps, NELM = {nelm}, EDIFF = {ediff} eV); the "
            "frame is rejected. Re-run it with more NELM or another ALGO, or leave it out",
            path, n_scf=step.n_scf,
        )  # fmt: skip
    if converged is None:
        return LabelResult(FAILED, f"{path}: cannot tell whether the electronic loop converged (no NELM/steps)", path)
    atoms = parsed.atoms(0)
    if expected is not None:
        problem = _compare(atoms, expected, tol)
        if problem:
            return LabelResult(FAILED, f"{path}: {problem}", path)
    if not np.isfinite(step.energy) or not np.all(np.isfinite(step.forces)) or not np.all(np.isfinite(step.stress)):
        return LabelResult(FAILED, f"{path}: non-finite energy, forces or stress", path)
    return LabelResult(OK, "", path, atoms, step.n_scf, parsed.program)


def scf_converged(n_scf, nelm, ediff, explicit: bool | None, last_change: float | None) -> bool | None:
    """True/False, or None when the output does not say."""
    if explicit is not None:
        return explicit
    if n_scf is None or nelm is None:
        return None
    if n_scf < nelm:
        return True
    if last_change is not None and ediff is not None:
        return last_change < ediff
    return False


def _outcar_verdict(outcar: Path, default: bool) -> bool:
    """Whether the OUTCAR's last electronic loop reached EDIFF (``default`` if there is no finished OUTCAR)."""
    from .vaspout import _outcar_scf

    try:
        text = outcar.read_text(errors="replace")
    except OSError:
        return default
    if "General timing and accounting informations for this job" not in text:
        return default
    scf = _outcar_scf(text)
    return bool(scf[-1][1]) if scf else default


def _compare(atoms, expected, tol: float) -> str:
    if len(atoms) != len(expected):
        return f"{len(atoms)} atoms, but the frame to label has {len(expected)}"
    if atoms.get_chemical_symbols() != expected.get_chemical_symbols():
        return "other species than the frame to label"
    if not np.allclose(atoms.cell.array, expected.cell.array, atol=tol):
        return "another cell than the frame to label"
    frac = np.linalg.solve(atoms.cell.array.T, (atoms.positions - expected.positions).T).T
    frac -= np.round(frac)
    shift = np.abs(frac @ atoms.cell.array).max()
    if shift > tol:
        return (f"positions differ from the frame to label by up to {shift:.3g} Å (tolerance {tol:g} Å): the run "
                "folder does not belong to this frame")  # fmt: skip
    return ""
