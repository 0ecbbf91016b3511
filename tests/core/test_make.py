"""The two commands (`make demo`, `make test`): they run the README's step-by-step install, CI runs the
second and nothing else, and a second call reuses what is installed. (The commands themselves run for real
in CI, on a fresh machine, through `.ci/run`.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _make(*args: str, cwd: Path = ROOT) -> list[str]:
    out = subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _readme_block(heading: str, n: int = 0) -> list[str]:
    """The commands of the ``n``-th ```bash block under ``heading`` (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[n]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_setup_is_the_readme_step_by_step_install():
    planned = [c for c in _make("-n", "-B", "setup") if not c.startswith("touch ")]
    venv, pip_torch, pip_package, flare = _readme_block("## Install, step by step")
    assert planned[0] == venv.split("&&")[0].strip()  # python3 -m venv .venv
    # the same pip commands, with the venv's pip instead of an activated venv
    assert planned[1].replace(".venv/bin/pip", "pip").replace('"', "").split() == pip_torch.split()
    assert planned[2].replace(".venv/bin/pip", "pip") == pip_package
    assert planned[3] == f"PYTHON=.venv/bin/python {flare}"
    core_venv, core_install, _ = (part.strip() for part in _readme_block("## Test", 1)[0].split("&&"))
    assert planned[4:] == [core_venv, core_install]


def test_the_model_packages_install_as_the_readme_says():
    """MACE, MatterSim, ORB, fairchem: the Makefile's --no-deps installs (run by `make test`) are the README's."""
    stamps = [f".venv/.tm23-{name}" for name in ("mace", "mattersim", "orb", "fairchem")]
    planned = [c.replace(".venv/bin/pip", "pip") for c in _make("-n", "-B", *stamps) if "--no-deps" in c]
    text = (ROOT / "README.md").read_text()
    block = re.findall(r"```bash\n(.*?)```", text[text.index("## Install, step by step") :], re.S)[1]
    readme = [" ".join(cmd.split()) for cmd in block.replace("\\\n", " ").splitlines() if cmd.strip()]
    assert planned == readme and len(readme) == 4
    assert all(c.startswith("pip install --no-deps ") for c in readme)
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    test_rule = makefile[makefile.index("\ntest:") :].split("\n")[1]  # the prerequisites of `make test`
    assert all(f"$({name.upper()}_INSTALLED)" in test_rule for name in ("mace", "mattersim", "orb", "fairchem"))


def test_ci_runs_the_readme_test_command_and_nothing_else():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]  # fmt: skip
    assert ci == ["make test"] and _readme_block("## Test")[0] == "make test"
    assert _readme_block("## Two commands") == ["make demo", "make test"]


def test_a_second_call_reuses_the_installation(tmp_path):
    """With the stamps the first call leaves, set-up has nothing to do and `make test` only runs pytest; a
    changed pyproject.toml installs again."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "baselines" / "data" / "flare").mkdir(parents=True)
    (tmp_path / "baselines" / "data" / "flare" / "install_flare.sh").write_text("")
    assert "python3 -m venv .venv" in _make("-n", "setup", cwd=tmp_path)  # a fresh checkout installs
    for stamp in (".venv/.tm23-installed", ".venv/.tm23-flare", ".venv-core/.tm23-installed", ".venv/.tm23-slurm",
                  ".venv/.tm23-mace", ".venv/.tm23-mattersim", ".venv/.tm23-orb", ".venv/.tm23-fairchem"):
        (tmp_path / stamp).parent.mkdir(exist_ok=True)
        (tmp_path / stamp).touch()
    assert subprocess.run(["make", "-q", "setup"], cwd=tmp_path).returncode == 0  # nothing to do
    assert _make("-n", "test", cwd=tmp_path) == [".venv-core/bin/python -m pytest tests/core", ".venv/bin/python -m pytest"]
    os.utime(tmp_path / "pyproject.toml", (time.time() - 0, time.time() - 0))
    for stamp in (".venv/.tm23-installed", ".venv/.tm23-flare", ".venv-core/.tm23-installed"):
        os.utime(tmp_path / stamp, (time.time() - 60, time.time() - 60))
    assert '.venv/bin/pip install -e ".[all,test]"' in _make("-n", "setup", cwd=tmp_path)
