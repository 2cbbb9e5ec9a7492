"""Running saved queries and user SQL over the lake: bind (queries/saved.py), check, run on a read-only
connection (lake/views.py), return Arrow.

User SQL (`run_sql`) must be exactly one read-only statement: SELECT / WITH (DESCRIBE, SHOW, SUMMARIZE
and PIVOT are SELECTs), or EXPLAIN of one; the connection is read-only and can read no file outside the
lake, so writes, COPY, ATTACH, IMPORT/EXPORT, INSTALL/LOAD, PRAGMA/SET, CHECKPOINT and reads elsewhere
are refused with a message that names the statement. Functions that reveal server paths or settings
(`current_setting`, `duckdb_settings()`, `duckdb_databases()`, ...) are refused by name.

Every query runs within `QueryLimits`: a memory limit and a temp-space limit per query (DuckDB spills to
disk, then stops), a thread count, a time limit, a cap on the rows returned, and a cap on queries
running at once in this process. Passing any is a `QueryError` that names the limit and its setting.
Every error a caller sees is a `QueryError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from chipsweep.lake import connect
from chipsweep.lake.views import machine_memory, temp_space
from chipsweep.queries.errors import QueryError
from chipsweep.queries.frontier import Objective
from chipsweep.queries.saved import (
    META_NOTE,
    META_OBJECTIVES,
    META_PARTITION,
    META_QUERY,
    META_REPEATS,
    Bound,
    bind,
    load_query,
)
from chipsweep.schemas.axes import closest_ids

# statements `run_sql` refuses, by the statement's own leading keywords (the parser's type is too coarse:
# IMPORT DATABASE parses as PRAGMA, CHECKPOINT as CALL), with what to say
_REFUSED_WORDS: tuple[tuple[str, str], ...] = (
    ("IMPORT DATABASE", "no database can be imported into the lake's read-only views"),
    ("EXPORT DATABASE", "no file can be written"),
    ("FORCE CHECKPOINT", "the lake's database is read-only"),
    ("CHECKPOINT", "the lake's database is read-only"),
    ("FORCE INSTALL", "no extension can be installed or loaded"),
    ("INSTALL", "no extension can be installed or loaded"),
    ("LOAD", "no extension can be installed or loaded"),
    ("UPDATE EXTENSIONS", "no extension can be installed or updated"),
    ("COPY", "the lake is read-only and no file can be written"),
    ("ATTACH", "only the lake's views can be queried"),
    ("DETACH", "only the lake's views can be queried"),
    ("USE", "only the lake's views can be queried"),
    ("PRAGMA", "settings cannot be read or changed here"),
    ("SET", "settings cannot be changed here"),
    ("RESET", "settings cannot be changed here"),
    ("CALL", "only SELECT statements run here (table functions go in a FROM clause)"),
    ("VACUUM", "the lake's database is read-only"),
    ("ANALYZE", "the lake's database is read-only"),
    ("PREPARE", "only one SELECT statement runs per request"),
    ("EXECUTE", "only one SELECT statement runs per request"),
    ("DEALLOCATE", "only one SELECT statement runs per request"),
    ("BEGIN", "the lake's database is read-only"),
    ("START TRANSACTION", "the lake's database is read-only"),
    ("COMMIT", "the lake's database is read-only"),
    ("ROLLBACK", "the lake's database is read-only"),
    ("ABORT", "the lake's database is read-only"),
)
_SELECT_KINDS = ("SELECT",)  # DESCRIBE, SHOW, SUMMARIZE, FROM-first and PIVOT ... IN (...) parse as SELECT
# functions whose answers reveal server paths, settings or the environment: refused by name (the lake's
# own views and macros never use them)
DENIED_FUNCTIONS = (
    "current_setting", "duckdb_settings", "duckdb_databases", "pragma_database_list", "duckdb_temporary_files",
    "duckdb_secrets", "which_secret", "duckdb_extensions", "duckdb_logs", "duckdb_log_contexts", "getenv",
    "getvariable", "pragma_database_size", "duckdb_memory", "duckdb_external_file_cache",
    # the views' own SQL (it names the lake's files): the catalog tables that print it
    "duckdb_views", "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema", "pg_views",
    "view_definition",
)
_DENIED_RE = re.compile(r"(?<![a-z0-9_$])(" + "|".join(DENIED_FUNCTIONS) + r")(?![a-z0-9_$])"
                        # information_schema.views, however quoted or spaced (its other tables stay open)
                        r"|(information_schema\W*\.\W*views)(?![a-z0-9_$])")
_COMMENT_RE = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
META_TRUNCATED = b"chipsweep.truncated"  # an answer cut at max_rows: the row count it was cut at
QUEUE_WAIT_S = 10.0  # how long a query waits for a free slot before it is refused


@dataclass(frozen=True)
class QueryLimits:
    """What one query may use. `setting` names the environment variable of each (in messages)."""

    memory_bytes: int | None = None  # DuckDB memory_limit of the query's connection
    temp_bytes: int | None = None  # DuckDB max_temp_directory_size (spill space)
    threads: int | None = None
    concurrency: int | None = None  # queries running at once in this process
    timeout_s: float | None = None
    row_cap: int | None = None  # more rows than this is an error (max_rows truncates instead)
    queue_wait_s: float = QUEUE_WAIT_S

    @classmethod
    def for_machine(cls, *, concurrency: int = 2, timeout_s: float | None = 120.0,
                    row_cap: int | None = 100_000) -> QueryLimits:
        """Sized for this machine: all concurrent queries together hold at most a quarter of its memory
        (each RAM / (4 x concurrency), at least 64 MiB) and spill at most a tenth of the free temp space
        (each at most 8 GiB)."""
        memory = max(machine_memory() // (4 * max(concurrency, 1)), 64 * 2**20)
        temp = max(min(temp_space() // (10 * max(concurrency, 1)), 8 * 2**30), 64 * 2**20)
        return cls(memory_bytes=memory, temp_bytes=temp, concurrency=concurrency, timeout_s=timeout_s,
                   row_cap=row_cap)


SETTING_NAMES = {"memory_bytes": "CHIPSWEEP_SQL_MEMORY_MB", "temp_bytes": "CHIPSWEEP_SQL_TEMP_MB",
                 "concurrency": "CHIPSWEEP_SQL_CONCURRENCY", "timeout_s": "CHIPSWEEP_SQL_TIMEOUT_S",
                 "row_cap": "CHIPSWEEP_SQL_MAX_ROWS"}


class _Slots:
    """The process-wide cap on queries running at once (resized when a caller asks for another cap)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.running = 0

    @contextmanager
    def hold(self, limits: QueryLimits | None, what: str) -> Iterator[None]:
        cap = limits.concurrency if limits is not None else None
        if not cap:
            yield
            return
        with self.lock:
            if not self.lock.wait_for(lambda: self.running < cap, timeout=limits.queue_wait_s if limits else 0):
                err = QueryError(
                    f"{what}: {self.running} queries are running, the limit is {cap} at once "
                    f"({SETTING_NAMES['concurrency']}); allowed: retry when one finishes",
                    field="concurrency", value=cap, allowed=f"at most {cap} queries at once")
                err.http_status = 429
                raise err
            self.running += 1
        try:
            yield
        finally:
            with self.lock:
                self.running -= 1
                self.lock.notify()


SLOTS = _Slots()


def _mib(n: int | None) -> str:
    return f"{(n or 0) / 2**20:,.0f} MiB"


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
@contextmanager
def _deadline(con: duckdb.DuckDBPyConnection, timeout_s: float | None) -> Iterator[list[bool]]:
    fired = [False]
    timer = None
    if timeout_s:
        def stop() -> None:
            fired[0] = True
            con.interrupt()

        timer = threading.Timer(timeout_s, stop)
        timer.start()
    try:
        yield fired
    finally:
        if timer:
            timer.cancel()


def _execute(con: duckdb.DuckDBPyConnection, sql: str, *, timeout_s: float | None, max_rows: int | None,
             what: str, limits: QueryLimits | None = None) -> pa.Table:
    """Run `sql`; at most `max_rows` rows are kept (the rest dropped), more than `limits.row_cap` is an
    error. Errors become QueryErrors naming the limit or the problem."""
    cap = limits.row_cap if limits is not None else None
    timeout_s = timeout_s if timeout_s is not None else (limits.timeout_s if limits is not None else None)
    with _deadline(con, timeout_s) as fired:
        reader = None
        try:
            rel = con.sql(sql)
            if rel is None:
                raise QueryError(f"{what}: the statement returns no rows; allowed: one SELECT or WITH statement",
                                 field="sql")
            # one row past max_rows tells whether there were more (the answer says it was cut)
            keep = min(x for x in (None if max_rows is None else max_rows + 1, None if cap is None else cap + 1)
                       if x is not None) if (max_rows is not None or cap is not None) else None
            if keep is not None:
                reader = rel.to_arrow_reader(batch_size=min(keep, 100_000) or 1)
                batches: list[pa.RecordBatch] = []
                n = 0
                for batch in reader:
                    batches.append(batch)
                    n += batch.num_rows
                    if n >= keep:
                        break
                if cap is not None and n > cap and (max_rows is None or max_rows > cap):
                    raise QueryError(
                        f"{what}: more than {cap:,} rows; the limit is {cap:,} rows per answer "
                        f"({SETTING_NAMES['row_cap']}); allowed: add a LIMIT, filter or aggregate",
                        field="row_cap", value=cap, allowed=f"at most {cap:,} rows")
                table = pa.Table.from_batches(batches, schema=reader.schema)
                if max_rows is not None and table.num_rows > max_rows:
                    table = table.slice(0, max_rows)
                    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                           META_TRUNCATED: str(max_rows).encode()})
                else:
                    table = table.slice(0, keep)
            else:
                table = rel.to_arrow_table()
        except duckdb.InterruptException:
            if fired[0]:
                raise QueryError(f"{what}: stopped after {timeout_s:g} s, the time limit "
                                 f"(--timeout, or {SETTING_NAMES['timeout_s']} for the server); allowed: queries "
                                 "that finish within the "
                                 "time limit", field="timeout_s", value=timeout_s,
                                 allowed=f"at most {timeout_s:g} s") from None
            raise
        except duckdb.OutOfMemoryException as exc:
            raise _memory_error(exc, what, limits) from None
        except duckdb.PermissionException as exc:
            raise QueryError(f"{what}: reading outside the lake is not allowed ({_first_line(exc)})", field="sql",
                             allowed="the lake's views and files under the lake") from None
        except duckdb.Error as exc:
            if "out of memory" in str(exc).lower():
                raise _memory_error(exc, what, limits) from None
            views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                               "ORDER BY 1").fetchall()]
            raise QueryError(f"{what}: {_first_line(exc)}", field="sql", value=sql if what == "sql" else None,
                             allowed="one read-only SELECT or WITH statement over the lake's views: "
                                     + ", ".join(views)) from None
        finally:
            if reader is not None:
                reader.close()
    return table


def _memory_error(exc: BaseException, what: str, limits: QueryLimits | None) -> QueryError:
    """DuckDB ran out of its memory limit (and its spill space, when the message says so)."""
    text = str(exc)
    if "max_temp_directory_size" in text or "temp" in text.lower() and "directory" in text.lower():
        cap = limits.temp_bytes if limits is not None else None
        field, setting = "temp_limit", SETTING_NAMES["temp_bytes"]
        msg = f"{what}: stopped: it needs more than its temp-space limit of {_mib(cap)} ({setting})"
    else:
        cap = limits.memory_bytes if limits is not None else None
        field, setting = "memory_limit", SETTING_NAMES["memory_bytes"]
        msg = f"{what}: stopped: it needs more than its memory limit of {_mib(cap)} ({setting})"
    err = QueryError(f"{msg}; allowed: queries that fit (filter or aggregate before joining or sorting)",
                     field=field, value=_mib(cap) if cap else None, allowed=f"at most {_mib(cap)}" if cap else None)
    err.http_status = 413
    return err


def _first_line(exc: BaseException) -> str:
    """The first line of a DuckDB error, at most 300 characters (it may quote a huge identifier)."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line if len(line) <= 300 else f"{line[:200]} ... {line[-95:]}"


def run_saved(
    name: str, params: Mapping[str, object] | None = None, *, lake: str | None = None, frontier: bool = True,
    timeout_s: float | None = None, max_rows: int | None = None, sample: int | None = None,
    limits: QueryLimits | None = None,
) -> pa.Table:
    """Run a saved query; the Arrow result carries, in its schema metadata, the query's name and (for
    frontier queries) its objectives as `col:min,col:max`. `frontier=False` returns the rows the
    frontier was taken from instead (every feasible candidate; for plots), `sample` at most that many
    of them (a repeatable reservoir sample)."""
    bound = bind(name, params)
    sql = bound.sql(frontier=frontier)
    if sample is not None:
        sql = f"SELECT * FROM ({sql}) USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (7)"
    objs = bound.final_objectives()
    collapse = bool(objs) and frontier and sample is None  # a frontier lists a repeated row once, then is cut
    with SLOTS.hold(limits, f"query {name}"), _connect(lake, limits, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        fetch = max_rows  # (collapsing, rows up to the row cap or max_rows, whichever is more, cut after)
        if collapse and max_rows is not None:
            cap = limits.row_cap if limits is not None else None
            fetch = None if cap is None else max(cap, max_rows)
        table = _execute(con, sql, timeout_s=timeout_s, max_rows=fetch, what=f"query {name}", limits=limits)
    meta = {META_QUERY: name.encode()}
    if bound.query.note:
        meta[META_NOTE] = bound.query.note.encode()
    if objs:
        meta[META_OBJECTIVES] = ",".join(str(o) for o in objs).encode()
        meta[META_PARTITION] = ",".join(bound.final_partition()).encode()
    if collapse:
        table, repeats = collapse_repeats(table)
        if repeats:
            meta[META_REPEATS] = str(repeats).encode()
        if max_rows is not None and table.num_rows > max_rows:
            table = table.slice(0, max_rows)
            meta[META_TRUNCATED] = str(max_rows).encode()
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})


def collapse_repeats(table: pa.Table) -> tuple[pa.Table, int]:
    """A frontier's rows identical in every column but their `idx`, once (the first), and how many were left out. A
    sweep repeats a row along an axis that does not apply to it (decode_instances on a colocated serving row: every
    value evaluates the same configuration), and each copy is as good as the others, so the frontier listed it once
    per axis value."""
    if "idx" not in table.column_names or table.num_rows < 2:
        return table, 0
    rest = [c for c in table.column_names if c != "idx"]
    order = pa.array(range(table.num_rows), type=pa.int64())
    try:  # (Arrow groups NaN with NaN and null with null)
        first = table.select(rest).append_column("__row", order).group_by(rest, use_threads=False).aggregate(
            [("__row", "min")]).column("__row_min")
        keep = pc.take(first, pc.sort_indices(first))
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # a column Arrow cannot group by (a list): by its text
        seen: dict[str, int] = {}
        for i, row in enumerate(zip(*(table.column(c).to_pylist() for c in rest), strict=True)):
            seen.setdefault(repr(row), i)
        keep = pa.array(sorted(seen.values()), type=pa.int64())
    if len(keep) == table.num_rows:
        return table, 0
    return table.take(keep), table.num_rows - len(keep)


def count_saved(
    name: str, params: Mapping[str, object] | None = None, *, lake: str | None = None, timeout_s: float | None = None,
    limits: QueryLimits | None = None,
) -> int:
    """How many candidate rows (finite objectives) a frontier query takes its frontier from."""
    bound = bind(name, params)
    objs = bound.final_objectives() or []
    finite = " AND ".join(f'isfinite(CAST("{o.column}" AS DOUBLE))' for o in objs) or "true"
    sql = f"SELECT count(*) AS n FROM ({bound.sql(frontier=False)}) WHERE {finite}"
    with SLOTS.hold(limits, f"query {name}"), _connect(lake, limits, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        return int(_execute(con, sql, timeout_s=timeout_s, max_rows=None, what=f"query {name}",
                            limits=limits)["n"][0].as_py())


def _connect(lake: str | None, limits: QueryLimits | None, *, fixed_join_order: bool = False) -> Any:
    """The lake's read-only connection with the memory, temp-space and thread limits of `limits`."""
    if limits is None:
        return connect(lake, fixed_join_order=fixed_join_order)
    return connect(lake, fixed_join_order=fixed_join_order, memory_limit=limits.memory_bytes,
                   temp_limit=limits.temp_bytes, threads=limits.threads)


def swept_models(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The models the lake's sweeps evaluate (`spec_named` over every version's spec). The models table alone lists
    the whole catalog of each version, so a model no sweep ran passed the check and answered 0 rows."""
    texts = [r[0] for r in con.execute("SELECT DISTINCT spec_json FROM versions").fetchall()]
    catalog = [r[0] for r in con.execute("SELECT DISTINCT model FROM models").fetchall()]
    return spec_named(texts, "model", catalog)


def spec_named(spec_texts: list[str], axis: str, known: list[str]) -> list[str]:
    """The ids of `known` that the sweep specs (JSON texts) name for `axis` (model, chip): as an axis list or a fixed
    value; a spec that names none by id (a catalog filter such as {class: ...}) counts every known id."""
    named: set[str] = set()
    for text in spec_texts:
        try:
            spec = json.loads(text or "{}")
        except ValueError:
            return sorted(known)
        value = (spec.get("axes") or {}).get(axis, (spec.get("fixed") or {}).get(axis))
        if isinstance(value, str):
            named.add(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            named.update(value)
        else:
            return sorted(known)
    return sorted(named & set(known))


def check_lake_values(con: duckdb.DuckDBPyConnection, bound: Bound) -> None:
    """Parameters of type model / sweep / version(...) must name something the lake holds."""
    for p in bound.query.params:
        value = bound.values.get(p.name)
        if value is None:
            continue
        if p.type == "chips":
            known = {r[0] for r in con.execute("SELECT DISTINCT chip FROM chips").fetchall()}
            unknown = [c for c in str(value).split(",") if c not in known]
            if unknown:
                hint = {c: closest_ids(c, sorted(known), 3) for c in unknown}
                said = "; ".join(f"'{c}'" + (f" (did you mean {', '.join(h)}?)" if h else "") for c, h in hint.items())
                raise QueryError(f"parameter {p.name}: {said} not in the lake; allowed: catalog chip ids the lake holds, "
                                 "separated by commas", field=p.name, value=value, allowed=sorted(known))
            continue
        if p.type == "model":
            allowed = swept_models(con)
        elif p.type == "sweep":
            allowed = [r[0] for r in con.execute("SELECT DISTINCT sweep FROM versions ORDER BY 1").fetchall()]
        elif p.type.startswith("version("):
            sweep = bound.values.get(p.type[len("version("):-1])
            if sweep is None:
                raise QueryError(f"parameter {p.name}: a version of which sweep? allowed: with "
                                 f"{p.type[len('version('):-1]} set", field=p.name, value=value,
                                 allowed=f"{p.type[len('version('):-1]} and one of its versions")
            allowed = [r[0] for r in con.execute(
                "SELECT DISTINCT version FROM versions WHERE sweep = ? ORDER BY 1", [sweep]).fetchall()]
            if value not in allowed:
                raise QueryError(f"parameter {p.name}: sweep '{sweep}' has no version {value}; allowed: "
                                 f"{', '.join(map(str, allowed)) or '(none)'}", field=p.name, value=value,
                                 allowed=allowed)
            continue
        else:
            continue
        if value not in allowed:
            shown = ", ".join(map(str, allowed[:30])) + (" ..." if len(allowed) > 30 else "")
            raise QueryError(f"parameter {p.name}: '{value}' is not in the lake; allowed: {shown or '(the lake is empty)'}",
                             field=p.name, value=value, allowed=allowed)


def check_sql(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """The one read-only statement of `text`, or a QueryError naming what is refused."""
    if not text or not text.strip():
        raise QueryError("sql: empty; allowed: one SELECT or WITH statement", field="sql", value=text,
                         allowed=["SELECT", "WITH", "EXPLAIN"])
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryError(f"sql: {_first_line(exc)}; allowed: one SELECT or WITH statement (or EXPLAIN of one) in "
                         "DuckDB's SQL", field="sql", value=text[:200], allowed=["SELECT", "WITH", "EXPLAIN"]) from None
    if len(statements) != 1:
        raise QueryError(f"sql: {len(statements)} statements given; allowed: exactly one SELECT or WITH statement",
                         field="sql", value=text[:200], allowed="one statement")
    statement = statements[0]
    body = _COMMENT_RE.sub(" ", getattr(statement, "query", "") or text).strip()
    try:
        kind = statement.type.name
    except ValueError:  # a statement type this duckdb module has no name for (UPDATE EXTENSIONS, ...)
        kind = "OTHER"
    words = " ".join(body.split()[:3]).upper()
    if kind == "EXPLAIN":
        inner = re.sub(r"(?is)^\s*EXPLAIN(\s+ANALYZE)?(\s*\([^)]*\))?", "", body)
        check_sql(con, inner)  # EXPLAIN of a refused statement is refused as that statement
    elif kind == "MULTI" and re.match(r"(?i)(UN)?PIVOT\b", body):
        pass  # a PIVOT without IN (...) expands to an enum type and a SELECT; the database stays read-only
    elif kind not in _SELECT_KINDS:
        _refuse(kind, words)
    _check_functions(body)
    return text.strip().rstrip(";")


def _refuse(kind: str, words: str) -> None:
    for keyword, why in _REFUSED_WORDS:
        if words == keyword or words.startswith(keyword + " "):
            raise QueryError(f"sql: {keyword} is not allowed: {why}; allowed: one SELECT or WITH statement (or "
                             "EXPLAIN of one)", field="sql", value=keyword, allowed=["SELECT", "WITH", "EXPLAIN"])
    name = {"MULTI": "a statement that expands to several", "OTHER": words.split(" ")[0] or "this statement"}.get(
        kind, f"{kind}")
    raise QueryError(f"sql: {name} statements are not allowed: the lake is read-only; allowed: one SELECT or WITH "
                     "statement (or EXPLAIN of one)", field="sql", value=words.split(" ")[0] if words else kind,
                     allowed=["SELECT", "WITH", "EXPLAIN"])


def _check_functions(body: str) -> None:
    """Refuse functions that reveal server paths, settings or the environment (by name, anywhere in the
    statement: quoting or a schema prefix does not hide them)."""
    hit = _DENIED_RE.search(body.lower())
    if hit:
        name = hit.group(1) or "information_schema.views"
        raise QueryError(f"sql: {name} is not allowed: it reveals server paths or settings; allowed: the lake's views "
                         "and the other functions", field="sql", value=name,
                         allowed="functions other than " + ", ".join(DENIED_FUNCTIONS))


def run_sql(
    text: str, *, lake: str | None = None, timeout_s: float | None = None, max_rows: int | None = None,
    limits: QueryLimits | None = None,
) -> pa.Table:
    """Run one read-only statement over the lake's views, within `limits`."""
    with SLOTS.hold(limits, "sql"), _connect(lake, limits) as con:
        sql = check_sql(con, text)
        return unique_names(_execute(con, sql, timeout_s=timeout_s, max_rows=max_rows, what="sql", limits=limits))


def unique_names(table: pa.Table) -> pa.Table:
    """Columns a statement names twice (`SELECT a.ttft_s, b.ttft_s ...` of a self-join) numbered from the second
    on (ttft_s, ttft_s_2): rows as records keep both, and the table printer indexes them by name."""
    names = table.column_names
    if len(set(names)) == len(names):
        return table
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return table.rename_columns(out)


def table_records(table: pa.Table) -> list[dict[str, object]]:
    """Rows as JSON-safe dicts, nested values too: NaN and infinities become None, timestamps and times
    ISO strings, decimals and UUIDs text, intervals `{months, days, nanoseconds}`, bytes text (UTF-8, else
    base64 with a `base64:` prefix). A float32 column (the lake stores its outputs so) gives each value's shortest
    float32 text, 3653.45 where the widened double reads 3653.449951171875."""
    for i, f in enumerate(table.schema):
        if pa.types.is_float32(f.type):  # through Arrow's shortest text of each float32, in C++ (a result may be long)
            table = table.set_column(i, f.name, pc.cast(pc.cast(table.column(i), pa.string()), pa.float64()))
    return [{k: json_safe(v) for k, v in row.items()} for row in table.to_pylist()]


def json_safe(v: object) -> object:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple) and not hasattr(v, "_fields"):
        return [json_safe(x) for x in v]
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(v).decode()
    if isinstance(v, datetime.timedelta):
        return v.total_seconds()
    if hasattr(v, "isoformat"):
        return v.isoformat()  # type: ignore[union-attr]
    if isinstance(v, decimal.Decimal):
        return float(v) if v.is_finite() else None
    if isinstance(v, uuid.UUID):
        return str(v)
    if hasattr(v, "months") and hasattr(v, "days") and hasattr(v, "nanoseconds"):
        return {"months": v.months, "days": v.days, "nanoseconds": v.nanoseconds}
    return str(v)


def objectives_of(table: pa.Table) -> list[Objective]:
    """The objectives a frontier table was computed for (from its schema metadata), or []."""
    raw = (table.schema.metadata or {}).get(META_OBJECTIVES)
    if not raw:
        return []
    out = []
    for item in raw.decode().split(","):
        col, _, sense = item.partition(":")
        out.append(Objective(col, "max" if sense == "max" else "min"))
    return out


def sample_candidates(
    name: str, params: Mapping[str, object] | None, n: int, *, lake: str | None = None,
    timeout_s: float | None = None, limits: QueryLimits | None = None,
) -> tuple[pa.Table, int]:
    """A repeatable sample of at most `n` of the rows a frontier query takes its frontier from (finite
    objectives), with only what a chart draws (the objectives, the chip, an ASIC row's source and node),
    and how many such rows there are in all -- one pass over the lake, for the faint points of a chart."""
    bound = bind(name, params)
    objs = bound.final_objectives() or []
    finite = " AND ".join(f'isfinite(CAST("{o.column}" AS DOUBLE))' for o in objs) or "true"
    cols = ", ".join(f'"{o.column}"' for o in objs)
    sql = (f"SELECT * FROM (SELECT {cols}, COLUMNS('^(chip|chip_name|source|node_nm)$'), count(*) OVER () AS _total "
           f"FROM ({bound.sql(frontier=False)}) WHERE {finite}) USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE (7)")
    with SLOTS.hold(limits, f"query {name}"), _connect(lake, limits, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        table = _execute(con, sql, timeout_s=timeout_s, max_rows=None, what=f"query {name}", limits=limits)
    total = int(table.column("_total")[0].as_py()) if table.num_rows else 0
    return table.drop_columns(["_total"]), total


# what a missing objective says about the catalog: the cost and energy columns are blank where the chip has no
# price (rental or purchase; an edge unit cost reads the purchase price alone) or no power (TDP) in the catalog
MISSING_FIELD = {"cost_usd": "price", "unit_cost_usd": "purchase price", "usd_per_million_tokens": "price",
                 "capex_usd": "price", "energy_mwh": "power", "energy_per_token_j": "power", "co2_t": "power",
                 "power_w": "power"}


RANKED_COUNTS = ("configurations_within_deadline", "feasible_layouts")  # a ranking query's rows per chip
RANKED_BEST = ("time_to_train_days",)  # shown for a chip a ranking leaves off (its fastest row's)


def _unranked_chips(bound: Bound, *, lake: str | None, timeout_s: float | None,
                    limits: QueryLimits | None) -> list[dict[str, Any]]:
    """The chips a ranking query (`-- @ranks`: each chip's best row by one column) leaves off because every row
    of theirs lacks that column: the query run with its rows kept (`values=False`) gives each such chip a row
    (the fastest, as the ranking breaks ties), the column blank."""
    column = bound.ranked_column()
    if not column:
        return []
    with SLOTS.hold(limits, f"query {bound.query.name}"), _connect(lake, limits, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        table = _execute(con, bound.sql(values=False), timeout_s=timeout_s, max_rows=None,
                         what=f"query {bound.query.name}", limits=limits)
    out = []
    for r in table.to_pylist():
        v = r.get(column)
        if r.get("chip") is None or (v is not None and math.isfinite(float(v))):
            continue
        rows = next((r[c] for c in RANKED_COUNTS if r.get(c) is not None), 1)
        best = {c: r[c] for c in RANKED_BEST if c != column and r.get(c) is not None}
        out.append({"chip": r["chip"], "rows": int(rows), "missing": [column],
                    "catalog_lacks": [MISSING_FIELD.get(column, column)], "best": best,
                    "calibrated_on": r.get("calibrated_on")})
    # one order whatever the query's own (cheapest_within_deadline and best_layout sort differently): fastest first
    return sorted(out, key=lambda c: (c["best"].get("time_to_train_days", math.inf), c["chip"]))


def unplaced_chips(
    name: str, params: Mapping[str, object] | None, *, lake: str | None = None, timeout_s: float | None = None,
    limits: QueryLimits | None = None,
) -> list[dict[str, Any]]:
    """The chips a frontier query's candidates hold but its frontiers cannot place: every feasible row of theirs
    lacks one of the objectives (a cost without a catalog price, an energy without a power), so they are absent
    from the result however good they are. Per chip (and frontier partition): how many rows, the objectives that
    are never there, and the best of each objective that is, best first by the first objective."""
    bound = bind(name, params)
    objs = bound.final_objectives() or []
    if not objs:
        return _unranked_chips(bound, lake=lake, timeout_s=timeout_s, limits=limits)
    part = [c for c in bound.final_partition() if c != "chip"]

    def col(o: Objective) -> str:
        return f'CAST("{o.column}" AS DOUBLE)'

    def there(o: Objective) -> str:  # a blank (NULL) value is missing as NaN is
        return f"coalesce(isfinite({col(o)}), false)"

    complete = " AND ".join(there(o) for o in objs)
    keys = ", ".join(f'"{c}"' for c in [*part, "chip"])
    per_obj = ", ".join(
        f"bool_or({there(o)}) AS \"has_{i}\", "
        f"{'max' if o.sense == 'max' else 'min'}({col(o)}) FILTER (WHERE isfinite({col(o)})) AS \"best_{i}\""
        for i, o in enumerate(objs))
    first = objs[0]
    rows = bound.sql(frontier=False)
    best = "arg_max" if first.sense == "max" else "arg_min"
    with SLOTS.hold(limits, f"query {name}"), _connect(lake, limits, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        names = {r[0] for r in con.execute(f"DESCRIBE ({rows})").fetchall()}
        # an owned cost with its purchase known (capex) lacks the chip's power for its electricity, not a price
        capex = (", bool_or(coalesce(isfinite(CAST(capex_usd AS DOUBLE)), false)) AS has_capex"
                 if "capex_usd" in names and any(o.column == "cost_usd" for o in objs) else "")
        cal = f", {best}(calibrated_on, {col(first)}) AS calibrated_on" if "calibrated_on" in names else ""
        # a hypothetical ASIC is not a catalog chip: a design without an objective lacks no catalog field
        designs = " AND source IS DISTINCT FROM 'asic'" if "source" in names else ""
        sql = (f"SELECT {keys}, count(*) AS rows, {per_obj}{cal}{capex} FROM ({rows}) "
               f"WHERE chip IS NOT NULL{designs} GROUP BY {keys} HAVING NOT bool_or({complete}) "
               f"ORDER BY best_0 {'DESC' if first.sense == 'max' else 'ASC'} NULLS LAST, {keys}")
        table = _execute(con, sql, timeout_s=timeout_s, max_rows=None, what=f"query {name}", limits=limits)
    out = []
    for r in table.to_pylist():
        missing = [o.column for i, o in enumerate(objs) if not r[f"has_{i}"]]
        out.append({
            "chip": r["chip"], **{c: r[c] for c in part}, "rows": int(r["rows"]), "missing": missing,
            "catalog_lacks": sorted({"power" if c == "cost_usd" and r.get("has_capex") else MISSING_FIELD.get(c, c)
                                     for c in missing}, key=lambda f: ("price" not in f, f)),
            "best": {o.column: r[f"best_{i}"] for i, o in enumerate(objs) if r[f"best_{i}"] is not None},
            "calibrated_on": r.get("calibrated_on"),
        })
    return out


# the limit parameters of the saved queries and the column each bounds (a result they empty says how close it came)
LIMIT_COLUMNS = {"max_days": "time_to_train_days", "days": "time_to_train_days", "max_cost_usd": "cost_usd",
                 "ttft_max_s": "ttft_s", "tpot_max_s": "tpot_s"}
NO_LIMIT = 1e30  # a limit no configuration reaches: the query's rows as if the limit were not set


def beyond_limits(name: str, params: Mapping[str, object] | None, *, lake: str | None = None,
                  timeout_s: float | None = None, limits: QueryLimits | None = None) -> list[str]:
    """For a saved query whose limits (a deadline, a budget, an SLO) leave no row: per limit set, the best value its
    column reaches with that limit lifted (the others kept), e.g. 'no row meets max_days = 0.5: the best
    time_to_train_days without it is 1.29'."""
    given = {k: v for k, v in (params or {}).items() if k in LIMIT_COLUMNS and v is not None}
    known = {p.name for p in load_query(name).params}
    out = []
    for key, value in given.items():
        if key not in known:
            continue
        column = LIMIT_COLUMNS[key]
        # the least value of every row the frontier would be taken from with the limit lifted (its objectives all
        # finite), not of the lifted frontier's rows: a limit's column need not be an objective (TTFT under an SLO)
        bound = bind(name, {**(params or {}), key: NO_LIMIT})
        finite = " AND ".join(f'isfinite(CAST("{c}" AS DOUBLE))' for c in (column, *(o.column for o in
                                                                                 bound.final_objectives() or [])))
        sql = f'SELECT min(CAST("{column}" AS DOUBLE)) AS best FROM ({bound.sql(frontier=False)}) WHERE {finite}'
        with SLOTS.hold(limits, f"query {name}"), _connect(lake, limits, fixed_join_order=True) as con:
            check_lake_values(con, bound)
            best = _execute(con, sql, timeout_s=timeout_s, max_rows=None, what=f"query {name}",
                            limits=limits)["best"][0].as_py()
        if best is None or not math.isfinite(best):
            out.append(f"no row meets {key} = {value}, nor any without it (the other limits or the lake leave none)")
            continue
        out.append(f"no row meets {key} = {value}: the best {column} without it is {best:.3g}")
    return out
