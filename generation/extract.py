"""Frames from AIMD output: drop the first 5 ps, keep every 50 fs (paper, Methods), across restarted segments.

A trajectory may be one run or several segments, each restarted from the previous one's CONTCAR (what the
SLURM job does when a run hits its time limit). Segments are joined in order; MD step k (1-based, over the
whole trajectory) is at time (k - 1) x POTIM, since step 1 is the starting structure (t = 0) in VASP's
output. The kept frames are the steps ``equilibration + j x stride`` for j = 1 ... n_frames (steps 1010,
1020, ..., 11000 with the paper's numbers: t = 5.045 ... 54.995 ps).

Each segment is read from (``source="auto"``): vasprun.xml when it is complete, else XDATCAR, else the
cut-short vasprun.xml, else OUTCAR; output cut short is an error naming the file and line unless ``allow_truncated``.
If a segment starts where the previous one ended (restarted from the last XDATCAR configuration instead
of CONTCAR), the repeated configuration is dropped and said so.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .settings import MDSettings
from .vaspout import VaspOutputError, VaspRun, read_incar, read_outcar, read_vasprun, read_xdatcar, vasprun_is_complete

log = logging.getLogger(__name__)

_SEGMENT_RE = re.compile(r"^seg(\d+)$")


class ExtractionError(DataError):
    """The trajectory cannot give the frames asked for; the message says which file and what to do."""


@dataclass
class Segment:
    path: Path  # the file read
    run: VaspRun
    timestep_fs: float | None
    steps_per_record: int

    @property
    def n_steps(self) -> int:
        return len(self.run.steps) * self.steps_per_record


@dataclass
class Extracted:
    """The kept frames of one trajectory and where each came from."""

    atoms: list  # ase.Atoms (positions and cell)
    steps: np.ndarray  # 1-based MD step of each frame over the whole trajectory
    times_fs: np.ndarray
    sources: list[str]  # file of each frame
    n_steps_available: int
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.atoms)

    def metadata(self) -> dict:
        return {
            "n_frames": len(self),
            "steps": self.steps.tolist(),
            "times_fs": self.times_fs.tolist(),
            "sources": sorted(set(self.sources)),
            "source_of_frame": [sorted(set(self.sources)).index(s) for s in self.sources],
            "n_steps_available": self.n_steps_available,
            "notes": self.notes,
        }


def find_segments(path: str | os.PathLike) -> list[Path]:
    """The segment folders of an AIMD folder (``seg000``, ``seg001``, ... in numeric order), or the folder
    itself when it holds the output directly."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such AIMD folder")
    segs = sorted((p for p in path.iterdir() if p.is_dir() and _SEGMENT_RE.match(p.name)),
                  key=lambda p: int(_SEGMENT_RE.match(p.name).group(1)))  # fmt: skip
    if segs:
        return segs
    if any((path / n).is_file() for n in ("vasprun.xml", "XDATCAR", "OUTCAR")):
        return [path]
    raise ExtractionError(f"{path}: no AIMD output (no segNNN folders, no vasprun.xml, XDATCAR or OUTCAR)")


def read_segment(path: str | os.PathLike, *, source: str = "auto", allow_truncated: bool = False) -> Segment:
    """Read one segment (a folder or a file); see the module docstring for the choice of file."""
    path = Path(path)
    if path.is_file():
        folder, chosen = path.parent, path
    else:
        folder, chosen = path, _choose(path, source)
    incar = read_incar(folder / "INCAR") if (folder / "INCAR").is_file() else {}
    name = chosen.name
    if name.startswith("vasprun"):
        run = read_vasprun(chosen, labels=False, allow_truncated=allow_truncated)
    elif name.startswith("OUTCAR"):
        run = read_outcar(chosen, allow_truncated=allow_truncated)
    elif name.startswith("XDATCAR"):
        run = read_xdatcar(chosen, allow_truncated=allow_truncated)
    else:
        raise ExtractionError(f"{chosen}: not a vasprun.xml, XDATCAR or OUTCAR")
    params = {**incar, **run.parameters}
    if params.get("IBRION", 0) not in (0, None):
        raise ExtractionError(f"{chosen}: IBRION = {params['IBRION']}, not molecular dynamics (IBRION = 0)")
    potim = params.get("POTIM")
    every = int(params.get("NBLOCK", 1) or 1) if run.kind == "xdatcar" else 1
    return Segment(chosen, run, float(potim) if potim is not None else None, every)


def _choose(folder: Path, source: str) -> Path:
    files = {n: folder / n for n in ("vasprun.xml", "XDATCAR", "OUTCAR")}
    if source != "auto":
        key = {"vasprun": "vasprun.xml", "xdatcar": "XDATCAR", "outcar": "OUTCAR"}.get(source)
        if key is None:
            raise UsageError(f"source must be auto, vasprun, xdatcar or outcar, got {source!r}")
        if not files[key].is_file():
            raise ExtractionError(f"{folder}: no {key}")
        return files[key]
    if files["vasprun.xml"].is_file() and vasprun_is_complete(files["vasprun.xml"]):
        return files["vasprun.xml"]
    for key in ("XDATCAR", "vasprun.xml", "OUTCAR"):
        if files[key].is_file():
            return files[key]
    raise ExtractionError(f"{folder}: no vasprun.xml, XDATCAR or OUTCAR")


def extract_frames(
    segments,
    md: MDSettings | None = None,
    *,
    source: str = "auto",
    allow_truncated: bool = False,
    duplicate_tol_A: float = 1e-4,
    progress: bool = False,
) -> Extracted:
    """Join ``segments`` (folders, files or :class:`Segment`) and keep the frames of the MD protocol."""
    from ase import Atoms
    from tqdm.auto import tqdm

    md = md or MDSettings()
    loaded: list[Segment] = []
    for seg in tqdm(list(segments), desc="reading AIMD segments", disable=not progress, leave=False):
        loaded.append(
            seg if isinstance(seg, Segment) else read_segment(seg, source=source, allow_truncated=allow_truncated)
        )
    if not loaded:
        raise ExtractionError("no AIMD segments given")
    notes: list[str] = []
    records = []  # (global step, positions, cell, file)
    symbols = loaded[0].run.symbols
    step = 0
    for seg in loaded:
        if seg.run.symbols != symbols:
            raise ExtractionError(f"{seg.path}: other atoms than {loaded[0].path}; segments of one trajectory "
                                  "must continue the same run")  # fmt: skip
        if seg.timestep_fs is not None and abs(seg.timestep_fs - md.timestep_fs) > 1e-9:
            raise ExtractionError(f"{seg.path}: POTIM = {seg.timestep_fs:g} fs, but the protocol's time step is "
                                  f"{md.timestep_fs:g} fs (md.timestep_fs)")  # fmt: skip
        if md.stride_steps % seg.steps_per_record:
            raise ExtractionError(f"{seg.path}: configurations are written every {seg.steps_per_record} steps "
                                  f"(NBLOCK), which does not divide the {md.stride_steps}-step frame interval")  # fmt: skip
        if not seg.run.complete:
            notes.append(seg.run.truncation)
        steps = seg.run.steps
        if not steps:
            notes.append(f"{seg.path}: no complete MD step (segment skipped)")
            continue
        if records and _same(records[-1][1], steps[0].positions, steps[0].cell, duplicate_tol_A):
            notes.append(f"{seg.path}: its first configuration repeats the last of the previous segment; dropped "
                         "(restarted from XDATCAR instead of CONTCAR?)")  # fmt: skip
            steps = steps[1:]
        for s in steps:
            step += seg.steps_per_record
            records.append((step, s.positions, s.cell, str(seg.path)))
    needed = md.sample_steps()
    if step < needed[-1]:
        have_ps = step * md.timestep_fs / 1000
        raise ExtractionError(
            f"the trajectory ({len(loaded)} segment(s), last {loaded[-1].path}) holds {step} MD steps "
            f"({have_ps:.2f} ps); {md.n_frames} frames every {md.interval_fs:g} fs after {md.equilibration_fs:g} fs "
            f"need {needed[-1]} steps ({md.duration_fs / 1000:.2f} ps). Resubmit the AIMD to continue it "
            "(`tm23 slurm submit ROOT --stage aimd`), or ask for fewer frames"
        )
    by_step = {r[0]: r for r in records}
    atoms, sources = [], []
    for s in needed:
        if s not in by_step:
            raise ExtractionError(f"MD step {s} is not in the output (configurations are written every "
                                  f"{loaded[0].steps_per_record} steps)")  # fmt: skip
        _, pos, cell, path = by_step[s]
        atoms.append(Atoms(symbols, positions=pos, cell=cell, pbc=True))
        sources.append(path)
    if step > needed[-1]:
        notes.append(f"{step - needed[-1]} MD steps beyond step {needed[-1]} were not used")
    for note in notes:
        log.info(note)
    return Extracted(atoms, needed, (needed - 1) * md.timestep_fs, sources, step, notes)  # step 1 is t = 0


def _same(pos_a, pos_b, cell, tol: float) -> bool:
    if pos_a.shape != pos_b.shape:
        return False
    frac = np.linalg.solve(cell.T, (pos_a - pos_b).T).T
    frac -= np.round(frac)
    return float(np.abs(frac @ cell).max()) < tol


def write_extracted(directory: str | os.PathLike, extracted: Extracted) -> Path:
    """``frames.xyz`` (positions and cell, extended XYZ) and ``frames.json`` (steps, times, sources), each
    written atomically."""
    import io

    import ase.io

    from ..atomic import write_atomic

    directory = Path(directory)
    buf = io.StringIO()
    ase.io.write(buf, extracted.atoms, format="extxyz")
    write_atomic(directory / "frames.xyz", buf.getvalue())
    write_atomic(directory / "frames.json", json.dumps(extracted.metadata(), indent=1))
    return directory / "frames.xyz"


def read_extracted(directory: str | os.PathLike) -> tuple[list, dict]:
    """The frames written by :func:`write_extracted` and their metadata."""
    import ase.io

    directory = Path(directory)
    path = directory / "frames.xyz"
    if not path.is_file():
        raise ExtractionError(
            f"{directory}: no frames.xyz; extract the AIMD frames first (tm23 vasp-inputs --stage labels)"
        )
    frames = ase.io.read(path, index=":", format="extxyz")
    meta = json.loads((directory / "frames.json").read_text()) if (directory / "frames.json").is_file() else {}
    if meta and meta.get("n_frames") != len(frames):
        raise VaspOutputError(f"{path}: {len(frames)} frames but frames.json says {meta.get('n_frames')}")
    return frames, meta
