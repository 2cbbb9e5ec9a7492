"""The lake on an object store: `CHIPSWEEP_LAKE=s3://bucket/prefix` against a real S3-compatible server
(moto's standalone server on 127.0.0.1), endpoint and credentials from the standard AWS variables.

On a two-node local Ray cluster (head + worker node, started as `deploy/local-cluster.sh up` does):
a sweep commits every chunk to s3:// exactly once and the saved queries answer from s3://; killing the
worker node mid-sweep still ends complete with no duplicates. DuckDB reads through pyarrow.fs, so
nothing is downloaded at run time."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from chipsweep.lake import Lake
from chipsweep.service.queue import Queue
from tests.conftest import (
    PYTHON,
    RAY,
    Sessions,
    assert_exact,
    assert_verified,
    free_port,
    free_ports,
    kill_session,
    ray_node_ports,
    session_pids,
    spec_of_size,
    subprocess_env,
    training_spec,
    wait_for,
)

pytestmark = pytest.mark.slow

BUCKET = "chipsweep-lake"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free 127.0.0.1 port; yields the AWS variables that point at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "chipsweep-test",
           "AWS_SECRET_ACCESS_KEY": "chipsweep-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


class Cluster:
    """A head and one worker node, each a `ray start` in its own session, with the AWS variables."""

    def __init__(self, tmp: Path, s3_env: dict[str, str]) -> None:
        self.sessions = Sessions()
        self.home = tmp / "home"
        self.lake = f"s3://{BUCKET}/{tmp.name}/lake"
        self.env = subprocess_env(self.home, CHIPSWEEP_LAKE=self.lake, CHIPSWEEP_CHUNK_SIZE="2000", **s3_env)
        self.port, client = free_ports(2)
        self._start(["--head", f"--port={self.port}", "--num-cpus=1", "--include-dashboard=false",
                     f"--ray-client-server-port={client}", *ray_node_ports((self.port, client))])
        self.worker_sid = self._start([f"--address=127.0.0.1:{self.port}", "--num-cpus=1",
                                       *ray_node_ports((self.port, client))])

    def _start(self, args: list[str]) -> int:
        proc = self.sessions.popen([RAY, "start", "--disable-usage-stats", *args], self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-2000:]
        return proc.pid

    def submit(self, spec: dict[str, Any], tmp: Path, **env: str) -> subprocess.Popen[str]:
        path = tmp / f"{spec['name']}.json"
        path.write_text(json.dumps(spec))
        return self.sessions.popen([PYTHON, "-m", "service", "submit", str(path), "--wait", "--json"],
                                   {**self.env, "RAY_ADDRESS": f"127.0.0.1:{self.port}", **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def cluster(s3_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("s3c"), s3_server)
    try:
        yield c
    finally:
        c.sessions.kill_all()


def _facts(lake: str, name: str, version: int = 1) -> pa.Table:
    store = Lake(lake)
    parts = store.committed_parts("training", name, version)
    return ds.dataset(parts, format="parquet", filesystem=store.fs).to_table(columns=["idx"])


def _result(proc: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_sweep_on_two_nodes_commits_to_s3_once_and_queries_answer_from_s3(cluster: Cluster, tmp_path: Path) -> None:
    result = _result(cluster.submit(training_spec("s3-sweep"), tmp_path))
    assert result["state"] == "done" and result["chunks_failed"] == 0
    assert_exact(_facts(cluster.lake, "s3-sweep"), result["configurations"])
    workers = {r[0].split(":")[2] for r in Queue(cluster.home / "queue.db")._db().execute(
        "SELECT worker FROM chunks WHERE state = 'done'").fetchall()}
    assert len(workers) == 2  # chunks were committed from both nodes

    # DuckDB views straight over the s3:// URI (this process has the AWS variables, not httpfs)
    from chipsweep.queries.runner import run_saved, run_sql

    sql = "SELECT count(*) AS n, count(DISTINCT idx) AS d FROM training WHERE sweep = 's3-sweep'"
    assert run_sql(sql, lake=cluster.lake).to_pylist() == [{"n": result["configurations"], "d": result["configurations"]}]
    states = run_sql("SELECT version, state FROM versions WHERE sweep = 's3-sweep'", lake=cluster.lake)
    assert states.to_pylist() == [{"version": 1, "state": "done"}]
    frontier = run_saved("pareto_training", {"model": "llama2_70b", "sweep": "s3-sweep"}, lake=cluster.lake)
    assert frontier.num_rows > 0 and set(frontier.column("model").to_pylist()) == {"llama2_70b"}
    assert_verified(cluster.home / "queue.db", cluster.lake, "s3-sweep", rows=result["configurations"])


def test_rerun_after_a_price_change_carries_and_evaluates_chunks_on_s3(cluster: Cluster, tmp_path: Path) -> None:
    first = _result(cluster.submit(training_spec("s3-rerun"), tmp_path))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 1.23}\n")
    proc = cluster.sessions.popen([PYTHON, "-m", "service", "rerun", "s3-rerun", "--changed", "--wait", "--json"],
                                  {**cluster.env, "RAY_ADDRESS": f"127.0.0.1:{cluster.port}",
                                   "CHIPSWEEP_CATALOG": str(overlay)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    [rerun] = [r for r in json.loads(out) if r["sweep_id"].split("@")[0] == "s3-rerun"]
    assert rerun["version"] == 2 and rerun["changed"] and rerun["chunks_repriced"] > 0  # read back from s3, re-priced
    status = Queue(cluster.home / "queue.db").status("s3-rerun@2")
    assert (status["state"], status["chunks_done"], status["chunks_failed"]) == ("done", status["chunks_total"], 0)
    assert_exact(_facts(cluster.lake, "s3-rerun", 2), first["configurations"])

    from chipsweep.queries.runner import run_sql

    latest = run_sql("SELECT DISTINCT version FROM latest_training WHERE sweep = 's3-rerun'", lake=cluster.lake)
    assert latest.to_pylist() == [{"version": 2}]
    assert_verified(cluster.home / "queue.db", cluster.lake, "s3-rerun@2", rows=first["configurations"])


def test_worker_node_killed_mid_sweep_on_s3_lake_ends_complete(cluster: Cluster, tmp_path: Path) -> None:
    driver = cluster.submit(spec_of_size("s3-node-loss", 6), tmp_path, CHIPSWEEP_FAULT_DELAY_S="0.4")
    queue_path = cluster.home / "queue.db"

    def worker_node_committed() -> bool:
        if driver.poll() is not None:
            raise AssertionError(driver.communicate()[1][-3000:])
        try:
            rows = Queue(queue_path)._db().execute(
                "SELECT worker FROM chunks WHERE state = 'done' AND name = 's3-node-loss'").fetchall()
        except Exception:  # the driver has not recorded the sweep yet
            return False
        pids = {int(r[0].split(":")[1]) for r in rows if r[0]}  # host:pid:node
        return len(rows) >= 2 and bool(pids & set(session_pids(cluster.worker_sid)))

    wait_for(worker_node_committed, 180, "chunks committed by an actor on the worker node", every=0.3)
    kill_session(cluster.worker_sid)  # the worker node's raylet, agents and actor: SIGKILL
    result = _result(driver, timeout=300)
    assert result["state"] == "done" and result["chunks_failed"] == 0
    assert_exact(_facts(cluster.lake, "s3-node-loss"), result["configurations"])
    store = Lake(cluster.lake)
    listing = store.fs.get_file_info(pafs.FileSelector(store.fact_dir("training", "s3-node-loss", 1)))
    assert not [i.path for i in listing if i.base_name.startswith(".")]  # no temporaries left behind
    assert_verified(cluster.home / "queue.db", cluster.lake, "s3-node-loss", rows=result["configurations"])


def test_sql_over_an_s3_lake_cannot_read_objects_outside_it(s3_server: dict[str, str]) -> None:
    import pyarrow.parquet as pq

    from chipsweep.queries.errors import QueryError
    from chipsweep.queries.runner import run_sql

    fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}")
    pq.write_table(pa.table({"x": [1]}), f"{BUCKET}/confined/lake/kind=training/x.parquet", filesystem=fs)
    pq.write_table(pa.table({"secret": [42]}), f"{BUCKET}/confined/outside.parquet", filesystem=fs)
    with pytest.raises(QueryError, match="outside the lake is not allowed"):
        run_sql(f"SELECT * FROM read_parquet('s3://{BUCKET}/confined/outside.parquet')",
                lake=f"s3://{BUCKET}/confined/lake")
