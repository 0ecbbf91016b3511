"""The ``tm23`` command. Subcommands mirror the package: info, download, import, verify, splits, stats
(data layer); other subpackages add theirs through a ``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

import numpy as np

from . import __version__, elements, manifest
from .atomic import write_atomic

#: Modules that add subcommands; each has ``register(subparsers)`` and imports nothing heavy at import time.
EXTENSIONS = ("tm23data.export", "tm23data.generation.cli", "tm23data.baselines.cli")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.home:
        os.environ["TM23_HOME"] = args.home
    if args.offline:
        os.environ["TM23_OFFLINE"] = "1"
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `tm23 info | head`
        sys.stderr.close()
        return 0
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        if args.verbose:
            raise
        print(f"tm23 {args.command}: error: {err}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tm23",
        description="The TM23 transition-metal benchmark: download, verify, inspect, split and use it.",
        epilog="Environment: TM23_HOME (cache root), TM23_URL / TM23_MD5 (mirror or own archive), "
        "TM23_OFFLINE=1 (never use the network).",
    )
    parser.add_argument("--version", action="version", version=f"tm23data {__version__}")
    parser.add_argument("--home", help="cache root (overrides TM23_HOME)")
    parser.add_argument("--offline", action="store_true", help="never touch the network (as TM23_OFFLINE=1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="the 27 metals, their temperatures, and where the archive lives",
                       description="Print the table of the 27 TM23 metals (or one of them) and the archive's record.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("download", help="fetch the archive and build the cache (all 27 metals by default)",
                       description="Download and verify the archive (resuming, retrying, trying mirrors), then build "
                       "the HDF5 cache of the given elements so later loads work offline.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT")
    p.add_argument("--archive-only", action="store_true", help="only fetch and verify the zip")
    p.add_argument("--extract", metavar="DIR", help="also write the 8 raw .xyz members per element into DIR")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("import", help="adopt a manually downloaded (or self-built) archive after verifying it",
                       description="Check the zip's md5 (the published one, TM23_MD5, or --md5) and copy it into "
                       "the cache atomically.")  # fmt: skip
    p.add_argument("path", metavar="PATH.zip")
    p.add_argument("--md5", help="expected md5 of an archive you built or mirrored yourself")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("verify", help="re-hash the archive, check the caches and report frame overlaps",
                       description="Recompute the archive's md5, check every cached store against its content "
                       "hashes (rebuilding damaged ones), and report how members and splits overlap.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT", help="default: every element cached or in the archive")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("splits", help="standard splits of an element: sizes and manifest hashes",
                       description="Resolve the standard splits against the cache and print their sizes and "
                       "hashes; --json writes the frozen manifests (frame ids per subset).")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT")
    p.add_argument("--split", action="append", help="only these splits (repeatable; any {regime}_N works)")
    p.add_argument("--validation", type=float, help="carve this fraction of train for validation (paper: 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT", help="write the manifests to OUT ('-' for stdout)")
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("stats", help="frames, atoms and label magnitudes (MAV) per regime",
                       description="Per regime: frames, atoms per frame, mean absolute values of energy per atom, "
                       "forces and stress (the denominators of the paper's % error).")  # fmt: skip
    p.add_argument("elements", nargs="+", metavar="ELEMENT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    for module in EXTENSIONS:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as err:
            if not module.startswith(err.name or "\0"):
                raise
    return parser


def _print_table(rows: list[list], header: list[str]) -> None:
    """Columns whose cells are all numbers are right-aligned, the rest left-aligned."""
    cells = [[("-" if c is None else str(c)) for c in r] for r in rows]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells) for i in range(len(header))]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    for k, r in enumerate([header, *cells]):
        print("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == "-"


# --------------------------------------------------------------------------------------------------


def cmd_info(args) -> int:
    chosen = [elements.get(s) for s in elements.resolve(args.elements)] if args.elements else elements.all_elements()
    record = {
        "archive": manifest.ARCHIVE_NAME,
        "urls": list(manifest.ARCHIVE_URLS),
        "md5": manifest.ARCHIVE_MD5,
        "doi": manifest.DOI,
        "license": manifest.LICENSE,
    }
    if args.json:
        rows = [{**e.__dict__, "temperatures_K": e.temperatures} for e in chosen]
        print(json.dumps({"elements": rows, "record": record}, indent=2, ensure_ascii=False))
        return 0
    rows = [[e.symbol, e.Z, e.group, e.period, e.structure, e.mp_id, f"{e.melting_K:.0f}",
             *(f"{e.temperature(r):.1f}" for r in elements.REGIMES), _short(e.note, 60 if len(chosen) > 1 else 0)]
            for e in chosen]  # fmt: skip
    _print_table(rows, ["El", "Z", "group", "period", "structure", "mp-id", "T_melt/K", "cold/K", "warm/K", "melt/K",
                        "note"])  # fmt: skip
    print(f"\nArchive: {manifest.ARCHIVE_NAME} (md5 {manifest.ARCHIVE_MD5}), DOI {manifest.DOI}, {manifest.LICENSE}")
    print("AIMD: NVT Nosé-Hoover, 5 fs, 55 ps; frames every 50 fs after 5 ps; 0.25/0.75/1.25 x T_melt.")
    return 0


def _short(text: str, limit: int) -> str:
    return text if not limit or len(text) <= limit else text[: limit - 1] + "…"


def cmd_download(args) -> int:
    from .archive import Archive
    from .fetch import fetch_archive
    from .store import load_store

    progress = not args.no_progress
    path = fetch_archive(progress=progress)
    print(f"archive: {path}")
    if args.archive_only:
        return 0
    with Archive(path) as archive:
        present = archive.elements()
        symbols = elements.resolve(args.elements) if args.elements else present
        for el in symbols:
            store = load_store(el, progress=progress)
            print(f"{el}: {len(store)} frames cached in {store.path}")
            if args.extract:
                for p in archive.extract(el, os.path.join(args.extract, el)):
                    print(f"  extracted {p}")
    return 0


def cmd_import(args) -> int:
    from . import config
    from .fetch import import_archive

    source = config.archive_source(md5=args.md5) if args.md5 else config.archive_source()
    target = import_archive(args.path, source)
    print(f"verified (md5 {source.md5}) and cached: {target}")
    if not source.is_published:
        print(f"This is not the published archive. To use it: export TM23_MD5={source.md5}")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify

    report = verify(args.elements or None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_verify(report)
    return 0 if report["ok"] else 1


def _print_verify(report: dict) -> None:
    a = report["archive"]
    if a.get("path"):
        print(f"archive {a['path']}\n  md5 {a['md5']} ({'OK' if a['md5_ok'] else 'MISMATCH, expected ' + a['expected_md5']})")
    else:
        print(f"archive: not in the cache ({a.get('note', '')})")
    for el, r in report["elements"].items():
        print(f"\n{el}: store {r['store']} ({r['store_status']})")
        if "members" not in r:
            continue
        print(f"  {r['unique_frames']} distinct frames; members: "
              + ", ".join(f"{k} {v}" for k, v in r["members"].items()))  # fmt: skip
        for kind, o in r["overlap"].items():
            print(f"  {kind}: {o['also_in_per_temperature']}/{o['frames']} frames repeat per-temperature frames "
                  f"({', '.join(f'{k} {v}' for k, v in o['by_regime'].items())})")  # fmt: skip
        if r["duplicates_within_members"]:
            print(f"  duplicates within members: {r['duplicates_within_members']}")
        for name, status in r["splits"].items():
            if status != "ok":
                print(f"  split {name}: {status}")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")
    print("\nOK" if report["ok"] else "\nFAILED")


def cmd_splits(args) -> int:
    from .splits import STANDARD_SPLITS, SplitError, get_split, resolve_split
    from .store import load_store

    if args.validation is not None and not 0 < args.validation < 1:
        raise SplitError(f"--validation must be a fraction between 0 and 1 (paper: 0.1), got {args.validation}")
    store = load_store(elements.get(args.element).symbol)
    names = args.split or list(STANDARD_SPLITS)
    rows, manifests = [], []
    for name in names:
        definition = get_split(name)
        try:
            m = resolve_split(store, definition, validation=args.validation, seed=args.seed)
        except ValueError as err:
            rows.append([name, "-", "-", "-", f"unavailable: {err}"])
            continue
        manifests.append(m.to_json(store))
        sizes = m.sizes()
        rows.append([name, sizes["train"], sizes.get("validation", "-"), sizes["test"], m.hash[:16]])
    if args.json == "-":
        print(json.dumps(manifests, indent=2))
        return 0
    _print_table(rows, ["split", "train", "validation", "test", "hash"])
    if args.json:
        write_atomic(args.json, json.dumps(manifests, indent=2))
        print(f"\nmanifests written to {args.json}")
    return 0


def cmd_stats(args) -> int:
    from .stats import element_stats

    report = {el: element_stats(el) for el in elements.resolve(args.elements)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for el, per_regime in report.items():
        print(f"{el}:")
        rows = [[regime, s["frames"], s["atoms_per_frame"], s["temperature_K"], _fmt(s["mav"]["energy_per_atom"]),
                 _fmt(s["mav"]["forces"]), _fmt(s["mav"]["stress"]), _fmt(s["mean_energy_per_atom"])]
                for regime, s in per_regime.items()]  # fmt: skip
        _print_table(rows, ["regime", "frames", "atoms", "T/K", "MAV E/N (eV/atom)", "MAV F (eV/Å)",
                            "MAV stress (eV/Å³)", "mean E/N (eV/atom)"])  # fmt: skip
    return 0


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4g}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
