"""How far to trust a chip's numbers: which published runs fitted the constants the cores use for it, or from
which chips they were extrapolated, for training (its family's default framework) and for serving (its default
engine, and every engine fitted on the chip itself). `chipsweep catalog show CHIP` and the web UI's catalog page
show it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chipsweep.schemas.vocab import ENGINES, FRAMEWORKS
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import serving_calibration

# the training constants a reader weighs a chip by: its matrix efficiency at 16 bits and at fp8
MATRIX_KEYS = ("mm_eff_max", "mm_eff_max_fp8")


def chips_calibration(ctx: Context, chip_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per catalog chip (all, or `chip_ids`; KeyError for an id the catalog lacks): {'training': framework,
    calibrated_on, matrix efficiencies; 'serving': default engine, calibrated_on per engine}."""
    ids = list(ctx.chips.ids if chip_ids is None else chip_ids)
    for cid in ids:
        if cid not in ctx.chips.ids:
            raise KeyError(cid)
    s = serving_calibration(ctx.catalog, ids)
    n = len(ids)
    out: dict[str, dict[str, Any]] = {}
    for c, cid in enumerate(ids):
        i = ctx.chips.ids.index(cid)
        fw = int(ctx.chip_default_framework[i])
        training: dict[str, Any] = {"framework": FRAMEWORKS[fw], "calibrated_on": str(ctx.calibrated_on[fw, i])}
        for key in MATRIX_KEYS:
            if key.endswith("_fp8") and not ctx.catalog.chips[cid].peak_tflops_fp8:
                continue  # no fp8 tensor rate: the constant describes nothing on this chip
            table = ctx.cal[key]
            value = float(table[min(fw, table.shape[0] - 1), i])
            if np.isfinite(value):
                training[key] = round(value, 4)
        default = int(s["default_engine"][c])
        engines = {name: s["texts"][int(s["calibrated_on"][e * n + c])] for e, name in enumerate(ENGINES)
                   if e == default or not bool(s["extrapolated"][e * n + c])}
        out[cid] = {"training": training, "serving": {"default_engine": ENGINES[default], "calibrated_on": engines}}
    return out


_BY_CATALOG: dict[int, tuple[Any, dict[str, dict[str, Any]]]] = {}


def catalog_calibration(catalog: Any) -> dict[str, dict[str, Any]]:
    """`chips_calibration` of every chip of `catalog`, computed once per catalog object (the HTTP API and the web
    UI's catalog page ask for it on every request; a reloaded catalog is a new object). Read-only: shared."""
    hit = _BY_CATALOG.get(id(catalog))
    if hit is None or hit[0] is not catalog:
        if len(_BY_CATALOG) >= 4:
            _BY_CATALOG.clear()
        hit = (catalog, chips_calibration(Context.build(catalog)))
        _BY_CATALOG[id(catalog)] = hit
    return hit[1]


def chip_calibration(ctx: Context, chip_id: str) -> dict[str, Any]:
    """`chips_calibration` of one chip."""
    return chips_calibration(ctx, [chip_id])[chip_id]
