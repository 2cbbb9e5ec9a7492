"""Shared fixtures: one local Ray per test session (started only by tests that ask for it), an isolated
CHIPSWEEP_HOME per test, small sweep specs, lake readers, free ports, and process clean-up for tests
that start Ray clusters or services of their own."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RAY = str(Path(sys.executable).with_name("ray"))

# httpx's calls with a patient read timeout: on a loaded two-core CI host a server's first answer can take longer than
# httpx's default 5 s (a fresh server's first POST /sweeps once did), and a test that means to time out says so.
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
http = types.SimpleNamespace(
    **{verb: partial(getattr(httpx, verb), timeout=HTTP_TIMEOUT) for verb in ("get", "post", "put", "delete")}
)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray with 2 CPUs for the whole session, started in the main thread."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace="chipsweep-tests",
            configure_logging=False,
            _temp_dir=_short_tmp("csr-"),
        )
    yield
    ray.shutdown()


def _short_tmp(prefix: str) -> str:
    """A short temporary directory, removed at exit: Ray's Unix socket paths must stay under ~100
    characters, so pytest's tmp_path is too long for a Ray temp dir."""
    path = f"/tmp/{prefix}{uuid.uuid4().hex[:8]}"
    os.makedirs(path, exist_ok=True)
    atexit.register(shutil.rmtree, path, True)
    return path


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings for an empty CHIPSWEEP_HOME under tmp_path (lake inside it)."""
    from chipsweep.service.settings import Settings

    monkeypatch.setenv("CHIPSWEEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHIPSWEEP_LAKE", raising=False)
    for var in (
        "CHIPSWEEP_FAULT_CHUNK",
        "CHIPSWEEP_FAULT_DELAY_S",
        "CHIPSWEEP_TOKEN",
        "CHIPSWEEP_SERVER",
        "CHIPSWEEP_MAX_CONFIGS",
        "CHIPSWEEP_CHUNK_SIZE",
        "CHIPSWEEP_ACTORS",
    ):
        monkeypatch.delenv(var, raising=False)
    return Settings.from_env()


def training_spec(name: str = "t-small", store: str = "all", **extra: Any) -> dict[str, Any]:
    """A training sweep of 4 x 3 x 6 x 4 x 4 x 3 x 2 = 6,912 configurations."""
    spec: dict[str, Any] = {
        "name": name,
        "kind": "training",
        "axes": {
            "model": ["llama3_8b", "llama2_70b", "gpt3_175b", "gpt3_13b"],
            "chip": ["nvidia_h100_sxm", "nvidia_a100_sxm_80gb", "google_tpu_v5p"],
            "n_chips": {"geometric": {"start": 32, "stop": 1024, "factor": 2}},
            "tp": [1, 2, 4, 8],
            "pp": [1, 2, 4, 8],
            "micro_batch": [1, 2, 4],
            "recompute": ["selective", "full"],
        },
        "fixed": {"global_batch": 1024, "tokens": 3.0e11, "interleave": 1, "zero_stage": 1},
        "store": store,
    }
    spec.update(extra)
    return spec


def spec_of_size(name: str, factor: int, store: str = "all") -> dict[str, Any]:
    """`training_spec` times `factor` (a global_batch axis of `factor` values)."""
    spec = training_spec(name, store)
    spec["fixed"].pop("global_batch")
    spec["axes"]["global_batch"] = [256 * (i + 1) for i in range(factor)]
    return spec


def evaluated_lake(spec: dict[str, Any], root: Path, catalog: Any = None) -> pa.Table:
    """`spec` evaluated in this process (no Ray) and written as version 1 of a one-sweep lake at `root`, done;
    returns its rows (the saved queries read the lake)."""
    from chipsweep.lake import Lake
    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.schemas.spec import parse_spec
    from chipsweep.schemas.sweep import resolve
    from chipsweep.workers.chunk import ChunkEvaluator

    sweep = resolve(parse_spec(spec), catalog if catalog is not None else load_catalog())
    table = ChunkEvaluator(sweep).evaluate(0, sweep.configurations)
    store = Lake(str(root))
    store.write_part(table, sweep.kind, sweep.name, 1, 0)
    store.write_dims(sweep, 1, created_at=0.0, state="done")
    return table


def read_facts(lake: str, kind: str, name: str, version: int) -> pa.Table:
    """Every committed fact row of one sweep version (temporary files are not part files)."""
    from chipsweep.lake import Lake

    parts = Lake(lake).committed_parts(kind, name, version)
    if not parts:
        return pa.table({"idx": pa.array([], pa.int64())})
    return ds.dataset(parts, format="parquet").to_table()


def assert_exact(table: pa.Table, expected_rows: int) -> None:
    """Exactly the expected rows, and the configuration index unique."""
    import pyarrow.compute as pc

    assert table.num_rows == expected_rows
    assert pc.count_distinct(table.column("idx")).as_py() == expected_rows


# Ports the tests hand to servers they start come from below the kernel's ephemeral range (the ports it gives
# outgoing connections: /proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default) and above Ray's worker ports
# (10002-19999 by default). A port the kernel picks for a bind to port 0 is an ephemeral one, free when chosen but
# free for any outgoing connection to take before the server binds it: a `ray start` once failed that way in CI
# ('Failed to start GCS', its gRPC server unable to bind the chosen --port).
PORT_LOW = 20000


def _port_high() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low - 1, PORT_LOW + 1000)


def _bind_free(stack: contextlib.ExitStack, skip: set[int]) -> int:
    """A port outside the ephemeral range that nothing listens on (bound on every address, as servers bind it),
    held by a socket in `stack` until the caller is done choosing."""
    high = _port_high()
    for _ in range(1000):
        port = random.randint(PORT_LOW, high)
        if port in skip:
            continue
        s = stack.enter_context(socket.socket())
        try:
            s.bind(("", port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port in {PORT_LOW}-{high}")


def free_port() -> int:
    with contextlib.ExitStack() as stack:
        return _bind_free(stack, set())


def free_ports(n: int, avoid: Iterable[int] = ()) -> list[int]:
    """`n` distinct free ports, none in `avoid`. Every socket stays bound until all are taken, so no port is chosen
    twice (a `ray start` once got one port for its object manager and its metrics export, and refused to start)."""
    skip = set(avoid)
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        while len(ports) < n:
            port = _bind_free(stack, skip)
            skip.add(port)
            ports.append(port)
    return ports


# the components of one `ray start` node that listen on a port of their own (the head's GCS port and client server
# come on top)
RAY_NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)


def ray_node_ports(avoid: Iterable[int] = ()) -> list[str]:
    """The port flags of one `ray start` node: each component on a free port of its own, none in `avoid` (the head's
    GCS and client-server ports)."""
    return [
        f"{flag}={port}"
        for flag, port in zip(RAY_NODE_PORT_FLAGS, free_ports(len(RAY_NODE_PORT_FLAGS), avoid), strict=True)
    ]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ------------------------------------------------------------------------------------------------
# processes this test run starts (never `ray stop`: that is global to the machine)
# ------------------------------------------------------------------------------------------------
def session_pids(sid: int) -> list[int]:
    """Processes whose session id is `sid` (everything a `start_new_session` child left behind)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == sid:
                    out.append(int(entry))
    return out


def kill_session(sid: int) -> None:
    for pid in session_pids(sid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class Sessions:
    """Process sessions started by a test; all killed at teardown."""

    def __init__(self) -> None:
        self.sids: list[int] = []

    def popen(self, args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(args, env=env, start_new_session=True, cwd=REPO, **kw)
        self.sids.append(proc.pid)
        return proc

    def run(
        self, args: list[str], env: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = self.popen(args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def kill_all(self) -> None:
        for sid in self.sids:
            kill_session(sid)


@pytest.fixture()
def sessions() -> Iterator[Sessions]:
    s = Sessions()
    try:
        yield s
    finally:
        s.kill_all()


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHIPSWEEP_", "RAY_"))}
    env.update(
        {
            "CHIPSWEEP_HOME": str(home),
            "RAY_AUTH_MODE": "disabled",
            "RAY_TMPDIR": _short_tmp("csr-"),
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------------
# the end of every fault test: the lake holds exactly what the queue says (service/verify.py)
# ------------------------------------------------------------------------------------------------
def assert_verified(
    queue_path: Path | str, lake: str, sweep: str | None = None, *, rows: int | None = None
) -> Any:
    """`chipsweep verify` finds nothing wrong (no missing, extra, damaged or stray file, no duplicate idx);
    with `rows`, the named sweep's latest version holds exactly that many rows, each index once."""
    from chipsweep.service.queue import Queue
    from chipsweep.service.verify import render, verify

    report = verify(Queue(queue_path), lake, sweep)
    assert report.ok, render(report)
    if rows is not None:
        assert sweep is not None
        [v] = [v for v in report.versions if v.sweep_id == Queue(queue_path).sweep(sweep).sweep_id]
        assert (v.rows_in_lake, v.distinct_idx, v.duplicate_idx) == (rows, rows, 0), render(report)
    return report


# ------------------------------------------------------------------------------------------------
# a lake made unwritable for a while, as root: chmod does not stop root, so a read-only bind mount
# (EROFS), else `chattr +i` on the directory (EPERM), else the directory swapped for a file (ENOTDIR)
# ------------------------------------------------------------------------------------------------
def _run_ok(*args: str) -> bool:
    try:
        return subprocess.run(list(args), capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _mounted(path: str) -> bool:
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1].encode().decode("unicode_escape") == path for line in fh)


@contextlib.contextmanager
def lake_unwritable(path: Path | str) -> Iterator[str]:
    """`path` (a directory) cannot be written inside this block; yields how (`bind-ro`, `chattr`, `swap`)."""
    path = os.path.realpath(str(path))
    if _run_ok("mount", "--bind", path, path):
        try:
            if _run_ok("mount", "-o", "remount,ro,bind", path):
                yield "bind-ro"
                return
        finally:
            for _ in range(5):  # until no mount is left on the path (never leave one behind)
                if not _mounted(path) or not (_run_ok("umount", path) or _run_ok("umount", "-l", path)):
                    break
    if _run_ok("chattr", "-R", "+i", path):  # every directory: a new file in any of them is refused
        try:
            yield "chattr"
        finally:
            _run_ok("chattr", "-R", "-i", path)
        return
    moved = path + ".away"
    os.rename(path, moved)
    Path(path).write_text("not a directory")
    try:
        yield "swap"
    finally:
        os.remove(path)
        os.rename(moved, path)


# ------------------------------------------------------------------------------------------------
# `chipsweep serve` as a process of its own (its dispatcher and Ray in a supervised child)
# ------------------------------------------------------------------------------------------------
class ServeProcess:
    """`chipsweep serve` in a session of its own, on a free port, logging to `log`."""

    def __init__(self, sessions: Sessions, env: dict[str, str], log: Path, *args: str) -> None:
        self.sessions, self.env, self.log_path, self.args = sessions, env, log, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> ServeProcess:

        log = self.log_path.open("a")
        self.proc = self.sessions.popen(
            [
                PYTHON,
                "-m",
                "chipsweep",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *self.args,
            ],
            self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(self.log_path.read_text()[-3000:])
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, "the server to answer /healthz", every=0.3)
        return self

    def health(self, headers: dict[str, str] | None = None) -> dict[str, Any]:

        return dict(httpx.get(f"{self.url}/healthz", timeout=10, headers=headers).json())

    def wait_ray_up(self, timeout: float = 120) -> dict[str, Any]:
        wait_for(
            lambda: (self.health().get("ray") or {}).get("state") == "up", timeout, "Ray to be up", every=0.3
        )
        return self.health()

    def kill(self) -> None:
        assert self.proc is not None
        kill_session(self.proc.pid)
        self.proc.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def ray_owned(home: Path) -> dict[int, str]:
    """pid -> title of the processes of the Ray that services on `home` started (by their owner tag)."""
    from chipsweep.service.ray_supervisor import home_tag, owned_processes

    out = {}
    for pid in owned_processes(home_tag(home) + ":"):
        with contextlib.suppress(OSError):
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return out
