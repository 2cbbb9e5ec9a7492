"""Training predictions of the validation cases: each case is one `evaluate` row run through the same
parse / assemble / layout-search path users take, and the measured metric is read from the outputs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.training_rows import search_training, training_inputs
from chipsweep.workers.validation.cases import Case, Result, case_table

HOURS_PER_YEAR = 8766.0  # 365.25 days


def extract(cases: list[Case], out: dict[str, np.ndarray], n_chips: np.ndarray) -> list[Result]:
    """Predicted values of each case's metric from the core's outputs (row i = case i)."""
    results = []
    for i, c in enumerate(cases):
        if c.metric == "aggregate_pflops":
            pred = out["hardware_tflops_per_chip"][i] * n_chips[i] / 1000.0  # PFLOP/s of the whole job
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
    if errors:
        raise ValueError("validation cases do not parse: " + "; ".join(errors.messages()[:5]))
    _, out = search_training(x, blank, ctx, chip_idx)
    return extract(cases, out, x["n_chips"])
