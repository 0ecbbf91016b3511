"""Grid searches of the baselines on the paper's smaller sets (200 training / 100 test frames), and their
reports (``grid.{csv,md,json,png}``, heat maps in the layout of the paper's Fig. 7).

- FLARE (:func:`flare_grid`): r_cut, n_max, l_max; the best model minimises the force MAE on the test subset
  (paper: "a combination of maximum likelihood and minimum force MAE", the force MAE deciding). The models
  are fitted in-process and kept only as rows.
- NequIP (:func:`nequip_grid`): any :class:`~.nequip.NequIPSettings` fields (paper: r_cut, layers, l_max,
  features, learning rate, force/energy weights); every point is a normal NequIP run folder
  (``OUT/runs/NAME``, :func:`~.nequip.train_nequip`), reused when it is finished with the same settings and
  continued when it was interrupted. The best point minimises the **validation** force MAE (paper, Methods:
  "chosen via minimization of the force error on the validation set"); test errors are reported beside it and
  never used to choose.

The subsets are deterministic: ``n_train`` frames evenly spaced over the split's training set and
``n_test`` evenly spaced over its test set (so with the ``full`` split all three regimes are covered); for
NequIP they are the split ``SPLIT_NxM`` (:func:`tm23data.splits.get_split`), so its runs resolve the same frames
in nequip-train's process, and its validation frames (10 %) are carved from the N.
"""

from __future__ import annotations

import itertools
import os
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import overrides
from ..atomic import write_atomic
from ..errors import StepError, UsageError
from ..provenance import utc_now
from ..splits import evenly_spaced
from ..tables import markdown_table
from . import results
from .flare import FlareSettings, fit_and_score
from .nequip import MONITOR, NequIPSettings, train_nequip


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
        model, m, train_s = fit_and_score(settings, train, test, evaluator)
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
        title = f"FLARE B2 grid, {element} ({split}, {len(train_pos)} train / {len(test_pos)} test frames)"
        write_grid_report(out, report, ["r_cut", "n_max", "l_max", "descriptor_dim"], title,
                          criterion=("forces_mae", "test F MAE (meV/Å), chooses"))  # fmt: skip
        plot_grid(rows, Path(out) / "grid.png", title=title)
    return report


def write_grid_report(out, report: dict, keys: list[str], title: str, *, criterion: tuple[str, str]) -> None:
    """``grid.csv`` (every column of every row), ``grid.json`` (the report) and ``grid.md`` (a table of the
    grid keys, the choosing error and the test errors, the best row marked) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, best = report["rows"], report["best"]
    write_atomic(out / "grid.csv", results.rows_to_csv(rows))
    results.atomic_write_json(out / "grid.json", report)
    column, label = criterion
    tests = [("energy_per_atom_percent", "test E % (raw)", _g), ("forces_mae", "test F MAE (meV/Å)", _milli),
             ("forces_percent", "test F %", _g), ("stress_percent", "test S %", _g)]  # fmt: skip
    tests = [t for t in tests if t[0] != column]  # the choosing column is shown once, first
    header = [*keys, label, *(t[1] for t in tests), "train (s)", "best"]
    body = [[*(r.get(k) for k in keys), _milli(r.get(column)), *(f(r.get(c)) for c, _, f in tests), _g(r.get("train_s")),
             "**best**" if r is best else ""] for r in rows]  # fmt: skip
    md = [f"# {title}", "", f"Selection: {report['selection']}.", "", markdown_table(header, body), "",
          "![](grid.png)", ""]  # fmt: skip
    write_atomic(out / "grid.md", "\n".join(md))


def _milli(x) -> str:
    return "-" if x is None else f"{1000 * x:.4g}"


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def plot_grid(rows: list[dict], path: str | os.PathLike, *, title: str = "") -> Path:
    """Force % error per (n_max, r_cut), one panel per l_max, blue (low) to red (high), as in Fig. 7."""
    return plot_heatmaps(rows, path, x="r_cut", y="n_max", panels=("l_max",), value="forces_percent",
                         label="force % error", title=title, x_label="cutoff (Å)")  # fmt: skip


def plot_heatmaps(rows: list[dict], path: str | os.PathLike, *, x: str, y: str | None, panels=(), value: str,
                  label: str, title: str = "", scale: float = 1.0, x_label: str | None = None,
                  best: dict | None = None) -> Path:  # fmt: skip
    """``value`` x ``scale`` of every row on (``y``, ``x``) grids, one panel per combination of the ``panels``
    keys, on one colour scale (blue low, red high), each cell annotated; the ``best`` row is outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def ordered(key):
        return sorted({r.get(key) for r in rows}, key=lambda v: (v is None, v if v is not None else 0))

    panels = tuple(panels)
    panel_values = sorted({tuple(r.get(k) for k in panels) for r in rows},
                          key=lambda t: tuple((v is None, v if v is not None else 0) for v in t))  # fmt: skip
    x_values, y_values = ordered(x), (ordered(y) if y else [None])
    cells = {(tuple(r.get(k) for k in panels), r.get(y) if y else None, r.get(x)): r for r in rows}
    numbers = [scale * r[value] for r in rows if r.get(value) is not None]
    vmin, vmax = (min(numbers), max(numbers)) if numbers else (0, 1)
    width = max(5.0, 1.6 + 1.1 * len(x_values) * len(panel_values))  # in: room for the title and colour bar
    fig, axes = plt.subplots(1, len(panel_values), squeeze=False, constrained_layout=True,
                             figsize=(width, max(2.8, 1.4 + 0.35 * len(y_values))))  # fmt: skip
    image = None
    for ax, pv in zip(axes[0], panel_values):
        table = np.full((len(y_values), len(x_values)), np.nan)
        for (i, yv), (j, xv) in itertools.product(enumerate(y_values), enumerate(x_values)):
            r = cells.get((pv, yv, xv))
            if r is not None and r.get(value) is not None:
                table[i, j] = scale * r[value]
                if best is not None and r is best:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=2))
        image = ax.imshow(table, cmap="coolwarm", vmin=vmin, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(table):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(x_values)), [_tick(v) for v in x_values])
        ax.set_yticks(range(len(y_values)), [_tick(v) for v in y_values] if y else [])
        ax.set_xlabel(x_label or x)
        if panels:
            ax.set_title(", ".join(f"{k} = {_tick(v)}" for k, v in zip(panels, pv)), fontsize=8)
    if y:
        axes[0][0].set_ylabel(y)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=label)
    if title:
        fig.suptitle(textwrap.fill(title, int(width * 12)), fontsize=9)
    return results.save_figure(fig, path)


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- NequIP -------------------------------------------------------------------------------------------------

#: Settings a NequIP grid may not vary: they choose the validation frames, which must be the same for every
#: point for their errors to be compared.
FIXED_IN_GRID = ("validation", "seed")
NEQUIP_SELECTION = ("minimum validation force MAE (nequip's val0_epoch/forces_mae of each run's kept checkpoint; "
                    "paper, Methods); test errors are shown, never used to choose")  # fmt: skip


def parse_grid(items) -> dict[str, list[str]]:
    """``["r_max=4,5", "l_max=0,1"]`` -> ``{"r_max": ["4", "5"], "l_max": ["0", "1"]}`` (``--set-grid``; a JSON
    list ``KEY=[4, 5]`` works too). Keys keep their order; a key given twice or with no value is an error."""
    grid: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--set-grid takes KEY=V1,V2,..., got {item!r}")
        values = overrides.text_items(text, f"--set-grid {key}")
        if not isinstance(values, list) or not values:
            raise UsageError(f"--set-grid {key}: no values (give KEY=V1,V2,...)")
        if key in grid:
            raise UsageError(f"--set-grid {key} given twice; give all its values at once: {key}=V1,V2,...")
        grid[key] = values
    return grid


def grid_settings(base: NequIPSettings, grid: dict[str, list]) -> list[tuple[dict, NequIPSettings]]:
    """Every point of the grid (the product of the keys' values, in the keys' order) as (its typed values,
    its settings): ``base`` with the point applied through :mod:`tm23data.overrides`, so each value is
    converted to its field's type and the settings' own checks run (an unknown key names the valid ones)."""
    if not grid:
        raise UsageError("a grid needs at least one key with values, e.g. --set-grid l_max=0,1")
    fixed = [k for k in grid if k in FIXED_IN_GRID]
    if fixed:
        raise UsageError(f"{', '.join(fixed)} cannot vary in a grid: they choose the validation frames, and the "
                         "points are compared on the same ones (set them with --set for the whole grid)")  # fmt: skip
    points = []
    for combo in itertools.product(*grid.values()):
        settings = overrides.apply(base, dict(zip(grid, combo)), label="NequIP")
        points.append(({k: getattr(settings, k) for k in grid}, settings))
    seen: dict[tuple, dict] = {}
    for values, _ in points:
        key = tuple(values.values())
        if key in seen:
            raise UsageError(f"the grid repeats the point {values} (values that convert to the same setting)")
        seen[key] = values
    return points


def grid_run_name(element: str, split: str, values: dict) -> str:
    """``nequip_Cu_full_200x100_r_max-4.0_l_max-0``: the run folder of one point (safe characters only)."""
    parts = [f"{k}-{_safe(v)}" for k, v in values.items()]
    return "_".join([f"nequip_{element}_{split}", *parts])


def _safe(value) -> str:
    text = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


def nequip_grid(
    element: str,
    grid: dict[str, list],
    *,
    split: str = "full",
    n_train: int | None = 200,
    n_test: int | None = 100,
    base: NequIPSettings | None = None,
    out: str | os.PathLike = "tm23-grid-nequip",
    overwrite: bool = False,
    source=None,
    echo: bool = False,
    progress: bool = False,
) -> dict:
    """Train one NequIP run per grid point on ``n_train`` / ``n_test`` frames evenly spaced over ``split``
    (None or 0: the split as it is), choose the best by validation force MAE, and write ``OUT/grid.{csv,md,json,png}``
    (runs in ``OUT/runs/``). Returns ``{"rows": [...], "best": row, ...}``.

    ``grid`` maps NequIPSettings fields to their values (text or typed); ``base`` holds every other setting.
    A point whose run is finished with the same settings on the same archive is reused, an interrupted one
    continues from its checkpoint (rerun the same call), one finished with other settings is retrained;
    ``overwrite`` retrains every point."""
    from ..selection import Selection

    base = base or NequIPSettings()
    points = grid_settings(base, grid)
    if bool(n_train) != bool(n_test):
        raise UsageError("give both n_train and n_test (or neither, for the whole split)")
    run_split = f"{split}_{int(n_train)}x{int(n_test)}" if n_train else split
    selection = Selection.open(element, run_split, validation=base.validation, seed=base.seed, source=source,
                               progress=False)  # checks the split's sizes before anything trains  # fmt: skip
    out = Path(out)
    runs = out / "runs"
    rows = []
    for k, (values, settings) in enumerate(points):
        name = grid_run_name(element, run_split, values)
        res = None if overwrite else results.reusable_result(runs / name, settings.to_dict(), source)
        reused = res is not None
        if res is None:
            finished_elsewise = (runs / name / results.RESULT_JSON).is_file()
            if progress:
                print(f"[{k + 1}/{len(points)}] training {name}", flush=True)
            res = train_nequip(element, run_split, settings, out=runs, name=name, source=source, echo=echo,
                               overwrite=overwrite or finished_elsewise)  # fmt: skip
        row = grid_row(values, res, reused=reused)
        rows.append(row)
        if progress:
            print(f"[{k + 1}/{len(points)}] {', '.join(f'{a}={_tick(b)}' for a, b in values.items())}: validation "
                  f"force MAE {_milli(row['val_forces_mae'])} meV/Å{' (reused)' if reused else ''}", flush=True)  # fmt: skip
    chosen = [r for r in rows if r["val_forces_mae"] is not None]
    if not chosen:
        raise StepError(f"no run under {runs} recorded a validation force MAE ({MONITOR} in its metrics.csv); "
                        "the runs need a validation fraction (NequIPSettings.validation)")  # fmt: skip
    best = min(chosen, key=lambda r: r["val_forces_mae"])
    report = {
        "model": "nequip",
        "element": element,
        "split": split,
        "run_split": run_split,
        "split_hash": selection.hash,
        "archive_md5": selection.store.archive_md5,
        "n_frames": selection.sizes(),
        "frame_ids": {subset: selection.frame_ids(subset).tolist() for subset in selection.subsets},
        "grid": {k: list(dict.fromkeys(values[k] for values, _ in points)) for k in grid},
        "base_settings": base.to_dict(),
        "selection": NEQUIP_SELECTION,
        "rows": rows,
        "best": best,
        "best_settings": results.load_result(best["run"]).data["settings"],
        "versions": results.versions(),
        "created": utc_now(),
    }
    keys = list(grid)
    title = (f"NequIP grid, {element} ({run_split}: {selection.sizes()['train']} train / "
             f"{selection.sizes().get('validation', 0)} validation / {selection.sizes()['test']} test frames)")  # fmt: skip
    write_grid_report(out, report, [*keys, "n_weights", "epochs"], title,
                      criterion=("val_forces_mae", "validation F MAE (meV/Å), chooses"))  # fmt: skip
    varying = [k for k in keys if len({r[k] for r in rows}) > 1] or keys[:1]
    plot_heatmaps(rows, out / "grid.png", x=varying[0], y=varying[1] if len(varying) > 1 else None,
                  panels=tuple(varying[2:]), value="val_forces_mae", scale=1000.0, best=best,
                  label="validation force MAE (meV/Å)", title=title)  # fmt: skip
    return report


def grid_row(values: dict, res: results.Result, *, reused: bool) -> dict:
    """One row of a NequIP grid: the point's values, model size, training record, the validation force MAE
    that chooses, and the test errors."""
    d = res.data
    training, m = d.get("training", {}), d["metrics"]
    row = {**values, "n_weights": d["settings"].get("n_weights"), "epochs": training.get("epochs"),
           "best_epoch": training.get("best_epoch"), "final_lr": training.get("final_lr"),
           "val_forces_mae": training.get("best_val_forces_mae")}  # fmt: skip
    for q in ("energy_per_atom", "forces", "stress"):
        row[f"{q}_mae"] = m[q]["mae"] if q in m else None
        row[f"{q}_percent"] = m[q]["percent"] if q in m else None
    row.update({"train_s": d["timing"].get("train_s"), "reused": reused, "run": str(Path(res.path).resolve())})
    return row
