"""The range a number must lie in before it is stored: the column types of `schemas/columns.py`.

A spec's axis value, a fixed setting, a what-if override and an `evaluate` cell all end up in a typed
column (int8/int16/int32 for counts, float32 for most outputs, float64 for tokens and prices). A value
outside that type's range would be stored wrapped (1e30 chips as -2,147,483,648) or refused by Arrow
with a message that names neither row nor field, so every number is checked here first: finite, and
within the range of the narrowest column it lands in for that kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chipsweep.schemas.columns import DIM_CHIPS, DIM_MODELS, FACTS

# (lowest, highest) value each stored numeric type holds
TYPE_RANGES: dict[str, tuple[float, float]] = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "float32": (-3.4028234663852886e38, 3.4028234663852886e38),
    "float64": (-1.7976931348623157e308, 1.7976931348623157e308),
}
DEFAULT_INT = "int32"  # integers that land in no fact column (model shapes: dims/models are int32)
DEFAULT_FLOAT = "float64"

_DIM_TYPES = {"int16": "int16", "int32": "int32", "int64": "int64", "double": "float64", "float": "float32"}


@dataclass(frozen=True)
class Storage:
    """Where a number is stored and the range that type holds."""

    dtype: str
    column: str | None  # the column it lands in (None: no column of its own, the default type applies)

    @property
    def low(self) -> float:
        return TYPE_RANGES[self.dtype][0]

    @property
    def high(self) -> float:
        return TYPE_RANGES[self.dtype][1]

    def describe(self) -> str:
        where = f" in column {self.column}" if self.column else ""
        return f"stored as {self.dtype}{where}"


def storage(name: str, kind: str | None = None, *, integer: bool = False) -> Storage:
    """The type a value named `name` is stored as: the fact column of that name in `kind` (with no
    kind, the widest such column of any kind), a `chip.<field>` override's dims/chips column, else the
    default integer or float type."""
    if name.startswith("chip."):
        field = DIM_CHIPS.field(name[5:]) if name[5:] in DIM_CHIPS.names else None
        return Storage(_DIM_TYPES.get(str(field.type), DEFAULT_FLOAT) if field is not None else DEFAULT_FLOAT, None)
    kinds = [kind] if kind in FACTS else list(FACTS)
    found = [c.dtype for k in kinds for c in FACTS[k] if c.name == name and c.dtype in TYPE_RANGES]
    if found:
        widest = max(found, key=lambda t: TYPE_RANGES[t][1])
        return Storage(widest, name)
    if name in DIM_MODELS.names:
        return Storage(_DIM_TYPES.get(str(DIM_MODELS.field(name).type), DEFAULT_INT), name)
    return Storage(DEFAULT_INT if integer else DEFAULT_FLOAT, None)


def as_number(value: object) -> float | None:
    """A finite float from a number or numeric text (YAML 1.1 reads `1.0e300` as text), else None.
    Integers too large for a float are None, not an OverflowError."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            return None
    if not isinstance(value, float) or not math.isfinite(value):
        return None
    return value


def fits(value: float, where: Storage) -> bool:
    return where.low <= value <= where.high


def fmt(v: float) -> str:
    """A bound as people read it: 2,147,483,647 or 3.4e+38."""
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.3g}"
