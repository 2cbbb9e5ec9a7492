"""`chipsweep` command line: a thin layer over the catalog, the evaluation core and the service.

Each command parses its arguments and calls one module; exit codes: 0 ok, 1 failure while running,
2 bad input (unknown id, invalid spec, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2

Handler = Callable[[argparse.Namespace], int]
# sub-command name -> (register(subparsers) function); modules add theirs in `_commands()`
_REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = []


def command(register: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    _REGISTRY.append(register)
    return register


def _fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"chipsweep: {msg}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------------------------
@command
def _register_catalog(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="list, show or validate the spec catalog")
    p.add_argument("action", choices=["list", "show", "validate"])
    p.add_argument("id", nargs="?", help="entry id for `show` (chip, model or cluster)")
    p.add_argument("--kind", choices=["chips", "models", "clusters"], help="restrict `list` to one kind")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_catalog)


def _catalog(args: argparse.Namespace) -> int:
    from chipsweep.schemas.catalog import CatalogError, load_catalog, validate_catalog

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
    try:
        cat = load_catalog()
    except CatalogError as exc:
        return _fail(str(exc))
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
        return _fail("catalog show needs an id (see `chipsweep catalog list`)")
    for kind in ("chips", "models", "clusters"):
        table = getattr(cat, kind)
        if args.id in table:
            data = table[args.id].model_dump(mode="json", by_alias=True, exclude_none=True)
            if args.json:
                print(json.dumps(data, indent=1))
            else:
                import yaml

                print(yaml.safe_dump({kind[:-1]: data}, sort_keys=False, allow_unicode=True), end="")
            return 0
    return _fail(f"unknown id '{args.id}': not a chip, model or cluster in the catalog (see `chipsweep catalog list`)")


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
@command
def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate explicit configurations from a CSV or Parquet file")
    p.add_argument("--kind", required=True, choices=["training", "inference", "asic"])
    p.add_argument("input", help="CSV or Parquet file (by extension), or - for CSV on stdin")
    p.add_argument("-o", "--output", default="-", help="CSV or Parquet file (by extension), or - for stdout")
    p.add_argument("--strict", action="store_true", help="refuse the whole file if any row is bad")
    p.set_defaults(func=_evaluate)


def read_table(path: str):  # type: ignore[no-untyped-def]
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        return pq.read_table(path)
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    opts = pacsv.ConvertOptions(strings_can_be_null=True)
    # read every column as text: the evaluator parses cells itself and names any bad one
    names = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(skip_rows_after_names=0)).column_names
    opts = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True)
    return pacsv.read_csv(io.BytesIO(data), convert_options=opts)


def write_table(table, path: str) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        pq.write_table(table, path)
    elif path == "-":
        pacsv.write_csv(table, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        pacsv.write_csv(table, path)


def _evaluate(args: argparse.Namespace) -> int:
    from chipsweep.schemas.catalog import CatalogError, load_catalog
    from chipsweep.workers.evaluate import EvaluateError, evaluate_table

    try:
        table = read_table(args.input)
    except FileNotFoundError:
        return _fail(f"input file '{args.input}' not found")
    except Exception as exc:  # pyarrow raises several types for unreadable files
        return _fail(f"cannot read '{args.input}': {exc}")
    try:
        out, errors = evaluate_table(args.kind, table, load_catalog(), strict=args.strict)
    except (EvaluateError, CatalogError, ValueError) as exc:
        return _fail(str(exc))
    write_table(out, args.output)
    for msg in errors.messages()[:20]:
        print(f"chipsweep: {msg}", file=sys.stderr)
    if len(errors.messages()) > 20:
        print(f"chipsweep: ... {len(errors.messages()) - 20} more row errors", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------------------
@command
def _register_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="predict the published runs in tests/validation and report the errors")
    p.add_argument("--kind", choices=["training", "inference", "asic", "all"], default="all")
    p.add_argument("--summary", action="store_true", help="only the per-source summary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from chipsweep.service import validate

    results = validate.run(args.kind)
    if args.json:
        print(json.dumps([
            {"case": r.case.case_id, "source": r.case.source, "metric": r.case.metric, "predicted": r.predicted,
             "measured": r.case.measured, "error": r.error, "fitted": r.case.case_id in validate.fitted_cases()}
            for r in results
        ], indent=1))
        return 0
    fitted = validate.fitted_cases()
    if not args.summary:
        print(f"{'case':48s} {'metric':26s} {'predicted':>12s} {'measured':>12s} {'error':>8s}")
        for r in results:
            mark = " (fit)" if r.case.case_id in fitted else ""
            print(f"{r.case.case_id:48s} {r.case.metric:26s} {r.predicted:12.4g} {r.case.measured:12.4g} {r.error * 100:7.1f}%{mark}")
        print()
    print(f"{'source':34s} {'cases':>5s} {'mean |err|':>10s} {'max |err|':>10s}   (held out: not used to fit)")
    for group, n, mean, worst, held_n, held_mean, held_max in validate.summary_table(results, fitted):
        held = f"{held_n:4d}  {held_mean * 100:6.1f}% {held_max * 100:6.1f}%" if held_n else "   -"
        print(f"{group:34s} {n:5d} {mean * 100:9.1f}% {worst * 100:9.1f}%   {held}")
    return 0


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------
@command
def _register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a built-in sweep locally and print the frontiers")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from chipsweep.service import demo

    return demo.main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chipsweep",
        description="Sweep LLM models x chips x clusters x parallel layouts; results as Parquet; frontiers in SQL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _load_plugins()
    for register in _REGISTRY:
        register(sub)
    return parser


def _load_plugins() -> None:
    """Modules that add commands of their own (the sweep service, queries) register on import."""
    import importlib

    for name in ("chipsweep.service.commands", "chipsweep.service.query_commands"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    from chipsweep.workers.runtime import tune_allocator

    tune_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
