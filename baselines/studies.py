"""Studies across runs that ``tm23 report`` draws from results already written (no training here):

- force error vs melting temperature (the paper's Supplementary Note 2 / Supplementary Fig. 2): per model and
  split, the test force MAE (eV/Å) and % error of each metal against its experimental T_melt (K, the package's
  element table), with Pearson's correlation coefficient. The AIMD ran at fixed fractions of T_melt, so the
  force magnitudes, and with them the MAE, grow with T_melt; the % error divides that out (paper, Fig. 3).
- learning exponents per l_max (the paper's Fig. 6): runs on learning-curve splits (``melt_100`` ...
  ``melt_900``, any ``{regime}_N``) grouped by model, element, regime and architecture (l_max, features,
  layers, r_max); each group with two or more sizes is fitted as log(force MAE) = log a + b log N
  (:func:`tm23data.metrics.fit_power_law`), b with its least-squares standard error.

Rows are those of :func:`.report.gather` (flat result rows); the newest run wins where one (model, split,
element[, architecture]) has several.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import elements
from ..metrics import fit_power_law
from ..splits import learning_curve_size
from . import results

ARCHITECTURE = ("l_max", "num_features", "num_layers", "r_max")


def pearson(x, y) -> float | None:
    """Pearson's r of two equal-length samples; None with fewer than 3 points or no spread (undefined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or not np.ptp(x) or not np.ptp(y):
        return None
    dx, dy = x - x.mean(), y - y.mean()
    return float(dx @ dy / np.sqrt((dx @ dx) * (dy @ dy)))


# --- Supplementary Note 2: force error vs T_melt -------------------------------------------------------------


def melting_points(rows: list[dict]) -> list[dict]:
    """Per (model, split, element), the newest run's force MAE (eV/Å) and % error beside T_melt (K)."""
    latest: dict[tuple, dict] = {}
    for r in rows:
        if r.get("forces_mae") is not None:
            latest[(r["model"], r["split"], r["element"])] = r
    order = {e.symbol: k for k, e in enumerate(elements.all_elements())}
    points = [{"model": m, "split": s, "element": el, "melting_K": elements.get(el).melting_K,
               "forces_mae": r["forces_mae"], "forces_percent": r.get("forces_percent"),
               "published_data": r.get("published_data")} for (m, s, el), r in latest.items()]  # fmt: skip
    return sorted(points, key=lambda p: (p["model"], p["split"], order.get(p["element"], 99)))


def melting_correlations(points: list[dict]) -> list[dict]:
    """Per (model, split) with two or more metals: Pearson's r of force MAE and of force % error against
    T_melt (None below 3 metals), and the least-squares slope of the MAE (meV/Å per 1000 K)."""
    out = []
    for model, split in dict.fromkeys((p["model"], p["split"]) for p in points):
        mine = [p for p in points if (p["model"], p["split"]) == (model, split)]
        if len(mine) < 2:
            continue
        t = np.array([p["melting_K"] for p in mine])
        mae = np.array([p["forces_mae"] for p in mine])
        pct = [p["forces_percent"] for p in mine]
        slope = float(np.polyfit(t, mae, 1)[0]) * 1e6 if np.ptp(t) else None
        out.append({"model": model, "split": split, "metals": len(mine), "elements": " ".join(p["element"] for p in mine),
                    "r_forces_mae": pearson(t, mae),
                    "r_forces_percent": None if None in pct else pearson(t, pct),
                    "slope_meV_per_A_per_1000K": slope})  # fmt: skip
    return out


def plot_melting(points: list[dict], correlations: list[dict], path: str | os.PathLike) -> Path:
    """Force MAE (meV/Å) and force % error vs T_melt (K), one series per model and split, metals labelled,
    r in the legend (Supplementary Fig. 2 layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import MODEL_LABELS

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), constrained_layout=True)
    r_of = {(c["model"], c["split"]): c for c in correlations}
    for k, c in enumerate(correlations):
        mine = [p for p in points if (p["model"], p["split"]) == (c["model"], c["split"])]
        t = [p["melting_K"] for p in mine]
        for ax, key, scale, r_key in ((axes[0], "forces_mae", 1000.0, "r_forces_mae"),
                                      (axes[1], "forces_percent", 1.0, "r_forces_percent")):  # fmt: skip
            y = [None if p[key] is None else scale * p[key] for p in mine]
            r = r_of[(c["model"], c["split"])][r_key]
            label = f"{MODEL_LABELS.get(c['model'], c['model'])}, {c['split']}" + (f" (r = {r:.2f})" if r is not None else "")
            ax.plot(t, [np.nan if v is None else v for v in y], "o", color=f"C{k}", label=label)
            for p, ti, yi in zip(mine, t, y):
                if yi is not None:
                    ax.annotate(p["element"], (ti, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
    axes[0].set_ylabel("test force MAE (meV/Å)")
    axes[1].set_ylabel("test force % error (MAE / MAV x 100)")
    for ax in axes:
        ax.set_xlabel("experimental melting temperature (K)")
        ax.legend(fontsize=7)
    fig.suptitle("Force error vs melting temperature (paper: Supplementary Note 2)", fontsize=9)
    return results.save_figure(fig, path)


# --- Fig. 6: learning exponents per l_max --------------------------------------------------------------------


def learning_curve_points(rows: list[dict]) -> list[dict]:
    """The runs on learning-curve splits, newest per (model, element, regime, architecture, N)."""
    latest: dict[tuple, dict] = {}
    for r in rows:
        size = learning_curve_size(r["split"])
        if size is None or r.get("forces_mae") is None or r.get("l_max") is None:
            continue
        regime, n = size
        arch = tuple(r.get(k) for k in ARCHITECTURE)
        latest[(r["model"], r["element"], regime, arch, n)] = {
            "model": r["model"], "element": r["element"], "regime": regime, **dict(zip(ARCHITECTURE, arch)),
            "n_train": n, "forces_mae": r["forces_mae"], "forces_percent": r.get("forces_percent"), "path": r.get("path"),
        }  # fmt: skip
    return sorted(latest.values(), key=lambda p: (p["model"], p["element"], p["regime"], _arch_key(p), p["n_train"]))


def _arch_key(p: dict) -> tuple:
    return tuple((p.get(k) is None, p.get(k) or 0) for k in ARCHITECTURE)


def learning_exponents(points: list[dict]) -> list[dict]:
    """Per (model, element, regime, architecture) with two or more sizes: force MAE = a N^b fitted in log-log
    space, with b's standard error (None from two sizes, which a line always fits) and R²."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["model"], p["element"], p["regime"], *(p.get(k) for k in ARCHITECTURE)), []).append(p)
    out = []
    for key, mine in groups.items():
        if len({p["n_train"] for p in mine}) < 2:
            continue
        law = fit_power_law([p["n_train"] for p in mine], [p["forces_mae"] for p in mine])
        out.append({**dict(zip(("model", "element", "regime", *ARCHITECTURE), key)),
                    "sizes": " ".join(str(p["n_train"]) for p in mine), "a_eV_per_A": law.a, "b": law.b,
                    "b_stderr": law.b_stderr if np.isfinite(law.b_stderr) else None, "r2": law.r2})  # fmt: skip
    return out


def plot_learning_exponents(points: list[dict], fits: list[dict], path: str | os.PathLike) -> Path:
    """Left: force MAE (meV/Å) vs training frames on log-log axes with the fitted power laws; right: the
    exponent b ± its standard error vs l_max, one line per model, element, regime and features (Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8), constrained_layout=True)
    l_values = sorted({f["l_max"] for f in fits})
    cmap = plt.get_cmap("viridis")
    markers = {el: m for el, m in zip(dict.fromkeys(f["element"] for f in fits), "osD^v<>ph*")}
    series: dict[tuple, list[dict]] = {}
    for f in fits:
        mine = sorted((p for p in points if all(p.get(k) == f[k] for k in ("model", "element", "regime", *ARCHITECTURE))),
                      key=lambda p: p["n_train"])  # fmt: skip
        color = cmap(l_values.index(f["l_max"]) / max(1, len(l_values) - 1))
        n = np.array([p["n_train"] for p in mine], dtype=float)
        left.loglog(n, [1000 * p["forces_mae"] for p in mine], markers.get(f["element"], "o"), color=color,
                    label=f"{f['element']} l_max={f['l_max']}: b={f['b']:.2f}")  # fmt: skip
        grid = np.geomspace(n.min(), n.max(), 50)
        left.loglog(grid, 1000 * f["a_eV_per_A"] * grid ** f["b"], "-", color=color, lw=1)
        series.setdefault((f["model"], f["element"], f["regime"]), []).append(f)
    from .report import MODEL_LABELS

    for k, ((model, element, regime), mine) in enumerate(series.items()):
        mine = sorted(mine, key=lambda f: f["l_max"])
        err = [f["b_stderr"] or 0.0 for f in mine]
        right.errorbar([f["l_max"] for f in mine], [f["b"] for f in mine], yerr=err, marker=markers.get(element, "o"),
                       capsize=3, color=f"C{k}", label=f"{element} ({MODEL_LABELS.get(model, model)}, {regime})")  # fmt: skip
    from .learning_curve import frame_count_axes

    frame_count_axes(left, sorted({p["n_train"] for p in points if any(p["element"] == f["element"] for f in fits)}))
    left.set_xlabel("training frames N")
    left.set_ylabel("test force MAE (meV/Å)")
    left.legend(fontsize=6)
    right.set_xlabel("l_max")
    right.set_ylabel("learning exponent b (MAE = a N^b)")
    right.set_xticks(l_values)
    right.legend(fontsize=7)
    fig.suptitle("NequIP learning curves and exponents per l_max (paper: Fig. 6); bars: least-squares standard error",
                 fontsize=9)  # fmt: skip
    return results.save_figure(fig, path)
