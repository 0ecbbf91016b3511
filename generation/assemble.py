"""From labelled trajectories to an archive in exactly the published format, with its provenance.

Per element and regime the frames are in trajectory order; the first ``md.n_train`` (900 of 1000) are the
training frames and the rest (100) the test frames; 2700cwm = cold, warm, melt combined in that order
(:func:`tm23data.archive.members_from_regimes`). The zip is written by :func:`tm23data.archive.write_archive`
(published member names, ASE's extxyz writer, atomic) with a ``PROVENANCE.json`` member that says how the
data was made, so a generated archive is never mistaken for the published VASP/PBE one.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .. import __version__, elements
from ..archive import members_from_regimes, write_archive
from ..errors import UsageError
from ..frames import Frames
from ..provenance import package_versions, utc_now
from .settings import MDSettings, Settings


def split_regime(frames: Frames, md: MDSettings) -> tuple[Frames, Frames]:
    """(train, test): the first ``md.n_train`` frames of the trajectory and the remaining ``md.n_test``."""
    if len(frames) != md.n_frames:
        raise UsageError(f"{len(frames)} frames, but the protocol has {md.n_frames} per regime")
    return frames.take(range(md.n_train)), frames.take(range(md.n_train, md.n_frames))


def base_provenance(pipeline: str, settings: Settings, *, what: str, labels: dict, extra_versions=()) -> dict:
    """The common part of a generated archive's PROVENANCE.json."""
    return {
        "generator": "tm23data.generation",
        "tm23data_version": __version__,
        "published_tm23": False,
        "what": what,
        "pipeline": pipeline,
        "labels": labels,
        "created_utc": utc_now(),
        "versions": package_versions("ase", "numpy", "tm23data", *extra_versions),
        "settings": settings.to_dict(),
        "split_rule": (
            f"per regime, the first {settings.md.n_train} frames of the trajectory are train and the last "
            f"{settings.md.n_test} test (train_fraction {settings.md.train_fraction}); 2700cwm = cold, warm, "
            "melt concatenated"
        ),  # fmt: skip
        "protocol": {
            "timestep_fs": settings.md.timestep_fs,
            "equilibration_fs": settings.md.equilibration_fs,
            "interval_fs": settings.md.interval_fs,
            "frames_per_regime": settings.md.n_frames,
            "duration_fs": settings.md.duration_fs,
            "thermostat": f"Nosé-Hoover NVT, Nosé mass giving a temperature-oscillation period of "
            f"{settings.md.nose_mass_steps} time steps ({settings.md.thermostat_period_fs:g} fs; VASP SMASS = 0; "
            f"ASE tdamp {settings.md.thermostat_time_fs:.2f} fs in local runs)",
            "temperatures": "0.25, 0.75, 1.25 x experimental T_melt (tm23data.elements)",
        },
        "units": "positions/cell: Å; energy: eV; forces: eV/Å; stress: eV/Å³ (ASE sign: positive = tensile)",
        "elements": {},
    }


def write_generated_archive(path: str | os.PathLike, per_element: dict, settings: Settings, provenance: dict) -> str:
    """Build the 8 members per element and write the zip and its ``.md5`` file; returns the md5. Local and
    VASP generation both end here, so their archives have one layout and one provenance shape.

    ``per_element[element][regime]`` is either the regime's frames in trajectory order (split here with
    :func:`split_regime`) or an explicit (train, test) pair (e.g. after unconverged frames were dropped)."""
    members = {}
    for element, per_regime in per_element.items():
        elements.get(element)
        missing = [r for r in elements.REGIMES if r not in per_regime]
        if missing:
            raise UsageError(f"{element}: no frames for regime(s) {', '.join(missing)}; an archive needs all three")
        pairs = {}
        for regime in elements.REGIMES:
            value = per_regime[regime]
            train, test = value if isinstance(value, tuple) else split_regime(value, settings.md)
            if not len(train) or not len(test):
                raise UsageError(
                    f"{element} {regime}: {len(train)} train and {len(test)} test frames; both must be non-empty"
                )
            pairs[regime] = (train, test)
        members[element] = members_from_regimes(pairs)
    md5 = write_archive(path, members, provenance)
    write_md5_file(path, md5)
    return md5


def write_md5_file(path: str | os.PathLike, md5: str) -> Path:
    """``<archive>.md5`` next to the archive, in ``md5sum`` format (``md5sum -c`` checks it)."""
    from ..atomic import write_atomic

    path = Path(path)
    return write_atomic(path.with_name(path.name + ".md5"), f"{md5}  {path.name}\n")


def followup_commands(path: str | os.PathLike, md5: str, element: str = "Cu") -> str:
    """The commands that make the archive loadable by ``load_tm23`` (printed by ``tm23 generate``/``collect``)."""
    quoted = shlex.quote(str(Path(path).resolve()))
    return (
        f"  tm23 import {quoted} --md5 {md5}\n"
        f"  export TM23_MD5={md5}\n"
        f"  python -c \"from tm23data import load_tm23; print(load_tm23('{element}'))\"\n"
        f"(or serve the zip and set TM23_URL=<url> TM23_MD5={md5})"
    )
