"""Three concurrent cross joins over a ~100-million-row lake through POST /sql: which limit stops each,
how much memory the server holds meanwhile, and whether /healthz and GET /sweeps keep answering.

The issue's must-show at full size (tests/test_sql_limits.py shows the same on a 300,000-row lake in CI).
Builds (or reuses) the frontier benchmark's synthetic lake (benchmarks/bench_frontier.py: ~100 million
training rows written by the production lake writer) in a temporary directory that is kept for the next
run, starts `chipsweep serve --no-dispatch` on 127.0.0.1 over it with CHIPSWEEP_SQL_MEMORY_MB,
CHIPSWEEP_SQL_TEMP_MB, CHIPSWEEP_SQL_CONCURRENCY and CHIPSWEEP_SQL_TIMEOUT_S set, fires the three joins at
once, samples the server's resident memory from /proc every 50 ms, and times /healthz and GET /sweeps
throughout. Writes benchmarks/out/sql_limits.json.

    python benchmarks/bench_sql_limits.py [--lake DIR] [--rows N] [--memory-mb 1024] [--temp-mb 1024]
                                          [--concurrency 2] [--timeout-s 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "sql_limits.json"
LAKE = Path(tempfile.gettempdir()) / "chipsweep-bench-lake-100m"  # kept between runs: building takes minutes
# the CI test's joins: each pairs every row with every other (1e16 pairs here), sorting, aggregating into
# lists, or hashing distinct pairs -- memory-hungry whichever way DuckDB plans them
JOINS = [
    "SELECT a.idx, b.idx FROM training a, training b WHERE a.cost_usd < b.cost_usd ORDER BY a.cost_usd - b.cost_usd",
    "SELECT a.chip_id, list(b.idx) FROM training a, training b WHERE a.mfu > b.mfu GROUP BY a.chip_id",
    "SELECT count(DISTINCT (a.idx, b.idx)) FROM training a JOIN training b ON a.step_time_s <> b.step_time_s",
]
LIMIT_FIELDS = ("memory_limit", "temp_limit", "concurrency", "timeout_s")  # what a refusal's `field` may name
SAMPLE_S = 0.05  # how often the server's RSS is read
PROBE_PAUSE_S = 0.1  # between rounds of /healthz and /sweeps
CI_SLACK_MB = 256  # what tests/test_sql_limits.py allows above footprint + budget (allocations DuckDB does not count)


def _status_mb(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status (VmRSS: resident now; VmHWM: the kernel's high-water mark), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def lake_rows(lake: str) -> tuple[int, int, int]:
    """Rows, part files and bytes of the committed training parts under `lake` (Parquet footers only)."""
    parts = sorted(Path(lake).glob("kind=training/sweep=*/version=*/part-*.parquet"))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return rows, len(parts), sum(p.stat().st_size for p in Path(lake).rglob("*.parquet"))


def ensure_lake(lake: str, rows: int | None) -> dict[str, Any]:
    """Reuse the lake at `lake` when it holds training rows, else build the frontier benchmark's there."""
    have, files, size = lake_rows(lake)
    if have:
        return {"path": lake, "rows": have, "files": files, "bytes": size, "built": False}
    sys.path.insert(0, str(HERE))
    import bench_frontier

    build = bench_frontier.build_lake(lake, rows or bench_frontier.GRID.size)
    return {"path": lake, **build, "built": True}


def _latency(samples: list[float], failures: list[str]) -> dict[str, Any]:
    return {"calls": len(samples), "max_s": round(max(samples), 3) if samples else None,
            "p50_s": round(statistics.median(samples), 3) if samples else None,
            "failures": len(failures), "first_failure": failures[0] if failures else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", default=str(LAKE), help=f"the lake to query, built there if empty (default {LAKE})")
    ap.add_argument("--rows", type=int, help="rows of a built lake (default: the frontier benchmark's ~100 M)")
    ap.add_argument("--memory-mb", type=int, default=1024, help="CHIPSWEEP_SQL_MEMORY_MB")
    ap.add_argument("--temp-mb", type=int, default=1024, help="CHIPSWEEP_SQL_TEMP_MB")
    ap.add_argument("--concurrency", type=int, default=2, help="CHIPSWEEP_SQL_CONCURRENCY")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="CHIPSWEEP_SQL_TIMEOUT_S")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    load_before = list(os.getloadavg())
    lake = ensure_lake(args.lake, args.rows)
    home = tempfile.mkdtemp(prefix="chipsweep-bench-sql-home-")
    env = {**os.environ, "CHIPSWEEP_HOME": home, "CHIPSWEEP_LAKE": lake["path"], "RAY_AUTH_MODE": "disabled",
           "CHIPSWEEP_SQL_MEMORY_MB": str(args.memory_mb), "CHIPSWEEP_SQL_TEMP_MB": str(args.temp_mb),
           "CHIPSWEEP_SQL_CONCURRENCY": str(args.concurrency), "CHIPSWEEP_SQL_TIMEOUT_S": str(args.timeout_s)}
    sys.path.insert(0, str(HERE))
    import serve_local

    server, url, log = serve_local.start(env, Path(home) / "serve.log", "--no-dispatch")
    pid = server.pid
    try:
        t0 = time.perf_counter()
        warm = httpx.post(f"{url}/sql", json={"sql": "SELECT count(*) AS n FROM training"}, timeout=600)
        warm.raise_for_status()
        count_s = time.perf_counter() - t0
        rows_seen = int(warm.json()["rows"][0]["n"])
        base_mb = _status_mb(pid, "VmRSS")

        answers: list[dict[str, Any] | None] = [None] * len(JOINS)
        rss: list[float] = []
        lat: dict[str, list[float]] = {"/healthz": [], "/sweeps": []}
        failed: dict[str, list[str]] = {"/healthz": [], "/sweeps": []}
        stop = threading.Event()

        def join(i: int, sql: str) -> None:
            start = time.perf_counter()
            try:
                r = httpx.post(f"{url}/sql", json={"sql": sql}, timeout=args.timeout_s + 120)
                body = r.json()
                answers[i] = {"sql": sql, "http_status": r.status_code, "stopped_by": body.get("field"),
                              "error": body.get("error"), "seconds": round(time.perf_counter() - start, 2)}
            except Exception as exc:  # recorded, not raised: the figures say what happened
                answers[i] = {"sql": sql, "http_status": None, "stopped_by": None,
                              "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - start, 2)}

        def sample() -> None:
            while not stop.is_set():
                rss.append(_status_mb(pid, "VmRSS"))
                time.sleep(SAMPLE_S)

        def probe() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    for path in lat:
                        start = time.perf_counter()
                        try:
                            r = client.get(f"{url}{path}")
                            if r.status_code != 200:
                                failed[path].append(f"HTTP {r.status_code}")
                        except httpx.HTTPError as exc:
                            failed[path].append(f"{type(exc).__name__}: {exc}")
                        lat[path].append(time.perf_counter() - start)
                    time.sleep(PROBE_PAUSE_S)

        watchers = [threading.Thread(target=sample, daemon=True), threading.Thread(target=probe, daemon=True)]
        for w in watchers:
            w.start()
        t0 = time.perf_counter()
        joins = [threading.Thread(target=join, args=(i, sql)) for i, sql in enumerate(JOINS)]
        for t in joins:
            t.start()
        for t in joins:
            t.join()
        seconds = time.perf_counter() - t0
        stop.set()
        for w in watchers:
            w.join(60)
        hwm_mb = _status_mb(pid, "VmHWM")  # spikes between samples too
        after = httpx.post(f"{url}/sql", json={"sql": "SELECT 1 AS x"}, timeout=60).json().get("rows")
        left = sorted(p.name for p in Path(tempfile.gettempdir()).glob(f"chipsweep-duckdb-{pid}-*"))
    finally:
        os.killpg(pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(home, ignore_errors=True)

    import duckdb

    budget_mb = args.concurrency * args.memory_mb
    bound_mb = base_mb + budget_mb
    peak_mb = max(hwm_mb, *rss, base_mb)
    queries = [a or {} for a in answers]
    result = {
        "notes": "three cross joins of the lake's `training` view with itself sent at once to POST /sql of "
                 "`chipsweep serve --no-dispatch` on 127.0.0.1 (API only: the server's memory is the SQL's); each "
                 "answer's HTTP status, the limit its error names (`stopped_by`) and the message; the server's "
                 "resident memory before the joins, its peak (sampled every 50 ms, and the kernel's high-water mark "
                 "VmHWM) against the bound: that footprint plus the SQL budget, CHIPSWEEP_SQL_CONCURRENCY x "
                 "CHIPSWEEP_SQL_MEMORY_MB (and with the CI test's 256 MB of slack); /healthz and GET /sweeps called in turn "
                 "throughout, their slowest answer",
        "machine": {"cpus": os.cpu_count(), "memory_mb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                                              / 2**20), "platform": platform.platform(),
                    "python": platform.python_version(), "duckdb": duckdb.__version__,
                    "load_average_before": load_before, "load_average_after": list(os.getloadavg())},
        "lake": {**lake, "rows_seen_by_sql": rows_seen, "count_seconds": round(count_s, 2)},
        "limits": {"CHIPSWEEP_SQL_MEMORY_MB": args.memory_mb, "CHIPSWEEP_SQL_TEMP_MB": args.temp_mb,
                   "CHIPSWEEP_SQL_CONCURRENCY": args.concurrency, "CHIPSWEEP_SQL_TIMEOUT_S": args.timeout_s},
        "queries": queries,
        "every_join_stopped_by_a_limit": all(q.get("stopped_by") in LIMIT_FIELDS and q.get("http_status") in
                                             (408, 413, 422, 429) for q in queries),
        "joins_seconds": round(seconds, 2),
        "server_rss_mb": {"before_joins": round(base_mb), "peak_sampled": round(max(rss, default=base_mb)),
                          "peak_high_water_mark": round(hwm_mb), "sql_budget": budget_mb, "bound": round(bound_mb),
                          "peak_over_footprint": round(peak_mb - base_mb), "within_bound": peak_mb < bound_mb,
                          "over_bound_mb": round(max(peak_mb - bound_mb, 0.0)),
                          "bound_with_ci_slack": round(bound_mb + CI_SLACK_MB),
                          "within_bound_with_ci_slack": peak_mb < bound_mb + CI_SLACK_MB, "samples": len(rss)},
        "latency_during_joins": {path: _latency(lat[path], failed[path]) for path in lat},
        "sql_after_joins": after,
        "duckdb_temp_dirs_left": left,
    }
    result["lake"] = {**result["lake"], "path": Path(result["lake"]["path"]).name}  # no machine paths in the repo
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
