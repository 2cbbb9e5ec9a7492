"""The sweep spec (CONTRACT.md "Sweep spec") as users write it: structure only, checked by pydantic.

`read_spec_text` parses YAML or JSON text, `parse_spec` checks the structure; `schemas.sweep.resolve`
then checks the axes against the catalog. Every problem is a `Problem` naming the field, the value
and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chipsweep.schemas.columns import DEFAULT_OBJECTIVES
from chipsweep.schemas.errors import Problem, SpecError
from chipsweep.schemas.vocab import Kind, StoreMode

# a sweep name becomes a directory name in the lake: no separators, no `..`, no `=` (hive partitions)
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
NAME_ALLOWED = "1-128 characters: letters, digits, '_', '.', '-' (starting with a letter or digit, no '..')"


def valid_name(name: str) -> bool:
    """The one rule for sweep names (and so for lake partition values): the whole text must match, so a
    trailing newline or separator is refused."""
    return isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None and ".." not in name


class Schedule(BaseModel):
    """When the scheduler re-runs the sweep: when an input spec changes, and/or on a cron expression."""

    model_config = ConfigDict(extra="forbid")
    on_change: bool = False
    cron: str | None = None
    interval_s: float | None = Field(default=None, gt=0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError("not a cron expression (minute hour day month weekday, e.g. '0 3 * * *')")
        return v


Scalar = int | float | str | bool


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Kind
    axes: dict[str, Any] = Field(min_length=1)
    fixed: dict[str, Scalar] = Field(default_factory=dict)
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict)
    objectives: list[str] | None = None
    store: StoreMode = "all"
    schedule: Schedule | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not valid_name(v):
            raise ValueError(f"a sweep name is a directory in the lake: {NAME_ALLOWED}")
        return v

    def objective_names(self) -> list[str]:
        return list(self.objectives or DEFAULT_OBJECTIVES[self.kind])

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON data (what the queue and the lake's `sweeps` table record)."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_spec(data: Any) -> SweepSpec:
    """A spec from parsed YAML/JSON data; pydantic errors become `SpecError` problems."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(spec)", data, "a mapping with name, kind, axes (and fixed, overrides, objectives, store, schedule)")])
    try:
        return SweepSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError([_problem_of(err) for err in exc.errors()]) from None


def read_spec_text(text: str | bytes) -> Any:
    """Parsed YAML or JSON text (JSON is YAML); invalid text is a `SpecError` naming line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(spec)"
        raise SpecError([Problem(where, None, "a YAML or JSON mapping", f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None


def load_spec_text(text: str | bytes) -> SweepSpec:
    """A spec from YAML or JSON text."""
    return parse_spec(read_spec_text(text))


_ALLOWED_TOP = "name, kind, axes, fixed, overrides, objectives, store, schedule, description"


def _problem_of(err: Mapping[str, Any]) -> Problem:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(spec)"
    kind = err.get("type", "")
    value = err.get("input")
    msg = str(err.get("msg", ""))
    if kind == "extra_forbidden":
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        allowed = {"": _ALLOWED_TOP, "schedule": "on_change, cron, interval_s"}.get(parent, "the documented fields")
        return Problem(loc, value, allowed, "unknown field")
    if kind == "missing":
        return Problem(loc, None, "required", "missing field")
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return Problem(loc, value, str(expected).replace("'", ""), "not an allowed value")
    if loc == "name":
        return Problem(loc, value, NAME_ALLOWED, "unsafe sweep name")
    if loc == "axes" and kind == "too_short":
        return Problem(loc, value, "at least one axis", "no axes")
    return Problem(loc, value, msg, "wrong type" if "type" in kind or "parsing" in kind else "invalid value")
