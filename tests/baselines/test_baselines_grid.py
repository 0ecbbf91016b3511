"""The NequIP grid search (``tm23 grid nequip``): points from ``--set-grid`` through the settings' own type
conversion and checks, one normal run folder per point, reused when finished with the same settings, the best
point chosen by validation force MAE and never by test, the grid report; one slow test trains for real."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tm23data.baselines import grid as grid_module
from tm23data.baselines import results
from tm23data.baselines.grid import grid_run_name, grid_settings, nequip_grid, parse_grid
from tm23data.baselines.nequip import NequIPSettings
from tm23data.cli import main
from tm23data.errors import UsageError
from tm23data.metrics import Evaluator
from tm23data.splits import resolve_split
from tm23data.store import load_store


def test_grid_points_are_typed_checked_settings():
    base = NequIPSettings(batch_size=3)
    points = grid_settings(base, parse_grid(["r_max=4,5.5", "num_layers=[2, 4]", "learning_rate=0.01"]))
    assert [v for v, _ in points] == [{"r_max": 4.0, "num_layers": 2, "learning_rate": 0.01},
                                      {"r_max": 4.0, "num_layers": 4, "learning_rate": 0.01},
                                      {"r_max": 5.5, "num_layers": 2, "learning_rate": 0.01},
                                      {"r_max": 5.5, "num_layers": 4, "learning_rate": 0.01}]  # fmt: skip
    assert all(s.batch_size == 3 and isinstance(s.num_layers, int) for _, s in points)
    assert grid_run_name("Cu", "full_200x100", points[2][0]) == "nequip_Cu_full_200x100_r_max-5.5_num_layers-2_learning_rate-0.01"
    with pytest.raises(UsageError, match="Did you mean 'num_layers'"):
        grid_settings(base, parse_grid(["num_layer=2,4"]))
    with pytest.raises(UsageError, match="takes an integer"):
        grid_settings(base, parse_grid(["l_max=0,1.5"]))
    with pytest.raises(UsageError, match="min_lr"):  # the settings' own check runs on every point
        grid_settings(base, parse_grid(["learning_rate=0.01,0.000001"]))
    with pytest.raises(UsageError, match="seed cannot vary"):
        grid_settings(base, parse_grid(["seed=0,1"]))
    with pytest.raises(UsageError, match="repeats the point"):
        grid_settings(base, parse_grid(["r_max=4,4.0"]))
    for bad, message in ((["l_max"], "KEY=V1,V2"), (["l_max="], "no values"), (["l_max=0", "l_max=1"], "twice"),
                         (["l_max=[0, 1"], "not a JSON list")):  # fmt: skip
        with pytest.raises(UsageError, match=message):
            parse_grid(bad)


def _fake_trainer(calls: list):
    """A train_nequip that writes a real run folder: predictions = labels x (1 + test error), and a training
    record whose validation force MAE ranks the points in the opposite order of their test errors."""

    def train(element, split, settings, *, out, name, overwrite=False, source=None, echo=False):
        calls.append((name, overwrite))
        store = load_store(element, progress=False)
        man = resolve_split(store, split, validation=settings.validation, seed=settings.seed)
        test = store.frames.take(man.subsets["test"])
        test_error = 0.01 * (1 + settings.l_max) * (1 + settings.num_features / 100)
        pred = {"energy": test.energy * 1.001, "forces": test.forces * (1 + test_error), "stress": test.stress}
        metrics = Evaluator(test.natoms, test.energy, test.forces, test.stress).eval(pred)
        val = 0.1 / ((1 + settings.l_max) * (1 + settings.num_features / 100))
        with results.RunDir(out, name, overwrite=overwrite) as run:
            record = results.result_record(model="nequip", element=element, split=split, manifest=man, store=store,
                                           settings={**settings.to_dict(), "n_weights": 100 * settings.num_features},
                                           metrics=metrics, timing={"train_s": 1.0},
                                           training={"epochs": 3, "best_epoch": 2, "best_val_forces_mae": val},
                                           files={})  # fmt: skip
            results.write_result(run.path, record, results.prediction_arrays(test, pred, store.frame_id[man.subsets["test"]]))
            path = run.commit()
        return results.load_result(path)

    return train


def test_best_point_is_chosen_by_validation_and_finished_points_are_reused(cached, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(grid_module, "train_nequip", _fake_trainer(calls))
    grid = {"l_max": ["0", "1"], "num_features": ["4", "8"]}
    rep = nequip_grid("Cu", grid, n_train=12, n_test=6, out=tmp_path)
    rows = rep["rows"]
    assert len(calls) == 4 and not any(r["reused"] for r in rows)
    assert rep["run_split"] == "full_12x6" and rep["n_frames"] == {"train": 11, "validation": 1, "test": 6}
    best_val = min(rows, key=lambda r: r["val_forces_mae"])
    best_test = min(rows, key=lambda r: r["forces_mae"])
    assert (rep["best"]["l_max"], rep["best"]["num_features"]) == (1, 8) == (best_val["l_max"], best_val["num_features"])
    assert best_test is not best_val  # the fake ranks them oppositely: the test error did not choose
    assert rep["best_settings"]["l_max"] == 1 and rep["best_settings"]["num_features"] == 8
    for r in rows:  # every point is a normal run folder on the subsampled split
        res = results.load_result(r["run"])
        assert res.data["split"] == "full_12x6" and res.data["settings"]["l_max"] == r["l_max"]
        assert r["forces_percent"] == res.metrics["forces"]["percent"]
    report = json.loads((tmp_path / "grid.json").read_text())
    assert report["grid"] == {"l_max": [0, 1], "num_features": [4, 8]} and report["best"]["run"] == best_val["run"]
    assert len((tmp_path / "grid.csv").read_text().splitlines()) == 5
    md = (tmp_path / "grid.md").read_text()
    assert md.count("**best**") == 1 and "validation F MAE (meV/Å)" in md
    assert (tmp_path / "grid.png").stat().st_size > 10_000

    again = nequip_grid("Cu", grid, n_train=12, n_test=6, out=tmp_path, base=NequIPSettings(device="cpu"))
    # resumed: nothing retrained (where a run trains changes no model)
    assert len(calls) == 4 and all(r["reused"] for r in again["rows"]) and again["best"]["run"] == rep["best"]["run"]
    nequip_grid("Cu", grid, n_train=12, n_test=6, out=tmp_path, base=NequIPSettings(batch_size=2))  # other settings
    assert len(calls) == 8 and all(overwrite for _, overwrite in calls[4:])  # finished with other settings: retrained
    assert results.load_result(rows[0]["run"]).data["settings"]["batch_size"] == 2


def test_cli_grid_nequip_and_the_flare_grid_without_a_model_name(cached, tmp_path, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(grid_module, "train_nequip", _fake_trainer(calls))
    code = main(["grid", "nequip", "Cu", "--set-grid", "l_max=0,1", "--set", "num_features=8", "--n-train", "12",
                 "--n-test", "6", "--max-epochs", "5", "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and len(calls) == 2
    assert "best (lowest validation force MAE): l_max=1" in out
    settings = results.load_result(tmp_path / "runs" / calls[1][0]).data["settings"]
    assert settings["num_features"] == 8 and settings["max_epochs"] == 5
    code = main(["grid", "nequip", "Cu", "--set-grid", "seed=0,1", "--out", str(tmp_path)])
    assert code == 1 and "seed cannot vary" in capsys.readouterr().err
    from tm23data.cli import build_parser

    args = build_parser().parse_args(["grid", "Os", "--r-cut", "4", "5"])  # as before NequIP had a grid
    assert args.model == "flare" and args.r_cut == [4.0, 5.0] and args.func.__name__ == "cmd_grid"


@pytest.mark.slow
def test_two_point_grid_trains_real_nequip_runs(cached, tmp_path):
    """Two tiny models for one epoch each (about 20 s): the runs are complete baseline folders, the chosen
    validation MAE is the minimum of each run's Lightning log, and a rerun trains nothing."""
    from tm23data.baselines.nequip import MONITOR

    base = NequIPSettings(r_max=4.0, num_layers=1, num_features=4, radial_mlp_depth=1, radial_mlp_width=8,
                          num_bessels=4, batch_size=4, max_epochs=1, seed=3, device="cpu")  # fmt: skip
    rep = nequip_grid("Cu", {"l_max": [0, 1]}, n_train=12, n_test=6, base=base, out=tmp_path)
    for r in rep["rows"]:
        res = results.load_result(r["run"])
        assert res.data["model"] == "nequip" and res.data["training"]["epochs"] == 1 and (res.path / "best.ckpt").is_file()
        with open(res.path / "metrics.csv", newline="") as fh:
            logged = [float(row[MONITOR]) for row in csv.DictReader(fh) if row.get(MONITOR)]
        assert r["val_forces_mae"] == pytest.approx(min(logged))
    assert rep["best"]["val_forces_mae"] == min(r["val_forces_mae"] for r in rep["rows"])
    stamps = [(Path(r["run"]) / "result.json").stat().st_mtime_ns for r in rep["rows"]]
    again = nequip_grid("Cu", {"l_max": [0, 1]}, n_train=12, n_test=6, base=base, out=tmp_path)
    assert all(r["reused"] for r in again["rows"])
    assert stamps == [(Path(r["run"]) / "result.json").stat().st_mtime_ns for r in again["rows"]]
