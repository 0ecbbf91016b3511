"""Per-regime statistics of an element: frame and atom counts, and the mean absolute values of the
labels, which are the denominators of the paper's % error (so they say how hard a % target is)."""

from __future__ import annotations

import numpy as np

from . import elements
from .metrics import mav
from .store import REGIME_NAMES, load_store


def element_stats(symbol: str) -> dict:
    store = load_store(symbol, progress=False)
    info = elements.get(symbol)
    frames = store.frames
    off = frames.offsets
    out = {}
    for code in [*range(len(elements.REGIMES)), -1, None]:
        sel = np.arange(len(frames)) if code is None else np.flatnonzero(store.regime == code)
        if not len(sel):
            continue
        name = "all" if code is None else REGIME_NAMES[code]
        natoms = frames.natoms[sel]
        forces = np.concatenate([frames.forces[off[i] : off[i + 1]] for i in sel])
        stress = frames.stress[sel]
        stress = stress[~np.isnan(stress).any(axis=(1, 2))]
        e_per_atom = frames.energy[sel] / natoms
        out[name] = {
            "frames": int(len(sel)),
            "atoms_per_frame": f"{natoms.min()}" if natoms.min() == natoms.max() else f"{natoms.min()}-{natoms.max()}",
            "temperature_K": round(info.temperature(name), 2) if name in elements.REGIMES else None,
            "mean_energy_per_atom": float(e_per_atom.mean()),
            "mav": {
                "energy_per_atom": mav(e_per_atom),
                "forces": mav(forces),
                "stress": mav(stress) if len(stress) else None,
            },
        }
    return out


def stats_report(symbols) -> dict:
    """``{element: {"data_origin": ..., "regimes": element_stats(element)}}``: what ``tm23 stats`` prints,
    with where each element's frames came from."""
    return {el: {"data_origin": load_store(el, progress=False).origin.to_json(), "regimes": element_stats(el)}
            for el in symbols}  # fmt: skip
