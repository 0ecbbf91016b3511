"""The GPU check script exits cleanly, saying so, where there is no GPU (the package never needs one)."""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check would really run")
def test_gpu_check_without_a_gpu_says_so_and_exits_0(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    res = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "no CUDA GPU" in res.stdout and not (tmp_path / "o").exists()
