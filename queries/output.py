"""A result table as text for people (aligned columns), CSV or JSON (for scripts and HTTP)."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from chipsweep.queries.figure import extrapolated
from chipsweep.queries.runner import objectives_of, table_records
from chipsweep.queries.saved import META_NOTE, META_PARTITION, META_REPEATS

FORMATS = ("table", "csv", "json")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


def to_text(table: pa.Table, *, max_width: int = 48) -> str:
    """Aligned columns with a header rule; numbers right-aligned, 4 significant digits."""
    names = table.column_names
    rows = [[_cell(v) for v in row.values()] for row in table.to_pylist()]
    rows = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True))

    out = [line(names), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    objs = objectives_of(table)
    footer = f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}"
    if objs:
        of = ", ".join(f"{'max' if o.sense == 'max' else 'min'} {o.column}" for o in objs)
        groups = frontier_groups(table)
        if len(groups) > 1:  # a reader would take one table for one frontier: say how it splits
            cols = partition_of(table)
            varies = [i for i in range(len(cols)) if len({key[i] for key in groups}) > 1]
            named = "; ".join(f"{' '.join(_cell(key[i]) for i in varies)}: {n}"
                              for key, n in list(groups.items())[:MAX_GROUPS_NAMED])
            more = f"; {len(groups) - MAX_GROUPS_NAMED} more" if len(groups) > MAX_GROUPS_NAMED else ""
            footer += (f"; {len(groups)} frontiers of {of}, one per {', '.join(cols[i] for i in varies)}"
                       f" (rows each: {named}{more})")
        else:
            footer += "; frontier of " + of
        footer += extrapolated_note(table)
        repeats = int((table.schema.metadata or {}).get(META_REPEATS, b"0") or 0)
        if repeats:
            footer += (f"; {repeats} row{'s' if repeats != 1 else ''} identical in every column but idx to one shown "
                       "left out (a swept axis that does not apply to them, such as decode_instances on a colocated row)")
        if "engine" in table.column_names:  # a chip difference may be a software one: say so
            engines = sorted({str(e) for e in table.column("engine").to_pylist() if e is not None})
            if len(engines) > 1:
                footer += (f"; engines on it: {', '.join(engines)} (each chip's default where the sweep left engine "
                           "blank; one engine: --param engine=NAME)")
    out.append(footer + ")")
    note = (table.schema.metadata or {}).get(META_NOTE, b"").decode()
    if note:  # what a column means where its name alone misleads (the saved query's `-- @note`)
        out.append(f"note: {note}")
    return "\n".join(s.rstrip() for s in out)


MAX_GROUPS_NAMED = 6  # a footer names at most this many frontiers (and counts the rest)
# the saved frontiers whose `calibration=measured` keeps only chips fitted on their own runs
CALIBRATION_PARAM = ("pareto_training", "pareto_serving")


def extrapolated_note(table: pa.Table) -> str:
    """A frontier footer's clause on the rows whose efficiency is extrapolated from other chips' runs (`calibrated_on`
    'extrapolated ...'): how many and on which chips, since a frontier collects the rows the model is most optimistic
    about; and the filter that keeps the chips fitted on their own runs, where the query has it. '' when none."""
    if "calibrated_on" not in table.column_names or not table.num_rows:
        return ""
    rows = table.select([c for c in ("chip", "chip_name", "calibrated_on") if c in table.column_names]).to_pylist()
    lent = [r for r in rows if extrapolated(r)]
    if not lent:
        return ""
    n = len(lent)
    chips = sorted({str(r.get("chip") or r.get("chip_name")) for r in lent})
    query = (table.schema.metadata or {}).get(b"chipsweep.query", b"").decode()
    hint = "; --param calibration=measured keeps the chips fitted on their own" if query in CALIBRATION_PARAM else ""
    return (f"; {n} of {len(rows)} row{'s' if len(rows) != 1 else ''} on efficiency extrapolated from other chips' "
            f"published runs ({', '.join(chips)}{hint})")


def partition_of(table: pa.Table) -> list[str]:
    """The columns of `table` whose values split a frontier query's result into separate frontiers."""
    raw = (table.schema.metadata or {}).get(META_PARTITION, b"").decode()
    return [c for c in raw.split(",") if c and c in table.column_names]


def frontier_groups(table: pa.Table) -> dict[tuple[object, ...], int]:
    """Rows per frontier of a frontier query's result, in the order the result lists them."""
    cols = partition_of(table)
    if not cols:
        return {(): table.num_rows} if table.num_rows else {}
    return dict(Counter(zip(*(table.column(c).to_pylist() for c in cols), strict=True)))  # first seen, first


def to_csv(table: pa.Table) -> str:
    buf = io.BytesIO()
    plain = pa.table({n: (c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c)
                      for n, c in zip(table.column_names, table.columns, strict=True)})
    pacsv.write_csv(plain, buf)
    return buf.getvalue().decode()


def to_json(table: pa.Table) -> str:
    """A JSON array of row objects; NaN and infinities become null."""
    return json.dumps(table_records(table), indent=1, default=str)


def render(table: pa.Table, fmt: str) -> str:
    if fmt == "csv":
        return to_csv(table)
    if fmt == "json":
        return to_json(table)
    return to_text(table)


MAX_UNPLACED_NAMED = 8  # a note names at most this many chips left off the frontiers (and counts the rest)
FIX_FIELD = {"price": "usd_per_hour or purchase_usd", "purchase price": "purchase_usd",
             "power": "tdp_w"}  # the catalog fields that fill the gap


def unplaced_note(items: list[dict[str, Any]], table: pa.Table | None = None) -> str:
    """The chips a frontier cannot place (queries.runner.unplaced_chips), in words: each chip, what the catalog
    lacks for it, its best value of the objectives its rows do have, and which catalog fields would place it."""
    if not items:
        return ""
    # partition values (model, cost basis, workload) where they tell the chips apart, or the frontiers of `table`
    # (the answer the note follows: a chip left off the owned frontier may stand on the rental one above it)
    shown = table.column_names if table is not None else []
    varying = [k for k in items[0] if k not in ("chip", "rows", "missing", "catalog_lacks", "best", "calibrated_on")
               and (len({str(i.get(k)) for i in items}) > 1
                    or (k in shown and len({str(v) for v in table.column(k).to_pylist()}) > 1))]  # type: ignore[union-attr]
    named = []
    for i in items[:MAX_UNPLACED_NAMED]:
        parts = [_cell(i[k]) for k in varying] + ["no " + " or ".join(i["catalog_lacks"])]
        parts += [f"best {c} {_cell(v)}" for c, v in i["best"].items()]
        named.append(f"{i['chip']} ({'; '.join(parts)})")
    more = f"; and {len(items) - MAX_UNPLACED_NAMED} more" if len(items) > MAX_UNPLACED_NAMED else ""
    lacks = sorted({f for i in items for f in i["catalog_lacks"]}, key=lambda f: ("price" not in f, f))
    fields = " / ".join(FIX_FIELD.get(f, f) for f in lacks)
    return (f"left off, every row lacking an objective (the catalog has no {' or '.join(lacks)} for the chip; "
            f"set {fields} with CHIPSWEEP_CATALOG or a spec's overrides to place it): " + "; ".join(named) + more)
