"""k-point convergence of the static labels (paper: the first mesh with energy noise < 1 meV/atom and force
noise < 5 meV/Å).

Given static results of the same few frames at increasing meshes, each mesh is compared with the densest
one (the reference):

- energy noise = max over frames of |E_mesh/N - E_ref/N|  (eV/atom),
- force noise = the largest force-component difference over all frames (eV/Å; default ``force_metric="max"``:
  the stricter reading of the paper's "force noise below 5 meV/Å"); ``force_metric="rms"`` takes the max over
  frames of the RMS component difference instead.

The chosen mesh is the first (fewest k-points) that is within both tolerances and after which every denser
mesh is too, so a lucky coincidence on a coarse mesh is not taken. If only the reference passes, the
meshes tried were not dense enough to show convergence and the result says so (``converged=False``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError

ENERGY_TOL_EV_PER_ATOM = 1e-3
FORCE_TOL_EV_PER_A = 5e-3
_MESH_RE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


@dataclass
class MeshResults:
    """Static results of the same frames (in the same order) at one k-mesh."""

    mesh: tuple[int, int, int]
    energies_eV: list[float]  # total energy per frame
    natoms: list[int]
    forces: list[np.ndarray]  # (N, 3) eV/Å per frame


@dataclass
class KpointChoice:
    mesh: tuple[int, int, int]
    reference: tuple[int, int, int]
    converged: bool
    rows: list[dict] = field(default_factory=list)  # per mesh: energy/force noise and pass/fail
    message: str = ""

    def table(self) -> str:
        lines = ["mesh       k-points  dE max (meV/atom)  dF (meV/Å)  within tolerance"]
        for r in self.rows:
            mark = " <- chosen" if tuple(r["mesh"]) == self.mesh else ""
            lines.append(f"{'x'.join(map(str, r['mesh'])):9s}  {r['nkpts']:8d}  {1000 * r['energy_noise']:17.3f}  "
                         f"{1000 * r['force_noise']:10.3f}  {'yes' if r['ok'] else 'no'}{mark}")  # fmt: skip
        return "\n".join(lines)


def choose_kmesh(
    results: list[MeshResults],
    *,
    energy_tol: float = ENERGY_TOL_EV_PER_ATOM,
    force_tol: float = FORCE_TOL_EV_PER_A,
    force_metric: str = "max",
) -> KpointChoice:
    """The first converged mesh among ``results`` (any order; sorted by number of k-points)."""
    if len(results) < 2:
        raise UsageError("k-point convergence needs results at two meshes at least")
    if force_metric not in ("rms", "max"):
        raise UsageError(f"force_metric must be 'rms' or 'max', got {force_metric!r}")
    ordered = sorted(results, key=lambda r: (int(np.prod(r.mesh)), max(r.mesh), tuple(r.mesh)))
    ref = ordered[-1]
    n_frames = len(ref.energies_eV)
    for r in ordered:
        if len(r.energies_eV) != n_frames or list(r.natoms) != list(ref.natoms):
            raise UsageError(f"mesh {'x'.join(map(str, r.mesh))} has results for other frames than the reference "
                             f"{'x'.join(map(str, ref.mesh))}; every mesh needs the same frames")  # fmt: skip
    rows = []
    for r in ordered:
        de = max(abs(e / n - e0 / n) for e, e0, n in zip(r.energies_eV, ref.energies_eV, ref.natoms))
        if force_metric == "rms":
            df = max(float(np.sqrt(np.mean((f - f0) ** 2))) for f, f0 in zip(r.forces, ref.forces))
        else:
            df = max(float(np.abs(f - f0).max()) for f, f0 in zip(r.forces, ref.forces))
        rows.append({"mesh": list(r.mesh), "nkpts": int(np.prod(r.mesh)), "energy_noise": de, "force_noise": df,
                     "ok": de < energy_tol and df < force_tol})  # fmt: skip
    chosen = len(rows) - 1
    for k in range(len(rows) - 1, -1, -1):  # the longest run of passing meshes that ends at the reference
        if not rows[k]["ok"]:
            break
        chosen = k
    converged = chosen < len(rows) - 1
    message = (
        ""
        if converged
        else (
            f"only the densest mesh {'x'.join(map(str, ref.mesh))} is within tolerance of itself: convergence is not "
            "shown; add denser meshes"
        )
    )
    return KpointChoice(tuple(ordered[chosen].mesh), tuple(ref.mesh), converged, rows, message)


def parse_mesh(text: str) -> tuple[int, int, int]:
    m = _MESH_RE.match(text.strip())
    if not m:
        raise UsageError(f"k-mesh must look like 3x3x5, got {text!r}")
    mesh = tuple(int(x) for x in m.groups())
    if min(mesh) < 1:
        raise UsageError(f"k-mesh must be positive, got {text!r}")
    return mesh  # type: ignore[return-value]


def read_convergence_dir(root: str | os.PathLike) -> tuple[list[MeshResults], list[str]]:
    """Results from ``root/<mesh>/runs/<id>/`` (the layout :func:`write_convergence_inputs` makes): one
    :class:`MeshResults` per mesh folder, over the frames converged at every mesh; problems are listed."""
    from .labels import parse_static
    from .vasp import stale_inputs, static_inputs_hash

    root = Path(root)
    meshes = sorted((p for p in root.iterdir() if p.is_dir() and _MESH_RE.match(p.name)), key=lambda p: p.name)
    if not meshes:
        raise FileNotFoundError(f"{root}: no mesh folders (named like 3x3x5)")
    parsed: dict[tuple, dict[str, object]] = {}
    problems: list[str] = []
    for folder in meshes:
        mesh = parse_mesh(folder.name)
        parsed[mesh] = {}
        runs = folder / "runs"
        inputs = static_inputs_hash(folder)
        for run in sorted(runs.iterdir()) if runs.is_dir() else []:
            stale = stale_inputs(run, inputs)  # run with an older INCAR (e.g. ENCUT) than the mesh folder's
            if stale:
                problems.append(stale)
                continue
            result = parse_static(run)
            if result.ok:
                parsed[mesh][run.name] = result.atoms
            else:
                problems.append(result.message)
    common = sorted(set.intersection(*(set(v) for v in parsed.values()))) if parsed else []
    if not common:
        raise UsageError(f"{root}: no frame has a converged static result at every mesh"
                         + (f" ({problems[0]})" if problems else ""))  # fmt: skip
    out = []
    for mesh, by_id in parsed.items():
        atoms = [by_id[i] for i in common]
        out.append(MeshResults(mesh, [a.get_potential_energy() for a in atoms], [len(a) for a in atoms],
                               [a.get_forces() for a in atoms]))  # fmt: skip
    return out, problems


def write_convergence_inputs(root: str | os.PathLike, element: str, frames, meshes, settings) -> list[Path]:
    """Static inputs of ``frames`` at each of ``meshes`` under ``root/<mesh>/`` (same layout as the labels)."""
    from .vasp import write_static_inputs

    root = Path(root)
    out = []
    for mesh in meshes:
        mesh = parse_mesh(mesh) if isinstance(mesh, str) else tuple(mesh)
        folder = root / "x".join(map(str, mesh))
        write_static_inputs(folder, element, "kpoints", frames, settings, kmesh=list(mesh))
        out.append(folder)
    return out
