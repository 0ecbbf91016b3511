"""Reference baselines of the TM23 paper, trained and evaluated with its protocol.

- :mod:`.nequip`: NequIP (nequip 0.19, Hydra/Lightning): config generation, ``nequip-train`` run, evaluation
  of the best checkpoint (:func:`train_nequip`, :class:`NequIPSettings`); data from the store through
  :mod:`.nequip_data`.
- :mod:`.flare`: FLARE sparse GP on ACE B2 descriptors (mir-flare; ``tm23 install-flare``): uncertainty-based
  sparse selection, L-BFGS-B hyperparameter optimisation, save/load (:class:`FlareSGP`, :func:`train_flare`).
- :mod:`.models` (any model spec -> ASE calculator), :mod:`.evaluate` (``tm23 evaluate``: any model scored with
  the paper's metrics), :mod:`.phonons` (``tm23 phonons``, Fig. 8) and :mod:`.dynamics` (short NVT, RDF vs data).
- :mod:`.grid` (FLARE descriptor grid), :mod:`.learning_curve` (NequIP vs l_max, Fig. 6), :mod:`.report`
  (tables and the Fig. 2 layout), :mod:`.results` (the result-file schema), :mod:`.demo` (``tm23 demo``).

Importing this package is cheap: torch, nequip and flare load only when a function that needs them runs.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

_LAZY = {
    "NequIPSettings": ("tm23data.baselines.nequip", "NequIPSettings"),
    "train_nequip": ("tm23data.baselines.nequip", "train_nequip"),
    "nequip_config": ("tm23data.baselines.nequip", "nequip_config"),
    "NequIPPredictor": ("tm23data.baselines.nequip", "NequIPPredictor"),
    "FlareSettings": ("tm23data.baselines.flare", "FlareSettings"),
    "FlareSGP": ("tm23data.baselines.flare", "FlareSGP"),
    "train_flare": ("tm23data.baselines.flare", "train_flare"),
    "flare_grid": ("tm23data.baselines.grid", "flare_grid"),
    "nequip_learning_curve": ("tm23data.baselines.learning_curve", "nequip_learning_curve"),
    "write_report": ("tm23data.baselines.report", "write_report"),
    "load_result": ("tm23data.baselines.results", "load_result"),
    "run_demo": ("tm23data.baselines.demo", "run_demo"),
    "evaluate": ("tm23data.baselines.evaluate", "evaluate"),
    "resolve_model": ("tm23data.baselines.models", "resolve"),
    "load_model": ("tm23data.baselines.models", "load_model"),
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
