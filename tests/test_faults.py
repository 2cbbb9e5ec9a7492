"""Fault injection, each ending with exactly the expected rows and every configuration index once, and
`chipsweep verify` finding nothing wrong: an actor killed mid-sweep; the worker node of a two-node Ray
cluster killed mid-sweep; the service process killed (SIGKILL) mid-sweep and restarted; a chunk whose
evaluation raises (and `resume` retrying it); a cancelled sweep continued; the raylet or the dashboard
agent of the service's Ray killed; the Ray cluster of RAY_ADDRESS killed and started again; an
embedded `submit --wait`, and a Python `chipsweep.submit(wait=True)`, whose raylet dies; Ray processes a dead service left behind; the lake made
unwritable mid-sweep."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest

from chipsweep.service.cli import main as cli
from chipsweep.service.dispatch import Dispatcher, over, run_until, submit
from chipsweep.service.queue import Queue, QueueError
from tests.conftest import (
    PYTHON,
    RAY,
    ServeProcess,
    Sessions,
    assert_exact,
    assert_verified,
    free_port,
    free_ports,
    kill_session,
    lake_unwritable,
    ray_node_ports,
    ray_owned,
    read_facts,
    session_pids,
    spec_of_size,
    subprocess_env,
    training_spec,
    wait_for,
)

pytestmark = pytest.mark.slow


def _run_in_thread(queue: Queue, home, row, disp: Dispatcher) -> threading.Thread:  # type: ignore[no-untyped-def]
    t = threading.Thread(target=run_until, args=(queue, home, over(queue, row.sweep_id)), kwargs={"dispatcher": disp},
                         daemon=True)
    t.start()
    return t


@pytest.mark.usefixtures("ray_local")
def test_actor_killed_mid_sweep(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import ray

    monkeypatch.setenv("CHIPSWEEP_FAULT_DELAY_S", "0.3")
    queue = Queue(home.queue_path)
    row = submit(spec_of_size("kill-actor", 6), settings=home, queue=queue, chunk_size=2000)
    disp = Dispatcher(queue, home, actors=2)
    t = _run_in_thread(queue, home, row, disp)
    try:
        wait_for(lambda: queue.status(row.sweep_id)["chunks_done"] >= 3, 90, "three chunks done")
        ray.kill(disp.actors[0], no_restart=False)  # Ray restarts it and retries its task
        t.join(180)
        assert not t.is_alive()
    finally:
        disp.close()
    status = queue.status(row.sweep_id)
    assert (status["state"], status["chunks_done"], status["chunks_failed"]) == ("done", row.chunks_total, 0)
    assert_exact(read_facts(home.lake, "training", "kill-actor", 1), row.configurations)
    assert_verified(home.queue_path, home.lake, "kill-actor", rows=row.configurations)


@pytest.mark.usefixtures("ray_local")
def test_chunk_whose_evaluation_raises_fails_alone_and_status_shows_it(home, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHIPSWEEP_FAULT_CHUNK", "2")
    queue = Queue(home.queue_path)
    row = submit(training_spec("faulty"), settings=home, queue=queue, chunk_size=1000)
    disp = Dispatcher(queue, home, actors=2)
    try:
        run_until(queue, home, over(queue, row.sweep_id), dispatcher=disp)
        status = queue.status(row.sweep_id)
    finally:
        disp.close()
    assert (status["state"], status["chunks_failed"], status["chunks_done"]) == ("failed", 1, row.chunks_total - 1)
    [err] = status["errors"]
    assert (err["chunk"], err["state"], err["attempts"]) == (2, "failed", home.max_attempts)
    assert "InjectedFault" in err["error"] and "chunk 2" in err["error"]
    table = read_facts(home.lake, "training", "faulty", 1)
    [lost] = [c for c in queue.chunk_rows("faulty", 1) if c["chunk"] == 2]
    assert_exact(table, row.configurations - (lost["stop"] - lost["start"]))
    idx = table.column("idx")
    assert pc.sum(pc.and_(pc.greater_equal(idx, lost["start"]), pc.less(idx, lost["stop"]))).as_py() in (0, None)
    assert cli(["status", "faulty"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "chunk 2 (failed, 3 attempts): InjectedFault" in out
    assert cli(["status", "faulty", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_failed"] == 1
    assert_verified(home.queue_path, home.lake, "faulty")  # a failed chunk is no missing file

    # `resume NAME` retries the failed chunk with fresh attempts (the fault is gone now) and finishes it
    monkeypatch.delenv("CHIPSWEEP_FAULT_CHUNK")
    assert cli(["resume", "faulty"]) == 0
    status = queue.status(row.sweep_id)
    assert (status["state"], status["chunks_done"], status["chunks_failed"]) == ("done", row.chunks_total, 0)
    assert_verified(home.queue_path, home.lake, "faulty", rows=row.configurations)


@pytest.mark.usefixtures("ray_local")
def test_resume_continues_a_cancelled_sweep_to_exactly_its_rows(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.service.dispatch import cancel

    monkeypatch.setenv("CHIPSWEEP_FAULT_DELAY_S", "0.2")
    queue = Queue(home.queue_path)
    row = submit(spec_of_size("cancel-resume", 3), settings=home, queue=queue, chunk_size=1000)
    disp = Dispatcher(queue, home, actors=2)
    t = _run_in_thread(queue, home, row, disp)
    try:
        wait_for(lambda: queue.status(row.sweep_id)["chunks_done"] >= 2, 60, "two chunks done")
        cancel(queue, row.sweep_id)
        t.join(60)
    finally:
        disp.close()
    assert queue.status(row.sweep_id)["state"] == "cancelled"
    assert_verified(home.queue_path, home.lake, "cancel-resume")
    assert cli(["resume", "cancel-resume"]) == 0
    status = queue.status(row.sweep_id)
    assert (status["state"], status["chunks_done"]) == ("done", row.chunks_total)
    assert_verified(home.queue_path, home.lake, "cancel-resume", rows=row.configurations)


def _ray_start(sessions: Sessions, args: list[str], env: dict[str, str]) -> int:
    """`ray start ...` in a session of its own; returns the session id its daemons keep."""
    proc = sessions.popen([RAY, "start", "--disable-usage-stats", *args], env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    return proc.pid


def test_worker_node_killed_mid_sweep(tmp_path: Path, sessions: Sessions) -> None:
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.5", CHIPSWEEP_CHUNK_SIZE="2000")
    port, client = free_ports(2)
    _ray_start(sessions, ["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                          f"--ray-client-server-port={client}", *ray_node_ports((port, client))], env)
    worker_sid = _ray_start(sessions, [f"--address=127.0.0.1:{port}", "--num-cpus=1", *ray_node_ports((port, client))],
                            env)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_of_size("node-loss", 6)))
    driver = sessions.popen([PYTHON, "-m", "chipsweep", "submit", str(spec), "--wait", "--json"],
                            {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    queue = Queue(home / "queue.db")

    def worker_node_committed() -> bool:
        if driver.poll() is not None:
            raise AssertionError(driver.communicate()[1][-3000:])
        try:
            rows = queue._db().execute("SELECT worker FROM chunks WHERE state = 'done'").fetchall()
        except Exception:  # the driver has not created the queue yet
            return False
        pids = {int(r[0].split(":")[1]) for r in rows if r[0]}  # host:pid:node
        return len(rows) >= 2 and bool(pids & set(session_pids(worker_sid)))

    wait_for(worker_node_committed, 180, "chunks committed by an actor on the worker node", every=0.3)
    kill_session(worker_sid)  # the worker node's raylet, its agents and its actor: SIGKILL
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == "done" and result["chunks_failed"] == 0
    status = queue.status("node-loss")
    assert status["chunks_done"] == status["chunks_total"]
    assert_exact(read_facts(str(home / "lake"), "training", "node-loss", 1), result["configurations"])
    assert_verified(home / "queue.db", str(home / "lake"), "node-loss", rows=result["configurations"])


def test_service_killed_mid_sweep_and_restarted(tmp_path: Path, sessions: Sessions) -> None:
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.3", CHIPSWEEP_CHUNK_SIZE="2000")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")

    def serve() -> subprocess.Popen[bytes]:
        proc = sessions.popen([PYTHON, "-m", "chipsweep", "serve", "--port", str(port), "--log-level", "warning"], env,
                              stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 120, "the server to answer /healthz", every=0.5)
        return proc

    first = serve()
    r = httpx.post(f"{url}/sweeps", json=spec_of_size("restart", 6), timeout=60)
    assert r.status_code == 201, r.text
    total = r.json()["chunks_total"]
    wait_for(lambda: httpx.get(f"{url}/sweeps/restart", timeout=5).json()["chunks_done"] >= 3, 120, "three chunks")
    kill_session(first.pid)  # SIGKILL: the service, its local Ray, its actors
    first.wait(30)
    queue = Queue(home / "queue.db")
    before = queue.status("restart")
    assert before["state"] == "running" and before["chunks_done"] < total

    serve()  # same CHIPSWEEP_HOME: takes the dead service's lease, re-queues its running chunks
    wait_for(lambda: httpx.get(f"{url}/sweeps/restart", timeout=5).json()["state"] == "done", 180, "the sweep to finish")
    status = httpx.get(f"{url}/sweeps/restart", timeout=5).json()
    assert (status["chunks_done"], status["chunks_failed"]) == (total, 0)
    assert_exact(read_facts(str(home / "lake"), "training", "restart", 1), status["configurations"])
    assert_verified(home / "queue.db", str(home / "lake"), "restart", rows=status["configurations"])


# ------------------------------------------------------------------------------------------------
# Ray as a supervised dependency (service/ray_supervisor.py)
# ------------------------------------------------------------------------------------------------
def _progress(server: ServeProcess, sweep: str) -> dict:  # type: ignore[type-arg]
    return dict(httpx.get(f"{server.url}/sweeps/{sweep}", timeout=10).json())


@pytest.mark.parametrize("victim", ["raylet", "dashboard_agent"])
def test_ray_process_killed_under_serve_degrades_restarts_ray_and_finishes_exactly_once(
        tmp_path: Path, sessions: Sessions, victim: str) -> None:
    import os
    import signal

    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.3", CHIPSWEEP_CHUNK_SIZE="2000")
    server = ServeProcess(sessions, env, tmp_path / "serve.log").start()
    health = server.wait_ray_up()
    assert health["status"] == "up" and health["ray"]["mode"] == "local"
    pid = health["ray"]["processes"][victim]
    r = httpx.post(f"{server.url}/sweeps", json=spec_of_size("ray-kill", 6), timeout=60)
    assert r.status_code == 201, r.text
    wait_for(lambda: _progress(server, "ray-kill")["chunks_done"] >= 3, 120, "three chunks")
    os.kill(pid, signal.SIGKILL)
    # the service keeps answering: degraded with the reason, then a fresh Ray, then the sweep finishes
    wait_for(lambda: server.health()["status"] == "degraded", 30, "health to turn degraded", every=0.1)
    degraded = server.health()
    assert any("died" in r or "exited" in r for r in degraded["reasons"]), degraded
    assert httpx.get(f"{server.url}/sweeps", timeout=10).status_code == 200
    up = server.wait_ray_up(180)
    assert up["ray"]["restarts"] >= 1 and up["ray"]["processes"][victim] != pid
    wait_for(lambda: _progress(server, "ray-kill")["state"] == "done", 240, "the sweep to finish")
    status = _progress(server, "ray-kill")
    assert (status["chunks_done"], status["chunks_failed"]) == (status["chunks_total"], 0)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'chipsweep_ray_restarts_total{mode="local"}' in metrics and 'chipsweep_ray_up{mode="local"} 1' in metrics
    assert "Ray lost" in server.log()
    assert_verified(home / "queue.db", str(home / "lake"), "ray-kill", rows=status["configurations"])


def test_ray_address_cluster_killed_service_reconnects_with_backoff(tmp_path: Path, sessions: Sessions) -> None:
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.3", CHIPSWEEP_CHUNK_SIZE="2000")
    port, client = free_ports(2)
    head = ["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false", f"--ray-client-server-port={client}"]
    cluster = _ray_start(sessions, [*head, *ray_node_ports((port, client))], env)
    server = ServeProcess(sessions, {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, tmp_path / "serve.log").start()
    assert server.wait_ray_up()["ray"]["mode"] == "address"
    r = httpx.post(f"{server.url}/sweeps", json=spec_of_size("reconnect", 6), timeout=60)
    assert r.status_code == 201, r.text
    wait_for(lambda: _progress(server, "reconnect")["chunks_done"] >= 3, 120, "three chunks")
    kill_session(cluster)  # the whole cluster: GCS, raylet, agents, actors
    wait_for(lambda: server.health()["status"] == "degraded", 60, "health to turn degraded")
    wait_for(lambda: server.health()["ray"]["attempts_in_a_row"] >= 2, 90, "two reconnection attempts")
    health = server.health()
    assert health["ray"]["reconnecting"] and "RAY_ADDRESS" in health["reasons"][0], health
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'chipsweep_ray_reconnecting{mode="address"} 1' in metrics
    assert httpx.get(f"{server.url}/sweeps/reconnect", timeout=10).status_code == 200
    _ray_start(sessions, [*head, *ray_node_ports((port, client))], env)  # the cluster comes back on the same address
    wait_for(lambda: _progress(server, "reconnect")["state"] == "done", 240, "the sweep to finish")
    assert server.health()["status"] == "up"
    status = _progress(server, "reconnect")
    assert (status["chunks_done"], status["chunks_failed"]) == (status["chunks_total"], 0)
    assert_verified(home / "queue.db", str(home / "lake"), "reconnect", rows=status["configurations"])


def _embedded(sessions: Sessions, env: dict[str, str], spec: Path) -> subprocess.Popen[str]:
    return sessions.popen([PYTHON, "-m", "chipsweep", "submit", str(spec), "--wait", "--json"], env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_raylet_when_running(home: Path, proc: subprocess.Popen[str], name: str) -> int:
    import os
    import signal

    queue = Queue(home / "queue.db")

    def running() -> bool:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-3000:])
        try:
            done = queue.status(name)["chunks_done"]
        except Exception:  # not recorded yet
            return False
        return done >= 2 and any("raylet" in cmd for cmd in ray_owned(home).values())

    wait_for(running, 180, "the embedded sweep to commit chunks", every=0.3)
    [raylet] = [pid for pid, cmd in ray_owned(home).items() if "/raylet/raylet" in cmd]
    os.kill(raylet, signal.SIGKILL)
    return raylet


def test_embedded_submit_wait_recovers_from_a_raylet_kill(tmp_path: Path, sessions: Sessions) -> None:
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.3", CHIPSWEEP_CHUNK_SIZE="2000")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_of_size("embedded", 6)))
    proc = _embedded(sessions, env, spec)
    _kill_raylet_when_running(home, proc, "embedded")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == "done" and result["chunks_failed"] == 0
    assert "Ray lost" in err
    assert not ray_owned(home)  # its Ray went with it
    assert_verified(home / "queue.db", str(home / "lake"), "embedded", rows=result["configurations"])


def test_python_submit_wait_recovers_from_a_raylet_kill(tmp_path: Path, sessions: Sessions) -> None:
    """`chipsweep.submit(spec, wait=True)` in a script runs the sweep as `submit --wait` does: its raylet
    killed mid-sweep, a fresh Ray finishes it, each configuration once."""
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.3", CHIPSWEEP_CHUNK_SIZE="2000")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_of_size("py-embedded", 6)))
    script = f"import json, chipsweep; print(json.dumps(chipsweep.submit({str(spec)!r}, wait=True)))"
    proc = sessions.popen([PYTHON, "-c", script], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _kill_raylet_when_running(home, proc, "py-embedded")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    status = json.loads(out.strip().splitlines()[-1])
    assert (status["state"], status["chunks_done"], status["chunks_failed"]) == ("done", status["chunks_total"], 0)
    assert "Ray lost" in err
    assert not ray_owned(home)  # its Ray went with it
    assert_verified(home / "queue.db", str(home / "lake"), "py-embedded", rows=status["configurations"])


def test_embedded_submit_wait_that_gives_up_says_so_and_resume_finishes(tmp_path: Path, sessions: Sessions) -> None:
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.3", CHIPSWEEP_CHUNK_SIZE="2000", CHIPSWEEP_RAY_RESTARTS="0")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_of_size("gives-up", 6)))
    proc = _embedded(sessions, env, spec)
    _kill_raylet_when_running(home, proc, "gives-up")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    assert "raylet" in err and "chipsweep resume gives-up@1" in err and "chunks committed (kept)" in err
    assert Queue(home / "queue.db").status("gives-up")["state"] in ("queued", "running")
    done = sessions.run([PYTHON, "-m", "chipsweep", "resume", "gives-up"], env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    status = Queue(home / "queue.db").status("gives-up")
    assert (status["state"], status["chunks_failed"]) == ("done", 0)
    assert_verified(home / "queue.db", str(home / "lake"), "gives-up", rows=status["configurations"])


def test_ray_processes_left_by_a_dead_service_are_killed_on_the_next_start(tmp_path: Path, sessions: Sessions) -> None:
    from chipsweep.service.ray_supervisor import OWNER_ENV, home_tag

    home = tmp_path / "home"
    env = subprocess_env(home)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a service pid that no longer exists
    orphan_env = {**env, OWNER_ENV: f"{home_tag(home)}:{gone.pid}:1"}
    port, client = free_ports(2)
    _ray_start(sessions, ["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                          f"--ray-client-server-port={client}", *ray_node_ports((port, client))], orphan_env)
    orphans = ray_owned(home)
    assert any("raylet" in cmd for cmd in orphans.values()), orphans
    server = ServeProcess(sessions, env, tmp_path / "serve.log").start()
    server.wait_ray_up()
    left = set(ray_owned(home)) & set(orphans)
    assert not left, {p: orphans[p] for p in left}
    assert "left by a dead chipsweep service" in server.log()
    assert_verified(home / "queue.db", str(home / "lake"))


# ------------------------------------------------------------------------------------------------
# the lake unwritable for a while: chunks wait with back-off, nothing fails
# ------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("ray_local")
def test_lake_unwritable_for_seconds_chunks_wait_and_the_sweep_finishes(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import time

    monkeypatch.setenv("CHIPSWEEP_FAULT_DELAY_S", "0.2")
    settings = home.with_(lake_backoff_s=4.0)
    queue = Queue(home.queue_path)
    row = submit(spec_of_size("outage", 6), settings=settings, queue=queue, chunk_size=2000)
    disp = Dispatcher(queue, settings, actors=2)
    t = _run_in_thread(queue, settings, row, disp)
    try:
        wait_for(lambda: queue.status(row.sweep_id)["chunks_done"] >= 2, 60, "two chunks done")
        with lake_unwritable(home.lake) as how:
            wait_for(lambda: queue.status(row.sweep_id)["chunks_waiting"] >= 1, 30, "a chunk to wait")
            # a chunk written just before the outage may settle after it and note the lake up: the next probe
            # notes it down again
            seen: list[dict] = []
            wait_for(lambda: not seen.append(queue.note("lake") or {"ok": True}) and not seen[-1]["ok"], 30,
                     "the lake noted down")
            note = seen[-1]
            assert any(w in note["reason"] for w in ("EROFS", "EPERM", "ENOTDIR")), (how, note)
            status = queue.status(row.sweep_id)
            assert status["waiting_for"].startswith("waiting for the lake") and status["chunks_failed"] == 0
            time.sleep(4)  # a few seconds of outage: without back-off every chunk would burn its attempts
            assert queue.status(row.sweep_id)["chunks_failed"] == 0
        t.join(180)
        assert not t.is_alive()
    finally:
        disp.close()
    status = queue.status(row.sweep_id)
    assert (status["state"], status["chunks_done"], status["chunks_failed"]) == ("done", row.chunks_total, 0)
    waits = queue._db().execute("SELECT SUM(waits), MAX(attempts - lost - waits) FROM chunks WHERE name = 'outage'").fetchone()
    assert 1 <= waits[0] <= 12 and waits[1] == 1, waits  # a few probes with back-off; no attempt spent
    assert queue.note("lake")["ok"]
    assert_verified(home.queue_path, home.lake, "outage", rows=row.configurations)


@pytest.mark.usefixtures("ray_local")
def test_submit_while_the_lake_is_unwritable_is_refused_with_503_and_nothing_queued(home) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.lake import LakeError

    queue = Queue(home.queue_path)
    Path(home.lake).mkdir(parents=True, exist_ok=True)
    with lake_unwritable(home.lake), pytest.raises(LakeError) as err:
        submit(training_spec("no-lake"), settings=home, queue=queue)
    assert err.value.http_status == 503 and err.value.field == "lake"
    assert "nothing was queued" in str(err.value)
    with pytest.raises(QueueError):
        queue.sweep("no-lake")
    assert_verified(home.queue_path, home.lake)  # nothing half-written left behind


@pytest.mark.usefixtures("ray_local")
def test_a_state_the_lake_missed_is_written_by_the_next_dispatcher(home) -> None:  # type: ignore[no-untyped-def]
    """A dispatcher killed between a sweep's last committed chunk and the lake's `dims/sweeps` write
    leaves the lake saying `running`: the next dispatcher to start writes `done`."""
    from chipsweep.lake import Lake

    queue = Queue(home.queue_path)
    row = submit(training_spec("missed-state"), settings=home, queue=queue, chunk_size=3000)
    run_until(queue, home, over(queue, row.sweep_id))
    lake = Lake(home.lake)
    lake.write_sweep_dim("missed-state", 1, kind="training", spec={}, hashes={}, configurations=row.configurations,
                         created_at=row.created_at, state="running")  # as a dispatcher killed at that moment left it
    queue._db().execute("UPDATE sweeps SET recorded_state = NULL")
    from chipsweep.service.verify import verify

    assert [p.kind for p in verify(queue, home.lake, "missed-state").problems] == ["dims"]
    run_until(queue, home, lambda: True)  # a dispatcher starts (nothing to run) ...
    assert_verified(home.queue_path, home.lake, "missed-state", rows=row.configurations)  # ... and the lake says done
