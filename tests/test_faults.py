"""Fault injection, each ending with exactly the expected rows and every configuration index once:
an actor killed mid-sweep; the worker node of a two-node Ray cluster killed mid-sweep; the service
process killed (SIGKILL) mid-sweep and restarted; a chunk whose evaluation raises."""

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
from chipsweep.service.queue import Queue
from tests.conftest import (
    PYTHON,
    RAY,
    Sessions,
    assert_exact,
    free_port,
    kill_session,
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
    assert_exact(table, row.configurations - 1000)
    idx = table.column("idx")
    assert pc.sum(pc.and_(pc.greater_equal(idx, 2000), pc.less(idx, 3000))).as_py() in (0, None)
    assert cli(["status", "faulty"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "chunk 2 (failed, 3 attempts): InjectedFault" in out
    assert cli(["status", "faulty", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_failed"] == 1


def _ray_start(sessions: Sessions, args: list[str], env: dict[str, str]) -> int:
    """`ray start ...` in a session of its own; returns the session id its daemons keep."""
    proc = sessions.popen([RAY, "start", "--disable-usage-stats", *args], env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    return proc.pid


def _ports() -> list[str]:
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]


def test_worker_node_killed_mid_sweep(tmp_path: Path, sessions: Sessions) -> None:
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.5", CHIPSWEEP_CHUNK_SIZE="2000")
    port = free_port()
    _ray_start(sessions, ["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                          f"--ray-client-server-port={free_port()}", *_ports()], env)
    worker_sid = _ray_start(sessions, [f"--address=127.0.0.1:{port}", "--num-cpus=1", *_ports()], env)
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
