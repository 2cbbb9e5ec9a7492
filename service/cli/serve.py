"""`chipsweep serve`: the HTTP API (service/api.py) with the dispatcher and the re-run scheduler."""

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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from chipsweep.service.api import create_app
    from chipsweep.service.dispatch import ensure_ray
    from chipsweep.service.logs import configure
    from chipsweep.service.settings import Settings

    configure(args.log_level, args.log_format)
    settings = Settings.from_env()
    ensure_ray(settings)  # in the main thread: Ray's local processes live as long as it does
    # uvicorn keeps the handlers configured here (log_config=None) so its access log is JSON too
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level, log_config=None)
    return 0
