"""Slurm tier: the HPC path of tm23data.generation on a real single-node SLURM started for the session
(tests/slurm/cluster.py). Skips with the reason when SLURM is not installed (`bash scripts/install_slurm.sh`)."""

from __future__ import annotations

import os
import sys

import pytest
from support import skip_tier_unless

skip_tier_unless("slurm", "generation", "pymatgen")
sys.path.insert(0, os.path.dirname(__file__))
from cluster import Cluster, missing_binaries  # noqa: E402

_missing = missing_binaries()
if _missing:
    pytest.skip(f"the slurm tests need SLURM and munge ({', '.join(_missing)} missing): "
                "sudo bash scripts/install_slurm.sh", allow_module_level=True)  # fmt: skip
if os.geteuid() != 0:
    pytest.skip("the slurm tests start slurmd, which runs jobs as root here: run them as root (as CI does)",
                allow_module_level=True)  # fmt: skip


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The running single-node cluster; stopped (by PID) at the end of the session."""
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except Exception:
        c.stop()
        raise
    yield c
    c.stop()


@pytest.fixture
def slurm(cluster, monkeypatch):
    """The cluster, with SLURM_CONF set so that sbatch/squeue/... (and tm23) talk to it."""
    for k, v in cluster.env().items():
        monkeypatch.setenv(k, v)
    for var in ("TM23_FAKE_VASP_UNCONVERGED", "TM23_FAKE_VASP_CRASH", "TM23_FAKE_VASP_MAX_STEPS",
                "TM23_FAKE_VASP_FAIL_IDS", "TM23_FAKE_VASP_STEP_S"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    return cluster
