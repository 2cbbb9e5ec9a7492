"""Turning user tables (CSV/Parquet columns) into numeric arrays, with per-row errors.

Every error names the row (1-based, as a spreadsheet shows data rows; a filtered pandas DataFrame's row by its
index label, see `row_labels`), the field, the value and what is allowed; a bad cell never aborts the other
rows. In strict mode the collected errors are raised as one `EvaluateError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chipsweep.schemas.axes import closest_ids
from chipsweep.schemas.errors import ChipsweepError, Problem
from chipsweep.schemas.numbers import fmt as fmt_bound
from chipsweep.schemas.numbers import storage
from chipsweep.schemas.vocab import CHIP_INTEGER_RANGE, CHIP_POSITIVE

Array = np.ndarray

STRICT_MESSAGES = 20  # row messages an EvaluateError carries

_READ: ContextVar[set[str] | None] = ContextVar("chipsweep_columns_read", default=None)
_LABELS: ContextVar[Sequence[object] | None] = ContextVar("chipsweep_row_labels", default=None)


@contextmanager
def columns_read() -> Iterator[set[str]]:
    """The names of the columns the parsers below looked up while the block ran (present or not): what the
    evaluator reads, so a given column outside it is one that passes through untouched."""
    names: set[str] = set()
    token = _READ.set(names)
    try:
        yield names
    finally:
        _READ.reset(token)


@contextmanager
def row_labels(labels: Sequence[object]) -> Iterator[None]:
    """Row messages made while the block runs name row i by `labels[i]` ("row label 9"), not its 1-based position:
    a notebook user finds a filtered DataFrame's row by its index label, and position 3 is not label 9."""
    token = _LABELS.set(list(labels))
    try:
        yield
    finally:
        _LABELS.reset(token)


def row_name(r: int) -> str:
    """How a message names row `r` (0-based) of the table: 'row 4', or 'row label 9' inside `row_labels`."""
    labels = _LABELS.get()
    if labels is None:
        return f"row {r + 1}"
    label = labels[r]
    return f"row label {label!r}" if isinstance(label, str) else f"row label {label}"


def _reading(name: str) -> None:
    names = _READ.get()
    if names is not None:
        names.add(name)


class EvaluateError(ChipsweepError):
    """Raised in strict mode: the first bad rows, each with row, field, value and what is allowed."""


class RowErrors:
    """Error messages collected per row, with the field, value and allowed values of each cell error."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._msgs: dict[int, list[str]] = {}
        self._problems: dict[int, list[Problem]] = {}
        self.column_notes: list[str] = []  # about the table's columns, not a row (a near-miss name passed through)

    def add(self, rows: Sequence[int] | Array, field: str, values: Sequence[object], allowed: str) -> None:
        for r, v in zip(np.asarray(rows).tolist(), values, strict=True):
            msg = f"{row_name(int(r))}: field '{field}' = {v!r}: {allowed}"
            self._msgs.setdefault(int(r), []).append(msg)
            self._problems.setdefault(int(r), []).append(Problem(field, v, _allowed_part(allowed), msg))

    def add_message(self, rows: Sequence[int] | Array, message: str, *, field: str | None = None) -> None:
        for r in np.asarray(rows).tolist():
            msg = f"{row_name(int(r))}: {message}"
            self._msgs.setdefault(int(r), []).append(msg)
            if field is not None:  # "field 'x' is blank: give ...": what would do is after the first colon
                self._problems.setdefault(int(r), []).append(Problem(field, "", message.split(": ", 1)[-1], msg))

    @property
    def bad(self) -> Array:
        out = np.zeros(self.n, dtype=bool)
        if self._msgs:
            out[list(self._msgs)] = True
        return out

    def text(self) -> Array:
        out = np.full(self.n, "", dtype=object)
        for r, msgs in self._msgs.items():
            out[r] = "; ".join(msgs)
        return out

    def fields(self) -> set[str | None]:
        """The fields the errors name (None for a message about no one field)."""
        named = {int(r): {p.field for p in ps} for r, ps in self._problems.items()}
        return {f for r in self._msgs for f in (named.get(r) or {None})}

    def messages(self) -> list[str]:
        return [m for r in sorted(self._msgs) for m in self._msgs[r]]

    def error(self, limit: int = STRICT_MESSAGES) -> EvaluateError:
        """The first `limit` messages as one EvaluateError; field, value and allowed from the first cell error."""
        message = "\n".join(self.messages()[:limit])
        problems = [p for r in sorted(self._problems) for p in self._problems[r]][:limit]
        if not problems:
            return EvaluateError(message)
        first = problems[0]
        return EvaluateError(message, field=first.field, value=first.value, allowed=first.allowed, problems=problems)

    def __bool__(self) -> bool:
        return bool(self._msgs)


def _allowed_part(text: str) -> str:
    """What is allowed, from a message: the text after its last 'allowed: ' (else the whole text)."""
    return text.rsplit("allowed: ", 1)[-1]


def _as_strings(col: pa.ChunkedArray | pa.Array) -> list[str | None]:
    return [None if v is None else str(v).strip() for v in col.to_pylist()]


def blank_mask(table: pa.Table, name: str) -> Array:
    """True where the column is absent, null, NaN in a float column (how pandas writes a missing cell) or
    an empty string. The text `nan` is not blank: it is a value, and `numbers` refuses it."""
    _reading(name)
    if name not in table.column_names:
        return np.ones(table.num_rows, dtype=bool)
    col = table.column(name)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        vals = _as_strings(col)
        return np.array([v is None or v == "" for v in vals], dtype=bool)
    if pa.types.is_floating(col.type):
        arr = col.to_numpy(zero_copy_only=False)
        return np.isnan(arr) | np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False))
    return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False))


def what_if_columns(table: pa.Table, errors: RowErrors, prefixes: Mapping[str, Sequence[str]]) -> None:
    """A what-if column (`chip.<field>`, `cal.<constant>`) this kind does not apply is an error on every row that
    fills it, naming the column, the cell and the columns allowed: a what-if silently ignored would answer a
    question the user did not ask. `prefixes` maps each prefix this kind reads to the fields it takes."""
    for name in table.column_names:
        prefix, dot, field = name.partition(".")
        if not dot or prefix not in ("chip", "cal"):
            continue
        allowed = prefixes.get(prefix, ())
        if field in allowed:
            continue
        rows = np.nonzero(~blank_mask(table, name))[0]
        cells = _as_strings(table.column(name))
        what = ("allowed: " + ", ".join(f"{prefix}.{f}" for f in allowed)) if allowed else \
            f"this kind takes no {prefix}.* what-ifs"
        errors.add(rows, name, [cells[int(r)] for r in rows], f"not a {prefix} what-if of this kind: {what}")


def numbers(
    table: pa.Table,
    name: str,
    errors: RowErrors,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    required: bool = False,
    allowed: str | None = None,
    positive: bool = False,
) -> Array:
    """The column as float64 (NaN where blank); bad cells are recorded in `errors` and set to NaN. `positive`: above
    0, not at it (a rate or a capacity of zero divides by zero downstream).

    Every value must be finite (the text `nan` or `inf` is an error, not a blank) and fit the column
    type it is stored in (`schemas.numbers.storage`: n_chips in int32, ...), so one bad cell names its
    row and field and the other rows still run."""
    n = table.num_rows
    blank = blank_mask(table, name)
    where = storage(name, integer=integer)
    narrow = where.high < 1e300  # a type narrower than float64: its range is part of what is allowed
    lo = minimum if minimum is not None else (where.low if narrow else None)
    hi = maximum if maximum is not None else (where.high if narrow else None)
    if narrow:
        lo, hi = max(lo if lo is not None else where.low, where.low), min(hi if hi is not None else where.high, where.high)
    what = allowed or ("allowed: a finite number > 0" if positive else _describe(integer, lo, hi, "a number", where))
    shown: list[object] | None = None  # the cells as given (text), for messages
    unparsed = np.zeros(n, dtype=bool)
    if name not in table.column_names:
        out = np.full(n, np.nan)
    else:
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            out = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
            out = np.where(blank, np.nan, out)
        else:
            shown = list(_as_strings(col))
            out = np.full(n, np.nan)
            for i, v in enumerate(shown):
                if blank[i]:
                    continue
                try:
                    out[i] = float(v)  # type: ignore[arg-type]
                except (ValueError, OverflowError):
                    unparsed[i] = True
            if unparsed.any():
                rows = np.nonzero(unparsed)[0]
                errors.add(rows, name, [shown[i] for i in rows], what)

    def cells(rows: Array) -> list[object]:
        return [shown[i] if shown is not None else _fmt(out[i]) for i in rows]

    given = ~blank & ~unparsed
    infinite = given & ~np.isfinite(out)  # nan / inf written as a value (in a float column NaN is a blank)
    if infinite.any():
        rows = np.nonzero(infinite)[0]
        errors.add(rows, name, cells(rows), f"{what} (nan and infinities are not numbers)" if not allowed else what)
    finite = given & np.isfinite(out)
    safe = np.where(finite, out, 0.0)
    bad = np.zeros(n, dtype=bool)
    if integer:
        bad |= finite & (np.abs(safe - np.round(safe)) > 1e-9)
    if lo is not None:
        bad |= finite & (safe < lo)
    if positive:
        bad |= finite & (safe <= 0)
    if hi is not None:
        bad |= finite & (safe > hi)
    if bad.any():
        rows = np.nonzero(bad)[0]
        beyond = finite[rows] & ((safe[rows] < where.low) | (safe[rows] > where.high))
        for row, big in zip(rows.tolist(), beyond.tolist(), strict=True):
            errors.add([row], name, cells(np.asarray([row])), f"{what}; too large to store ({where.describe()})"
                       if big and not allowed else what)
    out[infinite | bad] = np.nan
    if required and blank.any():
        rows = np.nonzero(blank)[0]
        errors.add(rows, name, ["" for _ in rows], f"required: {what}")
    return out


def choices(
    table: pa.Table,
    name: str,
    options: Sequence[str],
    errors: RowErrors,
    *,
    required: bool = False,
) -> Array:
    """Index into `options` (float64, NaN where blank); unknown values are recorded as errors."""
    _reading(name)
    n = table.num_rows
    out = np.full(n, np.nan)
    if name not in table.column_names:
        if required:
            errors.add(range(n), name, ["" for _ in range(n)], f"required: one of {', '.join(options)}")
        return out
    lookup = {o.lower(): i for i, o in enumerate(options)}
    strs = _as_strings(table.column(name))
    bad_rows, bad_vals, missing = [], [], []
    for i, v in enumerate(strs):
        if v is None or v == "" or v.lower() == "nan":
            if required:
                missing.append(i)
            continue
        key = v.lower()
        if key.endswith(".0") and key[:-2] in lookup:  # numeric choices read back as floats
            key = key[:-2]
        if key in lookup:
            out[i] = lookup[key]
        else:
            bad_rows.append(i)
            bad_vals.append(v)
    if bad_rows:
        errors.add(bad_rows, name, bad_vals, f"allowed: {', '.join(options)}")
    if missing:
        errors.add(missing, name, ["" for _ in missing], f"required: one of {', '.join(options)}")
    return out


BOOLS = ("false", "true", "0", "1", "no", "yes")  # a flag's words, false before true in each pair


def bools(table: pa.Table, name: str, errors: RowErrors) -> Array:
    """1.0 / 0.0 for true / false cells, NaN where blank; other words are errors naming BOOLS."""
    vals = choices(table, name, BOOLS, errors)
    return np.where(np.isnan(vals), np.nan, np.where(vals % 2 == 1, 1.0, 0.0))


def ids(table: pa.Table, name: str, index: dict[str, int], errors: RowErrors, what: str) -> Array:
    """Catalog ids -> integer positions (-1 where blank or unknown; unknown ones become errors)."""
    _reading(name)
    n = table.num_rows
    out = np.full(n, -1, dtype=np.int64)
    if name not in table.column_names:
        return out
    strs = _as_strings(table.column(name))
    bad_rows, bad_vals = [], []
    for i, v in enumerate(strs):
        if v is None or v == "":
            continue
        j = index.get(v)
        if j is None:
            bad_rows.append(i)
            bad_vals.append(v)
        else:
            out[i] = j
    known = sorted(index)
    for row, value in zip(bad_rows, bad_vals, strict=True):
        close = closest_ids(value, known)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        errors.add([row], name, [value], f"unknown {what} id; {hint}allowed: catalog {what} ids (`chipsweep catalog list`)")
    return out


def _describe(integer: bool, minimum: float | None, maximum: float | None, noun: str, where: object = None) -> str:
    """`allowed: an integer >= 1 (at most 2,147,483,647)`: the upper bound of the storage type is said
    apart, so the usual `>= 1` still reads first."""
    kind = "an integer" if integer else f"a finite {noun[2:]}" if noun.startswith("a ") else noun
    top = getattr(where, "high", None)
    if minimum is not None and maximum is not None and maximum != top:
        return f"allowed: {kind} from {_fmt(minimum)} to {_fmt(maximum)}"
    if maximum is not None and maximum == top:
        low = f" >= {_fmt(minimum)}" if minimum is not None and minimum > getattr(where, "low", -np.inf) else ""
        return f"allowed: {kind}{low} (at most {fmt_bound(top)})"
    if minimum is not None:
        return f"allowed: {kind} >= {_fmt(minimum)}"
    return f"allowed: {kind}"


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return str(v)
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e18 else f"{v:g}"


def chip_what_if(table: pa.Table, field: str, errors: RowErrors) -> Array:
    """A row's `chip.<field>` what-if column: a finite number >= 0 (> 0 for a rate or capacity the cores divide by),
    a whole number in its range for a counted field (`CHIP_INTEGER_RANGE`: a torus's dimensions, 0-3)."""
    if field in CHIP_INTEGER_RANGE:
        lo, hi = CHIP_INTEGER_RANGE[field]
        return numbers(table, f"chip.{field}", errors, integer=True, minimum=lo, maximum=hi)
    return numbers(table, f"chip.{field}", errors, minimum=0, positive=field in CHIP_POSITIVE)
