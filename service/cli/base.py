"""What every command shares: exit codes, the error line, the `--server` option."""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and failed (a sweep ended failed, a server could not be reached)
EXIT_BAD_INPUT = 2  # the input was refused (unknown id, invalid spec, bad arguments)

Subparsers = argparse._SubParsersAction


def fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"chipsweep: {msg}", file=sys.stderr)
    return code


def server_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("CHIPSWEEP_SERVER"),
                   help="URL of a running `chipsweep serve` (default: embedded, or CHIPSWEEP_SERVER)")
