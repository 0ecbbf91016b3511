"""Ground-state crystals of the 27 metals and the TM23 supercell with its vacancy.

The paper (Methods) took each metal's lowest-energy, experimentally observed Materials Project structure at
its 0 K PBE lattice constants, made supercells "with every lattice vector at least 7 Å" (Data Set
Description; Methods: "at least 7 Å of spacing between an atom and its periodic images"), 32-71 atoms, and
deleted one random atom. This module holds:

- the lattice table (``generation/data/lattice.csv``): per metal the structure, lattice constants,
  their **source, certainty and expected error** (``archive``: measured from the published frames; ``pbe``:
  Materials Project legacy PBE value, not re-checked here; ``pbe-estimate``: mean of the CHGNet and
  SevenNet-0 relaxations where the two agree, see :mod:`~tm23data.generation.latticecheck`;
  ``experimental``: ASE's reference data, the PBE value unverified), the experimental constants beside a
  ``pbe-estimate`` (``a_exp_A``, ``c_over_a_exp``, ``alpha_exp_deg``), and the published supercell where
  it is known;
- overrides: a CIF/POSCAR file (:func:`read_structure_file`), or the Materials Project GGA entry through
  ``mp-api`` when the user has a key (:func:`from_materials_project`; r2SCAN entries are refused);
- the supercell rule (:func:`supercell_repeat`) and the vacancy (:func:`build_supercell`);
- the faithful path: the exact cell of an element read from TM23 frames (:func:`cell_from_frames`,
  :func:`supercell_from_frames`), with every disagreement with the table reported.

**The supercell rule.** The conventional cells are built here with ASE's space-group builder (fcc/bcc cubic
4/2 atoms, hcp hexagonal 2 atoms, alpha-Hg in the hexagonal setting of R-3m, 3 atoms, alpha-Mn cubic 58
atoms), which is also pymatgen's conventional standard cell. With "every lattice vector >= 7 Å" this gives
fcc 2x2x2 (32 sites), bcc 3x3x3 (54), hcp 3x3x2 or so (36), Hg 3x3x2 (54), alpha-Mn 1x1x1 (58): the paper's
"32 to 71 atoms". The one published cell we know, Cu, is 3x3x2 conventional (72 sites, 71 atoms), which no
7 Å rule we tried reproduces: conventional vectors >= 7 Å and atom-to-image distance >= 7 Å both give 2x2x2;
primitive vectors >= 7 Å gives 3x3x3 primitive (27); pymatgen's ``CubicSupercellTransformation(min_length=7)``
gives 2x2x2. So the default rule, "fill" (inferred: the most sites up to 72 with every vector >= 7 Å),
is the one that reproduces the published Cu cell and puts every metal in the paper's 32-71 atoms (71, and
57 for alpha-Mn); "vectors" (the paper's wording alone, fewest repeats) gives the small cells above, rule
"tm23" uses the published cell where the table records it (Cu), and the archive path reads every
element's real cell.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .. import elements
from ..errors import DataError, StepError, UsageError
from .settings import SUPERCELL_RULES, StructureSettings

#: alpha-Mn (I-43m, No. 217) Wyckoff positions of the standard experimental refinement (2a, 8c, 24g, 24g):
#: 2 + 8 + 24 + 24 = 58 atoms per conventional cell; nearest neighbours 2.24-2.91 Å at a = 8.9 Å.
ALPHA_MN_BASIS = ((0.0, 0.0, 0.0), (0.3179, 0.3179, 0.3179), (0.3571, 0.3571, 0.0347), (0.0896, 0.0896, 0.2819))
CERTAINTIES = ("archive", "pbe", "pbe-estimate", "experimental", "user")


class StructureError(DataError):
    """A structure file, Materials Project entry or archive cell that cannot be used; says which and why."""


@dataclass(frozen=True)
class LatticeEntry:
    """One row of the lattice table. Lengths in Å, angles in degrees."""

    symbol: str
    structure: str  # fcc, bcc, hcp, rhombohedral, alpha-Mn
    spacegroup: int
    a_A: float
    c_over_a: float | None
    alpha_deg: float | None
    certainty: str  # archive, pbe, experimental
    source: str
    tm23_repeat: tuple[int, int, int] | None
    note: str = ""
    expected_error: str = ""  # against the 0 K PBE constant the paper used
    a_exp_A: float | None = None  # experimental constants, kept beside a pbe-estimate default
    c_over_a_exp: float | None = None
    alpha_exp_deg: float | None = None

    def conventional_cell(self, a_A: float | None = None, c_over_a: float | None = None,
                          alpha_deg: float | None = None):  # fmt: skip
        """The conventional cell as ``ase.Atoms`` (optionally at other lattice constants)."""
        from ase.spacegroup import crystal

        a = self.a_A if a_A is None else a_A
        sym = self.symbol
        if self.structure == "fcc":
            return crystal(sym, [(0, 0, 0)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90])
        if self.structure == "bcc":
            return crystal(sym, [(0, 0, 0)], spacegroup=229, cellpar=[a, a, a, 90, 90, 90])
        if self.structure == "hcp":
            c = a * (self.c_over_a if c_over_a is None else c_over_a)
            return crystal(sym, [(1 / 3, 2 / 3, 0.25)], spacegroup=194, cellpar=[a, a, c, 90, 90, 120])
        if self.structure == "rhombohedral":
            alpha = math.radians(self.alpha_deg if alpha_deg is None else alpha_deg)
            a_hex = 2 * a * math.sin(alpha / 2)
            c_hex = a * math.sqrt(3 * (1 + 2 * math.cos(alpha)))
            return crystal(sym, [(0, 0, 0)], spacegroup=166, cellpar=[a_hex, a_hex, c_hex, 90, 90, 120])
        if self.structure == "alpha-Mn":
            return crystal([sym] * 4, list(ALPHA_MN_BASIS), spacegroup=217, cellpar=[a, a, a, 90, 90, 90])
        raise StructureError(f"{sym}: unknown structure {self.structure!r} in the lattice table")

    def describe(self) -> str:
        parts = [f"a = {self.a_A} Å"]
        if self.c_over_a:
            parts.append(f"c/a = {self.c_over_a:g}")
        if self.alpha_deg:
            parts.append(f"alpha = {self.alpha_deg:g}°")
        return f"{self.structure} ({', '.join(parts)}; {self.certainty})"


@lru_cache(maxsize=1)
def lattice_csv_rows() -> tuple[list[str], list[dict[str, str]]]:
    """(column names, raw rows) of ``generation/data/lattice.csv``, as text (for tools that rewrite it)."""
    with resources.files("tm23data.generation").joinpath("data/lattice.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    return list(reader.fieldnames or []), rows


def lattice_table() -> dict[str, LatticeEntry]:
    """The 27 rows of ``data/generation/lattice.csv``, checked against the elements table."""
    rows = lattice_csv_rows()[1]
    table = {}
    for line, row in enumerate(rows, start=2):
        try:
            repeat = tuple(int(x) for x in row["tm23_repeat"].split("x")) if row["tm23_repeat"] else None
            entry = LatticeEntry(
                symbol=row["symbol"],
                structure=row["structure"],
                spacegroup=int(row["spacegroup"]),
                a_A=float(row["a_A"]),
                c_over_a=float(row["c_over_a"]) if row["c_over_a"] else None,
                alpha_deg=float(row["alpha_deg"]) if row["alpha_deg"] else None,
                certainty=row["certainty"],
                source=row["source"],
                tm23_repeat=repeat,  # type: ignore[arg-type]
                note=row["note"] or "",
                expected_error=row.get("expected_error") or "",
                a_exp_A=_optional_float(row.get("a_exp_A")),
                c_over_a_exp=_optional_float(row.get("c_over_a_exp")),
                alpha_exp_deg=_optional_float(row.get("alpha_exp_deg")),
            )
        except (KeyError, ValueError) as err:
            raise StructureError(f"generation/data/lattice.csv, line {line}: bad row ({err})") from None
        if entry.certainty not in CERTAINTIES:
            raise StructureError(f"lattice.csv, line {line}: unknown certainty {entry.certainty!r}")
        table[entry.symbol] = entry
    if sorted(table) != elements.symbols():
        raise StructureError("lattice.csv does not list exactly the 27 TM23 metals")
    return table


def _optional_float(text: str | None) -> float | None:
    return float(text) if text else None


def lattice(symbol: str) -> LatticeEntry:
    elements.get(symbol)
    return lattice_table()[symbol]


# --------------------------------------------------------------------------------------------------
# The supercell rule


def perpendicular_widths(cell) -> np.ndarray:
    """Distances between opposite faces of the cell (Å): the shortest atom-to-periodic-image distance of a
    cell is at least the smallest of them."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])


def min_image_distance(cell) -> float:
    """Shortest distance between an atom and any of its periodic images (Å): the shortest non-zero vector of
    the lattice, found from ASE's Minkowski-reduced basis (in 3D its shortest vector is the lattice's)."""
    from ase.geometry import minkowski_reduce

    reduced, _ = minkowski_reduce(np.asarray(cell, dtype=float))
    return float(np.linalg.norm(reduced, axis=1).min())


def supercell_repeat(cell, min_length_A: float = 7.0, rule: str = "vectors") -> tuple[int, int, int]:
    """Repeats (n1, n2, n3) of ``cell`` (rows = lattice vectors, Å) under ``rule``:

    - ``"vectors"``: every lattice vector of the supercell >= ``min_length_A`` (the Data Set Description's
      wording);
    - ``"images"``: every atom at least ``min_length_A`` from all of its periodic images (the Methods'
      wording): the diagonal supercell with the fewest atoms whose shortest lattice vector is long enough
      (ties: the most even repeats). For the 27 TM23 cells both rules give the same supercells.
    """
    cell = np.asarray(cell, dtype=float)
    if rule == "fill":
        return fill_repeat(cell, min_length_A)
    if rule == "vectors":
        lengths = np.linalg.norm(cell, axis=1)
        return tuple(max(1, int(math.ceil(min_length_A / length - 1e-9))) for length in lengths)  # type: ignore[return-value]
    if rule != "images":
        raise UsageError(f"rule must be 'vectors' or 'images' here, got {rule!r}")
    # perpendicular widths bound the search: with n_i = ceil(L / w_i) every image is at least L away
    upper = [max(1, int(math.ceil(min_length_A / w - 1e-9))) for w in perpendicular_widths(cell)]
    best = None
    for n in np.ndindex(*upper):
        rep = tuple(int(k) + 1 for k in n)
        if min_image_distance(cell * np.array(rep)[:, None]) < min_length_A - 1e-9:
            continue
        key = (int(np.prod(rep)), max(rep) - min(rep), rep)
        if best is None or key < best[0]:
            best = (key, rep)
    return best[1]  # type: ignore[index,return-value]


#: Most sites of a "fill" supercell: the paper's largest cell, 71 atoms, plus the vacancy.
FILL_MAX_SITES = 72


def fill_repeat(cell, min_length_A: float = 7.0, max_sites: int | None = None, n_basis: int | None = None):
    """Rule ``"fill"`` (inferred, not stated by the paper): the diagonal supercell with every lattice vector
    >= ``min_length_A`` and the most sites up to ``max_sites`` (72: the paper's upper bound of 71 atoms plus
    the vacancy); ties go to the largest atom-to-image distance, then to the larger repeats first. It
    reproduces the one published cell (Cu: 3x3x2 conventional, 72 sites, 71 atoms) and puts every TM23
    metal in the paper's 32-71 atoms. ``n_basis``: atoms per cell (default: inferred as 1; pass it)."""
    cell = np.asarray(cell, dtype=float)
    max_sites = max_sites or FILL_MAX_SITES
    n_basis = n_basis or 1
    lower = [max(1, int(math.ceil(min_length_A / length - 1e-9))) for length in np.linalg.norm(cell, axis=1)]
    if int(np.prod(lower)) * n_basis > max_sites:
        return tuple(lower)  # type: ignore[return-value]
    best = None
    for n1 in range(lower[0], max_sites // n_basis + 1):
        for n2 in range(lower[1], max_sites // n_basis + 1):
            for n3 in range(lower[2], max_sites // n_basis + 1):
                sites = n1 * n2 * n3 * n_basis
                if sites > max_sites:
                    break
                rep = (n1, n2, n3)
                key = (sites, round(min_image_distance(cell * np.array(rep)[:, None]), 6), rep)
                if best is None or key > best:
                    best = key
    return best[2]  # type: ignore[index]


@dataclass
class Supercell:
    """A TM23 starting structure: the supercell with its vacancy, and how it was made."""

    element: str
    atoms: object  # ase.Atoms, with the vacancy
    repeat: tuple[int, int, int]
    n_sites: int
    vacancy_index: int | None  # index of the deleted site in the perfect supercell (None: no vacancy)
    rule: str
    min_length_A: float
    seed: int
    lattice_source: str
    certainty: str
    notes: list[str] = field(default_factory=list)

    @property
    def natoms(self) -> int:
        return len(self.atoms)

    def describe(self) -> str:
        """``Cu 3x3x2 with one vacancy`` / ``Os 8x8x5 without vacancy`` (POSCAR comments, messages)."""
        hole = "with one vacancy" if self.vacancy_index is not None else "without vacancy"
        return f"{self.element} supercell {'x'.join(map(str, self.repeat))} {hole}"

    def to_dict(self) -> dict:
        """JSON-ready description (goes into the archive's provenance)."""
        cellpar = self.atoms.cell.cellpar()
        return {
            "element": self.element,
            "natoms": self.natoms,
            "n_sites": self.n_sites,
            "repeat": list(self.repeat),
            "vacancy_site": self.vacancy_index,
            "rule": self.rule,
            "min_length_A": self.min_length_A,
            "seed": self.seed,
            "cell_A": np.round(self.atoms.cell.array, 8).tolist(),
            "cellpar": [round(float(x), 6) for x in cellpar],
            "lattice_source": self.lattice_source,
            "certainty": self.certainty,
            "notes": list(self.notes),
        }


def vacancy_rng(element: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), elements.get(element).Z])


def build_supercell(
    element: str,
    settings: StructureSettings | None = None,
    *,
    unit_cell=None,
    repeat: tuple[int, int, int] | None = None,
    lattice_source: str | None = None,
    certainty: str | None = None,
) -> Supercell:
    """The supercell of ``element`` with one vacancy at a seeded random site.

    ``unit_cell`` (``ase.Atoms``) replaces the table's conventional cell (from a file or the Materials
    Project); ``repeat`` (or ``settings.repeat``) replaces the rule. The vacancy site is drawn from
    ``np.random.default_rng([seed, Z])``; ``settings.vacancy = False`` keeps the perfect supercell.
    """
    settings = settings or StructureSettings()
    entry = lattice(element)
    notes: list[str] = []
    if unit_cell is None:
        unit_cell = entry.conventional_cell()
        lattice_source = lattice_source or f"lattice table: {entry.describe()}; {entry.source}"
        certainty = certainty or entry.certainty
        if entry.note:
            notes.append(entry.note)
    else:
        symbols = set(unit_cell.get_chemical_symbols())
        if symbols != {element}:
            raise StructureError(f"the structure given for {element} contains {', '.join(sorted(symbols))}")
        lattice_source = lattice_source or "user-supplied structure"
        certainty = certainty or "user"
    rule = settings.rule
    if repeat is None and settings.repeat is not None:
        repeat = tuple(settings.repeat)  # type: ignore[assignment]
    if repeat is not None:
        repeat = tuple(int(n) for n in repeat)  # type: ignore[assignment]
        if len(repeat) != 3 or min(repeat) < 1:
            raise UsageError(f"repeat must be three positive integers, got {repeat}")
        rule = "explicit"
    elif (
        rule == "tm23" and entry.tm23_repeat is not None and unit_cell is not None and _is_table_cell(unit_cell, entry)
    ):
        repeat = entry.tm23_repeat
    elif rule == "fill":
        repeat = fill_repeat(unit_cell.cell.array, settings.min_length_A, n_basis=len(unit_cell))
    else:
        repeat = supercell_repeat(
            unit_cell.cell.array, settings.min_length_A, "images" if rule == "images" else "vectors"
        )
    if (rule != "explicit" and entry.tm23_repeat is not None and tuple(repeat) != entry.tm23_repeat
            and _is_table_cell(unit_cell, entry)):  # fmt: skip
        n_pub = int(np.prod(entry.tm23_repeat)) * len(unit_cell) - 1
        notes.append(
            f"the published TM23 {element} cell is {'x'.join(map(str, entry.tm23_repeat))} ({n_pub} atoms); rule "
            f"{rule!r} gives {'x'.join(map(str, repeat))} ({int(np.prod(repeat)) * len(unit_cell) - 1} atoms). "
            "Use --supercell-rule tm23 or --structure-from-archive for the published cell"
        )
    perfect = unit_cell.repeat(repeat)
    n_sites = len(perfect)
    atoms = perfect.copy()
    vacancy = None
    if settings.vacancy:
        vacancy = int(vacancy_rng(element, settings.seed).integers(n_sites))
        del atoms[vacancy]
    atoms.pbc = True
    return Supercell(element, atoms, tuple(repeat), n_sites, vacancy, rule, settings.min_length_A, settings.seed,
                     lattice_source, certainty, notes)  # fmt: skip


def _is_table_cell(unit_cell, entry: LatticeEntry) -> bool:
    ref = entry.conventional_cell()
    return len(ref) == len(unit_cell) and np.allclose(ref.cell.cellpar(), unit_cell.cell.cellpar(), atol=1e-6)


def all_supercells(settings: StructureSettings | None = None) -> dict[str, Supercell]:
    return {el: build_supercell(el, settings) for el in elements.symbols()}


def supercells_from_sources(symbols, settings: StructureSettings | None = None, *, structure_file=None,
                            from_archive=None, materials_project: bool = False) -> dict[str, Supercell]:  # fmt: skip
    """The supercells a user asked for instead of the lattice table's: from a structure file (one element),
    from each element's cell in a TM23 archive, or from the Materials Project GGA entry. Empty when none is
    asked for (the table is used); more than one source is an error."""
    chosen = [name for name, given in (("a structure file", structure_file), ("an archive", from_archive),
                                       ("the Materials Project", materials_project)) if given]  # fmt: skip
    if len(chosen) > 1:
        raise UsageError(f"choose one structure source, not {' and '.join(chosen)}")
    symbols = list(symbols)
    if structure_file:
        if len(symbols) != 1:
            raise UsageError("a structure file (--structure FILE) applies to one element; give one ELEMENT")
        unit = read_structure_file(structure_file, symbols[0])
        return {symbols[0]: build_supercell(symbols[0], settings, unit_cell=unit, lattice_source=f"file {structure_file}",
                                            certainty="user")}  # fmt: skip
    if from_archive:
        return {el: supercell_from_frames(el, frames_from_archive(from_archive, el), settings) for el in symbols}
    if materials_project:
        out = {}
        for el in symbols:
            unit, source = from_materials_project(el)
            out[el] = build_supercell(el, settings, unit_cell=unit, lattice_source=source, certainty="pbe")
        return out
    return {}


# --------------------------------------------------------------------------------------------------
# Overrides: a structure file, or the Materials Project


def read_structure_file(path: str | os.PathLike, element: str, *, standardize: bool = True):
    """A unit cell of ``element`` from a CIF, POSCAR or any file ASE reads; with ``standardize`` it is
    turned into the conventional standard cell (pymatgen/spglib), to which the supercell rule applies."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such structure file")
    try:
        atoms = ase.io.read(path)
    except Exception as err:  # ASE raises many types for unreadable files
        raise StructureError(f"{path}: cannot read a structure from it ({type(err).__name__}: {err})") from None
    symbols = set(atoms.get_chemical_symbols())
    if symbols != {element}:
        raise StructureError(f"{path}: holds {', '.join(sorted(symbols))}, expected only {element}")
    if not atoms.pbc.all() or atoms.cell.volume < 1e-6:
        raise StructureError(f"{path}: not a periodic crystal (no 3D cell)")
    return conventional_standard(atoms) if standardize else atoms


def conventional_standard(atoms):
    """The conventional standard cell of ``atoms`` (pymatgen's SpacegroupAnalyzer, i.e. spglib)."""
    try:
        from pymatgen.io.ase import AseAtomsAdaptor
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    except ImportError:
        raise StepError(
            "standardising a structure needs pymatgen (pip install 'tm23data[generation]'); or pass "
            "--no-standardize to use the file's cell as it is"
        ) from None
    structure = AseAtomsAdaptor.get_structure(atoms)
    conv = SpacegroupAnalyzer(structure, symprec=1e-3).get_conventional_standard_structure()
    out = AseAtomsAdaptor.get_atoms(conv)
    out.pbc = True
    return out


def select_gga_entry(entries, mp_id: str):
    """The GGA (PBE) entry among Materials Project entries of ``mp_id``; r2SCAN entries are never taken
    (for Ni the r2SCAN cell even changes the supercell size)."""
    if not isinstance(entries, (list, tuple)):
        entries = [entries]
    found = []
    for entry in entries:
        run_type = str((getattr(entry, "parameters", None) or {}).get("run_type") or "")
        entry_id = str(getattr(entry, "entry_id", "") or "")
        if not run_type and entry_id.startswith(mp_id + "-"):
            run_type = entry_id[len(mp_id) + 1 :]
        found.append(run_type or "?")
        if run_type.upper() == "GGA":
            return entry
    raise StructureError(
        f"{mp_id}: no GGA (PBE) entry among the Materials Project entries (run types found: "
        f"{', '.join(found) or 'none'}); TM23 used PBE lattice constants, not r2SCAN. Supply a PBE structure "
        "with --structure FILE instead"
    )


def from_materials_project(element: str, *, mp_id: str | None = None, api_key: str | None = None, rester=None):
    """The conventional cell of the Materials Project GGA (PBE) entry of ``element`` (default: the mp-id of
    the elements table). Needs ``pip install mp-api`` and an API key (``MP_API_KEY`` or ``api_key``).
    Returns (atoms, description)."""
    info = elements.get(element)
    mp_id = mp_id or info.mp_id
    if rester is None:
        try:
            from mp_api.client import MPRester
        except ImportError:
            raise StepError(
                "the Materials Project needs the mp-api package (pip install mp-api) and an API key in MP_API_KEY; "
                "or pass --structure FILE (CIF/POSCAR)"
            ) from None
        key = api_key or os.environ.get("MP_API_KEY") or os.environ.get("PMG_MAPI_KEY")
        if not key:
            raise StepError("no Materials Project API key: set MP_API_KEY (https://materialsproject.org/api)")
        with MPRester(key) as mpr:
            entries = _mp_entries(mpr, mp_id)
    else:
        entries = _mp_entries(rester, mp_id)
    entry = select_gga_entry(entries, mp_id)
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = conventional_standard(AseAtomsAdaptor.get_atoms(entry.structure))
    if set(atoms.get_chemical_symbols()) != {element}:
        raise StructureError(f"{mp_id} is not elemental {element}; check the mp-id")
    return atoms, f"Materials Project {mp_id}, GGA entry {getattr(entry, 'entry_id', '')}".strip()


def _mp_entries(mpr, mp_id: str):
    try:
        return mpr.get_entries(mp_id, compatible_only=False, additional_criteria={"thermo_types": ["GGA_GGA+U"]})
    except TypeError:  # older mp-api
        return mpr.get_entry_by_material_id(mp_id, compatible_only=False)


# --------------------------------------------------------------------------------------------------
# The faithful path: the cell of each element read from TM23 frames


@dataclass
class FramesCell:
    """What TM23 frames say about an element's supercell, and how it compares with the table."""

    element: str
    natoms: int
    cell: np.ndarray
    cellpar: list[float]
    repeat: tuple[int, int, int] | None  # as a diagonal supercell of the table's conventional cell
    a_A: float | None
    c_over_a: float | None
    disagreements: list[str]

    def to_dict(self) -> dict:
        return {
            "element": self.element,
            "natoms": self.natoms,
            "cellpar": [round(x, 6) for x in self.cellpar],
            "repeat": list(self.repeat) if self.repeat else None,
            "a_A": self.a_A,
            "c_over_a": self.c_over_a,
            "disagreements": self.disagreements,
        }


def cell_from_frames(element: str, frames, settings: StructureSettings | None = None, rtol: float = 2e-4) -> FramesCell:
    """Read the (single, NVT) supercell of ``element`` from TM23 ``Frames`` and compare it with the lattice
    table and the supercell rule; every difference is listed in ``disagreements``."""
    settings = settings or StructureSettings()
    entry = lattice(element)
    if len(frames) == 0:
        raise StructureError(f"{element}: no frames to read the cell from")
    cells = np.asarray(frames.cell)
    if not np.allclose(cells, cells[0], atol=1e-6):
        bad = int(np.flatnonzero(np.abs(cells - cells[0]).max(axis=(1, 2)) > 1e-6)[0])
        raise StructureError(f"{element}: frame {bad} has another cell than frame 0; TM23 runs are NVT at one volume")
    natoms = np.unique(frames.natoms)
    if len(natoms) != 1:
        raise StructureError(f"{element}: frames hold {', '.join(map(str, natoms))} atoms; TM23 keeps one count")
    z = set(np.unique(frames.numbers).tolist())
    if z != {elements.get(element).Z}:
        raise StructureError(f"{element}: frames contain atomic numbers {sorted(z)}")
    from ase.cell import Cell

    cell = Cell(cells[0])
    cellpar = [float(x) for x in cell.cellpar()]
    conv = entry.conventional_cell()
    conv_par = conv.cell.cellpar()
    ratios = np.array(cellpar[:3]) / conv_par[:3]
    repeat = tuple(int(round(r)) for r in ratios)
    disagreements: list[str] = []
    a = c_over_a = None
    angles_match = np.allclose(np.abs(np.cos(np.radians(cellpar[3:]))), np.abs(np.cos(np.radians(conv_par[3:]))),
                               atol=1e-3)  # fmt: skip
    if min(repeat) >= 1 and angles_match and np.allclose(ratios, repeat, rtol=0.05):
        scale = np.array(cellpar[:3]) / (np.array(repeat) * conv_par[:3])
        a = float(round(cellpar[0] / repeat[0] / (conv_par[0] / entry.a_A), 6))
        if entry.structure == "hcp":
            c_over_a = float(round((cellpar[2] / repeat[2]) / (cellpar[0] / repeat[0]), 5))
        if not np.allclose(scale, 1.0, rtol=rtol):
            disagreements.append(
                f"lattice: frames give a = {a:.6g} Å"
                + (f", c/a = {c_over_a:.5g}" if c_over_a else "")
                + f"; the table has {entry.describe()} (a differs by {100 * (a / entry.a_A - 1):+.2f} %)"
            )
        if settings.rule == "tm23" and entry.tm23_repeat is not None:
            rule_repeat = entry.tm23_repeat
        elif settings.rule == "fill":
            rule_repeat = fill_repeat(conv.cell.array * scale[:, None], settings.min_length_A, n_basis=len(conv))
        else:
            rule_repeat = supercell_repeat(conv.cell.array * scale[:, None], settings.min_length_A,
                                           "images" if settings.rule == "images" else "vectors")  # fmt: skip
        if tuple(rule_repeat) != repeat:
            disagreements.append(
                f"supercell: frames are {'x'.join(map(str, repeat))}; the {settings.min_length_A:g} Å rule "
                f"{settings.rule!r} gives {'x'.join(map(str, rule_repeat))}"
            )
        sites = int(np.prod(repeat)) * len(conv)
        if sites - 1 != int(natoms[0]):
            disagreements.append(f"atoms: frames hold {int(natoms[0])}; a {'x'.join(map(str, repeat))} supercell "
                                 f"with one vacancy holds {sites - 1}")  # fmt: skip
    else:
        repeat = None
        disagreements.append(
            "cell: the frames' cell (lengths {:.4f} {:.4f} {:.4f} Å, angles {:.2f} {:.2f} {:.2f}°) is not a diagonal "
            "supercell of the table's {} cell".format(*cellpar, entry.structure)
        )
    return FramesCell(element, int(natoms[0]), cells[0].copy(), cellpar, repeat, a, c_over_a, disagreements)


def supercell_from_frames(element: str, frames, settings: StructureSettings | None = None) -> Supercell:
    """The supercell in the exact cell of TM23 ``frames`` (same atom count), the perfect lattice with one
    seeded vacancy (the published starting configuration itself is not known)."""
    settings = settings or StructureSettings()
    found = cell_from_frames(element, frames, settings)
    if found.repeat is None:
        raise StructureError(f"{element}: {found.disagreements[0]}; supply the structure with --structure FILE")
    entry = lattice(element)
    unit = entry.conventional_cell(a_A=found.a_A, c_over_a=found.c_over_a)
    atoms = unit.repeat(found.repeat)
    if len(atoms) - 1 != found.natoms:
        raise StructureError(f"{element}: {found.disagreements[-1]}")
    atoms.set_cell(found.cell, scale_atoms=True)
    vacancy = int(vacancy_rng(element, settings.seed).integers(len(atoms)))
    n_sites = len(atoms)
    del atoms[vacancy]
    atoms.pbc = True
    return Supercell(element, atoms, found.repeat, n_sites, vacancy, "archive", settings.min_length_A, settings.seed,
                     "cell read from TM23 frames", "archive", list(found.disagreements))  # fmt: skip


def frames_from_archive(path: str | os.PathLike, element: str, kind: str = "cold_nequip_train"):
    """The frames of one member of a TM23-format zip (published or generated), parsed without a cache."""
    from ..archive import Archive
    from ..extxyz import parse_extxyz
    from ..manifest import member_name

    with Archive(path) as archive:
        name = member_name(element, kind)
        if name not in archive.names():
            raise StructureError(f"{path}: no member {name} (elements present: {', '.join(archive.elements())})")
        return parse_extxyz(archive.read(name), source=f"{path}:{name}")


__all__ = [
    "SUPERCELL_RULES", "LatticeEntry", "Supercell", "FramesCell", "StructureError", "lattice", "lattice_table",
    "supercell_repeat", "build_supercell", "all_supercells", "read_structure_file", "from_materials_project",
    "select_gga_entry", "cell_from_frames", "supercell_from_frames", "frames_from_archive", "perpendicular_widths",
    "min_image_distance",
]  # fmt: skip
