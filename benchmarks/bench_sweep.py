"""End-to-end sweep throughput: queue + Ray actors + evaluation + Parquet committed, on this machine.

Each measurement runs a fresh driver process (local Ray with every CPU, an empty CHIPSWEEP_HOME) that
submits a training sweep with `store: feasible` and dispatches it to completion; the clock runs from
submit (spec validated, sweep and chunks recorded, dimension tables written) to the last chunk
committed, and includes starting the actor pool; it excludes starting Ray itself (a service starts it
once). Reported:

- configurations/s with 1 and with 2 actors (a ~50-million-configuration sweep);
- bytes per stored row in the lake (zstd Parquet, narrow types);
- the ceiling: pyarrow writing the same rows (read back from the lake, same writer options) in one
  process, and the ratio of end-to-end rows/s to that raw write rate;
- the driver's peak RSS (VmHWM of the driver process, not the actors) for ~10 million vs ~100
  million configurations: flat, since the driver holds only a bounded number of chunk handles.

Not run by pytest. Writes benchmarks/out/sweep.json.

    .venv/bin/python benchmarks/bench_sweep.py            # full run, a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_sweep.py --quick    # smaller sweeps, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "sweep.json"

MODELS = ["gpt3_175b", "llama2_70b", "llama3_8b", "llama3_405b", "llama3_70b", "gpt3_13b", "llama2_13b", "llama2_7b",
          "mtnlg_530b", "palm_62b", "bloom_176b"]


def bench_spec(name: str, models: int, batches: int) -> dict[str, Any]:
    """models x 18 chips x 12 sizes x batches x 2 precisions x 4 tp x 7 pp x 4 mb x 3 recompute x 2 x 4:
    1,161,216 configurations per (model, batch)."""
    return {
        "name": name,
        "kind": "training",
        "axes": {
            "model": MODELS[:models],
            "chip": {"class": "datacenter_training"},
            "n_chips": {"geometric": {"start": 8, "stop": 16384, "factor": 2}},
            "global_batch": [512 * (i + 1) for i in range(batches)],
            "precision": ["bf16", "fp8"],
            "tp": [1, 2, 4, 8],
            "pp": {"geometric": {"start": 1, "stop": 64, "factor": 2}},
            "micro_batch": [1, 2, 4, 8],
            "recompute": ["none", "selective", "full"],
            "interleave": [1, 2],
            "zero_stage": [0, 1, 2, 3],
        },
        "fixed": {"tokens": 300e9},
        "store": "feasible",
    }


# ------------------------------------------------------------------------------------------------
# the driver (a subprocess per measurement)
# ------------------------------------------------------------------------------------------------
def driver(args: argparse.Namespace) -> None:
    os.environ["CHIPSWEEP_HOME"] = args.home
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sys.path.insert(0, str(REPO))
    from chipsweep.service.dispatch import Dispatcher, ensure_ray, over, run_until, submit
    from chipsweep.service.queue import Queue
    from chipsweep.service.settings import Settings

    settings = Settings.from_env()
    t0 = time.perf_counter()
    ensure_ray(settings)
    ray_s = time.perf_counter() - t0
    queue = Queue(settings.queue_path)
    spec = bench_spec(args.name, args.models, args.batches)
    t1 = time.perf_counter()
    row = submit(spec, settings=settings, queue=queue)
    disp = Dispatcher(queue, settings, actors=args.actors)
    run_until(queue, settings, over(queue, row.sweep_id), dispatcher=disp)
    status = queue.status(row.sweep_id)
    seconds = time.perf_counter() - t1
    disp.close()
    print(json.dumps({
        "configurations": row.configurations, "chunks": row.chunks_total, "seconds": seconds, "ray_start_s": ray_s,
        "rows": status["rows_written"], "bytes": status["bytes_written"], "state": status["state"],
        "driver_peak_rss_mb": _peak_rss_mb(),
        "lake": settings.lake, "version": row.version,
    }))


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that across fork+exec
    from the parent (here the benchmark process, which holds a table of lake rows)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_driver(home: Path, name: str, models: int, batches: int, actors: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--driver", "--home", str(home), "--name", name, "--models", str(models),
           "--batches", str(batches), "--actors", str(actors)]
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="csb-", dir="/tmp"), PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"driver failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["state"] != "done":
        raise SystemExit(f"sweep {name} ended {result['state']}")
    return result


def raw_parquet_ceiling(lake: str, name: str, version: int, max_rows: int = 8_000_000) -> dict[str, Any]:
    """pyarrow writing the rows the sweep stored (same options as the lake writer), one process."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO))
    from chipsweep.lake import Lake, parquet_options

    parts = Lake(lake).committed_parts("training", name, version)
    table = ds.dataset(parts, format="parquet").to_table().slice(0, max_rows)
    table = pa.Table.from_batches(table.to_batches()).unify_dictionaries().combine_chunks()
    out = Path(tempfile.mkdtemp(prefix="csb-raw-"))
    try:
        options = parquet_options(table.schema)
        best = float("inf")
        for i in range(3):
            t0 = time.perf_counter()
            pq.write_table(table, out / f"raw{i}.parquet", row_group_size=1 << 20, **options)
            best = min(best, time.perf_counter() - t0)
        size = (out / "raw0.parquet").stat().st_size
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"rows": table.num_rows, "seconds": best, "rows_per_s": table.num_rows / best, "bytes_per_row": size / table.num_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~5M / 2M / 20M configurations instead of 51M / 10M / 102M")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--models", type=int, default=11, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--actors", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        driver(args)
        return

    big = (11, 4) if not args.quick else (4, 1)  # 51.1M (quick: 4.6M)
    rss_small, rss_large = ((9, 1), (11, 8)) if not args.quick else ((2, 1), (4, 4))  # 10.5M vs 102M
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="chipsweep-bench-"))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in load_before]},
        "sweep": {"store": "feasible", "spec": bench_spec("bench", *big)},
    }
    try:
        by_actors = {}
        for actors in (1, 2):
            r = run_driver(work / f"a{actors}", "bench", *big, actors=actors)
            by_actors[actors] = r
            print(f"{actors} actor(s): {r['configurations']:,} configurations in {r['seconds']:.1f} s = "
                  f"{r['configurations'] / r['seconds'] / 1e6:.2f} M configs/s; {r['rows']:,} rows, "
                  f"{r['bytes'] / max(r['rows'], 1):.1f} B/row", flush=True)
        rss = {}
        for label, (models, batches) in (("small", rss_small), ("large", rss_large)):
            r = run_driver(work / f"rss-{label}", f"rss-{label}", models, batches, actors=2)
            rss[label] = r
            print(f"driver peak RSS at {r['configurations']:,} configurations: {r['driver_peak_rss_mb']:.0f} MB "
                  f"({r['configurations'] / r['seconds'] / 1e6:.2f} M configs/s)", flush=True)
        two = by_actors[2]
        ceiling = raw_parquet_ceiling(two["lake"], "bench", two["version"])
        e2e_rows_per_s = two["rows"] / two["seconds"]
        print(f"raw pyarrow write of the same rows: {ceiling['rows_per_s'] / 1e6:.2f} M rows/s; end to end "
              f"{e2e_rows_per_s / 1e6:.3f} M rows/s = {e2e_rows_per_s / ceiling['rows_per_s']:.3f} of it", flush=True)
        results.update({
            "configurations": two["configurations"],
            "configs_per_s": {str(k): v["configurations"] / v["seconds"] for k, v in by_actors.items()},
            "seconds": {str(k): v["seconds"] for k, v in by_actors.items()},
            "rows_stored": two["rows"],
            "bytes_per_row": two["bytes"] / max(two["rows"], 1),
            "lake_bytes": two["bytes"],
            "chunks": two["chunks"],
            "ray_start_s": two["ray_start_s"],
            "e2e_rows_per_s": e2e_rows_per_s,
            "raw_parquet": ceiling,
            "ratio_e2e_rows_to_raw_parquet": e2e_rows_per_s / ceiling["rows_per_s"],
            "driver_peak_rss_mb": {f"{v['configurations']}": v["driver_peak_rss_mb"] for v in rss.values()},
            "driver_rss_runs": {k: {"configurations": v["configurations"], "seconds": v["seconds"],
                                    "configs_per_s": v["configurations"] / v["seconds"],
                                    "driver_peak_rss_mb": v["driver_peak_rss_mb"]} for k, v in rss.items()},
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
