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


def test_nothing_shipped_points_outside_the_repository():
    """Messages, docs and data files name only what the repository holds: no notes folder outside it, no
    Markdown file that does not exist (outputs once pointed at structures.md and tm23_archive.md). In Python
    files only string literals count (``settings.md`` there is an attribute)."""
    import io
    import re
    import tokenize
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shipped = [p for folder in ("tm23data", "generation", "baselines", "docs", "examples", "benchmarks", "scripts")
               for p in (root / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".csv", ".sh", ".txt", ".json")]
    shipped += [root / "README.md", root / "dataset_card.md"]
    known = {p.name for p in root.rglob("*.md") if ".venv" not in p.parts} | {"report.md", "grid.md"}  # outputs of tm23 report and tm23 grid
    bad = []
    for path in shipped:
        text = path.read_text(errors="replace")
        if path.suffix == ".py":
            text = "\n".join(t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
                             if t.type == tokenize.STRING)  # fmt: skip
        if "shared/reference" in text or "../shared" in text:
            bad.append(f"{path.relative_to(root)}: points at a notes folder outside the repository")
        for name in set(re.findall(r"(?<![\w.])([\w-]+\.md)\b(?!\.\w)", text)):
            if name not in known:
                bad.append(f"{path.relative_to(root)}: names {name}, which is not in the repository")
    assert not bad, "\n".join(bad)
