"""Mixture-of-experts training runs (issue 13): the MoE rows of training_runs_2026.csv predicted out of source,
each by the calibration fitted without its source (tests/validation/held_out_fits.json, as issue 12 reports the
dense runs). The dense constants never see an MoE run; one constant only MoE runs show, the rate of the kernels
that permute the token copies to their experts and back (`moe_permute_eff`, calibrate.py's MoE stage), is fitted
on them, and for each source without that source's runs, so every prediction here is out of source."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from chipsweep.workers.context import Context
from chipsweep.workers.validation.bracket import Bracket, bracket_lines, quoted_bracket
from chipsweep.workers.validation.cases import (
    Case,
    Result,
    Skipped,
    count_reasons,
    moe2026_cases,
    runs2026_cases,
)
from chipsweep.workers.validation.held_out import load_fits, predict_with
from chipsweep.workers.validation.training import memory_refused


@dataclass
class MoeReport:
    results: list[Result]  # every case, predicted by the fit that did not see its source
    skipped: list[Skipped]
    label: str = "moe"
    refused: set[str] = field(default_factory=set)  # case ids the memory model refuses though the run ran
    bracket: Bracket = field(default_factory=lambda: ([], []))  # runs on chips with conflicting figures (`quoted`)

    def counted(self) -> list[Result]:
        """The results the statistics count: every run but those their source or its maintainers call a regression of
        their release, those that restate another case's run (shown, never counted twice) and those that publish no
        layout (answered with the layout search, shown apart, as issue 12's headline counts runs with a layout)."""
        return [r for r in self.results if not r.case.regressed and not r.case.restates and r.case.has_layout]

    def errors(self, source: str | None = None) -> np.ndarray:
        e = np.asarray([abs(r.error) for r in self.counted() if source is None or r.case.source == source],
                       dtype=np.float64)
        return np.asarray(e[np.isfinite(e)])

    def summary(self) -> dict[str, float]:
        e = self.errors()
        return {"runs": float(len(e)), "median": float(np.median(e)) if len(e) else np.nan,
                "p90": float(np.percentile(e, 90)) if len(e) else np.nan}

    def floor(self) -> dict[str, float]:
        """What the data itself allows: the runs published for one input row (successive releases of one layout)
        answered by one value, the median of their measurements, which minimises their summed |log error|: a model,
        which gives one answer per input, cannot beat that sum. Returns the median and p90 that value leaves."""
        groups: dict[str, list[float]] = {}
        for r in self.counted():
            groups.setdefault(json.dumps(r.case.row, sort_keys=True, default=str), []).append(r.case.measured)
        e = np.concatenate([np.abs(np.median(m) - np.asarray(m)) / np.asarray(m) for m in groups.values()])
        return {"inputs": float(len(groups)), "runs": float(len(e)), "median": float(np.median(e)),
                "p90": float(np.percentile(e, 90))}

    def lines(self) -> list[str]:
        out = []
        for src in sorted({r.case.source for r in self.counted()}):
            e = self.errors(src)
            if len(e):
                n_ref = sum(r.case.case_id in self.refused for r in self.counted() if r.case.source == src)
                out.append(f"{self.label:4s} tokens/s per chip  {src:24s} {len(e):4d}  {np.median(e):6.1%}  "
                           f"{np.percentile(e, 90):6.1%}" + (f"  ({n_ref} the memory model refuses)" if n_ref else ""))
        s = self.summary()
        out.append(f"{self.label:4s} tokens/s per chip  {'all (out of source)':24s} {int(s['runs']):4d}  {s['median']:6.1%}  "
                   f"{s['p90']:6.1%}")
        for r in self.results:
            if r.case.restates and not r.case.regressed:
                out.append(f"{self.label:4s} restates {r.case.restates} (the same run, not counted twice): "
                           f"{r.case.case_id} {r.error:+.1%}")
            if r.case.regressed:
                out.append(f"{self.label:4s} apart (a regression of its release, by its source or its maintainers): "
                           f"{r.case.case_id} {r.error:+.1%}: '{r.case.regressed}'")
            if not r.case.has_layout and np.isfinite(r.error):
                out.append(f"{self.label:4s} apart ({r.case.notes}): {r.case.case_id} {r.error:+.1%}")
        out += [f"{self.label:4s} {line.strip()}" for line in bracket_lines(*self.bracket)]
        for why, n in count_reasons(self.skipped).items():  # this set's runs without an answer, and why
            if "reported apart" not in why:  # the other sets' own runs, answered there
                out.append(f"{self.label:4s} not modelled yet: {n:3d}  {why}")
        f = self.floor()
        if f["inputs"] < f["runs"]:
            out.append(f"{self.label:4s} floor: {int(f['runs'])} runs publish {int(f['inputs'])} distinct inputs; one value per "
                       f"input (the median of its runs) leaves median {f['median']:.1%}, p90 {f['p90']:.1%}")
        return out


def _out_of_source(ctx: Context, cases: list[Case]) -> list[Result]:
    fits = load_fits()
    results: list[Result] = []
    for src in sorted({c.source for c in cases}):
        group = [c for c in cases if c.source == src]
        results += predict_with(ctx, fits.get(src, {}), group)  # a source never fitted: the catalog's constants
    return results


def moe_report(ctx: Context) -> MoeReport:
    """The MoE runs (context-parallel ones included), out of source; those on a chip whose published figures
    conflict also at both ends of the quoted range (`quoted_bracket`)."""
    cases, skipped = moe2026_cases(catalog=ctx.catalog)
    return MoeReport(_out_of_source(ctx, cases), skipped, "moe", memory_refused(cases, ctx), quoted_bracket(ctx, cases))


def fp4_report(ctx: Context) -> MoeReport:
    """The dense NVFP4 runs, out of source (the fp4 GEMMs at the fitted fp8 fraction of their peak)."""
    cases, skipped = runs2026_cases(catalog=ctx.catalog, only_fp4=True)
    return MoeReport(_out_of_source(ctx, cases), skipped, "fp4", memory_refused(cases, ctx))


def int8_report(ctx: Context) -> MoeReport:
    """The dense int8 (AQT) runs, out of source (the integer GEMMs at the low-precision GEMM efficiency the fits give
    the chip, at its int8 peak)."""
    cases, skipped = runs2026_cases(catalog=ctx.catalog, only_int8=True)
    return MoeReport(_out_of_source(ctx, cases), skipped, "int8", memory_refused(cases, ctx))


def cp_report(ctx: Context) -> MoeReport:
    """The dense runs with context parallelism, out of source."""
    cases, skipped = runs2026_cases(catalog=ctx.catalog, only_cp=True)
    return MoeReport(_out_of_source(ctx, cases), skipped, "cp", memory_refused(cases, ctx))


def issue13_reports(ctx: Context) -> list[MoeReport]:
    """The mixture-of-experts, context-parallel, NVFP4 and int8 reports, in the order `validate` prints them."""
    return [moe_report(ctx), cp_report(ctx), fp4_report(ctx), int8_report(ctx)]
