"""Structured log lines: one JSON object per event, always with the sweep id, so a log pipeline
(Loki, CloudWatch, `jq`) can follow one sweep across the driver and its chunks.

    event(log, "chunk_done", "gpt3@2", chunk=17, rows=1048576, seconds=0.52)
    -> {"event": "chunk_done", "sweep_id": "gpt3@2", "chunk": 17, "rows": 1048576, "seconds": 0.52}

`JsonFormatter` renders whole records (time, level, logger) as JSON as well, for handlers that want it.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO, Any


def event(log: logging.Logger, name: str, sweep_id: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event as a JSON object; the fields ride along on the record as `chipsweep`."""
    if not log.isEnabledFor(level):
        return
    body = {"event": name, "sweep_id": sweep_id, **fields}
    log.log(level, json.dumps(body, default=str, separators=(", ", ": ")), extra={"chipsweep": body})


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger and the event's fields (or the message)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name}
        fields = getattr(record, "chipsweep", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The root logger writes to `stream` (stderr) as text or as JSON lines (`JsonFormatter`); returns
    the handler it installed, replacing any earlier one."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # uvicorn's own logging config (if one ran in this process) gives its loggers handlers of their own
    # and stops them propagating: hand them back to the root handler
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
    return handler
