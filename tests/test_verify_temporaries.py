"""A temporary a killed writer left among a version's dimension tables (`dims/sweeps/.../.part-0.parquet.*.tmp`):
removed when the version ends, reported by `chipsweep verify` once the version is finished, and deleted by
`--repair`; while the version runs, or while another process may be writing it, it is left alone. Real
files in tmp_path, no Ray: the versions are queued and cancelled, which records their final state."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from chipsweep.lake import Lake
from chipsweep.lake.layout import temporary_name
from chipsweep.lake.store import DIM_WRITE_GRACE_S
from chipsweep.schemas.columns import dim_sweeps_row
from chipsweep.service.dispatch import cancel, finish, submit
from chipsweep.service.queue import Queue
from chipsweep.service.verify import verify
from tests.conftest import training_spec


def _left_by_a_killed_writer(lake: Lake, name: str, age_s: float = DIM_WRITE_GRACE_S + 60) -> Path:
    """The temporary of a `dims/sweeps` write whose process died between the write and the move."""
    final = Path(lake.dim_path("sweeps", name, 1))
    tmp = final.parent / temporary_name(final.name)
    pq.write_table(dim_sweeps_row("training", "{}", "{}", 6912, "running", None), tmp)
    when = time.time() - age_s
    os.utime(tmp, (when, when))
    return tmp


def _queued(home, name: str) -> tuple[Queue, str]:  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    row = submit(training_spec(name), settings=home, queue=queue, chunk_size=3000)
    return queue, row.sweep_id


def test_a_finished_versions_dims_temporary_is_reported_and_repair_deletes_it(home) -> None:  # type: ignore[no-untyped-def]
    queue, sweep_id = _queued(home, "dims-tmp")
    lake = Lake(home.lake)
    cancel(queue, sweep_id)  # final, and the lake told so
    left = _left_by_a_killed_writer(lake, "dims-tmp")
    in_flight = _left_by_a_killed_writer(lake, "dims-tmp", age_s=1)  # a state being recorded right now
    report = verify(queue, home.lake, "dims-tmp")
    assert [(p.kind, p.path) for p in report.problems] == [
        ("temporary", f"dims/sweeps/sweep=dims-tmp/version=1/{left.name}")]
    repaired = verify(queue, home.lake, "dims-tmp", repair=True)
    assert repaired.ok and not left.exists() and in_flight.exists()
    assert {"action": "deleted", "path": f"dims/sweeps/sweep=dims-tmp/version=1/{left.name}",
            "why": "temporary"} in repaired.repaired


def test_a_running_versions_dims_temporary_is_left_alone_until_its_end_removes_it(home) -> None:  # type: ignore[no-untyped-def]
    queue, sweep_id = _queued(home, "dims-run")
    lake = Lake(home.lake)
    left = _left_by_a_killed_writer(lake, "dims-run")
    assert verify(queue, home.lake, "dims-run").ok  # queued: its dims may be written by another process
    assert verify(queue, home.lake, "dims-run", repair=True).ok and left.exists()
    queue.cancel(sweep_id)  # the version ends; what follows a version's end (service/dispatch.py `finish`)
    assert finish(queue, sweep_id)
    assert not left.exists()
    assert verify(queue, home.lake, "dims-run").ok
