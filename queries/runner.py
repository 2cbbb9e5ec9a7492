"""Running saved queries and user SQL over the lake: bind (queries/saved.py), check, run on a read-only
connection (lake/views.py), return Arrow.

User SQL (`run_sql`) must be exactly one SELECT / WITH statement; the connection is read-only and can
read no file outside the lake, so writes, COPY, ATTACH, INSTALL/LOAD, PRAGMA/SET and reads elsewhere
are refused with a message that says so. Every error a caller sees is a `QueryError` naming the
field, the value and what is allowed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from chipsweep.lake import connect
from chipsweep.queries.errors import QueryError
from chipsweep.queries.frontier import Objective
from chipsweep.queries.saved import (
    META_OBJECTIVES,
    META_QUERY,
    Bound,
    bind,
)

# statements `run_sql` refuses, by parser statement type, with what to say
_REFUSED = {
    "COPY": "COPY is not allowed: the lake is read-only and no file can be written",
    "ATTACH": "ATTACH is not allowed: only the lake's views can be queried",
    "DETACH": "DETACH is not allowed: only the lake's views can be queried",
    "LOAD": "INSTALL / LOAD is not allowed: no extension can be installed or loaded",
    "PRAGMA": "PRAGMA is not allowed: settings cannot be read or changed here",
    "SET": "SET is not allowed: settings cannot be changed here",
    "EXPORT": "EXPORT is not allowed: no file can be written",
}


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
             what: str) -> pa.Table:
    with _deadline(con, timeout_s) as fired:
        try:
            rel = con.sql(sql)
            if rel is None:
                raise QueryError(f"{what}: the statement returns no rows; allowed: one SELECT or WITH statement",
                                 field="sql")
            if max_rows is not None:
                reader = rel.to_arrow_reader(batch_size=min(max_rows, 100_000) or 1)
                batches: list[pa.RecordBatch] = []
                n = 0
                for batch in reader:
                    batches.append(batch)
                    n += batch.num_rows
                    if n >= max_rows:
                        break
                table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)
            else:
                table = rel.to_arrow_table()
        except duckdb.InterruptException:
            if fired[0]:
                raise QueryError(f"{what}: stopped after {timeout_s:g} s; allowed: queries that finish within the "
                                 "time limit", field="timeout_s", value=timeout_s) from None
            raise
        except duckdb.PermissionException as exc:
            raise QueryError(f"{what}: reading outside the lake is not allowed ({_first_line(exc)})", field="sql",
                             allowed="the lake's views and files under the lake") from None
        except duckdb.Error as exc:
            raise QueryError(f"{what}: {_first_line(exc)}", field="sql") from None
    return table


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def run_saved(
    name: str, params: Mapping[str, object] | None = None, *, lake: str | None = None, frontier: bool = True,
    timeout_s: float | None = None, max_rows: int | None = None, sample: int | None = None,
) -> pa.Table:
    """Run a saved query; the Arrow result carries, in its schema metadata, the query's name and (for
    frontier queries) its objectives as `col:min,col:max`. `frontier=False` returns the rows the
    frontier was taken from instead (every feasible candidate; for plots), `sample` at most that many
    of them (a repeatable reservoir sample)."""
    bound = bind(name, params)
    sql = bound.sql(frontier=frontier)
    if sample is not None:
        sql = f"SELECT * FROM ({sql}) USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (7)"
    with connect(lake, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        table = _execute(con, sql, timeout_s=timeout_s, max_rows=max_rows, what=f"query {name}")
    meta = {META_QUERY: name.encode()}
    objs = bound.final_objectives()
    if objs:
        meta[META_OBJECTIVES] = ",".join(str(o) for o in objs).encode()
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})


def count_saved(
    name: str, params: Mapping[str, object] | None = None, *, lake: str | None = None, timeout_s: float | None = None,
) -> int:
    """How many candidate rows (finite objectives) a frontier query takes its frontier from."""
    bound = bind(name, params)
    objs = bound.final_objectives() or []
    finite = " AND ".join(f'isfinite(CAST("{o.column}" AS DOUBLE))' for o in objs) or "true"
    sql = f"SELECT count(*) AS n FROM ({bound.sql(frontier=False)}) WHERE {finite}"
    with connect(lake, fixed_join_order=True) as con:
        check_lake_values(con, bound)
        return int(_execute(con, sql, timeout_s=timeout_s, max_rows=None, what=f"query {name}")["n"][0].as_py())


def check_lake_values(con: duckdb.DuckDBPyConnection, bound: Bound) -> None:
    """Parameters of type model / sweep / version(...) must name something the lake holds."""
    for p in bound.query.params:
        value = bound.values.get(p.name)
        if value is None:
            continue
        if p.type == "model":
            allowed = [r[0] for r in con.execute("SELECT DISTINCT model FROM models ORDER BY 1").fetchall()]
        elif p.type == "sweep":
            allowed = [r[0] for r in con.execute("SELECT DISTINCT sweep FROM versions ORDER BY 1").fetchall()]
        elif p.type.startswith("version("):
            sweep = bound.values.get(p.type[len("version("):-1])
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
    """The one read-only statement of `text`, or a QueryError saying what is refused."""
    if not text or not text.strip():
        raise QueryError("sql: empty; allowed: one SELECT or WITH statement", field="sql", value=text)
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryError(f"sql: {_first_line(exc)}", field="sql", value=text[:200]) from None
    if len(statements) != 1:
        raise QueryError(f"sql: {len(statements)} statements given; allowed: exactly one SELECT or WITH statement",
                         field="sql", value=text[:200], allowed="one statement")
    kind = statements[0].type.name
    if kind != "SELECT":
        why = _REFUSED.get(kind, f"{kind} statements are not allowed: the lake is read-only")
        raise QueryError(f"sql: {why}; allowed: one SELECT or WITH statement", field="sql", value=kind,
                         allowed=["SELECT", "WITH"])
    return text.strip().rstrip(";")


def run_sql(
    text: str, *, lake: str | None = None, timeout_s: float | None = None, max_rows: int | None = None,
) -> pa.Table:
    """Run one read-only SELECT / WITH statement over the lake's views."""
    with connect(lake) as con:
        sql = check_sql(con, text)
        return _execute(con, sql, timeout_s=timeout_s, max_rows=max_rows, what="sql")


def table_records(table: pa.Table) -> list[dict[str, object]]:
    """Rows as JSON-safe dicts (NaN and infinities become None; timestamps ISO strings)."""
    rows = table.to_pylist()
    for row in rows:
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                row[k] = None
            elif hasattr(v, "isoformat"):
                row[k] = v.isoformat()
    return rows


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
