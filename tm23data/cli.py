"""The ``tm23`` command. Subcommands mirror the package: info, download, import, verify, splits, stats,
compare-labels, export (the data layer, here); the generation and baselines subpackages, and any installed
package, add theirs through the entry-point group ``tm23data.cli`` (a ``register(subparsers)`` function each).

The command only parses and prints: every decision is the library's. Errors the package raises on purpose
(:class:`tm23data.errors.TM23Error`) and OS errors are printed as one line naming what to fix; ``-v`` shows
the traceback. Global options (``--home``, ``--archive``, ``--offline``, ``-v``) work before or after the subcommand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from . import __version__, elements, manifest
from .atomic import write_atomic
from .errors import TM23Error, UsageError
from .tables import text_table

#: Entry-point group of the modules that add subcommands; each entry is a ``register(subparsers)`` function
#: that imports nothing heavy.
EXTENSION_GROUP = "tm23data.cli"


def main(argv: list[str] | None = None) -> int:
    from . import config

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for commands that write jobs running themselves
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with config.settings(home=args.home, offline_reason="--offline was given" if args.offline else None,
                             archive=args.archive):  # fmt: skip
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `tm23 info | head`
        sys.stderr.close()
        return 0
    except (TM23Error, OSError) as err:
        if args.verbose:
            raise
        print(f"tm23 {args.command}: error: {one_line(err)}", file=sys.stderr)
        return int(getattr(err, "exit_code", 1))  # e.g. 75: a preempted run to be continued by rerunning


def one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError without a message gets its class name and file)."""
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------
# Parser


def _global_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--home, --offline, -v. On subcommands their default is SUPPRESS, so that a value given before the
    subcommand is not reset by the subcommand's parser."""
    kw = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("--home", metavar="DIR", help="cache root (overrides TM23_HOME)", **kw)
    p.add_argument("--archive", metavar="NAME|PATH", help="which archive: a name or md5 from `tm23 archives`, a zip, "
                   "a folder of member files, or URL#md5=HEX (as TM23_ARCHIVE; default: the published one)", **kw)
    p.add_argument("--offline", action="store_true", help="never touch the network (as TM23_OFFLINE=1)", **kw)
    p.add_argument("-v", "--verbose", action="store_true", help="log more and show tracebacks", **kw)


def _leaf_parsers(parser: argparse.ArgumentParser):
    """Every parser below ``parser`` (subcommands, and their sub-subcommands)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield sub
                yield from _leaf_parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import entry_points

    parser = argparse.ArgumentParser(
        prog="tm23",
        description="The TM23 transition-metal benchmark: download, verify, inspect, split and use it.",
        epilog="Environment: TM23_HOME (cache root), TM23_URL / TM23_MD5 (mirror or own archive), "
        "TM23_OFFLINE=1 (never use the network).",
    )
    parser.add_argument("--version", action="version", version=f"tm23data {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register(sub)
    for entry in sorted(entry_points(group=EXTENSION_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    for p in _leaf_parsers(parser):
        _global_options(p, suppress=True)
    return parser


def register(sub) -> None:
    """The data layer's subcommands."""
    from .export import FORMATS

    p = sub.add_parser("info", help="the 27 metals, their temperatures, and where the archive lives",
                       description="Print the table of the 27 TM23 metals (or some of them) and the archive's record.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT", help="default: all 27")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("download", help="fetch the archive and build the cache (all 27 metals by default)",
                       description="Download and verify the archive (resuming, retrying, trying mirrors), then build "
                       "the HDF5 cache of the given elements so later loads work offline.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT", help="default: every element in the archive")
    p.add_argument("--archive-only", action="store_true", help="only fetch and verify the zip")
    p.add_argument("--extract", metavar="DIR", help="also write the 8 raw .xyz members per element into DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("import", help="adopt a manually downloaded (or self-built) archive after verifying it",
                       description="Check the zip's md5 (the published one, TM23_MD5 or --md5; with --name alone, "
                       "the zip is your own archive and its md5 is recorded), copy it into the cache atomically and "
                       "list it in `tm23 archives`.")  # fmt: skip
    p.add_argument("path", metavar="PATH.zip", help="the archive to import")
    p.add_argument("--md5", help="expected md5 of an archive you built or mirrored yourself")
    p.add_argument("--name", help="name to use it by (--archive NAME, archive=NAME); default: the file name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("archives", help="the archives in the cache: names, md5s, elements, where they came from",
                       description="List every archive the cache holds (and the published one, downloaded or not) "
                       "with the name to pass as --archive / archive=.")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_archives)

    p = sub.add_parser("verify", help="re-hash the archive, check the caches and report frame overlaps",
                       description="Recompute the archive's md5, check every cached store against its content "
                       "hashes (rebuilding damaged ones), and report how members and splits overlap.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT", help="default: every element cached or in the archive")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("splits", help="standard splits of an element: sizes and manifest hashes",
                       description="Resolve the standard splits against the cache and print their sizes and "
                       "hashes; --json writes the frozen manifests (frame ids per subset).")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help="a TM23 symbol, e.g. Ti")
    p.add_argument("--split", action="append", help="only these splits (repeatable; any {regime}_N works)")
    p.add_argument("--validation", type=validation_arg, help="carve this fraction (0.1, the paper's) or number "
                   "(270) of train frames for validation")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation carve (default 0)")
    p.add_argument("--json", metavar="OUT", help="write the manifests to OUT ('-' for stdout)")
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("stats", help="frames, atoms and label magnitudes (MAV) per regime",
                       description="Per regime: frames, atoms per frame, mean absolute values of energy per atom, "
                       "forces and stress (the denominators of the paper's % error).")  # fmt: skip
    p.add_argument("elements", nargs="+", metavar="ELEMENT", help="one or more TM23 symbols")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("compare-labels", help="how two label sets of the same frames differ (e.g. SIGMA 1.0 vs 0.2 eV)",
                       description="Per element and regime: energy, force and stress differences B - A, and the force "
                       "difference split into magnitudes (radial) and vectors (paper Fig. 9c). A and B are archives "
                       "(zips, or names from `tm23 archives`) holding the same frames, e.g. a campaign's and its "
                       "`tm23 derive-labels` set. Example: tm23 compare-labels A.zip B.zip --markdown report.md --png diff.png")  # fmt: skip
    p.add_argument("a", metavar="A", help="reference label set (archive zip or name)")
    p.add_argument("b", metavar="B", help="the other label set of the same frames")
    p.add_argument("--elements", nargs="+", metavar="ELEMENT", help="default: every element both hold")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown report here (default: print it)")
    p.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    p.add_argument("--png", metavar="FILE", help="also plot radial vs vector force differences (needs matplotlib)")
    p.add_argument("--subset", choices=("all", "train", "test"), default="all",
                   help="frames of each regime compared: all (default), train (the paper's Fig. 9c) or test")
    p.add_argument("--position-tol", type=float, default=1e-3, help="Å: frames must agree this well (default 0.001)")
    p.set_defaults(func=cmd_compare_labels)

    p = sub.add_parser("export", help="write a split as extxyz, Parquet, a Hugging Face dataset folder or an ASE database",
                       description="Write each subset (train/[validation]/test) of a split of one or more elements into "
                       "the folder OUT (one set of files, or one config, per element): extxyz files (ASE, nequip, "
                       "Allegro, MACE), Parquet files, a Hugging Face Hub dataset folder (Parquet + README.md card; "
                       "upload it with `hf upload USER/NAME OUT . --repo-type dataset`), or an ASE SQLite database. "
                       "Example: tm23 export Cu out/ --split full --format hf")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help="a TM23 symbol, or several separated by commas (Cu,Ti)")
    p.add_argument("out", metavar="OUT", help="output folder (created if needed)")
    p.add_argument("--split", default="full", help="standard split (default: full; see `tm23 splits ELEMENT`)")
    p.add_argument("--format", choices=FORMATS, default="extxyz", help="output format (default: extxyz)")
    p.add_argument("--validation", type=validation_arg, help="carve this fraction (0.1) or number (270) of train "
                   "frames into a validation subset")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation carve (default 0)")
    p.add_argument("--config", dest="config_name", help="hf format: config name (default ELEMENT_SPLIT)")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_export)


def symbols_arg(text: str) -> list[str]:
    """``Cu,Ti`` -> ``["Cu", "Ti"]`` (validated)."""
    return elements.resolve([s.strip() for s in text.split(",") if s.strip()])


def validation_arg(text: str) -> float | int:
    """``--validation``: ``0.1`` (a fraction of train) or ``270`` (a number of frames); checked by the command."""
    try:
        return int(text) if text.strip().isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a fraction (0.1) nor a number of frames (270)") from None


def checked_validation(value):
    """``--validation`` checked before anything is loaded (the error names the option)."""
    from .splits import check_validation

    try:
        return check_validation(value)
    except UsageError as err:
        raise UsageError(f"--{err}") from None


# --------------------------------------------------------------------------------------------------
# Commands


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
    print(text_table(["El", "Z", "group", "period", "structure", "mp-id", "T_melt/K", "cold/K", "warm/K", "melt/K",
                      "note"], rows))  # fmt: skip
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
    chosen = elements.resolve(args.elements) if args.elements else None  # names checked before any download
    path = fetch_archive(progress=progress)
    print(f"archive: {path}")
    if args.archive_only:
        return 0
    with Archive(path) as archive:
        for el in chosen or archive.elements():
            store = load_store(el, progress=progress)
            print(f"{el}: {len(store)} frames cached in {store.path}")
            if args.extract:
                for p in archive.extract(el, os.path.join(args.extract, el)):
                    print(f"  extracted {p}")
    return 0


def cmd_import(args) -> int:
    from . import config
    from .fetch import import_archive

    from .hashes import file_md5
    from .registry import find

    if args.md5:
        source = config.archive_source(md5=args.md5)
    elif args.name:  # your own archive: its md5 is what it is (never the published archive's by mistake)
        source = config.archive_source(md5=file_md5(args.path))
    else:
        source = config.archive_source()
    target = import_archive(args.path, source, name=args.name)
    entry = find(source.md5)
    print(f"verified (md5 {source.md5}) and cached: {target}")
    print(f"name: {entry.name}; {entry.origin['summary']}; elements: {', '.join(entry.elements) or 'none'}")
    if not source.is_published:
        print(f"This is not the published archive. Use it with --archive {entry.name} (Python: "
              f"archive={entry.name!r}), or export TM23_MD5={source.md5}")  # fmt: skip
    return 0


def _origin_words(origin: dict) -> str:
    """A table cell: ``published TM23 (VASP/PBE)``, ``NOT TM23: generated (EMT)``, ``NOT TM23: unknown origin``."""
    if origin.get("published"):
        return "published TM23 (VASP/PBE)"
    return f"NOT TM23: generated ({origin.get('method')})" if origin.get("kind") == "generated" else "NOT TM23: unknown origin"


def cmd_archives(args) -> int:
    from .registry import entries

    listed = entries()
    if args.json:
        print(json.dumps([e.to_json() for e in listed], indent=2))
        return 0
    rows = [[e.name, e.md5, "yes" if e.present else "no", len(e.elements) if len(e.elements) > 3 else
             ",".join(e.elements) or "-", _origin_words(e.origin),
             (e.imported or "-")[:19]] for e in listed]  # fmt: skip
    print(text_table(["name", "md5", "cached", "elements", "data", "imported"], rows))
    print("\nUse one with --archive NAME (any command), archive=NAME (Python) or TM23_ARCHIVE=NAME.")
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
    for path in report.get("removed_temporaries", []):
        print(f"removed {path} (a temporary file left by a process that no longer runs)")
    if a.get("quarantined"):
        print(f"archive {a['path']}\n  md5 {a['md5']} MISMATCH, expected {a['expected_md5']}; moved to {a['quarantined']}")
        if a.get("repaired"):
            print(f"  repaired: {a['repaired']}")
    elif a.get("path"):
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
    from .selection import Selection
    from .splits import STANDARD_SPLITS, get_split
    from .store import load_store

    args.validation = checked_validation(args.validation)
    definitions = [get_split(name) for name in (args.split or STANDARD_SPLITS)]  # names checked before any I/O
    store = load_store(elements.get(args.element).symbol)
    rows, manifests = [], []
    for definition in definitions:
        try:
            sel = Selection.from_stores([store], definition, validation=args.validation, seed=args.seed)
        except UsageError as err:
            rows.append([definition.name, "-", "-", "-", f"unavailable: {err}"])
            continue
        manifests += sel.to_json()
        sizes = sel.sizes()
        rows.append([definition.name, sizes["train"], sizes.get("validation", "-"), sizes["test"], sel.hash[:16]])
    if args.json == "-":
        print(json.dumps(manifests, indent=2))
        return 0
    print(text_table(["split", "train", "validation", "test", "hash"], rows))
    if args.json:
        write_atomic(args.json, json.dumps(manifests, indent=2))
        print(f"\nmanifests written to {args.json}")
    return 0


def cmd_stats(args) -> int:
    from .stats import stats_report

    report = stats_report(elements.resolve(args.elements))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for el, stats in report.items():
        per_regime = stats["regimes"]
        print(f"{el}: {stats['data_origin']['summary']}")
        rows = [[regime, s["frames"], s["atoms_per_frame"], s["temperature_K"], _fmt(s["mav"]["energy_per_atom"]),
                 _fmt(s["mav"]["forces"]), _fmt(s["mav"]["stress"]), _fmt(s["mean_energy_per_atom"])]
                for regime, s in per_regime.items()]  # fmt: skip
        print(text_table(["regime", "frames", "atoms", "T/K", "MAV E/N (eV/atom)", "MAV F (eV/Å)",
                          "MAV stress (eV/Å³)", "mean E/N (eV/atom)"], rows))  # fmt: skip
    return 0


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4g}"


def cmd_compare_labels(args) -> int:
    from .labeldiff import archive_file, compare_archives

    report = compare_archives(archive_file(args.a), archive_file(args.b), args.elements, subset=args.subset,
                              position_tol_A=args.position_tol)  # fmt: skip
    if args.markdown:
        write_atomic(args.markdown, report.to_markdown())
        print(f"report: {args.markdown}")
    else:
        print(report.to_markdown())
    if args.csv:
        write_atomic(args.csv, report.to_csv())
        print(f"rows: {args.csv}")
    if args.png:
        print(f"plot: {report.plot(args.png)}")
    return 0


def cmd_export(args) -> int:
    from .export import export

    args.validation = checked_validation(args.validation)
    written = export(symbols_arg(args.element), args.split, args.format, args.out, validation=args.validation,
                     seed=args.seed, config_name=args.config_name, overwrite=args.overwrite,
                     progress=not args.no_progress)  # fmt: skip
    for path in written:
        print(path)
    if args.format == "hf":
        configs = sorted({p.parent.name for p in written if p.suffix == ".parquet"})
        print(f"\nload: datasets.load_dataset({str(args.out)!r}, {configs[0]!r}, split='test')")
        print(f"upload: hf upload USER/NAME {args.out} . --repo-type dataset   (after `hf auth login`)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
