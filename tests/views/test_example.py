"""examples/train_pyg.py in a reduced form: it trains, and training lowers the force and stress errors."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_pyg.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_pyg_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_trains_and_reports_percent_errors(cached, example, capsys):
    result = example.main(["--element", "Cu", "--split", "cold", "--steps", "30", "--batch-size", "4",
                           "--log-every", "10", "--threads", "1"])  # fmt: skip
    captured = capsys.readouterr()
    out = captured.out
    assert "% error = MAE / MAV x 100" in out and "trained MAE: forces" in out
    assert "training: 100%" in captured.err and "30/30" in captured.err and "loss=" in captured.err  # the bar
    before, after = result["before"], result["after"]
    for quantity in ("energy_per_atom", "forces", "stress"):
        assert math.isfinite(after[quantity]["percent"]), quantity
    # 30 steps on 9 frames: far from converged, but clearly learning the forces and the stress.
    assert after["forces"]["percent"] < 0.8 * before["forces"]["percent"]
    assert after["stress"]["percent"] < 0.5 * before["stress"]["percent"]
    assert after["n_frames"] == 3 and result["train_frames"] == 9


def test_example_synthetic_mode_needs_no_archive(tm23_home, example, capsys, monkeypatch):
    monkeypatch.setenv("TM23_OFFLINE", "1")  # the synthetic mode must not try to download anything
    result = example.main(["--synthetic", "--element", "W", "--steps", "3", "--log-every", "0", "--hidden", "16",
                           "--interactions", "1", "--threads", "1"])  # fmt: skip
    assert result["train_frames"] == 30 and result["test_frames"] == 10
    assert "synthetic TM23-format archive of W" in capsys.readouterr().out
    import os

    assert os.environ["TM23_HOME"] == str(tm23_home) and "TM23_MD5" not in os.environ  # environment restored
    assert not any(tm23_home.rglob("*.zip"))  # the example's archive lived in its own temporary cache
