"""The package's public names: ``import tm23data`` (and its subpackages) loads no heavy dependency, every
advertised name resolves, and a wrong name fails like any missing attribute."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import missing

PACKAGES = ("tm23data", "tm23data.baselines", "tm23data.generation")
HEAVY = ("torch", "datasets", "h5py", "nequip", "torch_geometric", "flare", "chgnet", "sevenn", "phonopy")


def test_import_is_light():
    code = (f"import json, sys; import {', '.join(PACKAGES)}; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_and_unknown_names_raise(package):
    import importlib

    mod = importlib.import_module(package)
    for name in mod.__all__:
        try:
            value = getattr(mod, name)
        except ModuleNotFoundError as err:  # an optional dependency of this name is not installed
            assert missing(err.name.split(".")[0]) and ("pip install" in str(err) or "install_flare" in str(err)), err
            continue
        assert value is not None, f"{package}.{name}"
        assert name in vars(mod)  # cached after the first lookup
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'not_a_name'"):
        getattr(mod, "not_a_name")
    assert not hasattr(mod, "load_tm32")
