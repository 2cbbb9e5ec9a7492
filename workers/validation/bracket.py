"""Runs on chips whose published figures conflict (catalog `quoted`: the field left blank, every quoted value kept):
each predicted at both ends of the quoted range, the answer the catalog can give for them, and the lines `validate`
prints of it (the dense 2024-26 runs and the mixture-of-experts set alike)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from chipsweep.schemas.catalog import Chip
from chipsweep.workers.context import Context
from chipsweep.workers.validation import held_out
from chipsweep.workers.validation.cases import Case, Result, case_table

Bracket = tuple[list[tuple[Result, Result]], list[tuple[Result, str]]]


# what `quoted_bracket` assumes where a chip publishes no peak for a run's precision: a bf16 run at the fp16 rate
# (tensor units that take both 16-bit formats run them at one rate: A100, H100, TPU, Gaudi datasheets), stated in the
# report line; never used by `evaluate`, which asks for the field instead
ASSUMED_BF16 = "bf16 peak assumed equal to the fp16 peak: no source publishes one"


def _assumed_peaks(row: dict[str, object], chip: Chip) -> dict[str, float]:
    if row.get("precision") == "bf16" and chip.peak_tflops_bf16 is None and chip.peak_tflops_fp16:
        return {"chip.peak_tflops_bf16": float(chip.peak_tflops_fp16)}
    return {}


def quoted_bracket(ctx: Context, cases: Iterable[Case]) -> Bracket:
    """The runs on chips with conflicting published figures (catalog `quoted`, fields left blank), each predicted
    with every such field at its lowest quoted value and at its highest: the answer the catalog can give for them
    (and the runs that have none even so, with the core's reason). The constants are the fit without the run's
    source where there is one (these sources are never fitted)."""
    from chipsweep.workers.training_rows import evaluate_training

    fits = held_out.load_fits()
    lows: list[Case] = []
    highs: list[Case] = []
    for c in cases:
        chip = ctx.catalog.chips.get(str(c.row.get("chip", "")))
        if c.restates or chip is None or not chip.quoted:
            continue
        assumed = _assumed_peaks(c.row, chip)
        lows.append(replace(c, row={**c.row, **{f"chip.{k}": min(v) for k, v in chip.quoted.items()}, **assumed}))
        highs.append(replace(c, row={**c.row, **{f"chip.{k}": max(v) for k, v in chip.quoted.items()}, **assumed}))
    out: list[tuple[Result, Result]] = []
    missing: list[Result] = []
    for src in sorted({c.source for c in lows}):
        lo = held_out.predict_with(ctx, fits.get(src, {}), [c for c in lows if c.source == src])
        hi = held_out.predict_with(ctx, fits.get(src, {}), [c for c in highs if c.source == src])
        for a, b in zip(lo, hi, strict=True):
            if np.isfinite(a.predicted) and np.isfinite(b.predicted):
                out.append((a, b))
            else:
                missing.append(a)
    reasons: list[str] = []
    if missing:
        reasons = evaluate_training(case_table([r.case for r in missing]), ctx)[0].column("infeasible_reason").to_pylist()
    return out, [(r, str(why or "no answer")) for r, why in zip(missing, reasons, strict=True)]


def bracket_lines(bracket: list[tuple[Result, Result]], unanswered: list[tuple[Result, str]]) -> list[str]:
    """Per chip with conflicting figures: its runs' error at both ends of the quoted range, how many
    measurements fall between the two predictions, and the runs with no answer even so."""
    by_chip: dict[tuple[str, str], list[tuple[Result, Result]]] = {}
    for lo, hi in bracket:
        assumed = "chip.peak_tflops_bf16" in lo.case.row
        by_chip.setdefault((lo.case.source, str(lo.case.row.get("chip")), assumed), []).append((lo, hi))
    if not by_chip and not unanswered:
        return []
    lines = ["runs on chips whose published figures conflict (catalog `quoted`), never fitted, answered at both ends "
             "of the quoted range:"]
    for (src, chip, assumed), pairs in sorted(by_chip.items()):
        ends = [{k: v for k, v in r.case.row.items() if k.startswith("chip.") and k != "chip.peak_tflops_bf16"}
                for r in pairs[0]]
        quoted = ", ".join(f"{k.removeprefix('chip.')} {v:g}" for k, v in ends[0].items())
        quoted_hi = ", ".join(f"{v:g}" for v in ends[1].values())
        chip = f"{chip} ({ASSUMED_BF16})" if assumed else chip
        e_lo = np.array([lo.error for lo, _ in pairs])
        e_hi = np.array([hi.error for _, hi in pairs])
        inside = sum(1 for lo, hi in pairs if min(lo.predicted, hi.predicted) <= lo.case.measured <= max(lo.predicted, hi.predicted))
        lines.append(f"  {src:20s} {len(pairs):4d} runs on {chip}: at {quoted} median error {np.median(e_lo) * 100:+.1f} %; "
                     f"at {quoted_hi} {np.median(e_hi) * 100:+.1f} %; measured inside the predicted range: "
                     f"{inside} of {len(pairs)}")
    why: dict[str, int] = {}
    for r, reason in unanswered:
        key = f"{r.case.source}: {reason}"
        why[key] = why.get(key, 0) + 1
    lines += [f"  {n:4d} runs with no answer even so: {k}" for k, n in sorted(why.items())]
    return lines
