"""What the tiers share (a plain module, importable from every tier: `from support import N_TRAIN`), and the
check each tier's conftest uses to skip with a reason when its extra is not installed."""

from __future__ import annotations

import importlib.util

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
