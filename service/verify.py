"""`chipsweep verify`: the queue and the lake compared, file by file, and (`--repair`) put right.

For every sweep version the queue knows (or the versions of one sweep):

    missing     a chunk done in the queue has no committed part file
    truncated   a part file too short to hold a Parquet footer, or without its closing magic bytes
    corrupt     a part file whose footer or `idx` column cannot be read
    rows        a part's row count differs from what the queue recorded (or, with store: all, from its
                chunk's number of configurations)
    idx         an index outside its chunk's range [start, stop), or repeated in its part; chunk ranges
                do not overlap, so no index is duplicated across the version either
    extra       a part file of a chunk that is not done (failed, or of a finished version's unrun chunk)
    temporary   a temporary left by a write that died, among the facts or dimension tables of a version
                no dispatcher is writing any more (a dimension table's temporary younger than
                `store.DIM_WRITE_GRACE_S` may be another process recording a state: not reported)
    dims        a dimension file missing, or `dims/sweeps` recording another state than the queue

(A version a live dispatcher has not finished yet -- its temporaries removed and its state told to the
lake, right after its last chunk -- is work in progress: its temporaries and state are not reported.)

and over the whole lake (when no sweep is named):

    stray       anything under `kind=`/`dims/` that is no file of a version the queue knows: a partition
                whose name does not parse (`sweep=nl\\n`), a version the queue never had, a stray file

`--repair` re-queues the chunks that are missing, truncated, corrupt or wrong (a damaged file is first
moved to quarantine), moves extra and stray files to `<lake>/_quarantine/<UTC time>/<same path>`
(nothing is deleted but temporaries; the lake's views never look in `_quarantine`), and rewrites dims
files from the queue's record. A running `chipsweep serve` (or `chipsweep resume`) then re-runs the
re-queued chunks.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from chipsweep.lake import Lake
from chipsweep.lake.layout import DIM_PART, DIMS, is_part, is_temporary, part_name
from chipsweep.lake.store import temporary_in_flight
from chipsweep.schemas.columns import KINDS
from chipsweep.schemas.spec import valid_name
from chipsweep.schemas.sweep import Sweep
from chipsweep.schemas.vocab import FINAL_STATES
from chipsweep.service.queue import Queue, SweepRow, parse_id
from chipsweep.service.recorded import record_state

QUARANTINE = "_quarantine"
_PART_NO = re.compile(r"part-(\d+)\.parquet")
REQUEUE_KINDS = ("missing", "truncated", "corrupt", "rows", "idx")


@dataclass
class Finding:
    kind: str  # missing | truncated | corrupt | rows | idx | extra | temporary | dims | stray
    path: str  # relative to the lake root
    detail: str
    sweep_id: str | None = None
    chunk: int | None = None


@dataclass
class VersionReport:
    sweep_id: str
    kind: str
    state: str
    store: str
    configurations: int
    chunks_total: int
    chunks_done: int
    part_files: int = 0
    rows_in_lake: int = 0
    rows_expected: int = 0  # the rows the queue recorded for its done chunks
    distinct_idx: int = 0
    duplicate_idx: int = 0


@dataclass
class Report:
    lake: str
    versions: list[VersionReport] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    quarantine: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"lake": self.lake, "ok": self.ok, "sweeps": [asdict(v) for v in self.versions],
                "problems": [asdict(p) for p in self.problems], "repaired": self.repaired,
                "quarantine": self.quarantine}


def verify(queue: Queue, lake_uri: str, sweep: str | None = None, *, repair: bool = False) -> Report:
    """Compare the queue with the lake (see the module doc); with `repair`, fix what can be fixed and
    report what is left (a second look after the repair)."""
    report = _check(queue, lake_uri, sweep)
    if not repair or report.ok:
        return report
    repaired, quarantine = _repair(queue, lake_uri, report)
    after = _check(queue, lake_uri, sweep)
    # re-queued chunks are no longer done, so they are no longer problems; say what was done
    after.repaired, after.quarantine = repaired, quarantine
    return after


# ------------------------------------------------------------------------------------------------
# checking
# ------------------------------------------------------------------------------------------------
def _versions(queue: Queue, sweep: str | None) -> list[SweepRow]:
    if sweep is None:
        return list(reversed(queue.sweeps(100_000)))
    name, version = parse_id(sweep)
    if version is not None:
        return [queue.sweep(sweep)]
    queue.sweep(name)  # an unknown name: QueueError naming what exists
    return [r for r in reversed(queue.sweeps(100_000)) if r.name == name]


def _listing(lake: Lake) -> list[pafs.FileInfo]:
    info = lake.fs.get_file_info(lake.root)
    if info.type == pafs.FileType.NotFound:
        return []
    return [i for i in lake.fs.get_file_info(pafs.FileSelector(lake.root, recursive=True))
            if i.type == pafs.FileType.File]


def _check(queue: Queue, lake_uri: str, sweep: str | None) -> Report:
    lake = Lake(lake_uri)
    report = Report(lake=lake_uri)
    rows = _versions(queue, sweep)
    known = {(r.name, r.version): r for r in rows}
    all_known = {(r.name, r.version) for r in queue.sweeps(100_000)}
    files: dict[tuple[str, int], dict[str, pafs.FileInfo]] = defaultdict(dict)  # version -> name -> info
    dims: dict[tuple[str, int], set[str]] = defaultdict(set)
    dim_temps: dict[tuple[str, int], list[tuple[str, pafs.FileInfo]]] = defaultdict(list)  # version -> (rel, info)
    strays: dict[str, list[str]] = defaultdict(list)  # stray root -> files under it
    base = lake.root.rstrip("/")
    for info in _listing(lake):
        rel = info.path[len(base):].lstrip("/")
        parts = rel.split("/")
        if parts[0] == QUARANTINE:
            continue
        where = _place(parts)
        if where is None:
            strays[_stray_root(parts)].append(rel)
            continue
        what, kind, name, version, file_name = where
        key = (name, version)
        if sweep is not None and name != parse_id(sweep)[0]:
            continue
        if key not in all_known or (what == "facts" and key in known and known[key].kind != kind):
            strays["/".join(parts[:3] if what == "facts" else parts[:4])].append(rel)
            continue
        if key not in known:
            continue
        if what == "dims":
            if file_name == DIM_PART:
                dims[key].add(kind)
            elif is_temporary(file_name):
                dim_temps[key].append((rel, info))
            else:
                strays[rel].append(rel)
        else:
            files[key][file_name] = info
    for root, under in sorted(strays.items()):
        report.problems.append(Finding("stray", root, f"{len(under)} file(s) the queue knows no version for"))
    holder = queue.lease_holder()
    alive = bool(holder and holder.get("alive"))
    now = time.time()
    for row in rows:
        key = (row.name, row.version)
        report.versions.append(_check_version(queue, lake, row, files.get(key, {}), dims.get(key, set()),
                                              report.problems, alive))
        if _finished(queue, row, alive):  # a running version's dims temporaries may be writes in flight
            report.problems += [Finding("temporary", rel, "left by a write that died", row.sweep_id)
                                for rel, info in dim_temps.get(key, []) if not temporary_in_flight(info, now)]
    return report


def _telling(queue: Queue, row: SweepRow, dispatcher_alive: bool) -> bool:
    """A live dispatcher finishes a version right after its last chunk (temporaries removed, then the lake
    told its state): until the queue says the lake knows, that is work in progress, not damage."""
    return queue.recorded_state(row.name, row.version) != row.state and dispatcher_alive


def _finished(queue: Queue, row: SweepRow, dispatcher_alive: bool) -> bool:
    """No process should be writing the version any more: a final state the lake has been told."""
    return row.state in FINAL_STATES and not _telling(queue, row, dispatcher_alive)


def _place(parts: list[str]) -> tuple[str, str, str, int, str] | None:
    """(facts|dims, kind or dim, sweep, version, file name) of a path the lake could have written."""
    if len(parts) == 4 and parts[0].startswith("kind="):
        kind, s, v = parts[0][5:], parts[1], parts[2]
        if kind in KINDS and s.startswith("sweep=") and v.startswith("version=") and valid_name(s[6:]) \
                and v[8:].isdigit():
            return "facts", kind, s[6:], int(v[8:]), parts[3]
    if len(parts) == 5 and parts[0] == "dims" and parts[1] in DIMS:
        s, v = parts[2], parts[3]
        if s.startswith("sweep=") and v.startswith("version=") and valid_name(s[6:]) and v[8:].isdigit():
            return "dims", parts[1], s[6:], int(v[8:]), parts[4]
    return None


def _stray_root(parts: list[str]) -> str:
    """The shortest prefix of a path that is already wrong (a partition that does not parse is reported
    once, not per file)."""
    if parts[0].startswith("kind=") and parts[0][5:] in KINDS and len(parts) > 1:
        if not (parts[1].startswith("sweep=") and valid_name(parts[1][6:])):
            return "/".join(parts[:2])
        if len(parts) > 2 and not (parts[2].startswith("version=") and parts[2][8:].isdigit()):
            return "/".join(parts[:3])
        return "/".join(parts)
    if parts[0] == "dims" and len(parts) > 1:
        if parts[1] not in DIMS:
            return "/".join(parts[:2])
        if len(parts) > 2 and not (parts[2].startswith("sweep=") and valid_name(parts[2][6:])):
            return "/".join(parts[:3])
        if len(parts) > 3 and not (parts[3].startswith("version=") and parts[3][8:].isdigit()):
            return "/".join(parts[:4])
        return "/".join(parts)
    return parts[0] if len(parts) > 1 else "/".join(parts)


def _check_version(queue: Queue, lake: Lake, row: SweepRow, present: dict[str, pafs.FileInfo], dims: set[str],
                   problems: list[Finding], dispatcher_alive: bool = False) -> VersionReport:
    chunks = queue.chunk_rows(row.name, row.version)
    done = [c for c in chunks if c["state"] == "done"]
    rep = VersionReport(row.sweep_id, row.kind, row.state, row.store, row.configurations, row.chunks_total, len(done))
    rel_dir = f"kind={row.kind}/sweep={row.name}/version={row.version}"
    telling = _telling(queue, row, dispatcher_alive)
    final = _finished(queue, row, dispatcher_alive)
    by_chunk = {c["chunk"]: c for c in chunks}
    for file_name in sorted(present):
        m = _PART_NO.fullmatch(file_name)
        if is_temporary(file_name):
            if final:
                problems.append(Finding("temporary", f"{rel_dir}/{file_name}", "left by a write that died",
                                        row.sweep_id))
            continue
        if m is None or not is_part(file_name):
            problems.append(Finding("stray", f"{rel_dir}/{file_name}", "not a part file", row.sweep_id))
            continue
        chunk = int(m.group(1))
        c = by_chunk.get(chunk)
        if c is None or part_name(chunk) != file_name:
            problems.append(Finding("extra", f"{rel_dir}/{file_name}", f"the version has no chunk {chunk} "
                                    f"({row.chunks_total} chunks)", row.sweep_id, chunk))
        elif c["state"] != "done" and (final or c["state"] == "failed"):
            problems.append(Finding("extra", f"{rel_dir}/{file_name}", f"chunk {chunk} is {c['state']}, not done",
                                    row.sweep_id, chunk))
    for c in done:
        file_name = part_name(c["chunk"])
        info = present.get(file_name)
        path = f"{rel_dir}/{file_name}"
        if info is None:
            problems.append(Finding("missing", path, f"chunk {c['chunk']} is done in the queue but has no file",
                                    row.sweep_id, c["chunk"]))
            continue
        rep.part_files += 1
        found = _read_part(lake, info, c, row, path, problems)
        if found is not None:
            n, distinct = found
            rep.rows_in_lake += n
            rep.distinct_idx += distinct
            rep.duplicate_idx += n - distinct
        rep.rows_expected += int(c["rows"] or 0)
    wanted = {"chips", "models", "sweeps"}
    for dim in sorted(wanted - dims):
        problems.append(Finding("dims", f"dims/{dim}/sweep={row.name}/version={row.version}/{DIM_PART}",
                                "dimension file missing", row.sweep_id))
    if "sweeps" in dims:
        recorded = _recorded_state(lake, row)
        want = "queued" if row.state == "preparing" else row.state
        if recorded is not None and recorded != want and not telling:
            problems.append(Finding("dims", f"dims/sweeps/sweep={row.name}/version={row.version}/{DIM_PART}",
                                    f"records state {recorded}, the queue says {want}", row.sweep_id))
    return rep


def _read_part(lake: Lake, info: pafs.FileInfo, c: dict[str, Any], row: SweepRow, path: str,
               problems: list[Finding]) -> tuple[int, int] | None:
    """Rows and distinct indices of one part, after its footer and `idx` column are checked."""
    chunk = int(c["chunk"])
    size = int(info.size or 0)
    try:
        with lake.fs.open_input_file(info.path) as fh:
            tail = fh.read_at(4, size - 4) if size >= 12 else b""
            if size < 12 or tail != b"PAR1":
                problems.append(Finding("truncated", path, f"{size} bytes, no Parquet footer", row.sweep_id, chunk))
                return None
            pf = pq.ParquetFile(fh)
            n = pf.metadata.num_rows
            idx = pf.read(columns=["idx"]).column("idx").to_numpy()
    except Exception as exc:  # a footer or page that does not decode
        problems.append(Finding("corrupt", path, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                                row.sweep_id, chunk))
        return None
    expected = c["rows"]
    if expected is not None and int(expected) != n:
        problems.append(Finding("rows", path, f"{n} rows, the queue recorded {expected}", row.sweep_id, chunk))
    if row.store == "all" and n != int(c["stop"]) - int(c["start"]):
        problems.append(Finding("rows", path, f"{n} rows, the chunk has {int(c['stop']) - int(c['start'])} "
                                "configurations (store: all)", row.sweep_id, chunk))
    distinct = int(np.unique(idx).size) if n else 0
    if n and (int(idx.min()) < int(c["start"]) or int(idx.max()) >= int(c["stop"])):
        problems.append(Finding("idx", path, f"indices {int(idx.min())}..{int(idx.max())} outside the chunk's "
                                f"[{c['start']}, {c['stop']})", row.sweep_id, chunk))
    if distinct != n:
        problems.append(Finding("idx", path, f"{n - distinct} duplicate indices", row.sweep_id, chunk))
    return n, distinct


def _recorded_state(lake: Lake, row: SweepRow) -> str | None:
    try:
        with lake.fs.open_input_file(lake.dim_path("sweeps", row.name, row.version)) as fh:
            states = pq.read_table(fh, columns=["state"]).column("state").to_pylist()
    except Exception:  # unreadable: reported as a damaged dims file by the rewrite below
        return "(unreadable)"
    return str(states[-1]) if states else None


# ------------------------------------------------------------------------------------------------
# repairing
# ------------------------------------------------------------------------------------------------
def _repair(queue: Queue, lake_uri: str, report: Report) -> tuple[list[dict[str, Any]], str | None]:
    lake = Lake(lake_uri)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    quarantine = f"{lake.root}/{QUARANTINE}/{stamp}"
    done: list[dict[str, Any]] = []
    moved = False
    requeue: dict[str, list[int]] = defaultdict(list)
    dims_rewrite: set[str] = set()
    for p in report.problems:
        path = f"{lake.root}/{p.path}"
        if p.kind in REQUEUE_KINDS and p.sweep_id is not None and p.chunk is not None:
            if p.kind != "missing":
                moved |= _move(lake, path, f"{quarantine}/{p.path}")
                done.append({"action": "quarantined", "path": p.path, "why": p.kind})
            if p.chunk not in requeue[p.sweep_id]:
                requeue[p.sweep_id].append(p.chunk)
        elif p.kind in ("extra", "stray"):
            moved |= _move(lake, path, f"{quarantine}/{p.path}")
            done.append({"action": "quarantined", "path": p.path, "why": p.kind})
        elif p.kind == "temporary":
            try:
                lake.fs.delete_file(path)
                done.append({"action": "deleted", "path": p.path, "why": p.kind})
            except OSError as exc:
                done.append({"action": "failed", "path": p.path, "why": f"{p.kind}: {exc}"})
        elif p.kind == "dims" and p.sweep_id is not None:
            dims_rewrite.add(p.sweep_id)
    for sweep_id, chunks in requeue.items():
        s = queue.sweep(sweep_id)
        n = queue.requeue(s.name, s.version, sorted(chunks), "re-queued by chipsweep verify --repair")
        record_state(queue, sweep_id)
        done.append({"action": "requeued", "sweep_id": sweep_id, "chunks": sorted(chunks), "count": n})
    for sweep_id in sorted(dims_rewrite):
        s = queue.sweep(sweep_id)
        try:
            sweep = Sweep.from_record(queue.payload(s.name, s.version)["sweep"])
            lake.write_dims(sweep, s.version, created_at=s.created_at, state=s.state)
            done.append({"action": "rewrote dims", "sweep_id": sweep_id})
        except (OSError, ValueError, KeyError) as exc:
            done.append({"action": "failed", "sweep_id": sweep_id, "why": f"dims: {exc}"})
    return done, (f"{QUARANTINE}/{stamp}" if moved else None)


def _move(lake: Lake, src: str, dst: str) -> bool:
    """Move a file, or every file under a directory, to `dst` (a directory is then removed if empty)."""
    info = lake.fs.get_file_info(src)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type == pafs.FileType.File:
        lake.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
        lake.fs.move(src, dst)
        return True
    for f in lake.fs.get_file_info(pafs.FileSelector(src, recursive=True)):
        if f.type == pafs.FileType.File:
            target = dst + f.path[len(src):]
            lake.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            lake.fs.move(f.path, target)
    with contextlib.suppress(OSError):  # an object store has no directories to remove
        lake.fs.delete_dir(src)
    return True


# ------------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------------
def render(report: Report) -> str:
    lines = [f"lake: {report.lake}"]
    for v in report.versions:
        dup = f", {v.duplicate_idx} duplicate idx" if v.duplicate_idx else ""
        lines.append(f"{v.sweep_id:32s} {v.state:9s} {v.configurations:>14,d} configurations  "
                     f"{v.chunks_done}/{v.chunks_total} chunks  {v.rows_in_lake:,} rows  {v.distinct_idx:,} distinct idx{dup}")
    for r in report.repaired:
        what = r.get("path") or r.get("sweep_id")
        extra = f" chunks {r['chunks']}" if "chunks" in r else ""
        lines.append(f"repaired: {r['action']} {what!r}{extra}" + (f" ({r['why']})" if r.get("why") else ""))
    if report.quarantine:
        lines.append(f"quarantine: {report.quarantine}")
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  {p.kind:9s} {p.path!r}: {p.detail}" for p in report.problems]
    else:
        lines.append("ok: the lake holds exactly what the queue says")
    return "\n".join(lines)
