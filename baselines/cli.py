"""``tm23`` subcommands of the baselines: baseline, evaluate, phonons, dynamics, report, grid (flare, nequip),
flare-labelsets, learning-curve, install-flare, demo.

Registered by :mod:`tm23data.cli`; nothing heavy (torch, nequip, flare, matplotlib) is imported until a
command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("baseline", help="train and evaluate FLARE or NequIP on one element and split",
                       description="Train a baseline with the paper's protocol, evaluate it on the split's test set "
                       "and write OUT/NAME/{result.json,result.csv,predictions.npz} plus the model. "
                       "Example: tm23 baseline flare Ti --split full --r-cut 5 --n-max 8 --l-max 3")  # fmt: skip
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for model in ("nequip", "flare"):
        m = models.add_parser(
            model, help=f"{'NequIP (nequip 0.19)' if model == 'nequip' else 'FLARE sparse GP (mir-flare)'}"
        )
        m.add_argument("element", metavar="ELEMENT", help='a TM23 symbol, e.g. Ti')
        m.add_argument("--split", default="full", help="split name (tm23 splits ELEMENT lists them; default full)")
        m.add_argument("--out", default="tm23-results", help="results folder (default ./tm23-results)")
        m.add_argument("--name", help="run folder name (default MODEL_ELEMENT_SPLIT)")
        m.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
        m.add_argument("--seed", type=int, default=0, help='seed of the model, the data shuffling and the validation carve (default 0)')
        m.add_argument("--max-time", type=float, metavar="SECONDS", help="wall-time limit of training")
        m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="any other setting (repeatable), e.g. --set radial_mlp_width=32")  # fmt: skip
        if model == "nequip":
            m.add_argument("--r-max", type=float, help="cutoff radius, Å (default 5.0)")
            m.add_argument("--num-layers", type=int, help='interaction layers (default 4)')
            m.add_argument("--l-max", type=int, help='rotation order of the features (default 1)')
            m.add_argument("--num-features", type=int, help='features per irrep (default 32)')
            m.add_argument("--lr", dest="learning_rate", type=float, help="Adam learning rate (default 0.005)")
            m.add_argument("--energy-weight", type=float, help="per-atom energy MSE coefficient (paper: 1)")
            m.add_argument("--force-weight", type=float, help="force MSE coefficient (paper: 1)")
            m.add_argument("--stress-weight", type=float, help="stress MSE coefficient (paper: 1)")
            m.add_argument("--batch-size", type=int, help='frames per batch (default 5)')
            m.add_argument("--max-epochs", type=int, help='stop after this many epochs (default: the learning-rate stop)')
            m.add_argument("--validation", type=float, help="validation fraction of train (paper: 0.1)")
            m.add_argument("--data", choices=("store", "extxyz"), help="data path (default store)")
            m.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto: a GPU if any)")
            m.add_argument("--devices", type=int, help="DDP processes per node: GPUs, or CPU processes with gloo "
                           "(default 1; effective batch = batch size x devices x nodes)")
            m.add_argument("--num-nodes", type=int, help="nodes (default 1; under SLURM, srun starts one task per device)")
            m.add_argument("--slurm", action="store_true", help="submit as a SLURM job that resubmits itself until "
                           "the run is finished (options: --set slurm.partition=gpu --set slurm.extra_sbatch=--gres=gpu:1 ...)")
            m.add_argument("--slurm-time", default="1-00:00:00", help="time limit of each job (default 1-00:00:00)")
            m.add_argument("--slurm-signal", type=int, default=300, metavar="SECONDS",
                           help="SIGUSR1 this long before the time limit: the run saves and the next job continues (default 300)")
            m.add_argument("--dry-run", action="store_true", help="with --slurm: write the job script, submit nothing")
            m.add_argument("--config-only", metavar="PATH", help="only write the nequip config to PATH")
            m.add_argument("--echo", action="store_true", help="show nequip-train's output")
        else:
            m.add_argument("--r-cut", type=float, help="descriptor cutoff, Å (default 5.0)")
            m.add_argument("--n-max", type=int, help='radial basis functions (default 8)')
            m.add_argument("--l-max", type=int, help='angular order of the B2 descriptor (default 3)')
            m.add_argument("--power", type=int, choices=(1, 2), help="kernel power (paper: 2)")
            m.add_argument("--envs-per-frame", type=int, help="sparse environments per frame (default 1)")
            m.add_argument("--max-frames", type=int, help="use this many training frames, evenly spaced")
            m.add_argument("--progress", action="store_true", help='print the optimisation progress')
        m.set_defaults(func=cmd_baseline)
    st = models.add_parser("status", help="where each NequIP run under a results folder stands",
                           description="For every run folder under DIR (finished NAME, unfinished .NAME.partial): "
                           "state (finished, preempted, crashed, running), segments, epochs, learning rate, best "
                           "validation force MAE and wall time summed over segments. An unfinished run continues "
                           "when its command is rerun.")  # fmt: skip
    st.add_argument("dir", metavar="DIR", nargs="?", default="tm23-results", help="results folder (default ./tm23-results)")
    st.add_argument("--json", action="store_true", help="print the rows as JSON")
    st.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="gather baseline results into one table and a periodic-table figure",
                       description="Collect result.json files under the given folders, print the % error table, "
                       "and write report.{csv,json,md} and periodic_table.png (paper Fig. 2 layout) with the "
                       "paper's Table 1 alongside; with results of 2 or more metals, force error vs melting "
                       "temperature (force_vs_melting.{csv,png}, Supplementary Note 2); with learning-curve runs, "
                       "learning exponents per l_max (learning_exponents.{csv,png}, Fig. 6).")  # fmt: skip
    p.add_argument("paths", nargs="*", default=["tm23-results"], metavar="PATH", help='folders holding run folders (default ./tm23-results)')
    p.add_argument("--out", default="tm23-report", help="report folder (default ./tm23-report)")
    p.add_argument("--no-plot", action="store_true", help='do not draw the periodic-table figure')
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--paper", choices=("table1", "table2", "fig7"), help="print a shipped paper table and exit")
    p.add_argument("--model", action="append", metavar="MODEL", help="heat map of this model only (repeatable)")
    p.add_argument("--split", help="heat map of this split (default: the most common)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("evaluate", help="score any interatomic model (CHGNet, SevenNet, an ASE calculator, ...) on TM23",
                       description="Evaluate a model on the test set of a split for each element and write "
                       "OUT/MODEL_ELEMENT_SPLIT/{result.json,result.csv,predictions.npz} (the baselines' schema; "
                       "energy errors raw and after a per-element shift fitted on train). Finished elements are kept "
                       "(resumable). MODEL: emt, chgnet, sevennet-0 (weights in their wheels), mace:PATH, "
                       "mattersim:PATH, orb:PATH, fairchem:PATH, nequip:PATH (compiled or saved nequip 0.19 model), "
                       "or module:factory returning an ASE Calculator. "
                       "Example: tm23 evaluate sevennet-0 --elements Cu,Ti --split cold_to_melt")  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="model spec (see above)")
    p.add_argument("--elements", default="all", help="comma-separated symbols or all (default all)")
    p.add_argument("--split", default="full", help="split name (default full)")
    p.add_argument("--out", default="tm23-results", help="results folder (default ./tm23-results)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--batch-size", type=int, help="frames per batch for batched models; 1: one at a time "
                   "(default 16 on a GPU, 1 on CPU)")
    p.add_argument("--shift-frames", type=int, default=100, help="training frames fitting the energy shift (default 100; 0: none)")
    p.add_argument("--max-frames", type=int, help="only this many test frames per element, evenly spaced")
    p.add_argument("--overwrite", action="store_true", help="redo finished runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("phonons", help="phonon dispersion of a model against a reference (paper Fig. 8)",
                       description="Relax the primitive cell with each model, displace atoms in a supercell with "
                       "phonopy, and compare the bands along the standard path: frequency MAE and mean difference "
                       "(THz), OUT/phonons_ELEMENT.{json,png}. Example: tm23 phonons Cu --model chgnet --reference emt")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help="an fcc, bcc or hcp TM23 metal, e.g. Cu or Os")
    p.add_argument("--model", required=True, help="model spec (as for tm23 evaluate)")
    p.add_argument("--reference", default="emt", help="reference model spec (default emt: Cu Ag Au Ni Pd Pt)")
    p.add_argument("--out", default="tm23-phonons", help="output folder (default ./tm23-phonons)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--min-length", type=float, default=10.0, help="supercell width, Å (default 10)")
    p.add_argument("--npoints", type=int, default=101, help="q-points along the path (default 101)")
    p.add_argument("--no-relax", action="store_true", help="keep the lattice table's cell")
    p.set_defaults(func=cmd_phonons)

    p = sub.add_parser("dynamics", help="short NVT with a model from a data-set frame: RDF vs the data set, stability",
                       description="Bussi NVT at the regime's temperature from a TM23 frame; prints the RDF "
                       "difference to the data set's regime, the closest approach and the conserved-energy drift, "
                       "and writes OUT/dynamics_ELEMENT_REGIME.{json,png}. Example: tm23 dynamics Cu --model chgnet --regime melt")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help="a TM23 symbol")
    p.add_argument("--model", required=True, help="model spec (as for tm23 evaluate)")
    p.add_argument("--regime", default="cold", choices=("cold", "warm", "melt"), help="default cold")
    p.add_argument("--steps", type=int, default=200, help="MD steps (default 200)")
    p.add_argument("--timestep-fs", type=float, default=2.0, help="time step, fs (default 2)")
    p.add_argument("--out", default="tm23-dynamics", help="output folder (default ./tm23-dynamics)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.set_defaults(func=cmd_dynamics)

    p = sub.add_parser("grid", help="grid search of FLARE or NequIP settings on a small subset (200 train / 100 test)",
                       description="Paper protocol: each model is trained on 200 and tested on 100 frames (evenly "
                       "spaced over the split). FLARE: the best model has the lowest test force MAE; NequIP: the "
                       "lowest validation force MAE. Writes grid.{csv,md,json,png}. `tm23 grid ELEMENT ...` is the "
                       "FLARE grid, as before. Example: tm23 grid flare Os --r-cut 4 5 6 --n-max 4 8 12 --l-max 2 4")  # fmt: skip
    grid_models = p.add_subparsers(dest="model", metavar="MODEL", required=True, action=_FlareByDefault)
    g = grid_models.add_parser("flare", help="FLARE descriptor grid (r_cut x n_max x l_max)",
                               description="Train and test one FLARE model per (r_cut, n_max, l_max) on the subsets; "
                               "the best has the lowest force MAE. Example: tm23 grid flare Os --r-cut 4 5 6 "
                               "--n-max 4 8 12 --l-max 2 4")  # fmt: skip
    g.add_argument("element", metavar="ELEMENT", help='a TM23 symbol, e.g. Os')
    g.add_argument("--split", default="full", help='split whose train/test subsets are subsampled (default full)')
    g.add_argument("--r-cut", type=float, nargs="+", default=[4.0, 5.0, 6.0], help='cutoffs, Å (default 4 5 6)')
    g.add_argument("--n-max", type=int, nargs="+", default=[4, 8, 12], help='radial orders (default 4 8 12)')
    g.add_argument("--l-max", type=int, nargs="+", default=[2, 4], help='angular orders (default 2 4)')
    g.add_argument("--n-train", type=int, default=200, help='training frames, evenly spaced (paper: 200)')
    g.add_argument("--n-test", type=int, default=100, help='test frames, evenly spaced (paper: 100)')
    g.add_argument("--power", type=int, choices=(1, 2), default=2, help='kernel power (paper: 2)')
    g.add_argument("--out", default="tm23-grid", help='output folder (default ./tm23-grid)')
    g.set_defaults(func=cmd_grid)
    g = grid_models.add_parser("nequip", help="NequIP grid over any settings (r_max, num_layers, l_max, ...)",
                               description="Train one NequIP run per point of the product of the --set-grid values "
                               "on the subsets (runs in OUT/runs/, each a normal baseline run folder: finished "
                               "points are reused, interrupted ones continue when the command is rerun); the best "
                               "point has the lowest validation force MAE (test errors are shown, never used to "
                               "choose). Example: tm23 grid nequip Cu --set-grid r_max=4,5 --set-grid "
                               "num_layers=2,4 --set-grid l_max=0,1 --max-time 3600")  # fmt: skip
    g.add_argument("element", metavar="ELEMENT", help='a TM23 symbol, e.g. Cu')
    g.add_argument("--split", default="full", help='split whose train/test subsets are subsampled (default full)')
    g.add_argument("--set-grid", action="append", default=[], required=True, metavar="KEY=V1,V2",
                   help="a setting and its values (repeatable; any NequIP setting, e.g. r_max=4,5 num_layers=2,4 "
                        "l_max=0,1 num_features=16,32 learning_rate=0.005,0.01 force_weight=1,10)")  # fmt: skip
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of every point (repeatable), e.g. --set batch_size=5")
    g.add_argument("--n-train", type=int, default=200, help="training frames, evenly spaced; 10%% of them validate "
                   "(paper: 200; 0: the whole split)")  # fmt: skip
    g.add_argument("--n-test", type=int, default=100, help='test frames, evenly spaced (paper: 100; 0: the whole split)')
    g.add_argument("--max-time", type=float, metavar="SECONDS", help="wall-time limit of each point's training")
    g.add_argument("--max-epochs", type=int, help="stop each point after this many epochs")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto: a GPU if any)")
    g.add_argument("--out", default="tm23-grid-nequip", help='output folder (default ./tm23-grid-nequip)')
    g.add_argument("--overwrite", action="store_true", help="retrain every point, finished or not")
    g.add_argument("--echo", action="store_true", help="show nequip-train's output")
    g.set_defaults(func=cmd_grid_nequip)

    p = sub.add_parser("flare-labelsets", help="FLARE %% error on each label set of the same frames (paper Fig. 9a, 9e)",
                       description="Train and test one FLARE model (B2, kernel power 2) per archive, each on its own "
                       "labels of the same frames (e.g. a campaign's archive and its `tm23 derive-labels` sets at "
                       "SIGMA = 1.0 and 2.0 eV). Writes labelsets.csv, labelsets.json and report.md. "
                       "Example: tm23 flare-labelsets Ti sigma02.zip sigma1.zip sigma2.zip --n-train 200 --n-test 100")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help="a TM23 symbol, e.g. Ti")
    p.add_argument("archives", nargs="+", metavar="ARCHIVE", help="zips (or names from `tm23 archives`) of the same frames")
    p.add_argument("--split", default="full", help="split (default full)")
    p.add_argument("--n-train", type=int, help="training frames, evenly spaced (default: all)")
    p.add_argument("--n-test", type=int, help="test frames, evenly spaced (default: all)")
    p.add_argument("--r-cut", type=float, default=5.0, help="cutoff, Å (default 5)")
    p.add_argument("--n-max", type=int, default=8, help="radial order (default 8)")
    p.add_argument("--l-max", type=int, default=3, help="angular order (default 3)")
    p.add_argument("--out", default="tm23-labelsets", help="output folder (default ./tm23-labelsets)")
    p.set_defaults(func=cmd_flare_labelsets)

    p = sub.add_parser("learning-curve", help="NequIP learning curves across l_max (paper Fig. 6)",
                       description="Train NequIP on melt_100 ... melt_900 for each l_max, fit error = a N^b to the "
                       "force MAE, and plot it. Finished runs are reused. "
                       "Example: tm23 learning-curve Cu --sizes 100 300 500 700 900 --l-max 0 1 2 3")  # fmt: skip
    p.add_argument("element", metavar="ELEMENT", help='a TM23 symbol, e.g. Au')
    p.add_argument("--regime", default="melt", choices=("cold", "warm", "melt"), help='trajectory the curve is trained on (paper: melt)')
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 500, 700, 900], help='training-set sizes (paper: 100 300 500 700 900)')
    p.add_argument("--l-max", type=int, nargs="+", default=[0, 1, 2, 3], help='rotation orders to compare (paper: 0 1 2 3)')
    p.add_argument("--features", default=None,
                   help="'paper' (the Table 2 architectures: 64, 32, 16, 8 features for l_max 0..3, 4 layers, "
                        "weight counts within 7%% of Table 2; see baselines/README.md) or an int "
                        "(default: --set num_features)")  # fmt: skip
    p.add_argument("--max-time", type=float, metavar="SECONDS", help="wall-time limit per model")
    p.add_argument("--max-epochs", type=int, help='stop each model after this many epochs')
    p.add_argument("--steps", type=int, help="CPU budgets: about this many optimizer steps per model "
                   "(max_epochs scaled by training-set size)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help='any other NequIP setting (repeatable), e.g. --set r_max=4.5')
    p.add_argument("--out", default="tm23-learning-curve", help='output folder (default ./tm23-learning-curve)')
    p.add_argument("--no-resume", action="store_true", help="retrain runs that already have results")
    p.set_defaults(func=cmd_learning_curve)

    p = sub.add_parser("install-flare", help="build and install mir-flare 1.4.0 offline into this environment",
                       description="Runs the packaged installer (baselines/data/flare/install_flare.sh, also "
                       "scripts/install_flare.sh): Debian packages g++ cmake ninja-build libeigen3-dev "
                       "nlohmann-json3-dev, a build venv, pip wheel with CMake downloads replaced by system "
                       "packages, then pip install --no-deps into this Python.")  # fmt: skip
    p.add_argument("--force", action="store_true", help="rebuild and reinstall even if installed")
    p.add_argument("--sdist", help="path to mir_flare-1.4.0.tar.gz (otherwise pip fetches it from the index)")
    p.add_argument("--print-script", action="store_true", help="print the installer's path and exit")
    p.set_defaults(func=cmd_install_flare)

    p = sub.add_parser("demo", help="the main job, offline: data -> load_tm23 -> FLARE + NequIP -> %% error table",
                       description="Without the published archive, make a small TM23-format data set locally, load "
                       "it with load_tm23, train FLARE and a small NequIP for a short budget and print the % error "
                       "table. With the published archive in the cache (tm23 download) it runs on it.")  # fmt: skip
    p.add_argument("--element", default=None, help="element (default Cu)")
    p.add_argument("--split", default="full", help='split to train and test on (default full)')
    p.add_argument("--data", choices=("auto", "local", "published"), default="auto",
                   help="auto: published if cached, else local (default)")  # fmt: skip
    p.add_argument("--frames", type=int, default=50, help="local data: frames per regime (default 50)")
    p.add_argument(
        "--calculator",
        choices=("emt", "chgnet", "auto"),
        help="local data: MD calculator (default: EMT for Ag Au Cu Ni Pd Pt, else CHGNet)",
    )
    p.add_argument("--equilibration-fs", type=float, help="local data: discarded MD start, fs (default: paper, 5000)")
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS", help="training time per model (default 60)")
    p.add_argument("--models", default="flare,nequip", help="comma-separated (default flare,nequip)")
    p.add_argument("--flare-max-frames", type=int, help="FLARE: at most this many training frames")
    p.add_argument("--workdir", default="tm23-demo", help='working folder for the data, runs and report (default ./tm23-demo)')
    p.add_argument("--seed", type=int, default=0, help='seed of data and models (default 0)')
    p.add_argument("--no-progress", action="store_true", help="no progress bars (MD, labels, FLARE fit)")
    p.set_defaults(func=cmd_demo)


# --------------------------------------------------------------------------------------------------------


def _settings(cls, args, names: tuple[str, ...], items: list[str]):
    """A settings dataclass from the explicit flags that were given and ``--set KEY=VALUE`` pairs, each value
    converted to its field's type (:mod:`tm23data.overrides`)."""
    from .. import overrides

    values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    values.update(overrides.parse_assignments(items))
    return cls.from_dict(values)


NEQUIP_FLAGS = ("r_max", "num_layers", "l_max", "num_features", "learning_rate", "energy_weight", "force_weight",
                "stress_weight", "batch_size", "max_epochs", "validation", "data", "seed", "max_time", "device",
                "devices", "num_nodes")  # fmt: skip
FLARE_FLAGS = ("r_cut", "n_max", "l_max", "power", "envs_per_frame", "seed", "max_time")


def cmd_baseline(args) -> int:
    if args.model == "nequip":
        from .nequip import NequIPSettings, nequip_config, train_nequip, write_config

        slurm_items = [x for x in args.set if x.startswith("slurm.")]
        settings = _settings(NequIPSettings, args, NEQUIP_FLAGS, [x for x in args.set if not x.startswith("slurm.")])
        if args.slurm:
            return _submit_nequip(args, settings, slurm_items)
        if slurm_items:
            raise UsageError(f"{slurm_items[0]}: slurm.* settings need --slurm")
        if args.config_only:
            from ..store import load_store

            if settings.data != "store":
                raise UsageError("--config-only writes store-based configs (the extxyz path exports files first)")
            store = load_store(args.element)
            write_config(
                args.config_only, nequip_config(args.element, args.split, settings, archive_md5=store.archive_md5)
            )
            print(f"wrote {args.config_only}; run it with: TM23_MD5={store.archive_md5} nequip-train -cn "
                  f"{os.path.basename(args.config_only)} (from its folder)")  # fmt: skip
            return 0
        res = train_nequip(args.element, args.split, settings, out=args.out, name=args.name, overwrite=args.overwrite,
                           echo=args.echo)  # fmt: skip
    else:
        from .flare import FlareSettings, train_flare

        settings = _settings(FlareSettings, args, FLARE_FLAGS, args.set)
        res = train_flare(args.element, args.split, settings, out=args.out, name=args.name, overwrite=args.overwrite,
                          max_train_frames=args.max_frames, progress=args.progress)  # fmt: skip
    from ..tables import text_table
    from .report import summary_table

    header, rows = summary_table([res.row()])
    print(text_table(header, rows))
    print(f"\nresults: {res.path}")
    return 0


def _submit_nequip(args, settings, slurm_items: list[str]) -> int:
    from .. import overrides
    from ..generation.settings import SlurmSettings
    from .nequip_slurm import submit_nequip

    if settings.world_size > 1:
        raise UsageError("--slurm runs one training process per job; for --devices/--num-nodes > 1 write the job "
                         "with srun yourself (see baselines/README.md)")  # fmt: skip
    values = {k.split(".", 1)[1]: v for k, v in overrides.parse_assignments(slurm_items).items()}
    slurm = overrides.apply(SlurmSettings(), values, label="slurm")
    command = [sys.executable, "-m", "tm23data.cli", *_without_slurm_options(args.argv)]
    name = args.name or f"nequip_{args.element}_{args.split}"
    job = submit_nequip(command, slurm, out=args.out, name=name, time_limit=args.slurm_time,
                        signal_s=args.slurm_signal, dry_run=args.dry_run)  # fmt: skip
    print(f"wrote {job['script']}" + (f"; submitted job {job['job_id']}" if job["job_id"] else " (dry run)")
          + f"; follow it with: tm23 baseline status {args.out}")  # fmt: skip
    return 0


def _without_slurm_options(argv: list[str]) -> list[str]:
    """``argv`` less --slurm, --dry-run, --slurm-time/--slurm-signal VALUE and --set slurm.KEY=VALUE."""
    out, skip = [], False
    for k, item in enumerate(argv):
        if skip:
            skip = False
            continue
        key = item.split("=", 1)[0]
        if item in ("--slurm", "--dry-run"):
            continue
        if key in ("--slurm-time", "--slurm-signal"):
            skip = "=" not in item
            continue
        if item == "--set" and k + 1 < len(argv) and argv[k + 1].startswith("slurm."):
            skip = True
            continue
        if item.startswith("--set=slurm."):
            continue
        out.append(item)
    return out


def cmd_status(args) -> int:
    from ..tables import text_table
    from .nequip_run import find_runs

    rows = find_runs(args.dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no NequIP runs under {args.dir}")
        return 0
    header = ["run", "state", "segments", "epochs", "lr", "best val F MAE (eV/Å)", "wall (h)", "checkpoint"]
    body = [[r["name"], r["state"], r["segments"], r["epochs"], "" if r["lr"] is None else f"{r['lr']:.3g}",
             "" if r["best_val_forces_mae"] is None else f"{r['best_val_forces_mae']:.4f}",
             f"{r['wall_s'] / 3600:.2f}", "yes" if r["checkpoint"] else "no"] for r in rows]  # fmt: skip
    print(text_table(header, body))
    return 0


def cmd_report(args) -> int:
    from ..tables import text_table
    from .report import paper_table, write_report

    if args.paper:
        rows = paper_table(args.paper)
        print(text_table(list(rows[0]), [list(r.values()) for r in rows]))
        return 0
    rep = write_report(args.paths, args.out, plot=not args.no_plot, models=args.model, split=args.split)
    if args.json:
        print(json.dumps(rep["rows"], indent=2))
    else:
        print(rep["leaderboard"] + "\n")
        print(rep["table"])
        for c in rep["melting"]:
            r = c["r_forces_mae"]
            print(f"{c['model']} {c['split']}: force MAE vs T_melt over {c['metals']} metals: "
                  + ("r = -" if r is None else f"r = {r:.3f}"))  # fmt: skip
        for f in rep["exponents"]:
            err = "" if f["b_stderr"] is None else f" ± {f['b_stderr']:.3f}"
            print(f"{f['model']} {f['element']} {f['regime']} l_max {f['l_max']}: learning exponent b = {f['b']:.3f}{err} "
                  f"(N = {f['sizes']}, R² {f['r2']:.3f})")  # fmt: skip
        print(f"\nreport: {rep['files']['md']}" + (f", {rep['files']['plot']}" if "plot" in rep["files"] else ""))
    return 0


class _AnyName(Mapping):
    """The model parsers by name, as argparse's ``choices``, except that every name passes its check
    (:class:`_FlareByDefault` routes a name that is not a model)."""

    def __init__(self, parsers: dict):
        self.parsers = parsers

    def __getitem__(self, name):
        return self.parsers[name]

    def __iter__(self):
        return iter(self.parsers)

    def __len__(self) -> int:
        return len(self.parsers)

    def __contains__(self, name) -> bool:
        return True


class _FlareByDefault(argparse._SubParsersAction):
    """``tm23 grid ELEMENT ...`` (no model named) is the FLARE grid, as the command was before NequIP's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = _AnyName(self._name_parser_map)

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] not in self._name_parser_map:
            values = ["flare", *values]
        super().__call__(parser, namespace, values, option_string)


def cmd_grid_nequip(args) -> int:
    from .grid import nequip_grid, parse_grid
    from .nequip import NequIPSettings

    base = _settings(NequIPSettings, args, ("max_time", "max_epochs", "device"), args.set)
    rep = nequip_grid(args.element, parse_grid(args.set_grid), split=args.split, n_train=args.n_train,
                      n_test=args.n_test, base=base, out=args.out, overwrite=args.overwrite, echo=args.echo,
                      progress=True)  # fmt: skip
    b = rep["best"]
    point = ", ".join(f"{k}={b[k]}" for k in rep["grid"])
    print(f"best (lowest validation force MAE): {point}: {1000 * b['val_forces_mae']:.4g} meV/Å validation, "
          f"{b['forces_percent']:.2f}% test force error; run {b['run']}; written to {args.out}/grid.{{csv,md,json,png}}")  # fmt: skip
    return 0


def cmd_grid(args) -> int:
    from .flare import FlareSettings
    from .grid import flare_grid

    rep = flare_grid(args.element, split=args.split, r_cuts=args.r_cut, n_maxes=args.n_max, l_maxes=args.l_max,
                     n_train=args.n_train, n_test=args.n_test, base=FlareSettings(power=args.power), out=args.out,
                     progress=True)  # fmt: skip
    b = rep["best"]
    print(f"best (lowest force MAE): r_cut {b['r_cut']} Å, n_max {b['n_max']}, l_max {b['l_max']}: "
          f"{b['forces_percent']:.2f}% force error; written to {args.out}/grid.{{csv,json,png}}")  # fmt: skip
    return 0


def cmd_flare_labelsets(args) -> int:
    from .flare import FlareSettings
    from .labelsets import flare_per_label_set

    settings = FlareSettings(r_cut=args.r_cut, n_max=args.n_max, l_max=args.l_max)
    flare_per_label_set(args.element, args.archives, split=args.split, settings=settings, n_train=args.n_train,
                        n_test=args.n_test, out=args.out, progress=True)  # fmt: skip
    print(f"written to {args.out}: labelsets.csv, labelsets.json, report.md")
    return 0


def cmd_learning_curve(args) -> int:
    from .learning_curve import nequip_learning_curve
    from .nequip import NequIPSettings

    settings = _settings(NequIPSettings, args, ("max_time", "max_epochs"), args.set)
    features = args.features if args.features in (None, "paper") else int(args.features)
    rep = nequip_learning_curve(args.element, regime=args.regime, sizes=args.sizes, l_maxes=args.l_max,
                                settings=settings, features=features, out=args.out, resume=not args.no_resume,
                                steps=args.steps)  # fmt: skip
    for l_max, fit in rep["fits"].items():
        print(f"l_max {l_max}: force MAE = {fit['a']:.3g} N^{fit['b']:.3f} (R² {fit['r2']:.3f})")
    print(f"written to {args.out}/learning_curve.{{json,csv,png}}")
    return 0


def installer_path() -> str:
    return str(resources.files("tm23data.baselines").joinpath("data/flare/install_flare.sh"))


def cmd_install_flare(args) -> int:
    script = installer_path()
    if args.print_script:
        print(script)
        return 0
    env = {**os.environ, "PYTHON": sys.executable}
    if args.force:
        env["FLARE_FORCE"] = "1"
    if args.sdist:
        env["FLARE_SDIST"] = os.path.abspath(args.sdist)
    return subprocess.call(["bash", script], env=env)


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.workdir, element=args.element, split=args.split, data=args.data, frames_per_regime=args.frames,
             calculator=args.calculator, equilibration_fs=args.equilibration_fs, budget_s=args.budget, models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
             flare_max_frames=args.flare_max_frames, seed=args.seed, progress=not args.no_progress)  # fmt: skip
    return 0


def cmd_evaluate(args) -> int:
    from ..tables import text_table
    from .evaluate import evaluate
    from .report import summary_table

    done = evaluate(args.model, args.elements, args.split, out=args.out, device=args.device, batch_size=args.batch_size,
                    shift_frames=args.shift_frames, max_frames=args.max_frames, overwrite=args.overwrite,
                    progress=not args.no_progress)  # fmt: skip
    done = done if isinstance(done, list) else [done]
    header, rows = summary_table([r.row() for r in done])
    print(text_table(header, rows))
    print(f"\nresults: {args.out} (tm23 report {args.out} puts them beside the baselines)")
    return 0


def cmd_phonons(args) -> int:
    from .phonons import compare_phonons

    rep = compare_phonons(args.element, args.model, args.reference, device=args.device, min_length=args.min_length,
                          npoints=args.npoints, relax_cell=not args.no_relax, out=args.out)  # fmt: skip
    m = rep["max_frequency_THz"]
    print(f"{args.element}: {rep['model']['name']} vs {rep['reference']['name']}: frequency MAE "
          f"{rep['frequency_mae_THz']:.3f} THz, mean difference {rep['frequency_mean_difference_THz']:+.3f} THz "
          f"(max {m['model']:.2f} vs {m['reference']:.2f} THz); {rep['files']['plot']}")  # fmt: skip
    return 0


def cmd_dynamics(args) -> int:
    from pathlib import Path

    from .dynamics import plot_rdf_comparison, run_nvt
    from .results import atomic_write_json

    res = run_nvt(args.model, args.element, args.regime, steps=args.steps, timestep_fs=args.timestep_fs,
                  device=args.device)  # fmt: skip
    stem = Path(args.out) / f"dynamics_{args.element}_{args.regime}"
    atomic_write_json(stem.with_suffix(".json"), res.to_json())
    plot_rdf_comparison(res, stem.with_suffix(".png"))
    print(f"{args.element} {args.regime} {res.temperature_K:.0f} K, {res.steps} x {res.timestep_fs} fs with {res.model}: "
          f"{'stable' if res.stable else 'UNSTABLE'}; RDF difference {res.rdf_difference:.3f}, closest approach "
          f"{res.min_distance_A:.2f} Å (start {res.start_min_distance_A:.2f}), drift "
          f"{res.drift_eV_per_atom_per_ps:+.2e} eV/atom/ps; {stem}.png")  # fmt: skip
    return 0
