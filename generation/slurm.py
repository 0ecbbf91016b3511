"""The VASP pipeline on a SLURM cluster, as one import (kept for code written against tm23data 0.1).

The pieces: :mod:`.campaign` (the folder, its state and resume), :mod:`.scheduler` (the scheduler interface
and SLURM), :mod:`.jobscripts` (job scripts from ``templates/``), :mod:`.submission` (submit, status,
cancel) and :mod:`.collect` (the archive).
"""

from __future__ import annotations

from .campaign import DONE, STAGES, STALE, Campaign, CampaignError, static_ids, static_state
from .collect import collect
from .jobscripts import aimd_script, static_script
from .scheduler import SchedulerError, Slurm
from .submission import Planned, cancel, plan, status, submit

__all__ = ["DONE", "STAGES", "STALE", "Campaign", "CampaignError", "Planned", "SchedulerError", "Slurm", "aimd_script",
           "cancel", "collect", "plan", "static_ids", "static_state", "static_script", "status", "submit"]  # fmt: skip
