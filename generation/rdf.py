"""Radial distribution functions per regime: crystalline order when cold, liquid-like when molten.

The paper checked each trajectory this way (its Supplementary Figs. 57-83, computed with ASE). Here g(r) is
computed from a store (published or generated archive) for every frame of a regime, over all periodic
images, so ``r_max`` may exceed half the cell (ASE's ``get_rdf`` refuses that; for ``r_max`` below half the
cell both agree, which the tests check):

    g(r) = V / (N (N - 1)) * n(r) / (4 pi r^2 dr)

with n(r) the number of ordered pairs (i != j, any image) at distances in [r, r + dr), averaged over frames.
An atom's own periodic images are never counted: with them, beyond the shortest image distance (>= 7 Å in
TM23 cells) there would be N^2 pairs per unit density instead of N (N - 1), and an ideal gas would reach
g = N / (N - 1) there instead of 1. So an ideal gas has g = 1 at every r; the first peak of an fcc crystal
sits at a / sqrt(2). (ASE's ``get_rdf`` divides by N^2 instead of N (N - 1), i.e. its curves are lower by
(N - 1) / N, 1-3 % for TM23 cells.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import elements
from ..errors import UsageError
from ..provenance import Origin, stamp_origin


@dataclass
class RDF:
    r_A: np.ndarray  # bin centres, Å
    g: dict[str, np.ndarray]  # regime -> g(r)
    frames: dict[str, int]  # regime -> frames averaged
    element: str
    origin: Origin | None = None  # where the frames came from (stated on the figure)

    def to_csv(self) -> str:
        regimes = list(self.g)
        lines = ["r_A," + ",".join(f"g_{r}" for r in regimes)]
        for k, r in enumerate(self.r_A):
            lines.append(f"{r:.4f}," + ",".join(f"{self.g[reg][k]:.6f}" for reg in regimes))
        return "\n".join(lines) + "\n"


def _shifts(cell: np.ndarray, r_max: float) -> np.ndarray:
    """Integer lattice translations that can bring an image within r_max of any atom in the cell."""
    from .structures import perpendicular_widths

    n = np.ceil(r_max / perpendicular_widths(cell)).astype(int)
    grid = np.mgrid[-n[0] : n[0] + 1, -n[1] : n[1] + 1, -n[2] : n[2] + 1].reshape(3, -1).T
    return grid @ cell


def pair_histogram(positions: np.ndarray, cell: np.ndarray, r_max: float, n_bins: int) -> np.ndarray:
    """Counts of ordered pairs (i != j, any periodic image of j) per distance bin in [0, r_max); an atom and
    its own images are not a pair (see the module docstring)."""
    frac = np.linalg.solve(cell.T, positions.T).T
    pos = (frac - np.floor(frac)) @ cell  # wrapped, so the translation grid covers every image within r_max
    n = len(pos)
    diff = (pos[None, :, :] - pos[:, None, :])[~np.eye(n, dtype=bool)]  # (N (N - 1), 3), i != j
    counts = np.zeros(n_bins, dtype=np.int64)
    for shift in _shifts(cell, r_max):
        d = np.sqrt(((diff + shift) ** 2).sum(-1))
        d = d[d < r_max]
        counts += np.bincount((d * (n_bins / r_max)).astype(np.int64), minlength=n_bins)[:n_bins]
    return counts


def rdf_of_frames(frames, indices, r_max: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, g(r)) averaged over the frames ``indices`` of a ``Frames``."""
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    off = frames.offsets
    g = np.zeros(n_bins)
    for i in indices:
        pos = frames.positions[off[i] : off[i + 1]]
        cell = frames.cell[i]
        n = len(pos)
        volume = abs(np.linalg.det(cell))
        g += pair_histogram(pos, cell, r_max, n_bins) * volume / (n * (n - 1)) / shell
    return 0.5 * (edges[1:] + edges[:-1]), g / max(1, len(indices))


def rdf_from_store(store, *, r_max: float = 6.0, n_bins: int = 120, every: int = 1, progress: bool = True) -> RDF:
    """g(r) of each regime of an element's store (every ``every``-th frame of the regime)."""
    from tqdm.auto import tqdm

    from ..store import REGIME_NAMES

    out, counts = {}, {}
    r = None
    for code, regime in enumerate(REGIME_NAMES[:3]):
        idx = np.flatnonzero(store.regime == code)[:: max(1, int(every))]
        if not len(idx):
            continue
        chunks = np.array_split(idx, max(1, min(len(idx), 20)))
        total = np.zeros(n_bins)
        for chunk in tqdm(chunks, desc=f"{store.element} {regime} g(r)", disable=not progress, leave=False):
            r, g = rdf_of_frames(store.frames, chunk, r_max, n_bins)
            total += g * len(chunk)
        out[regime] = total / len(idx)
        counts[regime] = int(len(idx))
    if not out:
        raise UsageError(f"{store.element}: no frame has a known regime; cannot compute per-regime g(r)")
    return RDF(r, out, counts, store.element, store.origin)


def plot_rdf(rdf: RDF, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Save the three g(r) curves as an image (format from the suffix), atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..atomic import write_atomic

    path = Path(path)
    info = elements.get(rdf.element)
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {"cold": "tab:blue", "warm": "tab:orange", "melt": "tab:red"}
    for regime, g in rdf.g.items():
        ax.plot(rdf.r_A, g, color=colours.get(regime), label=f"{regime} ({info.temperature(regime):.0f} K, "
                                                                f"{rdf.frames[regime]} frames)")  # fmt: skip
    ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_xlim(0, rdf.r_A[-1] + (rdf.r_A[1] - rdf.r_A[0]) / 2)
    ax.set_title(title or f"{rdf.element}: radial distribution function per regime")
    ax.legend(frameon=False)
    fig.tight_layout()
    stamp_origin(fig, rdf.origin)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return path

