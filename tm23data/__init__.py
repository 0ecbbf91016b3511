"""tm23data: the TM23 transition-metal benchmark (Owen, Torrisi et al., npj Comput. Mater. 2024) as
verified, cached arrays, Hugging Face datasets, PyTorch Geometric graphs and ASE Atoms.

    from tm23data import load_tm23
    ds = load_tm23("Ti", split="cold_to_melt")

Heavy dependencies (datasets, h5py, torch) are imported on first use, not at ``import tm23data``.
"""

from __future__ import annotations

from .lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "load_tm23": ("tm23data.hf", "load_tm23"),
    "TM23Dataset": ("tm23data.pyg", "TM23Dataset"),
    "Evaluator": ("tm23data.metrics", "Evaluator"),
    "fit_power_law": ("tm23data.metrics", "fit_power_law"),
    "Selection": ("tm23data.selection", "Selection"),
    "load_store": ("tm23data.store", "load_store"),
    "resolve_split": ("tm23data.splits", "resolve_split"),
    "STANDARD_SPLITS": ("tm23data.splits", "STANDARD_SPLITS"),
    "Frames": ("tm23data.frames", "Frames"),
    "read_extxyz": ("tm23data.extxyz", "read_extxyz"),
    "import_archive": ("tm23data.fetch", "import_archive"),
    "TM23Error": ("tm23data.errors", "TM23Error"),
    "ArchiveSource": ("tm23data.config", "ArchiveSource"),
    "evaluate": ("tm23data.baselines.evaluate", "evaluate"),
}

__all__ = ["__version__", "download", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def download(elements=None, *, source=None, progress: bool = True) -> dict:
    """Fetch the archive (if needed) and build the cache of ``elements`` (all 27 when None), so that
    later loads work offline. Returns {element: store path}."""
    from . import elements as table
    from .store import load_store

    symbols = table.symbols() if elements is None else table.resolve(elements)
    return {el: load_store(el, source, progress=progress).path for el in symbols}
