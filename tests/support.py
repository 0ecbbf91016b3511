"""What the tiers share (a plain module, importable from every tier: `from support import N_TRAIN`), and the
check each tier's conftest uses to skip with a reason when its extra is not installed."""

from __future__ import annotations

import contextlib
import importlib.util
import sys

#: Elements of the shared archive: fcc with EMT labels, hcp and bcc with Lennard-Jones labels.
ARCHIVE_ELEMENTS = ("Cu", "Ti", "W")
N_TRAIN, N_TEST = 9, 3


def missing(*modules: str) -> list[str]:
    """The import names among ``modules`` that are not installed."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def skip_tier_unless(tier: str, extra: str, *modules: str) -> None:
    """Skip every test of the calling conftest's folder when one of ``modules`` is missing, saying which
    extra to install (call it at the top of a tier's conftest.py)."""
    import pytest

    absent = missing(*modules)
    if absent:
        pytest.skip(f"the {tier} tests need the '{extra}' extra ({', '.join(absent)} missing): "
                    f"pip install -e '.[{extra},test]'", allow_module_level=True)  # fmt: skip


def needs(*modules: str, extra: str = "models", install: str | None = None):
    """A skip marker for one test, naming the missing packages and what installs them: the extra, or
    ``install`` (a package outside the extras, e.g. the README's ``--no-deps`` MACE install)."""
    import pytest

    absent = missing(*modules)
    how = install or f"pip install -e '.[{extra},test]'"
    return pytest.mark.skipif(bool(absent), reason=f"needs {', '.join(absent)}: {how}")


@contextlib.contextmanager
def fresh_torch_state():
    """torch's default dtype and e3nn's code-generation defaults as a new process has them, restored after.
    NequIP tests earlier in a session leave float64 and e3nn's TorchScript code generation behind (nequip's
    global state), and a model built then cannot be saved by ``torch.save``; models under test are built
    and compared as in a fresh process."""
    import torch

    dtype = torch.get_default_dtype()
    e3nn = sys.modules.get("e3nn")
    e3nn_defaults = e3nn.get_optimization_defaults() if e3nn else None
    torch.set_default_dtype(torch.float32)
    if e3nn:
        e3nn.set_optimization_defaults(jit_mode="eager")
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        if e3nn:
            e3nn.set_optimization_defaults(**e3nn_defaults)
