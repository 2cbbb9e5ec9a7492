"""`chipsweep validate`: predict the published runs in tests/validation/ and report the errors."""

from __future__ import annotations

import argparse
import json

from chipsweep.service.cli.base import Subparsers
from chipsweep.workers import validation


def register(sub: Subparsers) -> None:
    p = sub.add_parser("validate", help="predict the published runs in tests/validation and report the errors")
    p.add_argument("--kind", choices=["training", "inference", "asic", "all"], default="all")
    p.add_argument("--summary", action="store_true", help="only the per-source summary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = validation.run(args.kind)
    fitted = validation.fitted_cases()
    if args.json:
        print(json.dumps([
            {"case": r.case.case_id, "source": r.case.source, "metric": r.case.metric, "predicted": r.predicted,
             "measured": r.case.measured, "error": r.error, "fitted": r.case.case_id in fitted}
            for r in results
        ], indent=1))
        return 0
    if not args.summary:
        print(f"{'case':48s} {'metric':26s} {'predicted':>12s} {'measured':>12s} {'error':>8s}")
        for r in results:
            mark = " (fit)" if r.case.case_id in fitted else ""
            print(f"{r.case.case_id:48s} {r.case.metric:26s} {r.predicted:12.4g} {r.case.measured:12.4g} {r.error * 100:7.1f}%{mark}")
        print()
    print(f"{'source':34s} {'cases':>5s} {'mean |err|':>10s} {'max |err|':>10s}   (held out: not used to fit)")
    for group, n, mean, worst, held_n, held_mean, held_max in validation.summary_table(results, fitted):
        held = f"{held_n:4d}  {held_mean * 100:6.1f}% {held_max * 100:6.1f}%" if held_n else "   -"
        print(f"{group:34s} {n:5d} {mean * 100:9.1f}% {worst * 100:9.1f}%   {held}")
    return 0
