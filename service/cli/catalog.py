"""`chipsweep catalog list|show ID|validate`: the spec catalog."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from chipsweep.schemas.catalog import load_catalog, validate_catalog
from chipsweep.service.cli.base import EXIT_BAD_INPUT, Subparsers, fail


def register(sub: Subparsers) -> None:
    p = sub.add_parser("catalog", help="list, show or validate the spec catalog")
    p.add_argument("action", choices=["list", "show", "validate"])
    p.add_argument("id", nargs="?", help="entry id for `show` (chip, model or cluster)")
    p.add_argument("--kind", choices=["chips", "models", "clusters"], help="restrict `list` to one kind")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "validate":
        problems = validate_catalog()
        if problems:
            for p in problems:
                print(p, file=sys.stderr)
            return EXIT_BAD_INPUT
        cat = load_catalog()
        print(f"catalog ok: {len(cat.chips)} chips, {len(cat.models)} models, {len(cat.clusters)} clusters"
              + (f" (overlay {cat.overlay_path})" if cat.overlay_path else ""))
        return 0
    cat = load_catalog()
    if args.action == "list":
        kinds = [args.kind] if args.kind else ["chips", "models", "clusters"]
        if args.json:
            print(json.dumps({k: sorted(getattr(cat, k)) for k in kinds}, indent=1))
            return 0
        for kind in kinds:
            table = getattr(cat, kind)
            print(f"{kind} ({len(table)}):")
            for key in sorted(table):
                e = table[key]
                extra = ""
                if kind == "chips":
                    extra = f"  [{e.chip_class}]" + ("  (low confidence)" if e.confidence == "low" else "")
                elif kind == "models":
                    extra = f"  {e.params_b:g}B"
                print(f"  {key:34s} {e.name}{extra}")
        return 0
    if not args.id:
        return fail("catalog show needs an id (see `chipsweep catalog list`)")
    for kind in ("chips", "models", "clusters"):
        table = getattr(cat, kind)
        if args.id in table:
            data = table[args.id].model_dump(mode="json", by_alias=True, exclude_none=True)
            more: dict[str, Any] = {}
            if kind == "chips":  # which published runs fitted this chip's constants, or what they are extrapolated from
                from chipsweep.workers.context import Context
                from chipsweep.workers.provenance import chip_calibration

                more = {"calibration": chip_calibration(Context.build(cat), args.id)}
            if args.json:
                print(json.dumps({**data, **more}, indent=1))
            else:
                print(yaml.safe_dump({kind[:-1]: data, **more}, sort_keys=False, allow_unicode=True, width=110), end="")
            return 0
    return fail(f"unknown id '{args.id}': not a chip, model or cluster in the catalog (see `chipsweep catalog list`)")
