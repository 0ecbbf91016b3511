"""The archive of a campaign: every static label parsed and validated, packed in the published TM23 format.

Only frames whose STATUS says done (with the current static inputs) and whose outputs parse are packed, the
same rule ``status`` and ``submit`` use. Frames of tasks still queued or running are reported as such and
never marked: their run folders belong to the live job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .. import elements
from ..atomic import write_atomic
from .campaign import DONE, STALE, Campaign, CampaignError, _read_status, static_ids

log = logging.getLogger(__name__)

RUNNING = "running"


def collect(campaign: Campaign, archive_path, *, allow_missing: bool = False, workers: int = 1, progress: bool = True,
            scheduler=None):  # fmt: skip
    """Parse and validate every static label, mark rejected finished frames failed (so the next submit re-runs
    them), and write the archive. Returns (md5, report). Without ``allow_missing`` any frame not ok is an error."""
    busy = _busy_frames(campaign, scheduler)
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from ..frames import Frames
    from .assemble import base_provenance, write_generated_archive
    from .extract import read_extracted
    from .labels import OK, LabelResult
    from .vasp import static_inputs_hash

    per_element: dict = {}
    report: dict = {}
    programs = set()
    el_prov: dict = {}
    md = campaign.settings.md
    for el in campaign.elements:
        per_element[el] = {}
        el_prov[el] = {"structure": campaign.meta.get("structures", {}).get(el), "regimes": {}}
        for regime in md.regimes:
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
            live = (busy or {}).get(str(labels.relative_to(campaign.root)), set())
            for k, (i, res) in enumerate(zip(ids, results)):
                if i in live or (busy is None and (labels / "runs" / i / "RUNNING").is_file()):
                    results[k] = res = LabelResult(RUNNING, "its job is still queued or running", labels / "runs" / i)
                if res.ok:
                    programs.add(res.program)
                    continue
                bad[i] = f"{res.status}: {res.message}"
                if res.status not in ("missing", STALE, RUNNING, "not done"):  # tell the next submission to run it again
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
            nelect = _inputs_summary(labels).get("nelect")
            if nelect:
                el_prov[el]["regimes"][regime]["nelect"] = nelect
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
    if campaign.derived_from:
        from .derive import describe_change

        change = campaign.meta.get("change", {})
        parent = campaign.derived_from.get("campaign") or campaign.derived_from.get("archive")
        provenance["derived_from"] = campaign.derived_from
        provenance["change"] = change
        provenance["what"] = (f"derived label set: the frames of {parent} relabelled with {describe_change(change)}; "
                              + provenance["what"])  # fmt: skip
    md5 = write_generated_archive(archive_path, per_element, campaign.settings, provenance)
    campaign.meta.setdefault("archives", []).append({"path": str(Path(archive_path).resolve()), "md5": md5,
                                                     "created_utc": provenance["created_utc"]})  # fmt: skip
    campaign.save()
    return md5, report


def _inputs_summary(folder: Path) -> dict:
    """The ``inputs.json`` written with a static set's inputs ({} if absent or damaged)."""
    import json

    try:
        return json.loads((folder / "inputs.json").read_text())
    except (OSError, ValueError):
        return {}


def _parse_one(arg):
    """The label of one run, or STALE when it was computed with other static inputs than ``inputs`` (a
    label from an older INCAR/KPOINTS/POTCAR must not be packed under the current settings' provenance)."""
    from .labels import LabelResult, parse_static
    from .vasp import stale_inputs

    run, frame, inputs = arg
    marker = _read_status(Path(run) / "STATUS")
    if marker and marker != DONE:  # the job said it failed: not packed, whatever its files look like
        return LabelResult("not done", f"its STATUS says {marker!r}", Path(run))
    if Path(run).is_dir() and not marker:
        return LabelResult("missing", f"{run}: no STATUS (not run, or still running)", Path(run))
    if Path(run).is_dir():
        why = stale_inputs(run, inputs)
        if why:
            return LabelResult(STALE, why, Path(run))
    return parse_static(run, frame)


def _busy_frames(campaign: Campaign, scheduler) -> dict | None:
    """Frames of the campaign's queued/running tasks per static folder; None where there is no scheduler to
    ask (a campaign copied off the cluster); a scheduler that fails to answer is an error."""
    from .scheduler import SchedulerError
    from .submission import activity, scheduler_for

    state = campaign.read_state()
    if not state.get("submissions"):
        return {}
    try:
        return activity(campaign, state, scheduler or scheduler_for(campaign)).busy
    except SchedulerError as err:
        if "command not found" in str(err):
            log.warning("%s; frames with a RUNNING marker are taken as running", err)
            return None
        raise
