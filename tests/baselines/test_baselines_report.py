"""Result files, the report (table, Fig. 2 layout, paper tables), the learning-curve driver, the CLI, the
FLARE installer's guards and the offline main job (``tm23 demo``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tm23data.baselines import results
from tm23data.baselines.report import paper_table, summary_table, write_report
from tm23data.cli import main
from tm23data.metrics import Evaluator
from tm23data.splits import resolve_split
from tm23data.store import load_store


def fake_run(out, model: str, element: str, split: str = "full", *, noise: float = 0.05, seed: int = 0, name=None):
    """A run folder with predictions = labels + noise, written through the real result-file code."""
    store = load_store(element, progress=False)
    manifest = resolve_split(store, split)
    idx = manifest.subsets["test"]
    test = store.frames.take(idx)
    rng = np.random.default_rng(seed)
    pred = {"energy": test.energy + noise * test.natoms * rng.normal(size=len(test)),
            "forces": test.forces + noise * rng.normal(size=test.forces.shape),
            "stress": test.stress + 0.1 * noise * rng.normal(size=test.stress.shape)}  # fmt: skip
    metrics = Evaluator(test.natoms, test.energy, test.forces, test.stress).eval(pred)
    with results.RunDir(out, name or f"{model}_{element}_{split}") as run:
        settings = {"descriptor_dim": 84} if model == "flare" else {"n_weights": 1234}
        record = results.result_record(model=model, element=element, split=split, manifest=manifest, store=store,
                                       settings=settings, metrics=metrics, timing={"train_s": 36.0}, training={},
                                       files={})  # fmt: skip
        results.write_result(run.path, record, results.prediction_arrays(test, pred, store.frame_id[idx]))
        return run.commit()


def test_run_dir_is_all_or_nothing(tmp_path):
    with results.RunDir(tmp_path, "ok") as run:
        (run.path / "a.txt").write_text("x")
        assert not (tmp_path / "ok").exists()  # invisible until committed
        run.commit()
    assert (tmp_path / "ok" / "a.txt").read_text() == "x"
    with pytest.raises(FileExistsError):
        results.RunDir(tmp_path, "ok")
    with pytest.raises(ZeroDivisionError), results.RunDir(tmp_path, "ok", overwrite=True) as run:
        (run.path / "b.txt").write_text("y")
        raise ZeroDivisionError
    assert (tmp_path / "ok" / "a.txt").is_file()  # the old run is untouched by the failed replacement
    assert (tmp_path / "ok.failed" / "b.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_report_gathers_results_next_to_the_paper_tables(cached, tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "flare", "Cu")
    fake_run(runs, "nequip", "Cu", noise=0.02)
    fake_run(runs, "nequip", "W", noise=0.03)
    (runs / "nequip_Ti_full.failed").mkdir()  # failed runs are ignored
    rep = write_report([runs], tmp_path / "report")
    rows = rep["rows"]
    assert [(r["model"], r["element"]) for r in rows] == [("flare", "Cu"), ("nequip", "Cu"), ("nequip", "W")]
    for r in rows:
        stored = results.load_result(r["path"]).metrics
        assert r["forces_percent"] == stored["forces"]["percent"]
        assert r["published_data"] is False
    md = (tmp_path / "report" / "report.md").read_text()
    assert "not comparable with the paper" in md
    assert "| Cu | 84 | 140 |" in md and "265580" in md  # ours next to the paper's Table 1
    assert (tmp_path / "report" / "periodic_table.png").stat().st_size > 10_000
    csv_rows = (tmp_path / "report" / "report.csv").read_text().splitlines()
    assert len(csv_rows) == 4 and csv_rows[0].startswith("model,element,split")
    _, table = summary_table(rows)
    assert table[0][:3] == ["FLARE (B2)", "Cu", "full"]
    assert float(table[0][8]) == pytest.approx(rows[0]["forces_percent"], rel=1e-2)
    with pytest.raises(FileNotFoundError, match="no baseline results"):
        write_report([tmp_path / "report"], tmp_path / "r2")


def test_paper_tables_are_shipped():
    t1 = {r["element"]: r for r in paper_table("table1")}
    assert len(t1) == 27 and t1["Cu"]["flare_ace_dim"] == "140" and t1["Ir"]["nequip_n_weights"] == "612744"
    t2 = paper_table("table2")
    assert {(r["element"], r["l_max"]) for r in t2} >= {("Au", "5"), ("Ti", "3")}
    fig7 = paper_table("fig7")
    best = min(fig7, key=lambda r: float(r["force_percent_error"]))
    assert (best["l_max"], best["n_max"], best["cutoff_angstrom"]) == ("8", "9", "4.0")  # the paper's best Os model
    with pytest.raises(ValueError):
        paper_table("table3")


def test_learning_curve_fits_the_power_law(cached, tmp_path, monkeypatch):
    """The driver trains one model per (l_max, N), fits error = a N^b per l_max and plots it; here
    training is replaced by runs whose force error follows a known law."""
    from tm23data.baselines import learning_curve

    calls = []

    def fake_train(element, split, settings, *, out, name, **kw):
        calls.append((split, settings.l_max, settings.num_features))
        n = int(split.split("_")[1])
        b = -0.3 - 0.1 * settings.l_max
        path = fake_run(out, "nequip", element, split, name=name)
        res = results.load_result(path)
        res.data["metrics"]["forces"]["mae"] = 2.0 * n**b
        res.data["settings"] = settings.to_dict()  # what a real run records; reuse is judged by it
        results.atomic_write_json(path / "result.json", res.data)
        return results.load_result(path)

    monkeypatch.setattr(learning_curve, "train_nequip", fake_train)
    rep = learning_curve.nequip_learning_curve("Cu", sizes=(2, 4, 8), l_maxes=(0, 1), features="paper", out=tmp_path)
    assert calls == [("melt_2", 0, 64), ("melt_4", 0, 64), ("melt_8", 0, 64), ("melt_2", 1, 32), ("melt_4", 1, 32),
                     ("melt_8", 1, 32)]  # fmt: skip
    assert rep["fits"]["0"]["b"] == pytest.approx(-0.3) and rep["fits"]["1"]["b"] == pytest.approx(-0.4)
    assert rep["fits"]["1"]["a"] == pytest.approx(2.0) and rep["fits"]["0"]["r2"] == pytest.approx(1.0)
    assert (tmp_path / "learning_curve.png").is_file() and (tmp_path / "learning_curve.csv").is_file()
    calls.clear()
    again = learning_curve.nequip_learning_curve("Cu", sizes=(2, 4, 8), l_maxes=(0, 1), features="paper", out=tmp_path)
    assert calls == [] and again["fits"] == rep["fits"]  # finished runs are reused


def test_cli_report_and_paper_tables(cached, tmp_path, capsys):
    fake_run(tmp_path / "runs", "flare", "Cu")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "FLARE (B2)" in out and "report.md" in out
    assert not (tmp_path / "rep" / "periodic_table.png").exists()
    assert main(["report", "--paper", "table1"]) == 0
    assert "flare_ace_dim" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "x")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_cli_writes_a_nequip_config(cached, tmp_path, capsys):
    pytest.importorskip("nequip")
    path = tmp_path / "config.yaml"
    assert main(["baseline", "nequip", "Cu", "--l-max", "2", "--lr", "0.01", "--set", "radial_mlp_width=24",
                 "--config-only", str(path)]) == 0  # fmt: skip
    text = path.read_text()
    assert "l_max: 2" in text and "lr: 0.01" in text and "radial_mlp_width: 24" in text and cached in text
    assert main(["baseline", "nequip", "Cu", "--set", "nonsense=1", "--config-only", str(path)]) == 1
    assert "Valid settings: r_max" in capsys.readouterr().err


def test_install_flare_script_guards(tmp_path):
    from tm23data.baselines.cli import installer_path

    script = installer_path()
    assert os.path.isfile(script) and os.path.isfile(os.path.join(os.path.dirname(script), "flare_offline.cmake"))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHON")}
    proc = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "no virtual environment is active" in proc.stderr
    wrapper = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "install_flare.sh")
    if os.path.exists(wrapper):  # the repository's entry point delegates to the packaged script
        proc = subprocess.run(["bash", wrapper], env=env, capture_output=True, text=True, check=False)
        assert "no virtual environment is active" in proc.stderr


@pytest.mark.flare
def test_install_flare_is_idempotent():
    pytest.importorskip("flare.bffs.sgp._C_flare", reason="mir-flare is not installed")
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("FLARE_FORCE", None)
    proc = subprocess.run([sys.executable, "-m", "tm23data.cli", "install-flare"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0 and "already installed" in proc.stderr


def test_demo_runs_offline_end_to_end(tm23_home, tmp_path, monkeypatch, capsys):
    """The README's main job on a fresh cache with the network forbidden: local data -> load_tm23 ->
    FLARE (if installed) and NequIP -> % error table."""
    pytest.importorskip("nequip")
    from tm23data.baselines.demo import run_demo
    from tm23data.baselines.flare import flare_available

    monkeypatch.setenv("TM23_OFFLINE", "1")
    lines = []
    rep = run_demo(tmp_path / "demo", frames_per_regime=10, equilibration_fs=50, budget_s=3, say=lines.append)
    text = "\n".join(lines)
    assert "making a small local TM23-format set for Cu" in text and "load_tm23('Cu', 'full')" in text
    assert "EMT molecular dynamics" in text
    models = {r["model"] for r in rep["rows"]}
    assert models == ({"flare", "nequip"} if flare_available() else {"nequip"})
    for r in rep["rows"]:
        assert r["n_test"] == 3 and np.isfinite(r["forces_percent"]) and r["published_data"] is False
    assert "F %" in text and "not comparable with the paper" in text
    assert (tmp_path / "demo" / "report" / "report.md").is_file()
    data = json.loads((tmp_path / "demo" / "report" / "report.json").read_text())
    assert len(data["rows"]) == len(rep["rows"])


@pytest.mark.flare
def test_demo_uses_the_published_archive_when_it_is_cached(cached, tmp_path, monkeypatch):
    """With the published archive in the cache, the same command runs on it (--element/--split); here the
    synthetic archive stands in for it."""
    pytest.importorskip("flare.bffs.sgp._C_flare", reason="mir-flare is not installed")
    from tm23data import manifest
    from tm23data.baselines.demo import published_available, run_demo

    assert not published_available()
    monkeypatch.setattr(manifest, "ARCHIVE_MD5", cached)
    assert published_available()
    lines = []
    rep = run_demo(tmp_path / "demo", element="W", split="cold", models=("flare",), budget_s=5, say=lines.append)
    assert "the published TM23 archive" in lines[0] and not (tmp_path / "demo" / "data").exists()
    (row,) = rep["rows"]
    assert (row["model"], row["element"], row["split"], row["published_data"]) == ("flare", "W", "cold", True)
    assert "not comparable" not in "\n".join(lines)
