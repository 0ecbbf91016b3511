"""Baselines benchmark (not a timed test): NequIP data paths, FLARE cost, learning-curve exponents.

Run (each writes a JSON summary to --json, default stdout):

  python benchmarks/bench_baselines.py datapath [--archive ZIP --md5 MD5] [--element W] [--epochs 4] [--repeat 2]
      NequIP epoch time (training part; CPU time median and wall time minimum over epochs 2..E of every
      run) and start-up time (launch of nequip-train to the start of trainer.fit) with our store datamodule vs nequip's ASEDataModule reading the
      exported extxyz of the same frames (same split, seed, model). Targets: epoch ratio store/ASE <= 1.05,
      store start-up faster. Also times the dataset construction alone, in-process.
  python benchmarks/bench_baselines.py flare [--archive ZIP --md5 MD5] [--element Cu] [--frames 100]
      FLARE training time per frame (with and without the hyperparameter optimisations) and prediction time
      per atom, at the paper-like descriptor (r_cut 5, n_max 8, l_max 3) and the demo one.
  python benchmarks/bench_baselines.py learning-curve --archive ZIP --md5 MD5 --element Cu --sizes 15 30 60 120
      NequIP learning curves (melt_N, l_max list) with a fixed optimizer-step budget per model, and the fitted
      exponents b of force MAE = a N^b.

Without --archive a TM23-format archive is made with tm23data.generation.synthetic (rattled crystals, EMT/LJ labels).
Locally generated MD data: tm23 generate Cu --calculator emt --frames 250 OUT/ (or --calculator chgnet).
Every run uses a private TM23_HOME in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tm23data.atomic import write_atomic


def setup_data(args, tmp: Path) -> str:
    """Import the archive (given or synthetic) into a private cache; returns its md5."""
    os.environ["TM23_HOME"] = str(tmp / "home")
    os.environ.pop("TM23_URL", None)
    from tm23data import config
    from tm23data.fetch import import_archive

    if args.archive:
        path, md5 = Path(args.archive), args.md5
        if not md5:
            from tm23data.hashes import file_md5

            md5 = file_md5(path)
    else:
        from tm23data.generation.synthetic import synthetic_archive

        path = tmp / "synthetic.zip"
        md5 = synthetic_archive(
            path, [args.element], args.frames_per_regime, max(1, args.frames_per_regime // 10), seed=0
        )
    os.environ["TM23_MD5"] = md5
    import_archive(path, config.archive_source(md5=md5))
    return md5


def epoch_times(run_dir: Path) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds of the training part of each epoch, from the EpochTimer log."""
    events = [json.loads(x) for x in (run_dir / "timing.jsonl").read_text().splitlines() if x.strip()]
    epochs = [e for e in events if e.get("event") == "epoch"]
    return [e["train_s"] for e in epochs], [e["train_cpu_s"] for e in epochs]


def bench_datapath(args, tmp: Path) -> dict:
    from tm23data.baselines.nequip import NequIPSettings, export_split, train_nequip
    from tm23data.baselines.nequip_data import TM23StoreDataset, split_frames
    from tm23data.splits import resolve_split
    from tm23data.store import load_store

    store = load_store(args.element, progress=False)
    s = NequIPSettings(r_max=5.0, num_layers=2, l_max=1, num_features=16, radial_mlp_depth=1, radial_mlp_width=32,
                       batch_size=5, max_epochs=args.epochs, seed=0)  # fmt: skip
    runs: dict[str, list] = {"store": [], "extxyz": []}
    for r in range(args.repeat):
        for path in ("store", "extxyz") if r % 2 == 0 else ("extxyz", "store"):
            res = train_nequip(args.element, args.split, replace(s, data=path), out=tmp / "runs", name=f"{path}_{r}")
            wall, cpu = epoch_times(res.path)
            runs[path].append({"startup_s": res.data["timing"]["startup_s"], "epoch_s": wall, "epoch_cpu_s": cpu,
                               "wall_s": res.data["timing"]["train_s"]})  # fmt: skip
            print(f"{path} run {r}: start-up {runs[path][-1]['startup_s']:.2f} s, epochs (wall/CPU s) "
                  + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in zip(wall, cpu)), file=sys.stderr, flush=True)  # fmt: skip
    # dataset construction alone (train subset), in-process
    from nequip.data.dataset import ASEDataset

    manifest = resolve_split(store, args.split, validation=0.1, seed=0)
    files = export_split(store, manifest, tmp)
    t = time.perf_counter()
    ours = TM23StoreDataset(
        args.element, args.split, "train", validation=0.1, split_seed=0, archive_md5=store.archive_md5
    )
    store_build = time.perf_counter() - t
    t = time.perf_counter()
    theirs = ASEDataset(str(tmp / files["train"]), ase_args={"format": "extxyz"})
    ase_build = time.perf_counter() - t
    assert (
        len(ours) == len(theirs) == len(split_frames(args.element, args.split, "train", validation=0.1, split_seed=0))
    )

    def med(path, key):  # epochs after the first of every run
        return statistics.median(x for run in runs[path] for x in run[key][1:] or run[key])

    def least(path, key):
        return min(x for run in runs[path] for x in run[key][1:] or run[key])

    out = {
        "element": args.element,
        "split": args.split,
        "frames": manifest.sizes(),
        "atoms_per_frame": int(store.frames.natoms[0]),
        "settings": s.to_dict(),
        "epoch_s_min": {p: {"wall": least(p, "epoch_s"), "cpu": least(p, "epoch_cpu_s")} for p in runs},
        "epoch_s_median": {p: {"wall": med(p, "epoch_s"), "cpu": med(p, "epoch_cpu_s")} for p in runs},
        "epoch_ratio_store_over_ase": {
            k: least("store", key) / least("extxyz", key) for k, key in (("wall", "epoch_s"), ("cpu", "epoch_cpu_s"))
        },
        "note": "epoch times: training part only (validation excluded), epochs after the first of every run; the "
        "ratio uses the minimum over epochs (robust to other load on a shared machine; medians listed too)",
        "startup_s": {
            p: {
                "min": min(r["startup_s"] for r in runs[p]),
                "median": statistics.median(r["startup_s"] for r in runs[p]),
            }
            for p in runs
        },
        "dataset_build_s": {"store": store_build, "ase": ase_build},
        "runs": runs,
    }
    return out


def bench_flare(args, tmp: Path) -> dict:
    import numpy as np

    from tm23data.baselines.demo import DEMO_FLARE
    from tm23data.baselines.flare import FlareSettings, FlareSGP, evenly_spaced
    from tm23data.splits import resolve_split
    from tm23data.store import load_store

    store = load_store(args.element, progress=False)
    manifest = resolve_split(store, args.split)
    train_idx = manifest.subsets["train"]
    train = store.frames.take(train_idx[evenly_spaced(len(train_idx), args.frames)])
    test = store.frames.take(manifest.subsets["test"])
    out = {"element": args.element, "split": args.split, "train_frames": len(train), "test_frames": len(test),
           "atoms_per_frame": int(train.natoms[0]), "models": []}  # fmt: skip
    for label, settings in (("paper-like (r_cut 5, n_max 8, l_max 3)", FlareSettings(r_cut=5.0, n_max=8, l_max=3)),
                            ("demo (r_cut 4.5, n_max 6, l_max 3)", DEMO_FLARE)):  # fmt: skip
        t = time.perf_counter()
        model = FlareSGP(settings, np.unique(train.numbers)).fit(train)
        fit_s = time.perf_counter() - t
        opt_s = sum(h["seconds"] for h in model.history)
        t = time.perf_counter()
        model.predict(test)
        pred_s = time.perf_counter() - t
        row = {"settings": label, "descriptor_dim": model.descriptor_dim(), "n_sparse": model.n_sparse,
               "train_s_per_frame": fit_s / len(train), "train_s_per_frame_without_hyperopt": (fit_s - opt_s) / len(train),
               "hyperopt_s": opt_s, "optimisations": len(model.history),
               "predict_ms_per_atom": 1000 * pred_s / int(test.natoms.sum())}  # fmt: skip
        out["models"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return out


def bench_learning_curve(args, tmp: Path) -> dict:
    from tm23data.baselines.learning_curve import nequip_learning_curve
    from tm23data.baselines.nequip import NequIPSettings

    s = NequIPSettings(r_max=5.0, num_layers=2, num_features=16, radial_mlp_depth=1, radial_mlp_width=32,
                       batch_size=5, learning_rate=0.01, lr_patience=args.lr_patience, seed=0)  # fmt: skip
    out = Path(args.out) if args.out else tmp / "lc"
    rep = nequip_learning_curve(args.element, sizes=args.sizes, l_maxes=args.l_max, settings=s, out=out,
                                steps=args.steps)  # fmt: skip
    return {k: rep[k] for k in ("element", "regime", "sizes", "l_maxes", "steps", "fits", "points")} | {"out": str(out)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("datapath", "flare", "learning-curve"))
    p.add_argument("--archive", help="TM23-format zip (default: a synthetic one)")
    p.add_argument("--md5")
    p.add_argument("--element", default="W")
    p.add_argument("--split", default="full")
    p.add_argument("--frames-per-regime", type=int, default=100, help="synthetic archive: training frames per regime")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--frames", type=int, default=100, help="FLARE: training frames")
    p.add_argument("--sizes", type=int, nargs="+", default=[15, 30, 60, 120])
    p.add_argument("--l-max", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1500, help="learning curve: optimizer steps per model")
    p.add_argument("--lr-patience", type=int, default=10, help="learning curve: ReduceLROnPlateau patience (epochs)")
    p.add_argument("--out", help="learning curve: output folder (default: temporary)")
    p.add_argument("--json", help="write the summary here (default stdout)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm23-bench-") as tmp:
        tmp = Path(tmp)
        md5 = setup_data(args, tmp)
        t = time.perf_counter()
        result = {"datapath": bench_datapath, "flare": bench_flare, "learning-curve": bench_learning_curve}[args.what](
            args, tmp
        )
        from tm23data.baselines.results import host, versions

        result.update(archive_md5=md5, wall_s=time.perf_counter() - t, versions=versions(), host=host())
    text = json.dumps(result, indent=2)
    if args.json:
        write_atomic(args.json, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
