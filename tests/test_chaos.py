"""Chaos: a multi-million-configuration sweep under `chipsweep serve` while, at random moments, a
`ChunkWorker` is killed, the raylet is killed, the service is killed (SIGKILL, with its Ray) and
restarted, and the lake is made unwritable for a few seconds (a read-only bind mount as root: chmod
does not stop root; else `chattr +i`; see conftest.lake_unwritable). The sweep must end `done` and
`chipsweep verify` must find exactly `configurations` rows, every index once, no stray file. The test
prints the seed, the faults injected and the faults survived (CHIPSWEEP_CHAOS_SEED=N replays a run)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from chipsweep.service.queue import Queue
from tests.conftest import (
    ServeProcess,
    Sessions,
    assert_verified,
    lake_unwritable,
    ray_owned,
    spec_of_size,
    subprocess_env,
    wait_for,
)

pytestmark = pytest.mark.slow

FAULTS = ("worker", "raylet", "service", "lake", "worker", "lake")
SIZE = 600  # x 6,912 = 4,147,200 configurations
CHUNK = 32_768  # 127 chunks: long enough for every fault to land while the sweep runs


def test_chaos_sweep_under_serve_ends_done_with_exactly_its_rows(tmp_path: Path, sessions: Sessions,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("CHIPSWEEP_CHAOS_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    home = tmp_path / "home"
    env = subprocess_env(home, CHIPSWEEP_FAULT_DELAY_S="0.25", CHIPSWEEP_CHUNK_SIZE=str(CHUNK),
                         CHIPSWEEP_LAKE_BACKOFF_S="2", CHIPSWEEP_ACTORS="2")
    server = ServeProcess(sessions, env, tmp_path / "serve.log").start()
    server.wait_ray_up()
    r = httpx.post(f"{server.url}/sweeps", json=spec_of_size("chaos", SIZE), timeout=60)
    assert r.status_code == 201, r.text
    configurations, chunks = r.json()["configurations"], r.json()["chunks_total"]
    queue = Queue(home / "queue.db")
    started = time.monotonic()

    def status() -> dict:  # type: ignore[type-arg]
        return dict(queue.status("chaos"))  # from the queue itself: the server may be down right now

    def finished() -> bool:
        return status()["state"] in ("done", "failed", "cancelled")

    def kill_a_worker() -> None:
        def workers() -> list[int]:
            return [pid for pid, cmd in ray_owned(home).items() if "ray::ChunkWorker" in cmd]

        wait_for(lambda: bool(workers()) or finished(), 60, "a ChunkWorker to kill")
        for pid in workers()[:1]:
            os.kill(pid, signal.SIGKILL)

    def kill_the_raylet() -> None:
        os.kill(server.wait_ray_up()["ray"]["processes"]["raylet"], signal.SIGKILL)

    def restart_the_service() -> None:
        server.kill()  # the service, its dispatcher, its Ray: SIGKILL
        server.start()
        server.wait_ray_up()

    def lake_outage() -> None:
        with lake_unwritable(home / "lake") as how:
            outage.append(how)
            time.sleep(rng.uniform(2.0, 4.0))

    outage: list[str] = []
    inject = {"worker": kill_a_worker, "raylet": kill_the_raylet, "service": restart_the_service,
              "lake": lake_outage}
    faults = list(FAULTS)
    rng.shuffle(faults)
    injected: list[str] = []
    survived: list[str] = []
    for fault in faults:
        base = status()["chunks_done"]
        step = rng.randint(1, 4)  # a random moment: a few chunks after the last fault, then a random pause
        wait_for(lambda b=base, s=step: status()["chunks_done"] >= b + s or finished(), 180,  # type: ignore[misc]
                 f"progress before the {fault} fault")
        time.sleep(rng.uniform(0.0, 1.5))
        if finished():
            break
        inject[fault]()
        injected.append(fault)
        after = status()["chunks_done"]
        wait_for(lambda a=after: status()["chunks_done"] > a or finished(), 180,  # type: ignore[misc]
                 f"chunks committed again after the {fault} fault")
        survived.append(fault)
    wait_for(finished, 300, "the sweep to finish", every=0.5)
    final = status()
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\nchaos: seed {seed}: {len(injected)} faults injected ({', '.join(injected)}), {len(survived)} "
              f"survived; lake outage by {', '.join(outage) or '-'}; {configurations:,} configurations in {chunks} "
              f"chunks, {final['state']} in {seconds:.0f} s")
    assert (final["state"], final["chunks_done"], final["chunks_failed"]) == ("done", chunks, 0), final
    assert sorted(injected) == sorted(FAULTS) and survived == injected, (injected, survived)
    report = assert_verified(home / "queue.db", str(home / "lake"), "chaos", rows=configurations)
    assert not report.problems
    assert httpx.get(f"{server.url}/healthz", timeout=10).json()["status"] == "up"
