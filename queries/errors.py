"""The queries layer's error."""

from __future__ import annotations

from chipsweep.schemas.errors import ChipsweepError


class QueryError(ChipsweepError):
    """A refused query or a bad parameter: `field`, `value` and `allowed` say which and why. Over HTTP:
    an unknown saved query is 404, refused SQL 400, a bad parameter 422."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None, allowed: object = None) -> None:
        super().__init__(message, field=field, value=value, allowed=allowed)
        self.http_status = 404 if field == "name" else 400 if field == "sql" else 422
