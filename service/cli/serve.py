"""`chipsweep serve`: the HTTP API (service/api.py) with the dispatcher and the re-run scheduler.

The dispatcher (the Ray driver) runs in a supervised child process (service/ray_supervisor.py): the
server keeps answering when Ray dies, reports `degraded` with the reason, and starts a fresh Ray (or
reconnects to RAY_ADDRESS with back-off). `--no-dispatch` serves the API and queries only (another
`serve` or `chipsweep resume` on the same CHIPSWEEP_HOME dispatches).
"""

from __future__ import annotations

import argparse
import os

from chipsweep.service.cli.base import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="HTTP API (OpenAPI at /docs) + dispatcher")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--log-format", default=os.environ.get("CHIPSWEEP_LOG_FORMAT", "text"), choices=["text", "json"],
                   help="json: one JSON object per line, sweep id included (default: text, or CHIPSWEEP_LOG_FORMAT)")
    p.add_argument("--no-dispatch", action="store_true",
                   help="serve the API and queries only: no dispatcher, no scheduler, no Ray")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from chipsweep.service.api import create_app
    from chipsweep.service.logs import configure
    from chipsweep.service.settings import Settings

    configure(args.log_level, args.log_format)
    os.environ.setdefault("CHIPSWEEP_LOG_LEVEL", args.log_level)  # the dispatcher process logs alike
    os.environ.setdefault("CHIPSWEEP_LOG_FORMAT", args.log_format)
    settings = Settings.from_env()
    # uvicorn keeps the handlers configured here (log_config=None) so its access log is JSON too
    uvicorn.run(create_app(settings, dispatch=not args.no_dispatch), host=args.host, port=args.port,
                log_level=args.log_level, log_config=None)
    return 0
