"""``tm23`` subcommands of the generation pipeline (registered by ``tm23data.cli``).

    tm23 structures [EL...]                  supercells, lattice sources and certainty (--archive: compare)
    tm23 generate EL... OUT                  local pipeline (CHGNet or EMT): MD, labels, archive
    tm23 vasp-inputs ROOT EL... --stage S    VASP campaign: AIMD inputs, then (after the AIMD) label inputs
    tm23 slurm submit|status ROOT            submit what is missing, with state and resume
    tm23 collect ROOT OUT.zip                validate the labels and write the archive
    tm23 derive-labels PARENT NEWROOT        the same frames relabelled with another SIGMA / NELECT (Fig. 9)
    tm23 kpoints write|choose ROOT EL        k-point convergence of the static labels
    tm23 rdf EL                              g(r) per regime from the store, saved as a plot

Heavy modules are imported inside the commands, so ``tm23 --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import overrides
from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("structures", help="TM23 supercells of the metals: size, lattice source and certainty",
                       description="Build the supercell of each metal (rule, vacancy) and show where its lattice "
                       "constants come from. With --archive (a name from `tm23 archives`, or a zip), read each element's real "
                       "cell from that TM23 archive and "
                       "report every disagreement with the table.")  # fmt: skip
    p.add_argument("elements", nargs="*", metavar="ELEMENT", help='default: all 27')
    _structure_options(p)
    p.add_argument("--check-lattice", nargs="?", const="chgnet,sevennet-0", metavar="MODELS",
                   help="relax each conventional cell (space group kept) with PBE-trained universal potentials, "
                   "offline (default chgnet,sevennet-0), and show a, c/a or alpha per model, their mean and "
                   "spread beside the table's and the experimental value")
    p.add_argument("--threads", type=int, help="torch CPU threads for --check-lattice (default: torch's choice)")
    p.add_argument("--write-table", metavar="CSV",
                   help="with --check-lattice: write lattice.csv with the rule applied (pbe-estimate where the "
                   "models agree, else experimental) to CSV, for review before it replaces generation/data/lattice.csv")
    p.add_argument("--json", action="store_true", help='machine-readable output')
    p.set_defaults(func=cmd_structures)

    p = sub.add_parser("generate", help="make a TM23-format archive locally (CHGNet or EMT, no VASP)",
                       description="The TM23 protocol with an ASE calculator instead of VASP: NVT Nosé-Hoover MD at "
                       "0.25/0.75/1.25 x T_melt with 5 fs steps, frames every 50 fs after the equilibration, labels, "
                       "split (first 90% train) and an archive in the published format whose provenance names the "
                       "calculator. Example: tm23 generate Cu --calculator emt --frames 50 out/")  # fmt: skip
    p.add_argument("elements", nargs="+", metavar="ELEMENT", help='one or more TM23 symbols')
    p.add_argument("out", metavar="OUT", help="the archive (.zip) or a folder to put it in")
    p.add_argument("--calculator", choices=("auto", "chgnet", "emt"), default="auto",
                   help="auto: CHGNet if installed, else EMT (Ag Au Cu Ni Pd Pt); default auto")  # fmt: skip
    _md_options(p)
    _structure_options(p)
    _settings_options(p)
    p.add_argument("--structure", metavar="FILE", help="unit cell from a CIF/POSCAR (one element only)")
    p.add_argument("--structure-from-archive", metavar="ZIP", help="use each element's cell from this TM23 archive")
    p.add_argument("--work", metavar="DIR", help="checkpoint folder (default: next to the archive, *.work)")
    p.add_argument("--device", default="cpu", help="CHGNet device: cpu (default), cuda, mps")
    p.add_argument("--threads", type=int, help="torch CPU threads for CHGNet (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help='no progress bars')
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("vasp-inputs", help="write VASP inputs of a campaign (AIMD, or static labels after the AIMD)",
                       description="Create or update the campaign folder ROOT: --stage aimd writes the supercells and "
                       "AIMD inputs + job scripts; --stage labels extracts the frames from the finished AIMD "
                       "(5 ps dropped, every 50 fs) and writes the static inputs + array job scripts. "
                       "Example: tm23 vasp-inputs ROOT Cu W --stage aimd --set slurm.partition=cpu")  # fmt: skip
    p.add_argument("root", metavar="ROOT", help='campaign folder (created if needed)')
    p.add_argument("elements", nargs="*", metavar="ELEMENT", help="default: the campaign's elements")
    p.add_argument("--stage", choices=("aimd", "labels"), required=True, help='aimd: supercells + AIMD inputs; labels: extract frames + static inputs')
    p.add_argument("--regimes", nargs="+", choices=("cold", "warm", "melt"), help='only these regimes (default all three)')
    _md_options(p)
    _structure_options(p)
    _settings_options(p)
    p.add_argument("--structure", metavar="FILE", help="unit cell from a CIF/POSCAR (one element only)")
    p.add_argument("--structure-from-archive", metavar="ZIP", help="each element's cell from this TM23 archive")
    p.add_argument(
        "--materials-project",
        action="store_true",
        help="take the structure from the Materials Project GGA entry (needs mp-api and MP_API_KEY)",
    )
    p.add_argument("--force", action="store_true", help="rewrite AIMD inputs even if the run has started")
    p.add_argument("--allow-truncated", action="store_true", help="accept AIMD output cut short (complete steps kept)")
    p.add_argument("--reextract", action="store_true", help="extract the frames again even if frames.xyz exists")
    p.set_defaults(func=cmd_vasp_inputs)

    p = sub.add_parser("slurm", help="submit the campaign's jobs to SLURM (resumable), or show their state")
    ssub = p.add_subparsers(dest="slurm_command", metavar="ACTION")
    q = ssub.add_parser("submit", help="submit what is not done yet",
                        description="Submit the AIMD jobs, or the label/k-point job arrays, for what is not done "
                        "(failed frames included unless --skip-failed). Jobs still queued are not submitted twice.")  # fmt: skip
    q.add_argument("root", metavar="ROOT", help='campaign folder')
    q.add_argument("--stage", choices=("aimd", "labels", "kpoints"), required=True, help='which jobs: AIMD, label arrays or k-point runs')
    q.add_argument("--elements", nargs="+", metavar="ELEMENT", help="only these elements (default: the campaign's)")
    q.add_argument("--regimes", nargs="+", choices=("cold", "warm", "melt"), help='only these regimes (default all three)')
    q.add_argument("--dry-run", action="store_true", help="print the sbatch calls; write and submit nothing")
    q.add_argument("--skip-failed", action="store_true", help="do not re-run frames that failed")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change slurm.* settings first")
    q.set_defaults(func=cmd_slurm_submit)
    q = ssub.add_parser("status", help="per element/regime/stage: done, running, pending (reason), failed (log), missing",
                        description="The state of every run, from the run folders and from SLURM (squeue, and sacct "
                        "where accounting exists).")  # fmt: skip
    q.add_argument("root", metavar="ROOT", help='campaign folder')
    q.add_argument("--json", action="store_true", help='machine-readable output')
    q.set_defaults(func=cmd_slurm_status)
    q = ssub.add_parser("cancel", help="cancel the campaign's queued and running jobs",
                        description="scancel the campaign's jobs that are queued or running; their frames stay not "
                        "done, and the next submit covers them.")  # fmt: skip
    q.add_argument("root", metavar="ROOT", help='campaign folder')
    q.add_argument("--stage", choices=("aimd", "labels", "kpoints"), help="only this stage's jobs")
    q.add_argument("--elements", nargs="+", metavar="ELEMENT", help="only these elements' jobs")
    q.set_defaults(func=cmd_slurm_cancel)
    p.set_defaults(func=lambda args, p=p: (p.print_help(), 2)[1])

    p = sub.add_parser("collect", help="validate the static labels of a campaign and write the archive",
                       description="Parse every static run (units and sign converted to ASE's), reject unconverged "
                       "or damaged ones (marked failed for the next submission), split, and zip in the published "
                       "format with provenance.")  # fmt: skip
    p.add_argument("root", metavar="ROOT", help='campaign folder')
    p.add_argument("out", metavar="OUT.zip", help='the archive to write')
    p.add_argument("--allow-missing", action="store_true", help="leave rejected frames out instead of stopping")
    p.add_argument("--workers", type=int, default=1, help="parallel parser processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help='no progress bars')
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("derive-labels", help="a new campaign relabelling a campaign's (or archive's) frames with another SIGMA or NELECT",
                       description="Copy the frames of PARENT (a campaign folder with extracted frames, or a "
                       "TM23-format zip) into the new campaign NEWROOT and write their static inputs with the change "
                       "(paper, Fig. 9): --sigma sets the static SIGMA (eV), --nelect-per-atom adds electrons per "
                       "atom (NELECT = (ZVAL from the POTCAR + N) x atoms). PARENT is only read. Then: tm23 slurm "
                       "submit NEWROOT --stage labels; tm23 collect NEWROOT OUT.zip (its provenance names the parent "
                       "and the change); tm23 compare-labels PARENT.zip OUT.zip. "
                       "Example: tm23 derive-labels ROOT ROOT-sigma1 --sigma 1.0")  # fmt: skip
    p.add_argument("parent", metavar="PARENT", help="campaign folder, or a TM23-format zip")
    p.add_argument("root", metavar="NEWROOT", help="the derived campaign folder (new, or empty)")
    p.add_argument("--sigma", type=float, metavar="EV", help="static SIGMA in eV (paper: 1.0 and 2.0 vs 0.2)")
    p.add_argument("--nelect-per-atom", type=float, metavar="N",
                   help="electrons added per atom, e.g. 0.1 or --nelect-per-atom=-3 (NELECT from the POTCAR ZVAL)")
    p.add_argument("--elements", nargs="+", metavar="ELEMENT", help="only these elements (default: all of PARENT's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another change of the static labels (vasp.incar_static.ENCUT=600), or how to run them "
                   "(slurm.partition=cpu); the rest of the settings are the parent's (repeatable)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help='no progress bars')
    p.set_defaults(func=cmd_derive_labels)

    p = sub.add_parser("kpoints", help="k-point convergence of the static labels (write runs, then choose)")
    ksub = p.add_subparsers(dest="kpoints_command", metavar="ACTION")
    q = ksub.add_parser("write", help="static inputs of a few frames at several meshes",
                        description="Write ROOT/kpoints/EL/<mesh>/ for a few extracted frames (spread over the regimes "
                        "that are extracted); run them with `tm23 slurm submit ROOT --stage kpoints`.")  # fmt: skip
    q.add_argument("root", metavar="ROOT", help='campaign folder')
    q.add_argument("element", metavar="ELEMENT", help='a TM23 symbol of the campaign')
    q.add_argument("--meshes", required=True, help="comma-separated, e.g. 1x1x1,2x2x2,3x3x4,4x4x6")
    q.add_argument("--frames", type=int, default=3, help="frames to test (default 3)")
    q.set_defaults(func=cmd_kpoints_write)
    q = ksub.add_parser("choose", help="choose the first mesh with energy noise < 1 meV/atom and forces < 5 meV/Å")
    q.add_argument("root", metavar="ROOT", help='campaign folder')
    q.add_argument("element", metavar="ELEMENT", help='a TM23 symbol of the campaign')
    q.add_argument("--energy-tol", type=float, default=1e-3, help="eV/atom (default 0.001)")
    q.add_argument("--force-tol", type=float, default=5e-3, help="eV/Å (default 0.005)")
    q.add_argument("--force-metric", choices=("rms", "max"), default="max", help='force noise measure: largest component difference (default, stricter) or rms over components')
    q.add_argument("--apply", action="store_true", help="store the chosen mesh in the campaign (vasp.kpoints.EL)")
    q.set_defaults(func=cmd_kpoints_choose)
    p.set_defaults(func=lambda args, p=p: (p.print_help(), 2)[1])

    p = sub.add_parser("rdf", help="radial distribution function per regime, from the store, saved as a plot",
                       description="g(r) of the cold, warm and melt frames of an element (published archive, or the "
                       "one selected with TM23_MD5), averaged over frames, over all periodic images.")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help='a TM23 symbol')
    p.add_argument("--out", metavar="FILE", help="image file (default ELEMENT_rdf.png)")
    p.add_argument("--csv", metavar="FILE", help="also write the curves as CSV")
    p.add_argument("--r-max", type=float, default=6.0, help="Å (default 6)")
    p.add_argument("--bins", type=int, default=120, help='histogram bins between 0 and r_max (default 120)')
    p.add_argument("--every", type=int, default=1, help="use every N-th frame of each regime (default 1)")
    p.add_argument("--no-progress", action="store_true", help='no progress bars')
    p.set_defaults(func=cmd_rdf)


# --------------------------------------------------------------------------------------------------
# Shared options


def _md_options(p) -> None:
    g = p.add_argument_group("MD protocol (defaults: the paper's)")
    g.add_argument("--frames", type=int, help="frames per regime (paper 1000)")
    g.add_argument("--equilibration-fs", type=float, help="discarded start, fs (paper 5000)")
    g.add_argument("--interval-fs", type=float, help="between kept frames, fs (paper 50)")
    g.add_argument("--timestep-fs", type=float, help="MD time step, fs (paper 5)")
    g.add_argument("--train-fraction", type=float, help="first fraction of each trajectory used for training (0.9)")


def _structure_options(p) -> None:
    g = p.add_argument_group("supercell")
    g.add_argument("--supercell-rule", choices=("vectors", "images", "tm23", "fill"),
                   help="fill (default, inferred): the most sites up to 72 with every lattice vector >= min length "
                   "(Cu 3x3x2 = 71 atoms, as published; every metal in the paper's 32-71); vectors: the fewest "
                   "repeats with every lattice vector >= min length (fcc: 31 atoms); images: every atom that far "
                   "from its periodic images; tm23: the published cell where known (Cu 3x3x2)")  # fmt: skip
    g.add_argument("--min-length", type=float, help="Å (default 7)")
    g.add_argument("--seed", type=int, help="vacancy site and MD velocities (default 0)")


def _settings_options(p) -> None:
    g = p.add_argument_group("settings")
    g.add_argument("--settings", metavar="FILE.json", help="settings file (nested like the provenance's settings)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. vasp.incar_static.ENCUT=600 or slurm.partition=cpu (repeatable)",
    )


def _changes(args) -> dict:
    changes: dict = {}
    for name, key in (("frames", "md.n_frames"), ("equilibration_fs", "md.equilibration_fs"),
                      ("interval_fs", "md.interval_fs"), ("timestep_fs", "md.timestep_fs"),
                      ("train_fraction", "md.train_fraction"), ("supercell_rule", "structure.rule"),
                      ("min_length", "structure.min_length_A"), ("seed", "structure.seed")):  # fmt: skip
        value = getattr(args, name, None)
        if value is not None:
            changes[key] = value
    changes.update(overrides.parse_assignments(getattr(args, "set", None)))
    return changes


def _settings(args):
    from .settings import Settings

    base = Settings.load(args.settings) if getattr(args, "settings", None) else Settings()
    return base.override(_changes(args))


def _user_structures(args, symbols, settings) -> dict:
    """Supercells from --structure / --structure-from-archive / --materials-project, if given."""
    from .structures import supercells_from_sources

    return supercells_from_sources(symbols, settings.structure, structure_file=getattr(args, "structure", None),
                                   from_archive=getattr(args, "structure_from_archive", None),
                                   materials_project=getattr(args, "materials_project", False))  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Commands


def cmd_structures(args) -> int:
    from .. import elements
    from ..tables import text_table
    from .structures import build_supercell, cell_from_frames, frames_from_archive, lattice

    settings = _settings(args)
    symbols = elements.resolve(args.elements) if args.elements else elements.symbols()
    archive_zip = None
    if args.archive:  # the global option: a name, md5 or zip (imported on first use), fetched if need be
        from ..fetch import fetch_archive
        from ..registry import resolve

        archive_zip = fetch_archive(resolve(args.archive))
    rows, report, estimates = [], {}, {}
    if args.write_table and not args.check_lattice:
        raise UsageError("--write-table needs --check-lattice (the table is written from the relaxations)")
    if args.check_lattice:
        from .latticecheck import parse_models

        models = parse_models(args.check_lattice)
    for el in symbols:
        sc = build_supercell(el, settings.structure)
        entry = lattice(el)
        item = sc.to_dict()
        item["lattice"] = {"structure": entry.structure, "a_A": entry.a_A, "c_over_a": entry.c_over_a,
                           "alpha_deg": entry.alpha_deg, "certainty": entry.certainty, "source": entry.source,
                           "expected_error": entry.expected_error, "a_exp_A": entry.a_exp_A,
                           "c_over_a_exp": entry.c_over_a_exp, "alpha_exp_deg": entry.alpha_exp_deg}  # fmt: skip
        exp = "-" if entry.a_exp_A is None else f"{entry.a_exp_A:g}"
        if entry.c_over_a_exp:
            exp += f" / {entry.c_over_a_exp:g}"
        row = [el, entry.structure, f"{entry.a_A}", f"{entry.c_over_a:g}" if entry.c_over_a else "-", exp,
               "x".join(map(str, sc.repeat)), sc.natoms, sc.vacancy_index, entry.certainty]  # fmt: skip
        if args.archive:
            try:
                found = cell_from_frames(el, frames_from_archive(archive_zip, el), settings.structure)
                item["archive"] = found.to_dict()
                row.append(
                    "x".join(map(str, found.repeat)) + f" ({found.natoms})" if found.repeat else f"? ({found.natoms})"
                )
                row.append("; ".join(found.disagreements) or "agrees")
            except ValueError as err:
                item["archive"] = {"error": str(err)}
                row += ["-", str(err)]
        if args.check_lattice:
            cells, estimates[el] = _lattice_check_cells(el, models, item, args.threads)
            row += cells
        rows.append(row)
        report[el] = item
    if args.write_table:
        import datetime
        import sys

        from .latticecheck import estimate_rows, write_table

        write_table(args.write_table, *estimate_rows(estimates, datetime.date.today().isoformat()))
        print(f"Wrote {args.write_table}: review it (git diff --no-index), then copy it over "
              "generation/data/lattice.csv.", file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    header = ["El", "structure", "a/Å", "c/a", "exp a/Å / c/a", "supercell", "atoms", "vacancy", "certainty"]
    if args.archive:
        header += ["archive", "disagreements"]
    if args.check_lattice:
        for m in models:
            header += [f"{m} a/Å", f"{m} c/a|α", f"{m} Δa %"]
        header += ["mean a/Å", "spread a|shape %", "agree", "mean-exp %"]
    print(text_table(header, rows))
    print(f"\nRule {settings.structure.rule!r}, min length {settings.structure.min_length_A:g} Å, seed "
          f"{settings.structure.seed}. Certainty: archive = measured from published frames; pbe = Materials Project "
          "PBE value (legacy data, not re-checked here); pbe-estimate = mean of two PBE-trained potentials' "
          "relaxations (CHGNet, SevenNet-0), see expected_error; experimental = ASE reference data, PBE value "
          "unverified.")  # fmt: skip
    if args.check_lattice:
        from .latticecheck import AGREE_PERCENT

        print(f"Lattice check: conventional cells relaxed (space group kept, no spin) from the experimental "
              f"constants where the table keeps them; Δa against the table's a; agree = a and c/a (α) within "
              f"{AGREE_PERCENT:g} % between the models.")  # fmt: skip
    notes = [(el, n) for el, item in report.items() for n in item["notes"]]
    for el, note in notes:
        print(f"  {el}: {note}")
    return 0


def _lattice_check_cells(el: str, models, item: dict, threads: int | None) -> list:
    """Relax ``el`` with each model; the table cells of ``tm23 structures --check-lattice`` (and JSON in ``item``)."""
    from .latticecheck import check_lattice, combine
    from .local import make_calculator

    checks = []
    for m in models:
        calc, info = make_calculator(m, el, threads=threads)
        checks.append(check_lattice(el, calc, m, info.version))
    est = combine(checks)
    item["lattice_check"] = {"models": [c.to_dict() for c in checks], "combined": est.to_dict()}
    cells: list = []
    for c in checks:
        shape = "-" if c.shape is None else f"{c.shape:.4f}" if c.relaxed_c_over_a else f"{c.shape:.2f}"
        cells += [f"{c.relaxed_a_A:.4f}", shape, f"{c.da_percent:+.2f}"]
    spread = f"{est.spread_a_percent:.2f}"
    if est.spread_shape_percent is not None:
        spread += f"|{est.spread_shape_percent:.2f}"
    exp = checks[0].exp_a_A
    cells += [f"{est.a_A:.4f}", spread, "yes" if est.agree else "no", f"{100 * (est.a_A / exp - 1):+.2f}" if exp else "-"]
    return cells, est


def cmd_generate(args) -> int:
    from .. import elements
    from .assemble import followup_commands
    from .local import archive_target, generate_local, resolve_calculator

    settings = _settings(args)
    symbols = elements.resolve(args.elements)
    concrete = sorted({resolve_calculator(args.calculator, el) for el in symbols})
    structures = _user_structures(args, symbols, settings)
    target = archive_target(args.out, symbols, "+".join(concrete), settings.md.n_frames)
    md = settings.md
    print(f"Generating {', '.join(symbols)} with {'+'.join(concrete).upper()} (not DFT): {md.n_frames} frames per "
          f"regime, {md.timestep_fs:g} fs steps, {md.equilibration_fs:g} fs equilibration, a frame every "
          f"{md.interval_fs:g} fs ({md.total_steps} MD steps per regime); split {md.n_train} train / {md.n_test} test.",
          file=sys.stderr)  # fmt: skip
    result = generate_local(symbols, target, calculator=args.calculator, settings=settings, work_dir=args.work,
                            structures=structures, device=args.device, threads=args.threads, progress=not args.no_progress)  # fmt: skip
    for el in symbols:
        st = result.provenance["elements"][el]["structure"]
        t = result.timings[el]
        wall = sum(x["md_s"] + x["label_s"] for x in t.values())
        frames = sum(x["frames"] for x in t.values())
        cached = " (reused from the work folder)" if all(x.get("cached") for x in t.values()) else ""
        hole = "no vacancy" if st["vacancy_site"] is None else f"vacancy at site {st['vacancy_site']}"
        print(f"{el}: {st['natoms']} atoms ({'x'.join(map(str, st['repeat']))}, {hole}), "
              f"{frames} frames in {wall:.1f} s{cached}")  # fmt: skip
        for note in st["notes"]:
            print(f"  note: {note}")
    print(f"\narchive: {result.archive}\nmd5:     {result.md5} (also in {result.archive.name}.md5)")
    print(f"provenance: calculator {result.provenance['calculator']}; not the published TM23 data.")
    print("\nTo load it with load_tm23:\n" + followup_commands(result.archive, result.md5, symbols[0]))
    return 0


def cmd_vasp_inputs(args) -> int:
    from .slurm import Campaign

    changes = _changes(args)
    settings = None
    if args.settings:
        from .settings import Settings

        settings = Settings.load(args.settings)
    campaign = Campaign.create_or_update(args.root, args.elements, settings, changes)
    symbols = [e for e in (args.elements or campaign.elements)]
    if not symbols:
        raise UsageError(f"no elements: give ELEMENT... (the campaign {args.root} has none yet)")
    if args.stage == "aimd":
        for sc in _user_structures(args, symbols, campaign.settings).values():
            campaign.set_structure(sc, force=args.force)
        written = campaign.write_aimd_inputs(symbols, args.regimes, force=args.force)
        for el in symbols:
            sc = campaign.structure(el)
            print(f"{el}: {sc.natoms} atoms ({'x'.join(map(str, sc.repeat))}), lattice: {sc.lattice_source}")
            for note in sc.notes:
                print(f"  note: {note}")
        print(f"AIMD inputs written in {len(written)} folder(s) under {campaign.root}; "
              f"{campaign.settings.md.total_steps} steps of {campaign.settings.md.timestep_fs:g} fs each.")  # fmt: skip
        spec = [p for p in written if (p / "POTCAR.spec").is_file()]
        if spec:
            print("POTCARs: pymatgen has no PAW files configured, so POTCAR.spec names each dataset; the jobs build the "
                  "POTCAR from --set slurm.potcar_dir=DIR (DIR/NAME/POTCAR).")  # fmt: skip
        print(f"Next: tm23 slurm submit {campaign.root} --stage aimd [--dry-run]")
    else:
        summaries = campaign.write_label_inputs(symbols, args.regimes, allow_truncated=args.allow_truncated,
                                                reextract=args.reextract, progress=True)  # fmt: skip
        for s in summaries:
            print(f"{s['element']} {s['regime']}: {s['n_frames']} frames, k-mesh {'x'.join(map(str, s['kmesh']))} "
                  f"({s['kmesh_source']}), {s['potcar_file']} {s['potcar']}")  # fmt: skip
        print(f"Next: tm23 slurm submit {campaign.root} --stage labels [--dry-run]")
    campaign.refresh_state()
    return 0


def cmd_slurm_submit(args) -> int:
    from .slurm import Campaign, submit

    campaign = Campaign.open(args.root)
    if args.set:
        # --dry-run shows the calls with the new settings but saves and rewrites nothing
        campaign.update_slurm_settings(overrides.parse_assignments(args.set), save=not args.dry_run)
    submit(campaign, args.stage, args.elements, args.regimes, dry_run=args.dry_run, include_failed=not args.skip_failed)
    return 0


def cmd_slurm_status(args) -> int:
    from ..tables import text_table
    from .slurm import Campaign, status

    campaign = Campaign.open(args.root)
    rows, note = status(campaign)
    if args.json:
        print(json.dumps({"runs": rows, "note": note}, indent=2, default=sorted))
        return 0
    if note:
        print(f"warning: {note}")
    aimd = [[r["what"], r["steps"], r["state"]] for r in rows if r["stage"] == "aimd"]
    print(text_table(["run", "AIMD steps", "AIMD"], aimd))
    static = [[r["what"], f"{r['done']}/{r['n_frames']}", r["running"],
               f"{r['pending']}" + (f" ({r['pending_reason']})" if r["pending_reason"] else ""), len(r["failed"]),
               r["missing"]] for r in rows if r["stage"] != "aimd"]  # fmt: skip
    if static:
        print(text_table(["static set", "done", "running", "pending", "failed", "missing"], static))
    for r in rows:
        if r["stage"] == "aimd":
            continue
        for i, why in list(r["failed"].items())[:5]:
            print(f"  {r['what']} frame {i}: {why}")
        if len(r["failed"]) > 5:
            print(f"  {r['what']}: ... {len(r['failed']) - 5} more failed")
        if r.get("stale"):
            print(f"  {r['what']}: {r['stale']} frame(s) labelled with other INCAR/KPOINTS/POTCAR than the current "
                  "ones, counted as missing; `tm23 slurm submit` runs them again")
    return 0


def cmd_slurm_cancel(args) -> int:
    from .slurm import Campaign, cancel

    ids = cancel(Campaign.open(args.root), args.stage, args.elements)
    print(f"cancelled {len(ids)} job(s): {' '.join(ids)}" if ids else "nothing queued or running to cancel")
    return 0


def cmd_collect(args) -> int:
    from .assemble import followup_commands
    from .slurm import Campaign

    campaign = Campaign.open(args.root)
    md5, report = campaign.collect(args.out, allow_missing=args.allow_missing, workers=args.workers,
                                   progress=not args.no_progress)  # fmt: skip
    for key, r in report.items():
        extra = f", {len(r['rejected'])} rejected and left out" if r["rejected"] else ""
        print(f"{key}: {r['ok']} frames{extra}")
    print(f"\narchive: {args.out}\nmd5:     {md5} (also in {args.out}.md5 and campaign.json)")
    print("\nTo load it with load_tm23:\n" + followup_commands(args.out, md5, campaign.elements[0]))
    return 0


def cmd_derive_labels(args) -> int:
    from .derive import derive_campaign, describe_change

    campaign = derive_campaign(args.parent, args.root, sigma=args.sigma, nelect_per_atom=args.nelect_per_atom,
                               changes=overrides.parse_assignments(args.set), element_symbols=args.elements,
                               progress=not args.no_progress)  # fmt: skip
    src = campaign.derived_from
    print(f"{campaign.root}: derived label campaign, {describe_change(campaign.meta['change'])}")
    print(f"frames from {src.get('campaign') or src.get('archive')}" +
          (f" (archive md5 {src['archive_md5']})" if src.get("archive_md5") else ""))  # fmt: skip
    for state_key, st in campaign.refresh_state(write=False)["static"].items():
        print(f"  {state_key}: {st['n_frames']} frames to label")
    for el in campaign.elements:
        summary = json.loads((campaign.labels_dir(el, campaign.settings.md.regimes[0]) / "inputs.json").read_text())
        if summary.get("nelect"):
            n = summary["nelect"]
            print(f"  {el}: NELECT = {n['NELECT']:g} = (ZVAL {n['zval']:g} {n['change_per_atom']:+g}) x {n['natoms']} "
                  f"atoms (ZVAL from {n['potcar']})")  # fmt: skip
    print(f"Next: tm23 slurm submit {campaign.root} --stage labels [--dry-run]; then tm23 collect {campaign.root} OUT.zip")
    return 0


def cmd_kpoints_write(args) -> int:
    from .. import elements
    from .kpoints import parse_mesh
    from .slurm import Campaign

    campaign = Campaign.open(args.root)
    el = elements.get(args.element).symbol
    meshes = [parse_mesh(m) for m in args.meshes.split(",") if m.strip()]
    folders, n_frames = campaign.write_kpoint_inputs(el, meshes, args.frames)
    print(f"{el}: {n_frames} frames at {len(folders)} meshes in {campaign.kpoints_dir(el)}")
    print(
        f"Next: tm23 slurm submit {args.root} --stage kpoints --elements {el}; then tm23 kpoints choose {args.root} {el}"
    )
    return 0


def cmd_kpoints_choose(args) -> int:
    from .. import elements
    from .kpoints import choose_kmesh, read_convergence_dir
    from .slurm import Campaign

    campaign = Campaign.open(args.root)
    el = elements.get(args.element).symbol
    results, problems = read_convergence_dir(campaign.kpoints_dir(el))
    choice = choose_kmesh(results, energy_tol=args.energy_tol, force_tol=args.force_tol, force_metric=args.force_metric)
    print(choice.table())
    for p in problems[:5]:
        print(f"  skipped: {p}")
    if choice.message:
        print(f"warning: {choice.message}")
    mesh = "x".join(map(str, choice.mesh))
    print(f"{el}: chosen mesh {mesh}")
    if args.apply:
        campaign.settings = campaign.settings.override({f"vasp.kpoints.{el}": mesh})
        campaign.save()
        print(f"stored as vasp.kpoints.{el} in {campaign.root / 'campaign.json'}; (re)write the label inputs with "
              f"tm23 vasp-inputs {args.root} {el} --stage labels")  # fmt: skip
    return 0 if choice.converged else 1


def cmd_rdf(args) -> int:
    from .. import elements
    from ..atomic import write_atomic
    from ..store import load_store
    from .rdf import plot_rdf, rdf_from_store

    el = elements.get(args.element).symbol
    store = load_store(el, progress=not args.no_progress)
    rdf = rdf_from_store(store, r_max=args.r_max, n_bins=args.bins, every=args.every, progress=not args.no_progress)
    out = plot_rdf(rdf, args.out or f"{el}_rdf.png")
    print(f"{el}: g(r) of {', '.join(f'{r} ({n} frames)' for r, n in rdf.frames.items())} -> {out}")
    print(f"data: {store.origin.summary()}")
    if args.csv:
        write_atomic(args.csv, rdf.to_csv())
        print(f"curves: {args.csv}")
    return 0


__all__ = ["register"]


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="tm23")
    register(parser.add_subparsers(dest="command"))
    a = parser.parse_args()
    sys.exit(a.func(a))
