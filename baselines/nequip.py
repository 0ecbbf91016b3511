"""NequIP baseline (nequip 0.19, Hydra + Lightning) with the paper's protocol.

The paper (Methods, "NequIP"): 10% of the training frames, drawn at random, for validation; loss = per-atom
energy MSE + force MSE + stress MSE, all with coefficient 1; Adam; the learning rate is multiplied by 0.2
when the validation force MAE has not improved for 100 epochs, and training stops once it falls below
1e-5 (or at a wall-time limit); the model with the lowest validation force MAE is kept. r_max, number of
layers, l_max, features, learning rate and loss weights were grid-searched and are parameters here
(:class:`NequIPSettings`).

Pipeline (:func:`train_nequip`): resolve the split (tm23data's seeded validation carve) -> write a Hydra
config (:func:`nequip_config`) whose data come from the store (:mod:`.nequip_data`) or from exported
extxyz files -> ``nequip-train -cn config.yaml`` in a subprocess -> load the best checkpoint and predict
the test frames in-process (:class:`NequIPPredictor`) -> metrics with :class:`tm23data.metrics.Evaluator`
-> ``result.json`` / ``result.csv`` / ``predictions.npz`` (:mod:`.results`).

Units throughout: Å, eV (total energy; metrics per atom), eV/Å, eV/Å³ with the ASE stress sign (nequip's
convention as well).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import config as tm23config
from .. import overrides
from ..atomic import atomic_path, write_atomic
from ..errors import StepError, UsageError
from . import results

log = logging.getLogger(__name__)

MONITOR = "val0_epoch/forces_mae"
DATA_PATHS = ("store", "extxyz")
DEVICES = ("auto", "cpu", "cuda")
ACCELERATORS = {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}  # Lightning's names


@dataclass
class NequIPSettings:
    """Model and training settings. Defaults follow the paper's protocol; the architecture defaults are
    nequip's tutorial values (the paper's per-element best values are in its Supplementary Note 6)."""

    r_max: float = 5.0  # Å
    num_layers: int = 4
    l_max: int = 1
    num_features: int = 32
    parity: bool = True
    radial_mlp_depth: int = 2
    radial_mlp_width: int = 64
    num_bessels: int = 8
    bessel_trainable: bool = False
    type_embed_num_features: int | None = None  # None: nequip's default (num_features)
    readout_mlp_hidden_layers_depth: int = 0
    readout_mlp_hidden_layers_width: int | None = None
    convnet_sc: bool = True  # self-connections (nequip's default)
    learning_rate: float = 0.005
    energy_weight: float = 1.0  # coefficient of the per-atom energy MSE
    force_weight: float = 1.0
    stress_weight: float = 1.0
    batch_size: int = 5
    validation: float = 0.1  # fraction of the training frames (seeded)
    seed: int = 0
    max_epochs: int | None = None  # None: until the learning-rate stop (or max_time)
    max_time: str | float | None = None  # "DD:HH:MM:SS" or seconds; None: no limit
    lr_factor: float = 0.2
    lr_patience: int = 100  # epochs
    min_lr: float = 1e-5
    model_dtype: str = "float32"
    ema_decay: float | None = None  # exponential moving average of the weights (nequip's EMALightningModule)
    data: str = "store"  # "store" (tm23data datamodule) or "extxyz" (exported files + nequip's ASEDataModule)
    num_workers: int = 0
    val_batch_size: int | None = None  # default: batch_size
    # where it runs (Lightning): effective batch = batch_size x devices x num_nodes (DDP; see baselines/README)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    devices: int = 1  # processes (GPUs, or CPU processes with gloo) per node
    num_nodes: int = 1

    def __post_init__(self):
        if self.data not in DATA_PATHS:
            raise UsageError(f"data must be one of {DATA_PATHS}, got {self.data!r}")
        if not 0 < self.validation < 1:
            raise UsageError(f"validation must be a fraction in (0, 1) (paper: 0.1), got {self.validation}")
        if self.model_dtype not in ("float32", "float64"):
            raise UsageError(f"model_dtype must be float32 or float64, got {self.model_dtype!r}")
        for name in ("r_max", "learning_rate", "min_lr"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")
        if self.l_max < 0 or self.num_layers < 1 or self.num_features < 1 or self.batch_size < 1:
            raise UsageError("l_max >= 0, num_layers >= 1, num_features >= 1 and batch_size >= 1 are required")
        if not self.min_lr < self.learning_rate:  # else the stop rule ends training after the first epoch
            raise UsageError(f"min_lr ({self.min_lr}) must be below learning_rate ({self.learning_rate})")
        if self.device not in DEVICES:
            raise UsageError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.devices < 1 or self.num_nodes < 1:
            raise UsageError(f"devices and num_nodes must be >= 1, got {self.devices}, {self.num_nodes}")
        if not 0 < self.lr_factor < 1 or self.lr_patience < 0:
            raise UsageError(f"lr_factor must be in (0, 1) and lr_patience >= 0 (paper: 0.2, 100), got "
                             f"{self.lr_factor}, {self.lr_patience}")  # fmt: skip

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def world_size(self) -> int:
        """Training processes (DDP ranks)."""
        return self.devices * self.num_nodes

    @property
    def effective_batch_size(self) -> int:
        """Frames per optimizer step: each DDP rank takes ``batch_size`` frames and the gradients are averaged."""
        return self.batch_size * self.world_size

    @classmethod
    def from_dict(cls, d: dict) -> NequIPSettings:
        """Settings from a dict (``to_dict``'s, a result file's, or ``--set`` text values); unknown keys are errors."""
        return overrides.apply(cls(), d, label="NequIP")


def max_time_string(value: str | float | None) -> str | None:
    """Lightning's ``max_time`` as "DD:HH:MM:SS" from seconds (or a string passed through)."""
    if value is None or isinstance(value, str):
        return value
    seconds = int(math.ceil(float(value)))
    if seconds <= 0:
        raise UsageError(f"max_time must be positive, got {value}")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{seconds:02d}"


def architecture_extras(s: NequIPSettings) -> dict:
    """The ``NequIPGNNModel`` arguments beyond the basic ones, only where they differ from nequip's defaults
    (so configs of runs that do not use them stay as they were)."""
    extras = {}
    if s.bessel_trainable:
        extras["bessel_trainable"] = True
    if s.type_embed_num_features is not None:
        extras["type_embed_num_features"] = s.type_embed_num_features
    if s.readout_mlp_hidden_layers_depth:
        extras["readout_mlp_hidden_layers_depth"] = s.readout_mlp_hidden_layers_depth
    if s.readout_mlp_hidden_layers_width is not None:
        extras["readout_mlp_hidden_layers_width"] = s.readout_mlp_hidden_layers_width
    if not s.convnet_sc:
        extras["convnet_sc"] = False
    return extras


def max_time_seconds(value: str | float | None) -> float | None:
    """Seconds of ``max_time`` given as seconds or "DD:HH:MM:SS"."""
    if value is None or not isinstance(value, str):
        return None if value is None else float(value)
    days, hours, minutes, seconds = (float(x) for x in value.split(":"))
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


# --- config ----------------------------------------------------------------------------------------------


def nequip_config(
    element: str,
    split: str,
    settings: NequIPSettings,
    *,
    archive_md5: str | None = None,
    files: dict[str, str] | None = None,
    stress: bool = True,
    run: tuple[str, ...] = ("train", "test"),
) -> dict:
    """The Hydra config (a plain dict; :func:`write_config` writes YAML) for ``nequip-train``.

    With ``settings.data == "store"`` the data section is a :class:`~.nequip_data.TM23StoreDataModule`
    reading ``element``/``split`` from the store of ``archive_md5``; with ``"extxyz"`` it is nequip's
    ``ASEDataModule`` reading ``files`` (``{"train": ..., "validation": ..., "test": ...}``, written by
    :func:`export_split`). ``stress=False`` drops the stress terms (frames without stress labels).
    Output paths use ``${hydra:runtime.output_dir}``, so the config is independent of where it runs.
    """
    s = settings
    species = [element]
    transforms = [
        {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
         "model_type_names": "${model_type_names}",
         "chemical_species_to_atom_type_map": {el: el for el in species}},
        {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": "${cutoff_radius}"},
    ]  # fmt: skip
    loader = {"_target_": "torch.utils.data.DataLoader", "batch_size": s.batch_size, "num_workers": s.num_workers}
    data: dict = {
        "seed": s.seed,
        "transforms": transforms,
        "train_dataloader": {**loader, "shuffle": True},
        "val_dataloader": {**loader, "batch_size": s.val_batch_size or s.batch_size},
        "test_dataloader": "${data.val_dataloader}",
        "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager",
                          "type_names": "${model_type_names}",
                          "dataloader_kwargs": {"batch_size": max(s.batch_size, 10)}},
    }  # fmt: skip
    if s.data == "store":
        from .nequip_data import TM23StoreDataModule

        data = {
            "_target_": f"{TM23StoreDataModule.__module__}.{TM23StoreDataModule.__qualname__}",
            "element": element,
            "split": split,
            "validation": s.validation,
            "split_seed": s.seed,
            "archive_md5": archive_md5,
            **data,
        }
    else:
        if not files or not {"train", "validation", "test"} <= set(files):
            raise UsageError("the extxyz data path needs files={'train': ..., 'validation': ..., 'test': ...}")
        data = {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "train_file_path": files["train"],
            "val_file_path": files["validation"],
            "test_file_path": files["test"],
            "ase_args": {"format": "extxyz"},
            **data,
        }
    coeffs = {"total_energy": s.energy_weight, "forces": s.force_weight}
    metric_coeffs = {"per_atom_energy_mae": 1.0, "forces_mae": 1.0, "per_atom_energy_rmse": None, "forces_rmse": None}
    if stress:
        coeffs["stress"] = s.stress_weight
        metric_coeffs.update({"stress_mae": 1.0, "stress_rmse": None})
    metrics = {"_target_": "nequip.train.EnergyForceStressMetrics" if stress else "nequip.train.EnergyForceMetrics",
               "coeffs": metric_coeffs}  # fmt: skip
    training_module: dict = {
        "_target_": "nequip.train.EMALightningModule" if s.ema_decay else "nequip.train.NequIPLightningModule",
        "loss": {"_target_": "nequip.train.EnergyForceStressLoss" if stress else "nequip.train.EnergyForceLoss",
                 "per_atom_energy": True, "coeffs": coeffs},
        "val_metrics": metrics,
        "train_metrics": "${training_module.val_metrics}",
        "test_metrics": "${training_module.val_metrics}",
        "optimizer": {"_target_": "torch.optim.Adam", "lr": s.learning_rate},
        "lr_scheduler": {
            "scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "mode": "min",
                          "factor": s.lr_factor, "patience": s.lr_patience},
            "monitor": "${monitored_metric}",
            "interval": "epoch",
            "frequency": 1,
        },
        "model": {
            "_target_": "nequip.model.NequIPGNNModel",
            "seed": s.seed,
            "model_dtype": s.model_dtype,
            "type_names": "${model_type_names}",
            "r_max": "${cutoff_radius}",
            "num_layers": s.num_layers,
            "l_max": s.l_max,
            "parity": s.parity,
            "num_features": s.num_features,
            "radial_mlp_depth": s.radial_mlp_depth,
            "radial_mlp_width": s.radial_mlp_width,
            "num_bessels": s.num_bessels,
            **architecture_extras(s),
            "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
            "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
            "per_type_energy_scales": "${training_data_stats:per_type_forces_rms}",
            "per_type_energy_scales_trainable": False,
            "per_type_energy_shifts_trainable": False,
        },
    }  # fmt: skip
    if s.ema_decay:
        training_module["ema_decay"] = s.ema_decay
    trainer: dict = {
        "_target_": "lightning.Trainer",
        "accelerator": ACCELERATORS[s.device],
        "devices": s.devices,
        "num_nodes": s.num_nodes,
        "max_epochs": s.max_epochs if s.max_epochs is not None else -1,
        "check_val_every_n_epoch": 1,
        "log_every_n_steps": 50,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "${hydra:runtime.output_dir}",
                   "name": "", "version": ""},
        "callbacks": [
            {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "monitor": "${monitored_metric}",
             "mode": "min", "dirpath": "${hydra:runtime.output_dir}", "filename": "best", "save_top_k": 1,
             "save_last": True},
            {"_target_": "tm23data.baselines.nequip_callbacks.MinLearningRateStop", "min_lr": s.min_lr},
            {"_target_": "tm23data.baselines.nequip_callbacks.EpochTimer",
             "log_file": "${hydra:runtime.output_dir}/timing.jsonl"},
            {"_target_": "tm23data.baselines.nequip_callbacks.PreemptionCheckpoint",
             "dirpath": "${hydra:runtime.output_dir}"},
        ],
    }  # fmt: skip
    if s.world_size > 1:  # Lightning picks the process-group backend: nccl on GPUs, gloo on CPUs
        trainer["strategy"] = "ddp"
    if s.max_time is not None:
        trainer["max_time"] = max_time_string(s.max_time)
    return {
        "run": list(run),
        "seed": s.seed,
        "cutoff_radius": float(s.r_max),
        "model_type_names": species,
        "monitored_metric": MONITOR,
        "data": data,
        "trainer": trainer,
        "training_module": training_module,
        "global_options": {"allow_tf32": False},
    }


def write_config(path: str | os.PathLike, cfg: dict) -> Path:
    """Write ``cfg`` as YAML (via OmegaConf, keeping ``${...}`` interpolations unresolved)."""
    from omegaconf import OmegaConf

    text = "# generated by tm23data.baselines.nequip; run with: nequip-train -cn config.yaml\n"
    text += OmegaConf.to_yaml(OmegaConf.create(cfg))
    return write_atomic(path, text)


def export_split(store, manifest, folder: str | os.PathLike) -> dict[str, str]:
    """Write the split's subsets as extxyz (``train.xyz``, ``validation.xyz``, ``test.xyz``) for nequip's
    ``ASEDataModule``; returns subset -> file name (relative to ``folder``)."""
    from ..extxyz import write_extxyz

    out = {}
    for subset, idx in manifest.subsets.items():
        name = f"{subset}.xyz"
        path = Path(folder) / name
        with atomic_path(path) as tmp:
            write_extxyz(tmp, store.frames.take(idx))
        out[subset] = name
    return out


# --- prediction -------------------------------------------------------------------------------------------


class NequIPPredictor:
    """A trained NequIP model (from a nequip checkpoint) predicting energy (eV), forces (eV/Å) and stress
    (eV/Å³, ASE sign, 3x3) for tm23data :class:`~tm23data.frames.Frames`, in batches."""

    def __init__(self, model, *, device: str = "cpu", batch_size: int = 8):
        from nequip.integrations.utils import basic_transforms
        from nequip.nn import graph_model

        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        meta = model.metadata
        self.r_max = float(meta[graph_model.R_MAX_KEY])
        self.type_names = str(meta[graph_model.TYPE_NAMES_KEY]).split(" ")
        self.transforms = basic_transforms(meta, self.r_max, self.type_names, {t: t for t in self.type_names})

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs) -> NequIPPredictor:
        from nequip.model.saved_models.load_utils import load_saved_model
        from nequip.utils.global_state import set_global_state

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such NequIP checkpoint")
        # nequip's loggers log every checkpoint load at INFO, each with its own level: raise them meanwhile
        loggers = [lg for name, lg in logging.Logger.manager.loggerDict.items()
                   if name.startswith("nequip") and isinstance(lg, logging.Logger)]  # fmt: skip
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.WARNING))
        try:
            set_global_state(allow_tf32=False)
            model = load_saved_model(str(path), compile_mode="eager")
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
        return cls(model, **kwargs)

    @property
    def n_weights(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters() if p.requires_grad))

    def predict(self, frames) -> dict[str, np.ndarray]:
        import torch
        from nequip.data import AtomicDataDict

        from .nequip_data import frames_to_data_list

        species = set(np.unique(frames.numbers).tolist())
        from ase.data import atomic_numbers

        known = {atomic_numbers[t] for t in self.type_names if t in atomic_numbers}
        if not species <= known:
            raise UsageError(f"frames contain atomic numbers {sorted(species - known)} the model does not know "
                             f"(its types: {self.type_names})")  # fmt: skip
        data_list = frames_to_data_list(frames, with_labels=False)
        energy, forces, stress = [], [], []
        for start in range(0, len(data_list), self.batch_size):
            chunk = data_list[start : start + self.batch_size]
            items = []
            for d in chunk:
                d = d.copy()
                for t in self.transforms:
                    d = t(d)
                items.append(d)
            batch = AtomicDataDict.to_(AtomicDataDict.batched_from_list(items), self.device)
            with torch.enable_grad():
                out = self.model(batch)
            energy.append(out[AtomicDataDict.TOTAL_ENERGY_KEY].detach().cpu().double().numpy().reshape(-1))
            forces.append(out[AtomicDataDict.FORCE_KEY].detach().cpu().double().numpy())
            if AtomicDataDict.STRESS_KEY in out:
                stress.append(out[AtomicDataDict.STRESS_KEY].detach().cpu().double().numpy().reshape(-1, 3, 3))
        return {
            "energy": np.concatenate(energy) if energy else np.zeros(0),
            "forces": np.concatenate(forces) if forces else np.zeros((0, 3)),
            "stress": np.concatenate(stress) if stress else None,
        }


# --- training run -------------------------------------------------------------------------------------------


@dataclass
class TrainingLog:
    """What ``metrics.csv`` (Lightning's CSVLogger) says about a run."""

    epochs: int = 0
    final_lr: float | None = None
    best_val_forces_mae: float | None = None
    best_epoch: int | None = None
    epoch_time_s: list[float] = field(default_factory=list)
    test: dict = field(default_factory=dict)  # nequip's own test metrics (test0_epoch/...)

    def to_dict(self) -> dict:
        times = np.asarray(self.epoch_time_s)
        return {
            "epochs": self.epochs,
            "final_lr": self.final_lr,
            "best_val_forces_mae": self.best_val_forces_mae,
            "best_epoch": self.best_epoch,
            "epoch_time_s_median": float(np.median(times)) if len(times) else None,
            "epoch_time_s_first": float(times[0]) if len(times) else None,
            "nequip_test_metrics": self.test,
        }


def read_training_log(path: str | os.PathLike) -> TrainingLog:
    """Reads ``metrics.csv`` after the ``metrics.segN.csv`` of earlier segments (a resumed CSVLogger does not
    keep the rows it did not write, so each segment's file is set aside before the next one starts)."""
    out = TrainingLog()
    path = Path(path)
    files = sorted(path.parent.glob(f"{path.stem}.seg*.csv"), key=lambda p: int(p.stem.rsplit("seg", 1)[1] or 0))
    files += [path] if path.is_file() else []
    rows = []
    for file in files:
        with open(file, newline="") as fh:
            rows += list(csv.DictReader(fh))

    def num(row, key):
        value = row.get(key, "")
        return float(value) if value not in ("", None) else None

    epochs = set()
    for row in rows:
        epoch = num(row, "epoch")
        if (t := num(row, "epoch_time_s")) is not None:
            out.epoch_time_s.append(t)
            epochs.add(int(epoch))
        if (lr := num(row, "lr")) is not None:
            out.final_lr = lr
        if (v := num(row, MONITOR)) is not None and (out.best_val_forces_mae is None or v < out.best_val_forces_mae):
            out.best_val_forces_mae, out.best_epoch = v, int(epoch)
        for key, value in row.items():
            if key.startswith("test0_epoch/") and value not in ("", None):
                out.test[key.split("/", 1)[1]] = float(value)
    out.epochs = len(epochs)
    return out


def nequip_train_command() -> list[str]:
    """``nequip-train`` of this interpreter's environment (or ``python -m nequip.scripts.train``)."""
    exe = shutil.which("nequip-train", path=str(Path(sys.executable).parent)) or shutil.which("nequip-train")
    return [exe] if exe else [sys.executable, "-m", "nequip.scripts.train"]


def run_nequip_train(run_dir: Path, *, archive_md5: str, log_name: str = "train.log", echo: bool = False,
                     checkpoint: str | None = None, trainer_overrides: dict | None = None, progress: bool = False,
                     budget_s: float | None = None) -> dict:  # fmt: skip
    """Run ``nequip-train -cn config.yaml`` in ``run_dir`` (outputs there too); returns its wall time
    (``wall_s``) and start-up time (``startup_s``: launch to the start of ``trainer.fit``, i.e. interpreter,
    imports, datamodule, data statistics and model build).

    ``checkpoint`` continues training from that file (``++ckpt_path=``; same folder, same config: nequip
    restores the model, optimizer, scheduler and loop state from it). ``trainer_overrides`` set
    ``trainer.KEY`` for this segment only (e.g. the device). SIGTERM and SIGUSR1 received here are passed
    on to nequip-train, which saves its checkpoint and exits with ``PREEMPTED_EXIT``: then
    :class:`~.nequip_run.Preempted` is raised. The log is appended to, one block per segment.

    The subprocess sees the same cache (``TM23_HOME``) and archive (``TM23_MD5``) as this process, offline.
    ``progress``: a tqdm bar of the epochs (over ``budget_s`` seconds when given), read from the run's
    ``timing.jsonl`` while it trains.
    """
    from .nequip_run import PREEMPTED_EXIT
    from .nequip_run import Preempted

    env = {**os.environ, "TM23_HOME": str(tm23config.home()), "TM23_MD5": archive_md5, "TM23_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1"}  # fmt: skip
    # Hydra's own record stays in .hydra: a folder named "hydra" next to config.yaml would shadow Hydra's
    # "hydra/config" schema for every later `-cn config.yaml` there (a resumed segment, DDP's other ranks)
    cmd = [*nequip_train_command(), "-cn", "config.yaml", "hydra.run.dir=.", "hydra.output_subdir=.hydra"]
    if checkpoint:
        cmd.append(f"++ckpt_path={checkpoint}")
    cmd += [f"++trainer.{key}={value}" for key, value in (trainer_overrides or {}).items()]
    launched, start = time.time(), time.perf_counter()
    watcher = _EpochBar(run_dir / "timing.jsonl", budget_s) if progress else None
    with open(run_dir / log_name, "ab") as logfile:
        logfile.write(f"=== {' '.join(cmd[-3:] if checkpoint else cmd[-2:])} (pid {os.getpid()}) ===\n".encode())
        logfile.flush()
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        previous = _forward_signals(proc)
        try:
            for line in proc.stdout:
                logfile.write(line)
                if echo:
                    sys.stdout.write(line.decode(errors="replace"))
            rc = proc.wait()
        finally:  # an interrupt or error here must not leave nequip-train writing into a failed run folder
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if watcher is not None:
                watcher.stop()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    elapsed = time.perf_counter() - start
    if rc == PREEMPTED_EXIT:
        raise Preempted(f"nequip-train stopped on a signal after saving {run_dir / 'last.ckpt'}; rerun the same "
                        "command to continue")  # fmt: skip
    if rc != 0:
        tail = (run_dir / log_name).read_text(errors="replace").splitlines()[-30:]
        raise StepError(
            f"nequip-train failed (exit {rc}) in {run_dir}; last lines of {log_name}:\n" + "\n".join(tail)
        )
    fit_start = None
    timing = run_dir / "timing.jsonl"
    if timing.is_file():
        events = [json.loads(line) for line in timing.read_text().splitlines() if line.strip()]
        fit_start = next((e["time"] for e in events if e.get("event") == "fit_start" and e["time"] >= launched), None)
    return {"wall_s": elapsed, "startup_s": None if fit_start is None else fit_start - launched}



def _forward_signals(proc) -> dict:
    """Pass SIGTERM / SIGUSR1 on to ``proc`` (which checkpoints and exits); returns the previous handlers."""
    import threading

    previous: dict = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for name in ("SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, lambda signum, frame: proc.poll() is None and proc.send_signal(signum))
    return previous


class _EpochBar:
    """A tqdm bar fed by a thread that reads the epoch lines of ``timing.jsonl`` (written by the training
    callback) once a second: epochs done, and seconds of training against the budget."""

    def __init__(self, path: Path, budget_s: float | None):
        import threading

        from tqdm.auto import tqdm

        self.path, self.done = path, threading.Event()
        self.bar = tqdm(total=round(budget_s) if budget_s else None, desc="NequIP training", unit="s", leave=False)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(1.0):
            try:
                events = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
            except (OSError, ValueError):
                continue
            epochs = [e for e in events if e.get("event") == "epoch"]
            if epochs:
                seconds = round(float(epochs[-1].get("train_s", 0)))
                self.bar.update(max(0, seconds - self.bar.n))
                self.bar.set_postfix(epochs=len(epochs), refresh=True)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.bar.close()


def train_nequip(
    element: str,
    split: str = "full",
    settings: NequIPSettings | None = None,
    *,
    out: str | os.PathLike = "tm23-results",
    name: str | None = None,
    overwrite: bool = False,
    source=None,
    echo: bool = False,
    progress: bool = False,
) -> results.Result:
    """Train NequIP on ``element``/``split`` with ``settings``, evaluate the best checkpoint on the test
    set, and write the run folder ``OUT/NAME`` (default name ``nequip_{element}_{split}``).

    Training runs in ``OUT/.NAME.partial`` (:mod:`.nequip_run`): if that folder exists with the same
    settings, training continues from its last checkpoint; a signal saves one and raises
    :class:`~.nequip_run.Preempted` (``tm23`` exits with 75), so calling this again continues the run."""
    from ..selection import Selection
    from .nequip_run import Preempted, ResumableRun, total_wall_s

    settings = settings or NequIPSettings()
    selection = Selection.open(element, split, validation=settings.validation, seed=settings.seed, source=source)
    store, manifest = selection.store, selection.manifest
    stress = selection.has_stress("train+validation")
    name = name or f"nequip_{element}_{split}"
    identity = {"model": "nequip", "element": element, "split": split, "archive_md5": store.archive_md5,
                "split_hash": manifest.hash, "settings": settings.to_dict()}  # fmt: skip
    with ResumableRun(out, name, identity, overwrite=overwrite) as run:
        segments = run.segments
        if not segments:
            files = export_split(store, manifest, run.path) if settings.data == "extxyz" else None
            cfg = nequip_config(element, split, settings, archive_md5=store.archive_md5, files=files, stress=stress)
            write_config(run.path / "config.yaml", cfg)
        else:
            files = {subset: f"{subset}.xyz" for subset in manifest.subsets} if settings.data == "extxyz" else None
        if not segments or segments[-1]["exit"] != "finished":
            resume = run.checkpoint
            if resume and (run.path / "metrics.csv").is_file():
                os.replace(run.path / "metrics.csv", run.path / f"metrics.seg{len(segments) - 1}.csv")
            log.info("%s NequIP on %s/%s in %s", "continuing" if resume else "training", element, split, run.path)
            seg = run.start_segment(pid=os.getpid(), devices=settings.devices, num_nodes=settings.num_nodes,
                                    device=settings.device, slurm_job=os.environ.get("SLURM_JOB_ID"))  # fmt: skip
            try:
                proc = run_nequip_train(run.path, archive_md5=store.archive_md5, echo=echo, progress=progress,
                                        budget_s=max_time_seconds(settings.max_time),
                                        checkpoint=resume.name if resume else None,
                                        trainer_overrides={"accelerator": ACCELERATORS[settings.device]})  # fmt: skip
            except Preempted:
                run.end_segment(seg, "preempted", epochs=read_training_log(run.path / "metrics.csv").epochs)
                raise
            except BaseException as exc:
                run.end_segment(seg, "crashed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                raise
            run.end_segment(seg, "finished", epochs=read_training_log(run.path / "metrics.csv").epochs,
                            startup_s=proc["startup_s"])
        segments = run.segments
        checkpoint = run.path / "best.ckpt"
        if not checkpoint.is_file():
            raise StepError(f"nequip-train finished without writing {checkpoint} (see train.log)")
        training = read_training_log(run.path / "metrics.csv")

        test_idx = manifest.subsets["test"]
        test_frames = selection.frames("test")
        predictor = NequIPPredictor.from_checkpoint(checkpoint)
        start = time.perf_counter()
        pred = predictor.predict(test_frames)
        predict_s = time.perf_counter() - start
        evaluator = selection.evaluator("test")
        if evaluator.stress is None:
            pred["stress"] = None
        metrics = evaluator.eval(pred)
        record = results.result_record(
            model="nequip", element=element, split=split, manifest=manifest, store=store,
            settings={**settings.to_dict(), "stress_in_loss": stress, "n_weights": predictor.n_weights,
                      "effective_batch_size": settings.effective_batch_size},
            metrics=metrics,
            timing={"train_s": total_wall_s(segments), "startup_s": segments[-1].get("startup_s"),
                    "predict_s": predict_s,
                    "predict_s_per_atom": predict_s / max(1, int(test_frames.natoms.sum())),
                    "epoch_s_median": training.to_dict()["epoch_time_s_median"]},
            training={**training.to_dict(), "segments": segments},
            files={"config": "config.yaml", "checkpoint": "best.ckpt", "segments": "segments.json", "log": "train.log", "metrics_csv": "metrics.csv",
                   "timing": "timing.jsonl",
                   # the extxyz files config.yaml points at stay, so `nequip-train -cn config.yaml` reruns as is
                   **{f"data_{subset}": name for subset, name in (files or {}).items()}},
        )  # fmt: skip
        results.write_result(run.path, record, results.prediction_arrays(test_frames, pred, store.frame_id[test_idx]))
        final = run.commit()
    return results.load_result(final)
