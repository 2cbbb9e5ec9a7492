"""Re-runs: which sweeps a catalog change affects, and a new version that recomputes only those slices.

Each version records the content hash of every catalog entry it used (`Sweep.hashes`, over the catalog
with the spec's what-if overrides applied). A re-run compares them with the current catalog's:

* an entry the sweep does not touch (a chip that is on none of its axes) changes nothing;
* a changed chip, model or cluster re-evaluates only the chunks whose configuration range contains it
  (the ids present in a contiguous flat-index range follow from the mixed-radix strides, without
  decoding every configuration); every other chunk is carried over;
* a change that only moves prices, electricity, carbon intensity or PUE (`workers/reprice.py`) re-prices
  the stored rows of those chunks instead (training versions that store every row);
* a changed calibration set, ASIC constant or default, a changed set of catalog ids (integer chip and
  model ids are positions in sorted-id order, so an added chip shifts them) or an axis that now
  resolves differently (a filter that matches a new chip) re-evaluates the whole sweep.

Carried chunks are hard links (a local lake) or copies (`pyarrow.fs`, e.g. s3) of the previous
version's committed Parquet files under the same part name, so every version directory is complete on
its own, queries over the new version need no knowledge of the old one, and `gc` can delete an old
version without touching the files of a newer one (part files are never modified in place, so a shared
inode is safe). The new version is recorded in state `preparing` -- invisible to the dispatcher --
until its carried files are in place; the previous version is never touched, so queries running on it
are not disturbed. Two re-runs racing on one sweep make one version: the queue checks, in the same
BEGIN IMMEDIATE transaction that inserts it, that the base version is still the latest.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chipsweep.lake import Lake
from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.schemas.errors import SpecError
from chipsweep.schemas.sweep import Sweep, resolve
from chipsweep.schemas.vocab import IN_FLIGHT_STATES
from chipsweep.service.queue import Queue, SweepRow, chunk_ranges_of, spec_changes
from chipsweep.service.recorded import record_state
from chipsweep.workers import reprice
from chipsweep.workers.context import measured_reach
from chipsweep.workers.space import strides

log = logging.getLogger("chipsweep.rerun")

REF_TABLES = {"chip_idx": "chips", "model_idx": "models", "cluster_idx": "clusters"}
GLOBAL_KINDS = ("calibration", "asic", "defaults")  # entries every configuration of a kind that reads them depends on
# the catalog-wide entries each sweep kind reads (a prefix names every entry of it): training reads calibration.yaml
# and never asic.yaml; serving rows read asic.yaml's serving, inference and workload sections and the ASIC model's
# quantisation table; ASIC designs their own section and the workload defaults; every kind the defaults
READS: dict[str, tuple[str, ...]] = {
    "training": ("calibration/", "defaults/"),
    "inference": ("asic/", "defaults/"),
    "asic": ("asic/asic", "asic/workload_defaults", "defaults/"),
}


def reads(kind: str, key: str) -> bool:
    """Whether configurations of sweep kind `kind` depend on the catalog-wide entry `key` (`asic/serving`, ...)."""
    return key.split("/", 1)[0] in GLOBAL_KINDS and any(key == r or (r.endswith("/") and key.startswith(r))
                                                         for r in READS[kind])
PREPARE_STALE_S = 120.0  # a version preparing this long was left by a process that died (preparing takes seconds)


@dataclass
class RerunResult:
    """What one re-run decision did; `as_json` is the CONTRACT.md `rerun --json` item."""

    sweep_id: str
    version: int | None  # the new version, or the current one when nothing was created
    outcome: str  # rerun | unchanged | deferred (previous version still running) | raced | error
    changed: list[str] = field(default_factory=list)  # catalog keys (`chips/<id>`) that changed
    chunks_evaluated: int = 0
    chunks_carried: int = 0
    chunks_repriced: int = 0  # chunks whose stored rows get new prices (the physics is not run again)
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "version": self.version, "changed": self.changed,
                "chunks_evaluated": self.chunks_evaluated, "chunks_carried": self.chunks_carried,
                "chunks_repriced": self.chunks_repriced,
                "outcome": self.outcome, "message": self.message}


# ------------------------------------------------------------------------------------------------
# which catalog entries a sweep, and a slice of it, depends on
# ------------------------------------------------------------------------------------------------
def _ids(sweep: Sweep, table: str) -> list[str]:
    return sorted(getattr(sweep.catalog, table))


def _with_cluster_chips(sweep: Sweep, keys: set[str]) -> set[str]:
    """A cluster depends on its chip as well."""
    for key in list(keys):
        if key.startswith("clusters/"):
            chip = sweep.catalog.clusters[key.split("/", 1)[1]].chip
            if chip:
                keys.add(f"chips/{chip}")
    return keys


def borrowed(sweep: Sweep, keys: set[str]) -> set[str]:
    """`chips/<id>` of the chips whose GEMM measurement (`gemm_measured`) the unmeasured chips in `keys` take as their
    share of peak (`context.measured_reach`: a twin's, a core architecture's or a family's). Only a change to that
    measurement re-runs through them (`plan`)."""
    chips = sweep.catalog.chips
    out: set[str] = set()
    for key in [k for k in keys if k.startswith("chips/")]:
        own = chips.get(key.split("/", 1)[1])
        if own is not None and own.gemm_fraction is None and (m := measured_reach(own, chips.values())):
            out.update(f"chips/{cid}" for cid in m[1])
    return out


def touched_entries(sweep: Sweep) -> set[str]:
    """`kind/id` of every chip, model and cluster some configuration of the sweep uses."""
    keys: set[str] = set()
    for axis in sweep.axes:
        table = REF_TABLES.get(axis.key)
        if table:
            keys.update(f"{table}/{v}" for v in axis.values)
    for key, code in sweep.fixed.items():
        table = REF_TABLES.get(key)
        if table:
            keys.add(f"{table}/{_ids(sweep, table)[int(code)]}")
    return _with_cluster_chips(sweep, keys)


def chunk_entries(sweep: Sweep, start: int, stop: int) -> set[str]:
    """`kind/id` of the chips, models and clusters configurations start..stop use. Along axis j the
    index is (i // stride_j) % n_j, so a contiguous range visits the consecutive values
    start // stride_j .. (stop - 1) // stride_j (mod n_j): a handful of integers, never the rows."""
    keys: set[str] = set()
    sizes = sweep.sizes
    for axis, stride, n in zip(sweep.axes, strides(sizes), sizes, strict=True):
        table = REF_TABLES.get(axis.key)
        if not table or stop <= start:
            continue
        first, last = start // stride, (stop - 1) // stride
        present = range(n) if last - first + 1 >= n else np.unique(np.arange(first, last + 1) % n)
        keys.update(f"{table}/{axis.values[int(i)]}" for i in present)
    for key, code in sweep.fixed.items():
        table = REF_TABLES.get(key)
        if table:
            keys.add(f"{table}/{_ids(sweep, table)[int(code)]}")
    return _with_cluster_chips(sweep, keys)


def changed_keys(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def field_changes(old: Catalog, new: Catalog, keys: list[str]) -> list[dict[str, Any]]:
    """Per changed entry, the fields that moved: {entry, field, old, new} (`history` shows them)."""
    out: list[dict[str, Any]] = []
    for key in keys:
        kind, _, ident = key.partition("/")
        a, b = _entry_dump(old, kind, ident), _entry_dump(new, kind, ident)
        if a is None or b is None:
            out.append({"entry": key, "field": None, "old": None if a is None else "(present)",
                        "new": None if b is None else "(present)"})
            continue
        for name in sorted(set(a) | set(b)):
            if name != "sources" and a.get(name) != b.get(name):
                out.append({"entry": key, "field": name, "old": a.get(name), "new": b.get(name)})
    return out


def _entry_dump(cat: Catalog, kind: str, ident: str) -> dict[str, Any] | None:
    if kind in ("chips", "models", "clusters"):
        entry = getattr(cat, kind).get(ident)
        return None if entry is None else entry.model_dump(mode="json", by_alias=True)
    if kind == "calibration":
        cal = cat.calibration.get(ident)
        return None if cal is None else json.loads(json.dumps(cal.model_dump(mode="json"), default=str))
    data = (cat.asic or {}).get(ident) if kind == "asic" else cat.defaults
    # one field per constant, named by its path (`defaults/all.usd_per_kwh`, `asic/asic.mac_energy_int8_pj.7`,
    # `asic/serving.efficiency[12].mem_bw_fraction`), so `history` names what moved; a default is its value
    return _flatten(data, skip_docs=True, top="defaults" if kind == "defaults" else None) if data else None


def _flatten(data: Any, *, skip_docs: bool, top: str | None = None, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested mappings as {"a.b.c": value}: the entries of section `top` without the section's
    name, a documented constant ({value, unit, source}) as its value, documentation fields left out."""
    if isinstance(data, dict) and skip_docs and "value" in data:
        return _flatten(data["value"], skip_docs=skip_docs, prefix=prefix)
    if isinstance(data, list) and any(isinstance(v, dict) for v in data):  # a list of sets: one field per leaf
        out_list: dict[str, Any] = {}
        for i, v in enumerate(data):
            out_list.update(_flatten(v, skip_docs=skip_docs, prefix=f"{prefix}[{i}]"))
        return out_list
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if skip_docs and key in ("source", "unit", "notes", "status"):
            continue
        path = "" if not prefix and key == top else f"{prefix}.{key}" if prefix else str(key)
        out.update(_flatten(value, skip_docs=skip_docs, prefix=path))
    return out


# ------------------------------------------------------------------------------------------------
# the plan of a re-run, and carrying it out
# ------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    base: SweepRow
    sweep: Sweep  # the spec resolved against the current catalog
    changed: list[str]  # relevant changed keys
    changes: list[dict[str, Any]]
    carried: dict[int, tuple[int, int]]  # chunk -> (rows, bytes) copied from the base version
    repriced: set[int] = field(default_factory=set)  # chunks whose stored rows are re-priced, not re-evaluated


def plan(queue: Queue, base: SweepRow, catalog: Catalog, *, force: bool = False,
         submitted: Sweep | None = None) -> Plan | None:
    """What a re-run of `base` against `catalog` would do; None when nothing it uses changed (and not
    `force`d). Raises `SpecError` when the spec no longer resolves (a chip it names was removed).
    `submitted`: a spec submitted again, already resolved (`resubmit`), in place of `base`'s own spec; its plan is
    never None, and its first axis may have grown by values appended at its end."""
    old = Sweep.from_record(queue.payload(base.name, base.version)["sweep"])
    sweep = submitted if submitted is not None else resolve(old.spec, catalog)  # the new version's one resolution
    old_catalog = old.catalog
    axes_same = json.loads(json.dumps(sweep.axes_json())) == json.loads(json.dumps(old.axes_json()))
    grown = not axes_same and _grown(queue, base, old, sweep)
    changed = changed_keys(old.hashes, sweep.hashes)
    direct = touched_entries(sweep)
    touched = direct | borrowed(sweep, direct)  # and the chips whose GEMM measurement its chips borrow
    relevant = [k for k in changed if k in touched or reads(sweep.kind, k)]
    # an entry whose change is only its documentation (its sources: an overlay names its file there) or that the
    # spec's own overrides cancel (both catalogs are the effective ones) changes no result; a chip the sweep only
    # borrows a GEMM measurement from changes it only through that measurement
    moved = {k: field_changes(old.catalog, sweep.catalog, [k]) for k in relevant}
    measured = {k for k, m in moved.items() if any(c["field"] in (None, "gemm_measured") for c in m)}
    # (a catalog-wide entry the kind reads -- defaults, calibration, asic sections -- reaches every chunk)
    relevant = [k for k in relevant if moved[k] and (k in direct or k in measured or reads(sweep.kind, k))]
    if not relevant and axes_same and not force and submitted is None:
        return None
    ids_same = all(sorted(getattr(old_catalog, t)) == sorted(getattr(sweep.catalog, t)) for t in REF_TABLES.values())
    order_same = [a.name for a in old.axes] == [a.name for a in sweep.axes]  # the flat index means the same
    # what a configuration computes besides its axes (a resubmitted spec may change them; a re-run's never does)
    settings_same = (old.fixed == sweep.fixed and old.objectives == sweep.objectives
                     and old.spec.store == sweep.spec.store == base.store)
    priced = set() if force else price_only_keys(base, old_catalog, sweep.catalog, relevant)
    whole = (force or not (axes_same or grown) or not order_same or not ids_same or not settings_same
             or (sweep.configurations != base.configurations and not grown)
             or any(reads(sweep.kind, k) and k not in priced for k in relevant))
    carried: dict[int, tuple[int, int]] = {}
    repriced: set[int] = set()
    if not whole:
        hit = set(relevant)
        everywhere = {k for k in relevant if reads(sweep.kind, k)}  # a price-only default
        for c in queue.chunk_rows(base.name, base.version):
            if c["state"] != "done":
                continue
            # a chunk's own chips, models and clusters, and the measurements its chips borrow
            own = chunk_entries(sweep, c["start"], c["stop"])
            uses = (own & hit) | everywhere | ((borrowed(sweep, own) & measured & hit) if measured else set())
            if not uses:
                carried[c["chunk"]] = (int(c["rows"] or 0), int(c["bytes"] or 0))
            elif uses <= priced:
                repriced.add(int(c["chunk"]))
    changes = field_changes(old_catalog, sweep.catalog, relevant)
    if not axes_same:
        changes.append({"entry": "axes", "field": None, "old": old.axes_json(), "new": sweep.axes_json()})
    return Plan(base, sweep, relevant, changes, carried, repriced)


def _grown(queue: Queue, base: SweepRow, old: Sweep, new: Sweep) -> bool:
    """Whether `new` is `old` with values appended to its first (slowest) axis only: every configuration of `old` keeps
    its flat index, and `base`'s chunks are the first chunks `new` is cut into, so they can be carried as they are."""
    a, b = old.axes_json(), new.axes_json()
    names = list(a)
    if not names or names != list(b) or any(json.dumps(a[n]) != json.dumps(b[n]) for n in names[1:]):
        return False
    first_old, first_new = json.loads(json.dumps(a[names[0]])), json.loads(json.dumps(b[names[0]]))
    if len(first_new) <= len(first_old) or first_new[: len(first_old)] != first_old:
        return False
    ranges = [(int(c["start"]), int(c["stop"])) for c in queue.chunk_rows(base.name, base.version)]
    return chunk_ranges_of(new.record(), new.configurations, base.chunk_size)[: len(ranges)] == ranges


def price_only_keys(base: SweepRow, old: Catalog, new: Catalog, keys: list[str]) -> set[str]:
    """The changed entries whose every moved field only prices (`workers.reprice.PRICE_FIELDS`), when the
    version can be re-priced at all: their chunks are re-priced instead of re-evaluated."""
    if not reprice.can_reprice(base.kind, base.store):
        return set()
    out = set()
    for key in keys:
        kind, _, ident = key.partition("/")
        if kind == "defaults":
            a, b = old.defaults or None, new.defaults or None
        elif kind == "chips":
            a, b = _entry_dump(old, kind, ident), _entry_dump(new, kind, ident)
        else:
            continue
        if reprice.price_only(base.kind, kind, a, b):
            out.add(key)
    return out


def execute(queue: Queue, p: Plan, *, trigger: str, now: float | None = None) -> RerunResult:
    """Record the planned version, put its carried files in place, then release it to the dispatcher."""
    base, sweep = p.base, p.sweep
    row = queue.add_version(
        base=base, configurations=sweep.configurations, record=sweep.record(), carried=p.carried, trigger=trigger,
        changes=p.changes, repriced=p.repriced, created_at=now,
    )
    if row is None:
        return RerunResult(base.name, queue.sweep(base.name).version, "raced", p.changed,
                           message="another re-run of this version was recorded first")
    row = _prepare(queue, row, sweep)
    total = row.chunks_total
    return RerunResult(row.name, row.version, "rerun", p.changed, total - len(p.carried) - len(p.repriced),
                       len(p.carried), len(p.repriced))


def _prepare(queue: Queue, row: SweepRow, sweep: Sweep) -> SweepRow:
    """Dimension tables and carried files of a `preparing` version, then release it. Idempotent (files
    already in place are kept, the release happens once), so a version left preparing by a process
    that died can be finished by any other."""
    lake = Lake(row.lake)
    try:
        lake.write_dims(sweep, row.version, created_at=row.created_at)
        for c in queue.chunk_rows(row.name, row.version):
            if c["carried_from"] is not None:
                lake.carry(row.kind, row.name, int(c["carried_from"]), row.version, int(c["chunk"]))
    except BaseException:
        queue.release_version(row.name, row.version, failed=True)  # never a half version that looks complete
        raise
    row = queue.release_version(row.name, row.version)
    if row.state in ("done", "failed"):
        record_state(queue, row.sweep_id)
    return row


def finish_preparing(queue: Queue, row: SweepRow) -> SweepRow:
    """Finish a version its re-run left `preparing` (the process died between recording and release)."""
    return _prepare(queue, row, Sweep.from_record(queue.payload(row.name, row.version)["sweep"]))


def finish_if_stale(queue: Queue, row: SweepRow) -> SweepRow:
    """`row`, finished first where a re-run that died left it `preparing` longer than PREPARE_STALE_S."""
    if row.state == "preparing" and time.time() - row.created_at > PREPARE_STALE_S:
        log.warning("finishing %s, left preparing by a re-run that did not complete", row.sweep_id)
        return finish_preparing(queue, row)
    return row


def latest_rows(queue: Queue, name: str | None = None) -> list[SweepRow]:
    """The latest version of each sweep (or of `name`)."""
    if name is not None:
        return [queue.sweep(name)]
    return [queue.sweep(n) for n in queue.names()]


def rerun_sweep(queue: Queue, row: SweepRow, catalog: Catalog, *, force: bool = False,
                trigger: str = "change", now: float | None = None) -> RerunResult:
    """Re-run one sweep's latest version `row` if its inputs changed (or `force`); `now` (the
    scheduler's clock) becomes the new version's creation time, from which its schedule counts."""
    row = finish_if_stale(queue, row)
    if row.state in IN_FLIGHT_STATES:
        # the next tick compares against this version's hashes once it is finished: deferred, not lost
        return RerunResult(row.name, row.version, "deferred", message=f"version {row.version} is still {row.state}")
    try:
        p = plan(queue, row, catalog, force=force)
    except SpecError as exc:
        return RerunResult(row.name, row.version, "error", message=f"the spec no longer resolves: {exc}")
    if p is None:
        return RerunResult(row.name, row.version, "unchanged")
    return execute(queue, p, trigger=trigger, now=now)


def resubmit(queue: Queue, base: SweepRow, sweep: Sweep, catalog: Catalog, *, lake: str,
             chunk_size: int | None = None) -> RerunResult | None:
    """A spec submitted again under the name of `base` (its latest version), as a re-run of `base`: the chunks whose
    configurations and catalog entries are unchanged are carried, the rest evaluated (or re-priced). None when nothing
    can be carried -- `base` not done, another lake or chunk size, every chunk changed -- and the caller records a
    plain version instead (a re-run's `history`, `trigger` "submit"; `submit(reevaluate=True)` always does)."""
    if base.state != "done" or base.lake != lake or (chunk_size and chunk_size != base.chunk_size):
        return None
    p = plan(queue, base, catalog, submitted=sweep)
    if p is None or not (p.carried or p.repriced):
        return None
    p.changes = spec_changes(queue.spec(base.name, base.version), sweep.spec.canonical()) + [
        c for c in p.changes if c["entry"] != "axes"]  # the spec's own axis change says it already
    res = execute(queue, p, trigger="submit")
    return res if res.outcome == "rerun" else None  # raced: a plain version after the one recorded first


def rerun(queue: Queue, *, name: str | None = None, changed_only: bool = True, catalog: Catalog | None = None,
          trigger: str = "manual") -> list[RerunResult]:
    """`chipsweep rerun`: re-run `name` (or every sweep) whose inputs changed; without `changed_only`,
    re-evaluate `name` in full against the current catalog. A broken catalog raises `CatalogError`
    (file:line: reason) before anything is recorded."""
    cat = catalog if catalog is not None else load_catalog()
    out = []
    for row in latest_rows(queue, name):
        if name is None and row.state == "cancelled":
            continue
        out.append(rerun_sweep(queue, row, cat, force=not changed_only, trigger=trigger))
    return out


def gc(queue: Queue, *, keep: int, name: str | None = None) -> list[str]:
    """Remove all but the `keep` newest versions of each sweep (queue rows, facts, dimensions). The
    newest finished version and versions still in flight are always kept. Carried files of newer
    versions are their own links or copies, so they stay."""
    removed: list[str] = []
    for latest in latest_rows(queue, name):
        versions = queue.versions(latest.name)
        newest_done = max((v["version"] for v in versions if v["state"] == "done"), default=None)
        for v in versions[: max(0, len(versions) - keep)]:
            if v["state"] in IN_FLIGHT_STATES or v["version"] == newest_done:
                continue
            row = queue.sweep(f"{latest.name}@{v['version']}")
            Lake(row.lake).delete_version(row.kind, row.name, row.version)
            queue.delete_version(row.name, row.version)
            removed.append(row.sweep_id)
    return removed
