"""Chunk boundaries: contiguous, complete, at most `chunk_size`, and never across a catalog-axis value."""

from __future__ import annotations

import numpy as np
import pytest

from chipsweep.workers.space import chunk_ranges, decode_range


@pytest.mark.parametrize(("sizes", "split", "chunk"), [
    ([3, 4, 5], [True, False, False], 7),       # chip first: blocks of 20, cut into pieces of <= 7
    ([2, 3, 50], [True, True, False], 1000),    # model, chip, then a numeric axis: one chunk per pair
    ([7, 11], [False, False], 10),               # no catalog axis: plain chunks
    ([4, 6, 9], [False, True, False], 5),        # a catalog axis second: blocks of 9
])
def test_chunks_cover_the_space_once_and_never_span_two_catalog_values(sizes, split, chunk) -> None:  # type: ignore[no-untyped-def]
    ranges = chunk_ranges(sizes, split, chunk)
    total = int(np.prod(sizes))
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a < b <= a + chunk for a, b in ranges) or not any(split)
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False))
    for a, b in ranges:
        axes = decode_range(a, b, sizes)
        for j, s in enumerate(split):
            if s:
                assert len(np.unique(axes[j])) == 1, (a, b, j)
        assert b - a <= chunk


def test_blocks_are_cut_evenly() -> None:
    assert chunk_ranges([2, 10], [True, False], 4) == [(0, 4), (4, 8), (8, 10), (10, 14), (14, 18), (18, 20)]
    assert chunk_ranges([3, 100], [True, False], 1000) == [(0, 100), (100, 200), (200, 300)]
