"""Saved queries and user SQL over the lake: validate, bind, run on a read-only connection, return Arrow.

A saved query is one file `queries/sql/<name>.sql`. Its header says what it answers and declares its
parameters; its body is DuckDB SQL over the lake's views (chipsweep.lake.views) in which

    $name                                   a parameter, bound as a typed SQL literal
    $name.columns                           the columns an objectives parameter names (a SELECT list)
    pareto(rel, $objectives | 'a,b:max'     the rows of `rel` on the Pareto frontier
           [, partition_by := (col, ...)])  (built by queries/frontier.py)

Header lines:

    -- <name>: <what it answers, possibly over several comment lines>
    -- @param <name> <type> [= <default>]  <doc>
    -- @plot                                (the result is a frontier that `--plot` can draw)

Types: `text`, `int`, `float`, `choice(a|b|c)`, `objectives(training|edge)`, and three checked against
the lake before the query runs: `model` (a model id in the lake), `sweep` (a sweep in the lake) and
`version(<sweep param>)` (a version of that sweep). A parameter without a default is required; `= null`
makes it optional (NULL in SQL).

User SQL (`run_sql`) must be exactly one SELECT / WITH statement; the connection is read-only and can
read no file outside the lake, so writes, COPY, ATTACH, INSTALL/LOAD, PRAGMA/SET and reads elsewhere
are refused with a message that says so. Every error a caller sees is a `QueryError` naming the
field, the value and what is allowed.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa

from chipsweep.lake import connect, sql_literal
from chipsweep.queries.frontier import FrontierError, Objective, pareto_sql, parse_objectives
from chipsweep.schemas.columns import KINDS, objective_columns
from chipsweep.schemas.errors import ChipsweepError

SQL_DIR = Path(__file__).with_name("sql")
_PARAM_RE = re.compile(r"^--\s*@param\s+(\w+)\s+(\w+(?:\([^)]*\))?)\s*(?:=\s*(\S+))?\s*(.*)$")
_PARETO_RE = re.compile(
    r"\bpareto\(\s*(?P<rel>\w+)\s*,\s*(?P<obj>\$\w+|'[^']*')\s*"
    r"(?:,\s*partition_by\s*:=\s*\((?P<part>[\w\s,]*)\))?\s*\)",
    re.IGNORECASE,
)
_DOLLAR_RE = re.compile(r"\$(\w+)")
_COLUMNS_RE = re.compile(r"\$(\w+)\.columns\b")
_TYPE_RE = re.compile(
    r"^(text|int|float|model|sweep|version\(\w+\)|choice\([\w|.:-]+\)|objectives\((training|inference|asic|edge)\))$"
)
META_OBJECTIVES = b"chipsweep.objectives"
META_QUERY = b"chipsweep.query"

# objectives each kind of frontier may use: the numeric outputs of the fact tables
OBJECTIVE_COLUMNS: dict[str, list[str]] = {kind: objective_columns(kind) for kind in KINDS}
OBJECTIVE_COLUMNS["edge"] = ["decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd", "ttft_s"]
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


class QueryError(ChipsweepError):
    """A refused query or a bad parameter: `field`, `value` and `allowed` say which and why. Over HTTP:
    an unknown saved query is 404, refused SQL 400, a bad parameter 422."""

    @property  # type: ignore[override]
    def http_status(self) -> int:
        return 404 if self.field == "name" else 400 if self.field == "sql" else 422


# ---------------------------------------------------------------------------------------------
# saved queries: files, headers, parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    type: str  # text | int | float | choice(...) | objectives(...)
    required: bool
    default: str | None
    doc: str

    @property
    def choices(self) -> list[str] | None:
        m = re.match(r"choice\((.*)\)$", self.type)
        return m.group(1).split("|") if m else None

    @property
    def objective_kind(self) -> str | None:
        m = re.match(r"objectives\((\w+)\)$", self.type)
        return m.group(1) if m else None

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "required": self.required,
                                  "default": self.default, "doc": self.doc}
        if self.choices:
            out["allowed"] = self.choices
        if self.objective_kind:
            out["allowed"] = OBJECTIVE_COLUMNS[self.objective_kind]
        return out


@dataclass(frozen=True)
class SavedQuery:
    name: str
    answers: str
    params: tuple[Param, ...]
    sql: str
    path: Path
    plot: bool = False
    param_names: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "answers": self.answers, "plot": self.plot,
                "params": [p.describe() for p in self.params]}


def parse_saved(path: Path) -> SavedQuery:
    name = path.stem
    answers: list[str] = []
    params: list[Param] = []
    plot = False
    body: list[str] = []
    in_header = True
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if in_header and stripped.startswith("--"):
            m = _PARAM_RE.match(stripped)
            if m:
                pname, ptype, default, doc = m.groups()
                if not _TYPE_RE.match(ptype):
                    raise QueryError(f"{path.name}: parameter '{pname}' has type '{ptype}'; allowed: text, int, float, "
                                     "choice(a|b), objectives(training|edge), model, sweep, version(<sweep param>)",
                                     field="type", value=ptype)
                params.append(Param(pname, ptype, default is None, None if default in (None, "null") else default,
                                    doc.strip()))
            elif stripped.startswith("-- @plot"):
                plot = True
            elif not stripped.startswith("-- @"):
                text = stripped[2:].strip()
                if not answers and text.startswith(f"{name}:"):
                    text = text[len(name) + 1:].strip()
                if text:
                    answers.append(text)
            continue
        in_header = False
        body.append(line)
    return SavedQuery(name, " ".join(answers), tuple(params), "\n".join(body).strip().rstrip(";"), path, plot,
                      tuple(p.name for p in params))


@cache
def _saved_index(sql_dir: str) -> dict[str, SavedQuery]:
    return {p.stem: parse_saved(p) for p in sorted(Path(sql_dir).glob("*.sql"))}


def saved_queries() -> dict[str, SavedQuery]:
    """name -> saved query, from queries/sql/*.sql."""
    return dict(_saved_index(str(SQL_DIR)))


def list_saved() -> list[dict[str, object]]:
    """Name, what it answers and the parameters of every saved query (JSON-able)."""
    return [q.describe() for q in saved_queries().values()]


def load_query(name: str) -> SavedQuery:
    queries = saved_queries()
    if name not in queries:
        raise QueryError(f"query '{name}' is not a saved query; allowed: {', '.join(queries)}",
                         field="name", value=name, allowed=list(queries))
    return queries[name]


# ---------------------------------------------------------------------------------------------
# binding parameters
# ---------------------------------------------------------------------------------------------
def _literal(p: Param, raw: object) -> tuple[str, object]:
    """(SQL literal, parsed value) of one parameter value, validated against its type."""
    if raw is None:
        return "NULL", None
    text = str(raw).strip()
    if p.type in ("text", "model", "sweep"):
        if len(text) > 200 or "\x00" in text:
            raise QueryError(f"parameter {p.name}: value is too long or has a NUL byte; allowed: up to 200 characters",
                             field=p.name, value=text[:40])
        return sql_literal(text), text
    if p.type == "int" or p.type.startswith("version("):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number.is_integer()):
            raise QueryError(f"parameter {p.name}: '{text}' is not an integer", field=p.name, value=text,
                             allowed="an integer")
        return str(int(number)), int(number)
    if p.type == "float":
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise QueryError(f"parameter {p.name}: '{text}' is not a finite number", field=p.name, value=text,
                             allowed="a finite number")
        return repr(value), value
    choices = p.choices
    if choices is not None:
        if text not in choices:
            raise QueryError(f"parameter {p.name}: '{text}' is not allowed; allowed: {', '.join(choices)}",
                             field=p.name, value=text, allowed=choices)
        return sql_literal(text), text
    raise QueryError(f"parameter {p.name}: type {p.type} has no SQL literal", field=p.name)  # pragma: no cover


@dataclass
class Bound:
    """A saved query with its parameters checked, ready to run."""

    query: SavedQuery
    values: dict[str, object]  # parameter -> parsed value
    objectives: dict[str, list[Objective]]  # objectives parameter -> parsed list
    literals: dict[str, str]  # parameter -> SQL literal

    def sql(self, *, frontier: bool = True) -> str:
        """The statement to run; `frontier=False` replaces every pareto(...) by its input rows."""
        return expand(self.query.sql, self.literals, self.objectives, frontier=frontier)

    def final_objectives(self) -> list[Objective] | None:
        """The objectives of the last pareto(...) in the query (what its result is a frontier of)."""
        calls = list(_PARETO_RE.finditer(self.query.sql))
        if not calls:
            return None
        found = [_objectives_arg(c.group("obj"), self.objectives) for c in calls]
        # a query mixing frontiers of different objectives (frontier_diff over training and edge rows)
        # is not the frontier of any one set
        if any([(o.column, o.sense) for o in f] != [(o.column, o.sense) for o in found[-1]] for f in found):
            return None
        return found[-1]


def bind(query: SavedQuery | str, params: Mapping[str, object] | None = None) -> Bound:
    """Check `params` against the query's declaration (names, types, required, allowed values)."""
    q = load_query(query) if isinstance(query, str) else query
    given = dict(params or {})
    unknown = [k for k in given if k not in q.param_names]
    if unknown:
        raise QueryError(f"query {q.name}: parameter '{unknown[0]}' is unknown; allowed: "
                         f"{', '.join(q.param_names) or '(none)'}", field=unknown[0], value=given[unknown[0]],
                         allowed=list(q.param_names))
    values: dict[str, object] = {}
    literals: dict[str, str] = {}
    objectives: dict[str, list[Objective]] = {}
    for p in q.params:
        raw = given.get(p.name)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            if p.required:
                raise QueryError(f"query {q.name}: parameter '{p.name}' is required ({p.doc})", field=p.name,
                                 value=None, allowed=p.describe().get("allowed", p.type))
            raw = p.default
        kind = p.objective_kind
        if kind:
            try:
                objs = parse_objectives(str(raw), OBJECTIVE_COLUMNS[kind], field=p.name)
            except FrontierError as exc:
                raise QueryError(str(exc), field=p.name, value=raw, allowed=OBJECTIVE_COLUMNS[kind]) from None
            objectives[p.name] = objs
            text = ",".join(str(o) for o in objs)
            values[p.name] = text
            literals[p.name] = sql_literal(text)
            continue
        literals[p.name], values[p.name] = _literal(p, raw)
    return Bound(q, values, objectives, literals)


def _objectives_arg(arg: str, objectives: Mapping[str, list[Objective]]) -> list[Objective]:
    if arg.startswith("$"):
        return objectives[arg[1:]]
    names = [t.strip().split(":")[0].lstrip("+-") for t in arg.strip("'").split(",")]
    return parse_objectives(arg.strip("'"), names)


def expand(sql: str, literals: Mapping[str, str], objectives: Mapping[str, list[Objective]], *,
           frontier: bool = True) -> str:
    """Replace pareto(...) by the frontier SQL (or by its input, `frontier=False`) and $name by literals."""

    def pareto(m: re.Match[str]) -> str:
        rel = m.group("rel")
        if not frontier:
            return f"(SELECT * FROM {rel})"
        part = [c.strip() for c in (m.group("part") or "").split(",") if c.strip()]
        return pareto_sql(rel, _objectives_arg(m.group("obj"), objectives), partition_by=part)

    out = _PARETO_RE.sub(pareto, sql)

    def columns(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in objectives:
            raise QueryError(f"saved query uses ${name}.columns, but {name} is not an objectives parameter", field=name)
        return ", ".join(f'"{o.column}"' for o in objectives[name])

    out = _COLUMNS_RE.sub(columns, out)

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in literals:
            raise QueryError(f"saved query uses ${name}, which it does not declare", field=name)
        return literals[name]

    return _DOLLAR_RE.sub(value, out)


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
