"""The durable queue: sweeps and chunks recorded before work starts, chunk states and retries, the
dispatcher lease, restart recovery, the size cap and a billion-configuration sweep accepted."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from chipsweep.schemas.errors import SpecError
from chipsweep.service.dispatch import submit
from chipsweep.service.queue import Queue, QueueError
from tests.conftest import training_spec

CONTRACT_STATUS_KEYS = {"sweep_id", "version", "state", "configurations", "chunks_total", "chunks_done",
                        "chunks_failed", "rows_written", "configs_per_s"}


def add(queue: Queue, configurations: int = 1000, chunk_size: int = 300, name: str = "s"):  # type: ignore[no-untyped-def]
    record = {"spec": {"name": name, "kind": "training", "store": "all"}, "axes": [], "fixed": {}, "objectives": [],
              "hashes": {}, "catalog": {}}
    return queue.add_sweep(record=record, configurations=configurations, chunk_size=chunk_size, lake="/tmp/unused")


def test_queue_uses_sqlite_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    assert q._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sweep_and_all_chunks_are_recorded_before_any_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    row = add(q, 1000, 300)
    assert (row.version, row.chunks_total, row.state) == (1, 4, "queued")
    chunks = q._db().execute("SELECT chunk, start, stop, state FROM chunks ORDER BY chunk").fetchall()
    assert [tuple(c) for c in chunks] == [(0, 0, 300, "pending"), (1, 300, 600, "pending"),
                                          (2, 600, 900, "pending"), (3, 900, 1000, "pending")]
    assert add(q, 10, 300).version == 2  # the same name again is a new version
    status = q.status("s@1")
    assert set(status) >= CONTRACT_STATUS_KEYS and status["state"] == "queued"
    assert q.status("s")["version"] == 2  # a bare name is the latest version


def test_chunk_lifecycle_done_and_sweep_done(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    add(q, 600, 300)
    a, b = q.claim("w"), q.claim("w")
    assert (a.chunk, b.chunk, q.claim("w")) == (0, 1, None)
    assert q.sweep("s").state == "running"
    q.mark_done(a, rows=10, nbytes=100, seconds=0.1)
    assert q.sweep("s").state == "running"
    q.mark_done(b, rows=5, nbytes=50, seconds=0.1)
    s = q.status("s")
    assert (s["state"], s["chunks_done"], s["rows_written"], s["configurations_done"]) == ("done", 2, 15, 600)
    assert s["finished_at"] is not None


def test_sweeps_share_the_workers_a_small_one_is_not_stuck_behind_a_large_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Chunks went out strictly oldest sweep first: a 54-configuration sweep waited until every chunk of a big one
    submitted a second earlier had been handed out (with a 578M-configuration sweep queued, hours). The next chunk
    now comes from the active sweep with the fewest chunks running, the oldest among equals."""
    q = Queue(tmp_path / "q.db")
    add(q, 3000, 300, name="big")  # 10 chunks
    first = q.claim("w")
    add(q, 600, 300, name="tiny")  # 2 chunks, submitted while big runs
    got = [(t.name, t.chunk) for t in (q.claim("w"), q.claim("w"), q.claim("w"))]
    assert (first.name, first.chunk) == ("big", 0)
    assert got == [("tiny", 0), ("big", 1), ("tiny", 1)]  # one each while both are running
    q.mark_done(first, rows=1, nbytes=1, seconds=0.1)
    assert (q.claim("w").name, q.claim("w").name) == ("big", "big")  # tiny has nothing left to hand out


def test_evaluation_errors_retry_then_fail_with_the_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    add(q, 600, 300)
    for attempt in (1, 2, 3):
        t = q.claim("w")
        assert (t.chunk, t.attempts) == (0, attempt)
        state = q.mark_error(t, f"ValueError: boom {attempt}", max_attempts=3)
        assert state == ("failed" if attempt == 3 else "pending")
    last = q.claim("w")
    q.mark_done(last, 1, 1, 0.1)
    s = q.status("s")
    assert (s["state"], s["chunks_failed"], s["chunks_done"]) == ("failed", 1, 1)
    assert s["errors"] == [{"chunk": 0, "state": "failed", "attempts": 3, "error": "ValueError: boom 3"}]


def test_lost_workers_do_not_use_up_evaluation_attempts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    add(q, 300, 300)
    for _ in range(5):
        assert q.mark_error(q.claim("w"), "ActorDiedError", max_attempts=3, lost=True) == "pending"
    t = q.claim("w")
    assert t.attempts == 6
    assert q.mark_error(t, "ValueError", max_attempts=3) == "pending"


def test_restart_puts_running_chunks_back_and_takes_over_a_dead_lease(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "q.db"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    q = Queue(path)
    add(q, 900, 300)
    q.claim("old")
    q.claim("old")
    q._db().execute("INSERT INTO lease (id, owner, pid, host, heartbeat) VALUES (1, 'old', ?, ?, ?)",
                    (dead.pid, __import__("socket").gethostname(), time.time()))
    q2 = Queue(path)  # a restarted service: same file
    assert q2.acquire_lease("new")  # the holder's process is gone
    assert q2.requeue_running() == 2
    assert [q2.claim("new").chunk for _ in range(3)] == [0, 1, 2]


def test_a_live_lease_is_not_taken(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    assert q.acquire_lease("a")
    assert not q.acquire_lease("b")  # same host, this process alive, fresh heartbeat
    assert q.heartbeat("a") and not q.heartbeat("b")
    q.release_lease("a")
    assert q.acquire_lease("b")


def test_cancel_stops_dispatch_and_keeps_what_is_done(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    add(q, 900, 300)
    t = q.claim("w")
    q.cancel("s")
    q.mark_done(t, 7, 70, 0.1)  # in flight when cancelled: committed, kept
    assert q.claim("w") is None
    s = q.status("s")
    assert (s["state"], s["chunks_done"], s["rows_written"]) == ("cancelled", 1, 7)


def test_unknown_ids_name_what_exists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    add(q, 10, 10, name="alpha")
    with pytest.raises(QueueError, match="alpha"):
        q.status("beta")
    with pytest.raises(QueueError, match="NAME@VERSION"):
        q.status("alpha@x")
    # a version the sweep does not have: the sweep's own versions, not 'unknown sweep id'
    with pytest.raises(QueueError, match="sweep 'alpha' has no version 9; allowed: alpha@1"):
        q.status("alpha@9")


def test_sweep_above_the_cap_is_refused_with_the_cap_named(home) -> None:  # type: ignore[no-untyped-def]
    q = Queue(home.queue_path)
    with pytest.raises(SpecError) as info:
        submit(training_spec(), settings=home.with_(max_configs=5_000), queue=q)
    p = info.value.problems[0]
    assert p.field == "axes" and p.value == 6912 and "5,000" in p.allowed and "CHIPSWEEP_MAX_CONFIGS" in p.allowed
    assert q.sweeps() == []  # nothing queued


def test_invalid_spec_queues_nothing(home) -> None:  # type: ignore[no-untyped-def]
    q = Queue(home.queue_path)
    spec = training_spec()
    spec["axes"]["chip"] = ["no_such_chip"]
    with pytest.raises(SpecError):
        submit(spec, settings=home, queue=q)
    assert q.sweeps() == []


def test_a_billion_configuration_sweep_is_accepted(home) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec("billion")
    spec["axes"]["n_chips"] = {"range": {"start": 8, "stop": 8 * 25_000, "step": 8}}
    spec["axes"]["global_batch"] = {"range": {"start": 64, "stop": 64 * 40, "step": 64}}
    spec["fixed"].pop("global_batch")
    q = Queue(home.queue_path)
    t0 = time.perf_counter()
    row = submit(spec, settings=home.with_(chunk_size=2_000_000), queue=q)
    assert row.configurations == 4 * 3 * 25_000 * 4 * 4 * 3 * 2 * 40 >= 1_000_000_000
    assert row.chunks_total == -(-row.configurations // 2_000_000)
    assert tuple(q._db().execute("SELECT COUNT(*), MAX(stop) FROM chunks").fetchone()) == (row.chunks_total, row.configurations)
    assert time.perf_counter() - t0 < 10


def test_chunk_size_follows_the_cluster_when_none_is_set() -> None:
    """deploy/README.md: one driver stays below 10 % busy with chunks of >= 86,000 x workers
    configurations; powers of two from 2^20 to 2^29, never more than a sweep's share per worker."""
    from chipsweep.service.dispatch import auto_chunk_size
    from chipsweep.service.settings import Settings

    assert auto_chunk_size(2, 51_093_504) == 1 << 20  # this machine: the old default
    assert auto_chunk_size(320, 10**12) == 1 << 25  # 10 nodes x 32 cores
    assert auto_chunk_size(3200, 10**13) == 1 << 29  # 100 nodes x 32 cores
    assert auto_chunk_size(320, 10_000_000) == 1 << 20  # a small sweep on a big cluster: spread it
    assert auto_chunk_size(320, 2_000_000_000) == 1 << 22  # 6.25 M per worker: 477 chunks, every worker busy
    assert Settings.from_env({"CHIPSWEEP_HOME": "/tmp/x"}).chunk_size is None
    assert Settings.from_env({"CHIPSWEEP_HOME": "/tmp/x", "CHIPSWEEP_CHUNK_SIZE": "4096"}).chunk_size == 4096


def test_a_version_queued_before_records_is_resolved_once_and_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """chipsweep 0.1 stored a version's spec and base catalog, not its resolved axes: the first payload
    resolves it (overrides applied), stores the record, and later payloads read it back unchanged."""
    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.schemas.sweep import Sweep, validate

    catalog = load_catalog(use_env=False)
    spec = training_spec("legacy", overrides={"nvidia_h100_sxm": {"usd_per_hour": 9.0}})
    sweep = validate(spec, catalog)
    q = Queue(tmp_path / "q.db")
    row = q.add_sweep(record=sweep.record(), configurations=sweep.configurations, chunk_size=1000, lake="/tmp/x")
    with q._tx() as db:  # what a 0.1 queue holds: no resolved column value, the base catalog
        db.execute("UPDATE sweeps SET resolved = NULL, catalog = ? WHERE name = 'legacy'",
                   (json.dumps(catalog.snapshot()),))
    first = q.payload("legacy", row.version)["sweep"]
    assert q._db().execute("SELECT resolved FROM sweeps WHERE name = 'legacy'").fetchone()[0] is not None
    rebuilt = Sweep.from_record(first)
    assert rebuilt.catalog.chips["nvidia_h100_sxm"].usd_per_hour == 9.0  # the override, applied once
    assert rebuilt.hashes == sweep.hashes and rebuilt.axes_json() == sweep.axes_json()
    assert q.payload("legacy", row.version)["sweep"] == first


def test_an_actor_evaluates_the_recorded_sweep_without_resolving_it_again(home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.schemas import sweep as sweep_mod
    from chipsweep.service.actor import ChunkWorker

    queue = Queue(home.queue_path)
    row = submit(training_spec("once"), settings=home, queue=queue, chunk_size=1000)

    def resolving(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("resolved again")

    monkeypatch.setattr(sweep_mod, "_resolve_axis", resolving)
    meta = ChunkWorker().run(queue.payload(row.name, row.version), 0, 0, 1000)
    assert meta["rows"] == 1000 and not meta["skipped"]


def test_queue_is_durable_with_synchronous_full_unless_relaxed(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert Queue(tmp_path / "a.db")._db().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert Queue(tmp_path / "b.db", synchronous="normal")._db().execute("PRAGMA synchronous").fetchone()[0] == 1
    monkeypatch.setenv("CHIPSWEEP_QUEUE_SYNC", "normal")
    assert Queue(tmp_path / "c.db")._db().execute("PRAGMA synchronous").fetchone()[0] == 1


def test_a_chunk_the_lake_refused_waits_without_spending_an_attempt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    row = add(q, 600, 300)
    task = q.claim("w")
    assert task is not None
    for _ in range(10):  # ten refusals by the lake: still pending, never failed
        q.mark_wait(task, "writing chunk 0: EROFS: read-only file system", 0.0)
        task = q.claim("w")
        assert task is not None and task.chunk == 0
    q.mark_wait(task, "writing chunk 0: EROFS", 60.0)
    other = q.claim("w")
    assert other is not None and other.chunk == 1  # chunk 0 is not due for a minute
    assert q.claim("w") is None
    status = q.status(row.sweep_id)
    assert status["chunks_waiting"] == 1 and status["waiting_for"].startswith("waiting for the lake: writing chunk 0")
    q.mark_error(other, "ValueError: boom", max_attempts=1)
    assert q.status(row.sweep_id)["chunks_failed"] == 1
    attempts, waits = q._db().execute("SELECT attempts, waits FROM chunks WHERE chunk = 0").fetchone()
    assert (attempts, waits) == (11, 11)  # every claim ended in a wait: no evaluation attempt spent
    assert q.waiting_chunks() == 1 and q.next_due() is not None


def test_resume_reopens_failed_chunks_with_fresh_attempts_and_a_cancelled_sweep(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    row = add(q, 600, 300)
    t0 = q.claim("w")
    assert t0 is not None
    q.mark_error(t0, "boom", max_attempts=1)
    t1 = q.claim("w")
    assert t1 is not None
    q.mark_done(t1, 300, 10, 0.1)
    assert q.sweep(row.sweep_id).state == "failed"
    reopened, left = q.reopen(row.sweep_id)
    assert (reopened.state, left) == ("queued", 1)
    again = q.claim("w")
    assert again is not None and (again.chunk, again.attempts) == (0, 1)
    q.mark_done(again, 300, 10, 0.1)
    assert q.sweep(row.sweep_id).state == "done"
    assert q.reopen(row.sweep_id)[0].state == "done"  # nothing to reopen

    other = add(q, 900, 300, name="c")
    q.cancel(other.sweep_id)
    assert q.claim("w") is None
    reopened, left = q.reopen(other.sweep_id)
    assert (reopened.state, left) == ("queued", 3) and q.claim("w") is not None


def test_requeue_puts_done_chunks_back_and_the_version_back_in_the_queue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    row = add(q, 600, 300)
    for _ in range(2):
        task = q.claim("w")
        assert task is not None
        q.mark_done(task, 300, 10, 0.1)
    assert q.sweep(row.sweep_id).state == "done"
    assert q.requeue(row.name, row.version, [1], "missing file") == 1
    assert q.sweep(row.sweep_id).state == "queued"
    task = q.claim("w")
    assert task is not None and task.chunk == 1


def test_cancel_does_not_change_the_rate_after_the_fact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = Queue(tmp_path / "q.db")
    row = add(q, 900, 300)
    task = q.claim("w")
    assert task is not None
    time.sleep(0.2)
    q.mark_done(task, 300, 10, 0.1)
    last_done = q._db().execute("SELECT updated_at FROM chunks WHERE chunk = 0").fetchone()[0]
    started = q.sweep(row.sweep_id).started_at
    assert started is not None
    expected = 300 / (last_done - started)
    time.sleep(0.6)  # the sweep idles (say, the lake is down) ... then is cancelled
    q.cancel(row.sweep_id)
    rate = q.status(row.sweep_id)["configs_per_s"]
    assert rate == pytest.approx(expected, rel=1e-6)
    time.sleep(0.3)
    assert q.status(row.sweep_id)["configs_per_s"] == rate  # and stays what it was


def test_a_pause_between_chunks_is_not_counted_in_the_rate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Cancelled after one chunk and resumed 100 s later: the rate is over the work (4 s), not the wall (103 s),
    which showed 67.6 configurations/s for a sweep that ran at 170-183 before the pause."""
    from chipsweep.service.queue import idle_seconds

    assert idle_seconds([(0.0, 1.0), (101.0, 102.0), (102.0, 103.0)]) == pytest.approx(100.0)
    assert idle_seconds([(0.0, 1.0), (2.0, 3.0), (3.5, 4.5)]) == 0.0  # the gaps of a sweep at work stay
    q = Queue(tmp_path / "q.db")
    row = add(q, 900, 300)
    for _ in range(3):
        task = q.claim("w")
        assert task is not None
        q.mark_done(task, 300, 10, 1.0)
    t0 = 1_000_000.0
    with q._tx() as db:
        db.execute("UPDATE sweeps SET started_at = ? WHERE name = ?", (t0, row.name))
        for chunk, done in ((0, t0 + 1.0), (1, t0 + 102.0), (2, t0 + 103.0)):
            db.execute("UPDATE chunks SET updated_at = ?, seconds = 1.0 WHERE name = ? AND chunk = ?",
                       (done, row.name, chunk))
    assert q.status(row.sweep_id)["configs_per_s"] == pytest.approx(900 / 3.0)


def test_history_says_what_a_resubmitted_spec_changed_and_how_much_of_a_cancelled_version_ran(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A sweep submitted again with another axis showed 'what changed' blank (only re-runs recorded changes), and a
    cancelled version's chunk count read as if it had all run. Its versions now list the spec's changed fields, and
    how many of its chunks ran."""
    q = Queue(tmp_path / "q.db")

    def record(n_chips: list[int], tokens: float) -> dict[str, object]:
        spec = {"name": "s", "kind": "training", "store": "all", "axes": {"model": ["llama3_8b"], "n_chips": n_chips},
                "fixed": {"tokens": tokens}}
        return {"spec": spec, "axes": [], "fixed": {}, "objectives": [], "hashes": {}, "catalog": {}}

    q.add_sweep(record=record([64, 128], 1e11), configurations=900, chunk_size=300, lake="/tmp/unused")
    q.add_sweep(record=record([64], 1e11), configurations=900, chunk_size=300, lake="/tmp/unused")
    q.add_sweep(record=record([64], 2e11), configurations=900, chunk_size=300, lake="/tmp/unused")
    t = q.claim("w")
    q.mark_done(t, 7, 70, 0.1)
    q.cancel("s")
    v1, v2, v3 = q.versions("s")
    assert v1["changes"] == []
    assert v2["changes"] == [{"entry": "spec", "field": "axes.n_chips", "old": [64, 128], "new": [64]}]
    assert v3["changes"] == [{"entry": "spec", "field": "fixed.tokens", "old": 1e11, "new": 2e11}]
    done = [v for v in (v1, v2, v3) if v["chunks_run"]]
    assert len(done) == 1 and done[0]["chunks_evaluated_run"] == 1 and done[0]["chunks_evaluated"] == 3
