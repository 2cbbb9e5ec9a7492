"""Ray as a supervised dependency: the dispatcher -- the one Ray driver -- runs in a child process, so
nothing Ray does takes the HTTP server (or an embedded `submit --wait`) down with it.

A Ray driver dies with its node: kill the local raylet (or its dashboard agent, which Ray fate-shares
with it) and the driver process exits ~15 s later whatever Python is doing. So `chipsweep serve` and
the embedded `submit --wait` / `resume` do not host the driver; `DispatcherProcess` starts
`python -m chipsweep.service.ray_supervisor` (a local Ray of its own, or RAY_ADDRESS) and watches it:

- the child exits, or a process of its local Ray (raylet, GCS, dashboard agent, runtime-env agent)
  dies: the state turns `degraded` with the reason, the event is logged, every process of that Ray is
  killed, and after a short back-off a fresh child starts a fresh Ray. It takes over the dead one's
  dispatcher lease and puts the chunks that were in flight back to pending; a chunk whose file was
  committed is found and not written twice, so the sweep finishes exactly once;
- with RAY_ADDRESS the cluster is not ours to restart: the child reconnects with back-off (1 s doubling
  to 60 s), and health and /metrics say so (`reconnecting`, attempts, the next try);
- every process of a child's Ray carries CHIPSWEEP_RAY_OWNER=chipsweep:<home>:<service pid>:<n>, so a
  service starting on the same CHIPSWEEP_HOME finds and kills the Ray processes a dead service left.

The child talks to the parent with JSON lines on its stdout (`ray_up` with the cluster's CPUs and its Ray
processes, `error`, `finished`); everything else it prints goes to stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from chipsweep.service.settings import Settings
from chipsweep.workers.runtime import pid_alive

log = logging.getLogger("chipsweep.ray")

OWNER_ENV = "CHIPSWEEP_RAY_OWNER"
# the agents of a local Ray whose death ends that Ray (a worker's death does not), by command line or
# the title Ray gives them; the raylet and the GCS are known by pid from the driver
AGENTS = {"dashboard_agent": ("dashboard/agent.py", "ray::DashboardAgent"),
          "runtime_env_agent": ("runtime_env/agent/main.py", "ray::RuntimeEnvAgent")}
LOCAL_BACKOFF_S = (1.0, 30.0)  # first and longest wait before restarting a local Ray
REMOTE_BACKOFF_S = (1.0, 60.0)  # ... before reconnecting to RAY_ADDRESS
STABLE_S = 60.0  # a Ray up this long resets the back-off
POLL_S = 0.5
STOP_GRACE_S = 20.0  # a child asked to stop finishes what is in flight for this long, then is killed
RAY_INIT_TIMEOUT_S = 90.0  # ray.init that has not returned by then will not (a GCS that does not answer)


# ------------------------------------------------------------------------------------------------
# the processes of a Ray we started, found by the owner tag in their environment
# ------------------------------------------------------------------------------------------------
def home_tag(home: Path) -> str:
    return "chipsweep:" + hashlib.sha256(str(Path(home).absolute()).encode()).hexdigest()[:12]


def owned_processes(prefix: str) -> dict[int, str]:
    """pid -> owner tag of every process whose environment has CHIPSWEEP_RAY_OWNER starting with `prefix`."""
    want = f"{OWNER_ENV}={prefix}".encode()
    out: dict[int, str] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        for item in env.split(b"\0"):
            if item.startswith(want):
                out[int(entry)] = item.split(b"=", 1)[1].decode(errors="replace")
                break
    return out


def kill_owned(prefix: str, *, keep: Callable[[str], bool] = lambda tag: False) -> list[int]:
    """SIGKILL every process carrying an owner tag that starts with `prefix` (unless `keep(tag)`); waits
    until they are gone (or 10 s). Returns the pids killed."""
    procs = {pid: tag for pid, tag in owned_processes(prefix).items() if not keep(tag)}
    for pid in procs:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in procs):
        time.sleep(0.05)
    return sorted(procs)


def clean_orphans(home: Path) -> list[int]:
    """Kill the Ray processes of services on this home whose service process is gone (a `kill -9` of
    `chipsweep serve` leaves its Ray behind when it ran in another session)."""

    def keep(tag: str) -> bool:
        parts = tag.split(":")
        return len(parts) >= 3 and parts[2].isdigit() and pid_alive(int(parts[2]))

    killed = kill_owned(home_tag(home) + ":", keep=keep)
    if killed:
        log.warning("killed %d Ray processes left by a dead chipsweep service on this home: %s", len(killed),
                    " ".join(map(str, killed)))
    return killed



def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------------
# the parent side
# ------------------------------------------------------------------------------------------------
class DispatcherProcess:
    """The dispatcher in a supervised child process (see the module doc).

    `until`: sweep ids to finish (the child exits when all are final); `idle`: run until the queue has
    nothing left; neither: run until `stop()` (a server). `max_restarts`: give up after that many Ray
    failures in a row (None: never, for a server)."""

    def __init__(self, settings: Settings, *, until: Sequence[str] = (), idle: bool = False,
                 actors: int | None = None, max_restarts: int | None = None) -> None:
        self.settings = settings
        self.until = list(until)
        self.idle = idle
        self.actors = actors
        self.max_restarts = max_restarts
        self.tag = f"{home_tag(settings.home)}:{os.getpid()}"
        self.mode = "address" if settings.ray_address else "local"
        self.state = "starting"  # starting | up | degraded | finished | gave_up | stopped
        self.reason: str | None = None  # why degraded (or why it gave up)
        self.restarts = 0  # Ray failures since the service started
        self.failures_in_a_row = 0
        self.next_attempt_at: float | None = None  # epoch seconds of the next (re)start while degraded
        self.cpus: int | None = None
        self.ray_pids: dict[str, int] = {}
        self.up_since: float | None = None
        self.generation = 0
        self._stop = threading.Event()
        self._done = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._queue: Any = None  # the supervisor thread's own connection (lease heartbeats)
        self._thread = threading.Thread(target=self._supervise, name="chipsweep-ray-supervisor", daemon=True)

    # ---- control ------------------------------------------------------------------------------
    def start(self) -> DispatcherProcess:
        clean_orphans(self.settings.home)
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        """Ask the child to stop (what is in flight lands), kill it after `timeout`, and its Ray with it."""
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
        if self._thread.is_alive():
            self._thread.join(timeout + 15)
        if self.state not in ("finished", "gave_up"):
            self.state = "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Until the supervisor is over -- the child finished its work, or Ray failed `max_restarts`
        times in a row, or `stop()` -- or `timeout`; whether it is over (`state` says how)."""
        return self._done.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def health(self) -> dict[str, Any]:
        """What /healthz and /metrics show of Ray."""
        now = time.time()
        return {
            "state": self.state, "mode": self.mode, "address": self.settings.ray_address, "reason": self.reason,
            "restarts": self.restarts, "reconnecting": self.mode == "address" and self.state == "degraded",
            "attempts_in_a_row": self.failures_in_a_row,
            "next_attempt_in_s": round(max(self.next_attempt_at - now, 0.0), 1) if self.next_attempt_at else None,
            "cpus": self.cpus, "processes": dict(self.ray_pids),
            "up_for_s": round(now - self.up_since, 1) if self.up_since and self.state == "up" else None,
        }

    # ---- the supervising thread ---------------------------------------------------------------
    def _supervise(self) -> None:
        try:
            while not self._stop.is_set():
                outcome = self._run_child()
                if outcome == "finished" or self._stop.is_set():
                    break
                self.restarts += 1
                self.failures_in_a_row += 1
                if self.max_restarts is not None and self.failures_in_a_row > self.max_restarts:
                    self.state = "gave_up"
                    log.error("Ray failed %d times in a row (last: %s); giving up", self.failures_in_a_row, self.reason)
                    break
                first, most = REMOTE_BACKOFF_S if self.mode == "address" else LOCAL_BACKOFF_S
                delay = min(first * 2 ** (self.failures_in_a_row - 1), most)
                self.next_attempt_at = time.time() + delay
                what = f"reconnecting to RAY_ADDRESS {self.settings.ray_address}" if self.mode == "address" else \
                    "starting a fresh local Ray"
                log.warning("%s in %.0f s (attempt %d)", what, delay, self.failures_in_a_row)
                self._stop.wait(delay)
                self.next_attempt_at = None
        except Exception:  # the supervisor itself must not die silently
            log.exception("the Ray supervisor failed")
            self.state, self.reason = "gave_up", "the Ray supervisor failed (see the log)"
        finally:
            self._done.set()

    def _run_child(self) -> str:
        """One child: start it, watch it and its Ray, and return `finished` or `failed` (reason set)."""
        self.generation += 1
        tag = f"{self.tag}:{self.generation}"
        env = {**settings_env(self.settings), OWNER_ENV: tag, "CHIPSWEEP_DISPATCH_PARENT": str(os.getpid())}
        args = [sys.executable, "-m", "chipsweep.service.ray_supervisor", "dispatch"]
        args += [a for sid in self.until for a in ("--until", sid)]
        if self.idle:
            args.append("--idle")
        if self.actors:
            args += ["--actors", str(self.actors)]
        self.ray_pids = {}
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._proc = proc
        events: list[dict[str, Any]] = []
        reader = threading.Thread(target=self._read_events, args=(proc.stdout, events), daemon=True)
        reader.start()
        reason: str | None = None
        finished_at = 0.0
        try:
            while True:
                rc = proc.poll()
                if rc is not None:
                    reader.join(2)
                    if rc == 0 and any(e.get("event") == "finished" for e in events):
                        self.state, self.reason = "finished", None
                        return "finished"
                    if self._stop.is_set():
                        return "stopped"
                    errors = [e["reason"] for e in events if e.get("event") == "error" and e.get("reason")]
                    reason = errors[-1] if errors else f"the dispatcher process exited with code {rc}"
                    dead = self._dead_ray_process()
                    if dead:
                        reason = f"{dead}; {reason}"
                    break
                if self._stop.wait(POLL_S):
                    self._terminate(proc)
                    return "stopped"
                if any(e.get("event") == "finished" for e in events):
                    finished_at = finished_at or time.monotonic()
                    if time.monotonic() - finished_at > STOP_GRACE_S:  # done, but stuck shutting Ray down
                        self._terminate(proc)
                        self.state, self.reason = "finished", None
                        return "finished"
                    continue  # its work is done: it is shutting its Ray down and exiting
                dead = self._dead_ray_process() or self._hung(proc.pid)
                if dead:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(1.0)  # a child that finished a moment ago takes its Ray with it
                    if proc.poll() is not None:
                        continue  # judged by its exit above
                    reason = dead
                    break
                if self.state == "up" and self.up_since and time.time() - self.up_since > STABLE_S:
                    self.failures_in_a_row = 0
        finally:
            if reason is not None:
                self._degrade(reason)
            self._terminate(proc)
            kill_owned(tag)  # whatever of that Ray is left: its workers, agents, GCS
            self.ray_pids = {}
            self.up_since = None
        return "failed"

    def _read_events(self, stream: IO[bytes] | None, events: list[dict[str, Any]]) -> None:
        if stream is None:
            return
        for raw in stream:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            events.append(msg)
            if msg.get("event") == "cpus":  # a node joined or died since: what /healthz says Ray has
                cpus = int(msg.get("cpus") or 0) or None
                if cpus != self.cpus:
                    log.warning("Ray's live CPUs: %s -> %s", self.cpus, cpus)
                self.cpus = cpus
            if msg.get("event") == "ray_up":
                self.cpus = int(msg.get("cpus") or 0) or None
                self.ray_pids = {str(k): int(v) for k, v in (msg.get("processes") or {}).items()}
                if self.state == "degraded":
                    log.warning("Ray is back (%s, %s CPUs) after: %s", self.mode, self.cpus, self.reason)
                else:
                    log.info("Ray is up (%s, %s CPUs)", self.mode, self.cpus)
                self.state, self.reason, self.up_since = "up", None, time.time()

    def _hung(self, pid: int) -> str | None:
        """The child holds the dispatcher lease but stopped beating (blocked in a call to a Ray that is gone)."""
        if self.state != "up":
            return None
        from chipsweep.service.queue import LEASE_STALE_S, Queue

        try:
            if self._queue is None:
                self._queue = Queue(self.settings.queue_path)
            holder = self._queue.lease_holder()
        except Exception:  # the queue is busy: look again next time
            return None
        if holder and int(holder["pid"]) == pid and time.time() - float(holder["heartbeat"]) > 2 * LEASE_STALE_S:
            return f"the dispatcher stopped answering (no heartbeat for {time.time() - float(holder['heartbeat']):.0f} s)"
        return None

    def _dead_ray_process(self) -> str | None:
        for name, pid in self.ray_pids.items():
            if not pid_alive(pid):
                return f"Ray's {name} (pid {pid}) died"
        return None

    def _degrade(self, reason: str) -> None:
        self.state, self.reason = "degraded", reason
        log.error("Ray lost: %s; committed chunks are kept, in-flight chunks will be re-queued", reason)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        """Stopping: SIGTERM, so what is in flight lands. A child whose Ray is gone: SIGKILL."""
        if proc.poll() is None:
            if not self._stop.is_set():
                proc.kill()
                proc.wait(10)
                return
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment with `settings` written into it, so the child's `Settings.from_env()`
    is the parent's (a caller of the Python API may pass settings the environment does not hold)."""
    env = {**os.environ, "CHIPSWEEP_HOME": str(settings.home), "CHIPSWEEP_LAKE": settings.lake,
           "CHIPSWEEP_MAX_ATTEMPTS": str(settings.max_attempts), "CHIPSWEEP_LAKE_BACKOFF_S": str(settings.lake_backoff_s),
           "CHIPSWEEP_QUEUE_SYNC": settings.queue_sync}
    for name, value in (("RAY_ADDRESS", settings.ray_address), ("CHIPSWEEP_ACTORS", settings.actors)):
        if value:
            env[name] = str(value)
        else:
            env.pop(name, None)
    return env


# ------------------------------------------------------------------------------------------------
# the child side: `python -m chipsweep.service.ray_supervisor dispatch [--until ID ...] [--idle]`
# ------------------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGKILL this process when the thread that started it ends (Linux), so a `kill -9` of the service
    takes its dispatcher -- and, by Ray's own fate sharing, its local Ray -- with it."""
    parent = int(os.environ.get("CHIPSWEEP_DISPATCH_PARENT") or 0)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _ray_processes() -> dict[str, int]:
    """The watched processes of the local Ray this driver started (none with RAY_ADDRESS)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None or not getattr(node, "head", False) or os.environ.get("RAY_ADDRESS"):
        return {}
    found: dict[str, int] = {}
    for kind, infos in getattr(node, "all_processes", {}).items():
        if kind in ("raylet", "gcs_server") and infos:
            found[kind] = int(infos[0].process.pid)
    raylet = found.get("raylet")
    deadline = time.monotonic() + 15
    while raylet and time.monotonic() < deadline:  # the agents are started by the raylet, a moment later
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == raylet:
                    cmd = _cmdline(int(entry))
                    for name, marks in AGENTS.items():
                        if any(mark in cmd for mark in marks):
                            found[name] = int(entry)
        if "dashboard_agent" in found and "runtime_env_agent" in found:
            break
        time.sleep(0.2)
    return found


def child_main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="chipsweep.service.ray_supervisor")
    parser.add_argument("command", choices=["dispatch"])
    parser.add_argument("--until", action="append", default=[])
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--actors", type=int)
    args = parser.parse_args(argv)

    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed (Ray's own messages) goes to stderr

    def say(**msg: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            events.write(json.dumps(msg) + "\n")

    _die_with_parent()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the parent, which stops us with SIGTERM
    from chipsweep.service import logs
    from chipsweep.service.dispatch import Dispatcher, RayLost, cluster_cpus, ensure_ray, over, run_until
    from chipsweep.service.queue import Queue

    logs.configure(os.environ.get("CHIPSWEEP_LOG_LEVEL", "warning"), os.environ.get("CHIPSWEEP_LOG_FORMAT", "text"))
    settings = Settings.from_env()
    if args.actors:
        settings = settings.with_(actors=args.actors)
    queue = Queue(settings.queue_path)
    where = f"RAY_ADDRESS {settings.ray_address}" if settings.ray_address else "a local Ray"
    unreachable = _probe(settings.ray_address)
    if unreachable:
        say(event="error", reason=f"cannot reach {where}: {unreachable}")
        return 3

    def too_slow() -> None:  # ray.init waits minutes for a GCS that does not answer
        say(event="error", reason=f"cannot start or reach {where}: no answer within {RAY_INIT_TIMEOUT_S:g} s")
        events.flush()
        os._exit(3)

    watchdog = threading.Timer(RAY_INIT_TIMEOUT_S, too_slow)
    watchdog.daemon = True
    watchdog.start()
    try:
        ensure_ray(settings)
    except Exception as exc:
        say(event="error", reason=f"cannot start or reach {where}: {type(exc).__name__}: {_line(exc)}")
        return 3
    finally:
        watchdog.cancel()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # again: ray.init installs a handler of its own
    say(event="ray_up", cpus=cluster_cpus(), processes=_ray_processes())
    if args.until:
        until: Callable[[], bool] | None = over(queue, *args.until)
    elif args.idle:
        def until() -> bool:
            return not queue.active() and not any(
                r.state == "running" and queue.pending_chunks(r.name, r.version) for r in queue.sweeps(50))
    else:
        until = None
    dispatcher = Dispatcher(queue, settings, on_cpus=lambda cpus: say(event="cpus", cpus=cpus))
    try:
        run_until(queue, settings, until, stop=stop, dispatcher=dispatcher)
    except RayLost as exc:  # no clean-up: every call into a Ray whose raylet is gone may block
        say(event="error", reason=str(exc))
        events.flush()
        os._exit(4)
    except Exception as exc:
        log.exception("the dispatcher stopped")
        say(event="error", reason=f"the dispatcher stopped: {type(exc).__name__}: {_line(exc)}")
        events.flush()
        os._exit(5)
    dispatcher.close()
    if stop.is_set() and until is not None and not until():
        return 0
    say(event="finished")
    return 0


def _probe(address: str | None) -> str | None:
    """Why RAY_ADDRESS cannot be reached by TCP right now (None: it can, or it is not host:port)."""
    if not address or address == "auto":
        return None
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
