"""A result table as text for people (aligned columns), CSV or JSON (for scripts and HTTP)."""

from __future__ import annotations

import io
import json
import math

import pyarrow as pa
import pyarrow.csv as pacsv

from chipsweep.queries.runner import objectives_of, table_records

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
        footer += "; frontier of " + ", ".join(f"{'max' if o.sense == 'max' else 'min'} {o.column}" for o in objs)
    out.append(footer + ")")
    return "\n".join(s.rstrip() for s in out)


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
