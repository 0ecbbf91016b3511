"""Lazy package attributes: ``import tm23data`` stays fast (no torch, datasets or nequip at import time), and
names are imported from their modules on first use. A name whose module needs an optional dependency that is
not installed raises ``ModuleNotFoundError`` saying which extra to install."""

from __future__ import annotations

import importlib
from typing import Any, Callable

#: Third-party import name -> the tm23data extra that installs it.
EXTRAS = {"torch": "torch", "torch_geometric": "pyg", "vesin": "pyg", "nequip": "nequip", "flare": "flare",
          "chgnet": "generation", "pymatgen": "generation", "matplotlib": "plot",
          "sevenn": "models", "phonopy": "models"}  # fmt: skip


def lazy_getattr(package: str, table: dict[str, tuple[str, str]], namespace: dict) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``table[name] = (module, attribute)`` once, then caching it in
    ``namespace`` (the package's ``globals()``) so later lookups are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        if name in table:
            module, attr = table[name]
            try:
                value = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as err:
                raise missing_dependency(f"{package}.{name}", err) from err
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def missing_dependency(what: str, err: ModuleNotFoundError) -> ModuleNotFoundError:
    """``err`` reworded: what needs which missing package, and the install command."""
    top = (err.name or "").split(".")[0]
    if not top or top == "tm23data":
        return err
    extra = EXTRAS.get(top)
    how = ("bash scripts/install_flare.sh (FLARE is built offline)" if extra == "flare"
           else f"pip install 'tm23data[{extra}]'" if extra else f"pip install {top}")  # fmt: skip
    out = ModuleNotFoundError(f"{what} needs {top}, which is not installed: {how}")
    out.name = err.name
    return out
