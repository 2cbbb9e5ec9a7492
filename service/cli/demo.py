"""`chipsweep demo`: the README's main command (service/demo.py)."""

from __future__ import annotations

import argparse

from chipsweep.service.cli.base import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run a built-in sweep locally and print the frontiers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chipsweep.service import demo  # imports Ray (~0.5 s): only for the command that runs it

    return demo.main()
