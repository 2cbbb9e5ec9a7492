"""Mixed-radix decoding of a flat configuration index into per-axis indices.

A Cartesian space of axes with sizes (n_0, ..., n_k) is never materialised: configuration i has axis
indices i_j = (i // stride_j) % n_j with stride_j = n_{j+1} * ... * n_k (the last axis varies fastest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Array = np.ndarray


def strides(sizes: Sequence[int]) -> list[int]:
    out = [1] * len(sizes)
    for j in range(len(sizes) - 2, -1, -1):
        out[j] = out[j + 1] * int(sizes[j + 1])
    return out


def space_size(sizes: Sequence[int]) -> int:
    total = 1
    for n in sizes:
        total *= int(n)
    return total


def decode(flat: Array, sizes: Sequence[int]) -> list[Array]:
    """Per-axis indices (int64 arrays) of the flat indices `flat`."""
    flat = np.asarray(flat, dtype=np.int64)
    return [(flat // st) % int(n) for st, n in zip(strides(sizes), sizes, strict=True)]


def decode_range(start: int, stop: int, sizes: Sequence[int]) -> list[Array]:
    return decode(np.arange(start, stop, dtype=np.int64), sizes)


def chunk_ranges(sizes: Sequence[int], split: Sequence[bool], chunk_size: int) -> list[tuple[int, int]]:
    """The chunks of a space: contiguous (start, stop) ranges of at most `chunk_size` configurations that
    never cross a change of any `split` axis (the catalog axes: chip, model, cluster), so a change to one
    catalog entry touches only the chunks of its own configurations. A split axis changes value every
    `stride` configurations, so the ranges are the blocks between multiples of the smallest split stride,
    each cut into near-equal pieces. Sweeps order their catalog axes first (`schemas.sweep.resolve`),
    which makes those blocks as large as the other axes allow."""
    total = space_size(sizes)
    size = max(1, int(chunk_size))
    block = min((st for st, s in zip(strides(sizes), split, strict=True) if s), default=total) or 1
    out: list[tuple[int, int]] = []
    for start in range(0, total, block):
        stop = min(start + block, total)
        pieces = -(-(stop - start) // size)
        step = -(-(stop - start) // pieces)
        out.extend((a, min(a + step, stop)) for a in range(start, stop, step))
    return out
