"""Baselines tier: NequIP, FLARE, grid, learning curves, reports (extras ``nequip`` and ``plot``; FLARE tests
are marked ``flare`` and skip without mir-flare, built by scripts/install_flare.sh)."""

from support import skip_tier_unless

skip_tier_unless("baselines", "nequip", "torch", "nequip", "matplotlib")
