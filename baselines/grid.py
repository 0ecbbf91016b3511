"""FLARE descriptor grid search (paper: r_cut, n_max, l_max on a 200-frame training / 100-frame test
subset; the best model minimises the force MAE, "a combination of maximum likelihood and minimum force MAE"
with the force MAE deciding), and a plot in the layout of the paper's Fig. 7.

The subsets are deterministic: ``n_train`` frames evenly spaced over the split's training set and
``n_test`` evenly spaced over its test set (so with the ``full`` split all three regimes are covered).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..provenance import utc_now
from . import results
from .flare import FlareSettings, FlareSGP, evenly_spaced


def grid_subsets(selection, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the selection's train and test subsets: ``n_train`` and ``n_test`` evenly spaced."""
    sizes = selection.sizes()
    return evenly_spaced(sizes["train"], n_train), evenly_spaced(sizes["test"], n_test)


def flare_grid(
    element: str,
    *,
    split: str = "full",
    r_cuts=(4.0, 5.0, 6.0),
    n_maxes=(4, 8, 12),
    l_maxes=(2, 4),
    n_train: int = 200,
    n_test: int = 100,
    base: FlareSettings | None = None,
    source=None,
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """Train and test one FLARE model per (r_cut, n_max, l_max); returns ``{"rows": [...], "best": row, ...}``
    and, with ``out``, writes ``grid.csv``, ``grid.json`` and ``grid.png`` there."""
    from ..metrics import Evaluator
    from ..selection import Selection

    base = base or FlareSettings()
    selection = Selection.open(element, split, source=source)
    train_pos, test_pos = grid_subsets(selection, n_train, n_test)
    train, test = selection.frames("train").take(train_pos), selection.frames("test").take(test_pos)
    evaluator = Evaluator.from_frames(test, selection.regimes("test")[test_pos], name=f"{selection.name}/grid test")
    rows = []
    for r_cut, n_max, l_max in itertools.product(r_cuts, n_maxes, l_maxes):
        settings = replace(base, r_cut=float(r_cut), n_max=int(n_max), l_max=int(l_max))
        tic = time.perf_counter()
        model = FlareSGP(settings, np.unique(train.numbers)).fit(train)
        train_s = time.perf_counter() - tic
        pred = model.predict(test)
        if evaluator.stress is None:
            pred["stress"] = None
        m = evaluator.eval(pred)
        row = {"r_cut": float(r_cut), "n_max": int(n_max), "l_max": int(l_max),
               "descriptor_dim": model.descriptor_dim(), "n_sparse": model.n_sparse,
               "log_likelihood": model.likelihood, "train_s": train_s}  # fmt: skip
        for q in ("energy_per_atom", "forces", "stress"):
            row[f"{q}_mae"] = m[q]["mae"] if q in m else None
            row[f"{q}_percent"] = m[q]["percent"] if q in m else None
        rows.append(row)
        if progress:
            print(f"r_cut {r_cut} n_max {n_max} l_max {l_max}: force error {row['forces_percent']:.2f}% "
                  f"({train_s:.1f} s)", flush=True)  # fmt: skip
    best = min(rows, key=lambda r: r["forces_mae"])
    report = {
        "element": element,
        "split": split,
        "split_hash": selection.hash,
        "archive_md5": selection.store.archive_md5,
        "n_train": len(train_pos),
        "n_test": len(test_pos),
        "train_frame_ids": selection.frame_ids("train")[train_pos].tolist(),
        "test_frame_ids": selection.frame_ids("test")[test_pos].tolist(),
        "base_settings": base.to_dict(),
        "selection": "minimum force MAE on the test subset (paper: force MAE decides over likelihood)",
        "rows": rows,
        "best": best,
        "versions": results.versions(),
        "created": utc_now(),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "grid.csv", results.rows_to_csv(rows))
        results.atomic_write_json(out / "grid.json", report)
        plot_grid(rows, out / "grid.png", title=f"FLARE B2 grid, {element} ({split}, {len(train_pos)} train / "
                  f"{len(test_pos)} test frames)")  # fmt: skip
    return report


def plot_grid(rows: list[dict], path: str | os.PathLike, *, title: str = "") -> Path:
    """Force % error per (n_max, r_cut), one panel per l_max, blue (low) to red (high), as in Fig. 7."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    l_values = sorted({r["l_max"] for r in rows})
    n_values = sorted({r["n_max"] for r in rows})
    r_values = sorted({r["r_cut"] for r in rows})
    errors = [r["forces_percent"] for r in rows if r.get("forces_percent") is not None]
    vmin, vmax = (min(errors), max(errors)) if errors else (0, 1)
    fig, axes = plt.subplots(1, len(l_values), figsize=(1.2 + 1.1 * len(r_values) * len(l_values), 1.2 + 0.35 * len(n_values)),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    lookup = {(r["l_max"], r["n_max"], r["r_cut"]): r.get("forces_percent") for r in rows}
    image = None
    for ax, l_max in zip(axes[0], l_values):
        table = np.array([[np.nan if lookup.get((l_max, n, rc)) is None else lookup[(l_max, n, rc)] for rc in r_values]
                          for n in n_values])  # fmt: skip
        image = ax.imshow(table, cmap="coolwarm", vmin=vmin, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(table):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(r_values)), [f"{rc:g}" for rc in r_values])
        ax.set_yticks(range(len(n_values)), [str(n) for n in n_values])
        ax.set_xlabel("cutoff (Å)")
        ax.set_title(f"l_max = {l_max}")
    axes[0][0].set_ylabel("n_max")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label="force % error")
    if title:
        fig.suptitle(title, fontsize=9)
    return results.save_figure(fig, path)
