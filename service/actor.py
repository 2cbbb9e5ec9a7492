"""The Ray actor that turns one chunk of a sweep into one committed Parquet file.

It receives the version's resolved sweep (`Sweep.record()`, resolved once at submit) and returns only
small metadata (rows, bytes, seconds), so the driver never holds result rows. The evaluator built from
a record is cached per version, so a chunk costs its evaluation and its write, nothing more. The class
is plain Python; `service.dispatch` wraps it with `ray.remote`.

An OS error of the lake (reading whether the chunk is committed, writing it) is raised as
`LakeUnavailable`: the dispatcher makes the chunk wait with back-off instead of spending an attempt.
Only an error of the evaluation itself counts against `max_attempts`.

Test hooks (read once per chunk, never per configuration): CHIPSWEEP_FAULT_CHUNK="3,7" makes the
evaluation of those chunk numbers raise; CHIPSWEEP_FAULT_DELAY_S=0.2 sleeps that long before each
chunk, so fault tests can kill things while a sweep is still running.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chipsweep.lake import Lake
from chipsweep.lake.store import LakeUnavailable
from chipsweep.schemas.sweep import Sweep
from chipsweep.workers.chunk import ChunkEvaluator
from chipsweep.workers.runtime import tune_allocator

FAULT_CHUNK_ENV = "CHIPSWEEP_FAULT_CHUNK"
FAULT_DELAY_ENV = "CHIPSWEEP_FAULT_DELAY_S"


class InjectedFault(RuntimeError):
    """Raised for chunks named in CHIPSWEEP_FAULT_CHUNK (fault-injection tests only)."""


class Withdrawals:
    """The sweep versions whose chunks a worker must not begin: cancelled while their chunks waited behind the one
    the worker runs. The dispatcher sets them; a worker asks before each chunk. (Ray's own cancel of a queued actor
    task is not reliable with task retries on: the retry runs it.)"""

    def __init__(self) -> None:
        self._stopped: set[tuple[str, int]] = set()

    def set(self, keys: list[tuple[str, int]]) -> None:
        self._stopped = {(str(n), int(v)) for n, v in keys}

    def withdrawn(self, name: str, version: int) -> bool:
        return (name, int(version)) in self._stopped


class ChunkWorker:
    """Evaluates chunks and commits them to the lake; one per CPU in the dispatcher's pool."""

    def __init__(self, withdrawals: str | None = None) -> None:
        tune_allocator()
        # the registry's actor name, not its handle: an actor restarted in place re-runs its constructor from its
        # arguments, and a handle is an argument Ray keeps in the object store (core_worker warns of each such
        # actor on the user's terminal, ray-project/ray#53727); the name is inline and looked up when first asked
        self._withdrawals_name = withdrawals
        self._withdrawals: Any = None
        self._evaluators: OrderedDict[tuple[str, int], ChunkEvaluator] = OrderedDict()
        self.where = f"{socket.gethostname()}:{os.getpid()}:{_node_id()[:8]}"

    def ping(self) -> str:
        return self.where

    def run(self, job: dict[str, Any], chunk: int, start: int, stop: int,
            repriced_from: int | None = None) -> dict[str, Any]:
        """Evaluate configurations start..stop (or, with `repriced_from`, re-price that version's rows of the
        chunk) and commit them as part `chunk`; returns rows, bytes, seconds, worker, skipped."""
        t0 = time.perf_counter()
        kind, name, version = job["kind"], job["name"], int(job["version"])
        if self._withdrawn(name, version):  # cancelled while it waited behind this worker's running chunk
            return {"chunk": chunk, "rows": 0, "bytes": 0, "seconds": 0.0, "worker": self.where, "skipped": True,
                    "withdrawn": True}
        _maybe_fault(chunk)
        try:
            lake = Lake(job["lake"])
            done = lake.part_info(kind, name, version, chunk)
        except OSError as exc:
            raise LakeUnavailable.of(exc, f"reading chunk {chunk} of {name}@{version}") from None
        if done is not None:  # committed by an earlier attempt whose report was lost
            return {"chunk": chunk, "rows": done.rows, "bytes": done.bytes, "seconds": time.perf_counter() - t0,
                    "worker": self.where, "skipped": True}
        ev = self._evaluator(job)
        base = None if repriced_from is None else self._stored(lake, kind, name, int(repriced_from), chunk)
        table = ev.evaluate(int(start), int(stop)) if base is None else ev.reprice(base, int(start), int(stop))
        try:
            info = lake.write_part(table, kind, name, version, chunk)
        except OSError as exc:
            raise LakeUnavailable.of(exc, f"writing chunk {chunk} of {name}@{version}") from None
        return {"chunk": chunk, "rows": info.rows, "bytes": info.bytes, "seconds": time.perf_counter() - t0,
                "worker": self.where, "skipped": False}

    def _withdrawn(self, name: str, version: int) -> bool:
        """Whether the dispatcher withdrew this version's chunks (no answer: begin it, as before cancels were told)."""
        if self._withdrawals_name is None:
            return False
        import ray

        try:
            if self._withdrawals is None:
                self._withdrawals = ray.get_actor(self._withdrawals_name)
            return bool(ray.get(self._withdrawals.withdrawn.remote(name, version), timeout=10.0))
        except Exception:  # the registry is gone (its node died): the chunk runs
            return False

    @staticmethod
    def _stored(lake: Lake, kind: str, name: str, version: int, chunk: int) -> pa.Table | None:
        """The committed rows of `chunk` in `version` (None when that version's file is gone: a `gc`
        removed it, so the chunk is evaluated instead)."""
        try:
            return pq.read_table(lake.part_path(kind, name, version, chunk), filesystem=lake.fs)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LakeUnavailable.of(exc, f"reading chunk {chunk} of {name}@{version} to re-price it") from None

    def _evaluator(self, job: dict[str, Any]) -> ChunkEvaluator:
        key = (job["name"], int(job["version"]))
        ev = self._evaluators.get(key)
        if ev is None:
            ev = ChunkEvaluator(Sweep.from_record(job["sweep"]))
            self._evaluators[key] = ev
            while len(self._evaluators) > 4:
                self._evaluators.popitem(last=False)
        else:
            self._evaluators.move_to_end(key)
        return ev


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (tests call the class directly)
        return "local"


def _maybe_fault(chunk: int) -> None:
    delay = os.environ.get(FAULT_DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    spec = os.environ.get(FAULT_CHUNK_ENV)
    if spec and str(chunk) in {s.strip() for s in spec.split(",")}:
        raise InjectedFault(f"injected fault: {FAULT_CHUNK_ENV} names chunk {chunk}")
