"""Throughput of the training core, and the latency of one layout search.

    python benchmarks/bench_training_core.py            # writes benchmarks/out/training_core.json

Measures CPU time of this process (numpy element-wise kernels are single-threaded), so the figures are
per core:
- core only: `workers.training.evaluate` on 1M-configuration arrays, float64 and float32 inputs,
  configurations/s;
- resolve + core: catalog gather, overrides and defaults (`assemble_training`, float64) then the core in
  float32 (cast block by block), as a sweep chunk does (workers/chunk.py CORE_DTYPE); and the same with a
  float64 core;
- MoE (issue 13): the same with MoE models and ep in 1-8 (every row takes the MoE passes);
- layout search: one (model, chip, n_chips) with every layout field blank, milliseconds (a dense model; and
  DeepSeek-V3, whose search covers expert parallelism too).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from chipsweep.schemas.catalog import load_catalog
from chipsweep.workers import training
from chipsweep.workers.context import Context
from chipsweep.workers.layout import CANDIDATES
from chipsweep.workers.runtime import cpu_name, tune_allocator
from chipsweep.workers.training_rows import assemble_training, evaluate_training

OUT = Path(__file__).parent / "out" / "training_core.json"


def raw_chunk(ctx: Context, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    models = [ctx.models.index()[m] for m in ("gpt3_175b", "llama2_70b", "llama3_8b", "megatron_1t")]
    chips = [ctx.chips.index()[c] for c in ("nvidia_a100_sxm_80gb", "nvidia_h100_sxm", "amd_mi300x", "google_tpu_v5p")]
    return {
        "model_idx": rng.choice(models, n), "chip_idx": rng.choice(chips, n),
        "n_chips": rng.choice([256.0, 512, 1024, 2048, 4096], n), "global_batch": np.full(n, 1536.0),
        "tp": rng.choice([1.0, 2, 4, 8], n), "pp": rng.choice([1.0, 2, 4, 8, 16], n),
        "micro_batch": rng.choice([1.0, 2, 4], n), "interleave": np.ones(n), "recompute": rng.choice([0.0, 1, 2], n),
        "zero_stage": rng.choice([0.0, 1, 2, 3], n), "tokens": np.full(n, 300e9),
    }


def raw_moe_chunk(ctx: Context, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """MoE models with expert parallelism (issue 13): the core's MoE passes on every row."""
    raw = raw_chunk(ctx, n, seed)
    rng = np.random.default_rng(seed + 1)
    models = [ctx.models.index()[m] for m in ("deepseek_v3", "qwen3_235b_a22b", "qwen3_30b_a3b", "mixtral_8x7b")]
    raw["model_idx"] = rng.choice(models, n)
    raw["ep"] = rng.choice([1.0, 2, 4, 8], n)
    return raw


def best_of(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Least CPU seconds of this process over `repeat` runs: per-core time, robust to other load."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> dict[str, object]:
    allocator_tuned = tune_allocator()
    ctx = Context.build(load_catalog(use_env=False))
    n = 1_000_000
    raw = raw_chunk(ctx, n)
    x, _, cidx = assemble_training(raw, ctx)
    cal = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in ctx.cal_for(cidx, x['framework']).items()}
    core_s = best_of(lambda: training.evaluate(x, cal))
    x32 = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in x.items()}
    cal32 = {k: np.asarray(v).astype(np.float32) for k, v in cal.items()}
    core32_s = best_of(lambda: training.evaluate(x32, cal32))
    full_s = best_of(lambda: training.evaluate(*_assembled(raw, ctx), dtype=np.float32))
    full64_s = best_of(lambda: training.evaluate(*_assembled(raw, ctx)))
    raw_moe = raw_moe_chunk(ctx, n)
    x_moe, _, cidx_moe = assemble_training(raw_moe, ctx)
    cal_moe = {k: np.asarray(v).astype(np.float32) for k, v in ctx.cal_for(cidx_moe, x_moe["framework"]).items()}
    x_moe32 = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in x_moe.items()}
    moe32_s = best_of(lambda: training.evaluate(x_moe32, cal_moe))
    moe_full_s = best_of(lambda: training.evaluate(*_assembled(raw_moe, ctx), dtype=np.float32))
    one = pa.table({"model": ["llama2_70b"], "chip": ["nvidia_h100_sxm"], "n_chips": ["1024"], "global_batch": ["1024"]})
    evaluate_training(one, ctx)  # warm up
    search_s = best_of(lambda: evaluate_training(one, ctx), repeat=10)
    candidates = int(np.prod([len(v) for k, v in CANDIDATES.items() if k != "ep"]))  # a dense row: ep stays 1
    one_moe = pa.table({"model": ["deepseek_v3"], "chip": ["nvidia_h100_sxm"], "n_chips": ["1024"],
                        "global_batch": ["4096"], "precision": ["fp8"]})
    evaluate_training(one_moe, ctx)
    search_moe_s = best_of(lambda: evaluate_training(one_moe, ctx), repeat=3)
    result = {
        "machine": {"cpu": cpu_name(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "numpy": np.__version__, "threads": "1 (element-wise)",
                    "load_average_at_start": os.getloadavg()[0]},
        "configurations": n,
        "core_configs_per_s": n / core_s,
        "core_float32_configs_per_s": n / core32_s,
        "resolve_and_core_configs_per_s": n / full_s,
        "resolve_and_core_float64_configs_per_s": n / full64_s,
        "moe_core_float32_configs_per_s": n / moe32_s,
        "moe_resolve_and_core_configs_per_s": n / moe_full_s,
        "sweep_core_dtype": "float32",
        "layout_search_ms": search_s * 1000,
        "layout_search_candidates": candidates,
        "layout_search_moe_ms": search_moe_s * 1000,  # mixture of experts: ep searched too
        "layout_search_moe_candidates": candidates * len(CANDIDATES["ep"]),
        "peer_reference_configs_per_s_per_core": 200,
        "allocator_tuned": allocator_tuned,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


def _assembled(raw: dict[str, np.ndarray], ctx: Context) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, _, cidx = assemble_training(raw, ctx)
    return x, {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (len(cidx),)) for k, v in ctx.cal_for(cidx, x['framework']).items()}


if __name__ == "__main__":
    main()
