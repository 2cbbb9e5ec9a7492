"""Re-runs and versions: `chipsweep rerun`, `history`, `gc` (service/rerun.py)."""

from __future__ import annotations

import argparse
import json
import time

from chipsweep.schemas.catalog import CatalogError
from chipsweep.service import dispatch, rerun
from chipsweep.service.cli.base import EXIT_BAD_INPUT, EXIT_FAILED, Subparsers, fail, server_arg
from chipsweep.service.client import Client, ServerError
from chipsweep.service.queue import Queue, parse_id
from chipsweep.service.settings import Settings


def register(sub: Subparsers) -> None:
    p = sub.add_parser("rerun", help="re-run sweeps whose catalog inputs changed (only the affected chunks)")
    p.add_argument("sweep", nargs="?", help="one sweep (default: every sweep)")
    p.add_argument("--changed", action="store_true",
                   help="only if an input changed (default with SWEEP: re-evaluate it in full)")
    p.add_argument("--wait", action="store_true", help="run the new versions here and return when they are done")
    p.add_argument("--json", action="store_true",
                   help="print [{sweep_id, version, changed, chunks_evaluated, chunks_carried}]")
    p.set_defaults(func=run_rerun)

    p = sub.add_parser("history", help="a sweep's versions and what changed between them")
    p.add_argument("sweep")
    p.add_argument("--json", action="store_true")
    server_arg(p)
    p.set_defaults(func=history)

    p = sub.add_parser("gc", help="remove old sweep versions (queue rows and lake files)")
    p.add_argument("sweep", nargs="?", help="one sweep (default: every sweep)")
    p.add_argument("--keep", type=int, required=True, help="versions to keep per sweep (the newest; at least 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=gc)


def run_rerun(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    queue = Queue(settings.queue_path)
    try:
        results = rerun.rerun(queue, name=args.sweep, changed_only=args.changed or args.sweep is None)
    except CatalogError as exc:  # nothing was recorded from the broken catalog
        return fail(f"catalog refused, nothing re-run: {exc}")
    made = [f"{r.sweep_id}@{r.version}" for r in results if r.outcome == "rerun"]
    if args.wait and made:  # waits for a running server's dispatcher instead when it holds the lease
        dispatch.run_until(queue, settings, dispatch.over(queue, *made))
    if args.json:
        print(json.dumps([r.as_json() for r in results]))
        return 0
    for r in results:
        if r.outcome == "rerun":
            print(f"{r.sweep_id}@{r.version}: {', '.join(r.changed) or 'full re-run'}; "
                  f"{r.chunks_evaluated} chunks evaluated, {r.chunks_repriced} re-priced, {r.chunks_carried} carried")
        else:
            print(f"{r.sweep_id}@{r.version}: {r.outcome}{': ' + r.message if r.message else ''}")
    return EXIT_FAILED if any(r.outcome == "error" for r in results) else 0


def history(args: argparse.Namespace) -> int:
    if args.server:
        try:
            versions = Client(args.server).history(parse_id(args.sweep)[0])
        except ServerError as exc:
            return fail(str(exc), EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_FAILED)
    else:
        versions = Queue(Settings.from_env().queue_path).versions(parse_id(args.sweep)[0])
    if args.json:
        print(json.dumps(versions))
        return 0
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v["created_at"]))
        base = f" from v{v['base_version']}" if v["base_version"] else ""
        head = f"v{v['version']}  {when} UTC  {v['state']:9s} {v['trigger']}{base}: "
        if v["state"] == "done":
            print(head + f"{v['chunks_evaluated']} chunks evaluated ({v['rows_recomputed']:,} rows), "
                  f"{v['chunks_repriced']} re-priced ({v['rows_repriced']:,} rows), {v['chunks_carried']} carried")
        else:  # what it is to do, and how much of it ran ("3 chunks evaluated (0 rows)" read for a sweep never started)
            todo = v["chunks_evaluated"] + v["chunks_repriced"]
            print(head + f"{v['chunks_evaluated']} chunks to evaluate, {v['chunks_repriced']} to re-price, "
                  f"{v['chunks_carried']} carried; {v.get('chunks_run', 0)} of the {todo} run so far "
                  f"({v['rows_recomputed'] + v['rows_repriced']:,} rows)")
        if v["base_version"]:
            for way, label in (("evaluated", "evaluated"), ("repriced", "re-priced"), ("carried", "carried")):
                if v["chunk_ranges"][way]:
                    print(f"    chunks {label}: {v['chunk_ranges'][way]}")
        for c in v["changes"]:
            what = f"{c['entry']}.{c['field']}" if c["field"] else c["entry"]
            print(f"    {what}: {json.dumps(c['old'])} -> {json.dumps(c['new'])}")
    return 0


def gc(args: argparse.Namespace) -> int:
    if args.keep < 1:
        return fail(f"--keep {args.keep}: allowed: an integer >= 1")
    removed = rerun.gc(Queue(Settings.from_env().queue_path), keep=args.keep, name=args.sweep)
    print(json.dumps(removed) if args.json else "\n".join(f"removed {s}" for s in removed) or "nothing to remove")
    return 0
