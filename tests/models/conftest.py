"""Models tier: any interatomic model evaluated on TM23 (tm23data.baselines.models / evaluate / phonons /
dynamics). Needs ASE only for EMT; CHGNet and SevenNet tests skip without their packages (extras
``generation`` and ``models``), phonon tests without phonopy (extra ``models``)."""

import pytest
from support import skip_tier_unless

skip_tier_unless("models", "models", "matplotlib")


@pytest.fixture(scope="session")
def chgnet_model():
    from tm23data.baselines.models import load_model

    return load_model("chgnet")


@pytest.fixture(scope="session")
def sevennet_model():
    from tm23data.baselines.models import load_model

    return load_model("sevennet-0")
