"""Scaling, measured here and extrapolated: configurations/s with 1 and 2 worker processes, the
driver's cost per chunk, and from those the throughput of 10 and 100 nodes of 32 cores and the chunk
size that keeps the driver below 10 % busy.

Measured (one local Ray with 2 CPUs, an empty CHIPSWEEP_HOME, the lake a local directory):
- r1, r2: configurations/s of a ~18.6-million-configuration training sweep (`store: feasible`, chunks
  of 2^20 configurations) with a pool of 1 and of 2 ChunkWorker actors, submit to last commit; runs
  interleaved (1, 2, 1, 2, ...) `--repeat` times and the fastest of each kept (the machine is shared);
- d: the driver's CPU seconds per chunk (claim, submit the Ray task, wait, mark done, log), from a
  sweep cut into ~500 tiny chunks: the driver process's CPU time (all its threads, Ray's core-worker
  threads included; the actors are other processes) divided by the chunks. Also the main thread's
  share alone (`time.thread_time`).

Extrapolated (stated in the output with the formula):
    per-core rate       r = r1 (configurations/s of one worker process)
    efficiency          e = r2 / (2 r1)            (what a second process on the same machine keeps)
    workers             W = nodes x cores
    chunks/s at driver  W r e / C                   (C = configurations per chunk)
    driver busy         u = W r e d / C             -> C_min(10 %) = 10 W r e d
    throughput          X = min(W r e, C / d)       (the driver saturates at C / d configurations/s)

Not run by pytest. Writes benchmarks/out/scaling.json.

    .venv/bin/python benchmarks/bench_scaling.py            # ~1 minute on 2 cores
    .venv/bin/python benchmarks/bench_scaling.py --quick    # smaller sweeps, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "scaling.json"
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sweep import bench_spec as spec  # noqa: E402  (the same sweep as the end-to-end benchmark)

NODE_CORES = 32
DRIVER_BUSY_TARGET = 0.10


def run_sweep(settings: Any, queue: Any, name: str, models: int, batches: int, actors: int,
              chunk_size: int | None = None) -> dict[str, Any]:
    from chipsweep.service.dispatch import Dispatcher, over, run_until, submit

    disp = Dispatcher(queue, settings, actors=actors)
    try:
        disp._ensure_pool()  # the pool's start-up is not part of a chunk's cost
        import ray

        ray.get([a.ping.remote() for a in disp.actors])
        wall0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
        row = submit(spec(name, models, batches), settings=settings, queue=queue, chunk_size=chunk_size)
        run_until(queue, settings, over(queue, row.sweep_id), dispatcher=disp)
        status = queue.status(row.sweep_id)
        wall, cpu, thread = (time.perf_counter() - wall0, time.process_time() - cpu0, time.thread_time() - thread0)
    finally:
        disp.close()
    assert status["state"] == "done", status
    return {"actors": actors, "configurations": row.configurations, "chunks": row.chunks_total,
            "chunk_size": row.chunk_size, "seconds": wall, "configs_per_s": row.configurations / wall,
            "driver_cpu_s": cpu, "driver_main_thread_cpu_s": thread, "rows": status["rows_written"]}


def extrapolate(r1: float, r2: float, d: float, d_thread: float) -> dict[str, Any]:
    e = r2 / (2 * r1)
    out: dict[str, Any] = {
        "formula": {
            "per_core_rate_r": "r = r1 (configurations/s of one worker process, measured)",
            "efficiency_e": "e = r2 / (2 r1)",
            "workers_W": f"W = nodes x {NODE_CORES}",
            "throughput_X": "X = min(W r e, C / d)",
            "driver_busy_u": "u = W r e d / C",
            "chunk_size_for_10pct": "C_min = W r e d / 0.10 = 10 W r e d",
        },
        "r_configs_per_s_per_core": r1,
        "e": e,
        "d_driver_cpu_s_per_chunk": d,
        "d_main_thread_cpu_s_per_chunk": d_thread,
        "nodes": {},
    }
    for nodes in (10, 100):
        w = nodes * NODE_CORES
        workers_rate = w * r1 * e
        c_min = workers_rate * d / DRIVER_BUSY_TARGET
        chunk = 1 << max(20, (int(c_min) - 1).bit_length())  # a power of two, at least the default 2^20
        out["nodes"][str(nodes)] = {
            "workers": w,
            "configs_per_s": min(workers_rate, chunk / d),
            "configs_per_s_workers_bound": workers_rate,
            "chunk_size_min_for_driver_below_10pct": c_min,
            "chunk_size_recommended": chunk,
            "driver_busy_at_recommended": workers_rate * d / chunk,
            "driver_busy_at_default_2pow20": workers_rate * d / (1 << 20),
            "chunks_per_s_at_recommended": workers_rate / chunk,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sweeps (a smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per pool size (the best is kept)")
    args = parser.parse_args()
    models, batches = (2, 1) if args.quick else (8, 2)
    with tempfile.TemporaryDirectory(prefix="chipsweep-scaling-") as home:
        os.environ["CHIPSWEEP_HOME"] = home
        os.environ.pop("CHIPSWEEP_LAKE", None)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray

        from chipsweep.service.queue import Queue
        from chipsweep.service.settings import Settings

        settings = Settings.from_env()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="bench-scaling",
                 configure_logging=False)
        queue = Queue(settings.queue_path)
        run_sweep(settings, queue, "warm", 1, 1, 2)  # imports, catalog, numpy paths warm in both actors
        # interleaved repeats: this machine is shared, so load drifts; the fastest run of each is the one
        # least disturbed by other processes, and interleaving exposes both to the same drift
        samples: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for rep in range(args.repeat):
            for actors in (1, 2):
                res = run_sweep(settings, queue, f"w{actors}-{rep}", models, batches, actors)
                res["load_average"] = list(os.getloadavg())
                samples[actors].append(res)
        one = max(samples[1], key=lambda r: r["configs_per_s"])
        two = max(samples[2], key=lambda r: r["configs_per_s"])
        # tiny chunks: the work per chunk is small, so the driver's per-chunk cost dominates its CPU time
        tiny_size = 2400 if not args.quick else 5000
        tiny = run_sweep(settings, queue, "tiny", 1, 1, 2, chunk_size=tiny_size)
        ray.shutdown()
    d = tiny["driver_cpu_s"] / tiny["chunks"]
    d_thread = tiny["driver_main_thread_cpu_s"] / tiny["chunks"]
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_start": list(os.getloadavg())},
        "measured": {"one_worker": one, "two_workers": two, "driver_overhead_run": tiny,
                     "samples_configs_per_s": {str(k): [round(r["configs_per_s"]) for r in v] for k, v in samples.items()},
                     "samples_load_average": {str(k): [r["load_average"][0] for r in v] for k, v in samples.items()},
                     "speedup_2_over_1": two["configs_per_s"] / one["configs_per_s"]},
        "extrapolation": extrapolate(one["configs_per_s"], two["configs_per_s"], d, d_thread),
        "assumptions": [
            "one worker process per core, each as fast as the single worker measured here (r), discounted by the "
            "efficiency e measured when two share this machine (memory bandwidth, the driver on the same cores)",
            "the lake absorbs the write rate: at ~36 bytes per stored feasible row and ~5 % feasible rows this "
            "is a few hundred MB/s at 100 nodes, within one S3 bucket prefix's PUT and bandwidth limits for "
            "~1 MiB+ objects",
            "the driver is one process (the dispatcher thread of `chipsweep serve`); d is its CPU per chunk, "
            "measured here with a local queue and Ray on the same machine",
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"one": one["configs_per_s"], "two": two["configs_per_s"], "d": d, "d_thread": d_thread,
                      "nodes": result["extrapolation"]["nodes"]}, indent=1))


if __name__ == "__main__":
    main()
