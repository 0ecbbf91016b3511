"""``tm23 report``: gather baseline results into one table, draw the percent errors on the d-block layout
of the paper's Fig. 2, and set them next to the paper's reference tables shipped in the package
(``baselines/data/paper/``: Table 1 training statistics, Table 2 NequIP l_max models, Fig. 7 FLARE grid).
Where the results allow, two panels across runs (:mod:`.studies`): force error vs melting temperature
(Supplementary Note 2) and learning exponents per l_max (Fig. 6).
"""

from __future__ import annotations

import csv
import os
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from .. import elements
from .. import manifest as tm23_manifest
from ..atomic import write_atomic
from ..errors import UsageError
from ..provenance import stamp, utc_now
from ..tables import markdown_table, text_table
from . import results, studies
from .studies import ARCHITECTURE

PAPER_TABLES = {
    "table1": "table1_training.csv",  # element, flare_ace_dim, flare_total_train_hours, nequip_n_weights, ...
    "table2": "table2_lmax.csv",  # element, l_max, nequip_n_weights, nequip_hours_per_epoch, gpu, irreps_multiplicity
    "fig7": "fig7_os_flare_grid.csv",  # l_max, n_max, cutoff_angstrom, force_percent_error
}
QUANTITY_LABELS = {"forces": "forces", "energy_per_atom": "energy", "stress": "stress"}
MODEL_LABELS = {"flare": "FLARE (B2)", "nequip": "NequIP"}


@cache
def _read_paper(name: str) -> tuple:
    with resources.files("tm23data.baselines").joinpath(f"data/paper/{PAPER_TABLES[name]}").open(newline="") as fh:
        return tuple(csv.DictReader(fh))


def paper_table(name: str) -> list[dict]:
    """Rows (dicts of strings) of a shipped paper table: ``table1``, ``table2`` or ``fig7``."""
    if name not in PAPER_TABLES:
        raise UsageError(f"unknown paper table {name!r}; choose from {', '.join(PAPER_TABLES)}")
    return [dict(r) for r in _read_paper(name)]


def gather(paths) -> list[dict]:
    """Flat rows (see :func:`.results.flat_row`) of every result under ``paths``, sorted by model, split and
    element (periodic-table order); extra columns for model size and time."""
    order = {e.symbol: k for k, e in enumerate(elements.all_elements())}
    rows = []
    for res in results.find_results(paths):
        row = res.row()
        settings, timing = res.data["settings"], res.data["timing"]
        row["descriptor_dim"] = settings.get("descriptor_dim")
        row["n_weights"] = settings.get("n_weights")
        row["epoch_s_median"] = timing.get("epoch_s_median")
        for key in ARCHITECTURE:  # NequIP's (FLARE's l_max is its descriptor's); learning exponents group by them
            row[key] = settings.get(key)
        row["path"] = str(res.path)
        rows.append(row)
    rows.sort(key=lambda r: (r["model"], r["split"], order.get(r["element"], 99), r["created"]))
    return rows


def summary_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """(header, rows) of the printed table: per run, MAE and % error of energy per atom, forces, stress."""
    header = ["model", "element", "split", "train", "test", "E MAE raw (meV/atom)", "E % raw (paper: of MAV)",
              "F MAE (meV/Å)", "F %", "S MAE (meV/Å³)", "S %", "E % of spread (raw)", "E MAE shifted (meV/atom)",
              "E % shifted"]  # fmt: skip
    out = []
    for r in rows:
        cells = [MODEL_LABELS.get(r["model"], r["model"]), r["element"], r["split"], r["n_train"], r["n_test"]]
        for q in ("energy_per_atom", "forces", "stress"):
            mae, pct = r.get(f"{q}_mae"), r.get(f"{q}_percent")
            cells += [_fmt(None if mae is None else 1000 * mae), _fmt(pct)]
        cells.append(_fmt(r.get("energy_per_atom_percent_of_spread")))
        shifted = r.get("energy_per_atom_shifted_mae")
        cells += [_fmt(None if shifted is None else 1000 * shifted), _fmt(r.get("energy_per_atom_shifted_percent"))]
        out.append(cells)
    return header, out


#: The paper's grouping: groups IV-IX have large d-DOS both sides of the Fermi level (harder), X-XII do not.
EARLY_GROUPS, LATE_GROUPS = range(4, 10), range(10, 13)
LEADERBOARD_HEADER = ["model", "split", "metals", "F % mean", "E % raw mean", "E % shifted mean", "S % mean",
                      "F MAE mean (meV/Å)", "F % early (IV-IX)", "F % late (X-XII)", "F % gap cold→warm",
                      "F % gap cold→melt", "published data"]  # fmt: skip


def _latest(rows: list[dict]) -> dict[tuple, dict]:
    """The newest row per (model, split, element) (rows are sorted by creation time within those)."""
    return {(r["model"], r["split"], r["element"]): r for r in rows}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def leaderboard(rows: list[dict]) -> tuple[list[str], list[list]]:
    """(header, rows): per model and split, the mean over the metals evaluated of the % errors (energy raw and
    after the per-element shift fitted on train, for evaluated models), the force MAE, the force % of early
    (groups IV-IX) and late (X-XII) metals, and the transfer gaps: mean over metals of the force % on
    ``cold_to_warm`` (``cold_to_melt``) minus that on ``cold``, for metals that have both."""
    latest = _latest(rows)
    group = {e.symbol: e.group for e in elements.all_elements()}
    out = []
    for model, split in dict.fromkeys((m, s) for m, s, _ in latest):
        mine = [r for (m, s, _), r in latest.items() if (m, s) == (model, split)]

        def gap(target: str) -> float | None:
            pairs = [(latest.get((model, target, r["element"])), r) for r in mine]
            return _mean([t["forces_percent"] - r["forces_percent"] for t, r in pairs
                          if t and t.get("forces_percent") is not None and r.get("forces_percent") is not None])

        f_mae = _mean([r.get("forces_mae") for r in mine])
        out.append([MODEL_LABELS.get(model, model), split, len(mine),
                    *(_fmt(_mean([r.get(k) for r in mine])) for k in ("forces_percent", "energy_per_atom_percent",
                                                                      "energy_per_atom_shifted_percent", "stress_percent")),
                    _fmt(None if f_mae is None else 1000 * f_mae),
                    _fmt(_mean([r.get("forces_percent") for r in mine if group.get(r["element"]) in EARLY_GROUPS])),
                    _fmt(_mean([r.get("forces_percent") for r in mine if group.get(r["element"]) in LATE_GROUPS])),
                    _fmt(gap("cold_to_warm")) if split == "cold" else "-", _fmt(gap("cold_to_melt")) if split == "cold" else "-",
                    "yes" if all(r.get("published_data") for r in mine) else "NO (local data)"])  # fmt: skip
    return LEADERBOARD_HEADER, out


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def paper_comparison(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Model sizes and costs here next to the paper's Table 1, per element that has a result."""
    table1 = {r["element"]: r for r in paper_table("table1")}
    header = ["element", "FLARE B2 dim (here)", "FLARE ACE dim (paper)", "FLARE train h (here)", "FLARE train h (paper)",
              "NequIP weights (here)", "NequIP weights (paper)", "NequIP s/epoch (here)", "NequIP h/epoch (paper, GPU)"]  # fmt: skip
    by_element: dict[str, dict] = {}
    for r in rows:
        by_element.setdefault(r["element"], {})[r["model"]] = r
    out = []
    for el, models in by_element.items():
        p = table1.get(el, {})
        fl, nq = models.get("flare", {}), models.get("nequip", {})
        out.append([el, fl.get("descriptor_dim") or "-", p.get("flare_ace_dim", "-"),
                    _fmt(None if fl.get("train_s") is None else fl["train_s"] / 3600), p.get("flare_total_train_hours", "-"),
                    nq.get("n_weights") or "-", p.get("nequip_n_weights", "-"), _fmt(nq.get("epoch_s_median")),
                    f"{p.get('nequip_hours_per_epoch', '-')} ({p.get('nequip_gpu', '-')})" if p else "-"])  # fmt: skip
    return header, out


# --- Fig. 2 layout --------------------------------------------------------------------------------------------


def plot_periodic(rows: list[dict], path: str | os.PathLike, *, split: str | None = None, models=None,
                  quantities=("forces", "energy_per_atom", "stress")) -> Path:  # fmt: skip
    """Percent errors on the d-block (groups 4-12, periods 4-6), one panel per quantity (rows) and model
    (columns), coloured green (low) to red (high) on one scale per quantity, as in the paper's Fig. 2.
    Elements without a result are grey. With several splits, ``split`` picks one (default: the most common)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    if not rows:
        raise UsageError("no results to plot")
    if split is None:
        splits = [r["split"] for r in rows]
        split = max(set(splits), key=splits.count)
    rows = [r for r in rows if r["split"] == split]
    if models is None:
        models = [m for m in MODEL_LABELS if any(r["model"] == m for r in rows)] + sorted(
            {r["model"] for r in rows} - set(MODEL_LABELS)
        )
    else:
        models = [models] if isinstance(models, str) else list(models)
        unknown = [m for m in models if not any(r["model"] == m for r in rows)]
        if unknown:
            raise UsageError(f"no results of model {', '.join(unknown)} for split {split}; models: "
                             f"{', '.join(sorted({r['model'] for r in rows}))}")  # fmt: skip
    latest: dict[tuple, dict] = {}
    for r in rows:  # rows are sorted by creation time within (model, split, element)
        latest[(r["model"], r["element"])] = r
    fig, axes = plt.subplots(len(quantities), len(models), figsize=(4.6 * len(models), 2.0 * len(quantities) + 0.4),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    cmap = plt.get_cmap("RdYlGn_r")
    for qi, q in enumerate(quantities):
        values = [v for r in latest.values() if (v := r.get(f"{q}_percent")) is not None and np.isfinite(v)]
        norm = Normalize(vmin=min(values, default=0), vmax=max(values, default=1))
        for mi, model in enumerate(models):
            ax = axes[qi][mi]
            for e in elements.all_elements():
                x, y = e.group - 4, e.period - 4
                r = latest.get((model, e.symbol))
                v = None if r is None else r.get(f"{q}_percent")
                color = cmap(norm(v)) if v is not None and np.isfinite(v) else (0.88, 0.88, 0.88, 1.0)
                ax.add_patch(plt.Rectangle((x, -y), 0.94, 0.94, facecolor=color, edgecolor="white"))
                ax.text(x + 0.47, -y + 0.64, e.symbol, ha="center", va="center", fontsize=8, weight="bold")
                ax.text(x + 0.47, -y + 0.28, "-" if v is None else f"{v:.1f}", ha="center", va="center", fontsize=7)
            ax.set_xlim(-0.1, 9.0)
            ax.set_ylim(-2.1, 1.0)
            ax.set_aspect("equal")
            ax.axis("off")
            ax.set_title(f"{MODEL_LABELS.get(model, model)}: {QUANTITY_LABELS.get(q, q)} % error", fontsize=9)
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[qi].tolist(), shrink=0.8, label="%")
    fig.suptitle(f"Test % error (MAE / MAV x 100), split {split}", fontsize=10)
    generated = sorted({r.get("archive_md5") or "?" for r in latest.values() if not r.get("published_data")})
    if generated:
        stamp(fig, "NOT the published TM23 data: results on locally generated or unverified archives (md5 "
              f"{', '.join(generated)}); not comparable with the paper", published=False)  # fmt: skip
    else:
        stamp(fig, f"published TM23 archive (VASP 5.4.1, PBE), md5 {tm23_manifest.ARCHIVE_MD5}", published=True)
    return results.save_figure(fig, path)


def write_report(paths, out: str | os.PathLike, *, plot: bool = True, models=None, split: str | None = None) -> dict:
    """Gather results under ``paths`` and write ``report.csv``, ``leaderboard.csv``, ``report.json``,
    ``report.md`` and (with ``plot``) ``periodic_table.png`` (of ``models``, default all, on ``split``,
    default the most common) into ``out``; returns ``{"rows": ..., "files": ...}``."""
    rows = gather(paths)
    if not rows:
        raise FileNotFoundError(f"no baseline results (result.json) under {', '.join(map(str, paths))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": write_atomic(out / "report.csv", results.rows_to_csv(rows)),
        "json": results.atomic_write_json(out / "report.json", {"rows": rows, "created": utc_now()}),
    }
    lb_header, lb_rows = leaderboard(rows)
    files["leaderboard"] = write_atomic(out / "leaderboard.csv", results.rows_to_csv(
        [dict(zip(lb_header, r)) for r in lb_rows]))  # fmt: skip
    header, table = summary_table(rows)
    cmp_header, cmp_rows = paper_comparison(rows)
    published = all(r.get("published_data") for r in rows)
    md = ["# TM23 baseline report", ""]
    if not published:
        others = sorted({r.get("archive_md5") or "?" for r in rows if not r.get("published_data")})
        md += [("**NOT the published TM23 data: some results are on locally generated or unverified archives "
                f"(md5 {', '.join(others)}), not the published TM23 archive: they are not comparable with the "
                "paper.**"), ""]  # fmt: skip
    else:
        md += [f"Data: the published TM23 archive (VASP 5.4.1, PBE), md5 {tm23_manifest.ARCHIVE_MD5}.", ""]
    md += ["## Leaderboard", "", ("Mean over the metals evaluated of the test % error (MAE / MAV x 100). Energy "
           "\"raw\": the model's own energies; \"shifted\": after one constant per element (eV/atom) fitted on "
           "frames of the training subset, for evaluated models whose energy reference is not the labels' "
           "(baselines were trained on the labels: no shift). Early: groups IV-IX, late: X-XII. Transfer gap: "
           "force % on cold_to_warm / cold_to_melt minus force % on cold, metals with both."), "",
           markdown_table(lb_header, lb_rows), ""]
    md += ["## Test errors", "", ("% error = MAE / MAV x 100 over the test set (the paper's; energy per atom, force "
           "and stress components); MAE in meV/atom, meV/Å, meV/Å³. \"E % of spread (raw)\" = raw MAE / MAD x 100, MAD the "
           "mean absolute deviation of the test energies per atom about their mean: the paper's energy % depends on "
           "the pseudopotential's reference energy (MAV -0.3 eV/atom for Hg, -13 for W), this one does not."), "", markdown_table(header, table), "",
           "## Model size and cost next to the paper's Table 1", "", markdown_table(cmp_header, cmp_rows), "",
           "Paper: FLARE on CPUs (total training time), NequIP on one V100/A100 GPU (hours per epoch).", ""]  # fmt: skip
    if plot:
        files["plot"] = plot_periodic(rows, out / "periodic_table.png", models=models, split=split)
        md += ["## Percent errors on the d-block (layout of the paper's Fig. 2)", "", "![](periodic_table.png)", ""]
    panels = study_panels(rows, out, plot=plot)
    files.update(panels["files"])
    md += panels["md"]
    files["md"] = write_atomic(out / "report.md", "\n".join(md))
    return {"rows": rows, "files": {k: str(v) for k, v in files.items()}, "table": text_table(header, table),
            "leaderboard": text_table(lb_header, lb_rows), "melting": panels["melting"],
            "exponents": panels["exponents"]}


def study_panels(rows: list[dict], out: Path, *, plot: bool = True) -> dict:
    """The two cross-run panels (:mod:`.studies`), where the results allow them: force error vs T_melt per
    model and split with two or more metals (``force_vs_melting.{csv,png}``), and learning exponents per
    l_max from learning-curve runs with two or more sizes (``learning_exponents.{csv,png}``). Returns their
    rows, files and Markdown sections."""
    files, md = {}, []
    points = studies.melting_points(rows)
    melting = studies.melting_correlations(points)
    if melting:
        groups = {(c["model"], c["split"]) for c in melting}
        mine = [p for p in points if (p["model"], p["split"]) in groups]
        files["melting_csv"] = write_atomic(out / "force_vs_melting.csv", results.rows_to_csv(mine))
        files["melting_summary_csv"] = write_atomic(out / "force_vs_melting_r.csv", results.rows_to_csv(melting))
        header = ["model", "split", "metals", "r (F MAE vs T_melt)", "r (F % vs T_melt)", "slope (meV/Å per 1000 K)"]
        body = [[MODEL_LABELS.get(c["model"], c["model"]), c["split"], c["metals"], _fmt(c["r_forces_mae"]),
                 _fmt(c["r_forces_percent"]), _fmt(c["slope_meV_per_A_per_1000K"])] for c in melting]  # fmt: skip
        md += ["## Force error vs melting temperature (paper: Supplementary Note 2)", "",
               ("Test force MAE and % error of each metal against its experimental melting temperature (the AIMD "
                "ran at 0.25 / 0.75 / 1.25 x T_melt, so the forces, and with them the MAE, grow with T_melt). "
                "r: Pearson's correlation coefficient (3 or more metals). Points: force_vs_melting.csv."), "",
               markdown_table(header, body), ""]  # fmt: skip
        if plot:
            files["melting_plot"] = studies.plot_melting(points, melting, out / "force_vs_melting.png")
            md += ["![](force_vs_melting.png)", ""]
    curve = studies.learning_curve_points(rows)
    exponents = studies.learning_exponents(curve)
    if exponents:
        files["exponents_csv"] = write_atomic(out / "learning_exponents.csv", results.rows_to_csv(exponents))
        header = ["model", "element", "regime", "l_max", "features", "layers", "r_max (Å)", "N", "b", "± (std. error)",
                  "R²", "a (meV/Å)"]  # fmt: skip
        body = [[MODEL_LABELS.get(f["model"], f["model"]), f["element"], f["regime"], f["l_max"], f["num_features"],
                 f["num_layers"], f["r_max"], f["sizes"], f"{f['b']:.4f}",
                 "-" if f["b_stderr"] is None else f"{f['b_stderr']:.4f}", f"{f['r2']:.3f}",
                 _fmt(1000 * f["a_eV_per_A"])] for f in exponents]  # fmt: skip
        md += ["## Learning exponents per l_max (paper: Fig. 6)", "",
               ("Runs on learning-curve splits ({regime}_N), per model, element, regime and architecture: "
                "log(force MAE) = log a + b log N by least squares; ± is the standard error of b (none from two "
                "sizes). Table: learning_exponents.csv."), "", markdown_table(header, body), ""]  # fmt: skip
        if plot:
            files["exponents_plot"] = studies.plot_learning_exponents(curve, exponents, out / "learning_exponents.png")
            md += ["![](learning_exponents.png)", ""]
    return {"files": files, "md": md, "melting": melting, "exponents": exponents}
