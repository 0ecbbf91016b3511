"""Evaluation benchmark (not a timed test): frames/s of ``tm23 evaluate`` per model, batched vs one frame at a
time, on CPU (and on a GPU with --device cuda).

  python benchmarks/bench_evaluate.py [--models emt,chgnet,sevennet-0] [--frames 24] [--batch-size 8]
                                      [--device cpu] [--element Cu] [--json out.json]

Frames are those of a TM23-format archive made with tm23data.generation.synthetic (rattled supercells of the
element, 32-108 atoms) in a private TM23_HOME; each model predicts energy, forces and stress of the same
frames through tm23data.baselines.evaluate.predict, first one frame at a time (its ASE calculator), then in
batches (its batched predictor, where it has one). Model loading is timed apart; one warm-up batch first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="emt,chgnet,sevennet-0")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--element", default="Cu")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TM23_HOME"] = str(Path(tmp) / "home")
        from tm23data.fetch import import_archive
        from tm23data.generation.synthetic import synthetic_archive

        zip_path = Path(tmp) / "benchmarking_master_collection-20240316T202423Z-001.zip"
        n_test = max(1, args.frames // 3)
        os.environ["TM23_MD5"] = synthetic_archive(zip_path, (args.element,), 1, n_test)
        import_archive(zip_path)
        from tm23data.baselines.evaluate import predict
        from tm23data.baselines.models import load_model
        from tm23data.selection import Selection

        frames = Selection.open(args.element, "full", progress=False).frames("test")
        out = {"element": args.element, "frames": len(frames), "atoms_per_frame": int(frames.natoms[0]),
               "device": args.device, "batch_size": args.batch_size, "cpus": os.cpu_count(), "models": {}}  # fmt: skip
        for spec in [m.strip() for m in args.models.split(",") if m.strip()]:
            t = time.perf_counter()
            model = load_model(spec, args.device)
            row = {"load_s": time.perf_counter() - t}
            predict(model, frames.take(range(min(2, len(frames)))), batch_size=args.batch_size, progress=False)  # warm-up
            for label, bs in (("one_at_a_time", 1), ("batched", args.batch_size)):
                if bs > 1 and model.predict_batch is None:
                    continue
                t = time.perf_counter()
                predict(model, frames, batch_size=bs, progress=False)
                row[f"{label}_frames_per_s"] = len(frames) / (time.perf_counter() - t)
            out["models"][spec] = row
            print(spec, json.dumps(row), file=sys.stderr)
    text = json.dumps(out, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
