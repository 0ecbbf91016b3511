"""Benchmark of tm23data.generation (not a timed test).

1. Inputs: write every VASP input of the full protocol -- 27 elements x 3 regimes: AIMD inputs and job
   scripts (81 runs), then the static inputs of 1000 frames per regime (81,000 POSCARs + INCAR/KPOINTS/
   POTCAR.spec + array scripts). Frames are the supercells displaced at random (no AIMD here). Target < 30 s.
2. Extraction: 1000 frames from an 11,000-step XDATCAR (one regime, 53 atoms).
3. Local pipeline throughput: MD steps and labels per second with EMT and CHGNet, and the resulting frames
   per second at the paper's protocol (10 MD steps of 5 fs per kept frame + one label; equilibration not
   counted).

    python benchmarks/bench_generation.py [--out DIR] [--skip-chgnet] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_inputs(root: Path) -> dict:
    from tm23data import elements
    from tm23data.generation.slurm import Campaign, static_script
    from tm23data.generation.vasp import atomic_write, write_static_inputs

    t0 = time.perf_counter()
    campaign = Campaign.create_or_update(root, elements.symbols())
    campaign.write_aimd_inputs()
    t_aimd = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    n = campaign.settings.md.n_frames
    t1 = time.perf_counter()
    for el, regime in campaign.pairs():
        base = campaign.structure(el).atoms
        symbols, cell = base.get_chemical_symbols(), base.cell.array
        disp = rng.normal(0.0, 0.1, (n, len(base), 3))
        frames = [(symbols, cell, base.positions + disp[i]) for i in range(n)]
        folder = campaign.labels_dir(el, regime)
        write_static_inputs(folder, el, regime, frames, campaign.settings)
        atomic_write(folder / "labels.sbatch", static_script(campaign, folder, f"tm23-{el}-{regime}-labels"))
    t_labels = time.perf_counter() - t1
    n_files = sum(1 for _ in root.glob("*/*/labels/poscars/*.vasp"))
    return {"aimd_runs": 81, "aimd_s": round(t_aimd, 2), "label_frames": n_files, "labels_s": round(t_labels, 2),
            "total_s": round(t_aimd + t_labels, 2)}  # fmt: skip


def bench_extraction(tmp: Path) -> dict:
    from tm23data.generation.extract import extract_frames
    from tm23data.generation.settings import MDSettings
    from tm23data.generation.structures import build_supercell

    md = MDSettings()
    base = build_supercell("W").atoms
    frac = base.get_scaled_positions()
    rng = np.random.default_rng(0)
    seg = tmp / "seg000"
    seg.mkdir(parents=True)
    (seg / "INCAR").write_text("IBRION = 0\nPOTIM = 5.0\nNBLOCK = 1\n")
    with open(seg / "XDATCAR", "w") as fh:  # written directly: 11,000 configurations
        cell = base.cell.array
        fh.write("W\n           1\n" + "".join("    " + "".join(f"{x:12.6f}" for x in row) + "\n" for row in cell))
        fh.write(f"    W\n   {len(base)}\n")
        for k in range(md.total_steps):
            fh.write(f"Direct configuration={k + 1:6d}\n")
            f = (frac + rng.normal(0, 0.01, frac.shape)) % 1.0
            fh.write("".join(f"  {a:.8f}  {b:.8f}  {c:.8f}\n" for a, b, c in f))
    t0 = time.perf_counter()
    out = extract_frames([seg], md)
    return {"steps": md.total_steps, "atoms": len(base), "frames": len(out),
            "xdatcar_MB": round((seg / "XDATCAR").stat().st_size / 1e6, 1), "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip


def bench_local(
    element: str,
    calculator: str,
    *,
    rule: str = "vectors",
    steps: int = 40,
    labels: int = 5,
    threads: int | None = None,
) -> dict:
    from tm23data.generation.local import label_frames, make_calculator, run_md
    from tm23data.generation.settings import Settings
    from tm23data.generation.structures import build_supercell

    settings = Settings().override({"structure.rule": rule, "md.equilibration_fs": 5.0 * (steps // 2),
                                    "md.interval_fs": 5.0 * (steps // (2 * labels)), "md.n_frames": labels})  # fmt: skip
    sc = build_supercell(element, settings.structure)
    calc, info = make_calculator(calculator, element, threads=threads)
    warm = sc.atoms.copy()  # first call (model load, graph set-up) not timed
    warm.calc = calc
    warm.get_forces()
    traj = run_md(sc, "warm", calc, settings, progress=False)
    n_steps = int(traj.steps[-1]) - 1
    t0 = time.perf_counter()
    label_frames(traj.atoms, calc, progress=False)
    t_label = (time.perf_counter() - t0) / len(traj.atoms)
    t_step = traj.wall_s / n_steps
    return {"element": element, "atoms": sc.natoms, "calculator": info.name, "threads": threads,
            "md_steps_per_s": round(1 / t_step, 2),
            "labels_per_s": round(1 / t_label, 2), "protocol_frames_per_s": round(1 / (10 * t_step + t_label), 3),
            "hours_for_3000_frames": round(3000 * (10 * t_step + t_label) / 3600, 2)}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="folder for the inputs (default: a temporary folder, removed)")
    p.add_argument("--skip-chgnet", action="store_true")
    p.add_argument("--only-local", action="store_true", help="skip the input and extraction benchmarks")
    p.add_argument("--threads", type=int, help="torch threads for CHGNet")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    tmp = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tm23bench-"))
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "load_average_before": [round(x, 2) for x in os.getloadavg()]}}  # fmt: skip
    try:
        if not args.only_local:
            results["inputs"] = bench_inputs(tmp / "campaign")
            r = results["inputs"]
            print(f"inputs: 81 AIMD runs in {r['aimd_s']} s, {r['label_frames']} label frames in {r['labels_s']} s; "
                  f"total {r['total_s']} s (target < 30 s)")  # fmt: skip
            results["extraction"] = bench_extraction(tmp / "extract")
            print(f"extraction: {results['extraction']}")
        local = [bench_local("Cu", "emt"), bench_local("Cu", "emt", rule="tm23")]
        if not args.skip_chgnet:
            local += [bench_local(el, "chgnet", steps=20, threads=args.threads) for el in ("Cu", "W")]
        results["local"] = local
        print(
            "\n| calculator | element | atoms | MD steps/s | labels/s | frames/s (protocol) | hours per 3000 frames |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in local:
            name = r["calculator"] + (f" ({r['threads']} thread)" if r.get("threads") else "")
            print(f"| {name} | {r['element']} | {r['atoms']} | {r['md_steps_per_s']} | {r['labels_per_s']} | "
                  f"{r['protocol_frames_per_s']} | {r['hours_for_3000_frames']} |")  # fmt: skip
        results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not args.out:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
