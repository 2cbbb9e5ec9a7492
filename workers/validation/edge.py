"""Inference and edge-ASIC predictions of the validation cases: rows with a `chip` run through `evaluate
--kind inference`, design rows through `evaluate --kind asic`, and the one-formula checks (dies per wafer,
yield at a given die area) call the ASIC core's functions directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.schemas.vocab import YIELD_MODELS
from chipsweep.workers import asic
from chipsweep.workers.asic_rows import asic_constants, evaluate_asic
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import evaluate_inference
from chipsweep.workers.validation.cases import Case, Result, case_table


def predict(cases: Iterable[Case], catalog: Catalog | None = None) -> list[Result]:
    """Each case's predicted metric, in the order of `cases`."""
    ctx = Context.build(catalog or load_catalog())
    k = asic_constants(ctx)
    cases = list(cases)
    direct = [c for c in cases if "die_area_mm2" in c.row]
    inf = [c for c in cases if "chip" in c.row]
    asc = [c for c in cases if c not in direct and c not in inf]
    results = {id(r.case): r for r in _run("inference", inf, ctx) + _run("asic", asc, ctx)}
    results.update({id(c): Result(c, _direct(c, k)) for c in direct})
    return [results[id(c)] for c in cases]


def _run(kind: str, cases: list[Case], ctx: Context) -> list[Result]:
    if not cases:
        return []
    fn = evaluate_inference if kind == "inference" else evaluate_asic
    out, _ = fn(case_table(cases), ctx)
    res = []
    for i, c in enumerate(cases):
        v = out.column(c.metric)[i].as_py()
        res.append(Result(c, float("nan") if v is None else float(v) * c.scale))
    return res


def _direct(c: Case, k: dict[str, Any]) -> float:
    """Checks of one formula (dies per wafer, yield) at a given die area."""
    area = np.array([float(c.row["die_area_mm2"])])  # type: ignore[arg-type]
    if c.metric == "dies_per_wafer":
        return float(asic.dies_per_wafer(area, k)[0])
    model = np.array([float(YIELD_MODELS.index(str(c.row["yield_model"])))])
    return float(asic.defect_yield(area, np.array([float(c.row["d0_per_cm2"])]), model, k["yield_alpha"])[0])  # type: ignore[arg-type]
