"""Calibration constants by name (`level:target:key`, as workers/validation/calibrate.py fits them) applied to a
`Context`, and the training cases predicted with them: how `chipsweep validate` predicts each source with the
constants fitted without it (tests/validation/held_out_fits.json).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from chipsweep.schemas.vocab import FRAMEWORKS
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.training_rows import search_training, training_inputs
from chipsweep.workers.validation.cases import CASES_DIR, Case, Result, case_table
from chipsweep.workers.validation.training import extract

HELD_OUT_PATH = CASES_DIR / "held_out_fits.json"
LEVEL_ORDER = {"global": 0, "family": 1, "chip": 2, "framework": 3}
# framework constants one software family shares across its generations (key -> the family's name prefix): the
# DeepSpeed releases drive their ZeRO / data-parallel collectives through the same bucketed engine, so 2021's and
# 2023's runs set one `dp_coll_eff` (what differs, 2021's un-coalesced ZeRO-3 all-gathers, is in the model's
# message count, training.py); every other framework constant is fitted per generation
SHARED_FRAMEWORK_KEYS = {"dp_coll_eff": "deepspeed"}


def framework_codes(target: str, key: str) -> list[int]:
    """The FRAMEWORKS codes a framework-level constant `key` fitted for `target` applies to: every generation of the
    family where the key is shared, else `target` alone."""
    family = SHARED_FRAMEWORK_KEYS.get(key)
    if family is not None and target == family:
        return [i for i, f in enumerate(FRAMEWORKS) if f.startswith(family)]
    return [FRAMEWORKS.index(target)] if target in FRAMEWORKS else []


def chip_columns(ctx: Context, target: str) -> list[int]:
    """The chip columns a chip-level constant fitted for `target` applies to: the chip and the chips whose compute
    it is (`same_compute_as`), which share its matrix efficiency."""
    return [i for i, c in enumerate(ctx.chips.ids) if ctx.catalog.chips[c].calibration_chip == target]


def parse(name: str) -> tuple[str, str, str]:
    """`level:target:key` (or `global:key`) -> (level, target, key)."""
    parts = name.split(":")
    return (parts[0], "", parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])


def apply(ctx: Context, base: dict[str, np.ndarray], values: dict[str, float]) -> dict[str, np.ndarray]:
    """Calibration arrays (framework, chip) with `values` set: global, then family, chip, framework."""
    cal = {k: v.copy() for k, v in base.items()}
    chips = ctx.chips
    fams = np.asarray([ctx.catalog.chips[c].training_family for c in chips.ids])
    for name, v in sorted(values.items(), key=lambda kv: LEVEL_ORDER.get(parse(kv[0])[0], 9)):
        level, target, key = parse(name)
        if level not in LEVEL_ORDER or key not in cal:
            continue
        if level == "global":
            cal[key][:, :] = v
        elif level == "family":
            cal[key][:, fams == target] = v
        elif level == "chip":
            cal[key][:, chip_columns(ctx, target)] = v
        elif level == "framework" and target in FRAMEWORKS:
            cal[key][framework_codes(target, key), :] = v
    return cal


def predict_with(ctx: Context, values: dict[str, float], cases: list[Case]) -> list[Result]:
    """The cases predicted with the constants `values` on top of the catalog's."""
    if not cases:
        return []
    base = {k: v.copy() for k, v in ctx.cal.items()}
    try:
        ctx.cal = apply(ctx, base, values)
        errors = RowErrors(len(cases))
        x, blank, chip_idx = training_inputs(case_table(cases), ctx, errors)
        _, out = search_training(x, blank, ctx, chip_idx)
        return extract(cases, out, x["n_chips"])
    finally:
        ctx.cal = base


def load_fits() -> dict[str, dict[str, float]]:
    """Per source, the constants fitted without it (empty when calibrate.py has not written them)."""
    if not HELD_OUT_PATH.exists():
        return {}
    return {k: dict(v) for k, v in json.loads(HELD_OUT_PATH.read_text())["fits"].items()}


def out_of_source(ctx: Context, cases: Iterable[Case]) -> dict[str, Result]:
    """case id -> its prediction by the fit that did not see its source (sources never fitted: absent)."""
    fits = load_fits()
    by_source: dict[str, list[Case]] = {}
    for c in cases:
        if c.source in fits:
            by_source.setdefault(c.source, []).append(c)
    out: dict[str, Result] = {}
    for src, group in by_source.items():
        for r in predict_with(ctx, fits[src], group):
            out[r.case.case_id] = r
    return out
