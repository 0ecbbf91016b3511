"""Data-layer benchmark (not a timed test): parse speed, warm load time, store size, memory while building.

Run:  python benchmarks/bench_data.py [--frames-per-regime 1000] [--element W]

It writes a TM23-format archive with tm23data.generation.synthetic (W: bcc, 53 atoms after the vacancy; Lennard-Jones
labels), then measures in one run, against ase.io.read on the same bytes:
  - our extxyz parse vs ase.io.read on one 3000-frame file          (target >= 20x)
  - warm load_tm23 of the full split                                 (target <= 0.1 s and >= 100x ase.io.read)
  - store size vs raw array bytes                                    (target <= 1.2x)
  - peak memory while building the store (subprocess max RSS, and tracemalloc peak of numpy/Python)
  - a fresh `python -c` that loads the warm full split as numpy arrays (Selection.arrays, no `datasets` or
    torch import), whole process, vs ase.io.read of the same frames   (target: less than ase.io.read)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


BUILD_CHILD = """
import json, resource, sys, time, tracemalloc
from tm23data.store import load_store
import h5py, numpy, datasets  # imports are not part of the build
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
t = time.perf_counter()
store = load_store(sys.argv[1], progress=False)
elapsed = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"build_s": elapsed, "tracemalloc_peak_MB": peak / 2**20,
                  "max_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_imports_MB": base / 1024}))
"""


NUMPY_CHILD = """
import sys
from tm23data import Selection
sel = Selection.open(sys.argv[1], "full", progress=False)
arrays = [sel.arrays(subset) for subset in sel.subsets]
assert "datasets" not in sys.modules and "torch" not in sys.modules
"""


def fresh_process_s(element: str, repeat: int = 3) -> float:
    """Wall time of a whole new interpreter that loads the warm split as numpy (start-up and imports included)."""
    return best_of(lambda: subprocess.run([sys.executable, "-c", NUMPY_CHILD, element], env=os.environ, check=True), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--element", default="W")
    parser.add_argument("--frames-per-regime", type=int, default=1000, help="train+test frames per regime")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import ase.io
    import numpy as np

    from tm23data import elements
    from tm23data.extxyz import format_extxyz, parse_extxyz
    from tm23data.fetch import import_archive
    from tm23data.frames import Frames
    from tm23data.generation.synthetic import synthetic_archive

    n_test = max(1, args.frames_per_regime // 10)
    n_train = args.frames_per_regime - n_test
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["TM23_HOME"] = str(tmp / "home")
        t = time.perf_counter()
        md5 = synthetic_archive(tmp / "bench.zip", [args.element], n_train, n_test, seed=0)
        print(f"wrote archive: {time.perf_counter() - t:.1f} s")
        os.environ["TM23_MD5"] = md5
        import_archive(tmp / "bench.zip")

        # Cold build in a fresh process, to measure its memory.
        child = subprocess.run([sys.executable, "-c", BUILD_CHILD, args.element], capture_output=True, text=True,
                               env=os.environ, check=True)  # fmt: skip
        build = json.loads(child.stdout.strip().splitlines()[-1])

        from tm23data import load_tm23
        from tm23data.store import load_store

        store = load_store(args.element, progress=False)
        # One file holding every distinct frame in trajectory order: 3000 frames at full size.
        order = np.concatenate([store.members[f"{r}_nequip_{p}"] for r in elements.REGIMES for p in ("train", "test")])
        frames: Frames = store.frames.take(order)
        data = format_extxyz(frames)
        (tmp / "all.xyz").write_bytes(data)
        n_frames, n_atoms = len(frames), int(frames.natoms.mean())

        parse_ours = best_of(lambda: parse_extxyz(data, "all.xyz"), 5)
        parse_ase = best_of(lambda: ase.io.read(io.StringIO(data.decode()), index=":", format="extxyz"), 2)
        parse_ase_file = best_of(lambda: ase.io.read(tmp / "all.xyz", index=":", format="extxyz"), 2)
        load_tm23(args.element, "full", progress=False)  # warm-up: imports, first open
        warm = best_of(lambda: load_tm23(args.element, "full", progress=False), 5)
        warm_torch = best_of(lambda: load_tm23(args.element, "full", format="torch", progress=False), 5)
        fresh_numpy = fresh_process_s(args.element)

        fr = store.frames
        raw = sum(a.nbytes for a in (fr.positions, fr.forces, fr.energy, fr.free_energy, fr.stress, fr.cell, fr.pbc))
        raw += fr.numbers.size  # stored as uint8
        size = store.path.stat().st_size

    results = {
        "file": {"frames": n_frames, "atoms_per_frame": n_atoms, "MB": len(data) / 2**20},
        "parse_ours_s": parse_ours,
        "parse_ase_s": parse_ase,
        "parse_ase_from_file_s": parse_ase_file,
        "parse_speedup": parse_ase / parse_ours,
        "warm_load_tm23_full_s": warm,
        "warm_load_tm23_full_torch_s": warm_torch,
        "warm_load_vs_ase_read": parse_ase_file / warm,
        "fresh_process_numpy_split_s": fresh_numpy,
        "store_MB": size / 2**20,
        "raw_array_MB": raw / 2**20,
        "store_over_raw": size / raw,
        **build,
    }
    print(f"file: {n_frames} frames x {n_atoms} atoms, {len(data) / 2**20:.1f} MB")
    print(f"parse: ours {parse_ours * 1e3:.1f} ms, ase.io.read {parse_ase * 1e3:.0f} ms -> {parse_ase / parse_ours:.1f}x "
          "(target >= 20x)")  # fmt: skip
    print(f"warm load_tm23('{args.element}', 'full'): {warm * 1e3:.1f} ms (torch format {warm_torch * 1e3:.1f} ms); "
          f"ase.io.read of the same frames {parse_ase_file * 1e3:.0f} ms -> {parse_ase_file / warm:.0f}x "
          "(targets <= 100 ms, >= 100x)")  # fmt: skip
    print(f"fresh `python -c` loading the warm split as numpy (Selection.arrays): {fresh_numpy * 1e3:.0f} ms, whole "
          f"process; ase.io.read of the same frames {parse_ase_file * 1e3:.0f} ms (target: less)")
    print(f"store: {size / 2**20:.2f} MB for {raw / 2**20:.2f} MB of raw arrays -> {size / raw:.3f}x (target <= 1.2x)")
    print(f"cold build (parse 8 members, hash, write): {build['build_s']:.2f} s; peak memory: max RSS "
          f"{build['max_rss_MB']:.0f} MB ({build['rss_after_imports_MB']:.0f} MB after imports), "
          f"tracemalloc peak {build['tracemalloc_peak_MB']:.0f} MB")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
