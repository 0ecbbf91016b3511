"""FLARE % error per label set of the same frames (paper, Fig. 9a and 9e): one FLARE model (B2, kernel power
2) trained and tested on each archive's own labels, e.g. the labels at SIGMA = 0.2 eV and their ``tm23
derive-labels`` relabellings at 1.0 and 2.0 eV, or with electrons added. Frames, split, subsets and settings
are the same for every set, and the frames are checked to be the same (up to 1e-3 Å), so only the labels
differ; each set's % error is against its own test labels, as in the paper.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import write_atomic
from ..provenance import utc_now
from . import results
from .flare import FlareSettings, evenly_spaced, fit_and_score


def label_set_change(provenance: dict | None, md5: str) -> dict:
    """``{"label_set": ..., "sigma_eV": ..., "nelect_per_atom": ...}`` from an archive's provenance (the
    published archive: SIGMA = 0.2 eV, neutral)."""
    from .. import manifest

    if md5 == manifest.ARCHIVE_MD5:
        return {"label_set": "published TM23", "sigma_eV": 0.2, "nelect_per_atom": None}
    prov = provenance or {}
    vasp = (prov.get("settings") or {}).get("vasp") or {}
    sigma = (vasp.get("incar_static") or {}).get("SIGMA", (vasp.get("incar_common") or {}).get("SIGMA"))
    change = prov.get("change") or {}
    text = ", ".join(f"{k} = {v}" for k, v in change.items()) or "as generated"
    return {"label_set": text, "sigma_eV": sigma, "nelect_per_atom": vasp.get("static_nelect_per_atom")}


def flare_per_label_set(element: str, archives, *, split: str = "full", settings: FlareSettings | None = None,
                        n_train: int | None = None, n_test: int | None = None, out: str | os.PathLike | None = None,
                        progress: bool = False) -> dict:  # fmt: skip
    """Train and test FLARE on each of ``archives`` (zips, or names from ``tm23 archives``) for ``element`` and
    ``split``; ``n_train``/``n_test`` frames evenly spaced over the subsets (None: all). Returns ``{"rows":
    [...], ...}`` and, with ``out``, writes labelsets.csv, labelsets.json and report.md there."""
    from ..labeldiff import same_frames
    from ..metrics import Evaluator
    from ..registry import resolve
    from ..selection import Selection
    from ..tables import markdown_table

    settings = settings or FlareSettings()
    rows, reference = [], None
    for archive in archives:
        source = resolve(archive)
        selection = Selection.open(element, split, source=source, progress=False)
        sizes = selection.sizes()
        train_pos = evenly_spaced(sizes["train"], n_train or sizes["train"])
        test_pos = evenly_spaced(sizes["test"], n_test or sizes["test"])
        train, test = selection.frames("train").take(train_pos), selection.frames("test").take(test_pos)
        if reference is None:
            reference = (train, test, str(archive))
        else:
            for name, a, b in (("train", reference[0], train), ("test", reference[1], test)):
                same_frames(a, b, f"{element} {split} {name} of {reference[2]} and {archive}", 1e-3)
        evaluator = Evaluator.from_frames(test, selection.regimes("test")[test_pos], name=f"{selection.name} test")
        model, metrics, train_s = fit_and_score(settings, train, test, evaluator)
        row = {"archive": str(archive), "archive_md5": selection.store.archive_md5,
               **label_set_change(selection.store.origin.record, selection.store.archive_md5),
               "n_train": len(train_pos), "n_test": len(test_pos), "train_s": train_s}  # fmt: skip
        for q in ("energy_per_atom", "forces", "stress"):
            row[f"{q}_mae"] = metrics[q]["mae"] if q in metrics else None
            row[f"{q}_percent"] = metrics[q]["percent"] if q in metrics else None
        rows.append(row)
        if progress:
            print(f"{archive}: {row['label_set']}: force error {row['forces_percent']:.2f}% ({train_s:.1f} s)", flush=True)
    report = {"element": element, "split": split, "settings": settings.to_dict(), "rows": rows,
              "what": "FLARE trained and tested on each label set's own labels of the same frames (paper Fig. 9a, 9e)",
              "versions": results.versions(), "created": utc_now()}  # fmt: skip
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "labelsets.csv", results.rows_to_csv(rows))
        results.atomic_write_json(out / "labelsets.json", report)
        table = markdown_table(["archive", "label set", "SIGMA (eV)", "NELECT/atom", "train/test", "force % error",
                                "force MAE (eV/Å)", "energy MAE (eV/atom)", "stress % error"],
                               [[Path(r["archive"]).name, r["label_set"], r["sigma_eV"], r["nelect_per_atom"],
                                 f"{r['n_train']}/{r['n_test']}", _fmt(r["forces_percent"], ".2f"),
                                 _fmt(r["forces_mae"], ".4g"), _fmt(r["energy_per_atom_mae"], ".3g"),
                                 _fmt(r["stress_percent"], ".2f")] for r in rows])  # fmt: skip
        write_atomic(out / "report.md", f"# FLARE per label set: {element}, split {split}\n\n{report['what']}.\n\n"
                     f"{table}\n")  # fmt: skip
    return report


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)
