"""`chipsweep` command line: one module per group of commands, each thin over the Python API
(service/python_api.py), the queue and the queries.

Exit codes: 0 ok, 1 failure while running, 2 bad input. Every `ChipsweepError` a command lets through
(an unknown id, an invalid spec, a refused query) is printed as `chipsweep: <field, value, allowed>` and
exits 2, the same error the HTTP API answers with 4xx and Python callers catch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chipsweep.schemas.errors import ChipsweepError
from chipsweep.service.cli import catalog, demo, evaluate, queries, reruns, serve, sweeps, validate, verify
from chipsweep.service.cli.base import EXIT_BAD_INPUT, fail
from chipsweep.workers.runtime import tune_allocator

COMMANDS = (catalog, evaluate, validate, demo, sweeps, serve, reruns, queries, verify)  # each has `register(sub)`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chipsweep",
        description="Sweep LLM models x chips x clusters x parallel layouts; results as Parquet; frontiers in SQL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ChipsweepError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
