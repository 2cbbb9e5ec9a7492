"""`chipsweep demo`: the README's main command (service/demo.py)."""

from __future__ import annotations

import argparse

from chipsweep.service import demo
from chipsweep.service.cli.base import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run a built-in sweep locally and print the frontiers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return demo.main()
