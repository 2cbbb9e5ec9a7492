"""A sweep version's state in the lake's `dims/sweeps` table, which the queries read (their latest views take a name's
newest `done` version): written by the dispatcher as states change, by re-runs and resubmissions as they record a
version, and by `chipsweep verify` where the lake fell behind the queue."""

from __future__ import annotations

import logging

from chipsweep.lake import Lake
from chipsweep.service.queue import Queue

log = logging.getLogger("chipsweep.dispatch")


def record_state(queue: Queue, sweep_id: str) -> bool:
    """Write the version's state to its `dims/sweeps` row (queries use the newest `done` version); False
    when the lake could not take it (the caller tries again; `chipsweep verify` reports a stale row)."""
    row = queue.sweep(sweep_id)
    rec = queue.payload(row.name, row.version)["sweep"]
    try:
        Lake(row.lake).write_sweep_dim(row.name, row.version, kind=row.kind, spec=rec["spec"], hashes=rec["hashes"],
                                       configurations=row.configurations, created_at=row.created_at, state=row.state)
    except OSError as exc:  # the queue stays the record; the lake row catches up on the next change
        log.warning("could not record state %s of %s in the lake: %s", row.state, sweep_id, exc)
        return False
    queue.set_recorded(row.name, row.version, row.state)
    return True
