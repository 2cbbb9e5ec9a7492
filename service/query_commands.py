"""`chipsweep query` and `chipsweep sql`: saved questions and read-only SQL over the result lake.

Thin over queries/: parse arguments, call queries.runner, print with queries.output, draw with
queries.plot. Exit codes as in service/cli.py: 0 ok, 1 failure while running, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from chipsweep.service.cli import EXIT_BAD_INPUT, command

FORMATS = ("table", "csv", "json")
PLOT_SAMPLE = 200_000  # candidate rows drawn faint behind a frontier


def _fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"chipsweep: {msg}", file=sys.stderr)
    return code


def _params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param '{pair}' is not key=value (e.g. --param model=llama2_70b)")
        out[key.strip()] = value.strip()
    return out


@command
def _register_query(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="run a saved query over the result lake (--list to see them)")
    p.add_argument("name", nargs="?", help="saved query name, e.g. pareto_training")
    p.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="a query parameter")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", metavar="FILE.png|FILE.html", help="draw the frontier (frontier queries only)")
    p.add_argument("--list", action="store_true", help="list the saved queries and what each answers")
    p.add_argument("--lake", help="lake path or URI (default: $CHIPSWEEP_LAKE or $CHIPSWEEP_HOME/lake)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop a query running longer")
    p.set_defaults(func=_query)


def _list() -> int:
    from chipsweep.queries.runner import saved_queries

    for q in saved_queries().values():
        print(f"{q.name}{'  [plot]' if q.plot else ''}")
        print(f"    {q.answers}")
        for prm in q.params:
            dflt = "required" if prm.required else f"default {prm.default if prm.default is not None else 'none'}"
            print(f"    --param {prm.name}=<{prm.type}>  ({dflt}) {prm.doc}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from chipsweep.queries import output
    from chipsweep.queries.plot import PlotError, plot
    from chipsweep.queries.runner import QueryError, count_saved, load_query, run_saved

    if args.list:
        return _list()
    if not args.name:
        return _fail("query needs a NAME (see `chipsweep query --list`)")
    try:
        params = _params(args.param)
        query = load_query(args.name)
        if args.plot and not query.plot:
            from chipsweep.queries.runner import saved_queries

            plottable = [q.name for q in saved_queries().values() if q.plot]
            return _fail(f"--plot: query '{args.name}' is not a frontier query; allowed: {', '.join(plottable)}")
        table = run_saved(args.name, params, lake=args.lake, timeout_s=args.timeout)
    except (QueryError, ValueError) as exc:
        return _fail(str(exc))
    print(output.render(table, args.format))
    if args.plot:
        try:
            candidates = run_saved(args.name, params, lake=args.lake, frontier=False, sample=PLOT_SAMPLE,
                                   timeout_s=args.timeout)
            total = None
            if candidates.num_rows >= PLOT_SAMPLE:  # a sample: say how many there are in all
                total = count_saved(args.name, params, lake=args.lake, timeout_s=args.timeout)
            fig = plot(table, candidates, args.plot, candidates_total=total)
        except (QueryError, PlotError) as exc:
            return _fail(str(exc))
        print(f"chipsweep: wrote {args.plot} ({len(fig.frontier)} frontier points over "
              f"{fig.candidates_total:,} feasible configurations)", file=sys.stderr)
    return 0


@command
def _register_sql(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help="read-only SQL over the lake's views (training, latest_training, chips, ...)")
    p.add_argument("text", help='one SELECT or WITH statement, e.g. "SELECT * FROM sweeps"')
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--lake", help="lake path or URI (default: $CHIPSWEEP_LAKE or $CHIPSWEEP_HOME/lake)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop a query running longer")
    p.add_argument("--max-rows", type=int, default=None, help="print at most this many rows")
    p.set_defaults(func=_sql)


def _sql(args: argparse.Namespace) -> int:
    from chipsweep.queries import output
    from chipsweep.queries.runner import QueryError, run_sql

    try:
        table = run_sql(args.text, lake=args.lake, timeout_s=args.timeout, max_rows=args.max_rows)
    except QueryError as exc:
        return _fail(str(exc))
    print(output.render(table, args.format))
    return 0
