"""Result files of a baseline run: one folder per run, written completely or not at all.

A run folder holds

- ``result.json``: schema ``tm23data.baselines.result/1`` (below): what was trained on which frames, the
  settings and versions used, the paper's metrics on the test set, timings;
- ``result.csv``: the same as one flat row (``tm23 report`` joins these);
- ``predictions.npz``: test-set predictions and reference labels, in frame order (energies eV total,
  forces eV/Å flat over atoms, stress eV/Å³ (F, 3, 3) with the ASE sign), from which every metric in
  ``result.json`` can be recomputed with :mod:`tm23data.metrics`;
- the model (``model.flare.npz`` or nequip's ``best.ckpt``) and the training log.

Runs are built in a temporary sibling folder that is renamed into place only when everything is written
(:class:`RunDir`), so a crashed or interrupted run never leaves a folder that looks complete; a failed run
is kept as ``NAME.failed`` with its log for inspection.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_atomic
from ..errors import UsageError
from ..metrics import QUANTITIES, UNITS
from ..provenance import package_versions, utc_now

log = logging.getLogger(__name__)

SCHEMA = "tm23data.baselines.result/1"
RESULT_JSON, RESULT_CSV, PREDICTIONS = "result.json", "result.csv", "predictions.npz"
#: Distributions whose versions every result records (absent ones are skipped).
VERSIONED = ("tm23data", "numpy", "scipy", "ase", "torch", "nequip", "e3nn", "lightning", "mir-flare", "chgnet")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a result."""
    return package_versions(*VERSIONED)


def host() -> dict:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()}


# --- atomic writes -----------------------------------------------------------------------------------


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def atomic_savez(path: str | os.PathLike, **arrays) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomic(path, buffer.getvalue())


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class RunDir:
    """A run folder built under ``OUT/.NAME.partial-PID`` and renamed to ``OUT/NAME`` by :meth:`commit`.

    Use as a context manager: on an exception the partial folder becomes ``OUT/NAME.failed`` (replacing
    an older one) and the exception propagates. An existing ``OUT/NAME`` is an error unless
    ``overwrite`` is set, in which case it is replaced only at commit time.
    """

    def __init__(self, out: str | os.PathLike, name: str, *, overwrite: bool = False):
        self.final = Path(out).resolve() / name
        if self.final.exists() and not overwrite:
            raise FileExistsError(f"{self.final} exists; choose another --out/--name or pass --overwrite")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.final.with_name(f".{name}.partial-{os.getpid()}")
        self.committed = False

    def __enter__(self) -> RunDir:
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.committed and self.path.exists():
            failed = self.final.with_name(self.final.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(self.path, failed)
            log.warning("run %s failed; its folder is kept as %s", self.final.name, failed)

    def commit(self) -> Path:
        replace_folder(self.path, self.final)
        self.committed = True
        return self.final


def replace_folder(path: Path, final: Path) -> None:
    """Move the finished folder ``path`` to ``final``, replacing an old one with two renames (never a moment
    with neither)."""
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, trash)
        os.replace(path, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(path, final)


# --- the result record ---------------------------------------------------------------------------------


@dataclass
class Result:
    """A loaded ``result.json`` (``data``) and the folder it lives in."""

    path: Path
    data: dict

    @property
    def metrics(self) -> dict:
        return self.data["metrics"]

    def predictions(self) -> dict[str, np.ndarray]:
        with np.load(self.path / self.data["files"]["predictions"], allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def row(self) -> dict:
        return flat_row(self.data)


def result_record(*, model: str, element: str, split: str, manifest, store, settings: dict, metrics: dict,
                  timing: dict, training: dict, files: dict, data_source: dict | None = None) -> dict:  # fmt: skip
    """The ``result.json`` content (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "model": model,
        "element": element,
        "split": split,
        "split_hash": manifest.hash,
        "subset_hashes": dict(manifest.subset_hashes),
        "validation": manifest.validation,
        "split_seed": manifest.seed,
        "n_frames": manifest.sizes(),
        "archive_md5": store.archive_md5,
        "data_source": data_source or describe_source(store),
        "settings": settings,
        "metrics": metrics,
        "units": {**UNITS, "energy": "eV", "time": "s"},
        "timing": timing,
        "training": training,
        "files": files,
        "versions": versions(),
        "host": host(),
        "created": utc_now(),
        "command": " ".join(sys.argv),
    }


def describe_source(store) -> dict:
    origin = store.origin
    return {
        "published": origin.published,
        "data_origin": origin.to_json(),
        "archive_md5": store.archive_md5,
        "archive_name": store.attrs.get("archive_name"),
        "provenance": store.attrs.get("provenance"),  # the archive's PROVENANCE.json for self-made archives
    }


def flat_row(data: dict) -> dict:
    """One flat row: identity, MAE / % error / MAV per quantity, sizes, timings."""
    row = {
        "model": data["model"],
        "element": data["element"],
        "split": data["split"],
        # frames actually trained on (FLARE with max_train_frames or max_time may use fewer than the split has)
        "n_train": data.get("training", {}).get("frames_used", data["n_frames"].get("train")),
        "n_validation": data["n_frames"].get("validation"),
        "n_test": data["n_frames"].get("test"),
    }
    for q in QUANTITIES:
        m = data["metrics"].get(q)
        for key in ("mae", "rmse", "mav", "percent", "mad", "percent_of_spread"):
            row[f"{q}_{key}"] = None if m is None else m.get(key)  # results before 0.2 lack mad / percent_of_spread
    shifted = data.get("metrics_shifted", {}).get("energy_per_atom")  # evaluated models (.evaluate)
    for key in ("mae", "percent", "percent_of_spread"):
        row[f"energy_per_atom_shifted_{key}"] = None if shifted is None else shifted.get(key)
    row["energy_shift_eV_per_atom"] = data.get("energy_shift", {}).get("eV_per_atom")
    row["kind"] = data.get("kind", "baseline")
    row["train_s"] = data["timing"].get("train_s")
    row["frames_per_s"] = data["timing"].get("frames_per_s")
    row["published_data"] = data["data_source"].get("published")
    row["archive_md5"] = data["data_source"].get("archive_md5")
    row["split_hash"] = data["split_hash"]
    row["created"] = data["created"]
    return row


def write_result(run_dir: str | os.PathLike, record: dict, predictions: dict[str, np.ndarray]) -> Path:
    """Write ``predictions.npz``, ``result.csv`` and ``result.json`` (last) into ``run_dir``."""
    run_dir = Path(run_dir)
    record["files"] = {**record.get("files", {}), "predictions": PREDICTIONS}
    atomic_savez(run_dir / PREDICTIONS, **predictions)
    write_atomic(run_dir / RESULT_CSV, rows_to_csv([flat_row(record)]))
    return atomic_write_json(run_dir / RESULT_JSON, record)


def rows_to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buffer.getvalue()


def load_result(path: str | os.PathLike) -> Result:
    """A run folder (or its ``result.json``)."""
    path = Path(path)
    folder = path.parent if path.name == RESULT_JSON else path
    file = folder / RESULT_JSON
    if not file.is_file():
        raise FileNotFoundError(f"{folder}: no {RESULT_JSON} (not a baseline run folder, or the run did not finish)")
    data = json.loads(file.read_text())
    if data.get("schema") != SCHEMA:
        raise UsageError(f"{file}: schema {data.get('schema')!r}, expected {SCHEMA!r}")
    return Result(folder, data)


def reusable_result(path: str | os.PathLike, settings: dict, source=None, *,
                    ignore=("device", "num_workers")) -> Result | None:  # fmt: skip
    """The finished run at ``path`` if it was trained with exactly ``settings`` (every key of it but ``ignore``:
    where it ran, which changes no model) on the archive of ``source`` (default: the configured one), else
    None: a study that reuses runs (learning curve, grid search) retrains it, so that a point is always what
    its settings say."""
    from .. import config

    path = Path(path)
    if not (path / RESULT_JSON).is_file():
        return None
    res = load_result(path)
    wanted = json.loads(json.dumps(settings, default=_json_default))
    differs = sorted(k for k, v in wanted.items() if k not in ignore and res.data["settings"].get(k) != v)
    md5 = (source or config.archive_source()).md5
    if differs or res.data["data_source"]["archive_md5"] != md5:
        log.info("retraining %s: %s", path.name, f"settings differ ({', '.join(differs)})" if differs
                 else "trained on another archive")  # fmt: skip
        return None
    return res


def find_results(paths) -> list[Result]:
    """Every run folder at or under ``paths`` (folders are searched recursively; partial and failed runs,
    whose folders start with '.' or end in '.failed', are skipped)."""
    found: dict[Path, Result] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        if p.is_file() or (p / RESULT_JSON).is_file():
            files = [p if p.is_file() else p / RESULT_JSON]
        else:
            files = [f for f in sorted(p.rglob(RESULT_JSON))
                     if not any(part.startswith(".") or part.endswith(".failed")
                                for part in f.parent.relative_to(p).parts)]  # fmt: skip
        for file in files:
            found[file.parent.resolve()] = load_result(file)
    return list(found.values())


def prediction_arrays(frames, pred: dict, frame_ids) -> dict[str, np.ndarray]:
    """The ``predictions.npz`` arrays: predictions and references of the test frames, in order."""
    out = {
        "frame_id": np.asarray(frame_ids, dtype=str),
        "natoms": frames.natoms,
        "energy": np.asarray(pred["energy"], dtype=np.float64),
        "forces": np.asarray(pred["forces"], dtype=np.float64),
        "ref_energy": frames.energy,
        "ref_forces": frames.forces,
    }
    if pred.get("stress") is not None:
        out["stress"] = np.asarray(pred["stress"], dtype=np.float64)
        out["ref_stress"] = frames.stress
    return out
