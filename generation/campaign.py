"""A VASP campaign folder: its layout, settings, inputs, and the state of its runs (rebuilt from the folders).

Job scripts: :mod:`.jobscripts`; submission and status: :mod:`.submission` (through :mod:`.scheduler`);
the archive: :mod:`.collect`.

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

import json
import logging
import os
from pathlib import Path

from .. import elements
from ..atomic import write_atomic
from ..errors import StepError
from ..provenance import utc_now
from . import jobscripts
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
                if campaign.derived_from:
                    raise CampaignError(f"{root} is a derived label campaign: a settings file would replace the "
                                        "settings its change is recorded against; use --set KEY=VALUE")  # fmt: skip
                campaign.settings = settings
        else:
            from .. import __version__

            meta = {"version": 1, "tm23data_version": __version__, "structures": {},
                    "created_utc": utc_now()}  # fmt: skip
            campaign = cls(root, settings or Settings(), [], meta)
        if changes:
            frozen = frozen_keys(changes)
            if campaign.derived_from and frozen:
                raise CampaignError(f"{', '.join(frozen)}: {root} is a derived label campaign, whose frames are its "
                                    "parent's; md.* and structure.* cannot change")  # fmt: skip
            campaign.settings = _absolute_paths(campaign.settings.override(changes))
            if campaign.derived_from:  # the archive's provenance must name every change from the parent
                from .derive import change_record

                campaign.meta.setdefault("change", {}).update(change_record(changes, campaign.settings))
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

    @property
    def derived_from(self) -> dict | None:
        """Where a derived label campaign's frames come from (:mod:`.derive`); None for a campaign with AIMD."""
        return self.meta.get("derived_from")

    def require_aimd(self, what: str) -> None:
        """Refuse ``what`` (an AIMD step) in a derived label campaign, saying how its labels run instead."""
        if self.derived_from:
            src = self.derived_from.get("campaign") or self.derived_from.get("archive")
            raise CampaignError(f"{self.root} is a derived label campaign (frames from {src}): it has no AIMD, so "
                                f"{what} does not apply; its labels run with `tm23 slurm submit {self.root} --stage "
                                "labels`")  # fmt: skip

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
                                   f"TM23 {supercell.describe()}"))  # fmt: skip
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

        self.require_aimd("writing AIMD inputs")
        written = []
        for el, regime in self.pairs(element_symbols, regimes):
            folder = self.aimd_dir(el, regime)
            if _segments(folder) and not force:
                log.warning("%s %s: the AIMD has started (%s); inputs left unchanged (use --force to rewrite)",
                            el, regime, folder)  # fmt: skip
                continue
            write_aimd_inputs(folder, self.structure(el), regime, self.settings)
            write_atomic(folder / "aimd.sbatch", jobscripts.aimd_script(self, el, regime))
            written.append(folder)
        return written

    def extract(self, element: str, regime: str, *, allow_truncated: bool = False, source: str = "auto",
                progress: bool = False):  # fmt: skip
        """Extract the protocol's frames from the AIMD segments into ``frames.xyz``/``frames.json``."""
        from .extract import extract_frames, find_segments, write_extracted

        self.require_aimd("extracting frames")
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
                         jobscripts.static_script(self, self.labels_dir(el, regime), f"tm23-{el}-{regime}-labels"))  # fmt: skip
            out.append(summary)
        return out

    def update_slurm_settings(self, changes: dict, *, save: bool = True) -> None:
        """Apply ``slurm.*`` setting changes (other sections change through ``tm23 vasp-inputs``); with ``save``
        store them and rewrite every job script, else only use them in memory (a dry run)."""
        changes = {k if k.startswith("slurm.") else f"slurm.{k}": v for k, v in changes.items()}
        bad = [k for k in changes if k.count(".") != 1]
        if bad:
            raise CampaignError(f"only slurm.* settings can change here ({', '.join(bad)}); use tm23 vasp-inputs")
        self.settings = _absolute_paths(self.settings.override(changes))
        if save:
            self.save()
            self.rewrite_scripts()

    def rewrite_scripts(self) -> list[Path]:
        """Write every job script again from the current settings and paths (after a settings change)."""
        written = []
        for el, regime in self.pairs():
            if (self.aimd_dir(el, regime) / "INCAR").is_file():
                written.append(write_atomic(self.aimd_dir(el, regime) / "aimd.sbatch", jobscripts.aimd_script(self, el, regime)))
            labels = self.labels_dir(el, regime)
            if (labels / "poscars").is_dir():
                written.append(write_atomic(labels / "labels.sbatch", jobscripts.static_script(self, labels, f"tm23-{el}-{regime}-labels")))
        for folder in sorted((self.root / "kpoints").glob("*/*/poscars")):
            el, mesh = folder.parent.parent.name, folder.parent.name
            written.append(write_atomic(folder.parent / "static.sbatch",
                                        jobscripts.static_script(self, folder.parent, f"tm23-{el}-kpoints-{mesh}")))  # fmt: skip
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
            write_atomic(folder / "static.sbatch", jobscripts.static_script(self, folder, f"tm23-{element}-kpoints-{folder.name}"))
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
            if not self.derived_from:
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

    def collect(self, archive_path, *, allow_missing: bool = False, workers: int = 1, progress: bool = True,
                scheduler=None):  # fmt: skip
        """Validate every label and write the archive (see :func:`.collect.collect`)."""
        from .collect import collect

        return collect(self, archive_path, allow_missing=allow_missing, workers=workers, progress=progress,
                       scheduler=scheduler)  # fmt: skip


def frozen_keys(changes: dict) -> list[str]:
    """The setting keys among ``changes`` that would change the frames (``md.*``, ``structure.*``): fixed in a
    derived label campaign, whose frames are its parent's."""
    return [k for k in changes if str(k).split(".")[0] in ("md", "structure")]


def _absolute_paths(settings: Settings) -> Settings:
    """``slurm.potcar_dir`` made absolute (against the current folder): jobs run elsewhere."""
    d = settings.slurm.potcar_dir
    if d and not os.path.isabs(os.path.expanduser(d)):
        return settings.override({"slurm.potcar_dir": str(Path(d).resolve())})
    return settings


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
