"""Report panels from results already written: force error vs melting temperature (Supplementary Note 2)
and learning exponents per l_max (Fig. 6), on hand-made result records whose answers are known exactly."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tm23data import elements
from tm23data.baselines import results, studies
from tm23data.baselines.report import write_report
from tm23data.splits import resolve_split
from tm23data.store import load_store

METALS = ("Ti", "Cu", "W", "Au", "Zn")


def _row(model, element, split, mae, percent=None, **settings):
    return {"model": model, "element": element, "split": split, "forces_mae": mae, "forces_percent": percent,
            "l_max": None, "num_features": None, "num_layers": None, "r_max": None, **settings}  # fmt: skip


def test_force_mae_proportional_to_melting_temperature_gives_r_one():
    k = 2e-5  # eV/Å per K
    rows = [_row("nequip", el, "full", k * elements.get(el).melting_K, 50 - 0.01 * elements.get(el).melting_K)
            for el in METALS]  # fmt: skip
    rows += [_row("flare", el, "full", 0.1 + 0.05 * i, 5.0) for i, el in enumerate(METALS[:2])]  # two metals: no r
    points = studies.melting_points(rows)
    assert [p["element"] for p in points if p["model"] == "nequip"] == ["Ti", "Cu", "Zn", "W", "Au"]  # table order
    c = {x["model"]: x for x in studies.melting_correlations(points)}
    assert c["nequip"]["r_forces_mae"] == pytest.approx(1.0, abs=1e-12)
    assert c["nequip"]["r_forces_percent"] == pytest.approx(-1.0, abs=1e-12)  # a falling % gives r = -1
    assert c["nequip"]["slope_meV_per_A_per_1000K"] == pytest.approx(k * 1e6, rel=1e-9)
    assert c["flare"]["metals"] == 2 and c["flare"]["r_forces_mae"] is None and c["flare"]["r_forces_percent"] is None
    noisy = [_row("nequip", el, "full", v) for el, v in zip(METALS, (0.3, 0.1, 0.4, 0.2, 0.5))]
    t = [elements.get(el).melting_K for el in METALS]
    expected = np.corrcoef(t, [0.3, 0.1, 0.4, 0.2, 0.5])[0, 1]  # numpy's own r as the reference
    assert studies.melting_correlations(studies.melting_points(noisy))[0]["r_forces_mae"] == pytest.approx(expected, rel=1e-12)


def test_errors_c_n_to_the_b_give_the_exponent_exactly():
    sizes = (100, 300, 500, 700, 900)
    rows = [_row("nequip", "Cu", f"melt_{n}", 0.2 * n**b, l_max=l, num_features=f, num_layers=4, r_max=5.0)
            for l, f, b in ((0, 64, -0.5), (1, 32, -0.3), (2, 16, -0.25)) for n in sizes]  # fmt: skip
    rows += [_row("nequip", "Cu", f"melt_{n}", 0.1 * n**-0.1, l_max=1, num_features=8, num_layers=4, r_max=5.0)
             for n in (100, 900)]  # another architecture at l_max 1: its own fit, from two sizes  # fmt: skip
    rows += [_row("nequip", "Cu", "full", 0.01, l_max=1, num_features=32, num_layers=4, r_max=5.0)]  # not a curve
    fits = {(f["l_max"], f["num_features"]): f for f in studies.learning_exponents(studies.learning_curve_points(rows))}
    assert sorted(fits) == [(0, 64), (1, 8), (1, 32), (2, 16)]
    for key, b in (((0, 64), -0.5), ((1, 32), -0.3), ((2, 16), -0.25)):
        assert fits[key]["b"] == pytest.approx(b, abs=1e-9) and fits[key]["b_stderr"] == pytest.approx(0, abs=1e-9)
        assert fits[key]["a_eV_per_A"] == pytest.approx(0.2, rel=1e-9) and fits[key]["r2"] == pytest.approx(1.0)
        assert fits[key]["sizes"] == "100 300 500 700 900"
    assert fits[(1, 8)]["b"] == pytest.approx(-0.1, abs=1e-9) and fits[(1, 8)]["b_stderr"] is None


def test_exponent_uncertainty_grows_with_scatter():
    sizes = np.array([100, 300, 500, 700, 900])
    scatter = np.array([1.1, 0.9, 1.05, 0.95, 1.0])
    rows = [_row("nequip", "Ti", f"melt_{n}", 0.2 * n**-0.4 * s**w, l_max=w, num_features=32, num_layers=4, r_max=5.0)
            for w in (1, 3) for n, s in zip(sizes, scatter)]  # fmt: skip
    fits = {f["l_max"]: f for f in studies.learning_exponents(studies.learning_curve_points(rows))}
    from scipy.stats import linregress

    ref = linregress(np.log(sizes), np.log(0.2 * sizes**-0.4 * scatter**3))
    assert fits[3]["b_stderr"] == pytest.approx(ref.stderr, rel=1e-9) and fits[3]["b_stderr"] > fits[1]["b_stderr"] > 0


def _record(out, element, split, forces_mae, *, l_max=1, num_features=32, percent=10.0):
    """A run folder through the real result-file code, with the metrics given (labels as predictions)."""
    store = load_store(element, progress=False)
    man = resolve_split(store, split)
    test = store.frames.take(man.subsets["test"])
    metrics = {"energy_per_atom": {"mae": 0.001, "percent": 0.01, "mav": 0.1},
               "forces": {"mae": forces_mae, "percent": percent, "mav": forces_mae * 100 / percent}}  # fmt: skip
    settings = {"l_max": l_max, "num_features": num_features, "num_layers": 4, "r_max": 5.0, "n_weights": 1000}
    pred = {"energy": test.energy, "forces": test.forces, "stress": test.stress}
    with results.RunDir(out, f"nequip_{element}_{split}_lmax{l_max}") as run:
        record = results.result_record(model="nequip", element=element, split=split, manifest=man, store=store,
                                       settings=settings, metrics=metrics, timing={}, training={}, files={})  # fmt: skip
        results.write_result(run.path, record, results.prediction_arrays(test, pred, store.frame_id[man.subsets["test"]]))
        return run.commit()


def test_report_draws_both_panels_from_existing_results(cached, tmp_path):
    runs = tmp_path / "runs"
    for el in ("Cu", "Ti", "W"):  # the archive's metals; MAE = 1e-5 eV/Å per K of T_melt
        _record(runs, el, "full", 1e-5 * elements.get(el).melting_K)
    for l_max, b in ((0, -0.5), (1, -0.3)):
        for n in (2, 4, 8):
            _record(runs, "Cu", f"melt_{n}", 0.3 * n**b, l_max=l_max)
    rep = write_report([runs], tmp_path / "report")
    assert rep["melting"][0]["split"] == "full" and rep["melting"][0]["r_forces_mae"] == pytest.approx(1.0, abs=1e-12)
    assert {f["l_max"]: round(f["b"], 9) for f in rep["exponents"]} == {0: -0.5, 1: -0.3}
    with open(tmp_path / "report" / "learning_exponents.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["l_max"], float(r["b"])) for r in table] == [("0", pytest.approx(-0.5)), ("1", pytest.approx(-0.3))]
    with open(tmp_path / "report" / "force_vs_melting.csv", newline="") as fh:
        points = [r for r in csv.DictReader(fh) if r["split"] == "full"]
    assert [r["element"] for r in points] == ["Ti", "Cu", "W"] and float(points[2]["melting_K"]) == elements.get("W").melting_K
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Force error vs melting temperature" in md and "## Learning exponents per l_max" in md
    for name in ("force_vs_melting.png", "learning_exponents.png"):
        assert (tmp_path / "report" / name).stat().st_size > 10_000
    only_one = write_report([runs / "nequip_Cu_full_lmax1"], tmp_path / "one")  # one metal, no curve: no panels
    assert only_one["melting"] == [] and only_one["exponents"] == []
    assert not (tmp_path / "one" / "learning_exponents.png").exists()
