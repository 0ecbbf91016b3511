"""The VASP pipeline on a SLURM cluster: a campaign folder, job scripts, submission, state and resume.

Layout of a campaign (``ROOT``)::

    campaign.json                 elements, full settings, structures (written by `tm23 vasp-inputs`)
    state.json                    the state manifest: AIMD steps done, label frames done/failed/missing, jobs
    structures/{El}.vasp|.json    the supercell with its vacancy, and how it was made
    {El}/{regime}/aimd/           INCAR KPOINTS POSCAR POTCAR|POTCAR.spec aimd.sbatch, segments seg000/ seg001/ ...
    {El}/{regime}/frames.xyz|json the 1000 frames extracted from the AIMD (positions, steps, times)
    {El}/{regime}/labels/         INCAR KPOINTS POTCAR|.spec poscars/NNNN.vasp labels.sbatch tasks/ runs/NNNN/
    kpoints/{El}/{mesh}/          k-point convergence runs (same layout as labels/)
    logs/                         SLURM output

Jobs. One AIMD job per element and regime; when it reaches its time limit, SLURM signals it
(``--signal=B:USR1@stop_margin_s``), the script writes a STOPCAR so VASP stops cleanly and writes CONTCAR,
and a resubmission starts the next segment from that CONTCAR with NSW = the steps still missing. The
labels of a regime are a job array: the frames still missing are cut into chunks of ``chunk_size``, one
line of frame ids per array task in ``tasks/<stamp>.txt``, submitted with ``--array=0-(n-1)%max_concurrent``.
Each task writes ``runs/NNNN/STATUS`` (done / unconverged / failed) atomically after each frame, and
``runs/NNNN/INPUTS.sha256`` (the static INCAR/KPOINTS/POTCAR it ran with): a "done" run whose inputs are
not the current ones is stale, i.e. not done (:func:`static_state`), and ``collect`` refuses its label.

Resume. ``state.json`` is rebuilt from the run folders on every ``submit``/``status``/``collect``;
``collect`` re-validates every "done" frame (parsing its output) and marks rejected ones failed, and
``submit`` covers only frames that are not done, skipping jobs still queued or running (``squeue``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import elements
from ..atomic import write_atomic
from ..errors import StepError, UsageError
from ..provenance import utc_now
from .settings import Settings

log = logging.getLogger(__name__)

STAGES = ("aimd", "labels", "kpoints")
DONE = "done"
STALE = "stale"  #: a label made with other INCAR/KPOINTS/POTCAR than the current ones


class CampaignError(StepError):
    """The campaign folder is missing something; the message says what to run first."""


# --------------------------------------------------------------------------------------------------
# The campaign folder


class Campaign:
    """A folder of VASP inputs, outputs and state for some elements (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, settings: Settings, element_symbols: list[str], meta: dict):
        self.root = Path(root).resolve()
        self.settings = settings
        self.elements = element_symbols
        self.meta = meta

    # -- creation --------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike) -> Campaign:
        root = Path(root)
        path = root / "campaign.json"
        if not path.is_file():
            raise CampaignError(
                f"{root}: no campaign.json; create the campaign with `tm23 vasp-inputs {root} ELEMENT...`"
            )
        meta = json.loads(path.read_text())
        return cls(root, Settings.from_dict(meta["settings"]), list(meta["elements"]), meta)

    @classmethod
    def create_or_update(cls, root: str | os.PathLike, element_symbols, settings: Settings | None = None,
                         changes: dict | None = None) -> Campaign:  # fmt: skip
        """Open ``root`` (or start it), add ``element_symbols``, apply settings ``changes``, save."""
        root = Path(root)
        if (root / "campaign.json").is_file():
            campaign = cls.open(root)
            if settings is not None:
                campaign.settings = settings
        else:
            from .. import __version__

            meta = {"version": 1, "tm23data_version": __version__, "structures": {},
                    "created_utc": utc_now()}  # fmt: skip
            campaign = cls(root, settings or Settings(), [], meta)
        if changes:
            campaign.settings = campaign.settings.override(changes)
        for el in elements.resolve(element_symbols) if element_symbols else []:
            if el not in campaign.elements:
                campaign.elements.append(el)
        campaign.save()
        return campaign

    def save(self) -> None:
        self.meta["elements"] = self.elements
        self.meta["settings"] = self.settings.to_dict()
        self.meta["updated_utc"] = utc_now()
        write_atomic(self.root / "campaign.json", json.dumps(self.meta, indent=2))

    # -- paths -----------------------------------------------------------------------------------

    def regime_dir(self, element: str, regime: str) -> Path:
        return self.root / element / regime

    def aimd_dir(self, element: str, regime: str) -> Path:
        return self.regime_dir(element, regime) / "aimd"

    def labels_dir(self, element: str, regime: str) -> Path:
        return self.regime_dir(element, regime) / "labels"

    def kpoints_dir(self, element: str) -> Path:
        return self.root / "kpoints" / element

    def pairs(self, element_symbols=None, regimes=None) -> list[tuple[str, str]]:
        els = elements.resolve(element_symbols) if element_symbols else self.elements
        unknown = [e for e in els if e not in self.elements]
        if unknown:
            raise CampaignError(
                f"{', '.join(unknown)} not in the campaign {self.root} (it has {', '.join(self.elements)})"
            )
        regs = list(regimes) if regimes else list(self.settings.md.regimes)
        return [(e, r) for e in els for r in regs]

    # -- structures and inputs -------------------------------------------------------------------

    def set_structure(self, supercell, *, force: bool = False) -> None:
        """Use ``supercell`` for its element; refused once that element's AIMD has started, unless ``force``
        (the runs already made stay as they are)."""
        from .vasp import format_poscar

        if self.started(supercell.element) and not force:
            raise CampaignError(f"{supercell.element}: its AIMD has started with another structure; pass --force "
                                "to replace it (the runs already made stay as they are)")  # fmt: skip
        atoms = supercell.atoms
        write_atomic(self.root / "structures" / f"{supercell.element}.vasp",
                     format_poscar(atoms.get_chemical_symbols(), atoms.cell.array, atoms.positions,
                                   f"TM23 {supercell.element} supercell with one vacancy"))  # fmt: skip
        self.meta.setdefault("structures", {})[supercell.element] = supercell.to_dict()
        self.save()

    def structure(self, element: str):
        """The campaign's supercell of ``element`` (made with the campaign's settings if not set yet)."""
        import ase.io

        from .structures import Supercell, build_supercell

        path = self.root / "structures" / f"{element}.vasp"
        info = self.meta.get("structures", {}).get(element)
        st = self.settings.structure
        stale = (
            info is not None
            and info["lattice_source"].startswith("lattice table")  # built here, not given by the user
            and (info["rule"], info["min_length_A"], info["seed"]) != (st.rule, st.min_length_A, st.seed)
            and not self.started(element)
        )
        if info is None or not path.is_file() or stale:
            supercell = build_supercell(element, st)
            self.set_structure(supercell)
            return supercell
        atoms = ase.io.read(path, format="vasp")
        return Supercell(element, atoms, tuple(info["repeat"]), info["n_sites"], info["vacancy_site"], info["rule"],
                         info["min_length_A"], info["seed"], info["lattice_source"], info["certainty"],
                         list(info.get("notes", [])))  # fmt: skip

    def started(self, element: str) -> bool:
        """Whether any AIMD of ``element`` has started (its structure is then fixed)."""
        return any(_segments(self.aimd_dir(element, r)) for r in elements.REGIMES)

    def write_aimd_inputs(self, element_symbols=None, regimes=None, *, force: bool = False) -> list[Path]:
        """AIMD inputs and job script of each (element, regime); a run that has started is left alone unless
        ``force``."""
        from .vasp import write_aimd_inputs

        written = []
        for el, regime in self.pairs(element_symbols, regimes):
            folder = self.aimd_dir(el, regime)
            if _segments(folder) and not force:
                log.warning("%s %s: the AIMD has started (%s); inputs left unchanged (use --force to rewrite)",
                            el, regime, folder)  # fmt: skip
                continue
            write_aimd_inputs(folder, self.structure(el), regime, self.settings)
            write_atomic(folder / "aimd.sbatch", aimd_script(self, el, regime))
            written.append(folder)
        return written

    def extract(self, element: str, regime: str, *, allow_truncated: bool = False, source: str = "auto",
                progress: bool = False):  # fmt: skip
        """Extract the protocol's frames from the AIMD segments into ``frames.xyz``/``frames.json``."""
        from .extract import extract_frames, find_segments, write_extracted

        folder = self.aimd_dir(element, regime)
        if not folder.is_dir():
            raise CampaignError(f"{element} {regime}: no AIMD folder {folder}; run `tm23 vasp-inputs {self.root} "
                                f"{element} --stage aimd` and the AIMD first")  # fmt: skip
        extracted = extract_frames(find_segments(folder), self.settings.md, source=source,
                                   allow_truncated=allow_truncated, progress=progress)  # fmt: skip
        write_extracted(self.regime_dir(element, regime), extracted)
        return extracted

    def write_label_inputs(self, element_symbols=None, regimes=None, *, allow_truncated: bool = False,
                           reextract: bool = False, progress: bool = True) -> list[dict]:  # fmt: skip
        """Extract frames where not done yet, then write the static inputs and the array job script."""
        from tqdm.auto import tqdm

        from .extract import read_extracted
        from .vasp import write_static_inputs

        out = []
        for el, regime in tqdm(self.pairs(element_symbols, regimes), desc="label inputs", disable=not progress,
                               leave=False):  # fmt: skip
            rdir = self.regime_dir(el, regime)
            if reextract or not (rdir / "frames.xyz").is_file():
                self.extract(el, regime, allow_truncated=allow_truncated, progress=progress)
            frames, _ = read_extracted(rdir)
            if len(frames) != self.settings.md.n_frames:
                raise CampaignError(f"{rdir / 'frames.xyz'}: {len(frames)} frames, the settings ask for "
                                    f"{self.settings.md.n_frames}; re-extract with --reextract")  # fmt: skip
            summary = write_static_inputs(self.labels_dir(el, regime), el, regime, frames, self.settings)
            write_atomic(self.labels_dir(el, regime) / "labels.sbatch",
                         static_script(self, self.labels_dir(el, regime), f"tm23-{el}-{regime}-labels"))  # fmt: skip
            out.append(summary)
        return out

    def update_slurm_settings(self, changes: dict, *, save: bool = True) -> None:
        """Apply ``slurm.*`` setting changes (other sections change through ``tm23 vasp-inputs``); with ``save``
        store them and rewrite every job script, else only use them in memory (a dry run)."""
        changes = {k if k.startswith("slurm.") else f"slurm.{k}": v for k, v in changes.items()}
        bad = [k for k in changes if k.count(".") != 1]
        if bad:
            raise CampaignError(f"only slurm.* settings can change here ({', '.join(bad)}); use tm23 vasp-inputs")
        self.settings = self.settings.override(changes)
        if save:
            self.save()
            self.rewrite_scripts()

    def rewrite_scripts(self) -> list[Path]:
        """Write every job script again from the current settings and paths (after a settings change)."""
        written = []
        for el, regime in self.pairs():
            if (self.aimd_dir(el, regime) / "INCAR").is_file():
                written.append(write_atomic(self.aimd_dir(el, regime) / "aimd.sbatch", aimd_script(self, el, regime)))
            labels = self.labels_dir(el, regime)
            if (labels / "poscars").is_dir():
                written.append(write_atomic(labels / "labels.sbatch", static_script(self, labels, f"tm23-{el}-{regime}-labels")))
        for folder in sorted((self.root / "kpoints").glob("*/*/poscars")):
            el, mesh = folder.parent.parent.name, folder.parent.name
            written.append(write_atomic(folder.parent / "static.sbatch",
                                        static_script(self, folder.parent, f"tm23-{el}-kpoints-{mesh}")))  # fmt: skip
        return written

    def write_kpoint_inputs(self, element: str, meshes, n_frames: int = 3) -> tuple[list[Path], int]:
        """Static inputs of ``n_frames`` extracted frames (spread evenly over the regimes extracted so far) at
        each mesh, with their job scripts, under ``kpoints/ELEMENT/<mesh>/``; returns (folders, frames used)."""
        import numpy as np

        from .extract import read_extracted
        from .kpoints import write_convergence_inputs

        pool = []
        for regime in elements.REGIMES:
            rdir = self.regime_dir(element, regime)
            if (rdir / "frames.xyz").is_file():
                pool += read_extracted(rdir)[0]
        if not pool:
            raise CampaignError(f"{element}: no extracted frames yet; run `tm23 vasp-inputs {self.root} {element} "
                                "--stage labels` after the AIMD (or at least one regime's AIMD)")  # fmt: skip
        pick = np.unique(np.linspace(0, len(pool) - 1, max(1, int(n_frames))).round().astype(int))
        folders = write_convergence_inputs(self.kpoints_dir(element), element, [pool[i] for i in pick], meshes,
                                           self.settings)  # fmt: skip
        for folder in folders:
            write_atomic(folder / "static.sbatch", static_script(self, folder, f"tm23-{element}-kpoints-{folder.name}"))
        return folders, len(pick)

    # -- state -----------------------------------------------------------------------------------

    def aimd_state(self, element: str, regime: str) -> dict:
        folder = self.aimd_dir(element, regime)
        total = self.settings.md.total_steps
        if not (folder / "INCAR").is_file():
            return {"status": "no inputs", "steps_done": 0, "steps_total": total, "segments": 0}
        segs = _segments(folder)
        nblock = int(self.settings.vasp.incar("aimd").get("NBLOCK", 1) or 1)
        done = sum(_count_configurations(s / "XDATCAR") for s in segs) * nblock
        marker = _read_status(folder / "STATUS")
        if done >= total:
            status = DONE
        elif marker.startswith("failed"):
            status = "failed"
        elif segs:
            status = "partial"
        else:
            status = "not started"
        return {"status": status, "steps_done": done, "steps_total": total, "segments": len(segs), "note": marker}

    def refresh_state(self, *, write: bool = True) -> dict:
        """Rebuild ``state.json`` from the run folders (keeping the submission history); ``write=False``
        only computes it."""
        old = self.read_state()
        state = {"version": 1, "updated_utc": utc_now(), "aimd": {}, "static": {},
                 "submissions": old.get("submissions", [])}  # fmt: skip
        for el, regime in self.pairs():
            key = f"{el}/{regime}"
            state["aimd"][key] = self.aimd_state(el, regime)
            labels = self.labels_dir(el, regime)
            if (labels / "poscars").is_dir():
                state["static"][str(labels.relative_to(self.root))] = static_state(labels)
        kroot = self.root / "kpoints"
        if kroot.is_dir():
            for folder in sorted(p for p in kroot.glob("*/*") if (p / "poscars").is_dir()):
                state["static"][str(folder.relative_to(self.root))] = static_state(folder)
        if write:
            write_atomic(self.root / "state.json", json.dumps(state, indent=1))
        return state

    def read_state(self) -> dict:
        path = self.root / "state.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is damaged; rebuilding it from the run folders", path)
            return {}

    def record_submission(self, record: dict) -> None:
        state = self.read_state() or {"version": 1}
        state.setdefault("submissions", []).append(record)
        write_atomic(self.root / "state.json", json.dumps(state, indent=1))

    # -- collection ------------------------------------------------------------------------------

    def collect(self, archive_path, *, allow_missing: bool = False, workers: int = 1, progress: bool = True):
        """Validate every label, mark rejected frames failed, and write the archive (see :func:`collect`)."""
        return collect(self, archive_path, allow_missing=allow_missing, workers=workers, progress=progress)


def _segments(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    segs = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("seg") and p.name[3:].isdigit()]
    return sorted(segs, key=lambda p: int(p.name[3:]))


def _count_configurations(xdatcar: Path) -> int:
    """Complete configurations in an XDATCAR, as :func:`~.vaspout.read_xdatcar` reads them: a
    "configuration=" line followed by one full coordinate line per atom (a line counts once its newline is
    written). A hard kill can land at any line end, so a header alone is not a finished MD step; counting
    it would make the next segment one step short. Same rule as ``count_configs`` in the AIMD job script.
    VASP writes configurations in order, so only the last one can be incomplete (and only it is parsed)."""
    import re

    from .vaspout import _three_floats

    if not xdatcar.is_file():
        return 0
    data = xdatcar.read_bytes()
    data = data[: data.rfind(b"\n") + 1]  # an unfinished last line is not data yet
    head = data.split(b"\n", 7)
    if len(head) < 8:
        return 0
    try:
        natoms = sum(int(x) for x in head[6].split())  # the counts line of the header
    except ValueError:
        return 0
    headers = list(re.finditer(rb"configuration *=", data))
    if not headers or not natoms:
        return 0
    tail = data[data.find(b"\n", headers[-1].end()) + 1 :].split(b"\n")[:natoms]
    complete = len(tail) == natoms and all(_three_floats(row.decode("ascii", "replace")) for row in tail)
    return len(headers) - (0 if complete else 1)


def _read_status(path: Path) -> str:
    try:
        return path.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def static_ids(folder: Path) -> list[str]:
    poscars = folder / "poscars"
    if not poscars.is_dir():
        raise CampaignError(
            f"{folder}: no poscars/; write the static inputs first (tm23 vasp-inputs ... --stage labels)"
        )
    return sorted(p.stem for p in poscars.glob("*.vasp"))


def static_state(folder: Path) -> dict:
    """Done / failed / missing frame ids of a static set from the STATUS markers. A run marked done with
    other inputs than the current INCAR/KPOINTS/POTCAR is stale: it counts as missing (to be redone), and
    is listed under ``stale`` too."""
    from .vasp import stale_inputs, static_inputs_hash

    ids = static_ids(folder)
    current = static_inputs_hash(folder)
    done, failed, missing, stale = [], {}, [], []
    for i in ids:
        marker = _read_status(folder / "runs" / i / "STATUS")
        if marker == DONE and stale_inputs(folder / "runs" / i, current):
            stale.append(i)
            missing.append(i)
        elif marker == DONE:
            done.append(i)
        elif marker:
            failed[i] = marker
        else:
            missing.append(i)
    return {"n_frames": len(ids), "done": _ranges(done), "n_done": len(done), "failed": failed,
            "n_failed": len(failed), "missing": _ranges(missing), "n_missing": len(missing),
            "stale": _ranges(stale), "n_stale": len(stale), "inputs_sha256": current}  # fmt: skip


def _ranges(ids: list[str]) -> str:
    """'0000-0099,0120' style compression of sorted zero-padded ids."""
    if not ids:
        return ""
    nums = sorted(int(i) for i in ids)
    width = len(ids[0])
    parts, start, prev = [], nums[0], nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"{start:0{width}d}" if start == prev else f"{start:0{width}d}-{prev:0{width}d}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


# --------------------------------------------------------------------------------------------------
# Job scripts


def _sbatch_header(campaign: Campaign, job_name: str, time_limit: str, *, array: bool, signal: int | None) -> list[str]:
    s = campaign.settings.slurm
    logs = campaign.root / "logs"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    for opt, value in (("account", s.account), ("partition", s.partition), ("qos", s.qos)):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines.append(f"#SBATCH --time={time_limit}")
    lines.append(f"#SBATCH --nodes={s.nodes}")
    for opt, value in (("ntasks-per-node", s.ntasks_per_node), ("cpus-per-task", s.cpus_per_task), ("mem", s.mem)):
        if value:
            lines.append(f"#SBATCH --{opt}={value}")
    lines.append(f"#SBATCH --output={logs}/%x-%A_%a.out" if array else f"#SBATCH --output={logs}/%x-%j.out")
    if signal:
        lines.append(f"#SBATCH --signal=B:USR1@{int(signal)}")
    for extra in s.extra_sbatch:
        lines.append(f"#SBATCH {extra}")
    lines.append("# written by tm23data.generation.slurm; submit with `tm23 slurm submit`, which keeps state.json")
    lines.append("set -uo pipefail")
    for module in s.modules:
        lines.append(f"module load {module}")
    lines += list(s.setup)
    lines.append(f"POTCAR_DIR={shlex.quote(s.potcar_dir or '')}")
    lines.append("CLEANUP=(" + " ".join(shlex.quote(c) for c in s.cleanup) + ")")
    lines.append(_POTCAR_FUNCTION)
    return lines


_POTCAR_FUNCTION = r"""tm23_potcar() {  # copy $1/POTCAR into $2, or build it from $1/POTCAR.spec and $POTCAR_DIR/NAME/POTCAR
  if [ -f "$1/POTCAR" ]; then cp "$1/POTCAR" "$2/POTCAR"; return; fi
  if [ ! -f "$1/POTCAR.spec" ]; then echo "tm23: no POTCAR or POTCAR.spec in $1" >&2; return 1; fi
  if [ -z "$POTCAR_DIR" ]; then
    echo "tm23: $1 has only POTCAR.spec ($(tr '\n' ' ' < "$1/POTCAR.spec")); set slurm.potcar_dir to the folder of PAW datasets (NAME/POTCAR) or configure pymatgen (PMG_VASP_PSP_DIR) and rewrite the inputs" >&2
    return 1
  fi
  : > "$2/POTCAR.tmp"
  while read -r name; do
    [ -n "$name" ] || continue
    if [ -f "$POTCAR_DIR/$name/POTCAR" ]; then cat "$POTCAR_DIR/$name/POTCAR" >> "$2/POTCAR.tmp"
    elif [ -f "$POTCAR_DIR/$name/POTCAR.gz" ]; then zcat "$POTCAR_DIR/$name/POTCAR.gz" >> "$2/POTCAR.tmp"
    else echo "tm23: no $POTCAR_DIR/$name/POTCAR" >&2; rm -f "$2/POTCAR.tmp"; return 1; fi
  done < "$1/POTCAR.spec"
  mv "$2/POTCAR.tmp" "$2/POTCAR"
}"""


def aimd_script(campaign: Campaign, element: str, regime: str) -> str:
    """The batch script of one AIMD (resumable: each run adds a segment continuing from the last CONTCAR)."""
    s = campaign.settings.slurm
    folder = campaign.aimd_dir(element, regime)
    nblock = int(campaign.settings.vasp.incar("aimd").get("NBLOCK", 1) or 1)
    lines = _sbatch_header(campaign, f"tm23-{element}-{regime}-aimd", s.time_aimd, array=False, signal=s.stop_margin_s)
    lines.append(f"AIMD_DIR={shlex.quote(str(folder))}")
    lines.append(f"TOTAL={campaign.settings.md.total_steps}  # MD steps of the protocol")
    lines.append(f"NBLOCK={nblock}")
    lines.append("run_vasp() {\n  " + s.vasp_command_aimd + "\n}")
    lines.append(_AIMD_BODY)
    return "\n".join(lines) + "\n"


_AIMD_BODY = r"""cd "$AIMD_DIR" || exit 1
shopt -s nullglob
count_configs() {  # complete configurations in XDATCAR $1: a "configuration=" line, then one full line per atom
  [ -f "$1" ] || { echo 0; return; }
  local partial=0
  if [ -n "$(tail -c 1 "$1")" ]; then partial=1; fi  # no newline at the end: the last line is unfinished
  awk -v partial="$partial" '
    function take(line, rec,   f, k, j) {
      k = split(line, f)
      if (rec == 7) { natoms = 0; for (j = 1; j <= k; j++) natoms += f[j]; return }
      if (line ~ /configuration *=/) { want = natoms; got = 0; return }
      if (want > 0) {
        if (k >= 3 && f[1] ~ num && f[2] ~ num && f[3] ~ num) { got++; if (got == want) { n++; want = 0 } }
        else want = 0
      }
    }
    BEGIN { num = "^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eEdD][-+]?[0-9]+)?$" }
    NR > 1 { take(prev, NR - 1) }
    { prev = $0 }
    END { if (NR > 0 && partial == 0) take(prev, NR); print n + 0 }' "$1"
}
count_steps() {  # complete configurations over all segments, times NBLOCK
  local n=0 s
  for s in seg[0-9][0-9][0-9]; do
    n=$((n + $(count_configs "$s/XDATCAR")))
  done
  echo $((n * NBLOCK))
}
set_status() { printf '%s\n' "$1" > STATUS.tmp && mv STATUS.tmp STATUS; echo "tm23: $1"; }
done_steps=$(count_steps)
if [ "$done_steps" -ge "$TOTAL" ]; then set_status done; exit 0; fi
segs=(seg[0-9][0-9][0-9])
start=POSCAR
next=${#segs[@]}
if [ "$next" -gt 0 ]; then
  last=${segs[$((next - 1))]}
  if [ -s "$last/CONTCAR" ]; then
    start="$last/CONTCAR"
  elif [ "$(count_configs "$last/XDATCAR")" = "0" ]; then
    echo "tm23: $last made no MD step; running it again"
    rm -rf "$last"; next=$((next - 1))
    if [ "$next" -gt 0 ] && [ -s "${segs[$((next - 1))]}/CONTCAR" ]; then start="${segs[$((next - 1))]}/CONTCAR"; fi
  else
    set_status "failed: $last stopped without a CONTCAR (killed hard?); inspect it, then remove it or copy a configuration to $last/CONTCAR and resubmit"
    exit 1
  fi
fi
seg=$(printf 'seg%03d' "$next")
remaining=$((TOTAL - done_steps))
mkdir -p "$seg"
cp INCAR KPOINTS "$seg/"
cp "$start" "$seg/POSCAR"
tm23_potcar . "$seg" || { set_status "failed: no POTCAR"; exit 1; }
sed -i "s/^NSW = .*/NSW = $remaining/" "$seg/INCAR"
echo "tm23: $seg starts from $start, $remaining of $TOTAL steps to go"
trap 'echo "LSTOP = .TRUE." > "$AIMD_DIR/$seg/STOPCAR"; echo "tm23: time limit near, asked VASP to stop"' USR1
( cd "$seg" && run_vasp ) > "$seg/vasp.log" 2>&1 &
pid=$!
rc=0
while true; do
  wait "$pid"; rc=$?
  kill -0 "$pid" 2>/dev/null || break  # wait was interrupted by the signal: keep waiting
done
for f in "${CLEANUP[@]}"; do rm -f "$seg/$f"; done
done_steps=$(count_steps)
if [ "$done_steps" -ge "$TOTAL" ]; then set_status done; exit 0; fi
if [ ! -s "$seg/CONTCAR" ]; then set_status "failed: VASP exited with status $rc and wrote no CONTCAR (see $AIMD_DIR/$seg/vasp.log)"; exit 1; fi
set_status "partial: $done_steps of $TOTAL steps; resubmit to continue"
exit 0"""


def static_script(campaign: Campaign, folder: Path, job_name: str) -> str:
    """The array job script of a static set (labels or k-point runs): task k runs the frame ids on line k+1
    of the tasks file given as the script's argument."""
    s = campaign.settings.slurm
    lines = _sbatch_header(campaign, job_name, s.time_labels, array=True, signal=None)
    lines.append(f"STATIC_DIR={shlex.quote(str(Path(folder).resolve()))}")
    lines.append("run_vasp() {\n  " + s.vasp_command + "\n}")
    lines.append(_STATIC_BODY)
    return "\n".join(lines) + "\n"


_STATIC_BODY = r"""TASKS="${1:?usage: sbatch --array=0-N static.sbatch TASKFILE}"
task="${SLURM_ARRAY_TASK_ID:?this script runs as an array task (sbatch --array=...)}"
ids=$(sed -n "$((task + 1))p" "$TASKS")
if [ -z "$ids" ]; then echo "tm23: no line $((task + 1)) in $TASKS" >&2; exit 1; fi
inputs_hash() {  # sha256 of INCAR, KPOINTS, POTCAR or else POTCAR.spec (as tm23data.generation.vasp.static_inputs_hash)
  local f p=POTCAR.spec
  [ -f "$STATIC_DIR/POTCAR" ] && p=POTCAR
  for f in INCAR KPOINTS "$p"; do printf '%s\n' "$f"; cat "$STATIC_DIR/$f" 2>/dev/null; done |
    sha256sum | cut -d ' ' -f 1
}
failures=0
for id in $ids; do
  run="$STATIC_DIR/runs/$id"
  hash=$(inputs_hash)
  if [ "$(head -n 1 "$run/STATUS" 2>/dev/null)" = "done" ]; then
    if [ "$(cat "$run/INPUTS.sha256" 2>/dev/null)" = "$hash" ]; then echo "tm23: $id already done"; continue; fi
    echo "tm23: $id was labelled with other INCAR/KPOINTS/POTCAR; running it again"
  fi
  rm -rf "$run"; mkdir -p "$run"
  printf '%s\n' "$hash" > "$run/INPUTS.sha256"
  cp "$STATIC_DIR/INCAR" "$STATIC_DIR/KPOINTS" "$run/"
  cp "$STATIC_DIR/poscars/$id.vasp" "$run/POSCAR"
  if tm23_potcar "$STATIC_DIR" "$run"; then
    ( cd "$run" && run_vasp ) > "$run/vasp.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then status="failed: VASP exited with status $rc (see vasp.log)"
    elif [ ! -f "$run/OUTCAR" ]; then status="failed: no OUTCAR"
    elif grep -q "aborting loop because EDIFF is reached" "$run/OUTCAR"; then status="done"
    else status="unconverged: the electronic loop did not reach EDIFF within NELM steps"; fi
  else
    status="failed: no POTCAR"
  fi
  for f in "${CLEANUP[@]}"; do rm -f "$run/$f"; done
  printf '%s\n' "$status" > "$run/STATUS.tmp" && mv "$run/STATUS.tmp" "$run/STATUS"
  echo "tm23: $id $status"
  [ "$status" = "done" ] || failures=$((failures + 1))
done
[ "$failures" -eq 0 ]"""


# --------------------------------------------------------------------------------------------------
# Submission


@dataclass
class Planned:
    """One sbatch call: what it runs and the command line."""

    stage: str
    what: str  # "Cu/cold" or a folder
    script: Path
    args: list[str]  # sbatch options and script arguments
    n_frames: int = 0
    tasks_file: Path | None = None
    tasks: list[list[str]] | None = None
    job_id: str | None = None

    def command(self, sbatch: str) -> list[str]:
        return [*shlex.split(sbatch), "--parsable", *self.args]


def plan(campaign: Campaign, stage: str, element_symbols=None, regimes=None, *, include_failed: bool = True,
         active_jobs: set[str] | None = None, write_state: bool = True) -> list[Planned]:  # fmt: skip
    """The sbatch calls that cover what is not done (nothing is submitted)."""
    if stage not in STAGES:
        raise UsageError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    state = campaign.refresh_state(write=write_state)
    active = active_jobs if active_jobs is not None else _active_jobs(campaign, state)
    busy = _busy(state, active)
    out: list[Planned] = []
    if stage == "aimd":
        for el, regime in campaign.pairs(element_symbols, regimes):
            key = f"{el}/{regime}"
            st = state["aimd"][key]
            if st["status"] == "no inputs":
                raise CampaignError(f"{key}: no AIMD inputs; run `tm23 vasp-inputs {campaign.root} {el} --stage aimd`")
            if st["status"] == DONE:
                continue
            if st["status"] == "failed" and not include_failed:
                continue
            if key in busy.get("aimd", set()):
                log.warning("%s: its AIMD job is still queued or running; not submitted again", key)
                continue
            script = campaign.aimd_dir(el, regime) / "aimd.sbatch"
            out.append(Planned("aimd", key, script, [str(script)]))
        return out
    folders = []
    if stage == "labels":
        folders = [(f"{el}/{r}", campaign.labels_dir(el, r)) for el, r in campaign.pairs(element_symbols, regimes)]
    else:
        els = elements.resolve(element_symbols) if element_symbols else campaign.elements
        for el in els:
            kdir = campaign.kpoints_dir(el)
            folders += [(f"{el}/kpoints/{p.name}", p) for p in sorted(kdir.iterdir()) if (p / "poscars").is_dir()] \
                if kdir.is_dir() else []  # fmt: skip
    s = campaign.settings.slurm
    for what, folder in folders:
        rel = str(folder.relative_to(campaign.root))
        if rel not in state["static"]:
            raise CampaignError(f"{what}: no static inputs in {folder}; run `tm23 vasp-inputs {campaign.root} "
                                f"--stage labels` (or `tm23 kpoints write`) first")  # fmt: skip
        st = state["static"][rel]
        todo = [i for i in static_ids(folder) if _todo(i, st, include_failed) and i not in busy.get(rel, set())]
        if not todo:
            continue
        chunks = [todo[k : k + s.chunk_size] for k in range(0, len(todo), s.chunk_size)]
        script = folder / ("labels.sbatch" if stage == "labels" else "static.sbatch")
        for start in range(0, len(chunks), s.max_array_size):
            part = chunks[start : start + s.max_array_size]
            array = f"0-{len(part) - 1}%{min(s.max_concurrent, len(part))}"
            out.append(Planned(stage, what, script, [f"--array={array}", str(script)], sum(map(len, part)),
                               None, part))  # fmt: skip
    return out


def _todo(frame: str, st: dict, include_failed: bool) -> bool:
    if frame in st["failed"]:
        return include_failed
    return frame not in _expand(st["done"])


def _expand(ranges: str) -> set[str]:
    out = set()
    for part in filter(None, ranges.split(",")):
        if "-" in part:
            a, b = part.split("-")
            out.update(f"{n:0{len(a)}d}" for n in range(int(a), int(b) + 1))
        else:
            out.add(part)
    return out


def _busy(state: dict, active: set[str]) -> dict[str, set[str]]:
    """What active (queued/running) jobs cover: {"aimd": {"Cu/cold"}, "<static folder>": {ids}}."""
    out: dict[str, set[str]] = {}
    for sub in state.get("submissions", []):
        if str(sub.get("job_id")) not in active:
            continue
        if sub["stage"] == "aimd":
            out.setdefault("aimd", set()).add(sub["what"])
        else:
            out.setdefault(sub["folder"], set()).update(sub.get("frames", []))
    return out


def _active_jobs(campaign: Campaign, state: dict) -> set[str]:
    ids = sorted({str(s["job_id"]) for s in state.get("submissions", []) if s.get("job_id")})
    if not ids:
        return set()
    cmd = [*shlex.split(campaign.settings.slurm.squeue), "-h", "-o", "%A", "-j", ",".join(ids)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        log.warning("cannot ask SLURM which jobs are still queued (%s); assuming none are", err)
        return set()
    # squeue exits non-zero when every id has left the queue ("Invalid job id specified")
    return {line.strip().split("_")[0] for line in res.stdout.splitlines() if line.strip()}


def submit(campaign: Campaign, stage: str, element_symbols=None, regimes=None, *, dry_run: bool = False,
           include_failed: bool = True, echo=print) -> list[Planned]:  # fmt: skip
    """Submit what is missing (``dry_run``: print the sbatch calls and write nothing)."""
    planned = plan(campaign, stage, element_symbols, regimes, include_failed=include_failed, write_state=not dry_run)
    if not planned:
        echo(f"nothing to submit for stage {stage}: everything is done or already queued")
        return planned
    sbatch = campaign.settings.slurm.sbatch
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    for k, p in enumerate(planned):
        if p.tasks is not None:
            p.tasks_file = p.script.parent / "tasks" / f"{stamp}-{k}.txt"
            p.args = [*p.args, str(p.tasks_file)]
        cmd = p.command(sbatch)
        if dry_run:
            echo(
                f"[dry run] {p.what}: {shlex.join(cmd)}"
                + (f"  ({p.n_frames} frames in {len(p.tasks)} tasks)" if p.tasks else "")
            )
            continue
        if p.tasks is not None:
            write_atomic(p.tasks_file, "".join(" ".join(t) + "\n" for t in p.tasks))
        (campaign.root / "logs").mkdir(parents=True, exist_ok=True)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise CampaignError(f"{cmd[0]}: command not found; is this a SLURM login node? (slurm.sbatch)") from None
        if res.returncode != 0:
            raise CampaignError(f"{shlex.join(cmd)} failed with status {res.returncode}: {res.stderr.strip()}")
        p.job_id = res.stdout.strip().split(";")[0]
        record = {"stage": p.stage, "what": p.what, "job_id": p.job_id, "script": str(p.script),
                  "submitted_utc": utc_now(), "command": cmd}  # fmt: skip
        if p.tasks is not None:
            record.update({"folder": str(p.script.parent.relative_to(campaign.root)), "tasks_file": str(p.tasks_file),
                           "frames": [i for t in p.tasks for i in t]})  # fmt: skip
        campaign.record_submission(record)
        echo(
            f"submitted {p.what} ({p.stage}): job {p.job_id}"
            + (f", {p.n_frames} frames in {len(p.tasks)} tasks" if p.tasks else "")
        )
    return planned


# --------------------------------------------------------------------------------------------------
# Collection


def collect(campaign: Campaign, archive_path, *, allow_missing: bool = False, workers: int = 1, progress: bool = True):
    """Parse and validate every static label, mark rejected frames failed (so the next submit re-runs them),
    and write the archive. Returns (md5, report). Without ``allow_missing`` any frame not ok is an error."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from ..frames import Frames
    from .assemble import base_provenance, write_generated_archive, write_md5_file
    from .extract import read_extracted
    from .labels import OK
    from .vasp import static_inputs_hash

    per_element: dict = {}
    report: dict = {}
    programs = set()
    el_prov: dict = {}
    md = campaign.settings.md
    for el in campaign.elements:
        per_element[el] = {}
        el_prov[el] = {"structure": campaign.meta.get("structures", {}).get(el), "regimes": {}}
        for regime in elements.REGIMES:
            labels = campaign.labels_dir(el, regime)
            frames, meta = read_extracted(campaign.regime_dir(el, regime))
            ids = static_ids(labels)
            if len(ids) != len(frames):
                raise CampaignError(
                    f"{labels}: {len(ids)} POSCARs for {len(frames)} extracted frames; rewrite the inputs"
                )
            runs = [labels / "runs" / i for i in ids]
            inputs = static_inputs_hash(labels)
            args = [(r, f, inputs) for r, f in zip(runs, frames)]
            if workers > 1:
                with ProcessPoolExecutor(workers) as pool:
                    results = list(tqdm(pool.map(_parse_one, args, chunksize=16), total=len(args),
                                        desc=f"{el} {regime} labels", disable=not progress, leave=False))  # fmt: skip
            else:
                results = [_parse_one(a) for a in tqdm(args, desc=f"{el} {regime} labels", disable=not progress,
                                                       leave=False)]  # fmt: skip
            bad = {}
            for i, res in zip(ids, results):
                if res.ok:
                    programs.add(res.program)
                    continue
                bad[i] = f"{res.status}: {res.message}"
                if res.status not in ("missing", STALE):  # tell the next submission to run it again
                    write_atomic(labels / "runs" / i / "STATUS", f"{res.status}: {res.message}\n")
            report[f"{el}/{regime}"] = {"ok": len(ids) - len(bad), "rejected": bad}
            if bad and not allow_missing:
                continue
            keep = [k for k, res in enumerate(results) if res.status == OK]
            train = [k for k in keep if k < md.n_train]
            test = [k for k in keep if k >= md.n_train]
            images = [results[k].atoms for k in range(len(results))]
            per_element[el][regime] = (Frames.from_atoms([images[k] for k in train]),
                                       Frames.from_atoms([images[k] for k in test]))  # fmt: skip
            el_prov[el]["regimes"][regime] = {
                "temperature_K": elements.get(el).temperature(regime),
                "frames": len(keep), "train": len(train), "test": len(test),
                "dropped_frames": sorted(bad), "md_steps": meta.get("steps", [])[:1] + meta.get("steps", [])[-1:],
                "static_inputs_sha256": inputs,
            }  # fmt: skip
    campaign.refresh_state()
    rejected = {k: v["rejected"] for k, v in report.items() if v["rejected"]}
    if rejected and not allow_missing:
        n = sum(len(v) for v in rejected.values())
        first = next(iter(rejected.items()))
        example = next(iter(first[1].items()))
        raise CampaignError(
            f"{n} frame(s) have no valid label ({', '.join(f'{k}: {len(v)}' for k, v in rejected.items())}); e.g. "
            f"{first[0]} frame {example[0]}: {example[1]}. Re-run them with `tm23 slurm submit {campaign.root} "
            "--stage labels` (only those frames are submitted), or pass --allow-missing to leave them out"
        )
    provenance = base_provenance(
        "vasp", campaign.settings,
        what="TM23-format archive regenerated with VASP through tm23data.generation (AIMD + static relabelling); "
             "not the published TM23 archive",
        labels={"method": "VASP static calculations", "programs": sorted(p for p in programs if p),
                "potcars": {el: campaign.settings.vasp.potcar_symbol(el) for el in campaign.elements}},
    )  # fmt: skip
    provenance["calculator"] = "vasp"
    provenance["elements"] = el_prov
    md5 = write_generated_archive(archive_path, per_element, campaign.settings, provenance)
    write_md5_file(archive_path, md5)
    campaign.meta.setdefault("archives", []).append({"path": str(Path(archive_path).resolve()), "md5": md5,
                                                     "created_utc": provenance["created_utc"]})  # fmt: skip
    campaign.save()
    return md5, report


def _parse_one(arg):
    """The label of one run, or STALE when it was computed with other static inputs than ``inputs`` (a
    label from an older INCAR/KPOINTS/POTCAR must not be packed under the current settings' provenance)."""
    from .labels import LabelResult, parse_static
    from .vasp import stale_inputs

    run, frame, inputs = arg
    if Path(run).is_dir():
        why = stale_inputs(run, inputs)
        if why:
            return LabelResult(STALE, why, Path(run))
    return parse_static(run, frame)
