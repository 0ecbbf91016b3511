"""The layout of the design card installs as one distribution: tm23data/, generation/ and baselines/ are the
import packages tm23data, tm23data.generation and tm23data.baselines, in an editable install (the one the
tests run in) and in a built wheel; every module imports (where its optional dependencies are installed) and
every package-data file is found; nothing is installed as a top-level ``generation`` or ``baselines``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import missing

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"tm23data": "tm23data", "tm23data.generation": "generation", "tm23data.baselines": "baselines"}
#: Package data that must ship: (package, resource path).
DATA_FILES = [
    ("tm23data", "data/elements.csv"),
    ("tm23data.generation", "data/lattice.csv"),
    ("tm23data.generation", "templates/aimd.sh"),
    ("tm23data.generation", "templates/static.sh"),
    ("tm23data.generation", "templates/potcar.sh"),
    ("tm23data.generation", "README.md"),
    ("tm23data.baselines", "README.md"),
    ("tm23data.baselines", "data/flare/install_flare.sh"),
    ("tm23data.baselines", "data/flare/flare_offline.cmake"),
    ("tm23data.baselines", "data/paper/table1_training.csv"),
    ("tm23data.baselines", "data/paper/table2_lmax.csv"),
    ("tm23data.baselines", "data/paper/fig7_os_flare_grid.csv"),
]
#: Modules that need an optional dependency at import time (checked only where it is installed).
NEEDS = {
    "tm23data.pyg": ("torch", "torch_geometric", "vesin"),
    "tm23data.collate": ("torch",),
    "tm23data.baselines.nequip_data": ("nequip",),
    "tm23data.baselines.nequip_callbacks": ("lightning",),
}

#: Run in a fresh interpreter: import every module of the three packages found on disk under ROOTS, check
#: where each came from, and read every data file through importlib.resources.
CHECK = r"""
import importlib, importlib.resources, importlib.util, json, pkgutil, sys
packages, data_files, needs = json.loads(sys.argv[1])
out = {"modules": {}, "skipped": [], "data": {}, "origin": {}}
for package in packages:
    mod = importlib.import_module(package)
    out["origin"][package] = mod.__file__
    for info in pkgutil.iter_modules(mod.__path__, package + "."):
        if info.name in packages:  # a subpackage: checked on its own
            continue
        deps = needs.get(info.name, [])
        if any(importlib.util.find_spec(d) is None for d in deps):
            out["skipped"].append(info.name)
            continue
        out["modules"][info.name] = importlib.import_module(info.name).__file__
for package, name in data_files:
    ref = importlib.resources.files(package).joinpath(name)
    out["data"][f"{package}:{name}"] = ref.is_file() and len(ref.read_bytes()) > 0
out["top_level"] = [n for n in ("generation", "baselines") if importlib.util.find_spec(n) is not None]
print(json.dumps(out))
"""


def _check(python: str, cwd: Path, env=None) -> dict:
    args = json.dumps([list(PACKAGES), DATA_FILES, {k: list(v) for k, v in NEEDS.items()}])
    proc = subprocess.run([python, "-c", CHECK, args], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _expected_modules(root_of) -> set[str]:
    return {f"{pkg}.{p.stem}" for pkg, folder in PACKAGES.items() for p in (root_of(folder)).glob("*.py")
            if p.stem != "__init__"}  # fmt: skip


def _assert_complete(report: dict, where: Path) -> None:
    imported = set(report["modules"]) | set(report["skipped"])
    assert imported == _expected_modules(lambda folder: REPO / folder), imported ^ _expected_modules(lambda f: REPO / f)
    assert all(report["data"].values()), report["data"]
    for name, path in {**report["modules"], **report["origin"]}.items():
        assert Path(path).resolve().is_relative_to(where.resolve()), (name, path)
    assert report["top_level"] == []  # no top-level `generation` / `baselines` import packages
    for name in report["skipped"]:
        assert missing(*NEEDS[name]), name  # skipped only when its dependency is absent


def test_editable_install_maps_the_three_folders(tmp_path):
    report = _check(sys.executable, tmp_path)  # from another folder: found through the install, not the cwd
    for package, folder in PACKAGES.items():
        assert Path(report["origin"][package]).parent == REPO / folder
    _assert_complete(report, REPO)


@pytest.mark.timeout(300)
def test_built_wheel_holds_every_module_and_data_file(tmp_path):
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    # a copy of the checkout, so that setuptools' build/ and *.egg-info land there, not in the repository
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__",
                                                               "tm23-demo", ".tm23", "outputs"))  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = wheels.glob("tm23data-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.split("/")[0] in ("generation", "baselines", "tests")], "stray top-level folder"
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tm23data.generation.cli:register" in entry_points and "tm23 = tm23data.cli:main" in entry_points
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    report = _check(sys.executable, tmp_path, env=env)  # the wheel's copy comes first on sys.path
    _assert_complete(report, site)
