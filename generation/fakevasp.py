"""VASP-format output written by ASE calculators: test fixtures and a stand-in ``vasp`` for dry runs.

**This is not VASP.** It writes vasprun.xml, OUTCAR, XDATCAR and CONTCAR in the layout of VASP 5.4.1 so
that the parsers, the SLURM job scripts and the whole HPC pipeline can be exercised without VASP (which
is proprietary): ``--set slurm.vasp_command="python -m tm23data.generation.fakevasp"`` runs the real job
scripts end to end on a laptop, with EMT (Ag, Au, Cu, Ni, Pd, Pt) or a Lennard-Jones stand-in as physics.

Units in the files are VASP's: Å, eV, eV/Å, stress in kBar with VASP's sign (the negative of ASE's).

Knobs for tests (environment variables read by :func:`main`):

- ``TM23_FAKE_VASP_UNCONVERGED=1``: the static run uses all NELM electronic steps without reaching EDIFF;
- ``TM23_FAKE_VASP_CRASH=1``: exit with status 1 before writing anything;
- ``TM23_FAKE_VASP_MAX_STEPS=N``: an MD run stops after N steps, as if killed by the time limit (it writes a
  CONTCAR, like VASP after a STOPCAR);
- ``TM23_FAKE_VASP_FAIL_IDS="0003 0017"``: crash when the run directory's name is one of these ids;
- ``TM23_FAKE_VASP_STEP_S=S``: take S seconds per MD step and per static run (jobs that run for a while).

SIGMA and NELECT (for derived label sets, :mod:`.derive`). With the paper's SIGMA = 0.2 eV and no NELECT the
labels are the calculator's own, exactly as before. Otherwise they change in a fixed, smooth and conservative
way, so that a relabelled set differs visibly (not VASP's physics): with w = SIGMA - 0.2 (per eV) and q =
NELECT / atoms - ZVAL (extra electrons per atom, ZVAL from the POTCAR's ``ZVAL =`` line; NELECT without one
is an error, as in VASP), energy, forces and stress are (1 + 0.1 q) x the calculator's + w x those of a
softer Lennard-Jones partner (:data:`PARTNER`); q rescales the forces (a radial change), w also turns them
(an angular one). TOTEN - energy(sigma->0) grows as (SIGMA / 0.2)² x 1 meV.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

#: Written where VASP writes its name and version, so that provenance collected from these files says
#: "fakevasp" and an archive made from them can never pass for VASP labels.
PROGRAM = ("fakevasp", "5.4.1", "24Jun15 (build: fake, written by tm23data.generation.fakevasp) complex serial")


def _kbar() -> float:
    from ase.units import GPa

    return 0.1 * GPa


def _fmt_rows(rows, fmt: str = "{:16.8f}") -> str:
    return "".join("    <v>" + "".join(fmt.format(x) for x in row) + " </v>\n" for row in np.atleast_2d(rows))


def _energy_block(energy: float, free_energy: float, indent: str, wrong_e0: bool = False) -> str:
    e_wo = 2 * energy - free_energy  # MP smearing: e0 = (e_fr + e_wo) / 2
    e0 = free_energy if wrong_e0 else energy  # VASP 5 writes a wrong e_0_energy in <calculation>/<energy>
    return (
        f"{indent}<energy>\n"
        f'{indent} <i name="e_fr_energy"> {free_energy:16.8f} </i>\n'
        f'{indent} <i name="e_wo_entrp"> {e_wo:16.8f} </i>\n'
        f'{indent} <i name="e_0_energy"> {e0:16.8f} </i>\n'
        f"{indent}</energy>\n"
    )


def vasprun_text(
    images,
    incar: dict,
    *,
    n_scf: int | list[int] = 12,
    kpoints=(1, 1, 1),
    truncate_after: int | None = None,
    labels: bool = True,
    scf_converged: bool = True,
) -> str:
    """A vasprun.xml holding ``images`` (``ase.Atoms`` whose calculators hold energy, forces, stress in
    ASE units) as ionic steps. ``truncate_after=k`` cuts the file inside step k+1 (a killed run)."""
    from ..frames import voigt_to_full_3x3

    images = list(images)
    first = images[0]
    symbols = first.get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    n_scf_list = [n_scf] * len(images) if isinstance(n_scf, int) else list(n_scf)
    kbar = _kbar()
    out = ['<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n <generator>\n']
    out.append(f'  <i name="program" type="string">{PROGRAM[0]} </i>\n')
    out.append(f'  <i name="version" type="string">{PROGRAM[1]}  </i>\n')
    out.append(f'  <i name="subversion" type="string">{PROGRAM[2]} </i>\n </generator>\n <incar>\n')
    for key, value in incar.items():
        out.append(f'  <i{_xml_type(value)} name="{key}">{_xml_text(value)}</i>\n')
    out.append(' </incar>\n <kpoints>\n  <generation param="Gamma">\n')
    out.append('   <v type="int" name="divisions">' + " ".join(f"{k:4d}" for k in kpoints) + " </v>\n")
    out.append('  </generation>\n  <varray name="kpointlist" >\n    <v>       0.00000000       0.00000000       '
               '0.00000000 </v>\n  </varray>\n  <varray name="weights" >\n    <v>       1.00000000 </v>\n'
               "  </varray>\n </kpoints>\n <parameters>\n")  # fmt: skip
    params = {"NELM": int(incar.get("NELM", 60)), "EDIFF": float(incar.get("EDIFF", 1e-4)),
              "NSW": int(incar.get("NSW", 0)), "IBRION": int(incar.get("IBRION", -1)),
              "ISIF": int(incar.get("ISIF", 2)), "POTIM": float(incar.get("POTIM", 0.5)),
              "NBLOCK": int(incar.get("NBLOCK", 1))}  # fmt: skip
    out.append('  <separator name="electronic" >\n')
    out.append(f'   <i type="int" name="NELM">{params["NELM"]:8d}</i>\n')
    out.append(f'   <i name="EDIFF">{params["EDIFF"]:16.8f}</i>\n  </separator>\n  <separator name="ionic" >\n')
    for key in ("NSW", "IBRION", "ISIF"):
        out.append(f'   <i type="int" name="{key}">{params[key]:8d}</i>\n')
    out.append(f'   <i name="POTIM">{params["POTIM"]:16.8f}</i>\n  </separator>\n')
    out.append(f'  <separator name="output" >\n   <i type="int" name="NBLOCK">{params["NBLOCK"]:8d}</i>\n'
               "  </separator>\n </parameters>\n")  # fmt: skip
    out.append(f" <atominfo>\n  <atoms>{len(symbols):8d} </atoms>\n  <types>{len(species):8d} </types>\n")
    out.append('  <array name="atoms" >\n   <dimension dim="1">ion</dimension>\n   <field type="string">element</field>\n'
               '   <field type="int">atomtype</field>\n   <set>\n')  # fmt: skip
    for s in symbols:
        out.append(f"    <rc><c>{s:2s}</c><c>{species.index(s) + 1:4d}</c></rc>\n")
    out.append("   </set>\n  </array>\n </atominfo>\n")
    out.append(_structure_xml(first, ' name="initialpos" '))
    for k, atoms in enumerate(images):
        if truncate_after is not None and k == truncate_after:
            out.append(' <calculation>\n  <scstep>\n   <energy>\n    <i name="e_fr_energy">   -12.3')  # cut here
            return "".join(out)
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = float(results.get("energy", 0.0))
        free = float(results.get("free_energy", energy + 1e-3))
        out.append(" <calculation>\n")
        n = n_scf_list[k]
        for j in range(n):  # SCF energies converging geometrically onto the final value (or oscillating)
            delta = (10.0 * 0.1**j if j < n - 1 else 0.0) if scf_converged else 0.01 * (-1) ** j
            out.append('  <scstep>\n   <time name="dav">    0.01    0.01</time>\n')
            out.append(_energy_block(energy + delta, free + delta, "   "))
            out.append("  </scstep>\n")
        out.append(_structure_xml(atoms, ""))
        if labels and "forces" in results:
            out.append('  <varray name="forces" >\n' + _fmt_rows(results["forces"]) + "  </varray>\n")
        if labels and "stress" in results:
            s_vasp = -voigt_to_full_3x3(np.asarray(results["stress"])) / kbar
            out.append('  <varray name="stress" >\n' + _fmt_rows(s_vasp) + "  </varray>\n")
        out.append(_energy_block(energy, free, "  ", wrong_e0=True))
        out.append('  <time name="totalsc">    0.10    0.10</time>\n </calculation>\n')
    out.append(_structure_xml(images[-1], ' name="finalpos" '))
    out.append("</modeling>\n")
    return "".join(out)


def _xml_type(value) -> str:
    if isinstance(value, bool):
        return ' type="logical"'
    if isinstance(value, int):
        return ' type="int"'
    if isinstance(value, float):
        return ""
    return ' type="string"'


def _xml_text(value) -> str:
    if isinstance(value, bool):
        return " T  " if value else " F  "
    if isinstance(value, float):
        return f"{value:16.8f}"
    return f" {value}"


def _structure_xml(atoms, attrs: str) -> str:
    cell = atoms.cell.array
    frac = np.linalg.solve(cell.T, atoms.positions.T).T
    return (
        f'  <structure{attrs}>\n   <crystal>\n    <varray name="basis" >\n{_fmt_rows(cell)}    </varray>\n'
        f'    <i name="volume">{abs(np.linalg.det(cell)):16.8f} </i>\n   </crystal>\n'
        f'   <varray name="positions" >\n{_fmt_rows(frac)}   </varray>\n  </structure>\n'
    )


def outcar_text(
    images,
    incar: dict,
    *,
    potcar: str = "PAW_PBE Cu_pv 06Sep2000",
    n_scf: int | list[int] = 12,
    converged: bool | list[bool] = True,
    finished: bool = True,
) -> str:
    """An OUTCAR with one block per ionic step in VASP 5.4.1's layout (what ASE's parser and ours need)."""
    images = list(images)
    symbols = images[0].get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    counts = [symbols.count(s) for s in species]
    n_list = [n_scf] * len(images) if isinstance(n_scf, int) else list(n_scf)
    conv = [converged] * len(images) if isinstance(converged, bool) else list(converged)
    kbar = _kbar()
    out = [f" {PROGRAM[0]}.{PROGRAM[1]} {PROGRAM[2]}\n\n"]
    out += [f" POTCAR:    {potcar}\n" for _ in species] * 2
    out.append(f"\n   ions per type =  {' '.join(f'{c:5d}' for c in counts)}\n\n Dimension of arrays:\n")
    out.append(
        "   k-points           NKPTS =      1   k-points in BZ     NKDIM =      1   number of bands    NBANDS=     64\n\n"
    )
    out.append(f"   NELM   = {int(incar.get('NELM', 60)):6d};   NELMIN=  2; NELMDL= -5     # of ELM steps\n")
    out.append(f"   EDIFF  = {float(incar.get('EDIFF', 1e-4)):.1E}   stopping-criterion for ELM\n")
    out.append(f"   NSW    = {int(incar.get('NSW', 0)):6d}    number of steps for IOM\n")
    out.append(f"   NBLOCK = {int(incar.get('NBLOCK', 1)):6d};   KBLOCK =   1000    inner block; outer block\n")
    out.append(f"   IBRION = {int(incar.get('IBRION', -1)):6d}    ionic relax: 0-MD 1-quasi-New 2-CG\n")
    out.append(f"   ISIF   = {int(incar.get('ISIF', 2)):6d}    stress and relaxation\n")
    out.append(f"   POTIM  = {float(incar.get('POTIM', 0.5)):7.4f}    time-step for ionic-motion\n")
    out.append(f"   ISPIN  = {int(incar.get('ISPIN', 1)):6d}    spin polarized calculation?\n\n")
    out.append(
        " k-points in reciprocal lattice and weights: Gamma\n   0.00000000  0.00000000  0.00000000       1.000\n\n"
    )
    for k, atoms in enumerate(images):
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = float(results.get("energy", 0.0))
        free = float(results.get("free_energy", energy + 1e-3))
        forces = np.asarray(results.get("forces", np.zeros((len(atoms), 3))))
        for j in range(1, n_list[k] + 1):
            out.append(f"----------------------------------------- Iteration {k + 1:6d}({j:4d})  "
                       "---------------------------------------\n\n")  # fmt: skip
        if conv[k]:
            out.append(
                " ------------------------ aborting loop because EDIFF is reached ----------------------------------------\n\n"
            )
        if "stress" in results:
            from ..frames import voigt_to_full_3x3

            s = -voigt_to_full_3x3(np.asarray(results["stress"])) / kbar  # kBar, VASP sign
            row = [s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[1, 2], s[2, 0]]
            out.append("  FORCE on cell =-STRESS in cart. coord.  units (eV):\n"
                       "  Direction    XX          YY          ZZ          XY          YZ          ZX\n")  # fmt: skip
            out.append("  in kB  " + "".join(f"{x:12.5f}" for x in row) + "\n")
            out.append(f"  external pressure = {np.trace(s) / 3:11.2f} kB  Pullay stress =        0.00 kB\n\n")
        cell = atoms.cell.array
        recip = np.linalg.inv(cell).T
        out.append(
            " VOLUME and BASIS-vectors are now :\n -----------------------------------------------------------------------------\n"
        )
        out.append(f"  energy-cutoff  :      520.00\n  volume of cell : {abs(np.linalg.det(cell)):11.2f}\n")
        out.append("      direct lattice vectors                 reciprocal lattice vectors\n")
        for i in range(3):
            out.append(
                "  " + "".join(f"{x:13.9f}" for x in cell[i]) + "  " + "".join(f"{x:13.9f}" for x in recip[i]) + "\n"
            )
        out.append("\n\n POSITION                                       TOTAL-FORCE (eV/Angst)\n")
        out.append(" -----------------------------------------------------------------------------------\n")
        for p, f in zip(atoms.positions, forces):
            out.append(" " + "".join(f"{x:12.5f}" for x in p) + "    " + "".join(f"{x:14.6f}" for x in f) + "\n")
        out.append(" -----------------------------------------------------------------------------------\n")
        out.append("    total drift:                                0.000000      0.000000      0.000000\n\n\n")
        out.append(
            "--------------------------------------------------------------------------------------------------------\n\n\n"
        )
        out.append(
            "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)\n  ---------------------------------------------------\n"
        )
        out.append(f"  free  energy   TOTEN  = {free:18.8f} eV\n\n")
        out.append(f"  energy  without entropy= {2 * energy - free:18.8f}  energy(sigma->0) = {energy:18.8f}\n\n\n")
    if finished:
        out.append("\n General timing and accounting informations for this job:\n ========================================================\n\n"
                   "                  Total CPU time used (sec):        1.000\n")  # fmt: skip
    return "".join(out)


def xdatcar_text(images, *, comment: str | None = None, truncate_last: bool = False) -> str:
    """An XDATCAR (VASP 5, fixed cell): one header, then ``Direct configuration= k`` blocks."""
    images = list(images)
    symbols = images[0].get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    cell = images[0].cell.array
    out = [f"{comment or ''.join(species)}\n           1\n"]
    out += ["    " + "".join(f"{x:12.6f}" for x in row) + "\n" for row in cell]
    out.append(
        "   "
        + "".join(f"{s:>5s}" for s in species)
        + "\n   "
        + "".join(f"{symbols.count(s):5d}" for s in species)
        + "\n"
    )
    for k, atoms in enumerate(images):
        frac = np.linalg.solve(cell.T, atoms.positions.T).T % 1.0
        out.append(f"Direct configuration={k + 1:6d}\n")
        rows = ["  " + "".join(f"{x:12.8f}" for x in row) + "\n" for row in frac]
        if truncate_last and k == len(images) - 1:
            rows = rows[: len(rows) // 2] + ["  0.1234567"]
        out += rows
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# A stand-in `vasp` executable


def _calculator(symbols):
    from .local import EMT_ELEMENTS

    if set(symbols) <= EMT_ELEMENTS:
        from ase.calculators.emt import EMT

        return EMT()
    from ase.calculators.lj import LennardJones

    return LennardJones(sigma=2.3, epsilon=0.2, rc=5.0, smooth=True)


#: The SIGMA (eV) at which the stand-in's labels are its calculator's own (the paper's value).
REFERENCE_SIGMA = 0.2
#: The Lennard-Jones parameters (Å, eV, Å) of the partner potential mixed in when SIGMA differs.
PARTNER = {"sigma": 2.0, "epsilon": 0.05, "rc": 5.0}


def extra_electrons_per_atom(incar: dict, potcar: Path, natoms: int) -> float:
    """q = NELECT / atoms - ZVAL: 0 without NELECT; ZVAL from the POTCAR (one species)."""
    if "NELECT" not in incar:
        return 0.0
    from .vasp import potcar_zvals

    zvals = potcar_zvals(potcar.read_text(errors="replace"), str(potcar))
    return float(incar["NELECT"]) / natoms - zvals[0]


def changed_labels(atoms, energy, forces, stress, sigma: float, extra: float):
    """(energy, free energy, forces, stress) of the stand-in at ``sigma`` (eV) and ``extra`` electrons per
    atom, from the calculator's own labels (see the module docstring)."""
    from ase.calculators.lj import LennardJones

    scale, w = 1.0 + 0.1 * extra, sigma - REFERENCE_SIGMA
    partner = atoms.copy()
    partner.calc = LennardJones(**PARTNER, smooth=True)
    e = scale * energy + w * partner.get_potential_energy()
    f = scale * np.asarray(forces) + w * partner.get_forces()
    s = scale * np.asarray(stress) + w * partner.get_stress()
    return e, e + 1e-3 * (sigma / REFERENCE_SIGMA) ** 2, f, s


def run(directory: str | os.PathLike = ".") -> int:
    """Do what VASP would do in ``directory`` (INCAR, POSCAR, KPOINTS, POTCAR[.spec]), with EMT/LJ physics."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from .vaspout import read_incar

    directory = Path(directory).resolve()
    if (
        os.environ.get("TM23_FAKE_VASP_CRASH") == "1"
        or directory.name in os.environ.get("TM23_FAKE_VASP_FAIL_IDS", "").split()
    ):
        print("fake vasp: crashing on purpose", file=sys.stderr)
        return 1
    import time

    step_s = float(os.environ.get("TM23_FAKE_VASP_STEP_S", 0) or 0)
    for name in ("INCAR", "POSCAR", "KPOINTS"):
        if not (directory / name).is_file():
            print(f"fake vasp: {name} missing in {directory}", file=sys.stderr)
            return 1
    if not (directory / "POTCAR").is_file():
        print("fake vasp: POTCAR missing (VASP would stop here too)", file=sys.stderr)
        return 1
    incar = read_incar(directory / "INCAR")
    atoms = ase.io.read(directory / "POSCAR", format="vasp")
    calc = _calculator(atoms.get_chemical_symbols())
    sigma = float(incar.get("SIGMA", REFERENCE_SIGMA))
    try:
        extra = extra_electrons_per_atom(incar, directory / "POTCAR", len(atoms))
    except Exception as err:  # noqa: BLE001 - VASP stops on a POTCAR it cannot read, too
        print(f"fake vasp: NELECT given but {err}", file=sys.stderr)
        return 1

    def label(a):
        a = a.copy()
        a.calc = calc
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        free = e + 1e-3
        if sigma != REFERENCE_SIGMA or extra != 0.0:
            e, free, f, s = changed_labels(a, e, f, s, sigma, extra)
        a.calc = SinglePointCalculator(a, energy=e, free_energy=free, forces=f, stress=s)
        return a

    if int(incar.get("IBRION", -1)) != 0:
        time.sleep(step_s)
        image = label(atoms)
        unconverged = os.environ.get("TM23_FAKE_VASP_UNCONVERGED") == "1"
        nelm = int(incar.get("NELM", 60))
        n = nelm if unconverged else 9
        _write(directory / "vasprun.xml", vasprun_text([image], incar, n_scf=n, scf_converged=not unconverged))
        _write(directory / "OUTCAR", outcar_text([image], incar, n_scf=n, converged=not unconverged))
        ase.io.write(directory / "CONTCAR", atoms, format="vasp", direct=True)
        return 0
    # molecular dynamics (NVT): Nosé-Hoover at TEBEG with POTIM
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    nsw = int(incar.get("NSW", 0))
    max_steps = int(os.environ.get("TM23_FAKE_VASP_MAX_STEPS", nsw))
    temperature = float(incar.get("TEBEG", 300))
    dt = float(incar.get("POTIM", 1.0))
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(0))
    from .settings import nose_hoover_tdamp_fs

    # SMASS = 0: temperature oscillates with a period of 40 time steps
    tdamp_fs = nose_hoover_tdamp_fs(40 * dt)
    dyn = NoseHooverChainNVT(atoms, timestep=dt * units.fs, temperature_K=temperature, tdamp=tdamp_fs * units.fs,
                             tchain=1)  # fmt: skip
    images = []
    for step in range(min(nsw, max_steps)):
        time.sleep(step_s)
        if step:
            dyn.run(1)
        images.append(label(atoms))
        if (directory / "STOPCAR").is_file():
            break
    _write(directory / "XDATCAR", xdatcar_text(images))
    _write(directory / "vasprun.xml", vasprun_text(images, incar, n_scf=6))
    _write(directory / "OUTCAR", outcar_text(images, incar, n_scf=6))
    dyn.run(1)
    ase.io.write(directory / "CONTCAR", atoms, format="vasp", direct=True)
    return 0


def _write(path: Path, text: str) -> None:
    from ..atomic import write_atomic

    write_atomic(path, text)


def main(argv=None) -> int:  # pragma: no cover - exercised through the job scripts
    return run(argv[0] if argv else ".")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
