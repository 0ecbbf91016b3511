"""Lazy package attributes: ``import tm23data`` stays fast (no torch, datasets or nequip at import time), and
names are imported from their modules on first use."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, table: dict[str, tuple[str, str]], namespace: dict) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``table[name] = (module, attribute)`` once, then caching it in
    ``namespace`` (the package's ``globals()``) so later lookups are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        if name in table:
            module, attr = table[name]
            value = getattr(importlib.import_module(module), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
