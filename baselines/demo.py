"""The main offline job (``tm23 demo``): data -> ``load_tm23`` -> FLARE and a small NequIP -> % error table.

Without the published archive (a fresh machine, no internet) it first makes a small TM23-format archive
locally with the generation pipeline (:func:`make_local_archive`: MD with EMT or CHGNet), imports it into
the cache under its own md5 and works on that; with the published archive in the cache (``tm23 download``),
or ``--data published``, the same command runs on the published data with ``--element``/``--split``. Training is short (a time budget per model), so the
numbers show that the pipeline works end to end, not the paper's accuracy.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from .. import config, manifest
from ..errors import UsageError
from .flare import FlareSettings
from .nequip import NequIPSettings

#: Small, fast settings for the short-budget run (the paper's protocol otherwise: loss, schedule, stop rule).
DEMO_NEQUIP = NequIPSettings(r_max=4.5, num_layers=2, l_max=1, num_features=16, radial_mlp_depth=1,
                             radial_mlp_width=32, num_bessels=8, batch_size=4, learning_rate=0.01, max_epochs=500)  # fmt: skip
DEMO_FLARE = FlareSettings(r_cut=4.5, n_max=6, l_max=3)
DATA_CHOICES = ("auto", "local", "published")


def make_local_archive(folder: str | os.PathLike, element: str = "Cu", *, frames_per_regime: int = 50,
                       calculator: str | None = None, equilibration_fs: float | None = None,
                       seed: int = 0, progress: bool = False) -> tuple[Path, str, dict]:  # fmt: skip
    """Make a small TM23-format archive for ``element`` in ``folder``; returns (zip path, md5, provenance).

    This is the one data-making call of the job: the local generation pipeline
    (:func:`tm23data.generation.local.generate_local`, as ``tm23 generate``): NVT Nosé-Hoover MD at the three
    TM23 temperatures with the paper's time step and frame interval, labels from an ASE calculator, the 90/10
    split per trajectory, written in the published archive format. ``calculator`` defaults to EMT for the six
    metals it covers (about half a minute for 50 frames per regime) and CHGNet otherwise (tens of minutes on a
    2-core CPU: lower ``frames_per_regime`` or ``equilibration_fs``, which defaults to the paper's 5 ps). The
    supercell is the small one of rule "vectors" (Cu 2x2x2, 31 atoms), not the default rule's published
    3x3x2 (71 atoms): the MD and both trainings take about half the time.
    """
    from ..generation.local import EMT_ELEMENTS, generate_local
    from ..generation.settings import MDSettings, Settings, StructureSettings

    calculator = calculator or ("emt" if element in EMT_ELEMENTS else "chgnet")
    md = MDSettings(n_frames=frames_per_regime)
    if equilibration_fs is not None:
        md = replace(md, equilibration_fs=equilibration_fs)
    settings = Settings(md=md, structure=StructureSettings(rule="vectors", seed=seed))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = generate_local([element], folder / f"tm23_{element}_{calculator}_{frames_per_regime}frames.zip",
                            calculator=calculator, settings=settings, progress=progress)  # fmt: skip
    return result.archive, result.md5, result.provenance


def published_available() -> bool:
    """True when the published archive is in the cache (so nothing needs downloading)."""
    return config.archive_source(md5=manifest.ARCHIVE_MD5).archive_path().is_file()


def run_demo(
    workdir: str | os.PathLike = "tm23-demo",
    *,
    element: str | None = None,
    split: str = "full",
    data: str = "auto",
    frames_per_regime: int = 50,
    calculator: str | None = None,
    equilibration_fs: float | None = None,
    budget_s: float = 60.0,
    models=("flare", "nequip"),
    flare_max_frames: int | None = None,
    seed: int = 0,
    say=print,
    progress: bool = False,
) -> dict:
    """Run the job; returns the report (rows, files, printed table). ``progress``: tqdm bars for the steps
    that take more than a few seconds (MD and labels, FLARE's fit)."""
    from ..fetch import import_archive
    from ..hf import load_tm23
    from . import report
    from .flare import train_flare
    from .nequip import train_nequip

    if data not in DATA_CHOICES:
        raise UsageError(f"data must be one of {DATA_CHOICES}, got {data!r}")
    unknown = set(models) - {"flare", "nequip"}
    if unknown:
        raise UsageError(f"unknown models {sorted(unknown)}; choose from flare, nequip")
    workdir = Path(workdir).resolve()
    use_published = data == "published" or (data == "auto" and published_available())
    if use_published:
        element = element or "Cu"
        source = config.archive_source(md5=manifest.ARCHIVE_MD5)
        say(f"[1/4] data: the published TM23 archive ({source.md5}), {element}, split {split}")
    else:
        element = element or "Cu"
        say(f"[1/4] data: no published archive in the cache; making a small local TM23-format set for {element} "
            f"({frames_per_regime} frames per regime) in {workdir / 'data'}")  # fmt: skip
        path, md5, provenance = make_local_archive(workdir / "data", element, frames_per_regime=frames_per_regime,
                                                   calculator=calculator, equilibration_fs=equilibration_fs,
                                                   seed=seed, progress=progress)  # fmt: skip
        import_archive(path, config.archive_source(md5=md5))
        source = config.archive_source(md5=md5)  # after the import: it names the cached file
        say(f"      {provenance['calculator'].upper()} molecular dynamics and labels, archive md5 {md5} "
            f"(imported into {config.home()})")  # fmt: skip
    ds = load_tm23(element, split, source=source, progress=False)
    sizes = {name: len(d) for name, d in ds.items()}
    say(f"[2/4] load_tm23({element!r}, {split!r}): " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    out = workdir / "results"
    tag = "published" if use_published else "local"
    if "flare" in models:
        from .flare import flare_available

        if flare_available():
            say(f"[3/4] FLARE (B2 r_cut {DEMO_FLARE.r_cut} Å, n_max {DEMO_FLARE.n_max}, l_max {DEMO_FLARE.l_max}), "
                f"budget {budget_s:.0f} s")  # fmt: skip
            tic = time.perf_counter()
            train_flare(element, split, replace(DEMO_FLARE, max_time=budget_s, seed=seed), out=out,
                        name=f"flare_{element}_{split}_{tag}", overwrite=True, source=source,
                        max_train_frames=flare_max_frames, progress=progress)  # fmt: skip
            say(f"      done in {time.perf_counter() - tic:.0f} s")
        else:
            say("[3/4] FLARE skipped: mir-flare is not installed (run `tm23 install-flare`)")
    if "nequip" in models:
        s = replace(DEMO_NEQUIP, max_time=budget_s, seed=seed)
        say(
            f"[3/4] NequIP (l_max {s.l_max}, {s.num_layers} layers, {s.num_features} features), budget {budget_s:.0f} s"
        )
        tic = time.perf_counter()
        train_nequip(element, split, s, out=out, name=f"nequip_{element}_{split}_{tag}", overwrite=True, source=source,
                     progress=progress)  # fmt: skip
        say(f"      done in {time.perf_counter() - tic:.0f} s")
    rep = report.write_report([out], workdir / "report")
    say("[4/4] test errors" + ("" if use_published else " (local data: not comparable with the paper)") + ":\n")
    say(rep["table"])
    say(f"\nreport: {rep['files']['md']}")
    return rep
