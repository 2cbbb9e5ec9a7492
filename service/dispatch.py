"""Fan-out: a pool of Ray actors pulls chunks from the queue with back-pressure.

`submit` validates a spec, records the sweep and its chunks in the queue and writes the version's
dimension tables; `Dispatcher.run` feeds chunks to the pool (one actor per CPU of the cluster, pinned
to its node; at most `IN_FLIGHT_PER_ACTOR` chunks per actor, so the driver holds a bounded number of
small task handles whatever the sweep size) and records what comes back. Recovery is layered: Ray
restarts a killed actor and retries its task (`max_restarts`, `max_task_retries`); if Ray gives up
(the node is gone), the queue puts the chunk back to pending and the slot gets a new actor on a
surviving node; a chunk whose evaluation raises is retried `max_attempts` times and then marked
failed with its error. Actors write the Parquet files themselves and return only row counts.

An OS error of the lake (`LakeUnavailable`: EACCES, EROFS, ENOSPC, EIO, an unreachable object store) is
transient: the chunk goes back to pending with a `not_before`, and no chunk is claimed until the back-off
(1 s, doubling per failed probe, at most CHIPSWEEP_LAKE_BACKOFF_S) has passed; the first commit after it
clears the state. What the lake is doing is kept in the queue's notes (`lake`), so a server's health
shows it whichever process dispatches. When the local raylet dies the dispatcher stops at once
(`RayLost`): `service/ray_supervisor.py` restarts Ray and a fresh dispatcher re-queues what was in flight.

Local Ray by default (`ray.init()`); RAY_ADDRESS selects an existing cluster, same code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from chipsweep.lake import Lake, LakeError
from chipsweep.lake.store import LakeUnavailable
from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.schemas.errors import Problem, SpecError
from chipsweep.schemas.sweep import validate
from chipsweep.schemas.vocab import FINAL_STATES
from chipsweep.service.actor import FAULT_CHUNK_ENV, FAULT_DELAY_ENV, ChunkWorker, Withdrawals
from chipsweep.service.logs import event
from chipsweep.service.queue import ChunkTask, Queue, SweepRow
from chipsweep.service.recorded import record_state
from chipsweep.service.rerun import finish_if_stale, resubmit
from chipsweep.service.settings import CHUNK_PER_WORKER, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, Settings

log = logging.getLogger("chipsweep.dispatch")

IN_FLIGHT_PER_ACTOR = 2  # one running, one queued behind it: no idle gap between chunks
CANCEL_CHECK_S = 0.5  # how often in-flight chunks are checked against cancelled sweeps
HEARTBEAT_S = 2.0
MAX_LOST_ATTEMPTS = 20  # attempts lost to dead workers/nodes before a chunk is marked failed
POOL_CHECK_S = 30.0  # how often an idle dispatcher compares its pool with the cluster's CPUs
LAKE_BACKOFF_FIRST_S = 1.0  # the first wait after the lake refused a chunk; doubles per failed probe
STATE_RETRY_S = 5.0  # how often a sweep state the lake could not record is written again


class RayLost(RuntimeError):
    """The Ray this dispatcher drives is gone (its local raylet died): stop, let a supervisor restart it."""


# ------------------------------------------------------------------------------------------------
# submit
# ------------------------------------------------------------------------------------------------
def auto_chunk_size(workers: int, configurations: int) -> int:
    """Configurations per chunk when none is set: a power of two large enough that one driver stays
    below 10 % busy feeding `workers` worker processes (C >= CHUNK_PER_WORKER x W, rounded up), but no
    larger than a sweep's share per worker (rounded down, so every worker gets a chunk); from 2^20 to 2^29."""
    w = max(workers, 1)
    need = 1 << (CHUNK_PER_WORKER * w - 1).bit_length()  # power of two >= CHUNK_PER_WORKER x W
    share = 1 << (max(configurations // w, 1).bit_length() - 1)  # power of two <= configurations / W
    return int(min(MAX_CHUNK_SIZE, max(MIN_CHUNK_SIZE, min(need, share))))


def cluster_cpus() -> int:
    """CPUs of the connected Ray cluster (one worker process each), or of this machine before Ray starts."""
    try:
        import ray

        if ray.is_initialized():
            return int(ray.cluster_resources().get("CPU", 1))
    except Exception:  # a cluster that cannot answer right now: size for this machine
        pass
    return os.cpu_count() or 1


def submit(
    data: Any,
    *,
    settings: Settings,
    queue: Queue,
    catalog: Catalog | None = None,
    chunk_size: int | None = None,
    cpus: int | None = None,
    reevaluate: bool = False,
) -> SweepRow:
    """Validate and record a sweep (all its chunks) before any work starts; raises `SpecError`, or a
    `LakeError` (503) when the lake cannot take its dimension files right now. `cpus`: the Ray cluster's
    CPUs when this process is not its driver (automatic chunk size). A spec submitted again under a name whose
    latest version is done becomes a re-run of that version (`rerun.resubmit`): the chunks whose configurations and
    catalog entries are unchanged are carried, not evaluated; `reevaluate` evaluates every chunk regardless."""
    base = catalog if catalog is not None else load_catalog()
    sweep = validate(data, base)
    try:  # a name keeps its kind: the lake's views take a name's newest done version as that kind's latest
        earlier = queue.sweep(sweep.name)
    except LookupError:
        earlier = None
    if earlier is not None and earlier.kind != sweep.kind:
        raise SpecError([Problem("kind", sweep.kind, f"{earlier.kind} (the kind of {sweep.name}'s {earlier.version} "
                                 f"version{'s' if earlier.version > 1 else ''} so far), or another name for a {sweep.kind} "
                                 "sweep", f"sweep '{sweep.name}' is a {earlier.kind} sweep")])
    if sweep.configurations > settings.max_configs:
        raise SpecError([Problem(
            "axes", sweep.configurations,
            f"at most {settings.max_configs:,} configurations (the size cap, CHIPSWEEP_MAX_CONFIGS)",
            f"the sweep has {sweep.configurations:,} configurations ({' x '.join(map(str, sweep.sizes))})",
        )])
    if earlier is not None and not reevaluate:
        again = resubmit(queue, finish_if_stale(queue, earlier), sweep, base, lake=settings.lake,
                         chunk_size=chunk_size or settings.chunk_size)
        if again is not None:
            return queue.sweep(f"{again.sweep_id}@{again.version}")
    size = chunk_size or settings.chunk_size or auto_chunk_size(cpus or cluster_cpus(), sweep.configurations)
    row = queue.add_sweep(record=sweep.record(), configurations=sweep.configurations, chunk_size=size,
                          lake=settings.lake)
    try:
        Lake(settings.lake).write_dims(sweep, row.version, created_at=row.created_at)
    except OSError as exc:  # the lake is down: the version is forgotten, as if never submitted
        queue.delete_version(row.name, row.version)
        with contextlib.suppress(OSError):  # dims files already written, where the lake lets us
            Lake(settings.lake).delete_version(row.kind, row.name, row.version)
        reason = LakeUnavailable.of(exc, "writing the dimension files").reason
        err = LakeError(f"the lake cannot be written right now ({reason}); nothing was queued; allowed: submit again "
                        "when the lake is writable", field="lake", value=settings.lake, allowed="a writable lake")
        err.http_status = 503
        raise err from None
    except BaseException:
        queue.cancel(row.sweep_id)
        raise
    return row


# ------------------------------------------------------------------------------------------------
# Ray
# ------------------------------------------------------------------------------------------------
def ensure_ray(settings: Settings) -> None:
    """Connect to RAY_ADDRESS, or start a local Ray. Call from the main thread: Ray's local processes
    die with the thread that started them."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"namespace": "chipsweep", "log_to_driver": False, "configure_logging": False}
    if settings.ray_address:
        ray.init(address=settings.ray_address, **kwargs)
    else:  # "local": a Ray of our own, never the last `ray start` cluster of this machine (maybe dead)
        logging.getLogger(RAY_AUTH_LOGGER).addFilter(_quiet_auth_enabled)
        ray.init(address="local", include_dashboard=False, **kwargs)


# Ray turns token authentication on for a new local cluster when RAY_AUTH_MODE is unset (the token in
# ~/.ray/auth_token) and logs a warning saying so into every command's output, the demo's included. That notice
# is dropped; the one Ray logs when authentication is off stays
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _quiet_auth_enabled(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Token authentication is enabled for this Ray cluster")


def _fault_env() -> dict[str, str]:
    return {k: os.environ[k] for k in (FAULT_CHUNK_ENV, FAULT_DELAY_ENV) if os.environ.get(k)}


class Dispatcher:
    """Feeds queued chunks to a pool of `ChunkWorker` actors; one per queue at a time (a lease)."""

    def __init__(self, queue: Queue, settings: Settings, *, actors: int | None = None,
                 on_cpus: Callable[[int], None] | None = None) -> None:
        self.queue = queue
        self.on_cpus = on_cpus  # told the cluster's live CPU count when it moves (the supervisor's /healthz)
        self.cluster_cpus = 0  # live CPUs when last looked (`_observe_cpus`)
        self.settings = settings
        self.n_actors = actors or settings.actors
        self.owner = f"dispatch-{uuid.uuid4().hex[:10]}"
        self.actors: list[Any] = []
        self._slot_nodes: list[str] = []
        self._ready_at: list[float] = []  # monotonic time a slot may take work again (after a loss)
        self._losses: list[int] = []
        self._jobs: dict[tuple[str, int], Any] = {}
        self._checked_at = time.monotonic()
        self.running = False
        self._lake_failures = 0  # failed probes in a row (sets the back-off)
        self._lake_failed_at = 0.0  # monotonic time of the last lake failure
        self._lake_retry_at = 0.0  # no chunk is claimed before this (monotonic)
        self._lake_down_since: float | None = None  # epoch seconds
        self._unrecorded: dict[str, float] = {}  # sweep id -> when its state is written to the lake next
        self._cancel_check_at = 0.0  # monotonic time in-flight chunks are next checked against cancelled sweeps
        self._withdrawals: Any = None  # the registry of cancelled versions the workers ask (actor.Withdrawals)
        self._withdrawals_name: str | None = None
        self._withdrawn: set[tuple[str, int]] = set()  # what it was last told

    # ---- the pool -----------------------------------------------------------------------------
    def _new_actor(self, slot: int) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict[str, Any] = {
            # the pool is one actor per CPU, each pinned to its node (no CPU reserved: placement is ours);
            # Ray restarts a killed actor in place; an actor whose node is gone is replaced, unpinned,
            # by `_replace` on a surviving node
            "num_cpus": 0,
            "max_restarts": -1,
            "max_task_retries": 3,
            "max_concurrency": 1,
        }
        node = self._slot_nodes[slot] if slot < len(self._slot_nodes) else None
        if node:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        env = _fault_env()
        if env:
            options["runtime_env"] = {"env_vars": env}
        return ray.remote(ChunkWorker).options(**options).remote(self._withdrawals_name)

    def _ensure_pool(self) -> None:
        import ray

        if self.actors:
            return
        nodes = [(n["NodeID"], int(n.get("Resources", {}).get("CPU", 0))) for n in ray.nodes() if n.get("Alive")]
        slots = [node for node, cpus in nodes for _ in range(cpus)]
        # interleave nodes (a, b, a, b, ...) so a smaller pool still spans them
        by_node: dict[str, list[str]] = {}
        for node in slots:
            by_node.setdefault(node, []).append(node)
        order: list[str] = []
        while any(by_node.values()):
            for lst in by_node.values():
                if lst:
                    order.append(lst.pop())
        n = self.n_actors or max(1, len(order))
        self._slot_nodes = [order[i % len(order)] for i in range(n)] if order else [""] * n
        self._ready_at = [0.0] * n
        self._losses = [0] * n
        self._withdrawals_name = f"chipsweep-withdrawals-{uuid.uuid4().hex[:12]}"  # the workers look it up by name
        self._withdrawals = ray.remote(Withdrawals).options(num_cpus=0, max_restarts=-1,
                                                            name=self._withdrawals_name).remote()
        self._withdrawn = set()
        self.actors = [self._new_actor(i) for i in range(n)]

    def _observe_cpus(self) -> None:
        """Look up the cluster's live CPUs (at most every POOL_CHECK_S) and report a change (`on_cpus`): a worker
        node that joined or died moves it, busy or idle."""
        import ray

        now = time.monotonic()
        if now - self._checked_at < POOL_CHECK_S:
            return
        self._checked_at = now
        cpus = sum(int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive"))
        if cpus != self.cluster_cpus and self.on_cpus is not None:
            self.on_cpus(cpus)
        self.cluster_cpus = cpus

    def _pool_outdated(self) -> bool:
        """Whether the cluster's CPU count moved away from an automatic pool's size."""
        return not self.n_actors and self.cluster_cpus > 0 and self.cluster_cpus != len(self.actors)

    def close(self) -> None:
        """Stop the pool's actors (committed work is in the lake; the queue keeps the rest)."""
        import ray

        for a in [*self.actors, *([self._withdrawals] if self._withdrawals is not None else [])]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(a, no_restart=True)
        self.actors = []
        self._withdrawals = None
        self._jobs.clear()

    def _job(self, task: ChunkTask) -> Any:
        import ray

        key = (task.name, task.version)
        ref = self._jobs.get(key)
        if ref is None:
            ref = ray.put(self.queue.payload(task.name, task.version))
            self._jobs[key] = ref
        return ref

    # ---- the loop -----------------------------------------------------------------------------
    def run(
        self,
        *,
        stop: threading.Event | None = None,
        until: Callable[[], bool] | None = None,
        on_tick: Callable[[], None] | None = None,
        poll_s: float = 0.25,
    ) -> bool:
        """Dispatch chunks until `until()` holds or `stop` is set (then what is in flight still lands).

        Returns True if this process dispatched (held the lease); False if another live dispatcher
        holds it and `until()` came true while waiting (that one did the work).
        """
        import ray

        def done() -> bool:
            return bool((stop is not None and stop.is_set()) or (until is not None and until()))

        while not self.queue.acquire_lease(self.owner):
            if done():
                return False
            if on_tick:
                on_tick()
            time.sleep(min(1.0, poll_s * 4))
        ensure_ray(self.settings)
        self.running = True
        try:
            requeued = self.queue.requeue_running()
            if requeued:
                log.info("resumed: %d chunks left running by a previous dispatcher are pending again", requeued)
            for sweep_id in self.queue.unrecorded():  # finished by a dispatcher killed before it told the lake
                if not finish(self.queue, sweep_id):
                    self._unrecorded[sweep_id] = time.monotonic() + STATE_RETRY_S
            self._ensure_pool()
            inflight: dict[Any, tuple[ChunkTask, int, float]] = {}
            load = [0] * len(self.actors)
            last_beat = time.monotonic()
            while True:
                if time.monotonic() - last_beat > HEARTBEAT_S:
                    if not self.queue.heartbeat(self.owner):
                        log.warning("dispatcher lease lost to another process; stopping")
                        return True
                    last_beat = time.monotonic()
                finishing = done()  # stop claiming; what is in flight still lands
                self._record_states()
                self._observe_cpus()
                while not finishing and time.monotonic() >= self._lake_retry_at:
                    if self._lake_down_since is not None and inflight:
                        break  # the lake refused chunks: one probe at a time until it takes one
                    now = time.monotonic()
                    free = [i for i in range(len(self.actors)) if load[i] < IN_FLIGHT_PER_ACTOR and self._ready_at[i] <= now]
                    if not free:
                        break
                    task = self.queue.claim(self.owner)
                    if task is None:
                        break
                    slot = min(free, key=load.__getitem__)
                    ref = self.actors[slot].run.remote(self._job(task), task.chunk, task.start, task.stop,
                                                       task.repriced_from)
                    inflight[ref] = (task, slot, time.monotonic())
                    event(log, "chunk_start", f"{task.name}@{task.version}", level=logging.DEBUG, chunk=task.chunk,
                          slot=slot)
                    load[slot] += 1
                if on_tick:
                    on_tick()
                if not inflight:
                    if finishing or (until is None and stop is None):
                        break
                    if self._pool_outdated():  # idle, and nodes joined or left: one actor per CPU again
                        self.close()
                        self._ensure_pool()
                        load = [0] * len(self.actors)
                    time.sleep(poll_s)
                    continue
                if time.monotonic() >= self._cancel_check_at:  # a cancelled sweep's chunks waiting on a worker
                    self._cancel_check_at = time.monotonic() + CANCEL_CHECK_S
                    stopped = self.queue.cancelled_among({(t.name, t.version) for t, _, _ in inflight.values()})
                    if stopped != self._withdrawn:  # the workers skip them when they come to them
                        self._withdrawn = stopped
                        with contextlib.suppress(Exception):  # gone: the chunks run, as before
                            self._withdrawals.set.remote(sorted(stopped))
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll_s)
                for ref in ready:
                    task, slot, claimed = inflight.pop(ref)
                    load[slot] -= 1
                    self._settle(ref, task, slot, claimed)
        finally:
            self.running = False
            self.queue.release_lease(self.owner)
            for sweep_id in list(self._unrecorded):  # states the lake could not take earlier: once more
                if finish(self.queue, sweep_id):
                    del self._unrecorded[sweep_id]
        return True

    def _settle(self, ref: Any, task: ChunkTask, slot: int, claimed: float = 0.0) -> None:
        import ray
        from ray.exceptions import LocalRayletDiedError, RayError, RayTaskError

        try:
            meta = ray.get(ref)
        except RayTaskError as exc:  # the evaluation raised, or the lake refused the chunk
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, LakeUnavailable) or isinstance(exc, LakeUnavailable):
                self._lake_wait(task, cause if isinstance(cause, LakeUnavailable) else exc, claimed)  # type: ignore[arg-type]
                return
            text = f"{type(cause).__name__}: {cause}".strip()
            state = self.queue.mark_error(task, text, max_attempts=self.settings.max_attempts)
            event(log, "chunk_failed", f"{task.name}@{task.version}", level=logging.WARNING, chunk=task.chunk,
                  attempt=task.attempts, state=state, error=text.splitlines()[0] if text else "")
        except LocalRayletDiedError as exc:  # this node's raylet is gone: every task of ours is lost with it
            raise RayLost(f"the local raylet died ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        except RayError as exc:  # the worker or its node died and Ray's retries ran out
            text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.queue.mark_error(task, text, max_attempts=self.settings.max_attempts, lost=True,
                                  max_lost=MAX_LOST_ATTEMPTS)
            event(log, "chunk_lost", f"{task.name}@{task.version}", level=logging.WARNING, chunk=task.chunk, error=text)
            self._replace(slot)
        else:
            if meta.get("withdrawn"):  # its sweep was cancelled before the worker came to it: pending for a resume
                self.queue.unclaim(task)
                event(log, "chunk_withdrawn", f"{task.name}@{task.version}", chunk=task.chunk)
                return
            self.queue.mark_done(task, int(meta["rows"]), int(meta["bytes"]), float(meta["seconds"]), str(meta["worker"]))
            event(log, "chunk_done", f"{task.name}@{task.version}", chunk=task.chunk, rows=meta["rows"],
                  seconds=round(float(meta["seconds"]), 4), worker=meta["worker"])
            if self._lake_down_since is not None:
                self._lake_up()
        row = self.queue.sweep(f"{task.name}@{task.version}")
        if row.state in ("done", "failed"):
            self._jobs.pop((task.name, task.version), None)
            if not finish(self.queue, row.sweep_id):
                self._unrecorded[row.sweep_id] = time.monotonic() + STATE_RETRY_S

    # ---- the lake's health ----------------------------------------------------------------------
    def _lake_wait(self, task: ChunkTask, exc: LakeUnavailable, claimed: float) -> None:
        """The lake refused a chunk: it waits, and nothing is claimed until the back-off has passed. Only a
        chunk claimed after the previous failure (a probe) doubles the back-off; the others in flight
        with it failed for the same reason."""
        if claimed >= self._lake_failed_at or self._lake_failures == 0:
            self._lake_failures += 1
        self._lake_failed_at = time.monotonic()
        delay = min(LAKE_BACKOFF_FIRST_S * 2 ** (self._lake_failures - 1), self.settings.lake_backoff_s)
        self._lake_retry_at = time.monotonic() + delay
        reason = getattr(exc, "reason", None) or str(exc)
        if self._lake_down_since is None:
            self._lake_down_since = time.time()
            log.error("the lake refused a chunk: %s; chunks wait and are retried (back-off up to %g s)", reason,
                      self.settings.lake_backoff_s)
        # the note first: whoever sees a chunk waiting for the lake finds the reason already there
        self.queue.set_note("lake", {"ok": False, "reason": reason, "since": self._lake_down_since,
                                     "retry_in_s": round(delay, 1), "failures": self._lake_failures})
        self.queue.mark_wait(task, reason, delay)
        event(log, "chunk_waiting", f"{task.name}@{task.version}", level=logging.WARNING, chunk=task.chunk,
              retry_in_s=round(delay, 1), error=reason)

    def _lake_up(self) -> None:
        down = time.time() - (self._lake_down_since or time.time())
        log.warning("the lake takes chunks again after %.1f s", down)
        self._lake_down_since = None
        self._lake_failures = 0
        self._lake_retry_at = 0.0
        self.queue.set_note("lake", {"ok": True, "reason": None, "recovered_after_s": round(down, 1)})

    def _record_states(self) -> None:
        """Write the lake's `dims/sweeps` state of sweeps whose first write failed (the lake was down)."""
        now = time.monotonic()
        for sweep_id, due in list(self._unrecorded.items()):
            if due <= now:
                if finish(self.queue, sweep_id):
                    del self._unrecorded[sweep_id]
                else:
                    self._unrecorded[sweep_id] = now + STATE_RETRY_S

    def _replace(self, slot: int) -> None:
        """A fresh actor for a slot whose actor Ray gave up on: placed anywhere (its node may be gone and
        not yet known dead), and given work again only after a back-off that grows with each loss."""
        import ray

        if slot >= len(self.actors):  # the pool was closed under a running loop: nothing to replace
            return
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actors[slot], no_restart=True)
        self._slot_nodes[slot] = ""
        self._losses[slot] += 1
        self._ready_at[slot] = time.monotonic() + min(2.0 ** self._losses[slot], 30.0)
        self.actors[slot] = self._new_actor(slot)


def finish(queue: Queue, sweep_id: str) -> bool:
    """What follows a version's last chunk: the temporaries that attempts which died mid-write left are
    removed, then the lake's `dims/sweeps` row is told the final state, and the queue notes that the
    lake knows (`recorded_state`). False when the lake refused either (the caller tries again later; a
    dispatcher starting finishes what one killed at that moment left, see `Queue.unrecorded`)."""
    row = queue.sweep(sweep_id)
    try:
        Lake(row.lake).remove_temporaries(row.kind, row.name, row.version)
    except OSError as exc:
        log.warning("could not remove temporary files of %s: %s", row.sweep_id, exc)
        return False
    return record_state(queue, sweep_id)


def cancel(queue: Queue, sweep_id: str) -> SweepRow:
    """Stop dispatching a sweep's chunks (what is committed stays) and record it in the lake."""
    row = queue.cancel(sweep_id)
    record_state(queue, row.sweep_id)
    return row


def reopen(queue: Queue, sweep_id: str) -> tuple[SweepRow, int]:
    """`chipsweep resume NAME`: retry a failed version's failed chunks, or continue a cancelled one;
    returns its row and the chunks left to run (a dispatcher runs them). A version that is queued or
    running is left as it is."""
    before = queue.sweep(sweep_id)
    row, left = queue.reopen(sweep_id)
    if row.state != before.state:
        record_state(queue, row.sweep_id)
    else:
        left = queue.pending_chunks(row.name, row.version)
    return row, left


def run_until(queue: Queue, settings: Settings, until: Callable[[], bool] | None = None, *,
              stop: threading.Event | None = None, on_tick: Callable[[], None] | None = None,
              dispatcher: Dispatcher | None = None) -> bool:
    """The one dispatcher loop every caller runs (CLI submit, resume and rerun --wait, the demo, the
    Python API, the server's dispatcher thread): dispatch until `until()` holds or `stop` is set, or
    wait while another process holds the dispatcher lease. Returns whether this process dispatched.
    The actor pool it made is closed on return (a `dispatcher` passed in stays its caller's), and a Ray
    this call started is shut down with it (a server starts its Ray first and keeps it)."""
    import ray

    started = not ray.is_initialized()
    ensure_ray(settings)
    disp = dispatcher or Dispatcher(queue, settings)
    try:
        return disp.run(until=until, stop=stop, on_tick=on_tick)
    finally:
        if dispatcher is None:
            disp.close()
        if started:
            ray.shutdown()


def over(queue: Queue, *sweep_ids: str) -> Callable[[], bool]:
    """A `run_until` condition: every named sweep version reached a final state."""
    return lambda: all(queue.sweep(s).state in FINAL_STATES for s in sweep_ids)
