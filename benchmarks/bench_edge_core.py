"""Throughput of the inference and edge-ASIC cores, in configurations per CPU-second of one core.

Builds sweep-like raw arrays (random catalog models, chips, precisions, batches, prompt lengths and the serving
columns: concurrency, compute precision, expert parallelism, disaggregated prefill; about three quarters of them
refused, as in a sweep of chips too small for some models: `inference_feasible` times the feasible ones alone); random ASIC
design vectors with 5 % wafer-scale/redundant designs), assembles them per block as a sweep worker does (the
inference rows' catalog columns gathered in float32, the sweep dtype), then
times (a) the numpy core alone and (b) assembly plus core, single-threaded, for blocks of 16,384 and 65,536
rows; the inference core runs in the sweep dtype (float32, as sweep workers run it). It runs twice: with
glibc's default allocator settings, then with freed memory kept by the process
(`workers.runtime.tune_allocator`, the setting sweep workers and the CLI apply): with the defaults every numpy
temporary of a large block is a fresh mmap whose pages fault in zeroed (~0.1 page fault per row and call),
which costs more than the arithmetic. Writes benchmarks/out/edge_core.json.

    .venv/bin/python benchmarks/bench_edge_core.py [--configs 4000000]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: numpy's element-wise kernels are single-threaded anyway

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from chipsweep.schemas.catalog import load_catalog  # noqa: E402
from chipsweep.schemas.vocab import DRAM_TYPES  # noqa: E402
from chipsweep.workers import asic, inference, runtime  # noqa: E402
from chipsweep.workers.asic_rows import assemble_asic  # noqa: E402
from chipsweep.workers.chunk import CORE_DTYPE  # noqa: E402
from chipsweep.workers.context import Context  # noqa: E402
from chipsweep.workers.inference_rows import assemble_inference  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "edge_core.json"


def inference_raw(ctx: Context, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "model_idx": rng.integers(0, len(ctx.models.ids), n),
        "chip_idx": rng.integers(0, len(ctx.chips.ids), n),
        "n_chips": rng.choice([1.0, 2.0, 4.0, 8.0], n),
        "weight_bits": rng.choice([4.0, 8.0, 16.0], n),
        "kv_bits": rng.choice([8.0, 16.0], n),
        "batch": np.where(rng.random(n) < 0.5, np.nan, rng.choice([1.0, 8.0, 64.0], n)),
        "prompt_len": rng.choice([128.0, 512.0, 2048.0], n),
        "gen_len": rng.choice([128.0, 512.0], n),
        # the serving columns (issue 14): concurrency (blank = the most that fits), compute precision (blank = by
        # weight bits), expert parallelism, disaggregated prefill
        "concurrency": np.where(rng.random(n) < 0.5, np.nan, rng.choice([1.0, 16.0, 64.0, 256.0], n)),
        "compute_precision": np.where(rng.random(n) < 0.5, np.nan, rng.choice([0.0, 1.0, 2.0, 4.0], n)),
        "ep": rng.choice([1.0, 2.0], n),
        "disaggregated": rng.choice([0.0, 1.0], n, p=[0.8, 0.2]),
    }


def feasible_raw(ctx: Context, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`inference_raw` rows the core does not refuse (about a quarter of random ones are feasible: the core skips the
    rates of the refused, so these blocks are its slowest)."""
    kept: list[dict[str, np.ndarray]] = []
    while sum(len(k["model_idx"]) for k in kept) < n:
        raw = inference_raw(ctx, 4 * n, rng)
        ok = sweep_inference_core(*sweep_inference_assemble(raw, ctx))["reason_mask"] == 0
        kept.append({k: v[ok] for k, v in raw.items()})
    return {k: np.concatenate([b[k] for b in kept])[:n] for k in kept[0]}


def refused_share(ctx: Context, rng: np.random.Generator, n: int = 65_536) -> float:
    """Share of `inference_raw` rows the core refuses (memory, layout, engine rules)."""
    return float(np.mean(sweep_inference_core(*sweep_inference_assemble(inference_raw(ctx, n, rng), ctx))["reason_mask"] != 0))


def asic_raw(ctx: Context, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    spares = np.where(rng.random(n) < 0.05, rng.choice([8.0, 32.0], n), 0.0)
    return {
        "model_idx": rng.integers(0, len(ctx.models.ids), n),
        "node_nm": rng.choice([3.0, 5.0, 7.0, 12.0, 16.0], n),
        "n_mac": rng.choice([1024.0, 4096.0, 16384.0, 65536.0], n),
        "clock_ghz": rng.choice([0.5, 1.0, 1.5], n),
        "sram_mb": rng.choice([4.0, 16.0, 64.0], n),
        "dram": rng.integers(0, len(DRAM_TYPES), n).astype(np.float64),
        "dram_bus_bits": rng.choice([64.0, 128.0, 256.0], n),
        "precision": rng.integers(0, 3, n).astype(np.float64),
        "weight_bits": rng.choice([4.0, 8.0], n),
        "batch": rng.choice([1.0, 4.0], n),
        "prompt_len": rng.choice([128.0, 512.0], n),
        "gen_len": rng.choice([128.0, 512.0], n),
        "spare_tiles": spares,
        "tiles": np.where(spares > 0, 256.0, np.nan),
    }


def sweep_inference_assemble(raw: dict[str, np.ndarray], ctx: Context) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The assembly as a sweep worker calls it: catalog columns gathered in the sweep dtype (workers/chunk.py)."""
    return assemble_inference(raw, ctx, dtype=CORE_DTYPE)


def sweep_inference_core(x: dict[str, np.ndarray], cal: dict[str, object]) -> dict[str, np.ndarray]:
    """The inference core as a sweep worker calls it: in the sweep dtype (float32, workers/chunk.py CORE_DTYPE)."""
    return inference.evaluate(x, cal, dtype=CORE_DTYPE)


def bench(kind: str, ctx: Context, total: int, block: int, rng: np.random.Generator, rounds: int = 5) -> dict[str, float]:
    """Configurations per CPU-second: each round times `total` rows block by block; the median and the best
    round are reported (the host is shared: single rounds swing by 2x with the neighbours' load)."""
    make, assemble, core = (
        (inference_raw, sweep_inference_assemble, sweep_inference_core) if kind == "inference"
        else (feasible_raw, sweep_inference_assemble, sweep_inference_core) if kind == "inference_feasible"
        else (asic_raw, assemble_asic, asic.evaluate)
    )
    blocks = [make(ctx, block, rng) for _ in range(8)]  # reused round-robin: generation is not timed
    prepared = [assemble(b, ctx) for b in blocks]
    for p in prepared:
        core(*p)  # warm-up
    n_blocks = max(len(blocks), total // block // rounds)
    core_rates, both_rates = [], []
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(n_blocks):
            core(*prepared[i % len(prepared)])
        core_rates.append(n_blocks * block / (time.process_time() - t0))
        t0 = time.process_time()
        for i in range(n_blocks):
            core(*assemble(blocks[i % len(blocks)], ctx))
        both_rates.append(n_blocks * block / (time.process_time() - t0))
    return {
        "configurations": n_blocks * block * rounds,
        "block_rows": block,
        "rounds": rounds,
        "core_configs_per_cpu_s_median": float(np.median(core_rates)),
        "core_configs_per_cpu_s_best": float(max(core_rates)),
        "assemble_and_core_configs_per_cpu_s_median": float(np.median(both_rates)),
        "assemble_and_core_configs_per_cpu_s_best": float(max(both_rates)),
    }


def machine() -> dict[str, object]:
    return {
        "cpu": runtime.cpu_name(), "logical_cpus": os.cpu_count(), "threads_used": 1, "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "timing": "CPU seconds of this process (time.process_time), so time waiting for a shared CPU is not counted",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--configs", type=int, default=4_000_000, help="configurations per kind and setting")
    args = ap.parse_args()
    ctx = Context.build(load_catalog())
    rng = np.random.default_rng(0)
    runs: dict[str, dict[str, dict[str, float]]] = {"default_malloc": {}, "malloc_keep_freed": {}}
    for setting in runs:
        if setting == "malloc_keep_freed" and not runtime.tune_allocator():
            break
        for kind in ("inference", "inference_feasible", "asic"):
            for block in (16_384, 65_536):
                runs[setting][f"{kind}_block{block}"] = bench(kind, ctx, args.configs, block, rng)
    keep_freed = {"mmap_threshold_bytes": runtime.MMAP_THRESHOLD_BYTES, "trim_threshold_bytes": runtime.TRIM_THRESHOLD_BYTES}
    result = {"machine": machine(), "target_configs_per_s_per_core": 3_000_000, "keep_freed_setting": keep_freed,
              "inference_core_dtype": np.dtype(CORE_DTYPE).name,
              # the random inference rows' share the core refuses (it skips their rates); inference_feasible_* time
              # blocks of feasible rows alone
              "inference_refused_share": refused_share(ctx, np.random.default_rng(0)),
              "runs": runs}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for setting, kinds in runs.items():
        for name, r in kinds.items():
            print(f"{setting:18s} {name:22s} core {r['core_configs_per_cpu_s_median'] / 1e6:5.2f} M/s median "
                  f"({r['core_configs_per_cpu_s_best'] / 1e6:5.2f} best)   assemble+core "
                  f"{r['assemble_and_core_configs_per_cpu_s_median'] / 1e6:5.2f} M/s median "
                  f"({r['assemble_and_core_configs_per_cpu_s_best'] / 1e6:5.2f} best)")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
