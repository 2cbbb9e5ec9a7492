"""`chipsweep verify [SWEEP] [--repair] [--json]`: the queue and the lake compared (service/verify.py).

Exit codes: 0 the lake holds exactly what the queue says (after `--repair`, nothing left to fix), 1
problems remain (listed), 2 bad input (an unknown sweep).
"""

from __future__ import annotations

import argparse
import json

from chipsweep.service.cli.base import EXIT_FAILED, Subparsers
from chipsweep.service.queue import Queue
from chipsweep.service.settings import Settings
from chipsweep.service.verify import render, verify


def register(sub: Subparsers) -> None:
    p = sub.add_parser("verify", help="compare the queue and the lake: missing, extra, truncated or corrupt "
                                      "files, rows per chunk, duplicate indices, stray partitions")
    p.add_argument("sweep", nargs="?", help="NAME or NAME@VERSION (default: every sweep, and the whole lake)")
    p.add_argument("--repair", action="store_true",
                   help="re-queue what is missing or damaged, move what does not belong to <lake>/_quarantine/")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    report = verify(Queue(settings.queue_path), settings.lake, args.sweep, repair=args.repair)
    print(json.dumps(report.as_dict(), indent=1) if args.json else render(report))
    return 0 if report.ok else EXIT_FAILED
