"""GPU check: NequIP epoch time on one element's full split, and prediction / evaluator frames per second,
beside the paper's Table 1 (hours per epoch, number of weights, GPU).

Run on a machine with a CUDA GPU (the published archive in the cache: `tm23 download`; otherwise
``--synthetic N`` makes a TM23-format archive of N train frames per regime, labelled by EMT):

  python benchmarks/gpu_check.py --element Cu [--epochs 2] [--set num_features=64 --set l_max=2 ...]
      [--synthetic 900] [--out gpu-check]

Without a GPU it prints that there is none and exits 0. The architecture is the baseline's default unless
given with --set (the paper's per-element values are in its Supplementary Note 6); the number of weights
is printed beside Table 1's so that a different architecture is visible. Epoch time is the training part
of each epoch (validation excluded), median over epochs after the first. Writes OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def table1_row(element: str) -> dict | None:
    from tm23data.baselines.report import paper_table

    return next((r for r in paper_table("table1") if r["element"] == element), None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--element", default="Cu")
    ap.add_argument("--split", default="full")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="NequIP setting")
    ap.add_argument("--synthetic", type=int, metavar="N", help="no published archive: N synthetic train frames per regime")
    ap.add_argument("--out", default="gpu-check")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing to measure. Run it on a "
              "GPU machine.")  # fmt: skip
        return 0

    from tm23data import overrides
    from tm23data.baselines.nequip import NequIPPredictor, NequIPSettings, train_nequip
    from tm23data.selection import Selection

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        from tm23data import config
        from tm23data.fetch import import_archive
        from tm23data.generation.synthetic import synthetic_archive

        tmp = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=out))
        os.environ["TM23_HOME"] = str(tmp / "home")
        path = tmp / "synthetic.zip"
        md5 = synthetic_archive(path, [args.element], args.synthetic, max(1, args.synthetic // 9), seed=0)
        os.environ["TM23_MD5"] = md5
        import_archive(path, config.archive_source(md5=md5))

    settings = NequIPSettings.from_dict({**overrides.parse_assignments(args.set), "device": "cuda",
                                         "max_epochs": args.epochs})  # fmt: skip
    res = train_nequip(args.element, args.split, settings, out=out, name=f"nequip_{args.element}_{args.split}_gpu",
                       overwrite=True)  # fmt: skip
    timing = [json.loads(x) for x in (res.path / "timing.jsonl").read_text().splitlines() if x.strip()]
    epoch_s = sorted(e["train_s"] for e in timing if e.get("event") == "epoch" and e["epoch"] > 0) or [
        e["train_s"] for e in timing if e.get("event") == "epoch"
    ]
    median = epoch_s[len(epoch_s) // 2]

    selection = Selection.open(args.element, args.split, validation=settings.validation, seed=settings.seed)
    frames = selection.frames("test")
    predictor = NequIPPredictor.from_checkpoint(res.path / "best.ckpt", device="cuda")
    predictor.predict(frames.take(range(min(4, len(frames)))))  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    start = time.perf_counter()
    pred = predictor.predict(frames)
    torch.cuda.synchronize()
    predict_s = time.perf_counter() - start
    evaluator = selection.evaluator("test")
    if evaluator.stress is None:
        pred["stress"] = None
    start = time.perf_counter()
    evaluator.eval(pred)
    eval_s = time.perf_counter() - start

    paper = table1_row(args.element) or {}
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "element": args.element,
        "split": args.split,
        "train_frames": res.data["n_frames"]["train"],
        "settings": res.data["settings"],
        "n_weights": res.data["settings"]["n_weights"],
        "epoch_s_median": median,
        "hours_per_epoch": median / 3600,
        "predict_frames_per_s": len(frames) / predict_s,
        "evaluator_frames_per_s": len(frames) / max(eval_s, 1e-9),
        "paper_table1": {"hours_per_epoch": paper.get("nequip_hours_per_epoch"),
                         "n_weights": paper.get("nequip_n_weights"), "gpu": paper.get("nequip_gpu")},
    }  # fmt: skip
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['gpu']}: {args.element}/{args.split}, {report['train_frames']} train frames, "
          f"{report['n_weights']} weights: {median:.1f} s/epoch = {report['hours_per_epoch']:.3f} h/epoch; "
          f"prediction {report['predict_frames_per_s']:.1f} frames/s, evaluator {report['evaluator_frames_per_s']:.0f} "
          f"frames/s")  # fmt: skip
    print(f"paper Table 1: {paper.get('nequip_hours_per_epoch')} h/epoch, {paper.get('nequip_n_weights')} weights, "
          f"{paper.get('nequip_gpu')}")  # fmt: skip
    print(f"written: {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
