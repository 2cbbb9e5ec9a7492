"""The sweep spec (CONTRACT.md "Sweep spec") as users write it: structure only, checked by pydantic.

`read_spec_text` parses YAML or JSON text, `parse_spec` checks the structure; `schemas.sweep.resolve`
then checks the axes against the catalog. Every problem is a `Problem` naming the field, the value
and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chipsweep.schemas.columns import DEFAULT_OBJECTIVES
from chipsweep.schemas.errors import Problem, SpecError, pydantic_allowed
from chipsweep.schemas.vocab import Kind, StoreMode

# a sweep name becomes a directory name in the lake: no separators, no `..`, no `=` (hive partitions)
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
NAME_ALLOWED = "1-128 characters: letters, digits, '_', '.', '-' (starting with a letter or digit, no '..')"
MAX_DESCRIPTION = 10_000  # characters of a spec's description (it is stored with every version, twice)
MAX_DEPTH = 32  # nesting levels of a spec's YAML/JSON (a real spec has at most 5)


def valid_name(name: str) -> bool:
    """The one rule for sweep names (and so for lake partition values): the whole text must match, so a
    trailing newline or separator is refused."""
    return isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None and ".." not in name


# what a schedule's cron may be (croniter's five fields)
CRON_ALLOWED = "five fields: minute hour day month weekday, e.g. '0 3 * * *'"


class Schedule(BaseModel):
    """When the scheduler re-runs the sweep: when an input spec changes, and/or on a cron expression."""

    model_config = ConfigDict(extra="forbid")
    on_change: bool = False
    cron: str | None = None
    interval_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"not a cron expression; allowed: {CRON_ALLOWED}")
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
    description: str = Field(default="", max_length=MAX_DESCRIPTION)

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


SPEC_MAPPING = "a mapping with name, kind, axes (and fixed, overrides, objectives, store, schedule)"


def parse_spec(data: Any) -> SweepSpec:
    """A spec from parsed YAML/JSON data; pydantic errors become `SpecError` problems."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(spec)", data, SPEC_MAPPING)])
    try:
        return SweepSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError(_problems_of(exc.errors())) from None


# the members of `Scalar` pydantic tries in turn on a `fixed` value, each failing with an error of its own
_SCALAR_MEMBERS = ("int", "float", "str", "bool")
FIXED_ALLOWED = "one value: a number, a string or true/false (several values are an axis: list them under axes)"
OVERRIDES_ALLOWED = ("a mapping of catalog id to {field: number}, e.g. overrides: {nvidia_h100_sxm: {usd_per_hour: 1.5}} "
                     "(or a catalog overlay file: CHIPSWEEP_CATALOG)")


def _problems_of(errors: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """One problem per field: a `fixed` value pydantic tried as each member of `Scalar` is one refusal, not four."""
    out: list[Problem] = []
    seen: set[str] = set()
    for err in errors:
        loc = tuple(str(p) for p in err.get("loc", ()))
        if len(loc) == 3 and loc[0] == "fixed" and loc[2] in _SCALAR_MEMBERS:
            field = ".".join(loc[:2])
            if field not in seen:
                seen.add(field)
                value = err.get("input")
                what = "a list in fixed" if isinstance(value, list) else "a mapping in fixed" \
                    if isinstance(value, Mapping) else "wrong type"
                out.append(Problem(field, value, FIXED_ALLOWED, what))
            continue
        out.append(_problem_of(err))
    return out


class _RefusedYaml(yaml.YAMLError):
    """YAML a spec (or a catalog overlay) may not use; carries the mark of where it starts."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class StrictLoader(yaml.SafeLoader):
    """`yaml.safe_load` minus what a spec never needs and an attacker does: aliases (`*name`: a
    376-byte alias bomb expands to gigabytes once its shared nodes are walked), nesting deeper than
    MAX_DEPTH (the composer recurses per level), and duplicate keys (else the last one silently wins)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _RefusedYaml(f"YAML aliases (*{event.anchor}) are not allowed: write the value out",
                               event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _RefusedYaml(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise _RefusedYaml(f"duplicate key {short_key(key)}: each key may appear once in a mapping",
                                       key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def short_key(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def strict_yaml_load(text: str | bytes) -> Any:
    """YAML (or JSON) parsed with `StrictLoader`; raises `yaml.YAMLError` with a mark."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: no Python objects
    except RecursionError:  # a structure the depth guard did not see (defence in depth)
        raise _RefusedYaml(f"nested deeper than {MAX_DEPTH} levels", None) from None


def read_spec_text(text: str | bytes) -> Any:
    """Parsed YAML or JSON text (JSON is YAML); invalid text is a `SpecError` naming line and column.
    Aliases, nesting deeper than MAX_DEPTH and duplicate keys are refused (see `StrictLoader`)."""
    try:
        return strict_yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(spec)"
        allowed = "a YAML or JSON mapping without aliases or duplicate keys, nested at most " f"{MAX_DEPTH} levels"
        raise SpecError([Problem(where, None, allowed, f"invalid YAML or JSON: {getattr(exc, 'problem', None) or exc}")]) from None


def read_spec_body(body: str | bytes) -> dict[str, Any]:
    """A spec sent over HTTP: YAML or JSON text that must parse to a mapping. A body that parses to a string is
    refused, never taken for a path to read (the Python API reads a path it is given; an HTTP body naming a server
    file ending in .yaml or .json was read and its values echoed back in the refusal)."""
    data = read_spec_text(body)
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(spec)", data, SPEC_MAPPING, f"the body is {type(data).__name__}, not a mapping")])
    return dict(data)


def load_spec_text(text: str | bytes) -> SweepSpec:
    """A spec from YAML or JSON text."""
    return parse_spec(read_spec_text(text))


_ALLOWED_TOP = "name, kind, axes, fixed, overrides, objectives, store, schedule, description"


def _problem_of(err: Mapping[str, Any]) -> Problem:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(spec)"
    kind = err.get("type", "")
    value = err.get("input")
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
    if loc == "schedule.cron" and kind == "value_error":
        return Problem(loc, value, CRON_ALLOWED, "not a cron expression")
    if loc == "description" and kind == "string_too_long":
        return Problem(loc, value, f"at most {MAX_DESCRIPTION:,} characters", "description too long")
    if loc.startswith("overrides") and loc.count(".") < 2:  # the mapping itself, or one id's entry, not a mapping
        return Problem(loc, value, OVERRIDES_ALLOWED, "wrong type")
    allowed = pydantic_allowed(err)
    if loc.startswith("overrides."):
        allowed += " (the new value of that catalog field)"
    return Problem(loc, value, allowed, "wrong type" if "type" in kind or "parsing" in kind else "invalid value")
