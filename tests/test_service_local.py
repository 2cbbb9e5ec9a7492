"""The service end to end on a local Ray: queue -> actors -> Parquet committed -> status, through the
Python API and the embedded CLI; the frontier store checked against the full sweep in SQL."""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from chipsweep.lake import Lake
from chipsweep.service.cli import main as cli
from chipsweep.service.dispatch import Dispatcher, cancel, over, run_until, submit
from chipsweep.service.queue import Queue
from tests.conftest import assert_exact, read_facts, spec_of_size, training_spec, wait_for

pytestmark = pytest.mark.usefixtures("ray_local")


def run_sweep(home, spec, chunk_size: int, actors: int = 2):  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    row = submit(spec, settings=home, queue=queue, chunk_size=chunk_size)
    disp = Dispatcher(queue, home, actors=actors)
    try:
        run_until(queue, home, over(queue, row.sweep_id), dispatcher=disp)
        status = queue.status(row.sweep_id)
    finally:
        disp.close()
    return row, status


def test_sweep_runs_to_exactly_its_rows_with_dims_and_state(home, capfd) -> None:  # type: ignore[no-untyped-def]
    row, status = run_sweep(home, spec_of_size("e2e", 12), chunk_size=12_000)
    # the workers' constructor arguments stay inline: Ray's core worker logged an error line per actor to the user's
    # terminal for a handle argument kept in the object store (ray-project/ray#53727)
    assert "core_worker" not in capfd.readouterr().err
    # chunks never span two models or chips (4 x 3 here): 12 chunks of 6,912 under the 12,000 asked for
    assert row.configurations == 6912 * 12 and row.chunks_total == 12
    assert (status["state"], status["chunks_done"], status["chunks_failed"]) == ("done", 12, 0)
    table = read_facts(home.lake, "training", "e2e", 1)
    assert_exact(table, row.configurations)
    assert status["rows_written"] == row.configurations and status["configs_per_s"] > 0
    lake = Lake(home.lake)
    assert [p.rsplit("/", 1)[1] for p in lake.committed_parts("training", "e2e", 1)] == [f"part-{i:05d}.parquet" for i in range(12)]
    sweeps = pq.read_table(lake.dim_path("sweeps", "e2e", 1)).to_pylist()[0]
    assert sweeps["state"] == "done" and json.loads(sweeps["spec_json"])["name"] == "e2e"


def _frontier_sql(files: list[str]) -> set[int]:
    """The global (per model) frontier on time and cost, in SQL: distinct points sorted by time, kept
    when cheaper than every point before them."""
    sql = f"""
    WITH r AS (SELECT idx, model_id, time_to_train_days AS t, cost_usd AS c
               FROM read_parquet({files!r}) WHERE fits AND infeasible_reason = '' AND isfinite(t) AND isfinite(c)),
    p AS (SELECT DISTINCT model_id, t, c FROM r),
    f AS (SELECT model_id, t, c FROM (
            SELECT *, min(c) OVER (PARTITION BY model_id ORDER BY t, c ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
            FROM p) WHERE prev IS NULL OR c < prev)
    SELECT r.idx FROM r JOIN f USING (model_id, t, c)"""
    return {row[0] for row in duckdb.sql(sql).fetchall()}


def test_frontier_store_keeps_the_global_frontier_of_the_full_sweep(home) -> None:  # type: ignore[no-untyped-def]
    _, full = run_sweep(home, spec_of_size("full", 6), chunk_size=5000)
    _, front = run_sweep(home, spec_of_size("front", 6, store="frontier"), chunk_size=5000)
    lake = Lake(home.lake)
    want = _frontier_sql(lake.committed_parts("training", "full", 1))
    got = _frontier_sql(lake.committed_parts("training", "front", 1))
    assert want and got == want
    assert front["rows_written"] < full["rows_written"] / 20


def test_embedded_cli_submit_status_list_and_bad_spec(home, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(training_spec("cli-e2e", store="feasible")))
    assert cli(["submit", str(spec), "--wait", "--json", "--chunk-size", "2000"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= {"sweep_id", "version", "configurations", "rows_written", "seconds"}
    assert (out["sweep_id"], out["version"], out["configurations"]) == ("cli-e2e", 1, 6912)
    assert_exact(read_facts(home.lake, "training", "cli-e2e", 1), out["rows_written"])

    assert cli(["status", "cli-e2e", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert list(status)[:9] == ["sweep_id", "version", "state", "configurations", "chunks_total", "chunks_done",
                                "chunks_failed", "rows_written", "configs_per_s"]
    assert (status["state"], status["chunks_done"], status["chunks_total"]) == ("done", 12, 12)  # 4 models x 3 chips
    assert cli(["list"]) == 0 and "cli-e2e" in capsys.readouterr().out
    # without --wait and without a server this command runs the sweep to the end, and says so up front
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({**training_spec("cli-plain", store="feasible"),
                                 "axes": {**training_spec()["axes"], "model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"]}}))
    assert cli(["submit", str(plain), "--chunk-size", "2000"]) == 0
    captured = capsys.readouterr()
    assert "submitted cli-plain@1" in captured.out
    assert "running it here (no --server): this returns when the sweep is over" in captured.err
    assert cli(["status", "cli-plain", "--json"]) == 0 and json.loads(capsys.readouterr().out)["state"] == "done"

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: training\naxes: {model: [llama3_8b], chip: [h100], n_chips: []}\n"
                   "fixed: {global_batch: 8}\nspeed: fast\n")
    assert cli(["submit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "field 'speed'" in err and "allowed: name, kind, axes" in err
    assert cli(["status", "nope"]) == 2


def test_a_sweep_name_keeps_its_kind(home) -> None:  # type: ignore[no-untyped-def]
    """A training sweep's name reused for an inference spec was accepted as its next version: the lake's views then
    disagreed (latest_training kept version 1, `versions` marked both latest, frontier_diff said its rows left)."""
    from chipsweep.schemas.errors import SpecError

    queue = Queue(home.queue_path)
    submit(training_spec("same-name"), settings=home, queue=queue, chunk_size=10_000)
    serving = {"name": "same-name", "kind": "inference", "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"]}}
    with pytest.raises(SpecError) as err:
        submit(serving, settings=home, queue=queue, chunk_size=10_000)
    (p,) = err.value.problems
    assert (p.field, p.value) == ("kind", "inference") and "training" in p.allowed and "another name" in p.allowed
    assert [r.version for r in queue.sweeps()] == [1]  # nothing queued


def test_history_of_a_version_cancelled_before_it_ran_says_none_ran(home, capsys) -> None:  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    row = submit(training_spec("never-ran"), settings=home, queue=queue, chunk_size=2000)
    cancel(queue, row.sweep_id)
    assert cli(["history", "never-ran"]) == 0
    out = capsys.readouterr().out
    # it read "4 chunks evaluated (0 rows)"
    assert f"{row.chunks_total} chunks to evaluate" in out and f"0 of the {row.chunks_total} run so far (0 rows)" in out
    assert "chunks evaluated" not in out


def _cancel_after_two_chunks(home, name: str, factor: int, timeout: float) -> tuple[Queue, Any, int]:  # type: ignore[no-untyped-def]
    """A sweep run by two workers, cancelled once two of its chunks are done: (queue, its row, chunks done then)."""
    queue = Queue(home.queue_path)
    row = submit(spec_of_size(name, factor), settings=home, queue=queue, chunk_size=1000)
    disp = Dispatcher(queue, home, actors=2)
    t = threading.Thread(target=run_until, args=(queue, home, over(queue, row.sweep_id)), kwargs={"dispatcher": disp})
    t.start()
    try:
        wait_for(lambda: queue.status(row.sweep_id)["chunks_done"] >= 2, timeout, "two chunks done")
        at_cancel = queue.status(row.sweep_id)["chunks_done"]
        cancel(queue, row.sweep_id)
        t.join(timeout)
    finally:
        disp.close()
    return queue, row, at_cancel


def test_cancel_mid_sweep_keeps_committed_chunks(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHIPSWEEP_FAULT_DELAY_S", "0.3")
    queue, row, _ = _cancel_after_two_chunks(home, "cancel-me", 4, 60)
    status = queue.status(row.sweep_id)
    assert status["state"] == "cancelled" and 2 <= status["chunks_done"] < row.chunks_total
    table = read_facts(home.lake, "training", "cancel-me", 1)
    assert_exact(table, status["rows_written"])
    assert pq.read_table(Lake(home.lake).dim_path("sweeps", "cancel-me", 1)).column("state").to_pylist() == ["cancelled"]


def test_cancel_stops_the_chunks_already_handed_to_workers_that_have_not_begun(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Each worker holds a second chunk queued behind the one it runs: those still ran and committed after a cancel
    (2 -> 6 of 6 chunks done, minutes of work with large chunks). A cancel now withdraws them; they wait, pending,
    for a resume (their attempt not counted), and only the chunks already running finish."""
    monkeypatch.setenv("CHIPSWEEP_FAULT_DELAY_S", "2.0")
    queue, row, at_cancel = _cancel_after_two_chunks(home, "cancel-queued", 12, 120)
    status = queue.status(row.sweep_id)
    assert status["state"] == "cancelled"
    assert status["chunks_done"] <= at_cancel + 2  # at most the two that were running
    chunks = queue.chunk_rows("cancel-queued", 1)
    assert not [c for c in chunks if c["state"] == "running"]
    assert all(c["attempts"] == 0 for c in chunks if c["state"] == "pending")
    assert_exact(read_facts(home.lake, "training", "cancel-queued", 1), status["rows_written"])
    monkeypatch.delenv("CHIPSWEEP_FAULT_DELAY_S")  # the resume runs the rest at full speed: no 2 s per chunk
    assert cli(["resume", "cancel-queued"]) == 0
    assert queue.status(row.sweep_id)["chunks_done"] == row.chunks_total


def test_a_cli_sweep_on_its_own_local_ray_keeps_token_auth_without_the_notice_in_its_output(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With RAY_AUTH_MODE unset, Ray turns token authentication on for the local cluster a command starts and logs
    'Token authentication is enabled for this Ray cluster ...' into the output of every command (the README's demo
    printed it): the notice is gone, the token is still made and used."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(training_spec("auth", store="frontier")))
    env = subprocess_env(tmp_path / "home", HOME=str(tmp_path))
    env.pop("RAY_AUTH_MODE")
    done = subprocess.run([sys.executable, "-m", "chipsweep", "submit", str(spec), "--wait", "--json"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["state"] == "done"
    assert "Token authentication is enabled" not in done.stdout + done.stderr
    assert (tmp_path / ".ray" / "auth_token").is_file()  # the cluster ran with a token of its own


def test_the_live_cpu_count_reaches_healthz_when_it_moves(home) -> None:  # type: ignore[no-untyped-def]
    """/healthz showed the CPUs Ray had when it came up, long after a worker node had died: the dispatcher now
    looks up the cluster's live CPUs as it runs (every 30 s, busy or idle) and tells the supervisor when the count
    moves, which is what /healthz reports."""
    import io

    from chipsweep.service.ray_supervisor import DispatcherProcess

    told: list[int] = []
    disp = Dispatcher(Queue(home.queue_path), home, on_cpus=told.append)
    disp._checked_at = 0.0  # the last look is long past
    disp._observe_cpus()
    assert told == [2] and disp.cluster_cpus == 2  # the session's local Ray: 2 CPUs
    disp._observe_cpus()  # within 30 s of the last look: no new look, nothing told
    assert told == [2]
    supervisor = DispatcherProcess(home)
    events: list[dict[str, Any]] = []
    supervisor._read_events(io.BytesIO(b'{"event": "ray_up", "cpus": 2, "processes": {}}\n'
                                       b'{"event": "cpus", "cpus": 1}\n'), events)
    assert supervisor.health()["cpus"] == 1 and supervisor.state == "up"
