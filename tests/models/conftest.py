"""Models tier: any interatomic model evaluated on TM23 (tm23data.baselines.models / evaluate / phonons /
dynamics). Needs ASE only for EMT; CHGNet and SevenNet tests skip without their packages (extras
``generation`` and ``models``), phonon tests without phonopy (extra ``models``)."""

import pytest
from support import fresh_torch_state, skip_tier_unless

skip_tier_unless("models", "models", "matplotlib")


@pytest.fixture(autouse=True)
def _fresh_torch_state():
    """Every test starts with torch and e3nn as a new process has them (see support.fresh_torch_state)."""
    with fresh_torch_state():
        yield


@pytest.fixture(scope="session")
def chgnet_model():
    from tm23data.baselines.models import load_model

    return load_model("chgnet")


@pytest.fixture(scope="session")
def sevennet_model():
    from tm23data.baselines.models import load_model

    return load_model("sevennet-0")
