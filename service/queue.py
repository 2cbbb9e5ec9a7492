"""The durable queue of sweeps and their chunks (SQLite in WAL mode at $CHIPSWEEP_HOME/queue.db).

A sweep version and every chunk `(sweep, version, start, stop)` are recorded in one transaction before
any work starts. Chunk states: pending -> running -> done | failed (with attempts and error text); a
chunk is marked done only after its Parquet file is committed. A dispatcher holds a lease (pid, host,
heartbeat) so two processes never dispatch at once; a new one takes over a dead holder's lease and
puts its running chunks back to pending, which is how a restarted service resumes.

A chunk the lake could not take (an OS error: EACCES, EROFS, ENOSPC, EIO) *waits*: back to pending with
`not_before` set, its `waits` counted apart, so a short outage never spends the attempts that only an
evaluation error may spend. `reopen` puts a failed sweep's failed chunks, or a cancelled sweep, back in
the queue (`chipsweep resume NAME`); `requeue` does it for chunks `chipsweep verify` found missing.

Durability: WAL with `synchronous=FULL` (CHIPSWEEP_QUEUE_SYNC=normal to relax). NORMAL survives a crash
of any process but may lose the last transactions on power loss or a kernel panic; what would be lost is
an acknowledged submit (a 201 for a sweep that then does not exist) or a chunk's done mark (harmless: the
file is found and not written twice). FULL fsyncs the WAL on each commit; the queue commits a few times
per chunk, and a chunk is at least a million configurations (~0.3 s), so the cost is a few fsyncs per
second -- far below what a sweep notices -- for a queue that never forgets what it acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipsweep.schemas.catalog import Catalog
from chipsweep.schemas.errors import ChipsweepError
from chipsweep.schemas.spec import parse_spec
from chipsweep.schemas.sweep import resolve
from chipsweep.workers.runtime import pid_alive
from chipsweep.workers.space import chunk_ranges

SweepState = str  # queued | running | done | failed | cancelled
LEASE_STALE_S = 15.0  # a dispatcher that has not beaten for this long is presumed dead
WAIT_PREFIX = "waiting for the lake: "  # a waiting chunk's error text starts with this
SYNC_MODES = ("full", "normal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    store TEXT NOT NULL,
    configurations INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunks_total INTEGER NOT NULL,
    lake TEXT NOT NULL,
    spec TEXT NOT NULL,
    axes TEXT NOT NULL,
    hashes TEXT NOT NULL,
    catalog TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS chunks (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    start INTEGER NOT NULL,
    stop INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    rows INTEGER,
    bytes INTEGER,
    seconds REAL,
    worker TEXT,
    updated_at REAL,
    PRIMARY KEY (name, version, chunk)
);
CREATE INDEX IF NOT EXISTS chunks_by_state ON chunks (state, name, version, chunk);
CREATE TABLE IF NOT EXISTS reruns (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    base_version INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, base_version)
);
CREATE TABLE IF NOT EXISTS notes (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
"""


class QueueError(ChipsweepError, LookupError):
    """An unknown sweep id (names the id and what exists)."""

    http_status = 404

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message, field="id", value=value,
                         allowed="NAME or NAME@VERSION of a submitted sweep (GET /sweeps, `chipsweep list`)")


class SweepStateError(ChipsweepError):
    """A sweep asked for what its state does not allow: cancelling a version that is already over (done, failed).
    HTTP answers 409 Conflict; the JSON body names the sweep and its state as well."""

    http_status = 409

    def __init__(self, message: str, *, sweep_id: str, state: str, allowed: str) -> None:
        super().__init__(message, field="state", value=state, allowed=allowed)
        self.sweep_id = sweep_id
        self.state = state

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "sweep_id": self.sweep_id, "state": self.state}


CANCELLABLE = ("queued", "running")  # the states `cancel` stops; a cancelled version stays cancelled


@dataclass(frozen=True)
class ChunkTask:
    name: str
    version: int
    chunk: int
    start: int
    stop: int
    attempts: int
    lost: int
    repriced_from: int | None = None  # re-price this version's part of the chunk instead of evaluating it


@dataclass(frozen=True)
class SweepRow:
    name: str
    version: int
    kind: str
    state: str
    store: str
    configurations: int
    chunk_size: int
    chunks_total: int
    lake: str
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def sweep_id(self) -> str:
        return f"{self.name}@{self.version}"


def parse_id(sweep_id: str) -> tuple[str, int | None]:
    """`name` (the latest version) or `name@version`."""
    name, sep, ver = sweep_id.partition("@")
    if sep and not ver.isdigit():
        raise QueueError(f"sweep id {sweep_id!r}: allowed: NAME or NAME@VERSION (VERSION an integer)", value=sweep_id)
    return name, int(ver) if sep else None


IDLE_GAP_S = 30.0  # a stretch between two chunks' work longer than this (and than 5 chunks' time) is a pause


def idle_seconds(spans: list[tuple[float, float]]) -> float:
    """The pauses between chunks' work (each span a chunk's compute: [committed - its seconds, committed]): the gaps
    between the merged spans longer than IDLE_GAP_S and five median chunks, so a sweep cancelled and resumed later
    is rated over its work, not over the wait."""
    if len(spans) < 2:
        return 0.0
    lengths = sorted(b - a for a, b in spans)
    limit = max(IDLE_GAP_S, 5.0 * lengths[len(lengths) // 2])
    idle, reach = 0.0, spans[0][1]
    for a, b in spans[1:]:
        if a - reach > limit:
            idle += a - reach
        reach = max(reach, b)
    return idle


class Queue:
    """The queue database; safe to share between threads (one SQLite connection per thread)."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sync = (synchronous or os.environ.get("CHIPSWEEP_QUEUE_SYNC") or "full").lower()
        self.synchronous = sync if sync in SYNC_MODES else "full"
        self._local = threading.local()
        self._db().executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Additive columns on older databases: a carried or re-priced chunk names its source version
        (re-runs); a version keeps its resolved axes (`Sweep.record()`, resolved once at submit)."""
        for table, column, sql_type in (("chunks", "carried_from", "INTEGER"), ("sweeps", "resolved", "TEXT"),
                                        ("chunks", "repriced_from", "INTEGER"),
                                        ("chunks", "waits", "INTEGER NOT NULL DEFAULT 0"),
                                        ("chunks", "not_before", "REAL"), ("sweeps", "recorded_state", "TEXT")):
            cols = {r[1] for r in self._db().execute(f"PRAGMA table_info({table})")}
            if column not in cols:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    self._db().execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    # ---- connection ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")  # FULL: see the module doc
            db.execute("PRAGMA busy_timeout=60000")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- sweeps -------------------------------------------------------------------------------
    def add_sweep(
        self,
        *,
        record: dict[str, Any],
        configurations: int,
        chunk_size: int,
        lake: str,
    ) -> SweepRow:
        """Record a new version of the resolved sweep `record` (`Sweep.record()`) and all its chunks,
        atomically; returns its row."""
        spec = record["spec"]
        name, kind, store = spec["name"], spec["kind"], spec.get("store", "all")
        chunk_size = max(1, int(chunk_size))
        ranges = chunk_ranges_of(record, configurations, chunk_size)
        total = len(ranges)
        now = time.time()
        with self._tx() as db:
            version = int(db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM sweeps WHERE name = ?", (name,)).fetchone()[0])
            seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sweeps").fetchone()[0])
            db.execute(
                "INSERT INTO sweeps (name, version, kind, store, configurations, chunk_size, chunks_total, lake, spec,"
                " axes, hashes, catalog, resolved, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, kind, store, configurations, chunk_size, total, lake, *_record_columns(record), now, seq),
            )
            db.executemany(
                "INSERT INTO chunks (name, version, chunk, start, stop, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                ((name, version, i, a, b, now) for i, (a, b) in enumerate(ranges)),
            )
        return self.sweep(f"{name}@{version}")

    def add_version(
        self,
        *,
        base: SweepRow,
        configurations: int,
        record: dict[str, Any],
        carried: dict[int, tuple[int, int]],
        trigger: str,
        changes: list[dict[str, Any]],
        repriced: Collection[int] = (),
        created_at: float | None = None,
    ) -> SweepRow | None:
        """Record the re-run of `base` as the next version, in state `preparing` (not dispatched until
        `release_version`); chunks in `carried` (chunk -> rows, bytes) are recorded done, copied from
        `base`; chunks in `repriced` are pending, to be re-priced from `base`'s rows. Returns None when `base` is no longer the latest version or was already re-run: the
        check and the insert are one BEGIN IMMEDIATE transaction, so racing re-runs make one version."""
        now = time.time() if created_at is None else created_at
        with self._tx() as db:
            # a partial re-run keeps its base's chunks (carried parts must hold the same configurations);
            # a whole one is cut afresh
            ranges = [(int(r[0]), int(r[1])) for r in db.execute(
                "SELECT start, stop FROM chunks WHERE name = ? AND version = ? ORDER BY chunk",
                (base.name, base.version))] if carried or repriced else []
            if not ranges or ranges[-1][1] != configurations:
                # (a resubmission that appended values to the first axis is cut afresh too: `rerun._grown` checked
                # that the base's chunks are the first of the new cut, so the carried ones keep their numbers)
                ranges = chunk_ranges_of(record, configurations, base.chunk_size)
            total = len(ranges)
            latest = int(db.execute("SELECT COALESCE(MAX(version), 0) FROM sweeps WHERE name = ?",
                                    (base.name,)).fetchone()[0])
            if latest != base.version:
                return None
            version = latest + 1
            seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sweeps").fetchone()[0])
            db.execute(
                "INSERT INTO sweeps (name, version, kind, state, store, configurations, chunk_size, chunks_total, lake,"
                " spec, axes, hashes, catalog, resolved, created_at, seq)"
                " VALUES (?, ?, ?, 'preparing', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (base.name, version, base.kind, base.store, configurations, base.chunk_size, total, base.lake,
                 *_record_columns(record), now, seq),
            )
            db.execute("INSERT INTO reruns (name, version, base_version, trigger, changes) VALUES (?, ?, ?, ?, ?)",
                       (base.name, version, base.version, trigger, json.dumps(changes)))
            rows = []
            for i, (a, b) in enumerate(ranges):
                c = carried.get(i)
                rows.append((base.name, version, i, a, b,
                             "done" if c else "pending", c[0] if c else None, c[1] if c else None,
                             base.version if c else None, base.version if i in repriced and not c else None, now))
            db.executemany(
                "INSERT INTO chunks (name, version, chunk, start, stop, state, rows, bytes, carried_from, repriced_from,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return self.sweep(f"{base.name}@{version}")

    def release_version(self, name: str, version: int, *, failed: bool = False) -> SweepRow:
        """A prepared version (carried files in place) becomes dispatchable; done at once if all carried.
        `failed`: its preparation failed; it is marked failed and never dispatched."""
        with self._tx() as db:
            if failed:
                db.execute("UPDATE sweeps SET state = 'failed', finished_at = ? WHERE name = ? AND version = ?"
                           " AND state = 'preparing'", (time.time(), name, version))
            db.execute("UPDATE sweeps SET state = 'queued' WHERE name = ? AND version = ? AND state = 'preparing'",
                       (name, version))
            self._settle(db, name, version)
        return self.sweep(f"{name}@{version}")

    def names(self) -> list[str]:
        """Every sweep name in the queue, sorted."""
        return [r[0] for r in self._db().execute("SELECT DISTINCT name FROM sweeps ORDER BY name")]

    def spec(self, name: str, version: int) -> dict[str, Any]:
        """The canonical spec a version was recorded with (without its catalog snapshot)."""
        row = self._db().execute("SELECT spec FROM sweeps WHERE name = ? AND version = ?", (name, version)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def axes(self, name: str, version: int) -> dict[str, Any]:
        """The resolved axes (name -> values) a version was recorded with."""
        row = self._db().execute("SELECT axes FROM sweeps WHERE name = ? AND version = ?", (name, version)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def chunk_rows(self, name: str, version: int) -> list[dict[str, Any]]:
        """Every chunk of a version: chunk, start, stop, state, attempts, rows, bytes, carried_from, repriced_from."""
        return [dict(r) for r in self._db().execute(
            "SELECT chunk, start, stop, state, attempts, rows, bytes, carried_from, repriced_from FROM chunks WHERE name = ? AND version = ?"
            " ORDER BY chunk", (name, version))]

    def versions(self, name: str) -> list[dict[str, Any]]:
        """The versions of a sweep, oldest first, with what triggered each and what changed."""
        db = self._db()
        out: list[dict[str, Any]] = []
        for r in db.execute(
                "SELECT s.version, s.state, s.created_at, s.finished_at, s.configurations, s.chunks_total,"
                " r.base_version, r.trigger, r.changes FROM sweeps s LEFT JOIN reruns r"
                " ON r.name = s.name AND r.version = s.version WHERE s.name = ? ORDER BY s.version", (name,)):
            how: dict[str, list[int]] = {"carried": [], "repriced": [], "evaluated": []}
            rows = {"carried": 0, "repriced": 0, "evaluated": 0}
            ran = {"repriced": 0, "evaluated": 0}  # chunks of each kind that have run (the rest are to run, or never will)
            for c in db.execute("SELECT chunk, state, rows, carried_from, repriced_from FROM chunks WHERE name = ?"
                                " AND version = ? ORDER BY chunk", (name, r["version"])):
                way = ("carried" if c["carried_from"] is not None
                       else "repriced" if c["repriced_from"] is not None else "evaluated")
                how[way].append(int(c["chunk"]))
                rows[way] += int(c["rows"] or 0)
                if way != "carried" and c["state"] == "done":
                    ran[way] += 1
            changes = json.loads(r["changes"]) if r["changes"] else []
            previous = self.spec(name, r["version"] - 1) if r["trigger"] is None and r["version"] > 1 else {}
            if previous:  # submitted again: what its spec changed from the version before it (none to compare after gc)
                changes = spec_changes(previous, self.spec(name, r["version"]))
            out.append({
                "sweep_id": name, "version": r["version"], "state": r["state"], "created_at": r["created_at"],
                "finished_at": r["finished_at"], "configurations": r["configurations"],
                "base_version": r["base_version"], "trigger": r["trigger"] or "submit",
                "changes": changes,
                "chunks_evaluated": len(how["evaluated"]), "chunks_repriced": len(how["repriced"]),
                "chunks_carried": len(how["carried"]), "chunks_run": sum(ran.values()),
                "chunks_evaluated_run": ran["evaluated"], "chunks_repriced_run": ran["repriced"],
                "rows_recomputed": rows["evaluated"], "rows_repriced": rows["repriced"], "rows": sum(rows.values()),
                # which chunks, as ranges ("0-3, 7"): history and the UI show them
                "chunk_ranges": {way: spans(ids) for way, ids in how.items()},
            })
        if not out:
            self.sweep(name)  # raises QueueError naming what exists
        return out

    def delete_version(self, name: str, version: int) -> None:
        """Forget one version (its chunks and re-run record); the lake files are the caller's to remove."""
        with self._tx() as db:
            db.execute("DELETE FROM chunks WHERE name = ? AND version = ?", (name, version))
            db.execute("DELETE FROM reruns WHERE name = ? AND version = ?", (name, version))
            db.execute("DELETE FROM sweeps WHERE name = ? AND version = ?", (name, version))

    def sweep(self, sweep_id: str) -> SweepRow:
        name, version = parse_id(sweep_id)
        db = self._db()
        if version is None:
            row = db.execute("SELECT * FROM sweeps WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        else:
            row = db.execute("SELECT * FROM sweeps WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None and version is not None:  # the sweep exists, not this version of it
            versions = [r[0] for r in db.execute("SELECT version FROM sweeps WHERE name = ? ORDER BY version", (name,))]
            if versions:
                raise QueueError(f"sweep {name!r} has no version {version}; allowed: "
                                 + ", ".join(f"{name}@{v}" for v in versions[-20:]), value=sweep_id)
        if row is None:
            known = [r[0] for r in db.execute("SELECT DISTINCT name FROM sweeps ORDER BY name LIMIT 50")]
            raise QueueError(f"unknown sweep id {sweep_id!r}; allowed: NAME or NAME@VERSION of a submitted sweep"
                             + (f" ({', '.join(known)})" if known else " (none submitted yet)"), value=sweep_id)
        return _sweep_row(row)

    def sweeps(self, limit: int = 200) -> list[SweepRow]:
        rows = self._db().execute("SELECT * FROM sweeps ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [_sweep_row(r) for r in rows]

    def payload(self, name: str, version: int) -> dict[str, Any]:
        """What a worker needs to evaluate the version's chunks: the resolved sweep (`Sweep.record()`,
        under `sweep`) and where the lake is."""
        row = self._db().execute("SELECT kind, spec, axes, hashes, catalog, resolved, lake FROM sweeps"
                                 " WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            raise QueueError(f"unknown sweep version {name}@{version}")
        if row["resolved"] is None:  # recorded before versions kept their resolved form: resolve it once now
            record = _legacy_record(json.loads(row["spec"]), json.loads(row["catalog"]))
            with self._tx() as db:
                db.execute("UPDATE sweeps SET hashes = ?, catalog = ?, resolved = ? WHERE name = ? AND version = ?",
                           (*_record_columns(record)[2:], name, version))
        else:
            resolved = json.loads(row["resolved"])
            record = {"spec": json.loads(row["spec"]), "hashes": json.loads(row["hashes"]),
                      "catalog": json.loads(row["catalog"]), **resolved}
        return {"name": name, "version": version, "kind": row["kind"], "lake": row["lake"], "sweep": record}

    def status(self, sweep_id: str) -> dict[str, Any]:
        """The CONTRACT.md status of one sweep version (plus detail: errors, rates, times)."""
        s = self.sweep(sweep_id)
        db = self._db()
        counts = {r["state"]: (r["n"], r["configs"], r["rows"] or 0, r["bytes"] or 0) for r in db.execute(
            "SELECT state, COUNT(*) AS n, SUM(stop - start) AS configs, SUM(rows) AS rows, SUM(bytes) AS bytes"
            " FROM chunks WHERE name = ? AND version = ? GROUP BY state", (s.name, s.version))}
        done = counts.get("done", (0, 0, 0, 0))
        failed = counts.get("failed", (0, 0, 0, 0))
        running = counts.get("running", (0, 0, 0, 0))
        errors = [
            {"chunk": r["chunk"], "state": r["state"], "attempts": r["attempts"], "error": r["error"]}
            for r in db.execute(
                "SELECT chunk, state, attempts, error FROM chunks WHERE name = ? AND version = ? AND error IS NOT NULL"
                " ORDER BY chunk LIMIT 20", (s.name, s.version))
        ]
        seconds = self._busy_seconds(s)
        waiting = db.execute(
            "SELECT COUNT(*) AS n, MAX(error) AS why FROM chunks WHERE name = ? AND version = ? AND state = 'pending'"
            " AND not_before IS NOT NULL AND not_before > ?", (s.name, s.version, time.time())).fetchone()
        return {
            "sweep_id": s.name,
            "version": s.version,
            "state": "queued" if s.state == "preparing" else s.state,  # a re-run placing its carried files
            "configurations": s.configurations,
            "chunks_total": s.chunks_total,
            "chunks_done": done[0],
            "chunks_failed": failed[0],
            "rows_written": done[2],
            "configs_per_s": (done[1] / seconds) if seconds > 0 else 0.0,
            "kind": s.kind,
            "store": s.store,
            "chunks_running": running[0],
            "configurations_done": done[1],
            "bytes_written": done[3],
            "seconds": round(seconds, 3),
            "created_at": s.created_at,
            "started_at": s.started_at,
            "finished_at": s.finished_at,
            "lake": s.lake,
            "chunks_carried": int(db.execute(  # committed as the previous version's files (a re-run, a resubmission)
                "SELECT COUNT(*) FROM chunks WHERE name = ? AND version = ? AND carried_from IS NOT NULL",
                (s.name, s.version)).fetchone()[0]),
            "chunks_waiting": int(waiting["n"] or 0),
            "waiting_for": waiting["why"] if waiting["n"] else None,
            "errors": errors,
        }

    def _busy_seconds(self, s: SweepRow) -> float:
        """Seconds the sweep's rate is measured over: from its start to now while it runs, else to its last
        committed chunk (the state change itself -- a cancel hours later -- does not dilute the rate), less the
        pauses between its chunks' work (cancelled, then resumed: the wait is not work)."""
        if not s.started_at:
            return 0.0
        spans = self._db().execute(
            "SELECT updated_at - COALESCE(seconds, 0), updated_at FROM chunks WHERE name = ? AND version = ?"
            " AND state = 'done' AND carried_from IS NULL AND updated_at IS NOT NULL ORDER BY 1",
            (s.name, s.version)).fetchall()
        if s.state in ("queued", "running", "preparing"):
            end = time.time()
        else:
            end = max(b for _, b in spans) if spans else (s.finished_at or time.time())
        return max(end - s.started_at - idle_seconds(spans), 0.0)

    def cancel(self, sweep_id: str) -> SweepRow:
        """Stop dispatching the sweep's chunks; what is committed stays. A cancelled version stays cancelled (a
        second cancel is harmless); one already over (done, failed) raises SweepStateError: nothing was stopped,
        and answering with its status read as if something had been."""
        s = self.sweep(sweep_id)
        with self._tx() as db:  # the check and the change in one transaction: a sweep ending meanwhile is refused
            db.execute("UPDATE sweeps SET state = 'cancelled', finished_at = COALESCE(finished_at, ?)"
                       f" WHERE name = ? AND version = ? AND state IN ({', '.join('?' * len(CANCELLABLE))})",
                       (time.time(), s.name, s.version, *CANCELLABLE))
            state = str(db.execute("SELECT state FROM sweeps WHERE name = ? AND version = ?",
                                   (s.name, s.version)).fetchone()[0])
        if state in ("done", "failed"):
            again = "; `chipsweep resume` retries its failed chunks" if state == "failed" else ""
            raise SweepStateError(f"sweep {s.name}@{s.version} is already {state}: nothing to cancel; allowed: only a "
                                  f"queued or running sweep can be cancelled{again}", sweep_id=f"{s.name}@{s.version}",
                                  state=state, allowed="a queued or running sweep")
        return self.sweep(s.sweep_id)

    # ---- chunks -------------------------------------------------------------------------------
    def claim(self, worker: str) -> ChunkTask | None:
        """The next pending chunk, marked running (attempts + 1): of the active sweep with the fewest chunks running,
        the oldest among equals. Sweeps share the workers: a small sweep submitted behind a large one starts as soon
        as a worker frees up, instead of waiting for every chunk of the large one to be handed out."""
        now = time.time()
        with self._tx() as db:
            sweep = db.execute(
                "SELECT s.name, s.version FROM sweeps s WHERE s.state IN ('queued', 'running')"
                " AND EXISTS (SELECT 1 FROM chunks c WHERE c.state = 'pending' AND c.name = s.name"
                " AND c.version = s.version AND (c.not_before IS NULL OR c.not_before <= ?))"
                " ORDER BY (SELECT COUNT(*) FROM chunks r WHERE r.state = 'running' AND r.name = s.name"
                " AND r.version = s.version), s.seq LIMIT 1", (now,)).fetchone()
            if sweep is None:
                return None
            row = db.execute(
                "SELECT name, version, chunk, start, stop, attempts, lost, repriced_from FROM chunks"
                " WHERE state = 'pending' AND name = ? AND version = ? AND (not_before IS NULL OR not_before <= ?)"
                " ORDER BY chunk LIMIT 1", (sweep[0], sweep[1], now)).fetchone()
            db.execute("UPDATE chunks SET state = 'running', attempts = attempts + 1, worker = ?, updated_at = ?"
                       " WHERE name = ? AND version = ? AND chunk = ?", (worker, now, row[0], row[1], row[2]))
            db.execute("UPDATE sweeps SET state = 'running', started_at = COALESCE(started_at, ?)"
                       " WHERE name = ? AND version = ? AND state = 'queued'", (now, row[0], row[1]))
        return ChunkTask(row[0], row[1], row[2], row[3], row[4], row[5] + 1, row[6], row[7])

    def mark_done(self, task: ChunkTask, rows: int, nbytes: int, seconds: float, worker: str = "") -> None:
        with self._tx() as db:
            db.execute("UPDATE chunks SET state = 'done', rows = ?, bytes = ?, seconds = ?, worker = ?, updated_at = ?,"
                       " not_before = NULL, error = CASE WHEN error LIKE 'waiting for the lake:%' THEN NULL ELSE error END"
                       " WHERE name = ? AND version = ? AND chunk = ?",
                       (rows, nbytes, seconds, worker, time.time(), task.name, task.version, task.chunk))
            self._settle(db, task.name, task.version)

    def unclaim(self, task: ChunkTask) -> None:
        """A claimed chunk that never ran (its sweep was cancelled while it waited on a worker): pending again, the
        attempt not counted, so `chipsweep resume` runs it."""
        with self._tx() as db:
            db.execute("UPDATE chunks SET state = 'pending', attempts = MAX(attempts - 1, 0), worker = NULL,"
                       " updated_at = ? WHERE name = ? AND version = ? AND chunk = ? AND state = 'running'",
                       (time.time(), task.name, task.version, task.chunk))

    def cancelled_among(self, keys: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (name, version) sweep versions are no longer active (cancelled, failed)."""
        if not keys:
            return set()
        with self._tx() as db:
            return {(str(n), int(v)) for n, v in db.execute(
                "SELECT name, version FROM sweeps WHERE state NOT IN ('queued', 'running', 'preparing')").fetchall()
                if (str(n), int(v)) in keys}

    def mark_error(self, task: ChunkTask, error: str, *, max_attempts: int, lost: bool = False,
                   max_lost: int = 20) -> str:
        """Record an attempt's error: back to pending while attempts remain, else failed. `lost` attempts
        (the worker or its node died) are counted apart with their own, larger allowance."""
        with self._tx() as db:
            row = db.execute("SELECT attempts, lost, waits FROM chunks WHERE name = ? AND version = ? AND chunk = ?",
                             (task.name, task.version, task.chunk)).fetchone()
            attempts, lost_n = int(row[0]), int(row[1]) + (1 if lost else 0)
            evaluation_attempts = attempts - lost_n - int(row[2])
            give_up = lost_n >= max_lost if lost else evaluation_attempts >= max_attempts
            state = "failed" if give_up else "pending"
            db.execute("UPDATE chunks SET state = ?, lost = ?, error = ?, updated_at = ?"
                       " WHERE name = ? AND version = ? AND chunk = ?",
                       (state, lost_n, error[-4000:], time.time(), task.name, task.version, task.chunk))
            self._settle(db, task.name, task.version)
        return state

    def mark_wait(self, task: ChunkTask, reason: str, delay_s: float) -> None:
        """The lake could not take the chunk (a transient OS error): pending again, not before `delay_s`
        from now; the attempt counts as a wait, not against `max_attempts`."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE chunks SET state = 'pending', waits = waits + 1, not_before = ?, error = ?, updated_at = ?"
                       " WHERE name = ? AND version = ? AND chunk = ? AND state = 'running'",
                       (now + delay_s, (WAIT_PREFIX + reason)[:4000], now, task.name, task.version, task.chunk))

    def reopen(self, sweep_id: str) -> tuple[SweepRow, int]:
        """`chipsweep resume NAME`: a failed version's failed chunks go back to pending with fresh attempts,
        a cancelled version is queued again (its committed chunks are kept); returns the row and how many
        chunks are left to run. A version in any other state is returned as it is."""
        s = self.sweep(sweep_id)
        if s.state not in ("failed", "cancelled"):
            return s, 0
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE chunks SET state = 'pending', attempts = 0, lost = 0, waits = 0, not_before = NULL,"
                       " updated_at = ? WHERE name = ? AND version = ? AND state = 'failed'", (now, s.name, s.version))
            left = db.execute("SELECT COUNT(*) FROM chunks WHERE name = ? AND version = ? AND state IN"
                              " ('pending', 'running')", (s.name, s.version)).fetchone()[0]
            db.execute("UPDATE sweeps SET state = ?, finished_at = NULL WHERE name = ? AND version = ?",
                       ("queued" if left else "done", s.name, s.version))
            if not left:
                db.execute("UPDATE sweeps SET finished_at = ? WHERE name = ? AND version = ?", (now, s.name, s.version))
        return self.sweep(s.sweep_id), int(left)

    def requeue(self, name: str, version: int, chunks: list[int], reason: str) -> int:
        """Chunks `chipsweep verify --repair` found missing or damaged in the lake: pending again (fresh
        attempts), and a done or failed version queued again so a dispatcher finishes it."""
        if not chunks:
            return 0
        now = time.time()
        with self._tx() as db:
            n = 0
            for c in chunks:
                n += db.execute("UPDATE chunks SET state = 'pending', attempts = 0, lost = 0, waits = 0, not_before = NULL,"
                                " rows = NULL, bytes = NULL, carried_from = NULL, error = ?, updated_at = ?"
                                " WHERE name = ? AND version = ? AND chunk = ?",
                                (reason[:4000], now, name, version, c)).rowcount
            db.execute("UPDATE sweeps SET state = 'queued', finished_at = NULL WHERE name = ? AND version = ?"
                       " AND state IN ('done', 'failed')", (name, version))
        return n

    # ---- the state the lake records (dims/sweeps) ------------------------------------------------
    def set_recorded(self, name: str, version: int, state: str) -> None:
        """The lake's `dims/sweeps` row of a version now says `state`."""
        with self._tx() as db:
            db.execute("UPDATE sweeps SET recorded_state = ? WHERE name = ? AND version = ?", (state, name, version))

    def recorded_state(self, name: str, version: int) -> str | None:
        """The state the lake was last told for a version (None: not yet)."""
        row = self._db().execute("SELECT recorded_state FROM sweeps WHERE name = ? AND version = ?",
                                 (name, version)).fetchone()
        return None if row is None else row[0]

    def unrecorded(self) -> list[str]:
        """Versions in a final state whose state the lake does not record yet (a process killed between
        the last chunk and that write, or a lake that refused it)."""
        return [f"{r[0]}@{r[1]}" for r in self._db().execute(
            "SELECT name, version FROM sweeps WHERE state IN ('done', 'failed', 'cancelled')"
            " AND (recorded_state IS NULL OR recorded_state <> state) ORDER BY seq")]

    # ---- notes: what the dispatcher wants the service (another process) to know -----------------
    def set_note(self, key: str, value: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO notes (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                       " value = excluded.value, updated_at = excluded.updated_at", (key, json.dumps(value), time.time()))

    def note(self, key: str) -> dict[str, Any] | None:
        row = self._db().execute("SELECT value, updated_at FROM notes WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return {**json.loads(row[0]), "updated_at": row[1]}

    def waiting_chunks(self) -> int:
        """Chunks waiting out a lake back-off right now."""
        return int(self._db().execute("SELECT COUNT(*) FROM chunks WHERE state = 'pending' AND not_before > ?",
                                      (time.time(),)).fetchone()[0])

    def next_due(self) -> float | None:
        """When the earliest waiting chunk of an active sweep may be claimed (epoch seconds), or None."""
        row = self._db().execute(
            "SELECT MIN(c.not_before) FROM chunks c JOIN sweeps s ON s.name = c.name AND s.version = c.version"
            " WHERE c.state = 'pending' AND s.state IN ('queued', 'running') AND c.not_before > ?",
            (time.time(),)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def requeue_running(self) -> int:
        """Chunks a dead dispatcher left running go back to pending (their attempt counted as lost)."""
        with self._tx() as db:
            cur = db.execute("UPDATE chunks SET state = 'pending', lost = lost + 1, updated_at = ? WHERE state = 'running'",
                             (time.time(),))
            return cur.rowcount

    def pending_chunks(self, name: str, version: int) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM chunks WHERE name = ? AND version = ? AND state IN"
                                      " ('pending', 'running')", (name, version)).fetchone()[0])

    def active(self) -> bool:
        """Whether any sweep has chunks left to dispatch."""
        row = self._db().execute(
            "SELECT 1 FROM chunks c JOIN sweeps s ON s.name = c.name AND s.version = c.version"
            " WHERE c.state = 'pending' AND s.state IN ('queued', 'running') LIMIT 1").fetchone()
        return row is not None

    def _settle(self, db: sqlite3.Connection, name: str, version: int) -> None:
        """Finish the sweep when no chunk is pending or running: done, or failed if any chunk failed."""
        left = db.execute("SELECT COUNT(*) FROM chunks WHERE name = ? AND version = ? AND state IN ('pending', 'running')",
                          (name, version)).fetchone()[0]
        if left:
            return
        failed = db.execute("SELECT COUNT(*) FROM chunks WHERE name = ? AND version = ? AND state = 'failed'",
                            (name, version)).fetchone()[0]
        db.execute("UPDATE sweeps SET state = ?, finished_at = ? WHERE name = ? AND version = ? AND state IN ('queued', 'running')",
                   ("failed" if failed else "done", time.time(), name, version))

    # ---- the dispatcher lease -----------------------------------------------------------------
    def acquire_lease(self, owner: str) -> bool:
        """Take the dispatcher lease if free, stale, held by a dead process on this host, or ours."""
        now = time.time()
        host = socket.gethostname()
        with self._tx() as db:
            row = db.execute("SELECT owner, pid, host, heartbeat FROM lease WHERE id = 1").fetchone()
            if row is not None and row["owner"] != owner:
                alive = now - row["heartbeat"] < LEASE_STALE_S
                if alive and row["host"] == host:
                    alive = pid_alive(int(row["pid"]))
                if alive:
                    return False
            db.execute("INSERT INTO lease (id, owner, pid, host, heartbeat) VALUES (1, ?, ?, ?, ?)"
                       " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,"
                       " host = excluded.host, heartbeat = excluded.heartbeat", (owner, os.getpid(), host, now))
        return True

    def heartbeat(self, owner: str) -> bool:
        with self._tx() as db:
            cur = db.execute("UPDATE lease SET heartbeat = ? WHERE id = 1 AND owner = ?", (time.time(), owner))
            return cur.rowcount == 1

    def release_lease(self, owner: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM lease WHERE id = 1 AND owner = ?", (owner,))

    def lease_holder(self) -> dict[str, Any] | None:
        row = self._db().execute("SELECT owner, pid, host, heartbeat FROM lease WHERE id = 1").fetchone()
        if row is None:
            return None
        d = dict(row)
        d["alive"] = time.time() - d["heartbeat"] < LEASE_STALE_S and (
            d["host"] != socket.gethostname() or pid_alive(int(d["pid"])))
        return d


def spec_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """What a resubmitted spec changed from the version before, one entry per changed field (dotted: `axes.n_chips`,
    `fixed.tokens`), as `history` lists a re-run's catalog changes: {"entry": "spec", "field", "old", "new"} (None
    where a field is added or removed). The name is the sweep's own and never differs."""
    out: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new), key=str):
        if not prefix and key == "name":
            continue
        a, b = old.get(key), new.get(key)
        field = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += spec_changes(a, b, field + ".")
        elif a != b:
            out.append({"entry": "spec", "field": field, "old": a, "new": b})
    return out


def chunk_ranges_of(record: dict[str, Any], configurations: int, chunk_size: int) -> list[tuple[int, int]]:
    """A version's chunks: at most `chunk_size` configurations each, never across two chips, models or
    clusters (`workers.space.chunk_ranges` over the record's axes, catalog axes first)."""
    sizes = [len(a["values"]) for a in record.get("axes", [])]
    if not sizes or math.prod(sizes) != configurations:  # no axes recorded: plain ranges
        size = max(1, int(chunk_size))
        return [(a, min(a + size, configurations)) for a in range(0, max(configurations, 1), size)]
    return chunk_ranges(sizes, [bool(a.get("ref")) for a in record["axes"]], chunk_size)


def _record_columns(record: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """A resolved sweep as the queue's columns: spec, axes (name -> values), hashes, catalog (the
    effective one), resolved (axis codes, fixed settings, objectives)."""
    resolved = {k: record[k] for k in ("axes", "fixed", "objectives")}
    axes = {a["name"]: a["values"] for a in record["axes"]}
    return (json.dumps(record["spec"]), json.dumps(axes), json.dumps(record["hashes"]), json.dumps(record["catalog"]),
            json.dumps(resolved))


def _legacy_record(spec: dict[str, Any], catalog: dict[str, Any]) -> dict[str, Any]:
    """The record of a version queued by chipsweep 0.1, which kept only the spec and the base catalog."""
    return resolve(parse_spec(spec), Catalog.from_snapshot(catalog)).record()



def _sweep_row(r: sqlite3.Row) -> SweepRow:
    return SweepRow(r["name"], r["version"], r["kind"], r["state"], r["store"], r["configurations"], r["chunk_size"],
                    r["chunks_total"], r["lake"], r["created_at"], r["started_at"], r["finished_at"])


def spans(ids: list[int]) -> str:
    """Sorted chunk numbers as ranges: [0, 1, 2, 3, 7] -> "0-3, 7" ("" when none)."""
    out: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ", ".join(out)
