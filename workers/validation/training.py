"""Training predictions of the validation cases: each case is one `evaluate` row run through the same
parse / assemble / layout-search path users take, and the measured metric is read from the outputs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.training_rows import evaluate_training, search_training, training_inputs
from chipsweep.workers.validation.cases import Case, Result, case_table

HOURS_PER_YEAR = 8766.0  # 365.25 days


def extract(cases: list[Case], out: dict[str, np.ndarray], n_chips: np.ndarray) -> list[Result]:
    """Predicted values of each case's metric from the core's outputs (row i = case i)."""
    results = []
    for i, c in enumerate(cases):
        # a published run the memory model refuses is still compared on speed (reported apart by `report`)
        step = out["step_time_if_fits_s"][i]
        if c.metric == "published_tflops_per_chip":
            # the source's own FLOP count over the predicted step time (TFLOP/s per chip)
            pred = (c.flops_per_step or np.nan) / (step * n_chips[i]) * 1e-12
        elif c.metric == "tokens_per_s":
            pred = out["tokens_per_step"][i] / step
        elif c.metric == "step_time_s":
            pred = step
        elif c.metric == "gpu_years":
            pred = out["chip_hours"][i] / HOURS_PER_YEAR
        else:
            pred = out[c.metric][i]
        results.append(Result(c, float(pred) * c.scale))
    return results


def predict(cases: Iterable[Case], catalog: Catalog | None = None) -> list[Result]:
    """Run the cases through the same parse/assemble/search path `evaluate` uses."""
    cases = list(cases)
    if not cases:
        return []
    ctx = Context.build(catalog or load_catalog())
    table = case_table(cases)
    errors = RowErrors(table.num_rows)
    x, blank, chip_idx = training_inputs(table, ctx, errors)
    # a precision the chip publishes no peak for (bf16 on the Ascend 910B) is answered NaN here, as the core refuses
    # it, and at both ends of an assumed peak by `bracket_report`; any other bad cell is a broken case
    if errors and errors.fields() != {"precision"}:
        raise ValueError("validation cases do not parse: " + "; ".join(errors.messages()[:5]))
    _, out = search_training(x, blank, ctx, chip_idx)
    return extract(cases, out, x["n_chips"])


def memory_refused(cases: list[Case], ctx: Context) -> set[str]:
    """Primary cases the memory model refuses although the run ran (compared on speed all the same)."""
    prim = [c for c in cases if not c.restates and c.metric in ("step_time_s", "tokens_per_s", "published_tflops_per_chip")]
    out, _ = evaluate_training(case_table(prim), ctx)
    reasons = out.column("infeasible_reason").to_pylist()
    return {c.case_id for c, why in zip(prim, reasons, strict=True) if why and why.startswith("does not fit in memory")}
