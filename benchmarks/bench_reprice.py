"""Re-pricing against re-evaluation: what a price-only change costs per chunk.

    python benchmarks/bench_reprice.py            # writes benchmarks/out/reprice.json

One chip's chunk of a training sweep (every row stored, `store: all`) -- once with every layout field on
an axis, once with tp, pp and micro-batch left to the worker's layout search -- evaluated once under the
built-in catalog and written as Parquet; then, under a catalog with that chip's rental price and the electricity
price changed, the same chunk (a) evaluated again from its configurations and (b) re-priced from the
stored Parquet file (read, economics recomputed, written), as the actor does for each kind of chunk.
Figures are rows per second of this process on one core, best of three.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.spec import parse_spec
from chipsweep.schemas.sweep import resolve
from chipsweep.workers.chunk import ChunkEvaluator
from chipsweep.workers.runtime import tune_allocator

OUT = Path(__file__).parent / "out" / "reprice.json"
SPEC = {"name": "bench-reprice", "kind": "training", "store": "all",
        "axes": {"chip": ["nvidia_h100_sxm"], "model": ["llama2_70b"],
                 "n_chips": [256, 512, 1024, 2048, 4096, 8192], "tp": [1, 2, 4, 8], "pp": [1, 2, 4, 8, 16],
                 "micro_batch": [1, 2, 4, 8], "recompute": ["none", "selective", "full"], "interleave": [1, 2],
                 "global_batch": list(range(512, 512 * 17, 512)), "zero_stage": [0, 1, 2, 3],
                 "cost_basis": ["rental", "owned"]},
        "fixed": {"tokens": 2e12}}
# the same chip and model with the layout searched per configuration (tp, pp, micro-batch blank)
SEARCHED = {**SPEC, "axes": {"chip": ["nvidia_h100_sxm"], "model": ["llama2_70b"],
                             "n_chips": list(range(64, 8192 + 1, 64)), "global_batch": list(range(512, 512 * 17, 512)),
                             "recompute": ["selective", "full"], "zero_stage": [0, 1], "cost_basis": ["rental", "owned"]}}
OVERLAY = "chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 2.4}\ndefaults:\n  usd_per_kwh: 0.12\n"


def best_of(fn, repeat: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(spec: dict, tmp: str) -> dict[str, object]:  # type: ignore[type-arg]
    overlay = Path(tmp) / "price.yaml"
    overlay.write_text(OVERLAY)
    old = resolve(parse_spec(spec), load_catalog(use_env=False))
    new = resolve(parse_spec(spec), load_catalog(str(overlay), use_env=False))
    n = old.configurations
    part = Path(tmp) / "part-0.parquet"
    pq.write_table(ChunkEvaluator(old).evaluate(0, n), part)
    ev = ChunkEvaluator(new)

    def evaluate() -> int:
        pq.write_table(ev.evaluate(0, n), Path(tmp) / "eval.parquet")
        return n

    def reprice() -> int:
        table = ev.reprice(pq.read_table(part), 0, n)
        pq.write_table(table, Path(tmp) / "repriced.parquet")
        return table.num_rows

    t_eval, _ = best_of(evaluate)
    t_price, rows = best_of(reprice)
    return {
        "rows": n,
        "evaluate_s": round(t_eval, 3), "evaluate_rows_per_s": round(n / t_eval),
        "reprice_s": round(t_price, 3), "reprice_rows_per_s": round(int(rows) / t_price),  # type: ignore[call-overload]
        "speedup": round(t_eval / t_price, 2),
    }


def main() -> None:
    tune_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, object] = {"layouts_on_axes": measure(SPEC, tmp), "layouts_searched": measure(SEARCHED, tmp)}
    figures["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures["note"] = ("seconds include reading (re-price) or not (evaluate) and writing the chunk's Parquet file; "
                       "with layouts on axes the core is cheaper than the Parquet I/O both paths share")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
