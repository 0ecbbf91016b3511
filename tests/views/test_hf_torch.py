"""load_tm23(format="torch"): tensors that keep float64 (HF's default torch format casts to float32)."""

from __future__ import annotations

import torch

from tm23data import load_tm23


def test_torch_format_keeps_float64(cached):
    ds = load_tm23("Cu", "full", subset="train", format="torch", progress=False)
    row = ds[0]
    for key in ("positions", "forces", "energy", "stress", "cell"):
        assert row[key].dtype == torch.float64, key
    assert row["atomic_numbers"].dtype == torch.int64
    assert isinstance(row["positions"], torch.Tensor) and row["stress"].shape == (3, 3)
