"""Reason bits of the evaluation cores' infeasibility masks.

`flag` sets a bit by integer arithmetic: NumPy's masked ufunc path (`np.bitwise_or(..., where=cond)`)
and boolean fancy indexing cost 10-15x more on blocks of ~16K rows, which made the mask a tenth of the
training core's time.
"""

from __future__ import annotations

import numpy as np


def flag(mask: np.ndarray, cond: np.ndarray | bool, bit: int) -> None:
    """Set `bit` in the integer array `mask` where `cond` is true (in place)."""
    mask |= np.asarray(cond).astype(mask.dtype) * mask.dtype.type(bit)
