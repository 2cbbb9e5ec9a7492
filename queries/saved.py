"""Saved queries: one file `queries/sql/<name>.sql` each, its header (what it answers, its parameters)
and the binding of parameter values into its SQL.

Header lines:

    -- <name>: <what it answers, possibly over several comment lines>
    -- @param <name> <type> [= <default>]  <doc>
    -- @plot                                (the result is a frontier that `--plot` can draw)
    -- @ranks <column | $param>             (the result is each chip's best row by this column: a chip whose every
                                             row lacks it, no price or no power, is left off and said so)
    -- @note <text>                         (what a column of the result means where its name alone misleads;
                                             the table output prints it under the rows)

In the body (DuckDB SQL over the lake's views, lake/views.py):

    $name                                   a parameter, bound as a typed SQL literal
    $name.columns                           the columns an objectives parameter names (a SELECT list)
    pareto(rel, $objectives | 'a,b:max'     the rows of `rel` on the Pareto frontier
           [, partition_by := (col, ...)])  (built by queries/frontier.py)
    has_value(expr)                         isfinite(expr): the rows a ranking needs (`Bound.sql(values=False)`
                                            keeps the rows without it, to name the chips left off)

Types: `text`, `int`, `float`, `positive` (a float > 0: a deadline, a budget, an SLO), `choice(a|b|c)`, `objectives(training|edge)`, and four checked against
the lake before the query runs (queries/runner.py): `model` (a model id in the lake), `sweep` (a sweep
in the lake), `chips` (catalog chip ids the lake holds, separated by commas) and `version(<sweep param>)` (a version
of that sweep). A parameter without a default is
required; `= null` makes it optional (NULL in SQL). Every error is a `QueryError` naming the field, the
value and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from chipsweep.lake import sql_literal
from chipsweep.queries.errors import QueryError
from chipsweep.queries.frontier import FrontierError, Objective, pareto_sql, parse_objectives
from chipsweep.schemas.columns import FACTS, KINDS, objective_columns

SQL_DIR = Path(__file__).with_name("sql")
_PARAM_RE = re.compile(r"^--\s*@param\s+(\w+)\s+(\w+(?:\([^)]*\))?)\s*(?:=\s*(\S+))?\s*(.*)$")
_HAS_VALUE_RE = re.compile(r"\bhas_value\(\s*([\w.]+)\s*\)")
_PARETO_RE = re.compile(
    r"\bpareto\(\s*(?P<rel>\w+)\s*,\s*(?P<obj>\$\w+|'[^']*')\s*"
    r"(?:,\s*partition_by\s*:=\s*\((?P<part>[\w\s,]*)\))?\s*\)",
    re.IGNORECASE,
)
_DOLLAR_RE = re.compile(r"\$(\w+)")
_COLUMNS_RE = re.compile(r"\$(\w+)\.columns\b")
_TYPE_RE = re.compile(
    r"^(text|int|float|positive|model|sweep|chips|version\(\w+\)|choice\([\w|.:-]+\)|objectives\((training|inference|asic|edge)\))$"
)
META_OBJECTIVES = b"chipsweep.objectives"
META_QUERY = b"chipsweep.query"
META_NOTE = b"chipsweep.note"  # what a column of the result means where its name alone misleads (`-- @note`)
META_REPEATS = b"chipsweep.repeats"  # a frontier's rows left out as repeats of a row it lists (`runner.collapse_repeats`)
META_PARTITION = b"chipsweep.frontier_by"  # the columns whose values split the result into separate frontiers

# objectives each kind of frontier may use (`objectives(<kind>)` parameters): the numeric outputs of the fact tables,
# what `bind` accepts and what errors and the OpenAPI page list as allowed
OBJECTIVE_COLUMNS: dict[str, list[str]] = {kind: objective_columns(kind) for kind in KINDS}

# the units of the minimised outputs a frontier trades against: a cost, an energy, a power or emissions, a time
TRADE_OFF_UNITS = frozenset({"USD", "MWh", "J", "W", "t CO2eq", "s", "days", "chip-hours"})


def frontier_objectives(kind: str) -> list[str]:
    """The outputs of `kind` the web UI's frontier explorer offers: those the schema maximises (`better="max"`:
    throughput, utilisation) and the minimised costs, energies, powers, emissions and times. A count or a size the
    layout happens to have (idle_chips, first_stage_layers, global_batch_run, mem_gb, prefill_pool_busy) stays an
    objective the queries accept from a script, but a frontier over it answers no question a planner asks, so the
    explorer does not offer it."""
    if kind == "edge":
        return OBJECTIVE_COLUMNS["edge"]
    return [c.name for c in FACTS[kind] if c.is_objective and (c.better == "max" or c.unit in TRADE_OFF_UNITS)]


OBJECTIVE_COLUMNS["edge"] = ["decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd", "ttft_s"]


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
    ranks: str | None = None  # the column (or $param naming it) the result keeps each chip's best row by
    note: str = ""  # `-- @note` lines: what a column means where its name alone misleads

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "answers": self.answers, "plot": self.plot,
                "params": [p.describe() for p in self.params]}


def parse_saved(path: Path) -> SavedQuery:
    name = path.stem
    answers: list[str] = []
    params: list[Param] = []
    plot = False
    ranks: str | None = None
    notes: list[str] = []
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
            elif stripped.startswith("-- @ranks"):
                ranks = stripped[len("-- @ranks"):].strip()
            elif stripped.startswith("-- @note"):
                notes.append(stripped[len("-- @note"):].strip())
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
                      tuple(p.name for p in params), ranks, " ".join(notes))


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
    if p.type in ("text", "model", "sweep", "chips"):
        if len(text) > 2000 or "\x00" in text:
            raise QueryError(f"parameter {p.name}: value is too long or has a NUL byte; allowed: up to 2,000 characters",
                             field=p.name, value=text[:40])
        if p.type == "chips":  # catalog ids separated by commas, spaces around them ignored
            text = ",".join(part.strip() for part in text.split(",") if part.strip())
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
    if p.type in ("float", "positive"):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (p.type == "positive" and value <= 0):
            what = "a finite number > 0" if p.type == "positive" else "a finite number"
            raise QueryError(f"parameter {p.name}: '{text}' is not {what}", field=p.name, value=text, allowed=what)
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

    def sql(self, *, frontier: bool = True, values: bool = True) -> str:
        """The statement to run; `frontier=False` replaces every pareto(...) by its input rows, `values=False`
        every has_value(...) by true (the rows a ranking leaves out stay)."""
        return expand(self.query.sql, self.literals, self.objectives, frontier=frontier, values=values)

    def ranked_column(self) -> str | None:
        """The column the result ranks each chip's rows by (`-- @ranks`), a $param resolved to its value."""
        ranks = self.query.ranks
        if ranks and ranks.startswith("$"):
            return str(self.values.get(ranks[1:]))
        return ranks

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

    def final_partition(self) -> list[str]:
        """The columns the last pareto(...) partitions by: its result holds one frontier per distinct value."""
        calls = list(_PARETO_RE.finditer(self.query.sql))
        if not calls:
            return []
        return _partition(calls[-1], self.objectives)


# columns that say how a cost objective was computed: they split a frontier only where a cost is compared
# (cost_scope: what a unit cost is the price of -- an accelerator, a whole system, or an ASIC's manufacturing cost)
COST_BASIS_COLUMNS = {"cost_basis": ("cost_usd", "capex_usd", "opex_usd", "usd_per_million_tokens"),
                      "cost_scope": ("unit_cost_usd",)}


def _partition(call: re.Match[str], objectives: Mapping[str, list[Objective]]) -> list[str]:
    """The partition columns of one pareto(...) call: rental and owned costs never share a frontier, but where no
    objective is a cost the basis does not split it (time against energy is one frontier over every chip)."""
    part = [c.strip() for c in (call.group("part") or "").split(",") if c.strip()]
    compared = {o.column for o in _objectives_arg(call.group("obj"), objectives)}
    return [c for c in part if c not in COST_BASIS_COLUMNS or compared & set(COST_BASIS_COLUMNS[c])]


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
           frontier: bool = True, values: bool = True) -> str:
    """Replace pareto(...) by the frontier SQL (or by its input, `frontier=False`), has_value(x) by isfinite(x) (or
    by true, `values=False`) and $name by literals."""

    def pareto(m: re.Match[str]) -> str:
        rel = m.group("rel")
        if not frontier:
            return f"(SELECT * FROM {rel})"
        return pareto_sql(rel, _objectives_arg(m.group("obj"), objectives), partition_by=_partition(m, objectives))

    out = _PARETO_RE.sub(pareto, sql)
    out = _HAS_VALUE_RE.sub(lambda m: f"isfinite({m.group(1)})" if values else "true", out)

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
