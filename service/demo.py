"""`chipsweep demo`: a built-in grid evaluated locally, best layouts printed.

Until the sweep service lands, the demo runs the evaluation core directly: every (model, chip,
cluster size) of a small grid gets a full layout search, and the fastest and cheapest feasible layouts
per model are printed.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from schemas.catalog import load_catalog
from workers.evaluate import Context, evaluate_training

MODELS = ("gpt3_175b", "llama2_70b", "llama3_8b")
CHIPS = ("nvidia_v100_sxm2_32gb", "nvidia_a100_sxm_80gb", "nvidia_h100_sxm", "nvidia_h200_sxm", "amd_mi300x", "intel_gaudi3", "google_tpu_v5p")
SIZES = (256, 1024, 4096)


def demo_grid() -> pa.Table:
    rows = [(m, c, n) for m in MODELS for c in CHIPS for n in SIZES]
    return pa.table({
        "model": [r[0] for r in rows],
        "chip": [r[1] for r in rows],
        "n_chips": [str(r[2]) for r in rows],
        "global_batch": ["1536"] * len(rows),
        "tokens": ["300e9"] * len(rows),
    })


def main() -> int:
    cat = load_catalog()
    t0 = time.perf_counter()
    out, _ = evaluate_training(demo_grid(), Context.build(cat))
    dt = time.perf_counter() - t0
    d = out.to_pydict()
    n = len(d["model"])
    print(f"chipsweep demo: {n} (model, chip, cluster size) points, full layout search each, {dt:.2f} s\n")
    for model in MODELS:
        idx = [i for i in range(n) if d["model"][i] == model and d["fits"][i] and np.isfinite(d["cost_usd"][i] or np.nan)]
        print(f"== {model}: 300B tokens, global batch 1536 ==")
        if not idx:
            print("  no feasible configuration\n")
            continue
        print(f"  {'chip':24s} {'chips':>5s} {'tp':>3s} {'pp':>3s} {'dp':>4s} {'mb':>3s} {'v':>2s} {'recomp':>9s} {'zero':>4s} "
              f"{'MFU':>5s} {'days':>7s} {'cost $M':>8s} {'MWh':>7s}")
        fastest = sorted(idx, key=lambda i: d["time_to_train_days"][i])[:5]
        cheapest = sorted(idx, key=lambda i: d["cost_usd"][i])[:3]
        for label, picks in (("fastest", fastest), ("cheapest", cheapest)):
            print(f"  -- {label}")
            for i in picks:
                print(f"  {d['chip'][i]:24s} {int(d['n_chips'][i]):5d} {d['tp'][i]:3d} {d['pp'][i]:3d} {d['dp'][i]:4d} "
                      f"{d['micro_batch'][i]:3d} {d['interleave'][i]:2d} {d['recompute'][i]:>9s} {d['zero_stage'][i]:4d} "
                      f"{d['mfu'][i] * 100:4.1f}% {d['time_to_train_days'][i]:7.1f} {d['cost_usd'][i] / 1e6:8.2f} "
                      f"{d['energy_mwh'][i]:7.0f}")
        print()
    return 0
