"""What `chipsweep validate` reports: every case predicted with the catalog's constants (in-sample for the
sources they were fitted on) and, for training, with the constants fitted without the case's own source
(out of source, tests/validation/held_out_fits.json); per source the median and 90th percentile of both,
the runs the core cannot answer yet and why, and the errors per chip family on held-out sources.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.context import Context
from chipsweep.workers.validation import edge, held_out, serving, training
from chipsweep.workers.validation.bracket import bracket_lines, quoted_bracket
from chipsweep.workers.validation.cases import (
    Result,
    Skipped,
    all_training_cases,
    count_reasons,
    edge_cases,
    runs2026_cases,
    vtrain_cases,
)


def json_row(r: Result, fitted: bool, out_of_source: float | None, **extra: object) -> dict[str, object]:
    """One `validate --json` row: the case, its prediction and error, whether a fit saw it, and the prediction of
    the fit that did not see its source (None where none was made). A prediction the core cannot make (a chip field
    its sources leave blank) is null, as JSON has no NaN."""
    def number(v: float | None) -> float | None:
        return v if v is not None and np.isfinite(v) else None

    return {"case": r.case.case_id, "source": r.case.source, "metric": r.case.metric, "predicted": number(r.predicted),
            "measured": r.case.measured, "error": number(r.error), "fitted": fitted, "restates": r.case.restates,
            "out_of_source_predicted": number(out_of_source), **extra}


def issue13_rows() -> list[dict[str, object]]:
    """The issue-13 runs (mixture of experts, context parallelism, NVFP4) as `validate --json` rows: every one is
    predicted by the fit that did not see its source, so `predicted` is also `out_of_source_predicted`;
    `memory_refused` where the memory model refuses the published run (compared on speed all the same)."""
    from chipsweep.workers.validation.moe import issue13_reports

    return [json_row(r, False, r.predicted, report=report.label, memory_refused=r.case.case_id in report.refused,
                     notes=r.case.notes or None, known_regression=r.case.regressed or None)
            for report in issue13_reports(Context.build(load_catalog())) for r in report.results]


def run(kind: str = "all") -> list[Result]:
    """Predictions of every case of `kind` (training | inference | asic | edge (inference and asic) | all)."""
    results: list[Result] = []
    if kind in ("training", "all"):
        results += training.predict(all_training_cases())
    if kind in ("inference", "all", "edge"):
        # serving and edge inference: out of source (constants fitted without the case's own source), labelled
        # `metric family/source` so the per-source table separates throughput, latency, energy and power
        results += [Result(replace(r.case, source=f"{r.case.family}/{r.case.source}"), r.predicted)
                    for r in serving.loso()]
    if kind in ("asic", "all", "edge"):
        results += edge.predict(edge_cases("asic"))
    return results


def serving_report() -> list[tuple[str, str, int, float, float]]:
    """Out-of-source |error| of every serving measurement: (metric family, source, cases, median, p90), with one
    'all' row per family (workers/validation/serving.py)."""
    return serving.summary(serving.loso())


def render_serving(rows: list[tuple[str, str, int, float, float]] | None = None) -> str:
    """The per-metric, per-source table `chipsweep validate --summary` prints for inference: out of source, and in
    sample beside it (the full fit, every source seen), as README.md's serving table quotes them."""
    in_sample = {(fam, src): (med, p90) for fam, src, _n, med, p90 in serving.summary(serving.in_source())}
    rows = serving_report() if rows is None else rows
    lines = ["inference: |error| out of source (constants fitted without the measurement's own source) and in sample",
             f"{'metric':20s} {'source':26s} {'cases':>5s} {'median':>8s} {'p90':>8s} {'in-sample':>10s} {'p90':>8s}"]
    for fam, src, n, med, p90 in rows:
        med_in, p90_in = in_sample.get((fam, src), (float("nan"), float("nan")))
        lines.append(f"{fam:20s} {src:26s} {n:5d} {med * 100:7.1f}% {p90 * 100:7.1f}% {med_in * 100:9.1f}% {p90_in * 100:7.1f}%")
    total, at = serving.constants_at_bounds()
    keys = Counter(key for _e, _w, key, _v, _n in at)
    lines.append(f"fitted serving constants within 1 % of a bound: {len(at)} of {total} ("
                 + ", ".join(f"{k} {n}" for k, n in keys.most_common())
                 + "): barely determined by their runs, or absorbing time the model leaves unexplained")
    for engine, where, key, value, runs in sorted(at, key=lambda a: -a[4])[:8]:
        lines.append(f"  {engine:12s} {where:26s} {key:20s} {value:<10.4g} ({runs} runs)")
    return "\n".join(lines)


def fitted_cases() -> set[str]:
    """Case ids any calibration constant in the catalog was fitted on (training and edge); a constant's
    `fitted_on` names cases or whole sources."""
    cat = load_catalog()
    out: set[str] = set()
    sources: set[str] = set()
    for cset in cat.calibration.values():
        for const in cset.constants.values():
            out.update(_expand(const.fitted_on))
            sources.update(const.fitted_on)
    if sources:
        out.update(c.case_id for c in all_training_cases() if c.source in sources)
    for cl in cat.clusters.values():
        for text in cl.derived.values():
            if "fitted on" in text:
                out.update(_expand([w.strip(" ,.;") for w in text.split("fitted on", 1)[1].split()]))
    return out | edge_fitted_cases(cat)


def edge_fitted_cases(catalog: Catalog | None = None) -> set[str]:
    """Validation case ids any edge constant in asic.yaml was fitted on."""
    catalog = catalog or load_catalog()
    out: set[str] = set()
    for section in ("inference", "asic"):
        for item in (catalog.asic.get(section) or {}).values():
            if not isinstance(item, dict):
                continue
            consts = [item] if "value" in item else [c for c in item.values() if isinstance(c, dict)]
            for c in consts:
                out.update(str(v) for v in c.get("fitted_on") or [])
    return out


def _expand(names: Iterable[str]) -> set[str]:
    """Case ids, where `vtrain_single_even` style names stand for every even row of a vTrain file."""
    out: set[str] = set()
    for name in names:
        if name.startswith("vtrain_") and name.endswith(("_even", "_odd")):
            which = name.split("_")[1]
            parity = 0 if name.endswith("_even") else 1
            out.update(c.case_id for i, c in enumerate(vtrain_cases(which)) if i % 2 == parity)
        else:
            out.add(name)
    return out


def summary_table(results: list[Result], fitted: set[str]) -> list[tuple[str, int, float, float, int, float, float]]:
    """Per source: all cases (n, mean, max |error|) and the held-out ones (not fitted on)."""
    rows = []
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.case.source, []).append(r)
    for g, rs in sorted(groups.items()):
        e = np.array([abs(r.error) for r in rs])
        held = np.array([abs(r.error) for r in rs if r.case.case_id not in fitted])
        rows.append((
            g, len(rs), float(np.nanmean(e)), float(np.nanmax(e)), len(held),
            float(np.nanmean(held)) if len(held) else float("nan"), float(np.nanmax(held)) if len(held) else float("nan"),
        ))
    return rows


# ---------------------------------------------------------------------------------------------------------
# training: in-sample and out-of-source errors per source
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SourceRow:
    source: str
    runs: int  # primary cases (one per run)
    restated: int  # other metrics of the same runs (never counted as held out)
    fitted: bool  # the catalog's constants were fitted on this source
    in_median: float
    in_p90: float
    out_median: float  # from the fit that did not see this source (= in-sample where it was never fitted)
    out_p90: float
    memory_refused: int  # runs the memory model refuses (compared on speed all the same)


@dataclass
class TrainingReport:
    rows: list[SourceRow]
    overall: dict[str, float]  # headline statistics (2024-26 runs with a layout, out of source)
    families: dict[str, tuple[int, float, float]]  # chip family -> (runs, out-of-source median, p90)
    skipped: list[Skipped]
    results: list[Result]  # in-sample
    held: dict[str, Result]  # case id -> out-of-source
    # runs on chips whose datasheet figures conflict (catalog `quoted`): (at the lowest quoted values, at the highest)
    bracket: list[tuple[Result, Result]] = field(default_factory=list)
    unanswered: list[tuple[Result, str]] = field(default_factory=list)  # such runs with no answer even so, and why


def _stats(e: np.ndarray) -> tuple[float, float]:
    e = np.abs(e[np.isfinite(e)])
    return (float(np.median(e)), float(np.percentile(e, 90))) if len(e) else (float("nan"), float("nan"))


def training_report() -> TrainingReport:
    """Every training case predicted in-sample and out of source, summarised per source and chip family."""
    cases = all_training_cases()
    results = training.predict(cases)
    ctx = Context.build(load_catalog())
    held = held_out.out_of_source(ctx, [c for c in cases if not c.restates])
    fitted_sources = {s for cset in ctx.catalog.calibration.values() for c in cset.constants.values() for s in c.fitted_on}
    fams = {cid: ctx.catalog.chips[cid].training_family for cid in ctx.chips.ids}
    rows: list[SourceRow] = []
    by_source: dict[str, list[Result]] = {}
    for r in results:
        by_source.setdefault(r.case.source, []).append(r)
    refused = training.memory_refused(cases, ctx)
    for src, rs in sorted(by_source.items()):
        prim = [r for r in rs if not r.case.restates]
        e_in = np.array([r.error for r in prim])
        e_out = np.array([held[r.case.case_id].error if r.case.case_id in held else r.error for r in prim])
        rows.append(SourceRow(src, len(prim), len(rs) - len(prim), src in fitted_sources, *_stats(e_in), *_stats(e_out),
                              sum(1 for r in prim if r.case.case_id in refused)))
    headline = [r for r in results if not r.case.restates and r.case.year is not None and r.case.year >= 2024
                and r.case.has_layout and r.case.metric == "tokens_per_s"]
    e_head = np.array([held[r.case.case_id].error if r.case.case_id in held else r.error for r in headline])
    e_head_in = np.array([r.error for r in headline])
    med, p90 = _stats(e_head)
    med_in, p90_in = _stats(e_head_in)
    families: dict[str, list[float]] = {}
    for r in results:
        if r.case.restates or r.case.case_id not in held:
            continue
        chip = str(r.case.row.get("chip", ""))
        families.setdefault(fams.get(chip, "other"), []).append(held[r.case.case_id].error)
    fam_rows = {f: (len(v), *_stats(np.array(v))) for f, v in sorted(families.items())}
    overall = {"runs": float(len(headline)), "out_median": med, "out_p90": p90, "in_median": med_in, "in_p90": p90_in}
    bracket, unanswered = quoted_bracket(ctx, cases)
    return TrainingReport(rows, overall, fam_rows, runs2026_cases()[1], results, held,  # type: ignore[arg-type]
                          bracket, unanswered)


def gemm_checks(ctx: Context) -> list[tuple[str, str, float, str, float, str, str]]:
    """Per chip with a measured GEMM (`gemm_measured`), and per chip fitted on its own runs whose GPU revision was
    measured in another chip (the same NVIDIA compute capability, X.Y: the same tensor cores and the same vendor
    library, so the same reachable share of peak; the B200 HGX by the GB200's measurement): (chip, precision,
    measured fraction of peak, the matrix constant of that precision, its catalog value, its calibrated_on, the chip
    measured). A fitted asymptote above the share of peak the vendor's GEMM library reaches on large matrices is not
    physical: the model spends the difference elsewhere."""
    out = []
    measured = {c.compute_capability: c for c in ctx.catalog.chips.values()
                if c.compute_capability and c.gemm_fraction is not None}
    for i, cid in enumerate(ctx.chips.ids):
        chip = ctx.catalog.chips[cid]
        on = str(ctx.calibrated_on[0, i])
        by = chip if chip.gemm_measured is not None else measured.get(chip.compute_capability or "")
        if by is None or by.gemm_measured is None or by.gemm_fraction is None:
            continue
        if by is not chip and (chip.same_compute_as or on.startswith("extrapolated")):
            continue  # a chip without runs of its own: its constants are another's, checked there
        key = "mm_eff_max_fp8" if by.gemm_measured.precision == "fp8" else "mm_eff_max"
        out.append((cid, by.gemm_measured.precision, by.gemm_fraction, key, float(ctx.cal[key][0, i]), on, by.id))
    return out


def half_width_check(ctx: Context) -> tuple[float, list[tuple[str, str, float]]]:
    """The fitted narrow-GEMM half width (`mm_half_dim`, one constant for every chip) and, per chip whose measured
    GEMM includes a skinny shape (`gemm_measured.narrow`), the width at which its library runs at half its
    large-matrix rate: (fitted, [(chip, precision, measured width)]); `measured_range` gives their span."""
    at = ctx.chips.index()
    measured = [(cid, c.gemm_measured.precision, float(w)) for cid, c in sorted(ctx.catalog.chips.items())
                if c.gemm_measured is not None and (w := c.gemm_half_width) is not None and cid in at]
    return float(np.asarray(ctx.cal["mm_half_dim"]).reshape(-1)[0]), measured


def measured_range(measured: list[tuple[str, str, float]]) -> tuple[float, float]:
    """The lowest and highest measured half width of `half_width_check`."""
    widths = [w for *_, w in measured]
    return min(widths), max(widths)


def half_width_lines(ctx: Context) -> list[str]:
    fitted, measured = half_width_check(ctx)
    if not measured:
        return []
    lo, hi = measured_range(measured)
    flag = "within" if lo <= fitted <= hi else "BELOW" if fitted < lo else "ABOVE"
    lines = [f"narrow-GEMM half width (mm_half_dim, the narrowest side at which a GEMM runs at half its large-matrix "
             f"rate): fitted {fitted:.1f}, {flag} the {lo:.0f}-{hi:.0f} the vendor's library measures:"]
    lines += [f"  {cid:22s} {prec:4s} {w:6.1f}" for cid, prec, w in measured]
    return lines


def gemm_lines(ctx: Context) -> list[str]:
    lines = ["matrix efficiency against the measured GEMM (gemm_measured: the vendor library's best large-matrix "
             "share of peak, Azure AI-benchmarking-guide):"]
    for cid, prec, frac, key, value, on, by in gemm_checks(ctx):
        how = "extrapolated" if on.startswith("extrapolated") else "fitted"
        flag = "ABOVE the measurement" if value > frac else "within it"
        where = "" if by == cid else f" (measured on {by}, the same GPU revision)"
        lines.append(f"  {cid:22s} {prec:4s} GEMM {frac * 100:5.1f} % of peak{where}; {how} {key} {value * 100:5.1f} %: "
                     f"{flag}")
    return lines


def render_training(rep: TrainingReport) -> str:
    """The per-source table `chipsweep validate --summary` prints for training."""
    lines = [
        "training: |error| of tokens/s, step time or the source's own TFLOP/s, one case per run",
        f"{'source':28s} {'runs':>5s} {'fitted':>6s} {'in-sample med':>13s} {'p90':>7s}   {'out-of-source med':>17s} {'p90':>7s}"
        f" {'restated':>8s} {'mem-refused':>11s}",
    ]
    def pct(v: float, width: int) -> str:
        return f"{v * 100:{width}.1f}%" if np.isfinite(v) else f"{'-':>{width + 1}s}"

    for r in rep.rows:
        lines.append(f"{r.source:28s} {r.runs:5d} {'yes' if r.fitted else 'no':>6s} {pct(r.in_median, 12)} "
                     f"{pct(r.in_p90, 6)}   {pct(r.out_median, 16)} {pct(r.out_p90, 6)} {r.restated:8d} "
                     f"{r.memory_refused:11d}")
    o = rep.overall
    lines.append("")
    lines.append(f"2024-26 runs with a layout (tokens/s per chip): {int(o['runs'])} runs; out of source median "
                 f"{o['out_median'] * 100:.1f} %, p90 {o['out_p90'] * 100:.1f} %; in-sample median "
                 f"{o['in_median'] * 100:.1f} %, p90 {o['in_p90'] * 100:.1f} %")
    lines.append("out-of-source error per chip family (runs of sources the fit did not see):")
    for fam, (n, med, p90) in rep.families.items():
        lines.append(f"  {fam:20s} {n:5d} runs  median {med * 100:5.1f} %  p90 {p90 * 100:5.1f} %")
    lines += bracket_lines(rep.bracket, rep.unanswered)
    ctx = Context.build(load_catalog())  # one context for the GEMM check and the issue-13 reports below
    lines += gemm_lines(ctx)
    lines += half_width_lines(ctx)
    reasons = count_reasons(rep.skipped)
    if reasons:
        lines.append("published runs not modelled yet (training_runs_2026.csv):")
        for why, n in reasons.items():
            lines.append(f"  {n:4d}  {why}")
    # issue 13: MoE, context-parallel and NVFP4 runs, out of source, apart from the fits
    from chipsweep.workers.validation.moe import issue13_reports

    lines.append("issue 13 runs (training_runs_2026.csv: mixture of experts, context parallelism, nvfp4; out of source: the "
                 "dense constants and the MoE permute rate fitted without the run's source), |error|: source, runs, "
                 "median, p90")
    for report in issue13_reports(ctx):
        lines += ["  " + line for line in report.lines()]
    return "\n".join(lines)
