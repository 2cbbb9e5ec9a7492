"""The scheduler of `chipsweep serve`: re-runs sweeps on its own.

Each `tick(now)`:
1. loads the catalog (built-in files plus the `CHIPSWEEP_CATALOG` overlay) when one of its files
   changed since the last tick or the polling interval passed. A catalog that does not load (half-edited
   YAML, a negative price) is refused with its `file:line: reason`: the last good catalog stays in
   force and nothing re-runs from the broken one;
2. re-runs every sweep whose `schedule.on_change` is set and whose inputs' hashes differ from its
   latest version's (only the affected slices, see `service.rerun`);
3. when a sweep's `schedule.cron` expression (croniter) or `schedule.interval_s` comes due (counted
   from its latest version's creation or its last firing), compares the same hashes for it and re-runs
   it if they differ -- the schedule says when to look, the hashes what to recompute.

Time comes from an injectable `now` callable (epoch seconds), so tests drive the clock without sleeping.
A sweep whose latest version is still running is left for a later tick (its hashes are compared once it
is finished), so a change during a re-run yields one more version, not a lost update.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from croniter import croniter

from chipsweep.schemas import catalog as catalog_mod
from chipsweep.schemas.catalog import CATALOG_DIR, Catalog, CatalogError
from chipsweep.schemas.spec import parse_spec
from chipsweep.service.queue import Queue
from chipsweep.service.rerun import RerunResult, finish_if_stale, latest_rows, rerun_sweep

log = logging.getLogger("chipsweep.scheduler")

POLL_S = 30.0  # how often the scheduler looks at the catalog and the schedules
# an edit takes effect once the files have held still this long (scheduler clock): a file saved in two writes, its
# first half valid YAML, ran a full re-run on the half and another on the whole (a user audit)
SETTLE_S = 2.0
LAST_GOOD = "catalog-last-good.json"  # beside the queue: the last catalog the scheduler loaded good


class Scheduler:
    def __init__(self, queue: Queue, *, now: Callable[[], float] = time.time, poll_s: float = POLL_S,
                 overlay: str | None = None, catalog_dir: Path = CATALOG_DIR) -> None:
        self.queue = queue
        self.now = now
        self.poll_s = poll_s
        self._overlay = overlay
        self.catalog_dir = catalog_dir
        self.catalog: Catalog | None = None  # the last good catalog
        self.catalog_error: str | None = None  # why the newest catalog files were refused
        self._stamp: tuple[Any, ...] | None = None
        self._pending: tuple[tuple[Any, ...], float] | None = None  # files seen changed, and since when, not yet read
        self._loaded_at = float("-inf")
        self._checked: dict[str, tuple[Any, ...]] = {}  # sweep -> (version, state, catalog files) last compared
        self._fired: dict[str, float] = {}  # sweep -> when its cron/interval last came due (this process)
        self._lock = threading.Lock()  # one tick at a time in this process (the queue serialises others)

    @property
    def overlay(self) -> str | None:
        return self._overlay if self._overlay is not None else (os.environ.get("CHIPSWEEP_CATALOG") or None)

    # ---- the catalog --------------------------------------------------------------------------
    def _files_stamp(self) -> tuple[Any, ...]:
        files = sorted(self.catalog_dir.glob("*.yaml"))
        if self.overlay:
            files.append(Path(self.overlay))
        out: list[tuple[str, str | None]] = []
        for f in files:
            # content, not mtime: two saves within the clock's granularity must still count as a change
            try:
                out.append((str(f), hashlib.sha256(f.read_bytes()).hexdigest()))
            except OSError:
                out.append((str(f), None))
        return tuple(out)

    def refresh_catalog(self) -> bool:
        """Reload the catalog if its files changed (or the poll interval passed); True when a new good
        catalog was loaded or none was loaded before."""
        stamp = self._files_stamp()
        due = self.now() - self._loaded_at >= self.poll_s
        if stamp == self._stamp and self.catalog is not None and not due:
            return False
        if stamp != self._stamp and self.catalog is not None:  # an edit: read it once it has settled
            if self._pending is None or self._pending[0] != stamp:
                self._pending = (stamp, self.now())
            if self.now() - self._pending[1] < SETTLE_S:
                return False
        self._pending = None
        if stamp != self._stamp:
            # the built-in catalog is cached for the life of the process: a changed file must be re-read
            catalog_mod._load_builtin.cache_clear()
            catalog_mod._load_cached.cache_clear()
        self._stamp = stamp
        self._loaded_at = self.now()
        try:
            cat = catalog_mod.load_catalog(self.overlay, use_env=False)
        except CatalogError as exc:
            if self.catalog_error != str(exc):
                log.error("catalog refused, the last good one stays in force: %s", exc)
            self.catalog_error = str(exc)
            if self.catalog is None:  # a restart with the files broken: the last good one of the process before
                self.catalog = self._last_good()
            return False
        self.catalog_error = None
        if self.catalog is None or cat.hashes() != self.catalog.hashes():
            self._keep(cat)
        self.catalog = cat
        return True

    @property
    def last_good_path(self) -> Path:
        """Where the last good catalog is kept beside the queue, so that it outlives a restart (README: an edit that
        breaks the catalog is refused and the last good one stays in force; a restart used to leave none)."""
        return self.queue.path.parent / LAST_GOOD

    def _keep(self, cat: Catalog) -> None:
        tmp = self.last_good_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(cat.snapshot()))
            os.replace(tmp, self.last_good_path)
        except OSError as exc:  # the catalog still serves this process
            log.warning("could not keep the last good catalog at %s: %s", self.last_good_path, exc)

    def _last_good(self) -> Catalog | None:
        try:
            cat = Catalog.from_snapshot(json.loads(self.last_good_path.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            log.error("no good catalog yet (%s: %s): nothing is scheduled until the files are fixed",
                      self.last_good_path, exc)
            return None
        log.warning("the last good catalog of before the restart stays in force (%s)", self.last_good_path)
        return cat

    # ---- one tick -----------------------------------------------------------------------------
    def tick(self) -> list[RerunResult]:
        """Check the catalog and every schedule once; returns the re-runs decided (created or not)."""
        with self._lock:
            self.refresh_catalog()
            cat = self.catalog
            if cat is None:  # no good catalog yet: nothing can be resolved
                return []
            if self._pending is not None:
                # an edit not yet read: judged against the catalog before it, a version another process made from the
                # edited files (`rerun --changed`) read as changed and was re-run back to the old catalog
                return []
            results: list[RerunResult] = []
            for row in latest_rows(self.queue):
                if row.state == "cancelled":
                    continue
                try:  # any sweep's, scheduled or not: a re-run that died mid-way left it invisible to the dispatcher
                    row = finish_if_stale(self.queue, row)
                except Exception:
                    log.exception("finishing %s, left preparing, failed", row.sweep_id)
                schedule = parse_spec(self.queue.spec(row.name, row.version)).schedule
                if schedule is None:
                    continue
                since = max(row.created_at, self._fired.get(row.name, float("-inf")))
                fired = self._due(schedule.cron, schedule.interval_s, since)  # "cron", "interval" or None
                due = fired is not None
                if not due and not schedule.on_change:
                    continue
                seen = (row.version, row.state, self._stamp)
                if not due and self._checked.get(row.name) == seen:
                    continue  # same version, same catalog files: its hashes were compared already
                try:
                    res = rerun_sweep(self.queue, row, cat, trigger=fired or "change", now=self.now())
                except Exception as exc:  # one sweep's trouble must not stop the others' schedules
                    log.exception("re-run of %s failed", row.sweep_id)
                    res = RerunResult(row.name, row.version, "error", message=f"{type(exc).__name__}: {exc}")
                if res.outcome != "deferred":  # a running version is looked at again (it may have been left preparing)
                    self._checked[row.name] = seen
                if due and res.outcome != "deferred":  # a firing met by a running version waits for it
                    self._fired[row.name] = self.now()
                if res.outcome == "rerun":
                    log.info("re-ran %s as version %s (%s): %d chunks evaluated, %d re-priced, %d carried", row.name,
                             res.version, ", ".join(res.changed) or "scheduled", res.chunks_evaluated,
                             res.chunks_repriced, res.chunks_carried)
                results.append(res)
            return results

    def _due(self, cron: str | None, interval_s: float | None, since: float) -> str | None:
        """Which schedule fired in (since, now]: "interval", "cron" (a version's `trigger` in `history`), or None."""
        now = self.now()
        if interval_s is not None and now - since >= interval_s:
            return "interval"
        if cron:
            start = datetime.fromtimestamp(since, tz=timezone.utc)
            nxt = croniter(cron, start).get_next(float)
            return "cron" if nxt <= now else None
        return None

    # ---- the thread of `serve` ----------------------------------------------------------------
    def run(self, stop: threading.Event, every_s: float = 1.0) -> None:
        """Tick until `stop` is set (every `every_s`; the catalog files are stat-ed each tick, so an
        edit is seen within a second, and fully reloaded every `poll_s`)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # keep scheduling; the next tick tries again
                log.exception("scheduler tick failed")
            stop.wait(every_s)


class SchedulerThread:
    """The scheduler in a daemon thread, stopped with the server."""

    def __init__(self, queue: Queue, **kw: Any) -> None:
        self.scheduler = Scheduler(queue, **kw)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.scheduler.run, args=(self.stop,), name="chipsweep-scheduler",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
