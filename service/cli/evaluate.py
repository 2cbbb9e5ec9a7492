"""`chipsweep evaluate --kind K IN -o OUT [--explain]`: explicit configurations from CSV or Parquet, through
`chipsweep.evaluate`."""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chipsweep.schemas.vocab import KINDS
from chipsweep.service import python_api
from chipsweep.service.cli.base import Subparsers, fail

SHOWN_ROW_ERRORS = 20


def register(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="evaluate explicit configurations from a CSV or Parquet file")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("input", help="CSV, Parquet or JSON file (by extension; JSON: a list of row objects), or - for "
                                 "CSV on stdin")
    p.add_argument("-o", "--output", default="-", help="CSV or Parquet file (by extension), or - for stdout")
    p.add_argument("--strict", action="store_true", help="refuse the whole file if any row is bad")
    p.add_argument("--explain", action="store_true",
                   help="kind inference: add the parts each row's TPOT and TTFT are made of (tpot_gemm_s, "
                        "tpot_fixed_s, ... ttft_queue_s)")
    p.set_defaults(func=run)


def read_table(path: str) -> pa.Table:
    """A CSV (every column as text: the evaluator parses each cell and names a bad one), Parquet or JSON file (a list
    of row objects, each value as text as a CSV cell is: null or a missing key blank, true / false as written)."""
    if path.endswith(".parquet"):
        return pq.read_table(path)
    if path.lower().endswith(".json"):
        rows = json.loads(Path(path).read_text())
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("a JSON input is a list of row objects ([{\"model\": ..., \"chip\": ...}, ...])")
        names = list(dict.fromkeys(k for r in rows for k in r))

        def cell(v: object) -> str | None:
            return None if v is None else json.dumps(v) if isinstance(v, bool) else str(v)

        return pa.table({n: pa.array([cell(r.get(n)) for r in rows], type=pa.string()) for n in names})
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    names = pacsv.read_csv(io.BytesIO(data)).column_names
    # only an empty cell is blank: `nan` / `NA` are values the evaluator refuses by name (not "choose for me")
    opts = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                                null_values=[""])
    return pacsv.read_csv(io.BytesIO(data), convert_options=opts)


def write_table(table: pa.Table, path: str) -> None:
    if path.lower().endswith(".parquet"):
        pq.write_table(table, path)
    elif path == "-":
        pacsv.write_csv(table, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        pacsv.write_csv(table, path)


def run(args: argparse.Namespace) -> int:
    if args.output != "-" and not args.output.lower().endswith((".csv", ".parquet")):  # before any work is done
        return fail(f"field 'output' = '{args.output}': the format is taken from the extension; allowed: a path "
                    "ending in .csv or .parquet, or - for stdout")
    try:
        table = read_table(args.input)
    except FileNotFoundError:
        return fail(f"input file '{args.input}' not found")
    except (OSError, pa.ArrowException, ValueError) as exc:  # (json.JSONDecodeError is a ValueError)
        return fail(f"cannot read '{args.input}': {exc}")
    if not table.num_rows:
        print(f"chipsweep: '{args.input}' has no rows (a header alone): nothing to evaluate", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", python_api.RowWarning)
        warnings.simplefilter("always", python_api.ColumnWarning)
        out = python_api.evaluate(table, kind=args.kind, strict=args.strict, explain=args.explain)
    write_table(out, args.output)
    columns = [w for w in caught if issubclass(w.category, python_api.ColumnWarning)]
    rows = [w for w in caught if not issubclass(w.category, python_api.ColumnWarning)]
    for w in [*columns, *rows[:SHOWN_ROW_ERRORS + 1]]:
        print(f"chipsweep: {w.message}", file=sys.stderr)
    return 0
