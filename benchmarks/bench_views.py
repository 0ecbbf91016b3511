"""Views benchmark (not a timed test): periodic graphs, the PyG DataLoader, and torch batching of the HF split.

Run:  python benchmarks/bench_views.py [--frames-per-regime 1000] [--element W] [--cutoff 5] [--json OUT]

It writes a TM23-format archive with tm23data.generation.synthetic (default W: bcc, 53 atoms after the vacancy;
Lennard-Jones labels; 900 train + 100 test frames per regime = 3000 frames) into a temporary TM23_HOME and
measures, in one run, on the 3000-frame subset ``train+test`` of the ``full`` split:

  - radius-graph construction per frame: tm23data (vesin) vs ase.neighborlist.neighbor_list('ijS')
    (target >= 20x and <= 1 ms per frame); matscipy's neighbour list for reference
  - the graph cache: first build (all frames, HDF5 write) and warm load
  - PyG DataLoader throughput, batch 32, shuffled, in frames/s (TM23Dataset, float32 and float64)
  - one full pass over the HF split in torch format, batch 32, with tm23data.collate (target <= 0.5 s),
    both fetching slices (torch_loader) and row by row (DataLoader + collate_frames)

Timings are the best of --repeat runs, ASE's too (the machine may be shared: the minimum is the estimate
least disturbed by other jobs); ratios use numbers of this run. The load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def timed(fn, repeat: int, cpu: dict | None = None, key: str = "") -> tuple[float, object]:
    """Best (minimum) wall time of ``repeat`` calls of ``fn`` and its last result: on a shared machine the
    minimum is the estimate least disturbed by other jobs (as ``timeit`` recommends). With ``cpu``, the
    best process CPU time is stored under ``key`` too (single-threaded work: CPU time is the cost of the
    work itself, which time slicing with other jobs does not inflate)."""
    times, cpu_times, result = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    if cpu is not None:
        cpu[key] = min(cpu_times)
    return min(times), result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--element", default="W")
    p.add_argument("--frames-per-regime", type=int, default=1000, help="train + test frames per regime (9:1)")
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--ase-frames", type=int, default=100, help="frames timed with ASE (it is slow)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="tm23-bench-views-") as tmp:
        os.environ["TM23_HOME"] = os.path.join(tmp, "home")
        os.environ.pop("TM23_URL", None)
        from tm23data import config
        from tm23data.fetch import import_archive
        from tm23data.generation.synthetic import synthetic_archive

        n_test = max(1, args.frames_per_regime // 10)
        n_train = args.frames_per_regime - n_test
        t = time.perf_counter()
        md5 = synthetic_archive(os.path.join(tmp, "bench.zip"), [args.element], n_train, n_test, seed=0)
        import_archive(os.path.join(tmp, "bench.zip"), config.archive_source(md5=md5))
        os.environ["TM23_MD5"] = md5
        elapsed = time.perf_counter() - t
        frames = 3 * args.frames_per_regime
        print(f"synthetic {args.element} archive: {frames} frames in {elapsed:.1f} s", file=sys.stderr)
        results = run(args, np, torch)
    results["machine"] = {"cpus": os.cpu_count(), "torch_threads": args.threads, "torch": torch.__version__,
                          "python": sys.version.split()[0], "load_average": os.getloadavg()}  # fmt: skip
    report(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


def run(args, np, torch) -> dict:
    import vesin
    from ase.neighborlist import neighbor_list
    from torch.utils.data import DataLoader as TorchLoader
    from torch_geometric.loader import DataLoader

    from tm23data import load_tm23, neighbors
    from tm23data.collate import collate_frames, torch_loader
    from tm23data.hf import to_atoms
    from tm23data.pyg import TM23Dataset
    from tm23data.splits import resolve_split
    from tm23data.store import load_store

    out: dict = {}
    store = load_store(args.element, progress=False)
    selection = resolve_split(store, "full").select("train+test")
    frames = store.frames.take(selection)
    n = len(frames)
    out["frames"] = n
    out["atoms_per_frame"] = float(frames.natoms.mean())
    off = frames.offsets

    # --- graph construction per frame ---------------------------------------------------------------
    nl = neighbors.NeighborList(args.cutoff)

    def ours():
        edges = 0
        for k in range(n):
            e, _ = nl(frames.positions[off[k] : off[k + 1]], frames.cell[k], frames.pbc[k])
            edges += e.shape[1]
        return edges

    cpu: dict = {}
    ours_s, edges = timed(ours, args.repeat, cpu, "ours")
    out["edges_per_frame"] = edges / n
    out["graph_ms_per_frame"] = 1e3 * ours_s / n
    out["graph_cpu_ms_per_frame"] = 1e3 * cpu["ours"] / n

    m = min(args.ase_frames, n)
    atoms = to_atoms(store, selection[:m])
    ase_s, _ = timed(lambda: [neighbor_list("ijS", a, args.cutoff) for a in atoms], args.repeat, cpu, "ase")
    out["ase_ms_per_frame"] = 1e3 * ase_s / m
    out["ase_cpu_ms_per_frame"] = 1e3 * cpu["ase"] / m
    out["graph_speedup_vs_ase"] = out["ase_ms_per_frame"] / out["graph_ms_per_frame"]
    out["graph_speedup_vs_ase_cpu"] = out["ase_cpu_ms_per_frame"] / out["graph_cpu_ms_per_frame"]
    try:
        from matscipy.neighbours import neighbour_list as matscipy_nl

        ms_s, _ = timed(lambda: [matscipy_nl("ijS", a, args.cutoff) for a in atoms], args.repeat)
        out["matscipy_ms_per_frame"] = 1e3 * ms_s / m
    except ImportError:  # pragma: no cover - optional reference
        pass
    out["vesin_version"] = getattr(vesin, "__version__", "?")

    # --- graph cache: build (every frame of the store, HDF5 write) and warm load -------------------------
    t = time.perf_counter()
    neighbors.load_graphs(store, args.cutoff, progress=False)
    out["graph_cache_build_s"] = time.perf_counter() - t
    out["graph_cache_MB"] = neighbors.cache_path(store, args.cutoff).stat().st_size / 2**20
    out["graph_cache_load_s"], _ = timed(lambda: neighbors.load_graphs(store, args.cutoff, progress=False), args.repeat)

    # --- PyG DataLoader -------------------------------------------------------------------------------
    out["pyg_dataset_init_s"], ds = timed(
        lambda: TM23Dataset(args.element, "full", "train+test", cutoff=args.cutoff, dtype=torch.float32,
                            progress=False), args.repeat)  # fmt: skip
    assert len(ds) == n

    def epoch(dataset):
        seen = 0
        for batch in DataLoader(dataset, batch_size=args.batch_size, shuffle=True):
            seen += batch.num_graphs
        return seen

    pyg_s, seen = timed(lambda: epoch(ds), args.repeat)
    assert seen == n
    out["pyg_loader_frames_per_s"] = n / pyg_s
    ds64 = TM23Dataset(args.element, "full", "train+test", cutoff=args.cutoff, progress=False)
    out["pyg_loader_frames_per_s_float64"] = n / timed(lambda: epoch(ds64), args.repeat)[0]
    out["pyg_get_ms"] = 1e3 * timed(lambda: [ds64.get(k) for k in range(n)], 1)[0] / n

    # --- HF split in torch format, batched --------------------------------------------------------------
    out["load_tm23_torch_s"], hf = timed(
        lambda: load_tm23(args.element, "full", subset="train+test", format="torch", progress=False), args.repeat)
    assert len(hf) == n

    def full_pass(loader):
        atoms_seen = 0
        for batch in loader:
            atoms_seen += len(batch["positions"])
        return atoms_seen

    slices_s, atoms_seen = timed(lambda: full_pass(torch_loader(hf, batch_size=args.batch_size)), args.repeat)
    assert atoms_seen == int(frames.natoms.sum())
    out["hf_torch_pass_s"] = slices_s
    rows = TorchLoader(hf, batch_size=args.batch_size, collate_fn=collate_frames)
    out["hf_torch_pass_rowwise_s"] = timed(lambda: full_pass(rows), max(1, args.repeat - 1))[0]
    return out


def report(r: dict) -> None:
    def ok(flag: bool) -> str:
        return "OK " if flag else "MISS"

    print(f"\n{r['frames']} frames of {r['atoms_per_frame']:.0f} atoms, {r['edges_per_frame']:.0f} edges/frame "
          f"(full list)  [{r['machine']['cpus']} CPUs, torch {r['machine']['torch']}, "
          f"{r['machine']['torch_threads']} thread(s), load {r['machine']['load_average'][0]:.1f}]")  # fmt: skip
    rows = [
        ("graph per frame, tm23data (vesin), wall", f"{r['graph_ms_per_frame']:.3f} ms",
         f"{ok(r['graph_ms_per_frame'] <= 1.0)} target <= 1 ms"),
        ("graph per frame, tm23data (vesin), CPU", f"{r['graph_cpu_ms_per_frame']:.3f} ms",
         f"{ok(r['graph_cpu_ms_per_frame'] <= 1.0)} target <= 1 ms"),
        ("graph per frame, ase.neighborlist, wall", f"{r['ase_ms_per_frame']:.2f} ms", ""),
        ("graph per frame, ase.neighborlist, CPU", f"{r['ase_cpu_ms_per_frame']:.2f} ms", ""),
        ("  speed-up vs ASE (wall / CPU)", f"{r['graph_speedup_vs_ase']:.0f}x / {r['graph_speedup_vs_ase_cpu']:.0f}x",
         f"{ok(min(r['graph_speedup_vs_ase'], r['graph_speedup_vs_ase_cpu']) >= 20)} target >= 20x"),
    ]  # fmt: skip
    if "matscipy_ms_per_frame" in r:
        rows.append(("graph per frame, matscipy (reference)", f"{r['matscipy_ms_per_frame']:.3f} ms", ""))
    rows += [
        ("graph cache build (all frames + HDF5)", f"{r['graph_cache_build_s']:.2f} s", f"{r['graph_cache_MB']:.1f} MB"),
        ("graph cache warm load", f"{1e3 * r['graph_cache_load_s']:.0f} ms", ""),
        ("TM23Dataset warm init", f"{1e3 * r['pyg_dataset_init_s']:.0f} ms", ""),
        ("PyG DataLoader, batch 32, float32", f"{r['pyg_loader_frames_per_s']:.0f} frames/s", ""),
        ("PyG DataLoader, batch 32, float64", f"{r['pyg_loader_frames_per_s_float64']:.0f} frames/s", ""),
        ("  TM23Dataset.get", f"{r['pyg_get_ms']:.3f} ms/frame", ""),
        ("load_tm23(format='torch') warm", f"{1e3 * r['load_tm23_torch_s']:.0f} ms", ""),
        ("HF torch full pass, torch_loader", f"{r['hf_torch_pass_s']:.3f} s",
         f"{ok(r['hf_torch_pass_s'] <= 0.5)} target <= 0.5 s"),
        ("HF torch full pass, row-wise DataLoader", f"{r['hf_torch_pass_rowwise_s']:.3f} s", ""),
    ]  # fmt: skip
    width = max(len(a) for a, _, _ in rows)
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>18}  {c}")


if __name__ == "__main__":
    main()
