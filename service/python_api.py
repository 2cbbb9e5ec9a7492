"""The Python API (`chipsweep.evaluate`, `submit`, `query`, `sql`): what the CLI and HTTP call too.

    import chipsweep
    table = chipsweep.evaluate([{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": 64,
                                 "global_batch": 512}], kind="training")
    status = chipsweep.submit("spec.yaml")                    # waits; the `status --json` keys
    front = chipsweep.query("pareto_training", model="llama3_8b")
    rows = chipsweep.sql("SELECT count(*) FROM latest_training")

Every function returns pyarrow (or a dict) and raises `chipsweep.ChipsweepError` subclasses naming the
field, the value and what is allowed. The queue and the lake are those of CHIPSWEEP_HOME and
CHIPSWEEP_LAKE, as for the CLI. `submit(wait=True)` (and `resume`, `wait`) run the sweep the way the CLI's
`submit --wait` does (`run_to_end`): the dispatcher in a supervised child process with a Ray of its own
(or RAY_ADDRESS), so a raylet that dies is replaced and the sweep finishes exactly once; after
MAX_RAY_RESTARTS failures in a row it raises `RayGaveUp`, naming the `chipsweep resume` that finishes it.
A process that called `ray.init()` itself is the driver: the sweep runs here, on that Ray, kept warm.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.queries import runner
from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.schemas.errors import ChipsweepError, Problem, SpecError
from chipsweep.schemas.spec import SweepSpec, read_spec_text
from chipsweep.schemas.vocab import FINAL_STATES, KINDS
from chipsweep.service import dispatch
from chipsweep.service.queue import Queue
from chipsweep.service.ray_supervisor import DispatcherProcess
from chipsweep.service.settings import Settings
from chipsweep.workers.evaluate import evaluate_table
from chipsweep.workers.parse import row_labels

ROWS_ALLOWED = "a list of dicts (one per configuration), a pyarrow Table, or a pandas DataFrame"
SPEC_ALLOWED = "a mapping, a SweepSpec, YAML or JSON text, or the path of a YAML/JSON file"
WARNED_ROWS = 20  # row errors shown as warnings (all of them are in the `infeasible_reason` column)
MAX_RAY_RESTARTS = 3  # Ray failures in a row a waiting call recovers from (CHIPSWEEP_RAY_RESTARTS)
PROGRESS_S = 0.25  # how often `progress` is called while a supervised dispatcher runs


class RowWarning(UserWarning):
    """A row `evaluate` could not evaluate; its output cells are empty and the reason names the field."""


class ColumnWarning(UserWarning):
    """A given column `evaluate` does not read although its name comes close to one it does (or is another kind's
    input): it passes through untouched and the rows run as if it were absent."""


# ------------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------------
def evaluate(rows: Any, kind: str = "training", *, strict: bool = False, catalog: Catalog | None = None,
             explain: bool = False) -> pa.Table:
    """Evaluate explicit configurations: the same columns, choices and errors as `chipsweep evaluate`.

    A bad row keeps its place with empty outputs and its reason in `infeasible_reason` (a `RowWarning`
    names it too); `strict=True` raises instead. Messages name a row by its 1-based position ('row 3'), a pandas
    DataFrame's with an index other than 0..n-1 (a filtered one) by its index label ('row label 9'). Blank layout cells are searched (the fastest feasible
    choice is written). `explain=True` (kind inference) adds the parts each row's TPOT and TTFT are made of."""
    if kind not in KINDS:
        raise ChipsweepError(f"kind {kind!r}: allowed: {', '.join(KINDS)}", field="kind", value=kind, allowed=KINDS)
    table = as_table(rows)
    labels = index_labels(rows)
    with row_labels(labels) if labels is not None else nullcontext():
        out, errors = evaluate_table(kind, table, catalog if catalog is not None else load_catalog(), strict=strict,
                                     explain=explain)
    for note in errors.column_notes:
        warnings.warn(note, ColumnWarning, stacklevel=2)
    messages = errors.messages()
    for msg in messages[:WARNED_ROWS]:
        warnings.warn(msg, RowWarning, stacklevel=2)
    if len(messages) > WARNED_ROWS:
        warnings.warn(f"... {len(messages) - WARNED_ROWS} more row errors (see infeasible_reason)", RowWarning,
                      stacklevel=2)
    return out


def _is_dataframe(rows: Any) -> bool:
    return type(rows).__name__ == "DataFrame" and hasattr(rows, "to_dict")


def index_labels(rows: Any) -> list[Any] | None:
    """A pandas DataFrame's index labels, which its row messages name ('row label 9'): after a filter the labels
    (5, 9, 12) are not the positions, and `df.loc[9]` is how a notebook finds the row. None for other rows and
    for the default index 0..n-1, whose rows keep their 1-based positions ('row 1'), as a list's do."""
    if not _is_dataframe(rows):
        return None
    labels = rows.index.tolist()
    return None if labels == list(range(len(labels))) else labels


def as_table(rows: Any) -> pa.Table:
    """Rows as an Arrow table: a pyarrow Table as it is, a pandas DataFrame converted, a list of dicts
    column by column (a column of mixed types becomes text, which the evaluator parses and checks)."""
    if isinstance(rows, pa.Table):
        return rows
    if _is_dataframe(rows):
        try:
            return pa.Table.from_pandas(rows, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed types (2 and "4"): as a list of dicts does
            return as_table(rows.to_dict("records"))
    if isinstance(rows, Mapping | str | bytes) or not isinstance(rows, Iterable):
        raise ChipsweepError(f"rows of type {type(rows).__name__}: allowed: {ROWS_ALLOWED}", field="rows",
                             value=type(rows).__name__, allowed=ROWS_ALLOWED)
    records = list(rows)
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise ChipsweepError(f"rows[{i}] is a {type(r).__name__}: allowed: {ROWS_ALLOWED}", field=f"rows[{i}]",
                                 value=type(r).__name__, allowed=ROWS_ALLOWED)
    names = list(dict.fromkeys(k for r in records for k in r))
    columns: dict[str, pa.Array] = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.table(columns) if columns else pa.table({"model": pa.array([], pa.string())})


# ------------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------------
def submit(
    spec: Any,
    wait: bool = True,
    *,
    chunk_size: int | None = None,
    actors: int | None = None,
    settings: Settings | None = None,
    queue: Queue | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    cpus: int | None = None,
    catalog: Catalog | None = None,
    reevaluate: bool = False,
) -> dict[str, Any]:
    """Validate and queue a sweep; with `wait`, run it until it is over. Returns its status (the
    `chipsweep status --json` keys: sweep_id, version, state, configurations, chunks_total, chunks_done,
    chunks_failed, rows_written, configs_per_s, and more). A refused spec raises `SpecError` naming every
    field that is wrong, before anything is queued (against `catalog`, default the catalog files as they are now).
    `progress(status)` is called once the sweep is
    recorded and then while it runs (the CLI draws its bar with it). Waiting survives Ray's death (see
    `run_to_end`); `RayGaveUp` when Ray keeps failing. A spec submitted again carries the previous version's unchanged
    chunks (`dispatch.submit`); `reevaluate` evaluates them all."""
    settings = settings or Settings.from_env()
    if actors:
        settings = settings.with_(actors=actors)
    queue = queue or Queue(settings.queue_path)
    row = dispatch.submit(spec_data(spec), settings=settings, queue=queue, chunk_size=chunk_size, cpus=cpus,
                          catalog=catalog, reevaluate=reevaluate)
    if progress is not None:
        progress(queue.status(row.sweep_id))
    if wait:
        return run_to_end([row.sweep_id], settings=settings, queue=queue, progress=progress)
    return queue.status(row.sweep_id)


class RayGaveUp(ChipsweepError):
    """Ray failed MAX_RAY_RESTARTS times in a row while sweeps ran. What is committed is kept and the sweep
    stays queued: `chipsweep resume ID` (or `chipsweep.resume`) finishes it. `status`: the sweep's then."""

    http_status = 503

    def __init__(self, why: str, status: dict[str, Any] | None) -> None:
        self.status = status
        if status:
            sweep_id = f"{status['sweep_id']}@{status['version']}"
            message = (f"{why}; {sweep_id} stays queued with {status['chunks_done']} of {status['chunks_total']} "
                       f"chunks committed (kept): `chipsweep resume {sweep_id}` finishes it")
        else:
            message = f"{why}; what is committed is kept: `chipsweep resume` finishes what is queued"
        super().__init__(message, field="ray", value=why,
                         allowed=f"a Ray that fails fewer than {max_ray_restarts() + 1} times in a row "
                                 "(CHIPSWEEP_RAY_RESTARTS)")


def max_ray_restarts() -> int:
    raw = os.environ.get("CHIPSWEEP_RAY_RESTARTS", "")
    return int(raw) if raw.strip().isdigit() else MAX_RAY_RESTARTS


def run_to_end(sweep_ids: Sequence[str], *, actors: int | None = None, settings: Settings | None = None,
               queue: Queue | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
               ) -> dict[str, Any]:
    """Dispatch until the sweeps are over (none named: until the queue is idle); the last one's status ({}
    when none is named). The one way every waiting caller runs sweeps (`submit --wait`, `resume`, this
    API): in this process when it is a Ray driver already (tests, a notebook that called `ray.init()`),
    else in a supervised child process (service/ray_supervisor.py) whose Ray is replaced when it dies.
    Raises `RayGaveUp` after `max_ray_restarts()` Ray failures in a row (the sweeps stay queued)."""
    import ray

    settings = settings or Settings.from_env()
    if actors:
        settings = settings.with_(actors=actors)
    queue = queue or Queue(settings.queue_path)
    last = sweep_ids[-1] if sweep_ids else None

    def now() -> dict[str, Any]:
        return queue.status(last) if last else {}

    def tick() -> None:
        if progress is not None and last is not None:
            progress(now())

    if ray.is_initialized():
        until = dispatch.over(queue, *sweep_ids) if sweep_ids else (lambda: idle(queue))
        dispatch.run_until(queue, settings, until, on_tick=tick)
        return now()
    supervised = DispatcherProcess(settings, until=sweep_ids, idle=not sweep_ids, actors=settings.actors,
                                   max_restarts=max_ray_restarts()).start()
    try:
        while not supervised.wait(PROGRESS_S):
            tick()
    finally:
        supervised.stop()
    if supervised.state == "gave_up":
        raise RayGaveUp(f"Ray failed {supervised.failures_in_a_row} times in a row (last: {supervised.reason})",
                        now() or None)
    tick()
    return now()


def idle(queue: Queue) -> bool:
    """Nothing is queued, and no running sweep has chunks left to claim."""
    return not queue.active() and not any(
        r.state == "running" and queue.pending_chunks(r.name, r.version) for r in queue.sweeps(50))


def _python_values(data: Any) -> Any:
    """A spec built in Python as JSON-like data: numpy numbers and arrays, ranges and tuples as the plain values and
    lists a YAML file would give (`n_chips: [np.int64(64)]` was refused as 'not a finite number', `np.array([64,
    128])` reported as one element)."""
    if isinstance(data, Mapping):
        return {k: _python_values(v) for k, v in data.items()}
    if isinstance(data, np.ndarray):
        return [_python_values(v) for v in data.tolist()]
    if isinstance(data, list | tuple | range):
        return [_python_values(v) for v in data]
    if isinstance(data, np.generic):
        return data.item()
    return data


def spec_data(spec: Any) -> Any:
    """A spec as parsed data: a mapping or SweepSpec as it is, text parsed as YAML/JSON, a path read."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return _python_values(spec)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec and spec.endswith(
            (".yaml", ".yml", ".json"))):
        path = Path(spec)
        try:
            return read_spec_text(path.read_bytes())
        except OSError as exc:
            raise SpecError([Problem("(spec)", str(path), SPEC_ALLOWED, f"cannot read the file: {exc.strerror}")]) from None
    if isinstance(spec, str | bytes):
        return read_spec_text(spec)
    raise SpecError([Problem("(spec)", type(spec).__name__, SPEC_ALLOWED, "not a spec")])


def resume(sweep_id: str, wait: bool = True) -> dict[str, Any]:
    """Retry a failed sweep's failed chunks, or continue a cancelled one (committed chunks are kept);
    with `wait`, run it until it is over (`run_to_end`). Its status."""
    settings = Settings.from_env()
    queue = Queue(settings.queue_path)
    row, _ = dispatch.reopen(queue, sweep_id)
    if wait and row.state not in FINAL_STATES:
        return run_to_end([row.sweep_id], settings=settings, queue=queue)
    return queue.status(row.sweep_id)


def status(sweep_id: str) -> dict[str, Any]:
    """The status of NAME (its latest version) or NAME@VERSION."""
    return Queue(Settings.from_env().queue_path).status(sweep_id)


def cancel(sweep_id: str) -> dict[str, Any]:
    """Cancel a queued or running sweep (committed chunks are kept; `resume` continues it); its status. A cancelled
    sweep is left as it is; one already over (done, failed) raises `SweepStateError`, naming it and its state."""
    queue = Queue(Settings.from_env().queue_path)
    row = queue.cancel(sweep_id)
    return queue.status(row.sweep_id)


def wait(sweep_id: str) -> dict[str, Any]:
    """Run (or wait for) a queued sweep until it is over; its final status."""
    settings = Settings.from_env()
    queue = Queue(settings.queue_path)
    row = queue.sweep(sweep_id)
    if row.state not in FINAL_STATES:
        return run_to_end([row.sweep_id], settings=settings, queue=queue)
    return queue.status(row.sweep_id)


# ------------------------------------------------------------------------------------------------
# queries
# ------------------------------------------------------------------------------------------------
def query(name: str, params: Mapping[str, Any] | None = None, /, *, lake: str | None = None,
          timeout_s: float | None = None, max_rows: int | None = None, limits: runner.QueryLimits | None = None,
          **kwargs: Any) -> pa.Table:
    """A saved query (`chipsweep query NAME`) with its parameters as keywords (or a mapping, for names
    that are not identifiers); frontier queries carry their objectives in the table's schema metadata.
    `timeout_s` stops a query that runs longer (a `QueryError`), `max_rows` keeps that many rows; every
    query runs within `limits` (default: the memory, temp-space and concurrency limits of the settings)."""
    return runner.run_saved(name, _listed({**(params or {}), **kwargs}), lake=lake, timeout_s=timeout_s,
                            max_rows=max_rows, limits=limits or Settings.from_env().query_limits())


def _listed(params: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter given as a Python list (objectives=["time_to_train_days", "energy_mwh"], chips=[...]) as the
    comma-separated text the saved queries take (a list was read as its repr: "'['time_to_train_days'' is not an
    objective")."""
    return {k: ",".join(str(x) for x in v) if isinstance(v, list | tuple) else v for k, v in params.items()}


def left_off(name: str, params: Mapping[str, Any] | None = None, /, *, lake: str | None = None,
             timeout_s: float | None = None, limits: runner.QueryLimits | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The chips a frontier query (`query(name, ...)`) cannot place: every candidate row of theirs lacks one of
    its objectives (a cost without a catalog price, an energy without a power). Per chip: `rows`, the objectives
    `missing`, what the catalog lacks (`catalog_lacks`: price, power), the `best` of each objective it has and
    its `calibrated_on`; best first. What `chipsweep query` prints under a frontier as 'left off'."""
    return runner.unplaced_chips(name, _listed({**(params or {}), **kwargs}), lake=lake, timeout_s=timeout_s,
                                 limits=limits or Settings.from_env().query_limits())


def beyond_limits(name: str, params: Mapping[str, Any] | None = None, /, *, lake: str | None = None,
                  timeout_s: float | None = None, limits: runner.QueryLimits | None = None) -> list[str]:
    """Where a frontier query's limits (a deadline, a budget, an SLO) leave no row: per limit, the best its column
    reaches without it ('no row meets max_days = 0.5: the best time_to_train_days without it is 10.2'), as
    `chipsweep query` prints it."""
    return runner.beyond_limits(name, _listed(dict(params or {})), lake=lake, timeout_s=timeout_s,
                                limits=limits or Settings.from_env().query_limits())


def sql(text: str, *, lake: str | None = None, timeout_s: float | None = None, max_rows: int | None = None,
        limits: runner.QueryLimits | None = None) -> pa.Table:
    """One read-only SELECT over the lake's views (`chipsweep sql`): `timeout_s` stops it, `max_rows`
    keeps that many rows, `limits` bounds its memory, temp space and concurrency (default: the settings')."""
    return runner.run_sql(text, lake=lake, timeout_s=timeout_s, max_rows=max_rows,
                          limits=limits or Settings.from_env().query_limits())
