"""The one error family every edge renders the same way.

A `ChipsweepError` names what was wrong (`field`), what was given (`value`) and what would be accepted
(`allowed`); a spec refused for several reasons carries each as a `Problem`. The CLI prints the message
and exits 2, the HTTP API answers `http_status` with `as_dict()` as its JSON body, and Python callers
catch the exception. Each layer subclasses it where the error is raised (`SpecError`, `CatalogError`,
`EvaluateError`, `LakeError`, `QueryError`, `QueueError`, `SettingsError`, ...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SHORT_VALUE = 120  # characters of a value echoed back in a message or a JSON body
SHORT_MESSAGE = 1000  # characters of a message in a JSON body (a message may quote what it refuses)
MAX_PROBLEMS = 20  # problems a refusal reports (100,000 bad ids are one mistake, not 100,000 answers)


def pydantic_message(err: Any) -> str:
    """A pydantic error's message without the 'Value error, ' / 'Assertion failed, ' prefix pydantic puts before
    a validator's own text (the user reads what the validator says, not how pydantic raised it)."""
    msg = str(err.get("msg", "")) if hasattr(err, "get") else str(err)
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


# what pydantic's error types accept, in the words the rest of chipsweep's errors use ('Input should be a valid
# dictionary' names a Python type, not what to write)
_ACCEPTS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value)", "list_type": "a list", "model_type": "a mapping (key: value)",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def pydantic_allowed(err: Any) -> str:
    """What would be accepted where a pydantic error was raised, in plain words ('a number > 0', 'a mapping (key:
    value)'); a validator's own text where it raised one (`pydantic_message`)."""
    kind = str(err.get("type", ""))
    if kind in _ACCEPTS:
        return _ACCEPTS[kind]
    if kind in _BOUNDS:
        ctx = err.get("ctx") or {}
        limit = next((v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le")), None)
        return f"a number {_BOUNDS[kind]} {limit:g}" if isinstance(limit, (int, float)) else pydantic_message(err)
    return pydantic_message(err)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what was given, what would be accepted."""

    field: str
    value: Any
    allowed: str
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"field": shorten(self.field, SHORT_VALUE), "value": jsonable(self.value), "allowed": shorten(self.allowed),
                "message": shorten(self.message)}

    def __str__(self) -> str:
        what = f"{self.message}; " if self.message else ""
        return f"field '{self.field}' = {short(self.value)}: {what}allowed: {self.allowed}"


class ChipsweepError(ValueError):
    """A refused input or request. `field`, `value` and `allowed` say which, what and what would do."""

    http_status = 422  # what the HTTP API answers
    summary = ""  # the JSON body's `error` when it should not be the whole message (several problems)

    def __init__(self, message: str, *, field: str | None = None, value: Any = None, allowed: Any = None,
                 problems: Sequence[Problem] = ()) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.problems = list(problems)
        super().__init__(message)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of an HTTP error: {error, field, value, allowed[, problems]} (values shortened)."""
        allowed = self.allowed
        if isinstance(allowed, list | tuple):
            allowed = ", ".join(str(a) for a in allowed)
        body: dict[str, Any] = {"error": shorten(self.summary or str(self)), "field": self.field,
                                "value": jsonable(self.value),
                                "allowed": None if allowed is None else shorten(str(allowed))}
        if self.problems:
            body["problems"] = [p.as_dict() for p in self.problems[:MAX_PROBLEMS]]
        return body


class SpecError(ChipsweepError):
    """A sweep spec refused before anything is queued; `problems` names every field that is wrong (the
    first MAX_PROBLEMS of them in messages and JSON, with the total)."""

    summary = "invalid spec"

    def __init__(self, problems: Sequence[Problem]) -> None:
        problems = list(problems)
        first = problems[0] if problems else Problem("(spec)", None, "a sweep spec")
        more = f"; ... and {len(problems) - MAX_PROBLEMS} more problems" if len(problems) > MAX_PROBLEMS else ""
        super().__init__("; ".join(str(p) for p in problems[:MAX_PROBLEMS]) + more, field=first.field,
                         value=first.value, allowed=first.allowed, problems=problems)

    def as_dict(self) -> dict[str, Any]:
        first = self.problems[0].as_dict() if self.problems else {}
        body = {"error": self.summary, **first, "problems": [p.as_dict() for p in self.problems[:MAX_PROBLEMS]]}
        if len(self.problems) > MAX_PROBLEMS:
            body["problems_total"] = len(self.problems)
        return body


def jsonable(value: Any) -> Any:
    """`value` as JSON can carry it: NaN and infinities as text, long text shortened, others as repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= SHORT_VALUE else value[: SHORT_VALUE - 3] + "..."
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return short(value)
    return value if len(text) <= SHORT_VALUE else text[: SHORT_VALUE - 3] + "..."


def shorten(text: str, limit: int = SHORT_MESSAGE) -> str:
    """`text` cut to `limit` characters, its middle elided (both ends usually say what and why)."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def short(value: Any) -> str:
    """A value as a message shows it: JSON (or repr for text), at most SHORT_VALUE characters."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= SHORT_VALUE else text[: SHORT_VALUE - 3] + "..."
