"""FLARE sparse GP: training time and peak memory vs the number of training frames and the descriptor size.

Run:

  python benchmarks/bench_flare_scaling.py [--frames 100 200 400 800] [--descriptors 4,2 8,3 12,4]
      [--descriptor-frames 200] [--project 2700] [--out benchmarks/results/flare_scaling]

Each point is a fresh process (so its peak RSS is its own): Cu frames labelled by ASE's EMT (rattled
31-atom fcc supercells, tm23data.generation.synthetic, warm-regime rattle) are added one by one with one
sparse environment per frame and the hyperparameters optimised on the baseline's schedule (after 10
frames, then each doubling, then at the end) - the protocol of ``tm23 baseline flare``. Time and peak RSS
are fitted with power laws a N^b over the measured frame counts and projected to ``--project`` frames
(the paper's 2700 per metal). The machine's load average is recorded beside every point: the numbers are
wall times on a shared machine.

Writes OUT.json, OUT.csv and OUT.png (time and memory vs frames, with the fit and the projection).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def one(args) -> dict:
    """One training run in this process; prints its JSON record."""
    from tm23data.baselines.flare import FlareSettings, FlareSGP
    from tm23data.generation.synthetic import synthetic_frames

    frames = synthetic_frames("Cu", "warm", args.frames, seed=args.seed)
    settings = FlareSettings(n_max=args.n_max, l_max=args.l_max, r_cut=args.r_cut, seed=args.seed)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu0 = time.perf_counter(), time.process_time()
    model = FlareSGP(settings, [29]).fit(frames)  # Cu
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"frames": args.frames, "atoms_per_frame": int(frames.natoms[0]), "n_max": args.n_max,
            "l_max": args.l_max, "r_cut": args.r_cut, "descriptor_dim": settings.descriptor_dim(1),
            "n_sparse": model.n_sparse, "optimisations": len(model.history), "train_s": wall, "train_cpu_s": cpu,
            "peak_rss_MiB": rss / 1024, "rss_before_fit_MiB": rss0 / 1024, "load_avg_1min": os.getloadavg()[0],
            "cpus": os.cpu_count()}  # fmt: skip


def point(frames: int, n_max: int, l_max: int, r_cut: float, seed: int) -> dict:
    cmd = [sys.executable, __file__, "one", "--frames", str(frames), "--n-max", str(n_max), "--l-max", str(l_max),
           "--r-cut", str(r_cut), "--seed", str(seed)]  # fmt: skip
    load = os.getloadavg()[0]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    rec["load_avg_1min_before"] = load
    print(json.dumps(rec), file=sys.stderr)
    return rec


def power_fit(n, y) -> dict:
    b, log_a = np.polyfit(np.log(n), np.log(y), 1)
    return {"a": float(np.exp(log_a)), "b": float(b)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", nargs="?", default="scan", choices=("scan", "one"))
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--descriptors", nargs="+", default=["4,2", "8,3", "12,4"], help="n_max,l_max pairs")
    ap.add_argument("--descriptor-frames", type=int, default=200)
    ap.add_argument("--n-max", type=int, default=8)
    ap.add_argument("--l-max", type=int, default=3)
    ap.add_argument("--r-cut", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--project", type=int, default=2700)
    ap.add_argument("--out", default="benchmarks/results/flare_scaling")
    args = ap.parse_args(argv)
    if args.mode == "one":
        args.frames = args.frames[0]
        print(json.dumps(one(args)))
        return 0

    by_frames = [point(n, args.n_max, args.l_max, args.r_cut, args.seed) for n in args.frames]
    by_descriptor = [point(args.descriptor_frames, *map(int, d.split(",")), args.r_cut, args.seed)
                     for d in args.descriptors]  # fmt: skip
    n = np.array([r["frames"] for r in by_frames], float)
    fits = {key: power_fit(n, [r[key] for r in by_frames]) for key in ("train_s", "train_cpu_s", "peak_rss_MiB")}
    projection = {key: fit["a"] * args.project**fit["b"] for key, fit in fits.items()}
    summary = {"by_frames": by_frames, "by_descriptor": by_descriptor, "fits": fits,
               "projection": {"frames": args.project, **projection}}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from tm23data.atomic import write_atomic
    from tm23data.baselines.results import rows_to_csv, save_figure

    write_atomic(out.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    write_atomic(out.with_suffix(".csv"), rows_to_csv([{"scan": "frames", **r} for r in by_frames]
                                                      + [{"scan": "descriptor", **r} for r in by_descriptor]))  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    grid = np.geomspace(n.min(), args.project, 50)
    for ax, key, label in zip(axes, ("train_s", "peak_rss_MiB"), ("training time (s)", "peak memory (MiB)")):
        ax.loglog(n, [r[key] for r in by_frames], "o", label="measured")
        fit = fits[key]
        ax.loglog(grid, fit["a"] * grid ** fit["b"], "--", label=f"fit a N^{fit['b']:.2f}")
        ax.loglog([args.project], [projection[key]], "s", label=f"projected, N={args.project}")
        ax.set_xlabel("training frames N")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"FLARE sparse GP, B2 n_max {args.n_max} l_max {args.l_max}, Cu EMT, 1 env/frame", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out.with_suffix(".png"))
    print(json.dumps({"fits": fits, "projection": summary["projection"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
