"""NequIP baseline: the generated config follows the paper's protocol, nequip-train runs it on CPU, and the
result file agrees with the saved predictions, nequip's own test metrics and a reloaded checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

pytest.importorskip("nequip", reason="nequip is not installed (pip install -e '.[nequip]')")

from omegaconf import OmegaConf  # noqa: E402

from tm23data.baselines import results  # noqa: E402
from tm23data.baselines.nequip import (  # noqa: E402
    MONITOR,
    NequIPPredictor,
    NequIPSettings,
    max_time_string,
    nequip_config,
    train_nequip,
    write_config,
)
from tm23data.fetch import import_archive  # noqa: E402
from tm23data.splits import resolve_split  # noqa: E402
from tm23data.store import load_store  # noqa: E402

TINY = NequIPSettings(r_max=4.0, num_layers=2, l_max=1, num_features=8, radial_mlp_depth=1, radial_mlp_width=16,
                      num_bessels=4, batch_size=4, max_epochs=2, seed=3)  # fmt: skip


def _callbacks(cfg) -> dict:
    return {c["_target_"].rsplit(".", 1)[1]: c for c in cfg["trainer"]["callbacks"]}


def test_config_follows_the_paper_protocol():
    s = NequIPSettings(r_max=4.5, num_layers=3, l_max=2, num_features=16, learning_rate=0.002, energy_weight=2.0,
                       force_weight=3.0, stress_weight=0.5, seed=7, max_time=3 * 7 * 86400)  # fmt: skip
    cfg = nequip_config("Ti", "cold_to_melt", s, archive_md5="0" * 32)
    tm = cfg["training_module"]
    # energy per-atom MSE; loss coefficients as given (paper: all 1)
    assert tm["loss"]["_target_"] == "nequip.train.EnergyForceStressLoss"
    assert tm["loss"]["per_atom_energy"] is True
    assert tm["loss"]["coeffs"] == {"total_energy": 2.0, "forces": 3.0, "stress": 0.5}
    assert tm["optimizer"] == {"_target_": "torch.optim.Adam", "lr": 0.002}
    sched = tm["lr_scheduler"]
    assert sched["scheduler"]["_target_"] == "torch.optim.lr_scheduler.ReduceLROnPlateau"
    assert (sched["scheduler"]["factor"], sched["scheduler"]["patience"], sched["scheduler"]["mode"]) == (
        0.2,
        100,
        "min",
    )
    assert sched["monitor"] == "${monitored_metric}" and cfg["monitored_metric"] == MONITOR == "val0_epoch/forces_mae"
    assert (sched["interval"], sched["frequency"]) == ("epoch", 1)
    cb = _callbacks(cfg)
    assert cb["MinLearningRateStop"]["min_lr"] == 1e-5
    assert cb["ModelCheckpoint"]["monitor"] == "${monitored_metric}" and cb["ModelCheckpoint"]["mode"] == "min"
    assert cfg["trainer"]["max_time"] == "21:00:00:00"  # the paper's three weeks
    assert cfg["trainer"]["max_epochs"] == -1  # until the learning-rate stop
    model = tm["model"]
    assert (model["l_max"], model["num_layers"], model["num_features"], model["seed"]) == (2, 3, 16, 7)
    assert cfg["cutoff_radius"] == 4.5 and model["r_max"] == "${cutoff_radius}"
    data = cfg["data"]
    assert data["_target_"] == "tm23data.baselines.nequip_data.TM23StoreDataModule"
    assert (data["element"], data["split"], data["validation"], data["split_seed"]) == ("Ti", "cold_to_melt", 0.1, 7)
    assert data["archive_md5"] == "0" * 32


def test_config_defaults_are_the_paper_values():
    cfg = nequip_config("Cu", "full", NequIPSettings())
    tm = cfg["training_module"]
    assert tm["loss"]["coeffs"] == {"total_energy": 1.0, "forces": 1.0, "stress": 1.0}
    assert cfg["data"]["validation"] == 0.1
    assert "max_time" not in cfg["trainer"]
    assert _callbacks(cfg)["MinLearningRateStop"]["min_lr"] == 1e-5


def test_config_without_stress_and_extxyz_path(tmp_path):
    files = {"train": "train.xyz", "validation": "validation.xyz", "test": "test.xyz"}
    cfg = nequip_config("Cu", "full", NequIPSettings(data="extxyz"), files=files, stress=False)
    assert cfg["data"]["_target_"] == "nequip.data.datamodule.ASEDataModule"
    assert cfg["data"]["train_file_path"] == "train.xyz" and cfg["data"]["val_file_path"] == "validation.xyz"
    assert cfg["training_module"]["loss"]["_target_"] == "nequip.train.EnergyForceLoss"
    assert "stress" not in cfg["training_module"]["loss"]["coeffs"]
    with pytest.raises(ValueError, match="files="):
        nequip_config("Cu", "full", NequIPSettings(data="extxyz"))
    # the YAML keeps interpolations for Hydra and parses back to the same config
    path = write_config(tmp_path / "config.yaml", cfg)
    back = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert back == json.loads(json.dumps(cfg))
    assert "${hydra:runtime.output_dir}" in path.read_text()


def test_settings_are_validated():
    with pytest.raises(ValueError, match="data must be"):
        NequIPSettings(data="lmdb")
    with pytest.raises(ValueError, match="validation"):
        NequIPSettings(validation=0)
    with pytest.raises(ValueError, match="min_lr"):
        NequIPSettings(learning_rate=1e-5, min_lr=1e-5)
    with pytest.raises(ValueError, match="lr_factor"):
        NequIPSettings(lr_factor=1.0)
    with pytest.raises(ValueError, match="unknown NequIP settings"):
        NequIPSettings.from_dict({"lmax": 2})
    assert max_time_string(90061) == "01:01:01:01" and max_time_string("00:01:00:00") == "00:01:00:00"


def test_store_datamodule_serves_the_same_frames_as_ase_datamodule(cached, tmp_path):
    """Our datamodule and nequip's ASEDataModule on the exported extxyz give identical training data."""
    import torch
    from hydra.utils import instantiate
    from nequip.data import AtomicDataDict

    from tm23data.baselines.nequip import export_split

    store = load_store("W", progress=False)
    manifest = resolve_split(store, "cold_to_warm", validation=0.1, seed=1)
    files = {k: str(tmp_path / v) for k, v in export_split(store, manifest, tmp_path).items()}
    s = NequIPSettings(seed=1)
    mods = []
    for data_path in ("store", "extxyz"):
        cfg = nequip_config("W", "cold_to_warm", NequIPSettings(**{**s.to_dict(), "data": data_path}),
                            archive_md5=cached, files=files)  # fmt: skip
        cfg["data"]["transforms"] = []  # compare raw data (the transforms are identical in both)
        dm = instantiate(OmegaConf.to_container(OmegaConf.create(cfg).data, resolve=True), _recursive_=False)
        dm.setup("fit")
        dm.setup("test")
        mods.append(dm)
    ours, theirs = mods
    for attr in ("train_dataset", "val_dataset", "test_dataset"):
        a, b = getattr(ours, attr)[0], getattr(theirs, attr)[0]
        assert len(a) == len(b) == len(manifest.subsets[{"val_dataset": "validation"}.get(attr, attr.split("_")[0])])
        for i in range(len(a)):
            da, db = a[i], b[i]
            for key in (
                AtomicDataDict.POSITIONS_KEY,
                AtomicDataDict.CELL_KEY,
                AtomicDataDict.FORCE_KEY,
                AtomicDataDict.TOTAL_ENERGY_KEY,
                AtomicDataDict.STRESS_KEY,
                AtomicDataDict.ATOMIC_NUMBERS_KEY,
            ):
                assert da[key].shape == db[key].shape, key
                assert torch.equal(da[key], db[key]), key


@pytest.fixture(scope="module")
def _module_run(synthetic_zip, tmp_path_factory):
    """One tiny NequIP run (2 epochs) on the synthetic Cu 'full' split, shared by the tests below."""
    path, md5 = synthetic_zip
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TM23_HOME", str(home))
        mp.setenv("TM23_MD5", md5)
        for var in ("TM23_URL", "TM23_OFFLINE"):
            mp.delenv(var, raising=False)
        import_archive(path)
        out = tmp_path_factory.mktemp("runs")
        res = train_nequip("Cu", "full", TINY, out=out)
        yield res, load_store("Cu", progress=False), out, home, md5


@pytest.fixture
def nequip_run(_module_run, monkeypatch):
    """The shared run, with its cache selected in this test (the autouse fixture gives each test a fresh one)."""
    res, store, out, home, md5 = _module_run
    monkeypatch.setenv("TM23_HOME", str(home))
    monkeypatch.setenv("TM23_MD5", md5)
    return res, store, out


def test_tiny_training_writes_a_complete_run(nequip_run):
    res, store, out = nequip_run
    assert res.path == out / "nequip_Cu_full"
    assert sorted(p.name for p in out.iterdir()) == ["nequip_Cu_full"]  # no partial or failed folders left
    for name in (
        "result.json",
        "result.csv",
        "predictions.npz",
        "best.ckpt",
        "config.yaml",
        "train.log",
        "metrics.csv",
    ):
        assert (res.path / name).is_file(), name
    d = res.data
    assert d["schema"] == results.SCHEMA and d["model"] == "nequip" and d["element"] == "Cu"
    manifest = resolve_split(store, "full", validation=0.1, seed=TINY.seed)
    assert d["split_hash"] == manifest.hash and d["n_frames"] == manifest.sizes()
    assert d["archive_md5"] == store.archive_md5 and d["data_source"]["published"] is False
    assert d["training"]["epochs"] == 2  # max_epochs honoured
    assert d["settings"]["l_max"] == 1 and d["settings"]["n_weights"] > 0
    assert {"torch", "nequip", "tm23data", "python"} <= set(d["versions"])
    row = results.rows_to_csv([results.flat_row(d)])
    assert (res.path / "result.csv").read_text() == row


def test_result_metrics_equal_hand_computation_from_saved_predictions(nequip_run):
    res, store, _ = nequip_run
    p = res.predictions()
    manifest = resolve_split(store, "full", validation=0.1, seed=TINY.seed)
    test = store.frames.take(manifest.subsets["test"])
    assert list(p["frame_id"]) == list(store.frame_id[manifest.subsets["test"]])
    assert np.array_equal(p["ref_energy"], test.energy) and np.array_equal(p["ref_forces"], test.forces)
    m = res.metrics
    e_err = np.abs(p["energy"] / p["natoms"] - test.energy / test.natoms)
    assert m["energy_per_atom"]["mae"] == pytest.approx(e_err.mean(), rel=1e-12)
    assert m["energy_per_atom"]["percent"] == pytest.approx(
        100 * e_err.mean() / np.abs(test.energy / test.natoms).mean(), rel=1e-12
    )
    f_err = np.abs(p["forces"] - test.forces)
    assert m["forces"]["mae"] == pytest.approx(f_err.mean(), rel=1e-12)
    assert m["forces"]["percent"] == pytest.approx(100 * f_err.mean() / np.abs(test.forces).mean(), rel=1e-12)
    s_err = np.abs(p["stress"] - test.stress)
    assert p["stress"].shape == (len(test), 3, 3)
    assert m["stress"]["mae"] == pytest.approx(s_err.mean(), rel=1e-12)
    assert m["stress"]["percent"] == pytest.approx(100 * s_err.mean() / np.abs(test.stress).mean(), rel=1e-12)
    assert set(m["per_regime"]) == {"cold", "warm", "melt"}


def test_our_evaluation_agrees_with_nequips_own_test_metrics(nequip_run):
    """An independent check of units, sign and ordering: nequip's test run on the same best checkpoint."""
    res, _, _ = nequip_run
    theirs = res.data["training"]["nequip_test_metrics"]
    ours = res.metrics
    assert ours["forces"]["mae"] == pytest.approx(theirs["forces_mae"], rel=1e-5)
    assert ours["energy_per_atom"]["mae"] == pytest.approx(theirs["per_atom_energy_mae"], rel=1e-5)
    assert ours["stress"]["mae"] == pytest.approx(theirs["stress_mae"], rel=1e-5)


def test_checkpoint_reload_reproduces_the_saved_predictions(nequip_run):
    res, store, _ = nequip_run
    p = res.predictions()
    manifest = resolve_split(store, "full", validation=0.1, seed=TINY.seed)
    predictor = NequIPPredictor.from_checkpoint(res.path / "best.ckpt", batch_size=3)  # other batching
    again = predictor.predict(store.frames.take(manifest.subsets["test"]))
    np.testing.assert_allclose(again["energy"], p["energy"], rtol=1e-6)
    np.testing.assert_allclose(again["forces"], p["forces"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again["stress"], p["stress"], rtol=1e-5, atol=1e-8)
    assert predictor.type_names == ["Cu"] and predictor.r_max == TINY.r_max
    with pytest.raises(ValueError, match="atomic numbers"):
        predictor.predict(load_store("W", progress=False).frames.take([0]))


def test_existing_run_is_not_overwritten_and_failures_stay_resumable(nequip_run, tmp_path, monkeypatch):
    import sys

    from tm23data.baselines import nequip as nequip_module

    _, _, out = nequip_run
    with pytest.raises(FileExistsError, match="--overwrite"):
        train_nequip("Cu", "full", TINY, out=out)
    crash = [sys.executable, "-c", "import sys; print('model build exploded'); sys.exit(3)"]
    monkeypatch.setattr(nequip_module, "nequip_train_command", lambda: crash)
    with pytest.raises(RuntimeError, match="(?s)nequip-train failed \\(exit 3\\).*model build exploded"):
        train_nequip("Cu", "full", TINY, out=tmp_path, name="bad")
    assert not (tmp_path / "bad").exists()
    # the work folder stays where it is, resumable by the same command, with its log and the crashed segment
    work = tmp_path / ".bad.partial"
    assert (work / "train.log").read_text().strip().splitlines()[-1] == "model build exploded"
    assert (work / "config.yaml").is_file()
    assert [s["exit"] for s in json.loads((work / "segments.json").read_text())] == ["crashed"]


def test_min_lr_stop_ends_training_once_the_rate_is_below_the_floor():
    """ReduceLROnPlateau (factor 0.2, patience 0, never-improving metric) with MinLearningRateStop(1e-5): the
    learning rate goes 1e-3, 1e-3, 2e-4, 4e-5, 8e-6; the epoch trained at 8e-6 is the last one."""
    import lightning
    import torch
    from torch.utils.data import DataLoader

    from tm23data.baselines.nequip_callbacks import MinLearningRateStop, current_lr

    class Toy(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, i):
            return ((self.w - batch) ** 2).sum()

        def validation_step(self, batch, i):
            self.log("val", torch.tensor(1.0))  # never improves

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=1e-3)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.2, patience=0)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val", "interval": "epoch"}}

        def train_dataloader(self):
            return DataLoader(torch.ones(2, 1), batch_size=1)

        def val_dataloader(self):
            return DataLoader(torch.ones(1, 1), batch_size=1)

    used = []

    class Record(lightning.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            used.append(current_lr(trainer))

    stop = MinLearningRateStop(1e-5)
    trainer = lightning.Trainer(max_epochs=50, callbacks=[Record(), stop], logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(Toy())
    np.testing.assert_allclose(used, [1e-3, 1e-3, 2e-4, 4e-5, 8e-6])
    assert stop.stopped_epoch == 4 and trainer.current_epoch == 5  # stopped long before max_epochs
    with pytest.raises(ValueError):
        MinLearningRateStop(0)


@pytest.mark.slow
def test_learning_curve_and_extxyz_path_train_for_real(cached, tmp_path):
    """The learning-curve driver with real nequip-train runs (2 sizes, extxyz data path, 1 epoch each)."""
    from tm23data.baselines.learning_curve import nequip_learning_curve

    s = NequIPSettings(**{**TINY.to_dict(), "max_epochs": 1, "data": "extxyz"})
    rep = nequip_learning_curve("Cu", sizes=(4, 8), l_maxes=(0,), settings=s, out=tmp_path)
    assert [p["n_train"] for p in rep["points"]] == [4, 8] and "0" in rep["fits"]
    for p in rep["points"]:
        res = results.load_result(p["run"])
        assert res.data["settings"]["data"] == "extxyz" and res.data["training"]["epochs"] == 1
        # the exported files stay beside config.yaml, which points at them, and hold the run's frames
        assert sorted(f.name for f in res.path.glob("*.xyz")) == ["test.xyz", "train.xyz", "validation.xyz"]
        assert res.data["files"]["data_train"] == "train.xyz"
        assert len(read(res.path / "train.xyz", index=":")) == res.data["n_frames"]["train"]
    assert (tmp_path / "learning_curve.png").is_file()


def test_learning_curve_reuses_a_finished_run_only_with_the_same_settings(cached, tmp_path, monkeypatch):
    """Resuming a curve in the same folder with other settings trains again; every point reports the
    settings of the run that made it."""
    from tm23data.baselines import learning_curve
    from tm23data.metrics import Evaluator

    trained = []

    def fake_train(element, split, settings, *, out, name, **kw):  # labels as predictions: a real result file
        trained.append((split, settings.num_features))
        store = load_store(element, progress=False)
        man = resolve_split(store, split, validation=settings.validation, seed=settings.seed)
        test = store.frames.take(man.subsets["test"])
        pred = {"energy": test.energy * 1.01, "forces": test.forces * 1.1, "stress": test.stress}
        metrics = Evaluator(test.natoms, test.energy, test.forces, test.stress).eval(pred)
        with results.RunDir(out, name, overwrite=True) as run:
            record = results.result_record(model="nequip", element=element, split=split, manifest=man, store=store,
                                           settings=settings.to_dict(), metrics=metrics, timing={}, training={},
                                           files={})  # fmt: skip
            results.write_result(run.path, record, results.prediction_arrays(test, pred, store.frame_id[man.subsets["test"]]))
            path = run.commit()
        return results.load_result(path)

    monkeypatch.setattr(learning_curve, "train_nequip", fake_train)
    kwargs = dict(sizes=(4, 8), l_maxes=(1,), out=tmp_path)
    learning_curve.nequip_learning_curve("Cu", features=None, settings=NequIPSettings(num_features=32), **kwargs)
    learning_curve.nequip_learning_curve("Cu", features=None, settings=NequIPSettings(num_features=32), **kwargs)
    assert trained == [("melt_4", 32), ("melt_8", 32)], "identical settings: the finished runs are reused"
    report = learning_curve.nequip_learning_curve("Cu", features="paper", **kwargs)
    assert trained[2:] == [("melt_4", 32), ("melt_8", 32)]  # Table 2's l_max 1 architecture
    assert [p["num_features"] for p in report["points"]] == [32, 32]


def test_the_training_bar_follows_the_epochs_written_by_the_callback(tmp_path):
    """tm23 demo / baselines show NequIP's progress: epochs and training seconds read from timing.jsonl."""
    import json
    import time

    from tm23data.baselines.nequip import _EpochBar, max_time_seconds

    assert max_time_seconds("00:01:02:03") == 3723 and max_time_seconds(90) == 90 and max_time_seconds(None) is None
    timing = tmp_path / "timing.jsonl"
    bar = _EpochBar(timing, budget_s=60)
    lines = [{"event": "fit_start", "time": 0}] + [{"event": "epoch", "epoch": k, "train_s": 7.0 * (k + 1)} for k in range(3)]
    timing.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    deadline = time.time() + 10
    while bar.bar.n < 21 and time.time() < deadline:
        time.sleep(0.2)
    bar.stop()
    assert bar.bar.n == 21 and bar.bar.total == 60 and not bar.thread.is_alive()


def test_tm23_evaluate_nequip_checkpoint_reproduces_the_baseline(nequip_run, tmp_path):
    """``tm23 evaluate nequip:best.ckpt`` (nequip's own ASE calculator) scores the trained model as the
    baseline's evaluation did (the store path, batched)."""
    from tm23data.baselines.evaluate import evaluate

    res, store, out = nequip_run
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TM23_MD5", store.archive_md5)
        ev = evaluate(f"nequip:{res.path / 'best.ckpt'}", "Cu", "full", out=tmp_path, shift_frames=0, progress=False)
    assert ev.data["model_info"]["package"] == "nequip" and len(ev.data["model_info"]["weights_sha256"]) == 64
    for q in ("energy_per_atom", "forces", "stress"):
        assert ev.metrics[q]["mae"] == pytest.approx(res.metrics[q]["mae"], rel=1e-4, abs=1e-7), q


@pytest.mark.slow
def test_tm23_evaluate_compiled_nequip_model_matches_its_checkpoint(nequip_run, tmp_path):
    """``nequip-compile --mode aotinductor`` of the tiny run (about 60 s on 2 CPU cores, hence slow), evaluated
    as ``nequip:PATH.nequip.pt2``: the same predictions as the checkpoint it was compiled from. (TorchScript,
    ``.nequip.pth``, is refused by nequip 0.19 on torch >= 2.10, so only ``.pt2`` can be made here.)"""
    import os
    import subprocess
    import sys

    from tm23data.baselines.evaluate import evaluate

    res, store, out = nequip_run
    compiled = tmp_path / "tiny.nequip.pt2"
    env = {**os.environ, "TM23_MD5": store.archive_md5}  # nequip-compile reads shapes from the training data
    subprocess.run([sys.executable, "-m", "nequip.scripts.compile", "--mode", "aotinductor", "--device", "cpu",
                    "--target", "ase", str(res.path / "best.ckpt"), str(compiled)], check=True, env=env,
                   capture_output=True, timeout=900)  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TM23_MD5", store.archive_md5)
        ev = evaluate(f"nequip:{compiled}", "Cu", "full", out=tmp_path / "runs", shift_frames=0, progress=False)
        ck = evaluate(f"nequip:{res.path / 'best.ckpt'}", "Cu", "full", out=tmp_path / "runs", shift_frames=0,
                      progress=False)  # fmt: skip
    assert ev.data["model_info"]["weights_sha256"] != ck.data["model_info"]["weights_sha256"]
    assert ev.path.name == "nequip-tiny.nequip.pt2_Cu_full"
    a, b = ev.predictions(), ck.predictions()
    np.testing.assert_allclose(a["energy"], b["energy"], atol=1e-5)
    np.testing.assert_allclose(a["forces"], b["forces"], atol=1e-6)
    np.testing.assert_allclose(a["stress"], b["stress"], atol=1e-7)
