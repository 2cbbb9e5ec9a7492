"""Service metrics in the Prometheus text exposition format (version 0.0.4), read from the queue.

`GET /metrics` answers `render(collect(queue_path))`. Every number comes from the durable queue, so
the metrics survive restarts and agree with `chipsweep status`:

    chipsweep_sweeps{state}                      sweep versions by state (queued, running, done, ...)
    chipsweep_chunks{state}                      chunks by state (pending, running, done, failed; stopped: a
                                                 cancelled or failed sweep's chunks that wait for a resume)
    chipsweep_chunks_done_total                  chunks committed to the lake
    chipsweep_chunks_failed_total                chunks given up on after their attempts
    chipsweep_configurations_done_total          configurations evaluated in committed chunks
    chipsweep_rows_written_total                 result rows in committed chunks
    chipsweep_configurations_per_second          configurations committed over the last WINDOW_S
    chipsweep_lake_bytes                         bytes of committed fact files (dimension files excluded)
    chipsweep_chunk_seconds_sum / _count         worker seconds per committed chunk (evaluate + write)
    chipsweep_chunks_waiting                     chunks waiting out a lake back-off (an OS error of the lake)
    chipsweep_lake_available                     1 unless the last thing the lake did was refuse a chunk
    chipsweep_ray_up                             1 while the supervised Ray is up (served by `chipsweep serve`)
    chipsweep_ray_reconnecting                   1 while reconnecting to RAY_ADDRESS with back-off
    chipsweep_ray_restarts_total                 Ray failures the service recovered from (restart or reconnect)
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from chipsweep.schemas.vocab import CHUNK_STATES, SWEEP_STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WINDOW_S = 60.0  # the configurations/s gauge averages over this many seconds


@dataclass
class Snapshot:
    sweeps: dict[str, int] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)
    configurations_done: int = 0
    rows_written: int = 0
    lake_bytes: int = 0
    chunk_seconds: float = 0.0
    recent_configurations: int = 0
    window_s: float = WINDOW_S
    chunks_waiting: int = 0
    lake_available: bool = True
    ray: dict[str, Any] | None = None  # the supervisor's health (a server with a supervised Ray only)


def collect(queue_path: str | os.PathLike[str], *, now: float | None = None, window_s: float = WINDOW_S) -> Snapshot:
    """Counts from the queue database (read-only; a queue not created yet is all zeros)."""
    snap = Snapshot(sweeps=dict.fromkeys(SWEEP_STATES, 0), chunks=dict.fromkeys((*CHUNK_STATES, "stopped"), 0), window_s=window_s)
    if not os.path.exists(queue_path):
        return snap
    now = time.time() if now is None else now
    db = sqlite3.connect(f"file:{os.fspath(queue_path)}?mode=ro", uri=True, timeout=5.0)
    try:
        for state, n in db.execute("SELECT state, COUNT(*) FROM sweeps GROUP BY state"):
            snap.sweeps[state] = int(n)
        # a cancelled or failed sweep's chunks that never ran are 'stopped', not 'pending': no dispatcher will take
        # them until `chipsweep resume` (a backlog alert on pending fired for work that would never run)
        for state, n in db.execute(
                "SELECT CASE WHEN c.state = 'pending' AND s.state NOT IN ('queued', 'running')"
                " THEN 'stopped' ELSE c.state END, COUNT(*) FROM chunks c"
                " JOIN sweeps s ON s.name = c.name AND s.version = c.version GROUP BY 1"):
            snap.chunks[state] = int(n)
        configs, rows, nbytes, seconds, recent = db.execute(
            "SELECT SUM(stop - start), SUM(rows), SUM(bytes), SUM(seconds),"
            " SUM(CASE WHEN updated_at >= ? THEN stop - start ELSE 0 END)"
            " FROM chunks WHERE state = 'done'", (now - window_s,)).fetchone()
        try:
            snap.chunks_waiting = int(db.execute("SELECT COUNT(*) FROM chunks WHERE state = 'pending'"
                                                 " AND not_before > ?", (now,)).fetchone()[0])
            note = db.execute("SELECT value FROM notes WHERE key = 'lake'").fetchone()
            snap.lake_available = bool(json.loads(note[0]).get("ok", True)) if note else True
        except sqlite3.OperationalError:  # a queue from before waits and notes
            pass
    finally:
        db.close()
    snap.configurations_done = int(configs or 0)
    snap.rows_written = int(rows or 0)
    snap.lake_bytes = int(nbytes or 0)
    snap.chunk_seconds = float(seconds or 0.0)
    snap.recent_configurations = int(recent or 0)
    return snap


def render(snap: Snapshot) -> str:
    """The snapshot as Prometheus text: HELP and TYPE before each family, one sample a line."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    family("chipsweep_sweeps", "gauge", "Sweep versions by state.",
           [(f'{{state="{s}"}}', n) for s, n in sorted(snap.sweeps.items())])
    family("chipsweep_chunks", "gauge", "Chunks by state.",
           [(f'{{state="{s}"}}', n) for s, n in sorted(snap.chunks.items())])
    family("chipsweep_chunks_done_total", "counter", "Chunks committed to the lake.",
           [("", snap.chunks.get("done", 0))])
    family("chipsweep_chunks_failed_total", "counter", "Chunks marked failed after their attempts.",
           [("", snap.chunks.get("failed", 0))])
    family("chipsweep_configurations_done_total", "counter", "Configurations evaluated in committed chunks.",
           [("", snap.configurations_done)])
    family("chipsweep_rows_written_total", "counter", "Result rows in committed chunks.", [("", snap.rows_written)])
    family("chipsweep_configurations_per_second", "gauge",
           f"Configurations committed per second over the last {snap.window_s:g} s.",
           [("", snap.recent_configurations / snap.window_s if snap.window_s > 0 else 0.0)])
    family("chipsweep_lake_bytes", "gauge", "Bytes of committed fact files in the lake.", [("", snap.lake_bytes)])
    family("chipsweep_chunk_seconds", "summary", "Worker seconds per committed chunk (evaluate and write).",
           [("_sum", snap.chunk_seconds), ("_count", snap.chunks.get("done", 0))])
    family("chipsweep_chunks_waiting", "gauge", "Chunks waiting out a lake back-off (an OS error of the lake).",
           [("", snap.chunks_waiting)])
    family("chipsweep_lake_available", "gauge", "1 unless the last thing the lake did was refuse a chunk.",
           [("", int(snap.lake_available))])
    if snap.ray is not None:
        mode = snap.ray.get("mode", "local")
        family("chipsweep_ray_up", "gauge", "1 while the supervised Ray is up.",
               [(f'{{mode="{mode}"}}', int(snap.ray.get("state") == "up"))])
        family("chipsweep_ray_reconnecting", "gauge", "1 while reconnecting to RAY_ADDRESS with back-off.",
               [(f'{{mode="{mode}"}}', int(bool(snap.ray.get("reconnecting"))))])
        family("chipsweep_ray_restarts_total", "counter", "Ray failures recovered from (local restart or reconnect).",
               [(f'{{mode="{mode}"}}', int(snap.ray.get("restarts") or 0))])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
