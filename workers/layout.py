"""Layout search: for rows that leave parts of the parallel layout blank, evaluate every valid choice
(vectorised, in one call of the core) and keep the fastest feasible one.

Candidates: tp and pp from the lists below, micro-batch sizes, interleave 1-4 and 8, the three recompute
modes, ZeRO stages 0-3 and, on mixture-of-experts rows, expert parallelism; invalid combinations are masked by the core (divisibility, memory), never
filtered by Python loops over rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from chipsweep.workers.space import decode, space_size
from chipsweep.workers.training import R_MEMORY

Array = np.ndarray

CANDIDATES: dict[str, tuple[float, ...]] = {
    "tp": (1, 2, 4, 8, 16, 32, 64),
    "pp": (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15, 16, 20, 24, 28, 30, 32, 35, 40, 48, 56, 60, 64, 80, 96, 105, 112, 118, 126, 128),
    "micro_batch": (1, 2, 4, 8, 16),
    # virtual stages per pipeline rank: Megatron-Core takes any v dividing the layers per stage; 8 reaches layouts
    # a 4 cannot (Llama 3 405B on 8,192 H100 at pp 8, v 8)
    "interleave": (1, 2, 3, 4, 8),
    "recompute": (0, 1, 2),
    "zero_stage": (0, 1, 2, 3),
    # expert parallelism: searched on mixture-of-experts rows only (a dense row's ep is 1); the core masks an ep that
    # does not divide the experts or tp x dp
    "ep": (1, 2, 4, 8, 16, 32, 64, 128),
}
SEARCHED = tuple(CANDIDATES)
# candidates evaluated in one call of the core at most (a MoE row with every field blank has 416,640; several rows
# of one blank pattern share a call while they fit): bounds the memory of a search whatever the number of rows
MAX_CANDIDATES = 524_288


def search(
    x: Mapping[str, Array],
    blank: Mapping[str, Array],
    run: Callable[[dict[str, Array]], dict[str, Array]],
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Resolve blank layout fields row by row (vectorised per blank pattern).

    `x` holds the inputs of n rows, `blank[k]` a boolean per row for each searched key. `run` evaluates
    a dict of inputs. Returns (resolved inputs, outputs) for the n rows.
    """
    n = len(next(iter(x.values())))
    resolved = {k: np.array(v, dtype=np.float64, copy=True) for k, v in x.items()}
    outputs: dict[str, Array] | None = None
    pattern = np.zeros(n, dtype=np.int64)
    for j, key in enumerate(SEARCHED):
        pattern |= np.asarray(blank[key], dtype=np.int64) << j
    parts: list[tuple[Array, dict[str, Array]]] = []
    for pat in np.unique(pattern).tolist():
        rows_all = np.nonzero(pattern == pat)[0]
        keys = [k for j, k in enumerate(SEARCHED) if pat >> j & 1]
        if not keys:
            parts.append((rows_all, run({k: v[rows_all] for k, v in resolved.items()})))
            continue
        sizes = [len(CANDIDATES[k]) for k in keys]
        g = space_size(sizes)
        axis_idx = decode(np.arange(g, dtype=np.int64), sizes)
        per_call = max(1, MAX_CANDIDATES // g)  # rows per call: rows x candidates stays bounded
        for start in range(0, len(rows_all), per_call):
            rows = rows_all[start:start + per_call]
            cand = {k: np.repeat(v[rows], g) for k, v in resolved.items()}  # row r owns candidates r*g .. r*g+g-1
            for key, idx in zip(keys, axis_idx, strict=True):
                cand[key] = np.tile(np.asarray(CANDIDATES[key], dtype=np.float64)[idx], len(rows))
            res = run(cand)
            best = _best(res, len(rows), g)
            pick = np.arange(len(rows)) * g + best
            for key in keys:
                resolved[key][rows] = cand[key][pick]
            parts.append((rows, {k: v[pick] for k, v in res.items()}))
    for rows, out in parts:
        if outputs is None:
            outputs = {k: np.empty(n, dtype=v.dtype) for k, v in out.items()}
        for k, v in out.items():
            outputs[k][rows] = v
    assert outputs is not None
    return resolved, outputs


def time_per_token(res: Mapping[str, Array]) -> Array:
    """The search's ranking of evaluated rows: seconds per token of each feasible one, inf where refused (a candidate
    that runs a smaller valid batch, batch_handling, takes a shorter step for fewer tokens, so steps do not compare;
    the time to train does)."""
    per = res["step_time_s"] / res["tokens_per_step"]
    return np.where((res["reason_mask"] == 0) & np.isfinite(per), per, np.inf)


def _best(res: Mapping[str, Array], rows: int, g: int) -> Array:
    """Per row, the candidate with the least time per token (the least time to train) among feasible ones; if
    none is feasible, the one
    whose only problem is memory with the least memory, else any with the fewest problems."""
    score = time_per_token(res).reshape(rows, g)
    mask = res["reason_mask"].reshape(rows, g)
    mem = res["mem_per_chip_gb"].reshape(rows, g)
    feasible = np.isfinite(score)
    best = np.argmin(score, axis=1)
    none = ~feasible.any(axis=1)
    if none.any():
        only_mem = mask == R_MEMORY
        mem_score = np.where(only_mem, mem, np.inf)
        problems = np.array([bin(int(v)).count("1") for v in np.unique(mask)])
        counts = problems[np.searchsorted(np.unique(mask), mask)]
        fallback = np.where(only_mem.any(axis=1), np.argmin(mem_score, axis=1), np.argmin(counts, axis=1))
        best = np.where(none, fallback, best)
    return best
