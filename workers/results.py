"""The result table of `chipsweep evaluate` for the edge kinds, and the steps around it every row module
shares: the core run on the rows that parsed, and the strict refusal of infeasible rows.

A result table is the input table (every column passed through), the resolved inputs (on a bad row, what the user
gave), the outputs (NaN on bad rows), `fits`, `infeasible_reason` (the parse error of a bad row) and `notes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chipsweep.schemas.columns import FACTS, columns
from chipsweep.schemas.errors import Problem
from chipsweep.schemas.vocab import COST_BASES
from chipsweep.workers.parse import BOOLS, STRICT_MESSAGES, EvaluateError, RowErrors, row_name

Array = np.ndarray


def cost_basis_text(code: Array, bad: Array) -> pa.Array:
    """The `cost_basis` column of an `evaluate` table: each row's basis code (0 rental, 1 owned, NaN none) as its
    COST_BASES label, NULL where no cost was computed or the row is bad."""
    code = np.asarray(code, dtype=np.float64)
    labels = np.asarray(COST_BASES, dtype=object)[np.nan_to_num(code).astype(np.int64)]
    return pa.array(np.where(bad | ~np.isfinite(code), None, labels).tolist(), type=pa.string())


def run_good_rows(errors: RowErrors, run: Callable[[Array], Mapping[str, Array]]) -> dict[str, Array]:
    """Run a core on the rows that parsed; outputs of the other rows stay NaN (0 for integers)."""
    n = errors.n
    out: dict[str, Array] = {}
    ok = ~errors.bad
    if ok.any():
        rows = np.nonzero(ok)[0]
        for key, v in run(rows).items():
            out.setdefault(key, np.full(n, np.nan if v.dtype.kind == "f" else 0, dtype=v.dtype))[rows] = v
    return out


# every output column of every kind, and the explanations: a result fed back as input (a notebook editing a table and
# evaluating it again) must never see its old outputs on a row refused now
# (`cost_basis` aside: an output that rows also give as an input, the basis they ask for, which a refused row shows)
OUTPUTS = (frozenset(n for kind in FACTS for n in columns(kind, "output")) | {"notes", "fits", "infeasible_reason"}) - {
    "cost_basis"}


def is_output(name: str) -> bool:
    """Whether `name` is a column evaluate computes (any kind's output, or `--explain`'s tpot_/ttft_ parts)."""
    return name in OUTPUTS or name.startswith(("tpot_", "ttft_"))


def keep_given(table: pa.Table, cols: dict[str, Any], bad: Array) -> None:
    """On bad rows, an input column that a resolved one replaced keeps the cell the user gave (where the resolved
    column's type can hold it: '5' in an integer column, any text in a text one), so a refused row still shows what
    it asked for beside the message that names the field. An output column never does: a refused row's outputs
    are empty and its `fits` blank, whatever an earlier evaluation left in the input (it kept `fits` true and the
    old speed and cost beside the refusal)."""
    rows = np.nonzero(np.asarray(bad, dtype=bool))[0].tolist()
    if not rows:
        return
    take = pa.array(rows, type=pa.int64())
    for name in table.column_names:
        given, col = table.column(name), cols.get(name)
        if col is None or col is given or is_output(name):
            continue
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        kept = [_as_type(cell, col.type) for cell in given.take(take).to_pylist()]  # only the bad rows' cells
        mask = np.zeros(len(col), dtype=bool)
        mask[[r for r, v in zip(rows, kept, strict=True) if v is not None]] = True
        if mask.any():
            cols[name] = pc.replace_with_mask(col, pa.array(mask), pa.array([v for v in kept if v is not None],
                                                                             type=col.type))


def _as_type(cell: object, kind: pa.DataType) -> object:
    """`cell` as a value of `kind`, else None."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return str(cell).strip()
    if pa.types.is_boolean(kind):  # a flag given as one of its words ('true', 'no', '1'), else None
        word = str(cell).strip().lower()
        word = word[:-2] if word.endswith(".0") else word
        return bool(BOOLS.index(word) % 2) if word in BOOLS else None
    try:
        number = float(str(cell).strip())
    except ValueError:
        return None
    if pa.types.is_integer(kind):
        return int(number) if number.is_integer() and abs(number) < 2**63 else None
    return number if pa.types.is_floating(kind) else None


def refuse_infeasible(strict: bool, mask: Array, reason: Array, fields: Mapping[int, str] | None = None,
                      values: Mapping[str, Array] | None = None) -> None:
    """--strict: the first infeasible rows, with their reasons, refuse the whole file. `fields` names, per reason
    bit, the input that would change the outcome (its value from `values`): the error's field, value and allowed
    (the reason) as every other refusal's."""
    if not (strict and (mask != 0).any()):
        return
    first = np.nonzero(mask != 0)[0][:STRICT_MESSAGES]
    problems = []
    for i in first.tolist():
        field = next((f for bit, f in (fields or {}).items() if int(mask[i]) & bit), "infeasible_reason")
        v = (values or {}).get(field)
        value = None if v is None or not np.isfinite(v[i]) else (int(v[i]) if float(v[i]).is_integer() else float(v[i]))
        problems.append(Problem(field, value, str(reason[i]), f"{row_name(i)}: {reason[i]}"))
    p0 = problems[0]
    raise EvaluateError("\n".join(p.message for p in problems), field=p0.field, value=p0.value, allowed=p0.allowed,
                        problems=problems)


def result_table(
    table: pa.Table, resolved: Mapping[str, Array], out_names: tuple[str, ...], out: Mapping[str, Array],
    bad: Array, reason: Array, notes: Array, text: Mapping[str, tuple[str, ...]] | None = None,
    flags: tuple[str, ...] = (),
) -> pa.Table:
    """Input columns, then `resolved` (integers, floats, labels of the choices in `text`, or booleans for the
    `flags`, as the lake stores them), then the outputs `out_names`, `fits`, `infeasible_reason` and `notes`."""
    n = table.num_rows
    cols: dict[str, Any] = {name: table.column(name) for name in table.column_names}
    for name, v in resolved.items():
        v = np.asarray(v, dtype=np.float64)
        if name in flags:
            cols[name] = pa.array(np.where(bad | ~np.isfinite(v), None, np.nan_to_num(v) > 0).tolist(), type=pa.bool_())
        elif text and name in text:
            labels = np.asarray(text[name], dtype=object)[np.clip(np.nan_to_num(v), 0, len(text[name]) - 1).astype(np.int64)]
            cols[name] = pa.array(np.where(bad | ~np.isfinite(v), None, labels).tolist(), type=pa.string())
        elif np.all(~np.isfinite(v) | (np.abs(v - np.round(v)) < 1e-9)):
            cols[name] = pa.array(np.where(bad | ~np.isfinite(v), None, v).tolist(), type=pa.int64())
        else:
            cols[name] = pa.array(np.where(bad, np.nan, v), type=pa.float64())
    for name in out_names:
        v = np.asarray(out.get(name, np.full(n, np.nan)), dtype=np.float64)
        cols[name] = pa.array(np.where(bad, np.nan, v), type=pa.float64())
    fits = np.asarray(out.get("fits", np.zeros(n, dtype=bool)))
    has_model = np.asarray(out.get("has_model", np.ones(n, dtype=bool)), dtype=bool)
    cols["fits"] = pa.array(np.where(bad | ~has_model, None, fits.astype(bool)).tolist(), type=pa.bool_())
    cols["infeasible_reason"] = pa.array(np.asarray(reason, dtype=object).tolist(), type=pa.string())
    cols["notes"] = pa.array(np.asarray(notes, dtype=object).tolist(), type=pa.string())
    keep_given(table, cols, bad)
    return pa.table(cols)
