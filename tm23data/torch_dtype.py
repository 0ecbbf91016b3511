"""Torch's process-wide default dtype, kept right for float32 models.

Loading a NequIP model sets torch's default dtype to float64 for the whole process (nequip's global state);
CHGNet and SevenNet then fail with "expected m1 and m2 to have the same dtype". Their calls run inside
:func:`in_float32`, which restores whatever was set before. torch is imported only when a wrapped call runs.
"""

from __future__ import annotations

import functools


def in_float32(fn):
    """``fn`` run with torch's default dtype float32 (restored afterwards)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        import torch

        saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_default_dtype(saved)

    return wrapped
