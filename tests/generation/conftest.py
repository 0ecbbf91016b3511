"""Generation tier: structures, VASP inputs and outputs, SLURM campaigns, local MD (extra ``generation``)."""

from support import skip_tier_unless

skip_tier_unless("generation", "generation", "pymatgen", "matplotlib", "chgnet")
