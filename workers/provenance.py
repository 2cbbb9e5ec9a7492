"""How far to trust a chip's numbers: which published runs fitted the constants the cores use for it, or from
which chips they were extrapolated, for training (its family's default framework) and for serving (its default
engine, and every engine fitted on the chip itself). `chipsweep catalog show CHIP` prints it."""

from __future__ import annotations

from typing import Any

import numpy as np

from chipsweep.schemas.vocab import ENGINES, FRAMEWORKS
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import serving_calibration

# the training constants a reader weighs a chip by: its matrix efficiency at 16 bits and at fp8
MATRIX_KEYS = ("mm_eff_max", "mm_eff_max_fp8")


def chip_calibration(ctx: Context, chip_id: str) -> dict[str, Any]:
    """{'training': framework, calibrated_on, matrix efficiencies; 'serving': default engine, calibrated_on per
    engine} for one catalog chip (KeyError for an id the catalog lacks)."""
    if chip_id not in ctx.chips.ids:
        raise KeyError(chip_id)
    i = ctx.chips.ids.index(chip_id)
    fw = int(ctx.chip_default_framework[i])
    training: dict[str, Any] = {"framework": FRAMEWORKS[fw], "calibrated_on": str(ctx.calibrated_on[fw, i])}
    chip = ctx.catalog.chips[chip_id]
    for key in MATRIX_KEYS:
        if key.endswith("_fp8") and not chip.peak_tflops_fp8:  # no fp8 tensor rate: the constant describes nothing
            continue
        table = ctx.cal[key]
        value = float(table[min(fw, table.shape[0] - 1), i])
        if np.isfinite(value):
            training[key] = round(value, 4)
    s = serving_calibration(ctx.catalog, [chip_id])
    default = int(s["default_engine"][0])
    engines = {name: s["texts"][int(s["calibrated_on"][e])] for e, name in enumerate(ENGINES)
               if e == default or not bool(s["extrapolated"][e])}
    return {"training": training, "serving": {"default_engine": ENGINES[default], "calibrated_on": engines}}
