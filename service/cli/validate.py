"""`chipsweep validate`: predict the published runs in tests/validation/ and report the errors."""

from __future__ import annotations

import argparse
import dataclasses
import json

from chipsweep.service.cli.base import Subparsers
from chipsweep.workers import validation


def register(sub: Subparsers) -> None:
    p = sub.add_parser("validate", help="predict the published runs in tests/validation and report the errors")
    p.add_argument("--kind", choices=["training", "inference", "asic", "all"], default="all")
    p.add_argument("--summary", action="store_true", help="only the per-source summary")
    p.add_argument("--json", action="store_true")
    p.add_argument("--bounds", action="store_true",
                   help="only the issues' bounds: each figure now, the bound, met or missed (--json, --markdown)")
    p.add_argument("--markdown", action="store_true", help="with --bounds: the table as README.md shows it")
    p.add_argument("--flops", action="store_true",
                   help="only the FLOPs per token each source's TFLOP/s and tokens/s imply, against the core's count")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.flops:
        from chipsweep.workers.validation.flops import flops_checks, render_flops

        checks = flops_checks()
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=1) if args.json else render_flops(checks))
        return 0
    if args.bounds:
        from chipsweep.workers.validation import bounds

        table = bounds.issue_bounds()
        if args.json:
            print(json.dumps([dataclasses.asdict(b) for b in table], indent=1))
        else:
            print(bounds.markdown(table) if args.markdown else bounds.render(table))
        return 0
    # training: per source, in-sample and out-of-source (a fit that did not see the source) errors
    rep = validation.training_report() if args.kind in ("training", "all") else None
    edge_kind = {"all": "edge", "training": None}.get(args.kind, args.kind)
    results = (rep.results if rep else []) + (validation.run(edge_kind) if edge_kind else [])
    fitted = validation.fitted_cases()
    held = rep.held if rep else {}
    if args.json:
        rows = [validation.json_row(r, r.case.case_id in fitted,
                                    held[r.case.case_id].predicted if r.case.case_id in held else None)
                for r in results]
        # issue 13: the MoE, context-parallel and NVFP4 runs (`report` says which), all out of source
        print(json.dumps(rows + (validation.issue13_rows() if rep else []), indent=1))
        return 0
    if not args.summary:
        print(f"{'case':48s} {'metric':26s} {'predicted':>12s} {'measured':>12s} {'error':>8s}")
        for r in results:
            mark = " (fit)" if r.case.case_id in fitted else ""
            print(f"{r.case.case_id:48s} {r.case.metric:26s} {r.predicted:12.4g} {r.case.measured:12.4g} {r.error * 100:7.1f}%{mark}")
        print()
    if rep:
        print(validation.render_training(rep))
        print()
    if edge_kind:
        # inference: per metric and source, the error of a fit that did not see the source (median, p90)
        print(validation.render_serving())
    return 0
