"""Runaway queries against a running `chipsweep serve` (API only, `--no-dispatch`): three concurrent
cross joins of a lake through POST /sql are each stopped by a limit (memory, temp space, concurrency or
time) with an error naming it; the server's resident memory stays under the configured bound (the
SQL budget, concurrency x memory limit, above its own footprint), /healthz and GET /sweeps keep
answering, and no DuckDB temp directory is left behind."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import lakegen
import numpy as np
import pytest

from tests.conftest import ServeProcess, Sessions, subprocess_env

MEMORY_MB, TEMP_MB, CONCURRENCY = 256, 256, 2
ROWS = 300_000  # 9e10 pairs per cross join: far past 256 MB of memory and 256 MB of spill
JOINS = [
    "SELECT a.idx, b.idx FROM training a, training b WHERE a.cost_usd < b.cost_usd ORDER BY a.cost_usd - b.cost_usd",
    "SELECT a.chip_id, list(b.idx) FROM training a, training b WHERE a.mfu > b.mfu GROUP BY a.chip_id",
    "SELECT count(DISTINCT (a.idx, b.idx)) FROM training a JOIN training b ON a.step_time_s <> b.step_time_s",
]


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_three_concurrent_cross_joins_are_each_stopped_by_a_limit_and_the_server_keeps_answering(
        tmp_path: Path, sessions: Sessions, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    rng = np.random.default_rng(11)
    parts = [lakegen.random_training(rng, ROWS // 4, distinct=50_000) for _ in range(4)]
    lakegen.write_version(str(home / "lake"), "training", "big", 1, parts, parts=4)
    env = subprocess_env(home, CHIPSWEEP_SQL_MEMORY_MB=str(MEMORY_MB), CHIPSWEEP_SQL_TEMP_MB=str(TEMP_MB),
                         CHIPSWEEP_SQL_CONCURRENCY=str(CONCURRENCY), CHIPSWEEP_SQL_TIMEOUT_S="90")
    server = ServeProcess(sessions, env, tmp_path / "serve.log", "--no-dispatch").start()
    assert server.proc is not None
    pid = server.proc.pid
    warm = httpx.post(f"{server.url}/sql", json={"sql": "SELECT count(*) AS n FROM training"}, timeout=60)
    assert warm.json()["rows"] == [{"n": ROWS}]
    base = _rss_mb(pid)
    bound = base + CONCURRENCY * MEMORY_MB + 256  # the SQL budget above the server's own footprint, and slack
    answers: list[httpx.Response] = []
    peak = [base]
    stalls: list[float] = []
    stop = threading.Event()

    def join(sql: str) -> None:
        answers.append(httpx.post(f"{server.url}/sql", json={"sql": sql}, timeout=180))

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb(pid))
            for path in ("/healthz", "/sweeps"):
                t0 = time.perf_counter()
                r = httpx.get(f"{server.url}{path}", timeout=10)
                assert r.status_code == 200
                stalls.append(time.perf_counter() - t0)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=join, args=(sql,)) for sql in JOINS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    seconds = time.monotonic() - t0
    stop.set()
    watcher.join(30)
    peak[0] = max(peak[0], _rss_mb(pid, "VmHWM"))  # the kernel's high-water mark: spikes between polls too
    bodies: list[dict[str, Any]] = [r.json() for r in answers]
    with capsys.disabled():
        print(f"\nsql limits: {len(answers)} joins stopped in {seconds:.1f} s: "
              + "; ".join(f"{r.status_code} {b['field']}" for r, b in zip(answers, bodies, strict=True))
              + f"; server RSS {base:.0f} MB -> peak {peak[0]:.0f} MB (bound {bound:.0f} MB); slowest /healthz or "
              f"/sweeps answer {max(stalls):.2f} s over {len(stalls)} calls")
    assert len(answers) == 3
    for r, body in zip(answers, bodies, strict=True):
        assert r.status_code in (408, 413, 422, 429), (r.status_code, body)
        assert body["field"] in ("memory_limit", "temp_limit", "concurrency", "timeout_s"), body
        assert "CHIPSWEEP_SQL_" in body["error"], body
    assert peak[0] < bound, (peak[0], bound)
    assert max(stalls) < 5.0
    assert not list(Path(tempfile.gettempdir()).glob(f"chipsweep-duckdb-{pid}-*"))
    assert httpx.post(f"{server.url}/sql", json={"sql": "SELECT 1 AS x"}, timeout=30).json()["rows"] == [{"x": 1}]
