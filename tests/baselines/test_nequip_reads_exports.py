"""Exported extxyz files read by nequip's own ASEDataset give exactly the store's values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import N_TEST

from tm23data import load_tm23
from tm23data.export import export


def test_extxyz_reads_into_nequip(cached, tmp_path):
    nequip_data = pytest.importorskip("nequip.data")
    from nequip.data.dataset import ASEDataset

    (path,) = [p for p in export("W", "melt", "extxyz", tmp_path, progress=False) if p.name.endswith("_test.xyz")]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # nequip converts floats to the default dtype; compare losslessly
    try:
        ds = ASEDataset(file_path=str(path), ase_args={"format": "extxyz"})
        data_list = [ds[k] for k in range(len(ds))]
    finally:
        torch.set_default_dtype(default)
    reference = load_tm23("W", "melt", subset="test", format="numpy", progress=False)
    assert len(ds) == N_TEST
    K = nequip_data.AtomicDataDict
    for k, data in enumerate(data_list):
        assert float(data[K.TOTAL_ENERGY_KEY].reshape(())) == reference[k]["energy"]
        assert np.array_equal(data[K.FORCE_KEY].numpy(), reference[k]["forces"])
        assert np.array_equal(data[K.POSITIONS_KEY].numpy(), reference[k]["positions"])
        assert np.array_equal(data[K.STRESS_KEY].numpy().reshape(3, 3), reference[k]["stress"])  # ASE sign kept
        assert np.array_equal(data[K.CELL_KEY].numpy().reshape(3, 3), reference[k]["cell"])
