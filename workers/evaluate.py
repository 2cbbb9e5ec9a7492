"""Explicit configurations in, results out: the `chipsweep evaluate` path for every kind.

A table (CSV or Parquet columns) is parsed into arrays with per-row errors, joined with the catalog by
integer id, run through the kind's numpy core in one call (plus the layout search for blank training
layout cells), and returned as a table with the input columns passed through and the CONTRACT.md outputs
appended. Each kind lives in its row module (`training_rows`, `inference_rows`, `asic_rows`); this module
only picks one.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from chipsweep.schemas.axes import name_hint
from chipsweep.schemas.catalog import Catalog
from chipsweep.workers.asic_rows import evaluate_asic
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import evaluate_inference
from chipsweep.workers.parse import EvaluateError, RowErrors, columns_read
from chipsweep.workers.results import is_output
from chipsweep.workers.training_rows import evaluate_training

EVALUATORS: dict[str, Callable[..., tuple[pa.Table, RowErrors]]] = {
    "training": evaluate_training,
    "inference": evaluate_inference,
    "asic": evaluate_asic,
}


# what `explain` adds per kind: serving rows their TPOT and TTFT parts; training rows carry their step's parts
# (bubble_s, tp_comm_s, dp_comm_s, moe_a2a_s, optimizer_s) always, ASIC rows have none
EXPLAINED = ("inference",)


def evaluate_table(kind: str, table: pa.Table, catalog: Catalog, *, strict: bool = False,
                   explain: bool = False) -> tuple[pa.Table, RowErrors]:
    """Evaluate every row of `table` as a configuration of `kind`; bad rows carry their error (or, with
    `strict`, the first ones raise EvaluateError). `explain` adds the parts of each serving row's TPOT and TTFT."""
    if kind not in EVALUATORS:
        allowed = sorted(EVALUATORS)
        raise EvaluateError(f"kind '{kind}': allowed: {', '.join(allowed)}", field="kind", value=kind, allowed=allowed)
    if explain and kind not in EXPLAINED:
        raise EvaluateError(f"explain with kind '{kind}': allowed: kind {', '.join(EXPLAINED)} (training rows always "
                            "carry their step's parts: bubble_s, tp_comm_s, dp_comm_s, moe_a2a_s, optimizer_s)",
                            field="explain", value=kind, allowed=list(EXPLAINED))
    extra = {"explain": True} if explain else {}
    with columns_read() as read:
        try:
            out, errors = EVALUATORS[kind](table, Context.build(catalog), strict=strict, **extra)
        except EvaluateError as exc:  # strict: the refusal names a near-miss column too (it explains rows at defaults)
            notes = passed_through_notes(kind, table.column_names, read)
            if not notes:
                raise
            raise EvaluateError("\n".join([str(exc), *notes]), field=exc.field, value=exc.value, allowed=exc.allowed,
                                problems=exc.problems) from exc
    errors.column_notes = passed_through_notes(kind, table.column_names, read)
    if strict and errors.column_notes:  # strict refuses what it would otherwise only warn of: a near-miss column too
        name = errors.column_notes[0].split("'")[1]
        raise EvaluateError("\n".join(errors.column_notes), field=name, value=name,
                            allowed=f"an input of kind {kind}, or a column that names none (it passes through)")
    return out, errors


def passed_through_notes(kind: str, given: list[str], read: set[str]) -> list[str]:
    """A note for each given column the evaluator did not read whose name comes close to one it reads, is a known
    synonym of one, or is another kind's input (CONTRACT: columns not listed pass through untouched, so a
    misspelt `weight_precison` would otherwise leave every row at the default without a word). A column nothing
    comes close to (`case_id`) passes through silently; `chip.*` / `cal.*` what-ifs have their own check."""
    notes = []
    for name in given:
        if name in read or name.partition(".")[1] or is_output(name):  # an output fed back in is recomputed
            continue
        hint = name_hint(kind, name, read)
        if hint:
            notes.append(f"column '{name}' is not an input of kind {kind}: it passes through untouched and every row "
                         f"runs as if it were absent ({hint})")
    return notes


__all__ = ["EvaluateError", "evaluate_table"]
