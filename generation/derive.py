"""Derived label sets (paper, Fig. 9): the frames of a campaign or an archive relabelled with another SIGMA or
NELECT, as a campaign of their own.

The paper recomputed the static labels of fixed TM23 frames with Methfessel-Paxton SIGMA = 1.0 and 2.0 eV
instead of 0.2 eV (Fig. 9a-c) and with electrons added or removed through VASP's NELECT (Fig. 9d-e; Au and Os
"swapped"). Here such a set is a new campaign folder NEWROOT: the parent's frames copied into
``NEWROOT/{El}/{regime}/frames.xyz``, the parent's settings with the change applied, and the static inputs and
job scripts written. Its labels run like any campaign's (``tm23 slurm submit NEWROOT --stage labels``, or the
array scripts by hand), and ``tm23 collect NEWROOT OUT.zip`` writes its own archive, whose PROVENANCE.json
names the parent and the change (``derived_from``, ``change``).

The parent is only read: no file of it is written, so none of its labels turns stale (changing SIGMA in the
parent's own settings instead would make every one of them stale and due to be run again).

NELECT: ``vasp.static_nelect_per_atom`` = electrons added per atom; NELECT = (ZVAL + change) x atoms of each
static set, ZVAL read from the POTCAR the jobs will use (:func:`.vasp.static_nelect`). A derived campaign has
no AIMD: its frames are the parent's, fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .. import elements
from ..atomic import write_atomic
from ..errors import UsageError
from ..provenance import utc_now
from .campaign import Campaign, CampaignError, frozen_keys
from .settings import Settings

#: The setting each named change of :func:`derive_campaign` sets.
CHANGE_KEYS = {"SIGMA": "vasp.incar_static.SIGMA", "NELECT_per_atom": "vasp.static_nelect_per_atom"}


def derive_campaign(parent: str | os.PathLike, new_root: str | os.PathLike, *, sigma: float | None = None,
                    nelect_per_atom: float | None = None, changes: dict | None = None, element_symbols=None,
                    progress: bool = False) -> Campaign:  # fmt: skip
    """Write the derived label campaign ``new_root`` from ``parent`` (a campaign folder with extracted frames,
    or a TM23-format zip): ``sigma`` = the static SIGMA (eV), ``nelect_per_atom`` = electrons added per atom,
    ``changes`` = further settings (``{"vasp.incar_static.ENCUT": 600}``; ``slurm.*`` says how to run, not what,
    and is not recorded as a change). Returns the new campaign, its static inputs written."""
    from .vasp import static_nelect

    named = {CHANGE_KEYS["SIGMA"]: sigma, CHANGE_KEYS["NELECT_per_atom"]: nelect_per_atom}
    settings_changes = {**(changes or {}), **{k: float(v) for k, v in named.items() if v is not None}}
    frozen = frozen_keys(settings_changes)
    if frozen:
        raise UsageError(f"{', '.join(frozen)}: a derived label set keeps the parent's frames; md.* and structure.* "
                         "cannot change")  # fmt: skip
    if all(k.startswith("slurm.") for k in settings_changes):
        raise UsageError("nothing to change: give --sigma EV, --nelect-per-atom N or --set vasp.incar_static.TAG=VALUE")
    source = _open_parent(parent, element_symbols)
    settings = source["settings"].override(settings_changes)
    change = change_record(settings_changes, settings)
    new_root = Path(new_root).resolve()
    _check_target(new_root, source)
    for el in source["elements"]:  # before anything is written: NELECT needs a readable POTCAR
        static_nelect(el, len(source["frames"][(el, elements.REGIMES[0])][0]), settings)
    from .. import __version__

    meta = {"version": 1, "tm23data_version": __version__, "created_utc": utc_now(),
            "structures": source["structures"], "derived_from": source["derived_from"], "change": change}  # fmt: skip
    existed = new_root.exists()  # and is empty (checked above)
    try:
        campaign = Campaign(new_root, settings, list(source["elements"]), meta)
        campaign.save()
        digests = {}
        for (el, regime), (images, frames_meta) in source["frames"].items():
            digests[f"{el}/{regime}"] = _write_frames(campaign.regime_dir(el, regime), images, frames_meta)
        campaign.meta["derived_from"]["frames_sha256"] = digests
        campaign.save()
        campaign.write_label_inputs(progress=progress)
        campaign.refresh_state()
    except BaseException:
        if new_root.exists():  # nothing half-made is left to be mistaken for a campaign (or block a rerun)
            shutil.rmtree(new_root)
            if existed:
                new_root.mkdir()
        raise
    return campaign


def change_record(changes: dict, settings: Settings) -> dict:
    """What ``changes`` (dotted setting keys) changed, with the values as ``settings`` holds them (typed, INCAR
    tags upper-cased); SIGMA and NELECT per atom under their short names, ``slurm.*`` left out (how to run,
    not what is computed)."""
    short = {v: k for k, v in CHANGE_KEYS.items()}
    tree = settings.to_dict()
    out = {}
    for key in changes:
        if key.startswith("slurm."):
            continue
        node, parts = tree, key.split(".")
        for i, part in enumerate(parts):
            if isinstance(node, dict) and part not in node and i == len(parts) - 1 and part.upper() in node:
                part = part.upper()  # INCAR tags are stored upper-case
            node = node.get(part) if isinstance(node, dict) else None
        incar = parts[:2] in (["vasp", "incar_static"], ["vasp", "incar_common"])
        canonical = ".".join(parts[:-1] + [parts[-1].upper()]) if incar else key
        out[short.get(canonical, canonical)] = node
    return out


def describe_change(change: dict) -> str:
    """``SIGMA = 1 eV, +0.1 electrons per atom`` (for messages and provenance)."""
    parts = []
    for key, value in change.items():
        if key == "SIGMA":
            parts.append(f"SIGMA = {value:g} eV")
        elif key == "NELECT_per_atom":
            parts.append(f"{value:+g} electrons per atom (NELECT)")
        else:
            parts.append(f"{key} = {value}")
    return ", ".join(parts)


def _open_parent(parent, element_symbols) -> dict:
    """Settings, elements, frames per (element, regime), structures and the ``derived_from`` record."""
    path = Path(parent)
    if path.is_dir():
        return _from_campaign(path, element_symbols)
    if path.is_file():
        return _from_archive(path, element_symbols)
    raise UsageError(f"{parent}: neither a campaign folder (with campaign.json) nor a TM23-format zip")


def _from_campaign(root: Path, element_symbols) -> dict:
    from .extract import read_extracted

    parent = Campaign.open(root)  # read only: no state is refreshed, nothing written
    els = parent.pairs(element_symbols)  # checks the elements belong to it
    frames = {}
    for el, regime in els:
        rdir = parent.regime_dir(el, regime)
        if not (rdir / "frames.xyz").is_file():
            raise CampaignError(f"{rdir}: no frames.xyz; the parent campaign's frames are extracted with `tm23 "
                                f"vasp-inputs {parent.root} --stage labels` after its AIMD")  # fmt: skip
        images, meta = read_extracted(rdir)
        frames[(el, regime)] = (images, {**meta, "copied_from": str(rdir / "frames.xyz")})
    symbols = list(dict.fromkeys(el for el, _ in els))
    archives = parent.meta.get("archives", [])
    record = {"kind": "campaign", "campaign": str(parent.root),
              "archive_md5": archives[-1]["md5"] if archives else None,
              "archive": archives[-1]["path"] if archives else None}  # fmt: skip
    if parent.meta.get("derived_from"):
        record["parent"] = {"derived_from": parent.meta["derived_from"], "change": parent.meta.get("change")}
    structures = {el: parent.meta.get("structures", {}).get(el) for el in symbols}
    return {"settings": parent.settings, "elements": symbols, "frames": frames, "structures": structures,
            "derived_from": record, "root": parent.root}  # fmt: skip


def _from_archive(path: Path, element_symbols) -> dict:
    from .. import manifest
    from ..archive import Archive
    from ..frames import Frames
    from ..hashes import file_md5

    with Archive(path) as archive:
        symbols = elements.resolve(element_symbols) if element_symbols else archive.elements()
        if not symbols:
            raise UsageError(f"{path}: no TM23 members; not a TM23-format archive")
        prov = archive.provenance() or {}
        frames, sizes = {}, set()
        for el in symbols:
            names = archive.members(el)
            for regime in elements.REGIMES:
                train, test = archive.regime_frames(el, regime)
                both = Frames.concat([train, test])
                images = [_bare(both.to_atoms(i)) for i in range(len(both))]
                meta = {"n_frames": len(images), "steps": [], "times_fs": [],
                        "sources": [names[f"{regime}_nequip_train"], names[f"{regime}_nequip_test"]],
                        "source_of_frame": [0] * len(train) + [1] * len(test),
                        "notes": [f"frames of {path.name} (train then test, in the archive's order)"]}  # fmt: skip
                frames[(el, regime)] = (images, meta)
                sizes.add((len(train), len(test)))
    md5 = file_md5(path)
    if len(sizes) != 1:
        raise UsageError(f"{path}: the regimes hold different numbers of train/test frames ({sorted(sizes)}); a "
                         "derived campaign needs one protocol for all (derive one element at a time)")  # fmt: skip
    n_train, n_test = sizes.pop()
    settings = Settings.from_dict(prov["settings"]) if isinstance(prov.get("settings"), dict) else Settings()
    settings = settings.override({"md.n_frames": n_train + n_test, "md.train_fraction": n_train / (n_train + n_test)})
    if settings.md.n_train != n_train:
        raise UsageError(f"{path}: {n_train} train / {n_test} test frames per regime cannot be reproduced by the "
                         "split rule (first round(train_fraction x frames) are train)")  # fmt: skip
    structures = {el: (prov.get("elements", {}).get(el) or {}).get("structure") for el in symbols}
    published = md5 == manifest.ARCHIVE_MD5
    record = {"kind": "archive", "archive": str(path.resolve()), "archive_md5": md5, "published": published,
              "what": prov.get("what", "published TM23 archive" if published else None)}  # fmt: skip
    if prov.get("derived_from"):  # a derived set derived again: keep the chain
        record["parent"] = {"derived_from": prov["derived_from"], "change": prov.get("change")}
    return {"settings": settings, "elements": list(symbols), "frames": frames, "structures": structures,
            "derived_from": record, "root": None}


def _bare(atoms):
    """Positions, cell and species only: the labels are what gets recomputed."""
    atoms.calc = None
    return atoms


def _check_target(new_root: Path, source: dict) -> None:
    if new_root.exists() and (not new_root.is_dir() or any(new_root.iterdir())):
        raise UsageError(f"{new_root}: exists and is not an empty folder; a derived label campaign starts in a new "
                         "one (run its labels with `tm23 slurm submit`, which resumes)")  # fmt: skip
    parent = source["root"]
    if parent is not None and (new_root == parent or parent in new_root.parents):
        raise UsageError(f"{new_root}: inside the parent campaign {parent}; put the derived campaign beside it, "
                         "so the parent is never written to")  # fmt: skip


def _write_frames(directory: Path, images, meta: dict) -> str:
    """``frames.xyz`` and ``frames.json`` of a regime (as :func:`.extract.write_extracted`); returns the sha256
    of ``frames.xyz``, the frames' identity in the provenance."""
    import io

    import ase.io

    if meta.get("copied_from"):  # a campaign's frames: the very bytes the parent labelled
        data = Path(meta["copied_from"]).read_bytes()
    else:
        buf = io.StringIO()
        ase.io.write(buf, images, format="extxyz")
        data = buf.getvalue().encode()
    write_atomic(directory / "frames.xyz", data)
    write_atomic(directory / "frames.json", json.dumps(meta, indent=1))
    return hashlib.sha256(data).hexdigest()
