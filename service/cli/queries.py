"""`chipsweep query` and `chipsweep sql`: saved questions and read-only SQL over the result lake,
through `chipsweep.query` / `chipsweep.sql`; printed with queries.output, drawn with queries.plot."""

from __future__ import annotations

import argparse
import sys
from functools import partial

import pyarrow as pa

from chipsweep.queries import output
from chipsweep.queries.plot import check_plot_path, plot
from chipsweep.queries.runner import META_TRUNCATED, beyond_limits, count_saved, run_saved, unplaced_chips
from chipsweep.queries.saved import load_query, saved_queries
from chipsweep.schemas.columns import FACTS, KINDS
from chipsweep.service import python_api
from chipsweep.service.cli.base import Subparsers, fail

PLOT_SAMPLE = 200_000  # candidate rows drawn faint behind a frontier
LAKE_HELP = "lake path or URI (default: $CHIPSWEEP_LAKE or $CHIPSWEEP_HOME/lake)"


def register(sub: Subparsers) -> None:
    p = sub.add_parser("query", help="run a saved query over the result lake (--list to see them)")
    p.add_argument("name", nargs="?", help="saved query name, e.g. pareto_training")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="a query parameter")
    p.add_argument("--format", choices=output.FORMATS, default="table")
    p.add_argument("--plot", metavar="FILE.png|FILE.html", help="draw the frontier (frontier queries only)")
    p.add_argument("--list", action="store_true", help="list the saved queries and what each answers")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop a query running longer")
    p.set_defaults(func=query)

    p = sub.add_parser("sql", help="read-only SQL over the lake's views (training, latest_training, chips, ...)",
                       description="Read-only SQL over the lake's views. An output the model could not compute (a "
                                   "refused row's, a cost without a price) is NULL, which max(), avg() and count(col) "
                                   "skip; lakes written before 2026-12-06 hold NaN there, which sorts above every "
                                   "number: over those add WHERE infeasible_reason = '' before max(), avg() or "
                                   "ORDER BY ... DESC.")
    p.add_argument("text", help='one SELECT or WITH statement, e.g. "SELECT * FROM sweeps"')
    p.add_argument("--format", choices=output.FORMATS, default="table")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop a query running longer")
    p.add_argument("--max-rows", type=int, default=None, help="print at most this many rows")
    p.set_defaults(func=sql)

    p = sub.add_parser("columns", help="the lake's fact columns of a kind: type, unit and what each one means")
    p.add_argument("kind", choices=KINDS, help="training, inference or asic (the views `<kind>`, `latest_<kind>`)")
    p.add_argument("--format", choices=output.FORMATS, default="table")
    p.set_defaults(func=columns)


def _params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param '{pair}' is not key=value (e.g. --param model=llama2_70b)")
        out[key.strip()] = value.strip()
    return out


def _list() -> int:
    for q in saved_queries().values():
        print(f"{q.name}{'  [plot]' if q.plot else ''}")
        print(f"    {q.answers}")
        for prm in q.params:
            dflt = "required" if prm.required else f"default {prm.default if prm.default is not None else 'none'}"
            print(f"    --param {prm.name}=<{prm.type}>  ({dflt}) {prm.doc}")
    return 0


def emit(text: str) -> None:
    """Print a rendered result ending in exactly one newline (a CSV ends in its own: no blank line after it)."""
    print(text, end="" if text.endswith("\n") else "\n")


def query(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if not args.name:
        return fail("query needs a NAME (see `chipsweep query --list`)")
    try:
        params = _params(args.param)
    except ValueError as exc:
        return fail(str(exc))
    if args.plot and not load_query(args.name).plot:
        plottable = [q.name for q in saved_queries().values() if q.plot]
        return fail(f"--plot: query '{args.name}' is not a frontier query; allowed: {', '.join(plottable)}")
    if args.plot:
        check_plot_path(args.plot)  # refused before the query runs and its table is printed
    table = python_api.query(args.name, params, lake=args.lake, timeout_s=args.timeout)
    emit(output.render(table, args.format))
    saved = load_query(args.name)
    # people read the table: say who is missing from it, and where a deadline, budget or SLO left nothing, how close
    # the rows came; a CSV or JSON answer stays the data alone on stdout, the notes going to stderr
    say = print if args.format == "table" else partial(print, file=sys.stderr)
    if (saved.plot or saved.ranks) and (args.format == "table" or not table.num_rows):
        note = output.unplaced_note(unplaced_chips(args.name, params, lake=args.lake, timeout_s=args.timeout), table)
        if note:
            say(note)
    if not table.num_rows:
        for line in beyond_limits(args.name, params, lake=args.lake, timeout_s=args.timeout):
            say(line)
    if args.plot:
        candidates = run_saved(args.name, params, lake=args.lake, frontier=False, sample=PLOT_SAMPLE,
                               timeout_s=args.timeout)
        total = None
        if candidates.num_rows >= PLOT_SAMPLE:  # a sample: say how many there are in all
            total = count_saved(args.name, params, lake=args.lake, timeout_s=args.timeout)
        fig = plot(table, candidates, args.plot, candidates_total=total)
        print(f"chipsweep: wrote {args.plot} ({len(fig.frontier)} frontier points over "
              f"{fig.candidates_total:,} feasible configurations)", file=sys.stderr)
    return 0


def columns(args: argparse.Namespace) -> int:
    """Print every fact column of a kind with its Arrow type, unit, role and description (schemas/columns.py): what a
    SQL user reads a column as, e.g. which of decode_tokens_per_s and tokens_per_s_per_user is the serving point."""
    cols = FACTS[args.kind]
    table = pa.table({"column": [c.name for c in cols], "type": [c.dtype for c in cols],
                      "unit": [c.unit for c in cols], "role": [c.role for c in cols],
                      "description": [c.doc for c in cols]})
    # the table prints whole descriptions (no column of it is wide otherwise); csv and json as every output
    emit(output.to_text(table, max_width=10_000) if args.format == "table" else output.render(table, args.format))
    return 0


def sql(args: argparse.Namespace) -> int:
    table = python_api.sql(args.text, lake=args.lake, timeout_s=args.timeout, max_rows=args.max_rows)
    emit(output.render(table, args.format))
    if META_TRUNCATED in (table.schema.metadata or {}):  # said apart from the rows, so a CSV or JSON stays clean
        print(f"chipsweep: the first {table.num_rows:,} rows (--max-rows); the query returns more", file=sys.stderr)
    return 0
