"""NequIP learning curves across l_max (the paper's Fig. 6): train on the first N frames of the melt
trajectory (splits ``melt_100`` ... ``melt_900``), test on the melt test set, fit the force MAE to
error = a N^b in log-log space (:func:`tm23data.metrics.fit_power_law`), and plot it.

``features="paper"`` uses the paper's architecture per l_max (:mod:`.nequip_arch`: 64, 32, 16, 8, 4, 2
features for l_max 0..5, 4 layers, trainable Bessels, 16-wide readout, the embedding width whose weight count
is closest to Table 2); an int sets one feature count for all, a dict one per l_max, None keeps the
settings' ``num_features``. Runs that already have a result are reused (``resume``), so an
interrupted curve continues where it stopped.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..metrics import fit_power_law
from ..provenance import utc_now
from ..splits import LEARNING_CURVE_SIZES, carve_validation
from . import results
from .nequip import NequIPSettings, train_nequip
from .nequip_arch import paper_features, paper_settings

PAPER_FEATURES = {l_max: paper_features(l_max) for l_max in range(6)}  # Table 2's counts (not its caption's order)
PAPER_L_MAX = (0, 1, 2, 3)


def _features(features, l_max: int, default: int) -> int:
    if features is None:
        return default
    if features == "paper":
        return PAPER_FEATURES[l_max]
    if isinstance(features, dict):
        return int(features[l_max])
    return int(features)


def nequip_learning_curve(
    element: str,
    *,
    regime: str = "melt",
    sizes=LEARNING_CURVE_SIZES,
    l_maxes=PAPER_L_MAX,
    settings: NequIPSettings | None = None,
    features=None,
    out: str | os.PathLike = "tm23-learning-curve",
    resume: bool = True,
    steps: int | None = None,
    source=None,
    echo: bool = False,
) -> dict:
    """Train one NequIP model per (l_max, N); returns and writes (``OUT/learning_curve.json``, ``.csv``,
    ``.png``) the force MAEs and the power-law fit per l_max. Runs live in ``OUT/runs/``.

    ``steps`` (for budgets far below the paper's train-to-convergence protocol): give every model about the
    same number of optimizer steps, ``max_epochs = ceil(steps * batch_size / n_train)``, so that small
    training sets are not also under-trained."""
    base = settings or NequIPSettings()
    out = Path(out)
    runs = out / "runs"
    points, fits = [], {}
    for l_max in l_maxes:
        if features == "paper":
            s = paper_settings(int(l_max), element, base)
        else:
            s = replace(base, l_max=int(l_max), num_features=_features(features, int(l_max), base.num_features))
        for n in sizes:
            split = f"{regime}_{n}"
            if steps is not None:
                n_fit = len(carve_validation(np.arange(n), s.validation, s.seed)[0])
                s = replace(s, max_epochs=max(1, math.ceil(steps * s.batch_size / n_fit)))
            name = f"nequip_{element}_{split}_lmax{l_max}"
            res = results.reusable_result(runs / name, s.to_dict(), source) if resume else None
            if res is None:
                res = train_nequip(element, split, s, out=runs, name=name, overwrite=True, source=source, echo=echo)
            m = res.metrics
            points.append({"l_max": int(l_max), "n_train": int(n), "n_fit": res.data["n_frames"]["train"],
                           "num_features": res.data["settings"].get("num_features", s.num_features),
                           "n_weights": res.data["settings"].get("n_weights"),
                           "forces_mae": m["forces"]["mae"], "forces_percent": m["forces"]["percent"],
                           "energy_per_atom_mae": m["energy_per_atom"]["mae"],
                           "epoch_s_median": res.data["timing"].get("epoch_s_median"),
                           "max_epochs": res.data["settings"].get("max_epochs"),
                           "epochs": res.data["training"].get("epochs"), "run": str(res.path)})  # fmt: skip
        sel = [p for p in points if p["l_max"] == l_max]
        if len(sel) >= 2:
            law = fit_power_law([p["n_train"] for p in sel], [p["forces_mae"] for p in sel])
            fits[int(l_max)] = {"a": law.a, "b": law.b, "b_stderr": law.b_stderr if math.isfinite(law.b_stderr) else None,
                              "r2": law.r2}
    report = {
        "element": element,
        "regime": regime,
        "sizes": list(sizes),
        "l_maxes": list(l_maxes),
        "settings": base.to_dict(),
        "steps": steps,
        "features": features if not isinstance(features, dict) else {str(k): v for k, v in features.items()},
        "points": points,
        "fits": {str(k): v for k, v in fits.items()},
        "versions": results.versions(),
        "created": utc_now(),
    }
    out.mkdir(parents=True, exist_ok=True)
    results.atomic_write_json(out / "learning_curve.json", report)
    write_atomic(out / "learning_curve.csv", results.rows_to_csv(points))
    plot_learning_curve(report, out / "learning_curve.png")
    return report


def frame_count_axes(ax, sizes) -> None:
    """Log-log axes labelled in plain numbers: ticks at the training-set ``sizes``, no minor x labels."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())


def plot_learning_curve(report: dict, path: str | os.PathLike) -> Path:
    """Force MAE (meV/Å) vs training frames on log-log axes, one colour per l_max, with the fitted power
    laws, exponents and R² in the legend (Fig. 6 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.6), constrained_layout=True)
    colors = plt.get_cmap("viridis")
    l_maxes = sorted({p["l_max"] for p in report["points"]})
    for k, l_max in enumerate(l_maxes):
        sel = sorted((p for p in report["points"] if p["l_max"] == l_max), key=lambda p: p["n_train"])
        n = np.array([p["n_train"] for p in sel], dtype=float)
        err = 1000 * np.array([p["forces_mae"] for p in sel])
        c = colors(k / max(1, len(l_maxes) - 1))
        fit = report["fits"].get(str(l_max))
        label = f"l_max={l_max}" + (f": b={fit['b']:.2f}, R²={fit['r2']:.2f}" if fit else "")
        ax.loglog(n, err, "o", color=c, label=label)
        if fit:
            grid = np.geomspace(n.min(), n.max(), 50)
            ax.loglog(grid, 1000 * fit["a"] * grid ** fit["b"], "-", color=c, lw=1)
    frame_count_axes(ax, sorted({p["n_train"] for p in report["points"]}))
    ax.set_xlabel("training frames")
    ax.set_ylabel("force MAE (meV/Å)")
    ax.set_title(f"NequIP learning curves, {report['element']} ({report['regime']})", fontsize=9)
    ax.legend(fontsize=7)
    return results.save_figure(fig, path)
