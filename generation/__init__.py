"""Reproduce the TM23 data: structures, AIMD, frame extraction, static labels and an archive in the
published format, with VASP on a SLURM cluster or locally with an ASE calculator (CHGNet or EMT).

Modules (imported on demand; ``import tm23data.generation`` stays light):

- :mod:`.settings`    every setting (MD protocol, supercell rule, INCAR tags, k-points, PAW sets, SLURM)
- :mod:`.structures`  lattice table with sources and certainty, supercells with a vacancy, archive cells
- :mod:`.vasp`        INCAR/KPOINTS/POSCAR/POTCAR(.spec) writers for the AIMD and the static labels
- :mod:`.vaspout`     vasprun.xml / XDATCAR / OUTCAR readers (truncation detected, ASE units and sign)
- :mod:`.extract`     frames from AIMD output over restarted segments (5 ps dropped, every 50 fs)
- :mod:`.labels`      static outputs checked (SCF convergence, stress, right frame)
- :mod:`.kpoints`     k-point convergence helper
- :mod:`.assemble`    split, provenance and archive writing
- :mod:`.campaign`    campaign folder, settings, inputs, state manifest and resume
- :mod:`.scheduler`   the batch-scheduler interface and its SLURM implementation
- :mod:`.jobscripts`  job scripts from the shell templates in templates/
- :mod:`.submission`  submit what is missing, status from the scheduler, cancel
- :mod:`.collect`     labels validated and packed into the archive
- :mod:`.derive`      derived label campaigns: the same frames with another SIGMA or NELECT (Fig. 9)
- :mod:`.slurm`       all of the above as one import
- :mod:`.local`       the same pipeline without VASP (ASE Nosé-Hoover MD with CHGNet or EMT)
- :mod:`.rdf`         radial distribution functions per regime
- :mod:`.fakevasp`    VASP-format files from ASE calculators, for tests and dry runs (not VASP)

Command line: ``tm23 structures``, ``tm23 generate``, ``tm23 vasp-inputs``, ``tm23 slurm``, ``tm23 collect``,
``tm23 kpoints``, ``tm23 derive-labels``, ``tm23 rdf``. See generation/README.md.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

_LAZY = {
    "Settings": ("tm23data.generation.settings", "Settings"),
    "build_supercell": ("tm23data.generation.structures", "build_supercell"),
    "generate_local": ("tm23data.generation.local", "generate_local"),
    "Campaign": ("tm23data.generation.campaign", "Campaign"),
    "extract_frames": ("tm23data.generation.extract", "extract_frames"),
    "parse_static": ("tm23data.generation.labels", "parse_static"),
    "choose_kmesh": ("tm23data.generation.kpoints", "choose_kmesh"),
    "rdf_from_store": ("tm23data.generation.rdf", "rdf_from_store"),
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
