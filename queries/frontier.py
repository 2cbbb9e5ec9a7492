"""Pareto frontiers as SQL: builders that DuckDB runs over the lake, never pulling rows into Python.

A row is on the frontier of its partition when no other row of that partition is at least as good in
every objective and strictly better in one (objectives to maximise are negated first). Rows whose
objectives are NULL, NaN or infinite take no part; rows with equal objective vectors are all kept (the saved
frontier queries then show a configuration that two sweeps share once).

The large table is only scanned twice, aggregated and hash-joined against small tables -- never
sorted as a whole and never compared pair by pair:

1. *bins*: each objective is cut into fixed logarithmic bins (K per octave; a monotone map of the whole
   real line, so any sign, scale or unit works) and one grouped aggregate gives the best value of each
   objective in every occupied cell of bins, per partition;
2. *prune* (on the small cell table): with two objectives, a running minimum over the bins of one
   objective gives the best other objective among rows strictly better in the first -- both ways round;
   with three, the occupied bins of each objective are ranked into G coarse buckets and, for each pair
   of objectives, a 2-D prefix minimum over the G x G grid gives the best third objective among rows
   strictly better in both. A cell that cannot beat those bounds holds only dominated rows; the rows of
   the other cells must beat them individually (the second scan, a join with the few live cells).
   Frontier rows always survive; few others do;
3. *exact* on the survivors: two objectives by sort and running minimum per partition (the best second
   objective among strictly smaller first objectives); three by comparing only distinct survivors that
   share two of their three coarse buckets -- a row that survived the prune can only be dominated by
   such a one -- so no pair of a large table is ever formed.

The bin map relies on log2 being monotone, which holds for float32 data (all the lake's objectives):
adjacent float32 values are 2^29 double ulps apart, far beyond libm's error.

`pareto_sql` returns a parenthesised SELECT of all the source's columns for the frontier rows, over any
relation (a view, or a CTE of the calling statement); saved queries call it through `pareto(...)` in
their .sql text (see queries/runner.py).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from chipsweep.schemas.columns import MAXIMISE
from chipsweep.schemas.errors import ChipsweepError

Sense = Literal["min", "max"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FrontierError(ChipsweepError):
    """A bad objective list; the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class Objective:
    column: str
    sense: Sense = "min"

    def __str__(self) -> str:
        return f"{self.column}:{self.sense}"


def parse_objectives(
    text: str | Sequence[str], allowed: Iterable[str], *, field: str = "objectives", counts: Sequence[int] = (2, 3),
) -> list[Objective]:
    """`time_to_train_days,cost_usd` or `tokens_per_s:max,cost_usd` -> objectives, validated against the
    allowed columns; without `:min` / `:max`, throughput-like columns (MAXIMISE) are maximised."""
    allowed = list(allowed)
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    out: list[Objective] = []
    for item in items:
        name, sense = item, None
        if ":" in item:
            name, _, s = item.partition(":")
            if s not in ("min", "max"):
                raise FrontierError(f"{field}: '{item}' has sense '{s}'; allowed: min, max (e.g. tokens_per_s:max)")
            sense = s
        if name not in allowed:
            raise FrontierError(f"{field}: '{name}' is not an objective here; allowed: {', '.join(allowed)}")
        if any(o.column == name for o in out):
            raise FrontierError(f"{field}: '{name}' is given twice; each objective once")
        out.append(Objective(name, sense or ("max" if name in MAXIMISE else "min")))  # type: ignore[arg-type]
    if len(out) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise FrontierError(f"{field}: '{','.join(items)}' names {len(out)} objective(s); allowed: {want}, "
                            f"from {', '.join(allowed)}")
    return out


def _ident(name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise FrontierError(f"{what} '{name}' is not a plain column name (letters, digits, _)")
    return '"' + name + '"'


BINS_PER_OCTAVE_2D = 16  # two objectives: 4.4 % wide bins
BINS_PER_OCTAVE_3D = 16  # three: 4.4 % wide bins, then ranked into COARSE_3D buckets per objective
COARSE_3D = 128
_counter = itertools.count()  # CTE names unique within one statement


def _bin(x: str, k: int) -> str:
    """A monotone integer bin of a double (K per octave): negatives < 0 < positives, by magnitude."""
    return (f"CASE WHEN {x} > 0 THEN CAST(floor(log2({x}) * {k}) AS INTEGER) "
            f"WHEN {x} < 0 THEN -CAST(floor(log2(-{x}) * {k}) AS INTEGER) - {4096 * k} "
            f"ELSE {-2100 * k} END")


def pareto_sql(
    source: str, objectives: Sequence[Objective], *, partition_by: Sequence[str] = (),
    bins_per_octave: int | None = None, coarse: int | None = None,
) -> str:
    """A parenthesised SELECT of the rows of `source` (all its columns) on the Pareto frontier of each partition."""
    if len(objectives) not in (2, 3):
        raise FrontierError(f"objectives: {len(objectives)} given; allowed: 2 or 3")
    src = _ident(source, "source")
    part = [_ident(p, "partition_by") for p in partition_by]
    s = f"_pf{next(_counter)}"
    k = len(objectives)
    per_octave = int(bins_per_octave or (BINS_PER_OCTAVE_2D if k == 2 else BINS_PER_OCTAVE_3D))
    coarse = int(coarse or COARSE_3D)
    signed = [f"{'-' if o.sense == 'max' else ''}CAST({_ident(o.column, 'objective')} AS DOUBLE)"
              for o in objectives]
    # one expression over all objectives: NULL, NaN or +-inf in any makes it non-finite (and, unlike a
    # per-column predicate, it is not pushed into the Parquet scan, where it slows decoding)
    finite = "isfinite(" + " + ".join(f"{e} * 0.0" for e in signed) + ")"
    pcols = "".join(f"{p}, " for p in part)
    over = ("PARTITION BY " + ", ".join(part) + " ") if part else ""
    bins = ", ".join(f"__b{i}" for i in range(k))
    head = f"""
    {s}_in AS NOT MATERIALIZED (SELECT *, {', '.join(f'{e} AS __o{i}' for i, e in enumerate(signed))}
                                FROM {src} WHERE {finite}),
    {s}_b AS NOT MATERIALIZED (SELECT *, {', '.join(f"{_bin(f'__o{i}', per_octave)} AS __b{i}" for i in range(k))}
                               FROM {s}_in),
    {s}_cell AS MATERIALIZED (SELECT {pcols}{bins}, {', '.join(f'min(__o{i}) AS m{i}' for i in range(k))}
                              FROM {s}_b GROUP BY ALL)"""
    if k == 2:
        internal = "__o0, __o1, __b0, __b1"
        body = f"""
    -- prune: the best second objective over strictly lower bins of the first, and the other way round
    {s}_p0 AS (SELECT {pcols}__b0,
                      min(min(m1)) OVER ({over}ORDER BY __b0 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p
               FROM {s}_cell GROUP BY {pcols}__b0),
    {s}_p1 AS (SELECT {pcols}__b1,
                      min(min(m0)) OVER ({over}ORDER BY __b1 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p
               FROM {s}_cell GROUP BY {pcols}__b1),
    {s}_live AS MATERIALIZED (
        SELECT {''.join(f'c.{p}, ' for p in part)}c.__b0, c.__b1, a.p AS p0, e.p AS p1 FROM {s}_cell c
        JOIN {s}_p0 a ON {_on('c', 'a', part)} AND c.__b0 = a.__b0
        JOIN {s}_p1 e ON {_on('c', 'e', part)} AND c.__b1 = e.__b1
        WHERE (a.p IS NULL OR c.m1 < a.p) AND (e.p IS NULL OR c.m0 < e.p)),
    {s}_sv AS MATERIALIZED (
        SELECT r.* FROM {s}_b r JOIN {s}_live l ON {_on('r', 'l', part)} AND r.__b0 = l.__b0 AND r.__b1 = l.__b1
        WHERE (l.p0 IS NULL OR r.__o1 < l.p0) AND (l.p1 IS NULL OR r.__o0 < l.p1)),
    -- exact: per distinct first objective the best second, then a running minimum over strictly smaller firsts
    {s}_d AS (SELECT {pcols}__o0, min(__o1) AS m1 FROM {s}_sv GROUP BY ALL),
    {s}_r AS (SELECT *, min(m1) OVER ({over}ORDER BY __o0 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS run
              FROM {s}_d),
    {s}_f AS (SELECT r.* FROM {s}_sv r SEMI JOIN {s}_r d ON {_on('r', 'd', part)} AND r.__o0 = d.__o0
              AND r.__o1 = d.m1 AND (d.run IS NULL OR d.m1 < d.run))"""
    else:
        internal = "__o0, __o1, __o2, __b0, __b1, __b2, __c0, __c1, __c2"
        ranks = []
        for i in range(3):
            ranks.append(f"""
    {s}_k{i} AS (SELECT {pcols}__b{i},
                        CAST(CASE WHEN count(*) OVER ({over.strip()}) <= {coarse}
                                  THEN row_number() OVER ({over}ORDER BY __b{i}) - 1
                                  ELSE floor((row_number() OVER ({over}ORDER BY __b{i}) - 1) * {coarse}
                                             / count(*) OVER ({over.strip()})) END AS INTEGER) AS c
                 FROM (SELECT DISTINCT {pcols}__b{i} FROM {s}_cell))""")
        grids = []
        for i, j in ((0, 1), (0, 2), (1, 2)):
            v = 3 - i - j  # the objective not bucketed in this grid
            gp = "".join(f"g.{p}, " for p in part)
            grids.append(f"""
    {s}_c{i}{j} AS (SELECT {pcols}c{i} AS i, c{j} AS j, min(m{v}) AS m FROM {s}_cc GROUP BY ALL),
    {s}_d{i}{j} AS (
        SELECT {gp}x.i, y.j, c.m
        FROM (SELECT {pcols}max(i) AS mi, max(j) AS mj FROM {s}_c{i}{j} GROUP BY ALL) g
        CROSS JOIN range({coarse}) x(i) CROSS JOIN range({coarse}) y(j)
        LEFT JOIN {s}_c{i}{j} c ON {_on('g', 'c', part)} AND c.i = x.i AND c.j = y.j
        WHERE x.i <= g.mi AND y.j <= g.mj),
    {s}_r{i}{j} AS (SELECT {pcols}i, j, min(m) OVER ({_window(part, 'i')} ORDER BY j ROWS UNBOUNDED PRECEDING) AS m
                    FROM {s}_d{i}{j}),
    {s}_q{i}{j} AS (SELECT {pcols}i + 1 AS i, j + 1 AS j,
                           min(m) OVER ({_window(part, 'j')} ORDER BY i ROWS UNBOUNDED PRECEDING) AS p
                    FROM {s}_r{i}{j})""")
        cc = "".join(f"c.{p}, " for p in part)
        body = f"""
    -- coarse buckets: the occupied bins of each objective ranked into at most {coarse} (a monotone map)
    {','.join(r.strip() for r in ranks)},
    {s}_cc AS MATERIALIZED (
        SELECT c.*, k0.c AS c0, k1.c AS c1, k2.c AS c2 FROM {s}_cell c
        JOIN {s}_k0 k0 ON {_on('c', 'k0', part)} AND c.__b0 = k0.__b0
        JOIN {s}_k1 k1 ON {_on('c', 'k1', part)} AND c.__b1 = k1.__b1
        JOIN {s}_k2 k2 ON {_on('c', 'k2', part)} AND c.__b2 = k2.__b2),
    -- prune: per pair of objectives, the best third one over the buckets strictly lower in both (2-D prefix min)
    {','.join(g.strip() for g in grids)},
    {s}_live AS MATERIALIZED (
        SELECT {cc}c.__b0, c.__b1, c.__b2, c.c0, c.c1, c.c2, a.p AS p01, d.p AS p02, e.p AS p12 FROM {s}_cc c
        LEFT JOIN {s}_q01 a ON {_on('c', 'a', part)} AND c.c0 = a.i AND c.c1 = a.j
        LEFT JOIN {s}_q02 d ON {_on('c', 'd', part)} AND c.c0 = d.i AND c.c2 = d.j
        LEFT JOIN {s}_q12 e ON {_on('c', 'e', part)} AND c.c1 = e.i AND c.c2 = e.j
        WHERE (a.p IS NULL OR c.m2 < a.p) AND (d.p IS NULL OR c.m1 < d.p) AND (e.p IS NULL OR c.m0 < e.p)),
    {s}_sv AS MATERIALIZED (
        SELECT r.*, l.c0 AS __c0, l.c1 AS __c1, l.c2 AS __c2 FROM {s}_b r
        JOIN {s}_live l ON {_on('r', 'l', part)} AND r.__b0 = l.__b0 AND r.__b1 = l.__b1 AND r.__b2 = l.__b2
        WHERE (l.p01 IS NULL OR r.__o2 < l.p01) AND (l.p02 IS NULL OR r.__o1 < l.p02)
          AND (l.p12 IS NULL OR r.__o0 < l.p12)),
    -- exact: distinct objective vectors, compared only with those sharing two of their three buckets
    {s}_v AS MATERIALIZED (SELECT DISTINCT {pcols}__o0, __o1, __o2, __c0, __c1, __c2 FROM {s}_sv),
    {s}_nd AS (SELECT r.* FROM {s}_v r
               WHERE {' AND '.join(_not_dominated(s, part, i, j) for i, j in ((0, 1), (0, 2), (1, 2)))}),
    {s}_f AS (SELECT r.* FROM {s}_sv r SEMI JOIN {s}_nd d ON {_on('r', 'd', part)}
              AND r.__o0 = d.__o0 AND r.__o1 = d.__o1 AND r.__o2 = d.__o2)"""
    return f"""(WITH {head.strip()},
    {body.strip()}
    SELECT * EXCLUDE ({internal}) FROM {s}_f)"""


def _on(a: str, c: str, cols: Sequence[str]) -> str:
    return " AND ".join(f"{a}.{x} IS NOT DISTINCT FROM {c}.{x}" for x in cols) or "true"


def _window(part: Sequence[str], extra: str) -> str:
    return "PARTITION BY " + ", ".join([*part, extra])


def _not_dominated(s: str, part: Sequence[str], i: int, j: int) -> str:
    same = " AND ".join([f"a.{p} IS NOT DISTINCT FROM r.{p}" for p in part]
                        + [f"a.__c{i} = r.__c{i}", f"a.__c{j} = r.__c{j}"])
    return (f"NOT EXISTS (SELECT 1 FROM {s}_v a WHERE {same} AND a.__o0 <= r.__o0 AND a.__o1 <= r.__o1 "
            f"AND a.__o2 <= r.__o2 AND (a.__o0 < r.__o0 OR a.__o1 < r.__o1 OR a.__o2 < r.__o2))")
