"""``tm23 evaluate``: score any interatomic model (:mod:`.models`) on TM23 splits, one run folder per model x
element x split in the schema of the baselines' results (:mod:`.results`), so that ``tm23 report`` puts
foundation models and the paper's baselines in one table.

Universal models have their own energy reference, so every result carries the energy errors twice: raw
(``metrics``) and after one per-element constant shift of the predicted energy per atom fitted on frames of
the training subset (``metrics_shifted``; ``energy_shift`` says the shift and the frames it used; forces and
stress do not change). ``predictions.npz`` holds the test predictions and labels and the training frames'
predicted and reference energies, so that both sets of numbers are recomputable.

Runs are resumable per element: a finished folder for the same model weights and split is kept and loaded;
folders appear whole (:class:`.results.RunDir`). Labels and predictions are compared in float64.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from .. import elements as table
from ..errors import UsageError
from ..selection import Selection
from . import results
from .models import Model, load_model, resolve_device

#: Training frames (evenly spaced) whose energies fit the per-element shift.
SHIFT_FRAMES = 100
#: Frames per batch on a GPU (on CPU, one frame at a time is as fast for CHGNet and SevenNet).
DEFAULT_GPU_BATCH = 16


def run_name(model_name: str, element: str, split: str) -> str:
    """The run folder of a model x element x split, e.g. ``chgnet_Cu_full``."""
    prefix, sep, rest = model_name.partition(":")
    short = f"{prefix}-{Path(rest).name}" if sep else model_name  # nequip:dir/m.nequip.pt2 -> nequip-m.nequip.pt2
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", short).strip("-")
    return f"{slug}_{element}_{split}"


def evaluate(model, elements="all", split: str = "full", *, out="tm23-results", device: str = "cpu",
             batch_size: int | None = None, shift_frames: int = SHIFT_FRAMES, max_frames: int | None = None,
             resume: bool = True, overwrite: bool = False, progress: bool = True, source=None):  # fmt: skip
    """Evaluate ``model`` (any spec of :func:`.models.load_model`) on the test subset of ``split`` for each of
    ``elements`` ("all", "Cu,Ti", a symbol or a list), writing ``OUT/MODEL_ELEMENT_SPLIT/``.

    Args:
        batch_size: frames per call of a batched model (CHGNet, SevenNet); 1 evaluates one frame at a time.
            Default: 16 on a GPU, 1 on CPU (where batching measured no faster: benchmarks/bench_evaluate.py).
        shift_frames: training frames used to fit the energy shift (evenly spaced; 0: no shift).
        max_frames: evaluate only this many test frames, evenly spaced (quick looks; recorded in the result).
        resume: keep a finished run of the same weights and split instead of redoing it.

    Returns the :class:`.results.Result` for one element, else a list of them in element order.
    """
    device = resolve_device(device)
    if batch_size is None:
        batch_size = 1 if device == "cpu" else DEFAULT_GPU_BATCH
    if batch_size < 1 or shift_frames < 0 or (max_frames is not None and max_frames < 1):
        raise UsageError("batch_size and max_frames must be at least 1, shift_frames at least 0")
    single = isinstance(elements, str) and elements != "all" and "," not in elements
    symbols = element_list(elements)
    t0 = time.perf_counter()
    model = load_model(model, device)
    load_s = time.perf_counter() - t0
    for el in symbols:  # before any run: a model without parameters for an element says so at once
        model.check_element(el)
    done = []
    for el in symbols:
        done.append(_evaluate_element(model, el, split, out=out, batch_size=batch_size, shift_frames=shift_frames,
                                      max_frames=max_frames, resume=resume, overwrite=overwrite, progress=progress,
                                      source=source, load_s=load_s, device=device))  # fmt: skip
    return done[0] if single else done


def element_list(elements) -> list[str]:
    """``"all"`` (or None), ``"Cu,Ti"``, ``"Cu"`` or a list -> validated symbols."""
    if elements is None or elements == "all":
        return list(table.symbols())
    if isinstance(elements, str):
        elements = [e.strip() for e in elements.split(",") if e.strip()]
    return table.resolve(elements)


def _evaluate_element(model: Model, element, split, *, out, batch_size, shift_frames, max_frames, resume, overwrite,
                      progress, source, load_s, device) -> results.Result:  # fmt: skip
    sel = Selection.open(element, split, source=source, progress=progress)
    name = run_name(model.name, element, split)
    folder = Path(out) / name
    ident = model.identity()
    if (folder / results.RESULT_JSON).is_file() and not overwrite:
        old = results.load_result(folder)
        same = (old.data.get("split_hash") == sel.hash and old.data.get("model_info", {}).get("fingerprint")
                == ident["fingerprint"] and old.data["settings"].get("max_frames") == max_frames)  # fmt: skip
        if resume and same:
            return old
        raise UsageError(f"{folder} holds a run of another model, split or frame count; pass --overwrite or "
                         "another --out")  # fmt: skip
    test_idx = _spaced(sel.sizes("test")["test"], max_frames)
    test = sel.frames("test").take(test_idx)
    regimes = sel.regimes("test")[test_idx]
    train_idx = _spaced(sel.sizes("train")["train"], shift_frames) if shift_frames else np.zeros(0, dtype=int)
    train = sel.frames("train").take(train_idx)
    with results.RunDir(out, name, overwrite=overwrite) as run:
        t = time.perf_counter()
        pred = predict(model, test, batch_size=batch_size, progress=progress, desc=f"{model.name} {element} test")
        predict_s = time.perf_counter() - t
        train_pred = predict(model, train, batch_size=batch_size, progress=progress, desc=f"{element} shift",
                             stress=False)["energy"] if len(train) else np.zeros(0)  # fmt: skip
        has_stress = bool(test.has_stress.all()) and len(test) > 0
        if not has_stress:
            pred.pop("stress", None)
        from ..metrics import Evaluator

        evaluator = Evaluator.from_frames(test, regimes, name=f"{sel.name}/test")
        metrics = evaluator.eval(pred)
        shift = fit_energy_shift(train_pred, train.energy, train.natoms)
        metrics_shifted = evaluator.eval({**pred, "energy": pred["energy"] + shift * test.natoms})
        arrays = results.prediction_arrays(test, pred, sel.frame_ids("test")[test_idx])
        arrays.update(regime=np.asarray(regimes, dtype=str), train_frame_id=np.asarray(sel.frame_ids("train")[train_idx], dtype=str),
                      train_natoms=train.natoms, train_energy=np.asarray(train_pred, dtype=np.float64),
                      train_ref_energy=train.energy)  # fmt: skip
        record = results.result_record(
            model=model.name, element=element, split=split, manifest=sel.manifest, store=sel.store,
            settings={"batch_size": batch_size, "device": device, "shift_frames": int(len(train_idx)),
                      "max_frames": max_frames, "subset": "test"},
            metrics=metrics, training={"frames_used": int(len(train_idx)), "what": "energy shift only (pretrained model)"},
            timing={"load_s": load_s, "predict_s": predict_s, "frames_per_s": len(test) / predict_s if predict_s else None,
                    "atoms_per_s": int(test.natoms.sum()) / predict_s if predict_s else None},
            files={})  # fmt: skip
        record.update(kind="evaluation", model_info=ident, metrics_shifted=metrics_shifted,
                      energy_shift={"eV_per_atom": shift, "fitted_on": "train", "n_frames": int(len(train_idx)),
                                    "how": "mean of (reference - predicted) energy per atom"})  # fmt: skip
        record["versions"].update({k: v for k, v in [(ident["package"], ident["version"])] if k and v})
        results.write_result(run.path, record, arrays)
        run.commit()
    return results.load_result(folder)


def fit_energy_shift(pred_energy, ref_energy, natoms) -> float:
    """The constant (eV/atom) that, added to every predicted energy per atom, minimises the squared error on
    these frames: the mean of (reference - predicted) per atom (0 for no frames)."""
    natoms = np.asarray(natoms, dtype=np.float64)
    if not len(natoms):
        return 0.0
    diff = (np.asarray(ref_energy, dtype=np.float64) - np.asarray(pred_energy, dtype=np.float64)) / natoms
    return float(diff.mean())


def _spaced(n: int, k: int | None) -> np.ndarray:
    if k is None or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def predict(model: Model, frames, *, batch_size: int = 16, progress: bool = True, desc: str = "",
            stress: bool = True) -> dict:  # fmt: skip
    """Energies (F,) eV, forces (sum N, 3) eV/Å and stress (F, 3, 3) eV/Å³ (ASE sign) of ``frames``, in float64,
    batched when the model has a batched predictor and ``batch_size`` > 1."""
    from tqdm.auto import tqdm

    images = [_bare(frames.to_atoms(i)) for i in range(len(frames))]
    out: list = []
    with tqdm(total=len(images), desc=desc, unit="frame", disable=not progress, leave=False) as bar:
        if model.predict_batch is not None and batch_size > 1:
            for start in range(0, len(images), batch_size):
                out += model.predict_batch(images[start : start + batch_size], batch_size=batch_size)
                bar.update(min(batch_size, len(images) - start))
        else:
            for atoms in images:
                atoms.calc = model.calculator
                item = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
                if stress:
                    item["stress"] = atoms.get_stress(voigt=False)
                out.append(item)
                bar.update(1)
    natoms = sum(len(a) for a in images)
    result = {
        "energy": np.array([o["energy"] for o in out], dtype=np.float64),
        "forces": np.concatenate([np.asarray(o["forces"], dtype=np.float64) for o in out]) if out else np.zeros((natoms, 3)),
    }
    if stress and all("stress" in o for o in out):
        result["stress"] = np.array([o["stress"] for o in out], dtype=np.float64).reshape(len(out), 3, 3)
    return result


def _bare(atoms):
    atoms.calc = None
    return atoms
