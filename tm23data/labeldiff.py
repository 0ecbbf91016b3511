"""How two label sets of the same frames differ (paper, Fig. 9c): per element and regime, the energy, force and
stress differences, and the force difference split into its magnitude ("radial") and vector parts.

The paper relabelled fixed TM23 frames with SIGMA = 1.0 and 2.0 eV instead of 0.2 eV and compared, per atom over
the training set, the mean of ||F_a| - |F_b|| (radial: magnitudes only) with the mean of |F_a - F_b| (vector:
the difference first, so a change of direction counts too); a vector part well above the radial one means the
force directions changed. Both come from :func:`tm23data.metrics.force_label_differences`.

Two TM23-format archives are compared member by member (per regime, train then test frames); every frame must
be the same structure in both (species, cell, positions up to periodic images), or the comparison stops naming
the element, regime and frame. Differences are B - A. Units: eV/atom, eV/Å, eV/Å³ (ASE sign), degrees.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import elements
from .errors import DataError, UsageError
from .frames import Frames
from .metrics import force_label_differences

#: Columns of a comparison row: (key, header, unit, format).
COLUMNS = (
    ("element", "El", "", "{}"),
    ("regime", "regime", "", "{}"),
    ("n_frames", "frames", "", "{}"),
    ("n_atoms", "atoms", "", "{}"),
    ("energy_shift", "mean ΔE", "eV/atom", "{:+.4g}"),
    ("energy_mae", "MAE ΔE", "eV/atom", "{:.4g}"),
    ("energy_spread", "std ΔE", "eV/atom", "{:.4g}"),
    ("force_mav_a", "mean ‖F_A‖", "eV/Å", "{:.4g}"),
    ("force_mav_b", "mean ‖F_B‖", "eV/Å", "{:.4g}"),
    ("force_mae", "MAE ΔF comp.", "eV/Å", "{:.4g}"),
    ("force_radial", "radial", "eV/Å", "{:.4g}"),
    ("force_vector", "vector", "eV/Å", "{:.4g}"),
    ("force_vector_over_radial", "vector/radial", "", "{:.3g}"),
    ("force_angle_deg", "mean angle", "deg", "{:.3g}"),
    ("stress_mae", "MAE Δσ comp.", "eV/Å³", "{:.4g}"),
    ("stress_mav_a", "MAV σ_A", "eV/Å³", "{:.4g}"),
)


@dataclass
class LabelSet:
    """One archive of the comparison: where it is, its md5 and what its provenance says it is."""

    path: Path
    md5: str
    provenance: dict | None

    def describe(self) -> str:
        from . import manifest

        if self.md5 == manifest.ARCHIVE_MD5:
            return "published TM23 archive (VASP 5.4.1, PBE, SIGMA = 0.2 eV)"
        prov = self.provenance or {}
        text = str(prov.get("what") or "no provenance record")
        static = ((prov.get("settings") or {}).get("vasp") or {}).get("incar_static") or {}
        common = ((prov.get("settings") or {}).get("vasp") or {}).get("incar_common") or {}
        sigma = static.get("SIGMA", common.get("SIGMA"))
        if sigma is not None:
            text += f" [static SIGMA = {sigma} eV]"
        return text


@dataclass
class LabelComparison:
    """Rows per element and regime (plus ``all`` per element) of B - A; see :data:`COLUMNS`."""

    a: LabelSet
    b: LabelSet
    rows: list[dict] = field(default_factory=list)
    subset: str = "all"  #: which frames of each regime: all (train + test), train or test

    def to_markdown(self) -> str:
        head = ["# Label differences, B - A", "",
                f"- A: `{self.a.path.name}` (md5 {self.a.md5}): {self.a.describe()}",
                f"- B: `{self.b.path.name}` (md5 {self.b.md5}): {self.b.describe()}", "",
                "Per atom: *radial* = mean ||F_A| - |F_B|| (magnitudes only), *vector* = mean |F_A - F_B| (includes "
                "changes of direction; paper Fig. 9c); vector well above radial means the force directions changed. "
                "ΔE per atom: its mean is a uniform shift, its std what a model would have to learn anew. "
                "Stress and force MAEs are over components. Frames: "
                + {"all": "train and test of each regime", "train": "the training frames of each regime",
                   "test": "the test frames of each regime"}[self.subset] + ".", "", ""]  # fmt: skip
        header = [h + (f" ({u})" if u else "") for _, h, u, _ in COLUMNS]
        from .tables import markdown_table

        return "\n".join(head) + markdown_table(header, [self._cells(r) for r in self.rows]) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([k + (f"_{u}" if u else "") for k, _, u, _ in COLUMNS])
        for r in self.rows:
            writer.writerow(["" if r.get(k) is None else r[k] for k, *_ in COLUMNS])
        return buf.getvalue()

    def plot(self, path: str | os.PathLike) -> Path:
        """Radial and vector force differences per element and regime as bars (Fig. 9c's two columns)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .atomic import atomic_path

        rows = [r for r in self.rows if r["regime"] != "all"]
        labels = [f"{r['element']} {r['regime']}" for r in rows]
        x = np.arange(len(rows))
        fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(rows) + 2), 4.0))
        ax.bar(x - 0.2, [r["force_radial"] for r in rows], 0.4, label="radial: mean ||F_A| - |F_B||")
        ax.bar(x + 0.2, [r["force_vector"] for r in rows], 0.4, label="vector: mean |F_A - F_B|")
        ax.set_xticks(x, labels, rotation=45, ha="right")
        ax.set_ylabel("force difference (eV/Å)")
        ax.set_title(f"B = {self.b.path.name} vs A = {self.a.path.name}", fontsize=8)
        ax.legend(fontsize=7)
        from .provenance import Origin, stamp

        origins = [Origin.of(s.md5, s.provenance) for s in (self.a, self.b)]
        fig.tight_layout(rect=(0, 0.1, 1, 1))  # room for the origin line below the tick labels
        stamp(fig, f"A = {self.a.path.name}: {origins[0].short()}; B = {self.b.path.name}: {origins[1].short()}",
              published=all(o.published for o in origins))  # fmt: skip
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
        plt.close(fig)
        return path

    @staticmethod
    def _cells(row: dict) -> list[str]:
        return ["-" if row.get(k) is None else fmt.format(row[k]) for k, _, _, fmt in COLUMNS]


#: Which frames of each regime are compared: both parts, or the train / test member alone.
SUBSETS = ("all", "train", "test")


def archive_file(spec: str | os.PathLike) -> str | os.PathLike:
    """The zip that ``spec`` names: a file as it is (read, not imported), else an archive of the registry
    (name, md5, URL#md5=..., folder), fetched or imported as ``archive=`` does everywhere else."""
    if os.path.isfile(spec):
        return spec
    from .fetch import fetch_archive
    from .registry import resolve

    return fetch_archive(resolve(spec))


def compare_archives(a: str | os.PathLike, b: str | os.PathLike, element_symbols=None, *, subset: str = "all",
                     position_tol_A: float = 1e-3) -> LabelComparison:  # fmt: skip
    """Compare the labels of archives ``a`` and ``b`` (zips) on the elements both hold (or ``element_symbols``),
    over ``subset`` of each regime's frames ("all": train then test; "train" is the paper's Fig. 9c set)."""
    if subset not in SUBSETS:
        raise UsageError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    pick = {"all": lambda parts: Frames.concat(list(parts)), "train": lambda parts: parts[0],
            "test": lambda parts: parts[1]}[subset]  # fmt: skip
    from contextlib import ExitStack

    from .archive import Archive
    from .hashes import file_md5

    with ExitStack() as stack:
        archives = [stack.enter_context(Archive(Path(p))) for p in (a, b)]
        sets = [LabelSet(x.path, file_md5(x.path), x.provenance()) for x in archives]
        held = [x.elements() for x in archives]
        common = sorted(set(held[0]) & set(held[1]))
        symbols = elements.resolve(element_symbols) if element_symbols else common
        missing = [el for el in symbols if el not in common]
        if missing or not symbols:
            have = "; ".join(f"{x.path.name}: {', '.join(h) or 'none'}" for x, h in zip(sets, held))
            raise UsageError(f"{', '.join(missing) or 'no element'} not in both archives ({have})")
        result = LabelComparison(sets[0], sets[1], subset=subset)
        for el in symbols:
            pairs = []
            for regime in elements.REGIMES:
                fa, fb = (pick(x.regime_frames(el, regime)) for x in archives)
                same_frames(fa, fb, f"{el} {regime}", position_tol_A)
                pairs.append((fa, fb))
                result.rows.append(label_differences(fa, fb, el, regime))
            result.rows.append(label_differences(Frames.concat([p[0] for p in pairs]),
                                                 Frames.concat([p[1] for p in pairs]), el, "all"))  # fmt: skip
    return result


def label_differences(fa: Frames, fb: Frames, element: str = "", regime: str = "") -> dict:
    """One row of :data:`COLUMNS`: the differences B - A of two label sets of the same frames."""
    de = fb.energy / fb.natoms - fa.energy / fa.natoms
    forces = force_label_differences(fa.forces, fb.forces)
    row = {"element": element, "regime": regime, "n_frames": len(fa), "n_atoms": int(fa.natoms.sum()),
           "energy_shift": float(np.mean(de)), "energy_mae": float(np.mean(np.abs(de))),
           "energy_spread": float(np.std(de)),
           "force_mav_a": float(np.linalg.norm(fa.forces, axis=1).mean()),
           "force_mav_b": float(np.linalg.norm(fb.forces, axis=1).mean()),
           "force_mae": float(np.mean(np.abs(fb.forces - fa.forces))),
           "force_radial": forces["radial"], "force_vector": forces["vector"],
           "force_vector_over_radial": forces["vector"] / forces["radial"] if forces["radial"] > 0 else None,
           "force_angle_deg": forces["angular_deg"], "stress_mae": None, "stress_mav_a": None}  # fmt: skip
    if bool(fa.has_stress.all()) and bool(fb.has_stress.all()):
        row["stress_mae"] = float(np.mean(np.abs(fb.stress - fa.stress)))
        row["stress_mav_a"] = float(np.mean(np.abs(fa.stress)))
    return row


def same_frames(fa: Frames, fb: Frames, what: str, tol: float) -> None:
    """Stop unless ``fa`` and ``fb`` are the same structures, frame by frame."""
    if len(fa) != len(fb) or not np.array_equal(fa.natoms, fb.natoms) or not np.array_equal(fa.numbers, fb.numbers):
        raise DataError(f"{what}: the archives hold different frames ({len(fa)} vs {len(fb)} frames, or other atom "
                        "counts or species); labels can only be compared on the same frames")  # fmt: skip
    for name in ("energy", "forces"):
        for frames, label in ((fa, "A"), (fb, "B")):
            if np.isnan(getattr(frames, name)).any():
                raise DataError(f"{what}: archive {label} has frames without {name} labels")
    off = fa.offsets
    for i in range(len(fa)):
        if not np.allclose(fa.cell[i], fb.cell[i], atol=tol):
            raise DataError(f"{what} frame {i}: other cells in the two archives; not the same frames")
        cell = fa.cell[i]
        frac = np.linalg.solve(cell.T, (fa.positions[off[i] : off[i + 1]] - fb.positions[off[i] : off[i + 1]]).T).T
        frac -= np.round(frac)
        shift = float(np.abs(frac @ cell).max()) if len(frac) else 0.0
        if shift > tol:
            raise DataError(f"{what} frame {i}: positions differ by up to {shift:.3g} Å (tolerance {tol:g} Å); the "
                            "archives do not hold the same frames in the same order")  # fmt: skip
