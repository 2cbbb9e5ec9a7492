"""Fit the training core's calibration constants on the published runs, per chip, family and framework, and
refit once per source without that source (leave-one-source-out) so `chipsweep validate` can say how well
the model predicts a publication it never saw.

    python -m chipsweep.workers.validation.calibrate            # fit, print in-sample and out-of-source errors
    python -m chipsweep.workers.validation.calibrate --write    # ... and write calibration.yaml and
                                                                 #     tests/validation/held_out_fits.json
    python -m chipsweep.workers.validation.calibrate --moe --write   # only the MoE stage, on the catalog's dense
                                                                     #     constants and their held-out fits
    python -m chipsweep.workers.validation.calibrate --edge     # print the fitted edge constants of asic.yaml

What is fitted, and where it applies (workers/context.py resolves the sets):
- per chip with published runs: `mm_eff_max` (and `mm_eff_max_fp8` where it has fp8 runs), one constant for a
  chip and the chips whose compute it is (`same_compute_as`: the A100 SXM 40GB's runs and the 80GB's fit one
  value, the B200's and the GB200's one share of each chip's own peak); a chip without runs takes that chip's
  value where it names one ("extrapolated from <chip> (same compute)"), else with a measured GEMM (`gemm_measured`) the measured fitted chips' values scaled by its share of
  peak, else the fitted chips of its core architecture (`compute_capability` major: the B300 the B200's and
  GB200's), else its calibration family's mean ("extrapolated from <family>"), else the measured fitted chips'
  values scaled by its family's measured share or the mean measured share (defaults.yaml `gemm_reach`);
- per calibration family (nvidia_gpu, google_tpu, ...): the collective efficiencies `up_eff`, `out_eff` and
  the per-message latencies of its links;
- per framework: `att_eff`, `overlap_eff`, `tp_overlap_eff`, `p2p_eff`, `dp_coll_eff` (where the framework's
  runs exercise them), and its kernels' `elem_traffic` and `layer_overhead_s` (fusion, launches); `dp_coll_eff`
  once for the DeepSpeed generations together (held_out.SHARED_FRAMEWORK_KEYS: one collective engine);
- for every chip: `mm_half_dim`, `mem_eff`;
- the MoE stage (`moe_stage`), after the dense fit and on the mixture-of-experts runs alone, the dense constants
  held: per framework whose MoE runs come from two or more sources, `moe_permute_eff` (the rate of the kernels
  that permute the token copies to their experts and back, over the element-wise kernels'); the other frameworks
  take the mean. Refitted once per MoE source without its runs, on that source's held-out dense constants.
Nothing is fitted per source or per cluster: a constant only one source could set would be that source's knob
(the vTrain node runs on its A100s' datasheet NVLink, like every other cluster).

The objective is the mean over sources of each source's mean |log(predicted / measured)| on the runs with a
published layout (one case per run: restated metrics are never fitted), plus a fixed prior (`prior`). Each
constant is searched through a logistic map of its physical bounds (calibration.yaml `bounds`), u =
log((v - low) / (high - v)) (on a log scale for bounds spanning decades), and the prior is PRIOR_WEIGHT times
squared distances in u:
- partial pooling: a chip's constant from the mean of its family's chips, a family's from the mean of the
  families, a framework's from the mean of the frameworks (what one framework's runs cannot see, it takes from
  the frameworks whose runs can: the extrapolation `calibrated_on` already names for chips without runs);
- each such mean, and every global constant, from the middle of the physical range (u = 0); u² ≤ 4 between
  12 % and 88 % of the range, and it grows without limit towards either bound, so a constant approaches a bound
  only where the runs pay for it.
The prior does not depend on earlier fits: refitting does not ratchet a constant towards a bound, and a
leave-one-source-out fit, which starts from the middle of every bound (`neutral_start`), cannot inherit a value
from the source it leaves out.
`check_bounds` reports any constant within 1 % of a bound. numpy only.

Edge (`fit_edge`): the edge-ASIC misc power density (least squares in log of the edge NPUs' published TOPS/W) and
GPU power factor (A100 / H100 TDP, closed form) of asic.yaml. The serving constants of catalog chips are fitted by workers/validation/serving.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chipsweep.schemas.catalog import CATALOG_DIR, Catalog, load_catalog, trusted_yaml
from chipsweep.schemas.vocab import FRAMEWORKS
from chipsweep.workers.context import Context, extrapolate_matrix
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.training_rows import search_training, training_inputs
from chipsweep.workers.validation import edge
from chipsweep.workers.validation.cases import (
    CASES_DIR,
    Case,
    all_training_cases,
    asic_cases,
    case_table,
    moe2026_cases,
)
from chipsweep.workers.validation.held_out import (
    SHARED_FRAMEWORK_KEYS,
    framework_codes,
    load_fits,
    parse,
    predict_with,
)
from chipsweep.workers.validation.held_out import apply as apply_values
from chipsweep.workers.validation.training import extract

HELD_OUT_PATH = CASES_DIR / "held_out_fits.json"
CHIP_KEYS = ("mm_eff_max", "mm_eff_max_fp8")
FAMILY_KEYS = ("up_eff", "out_eff", "up_latency_s", "out_latency_s")
FRAMEWORK_KEYS = ("att_eff", "overlap_eff", "tp_overlap_eff", "p2p_eff", "dp_coll_eff", "elem_traffic", "layer_overhead_s")
# DeepSpeed's measured penalties on NCCL: fitted for the deepspeed* frameworks only, 1.0 (NCCL's own) everywhere else
NCCL_SHARE_KEYS = ("p2p_eff", "dp_coll_eff")
GLOBAL_KEYS = ("mm_half_dim", "mem_eff")
FIT_METRICS = ("step_time_s", "tokens_per_s", "published_tflops_per_chip")
PRIOR_WEIGHT = 1e-4  # per constant, on u^2: 0.04 % of mean |log error| at u = 2, 0.2 % at 1 % from a bound
VTRAIN_SINGLE_STRIDE = 4  # every 4th vTrain single-node run enters the fit (1,440 runs of one source)
# coordinate-descent rounds of a leave-one-source-out fit from the middle of the bounds: from there 4 rounds reach a
# mean |log error| of 0.0697 on every source and 6 rounds 0.0683, where the catalog's fit (refined over many refits)
# has 0.0610, so the held-out errors carry some of the search's shortfall as well as the missing source
LOSO_ROUNDS = 6


@dataclass(frozen=True)
class Param:
    """One fitted constant: its calibration key and where it applies."""

    level: str  # global | family | chip | framework
    target: str  # "" | family | chip id | framework
    key: str

    @property
    def name(self) -> str:
        return f"{self.level}:{self.target}:{self.key}" if self.target else f"{self.level}:{self.key}"


def bounds_table() -> dict[str, tuple[float, float, str]]:
    raw = trusted_yaml((CATALOG_DIR / "calibration.yaml").read_text()).get("bounds") or {}
    return {k: (float(v["low"]), float(v["high"]), str(v["source"])) for k, v in raw.items()}


def _bound_key(p: Param) -> str:
    return p.key


def is_fit_case(c: Case) -> bool:
    """A run's one primary case with a published layout, compared on time or throughput."""
    if c.restates or c.metric not in FIT_METRICS or not c.has_layout:
        return False
    if c.source == "vtrain_single_node":
        return int(c.case_id.rsplit("_", 1)[1]) % VTRAIN_SINGLE_STRIDE == 0
    return True


@dataclass
class Problem:
    cases: list[Case]
    ctx: Context
    x: dict[str, np.ndarray]
    blank: dict[str, np.ndarray]
    chip_idx: np.ndarray
    base_cal: dict[str, np.ndarray]
    params: list[Param]
    rows_of: dict[str, np.ndarray] = field(default_factory=dict)  # param name -> rows it affects
    # chip matrix constant -> the rows whose matrix multiplies run at its precision: a chip lends the constant to chips
    # without runs only where some of them are fitted (`lends`); the 16-bit one reaches every row of its chip
    gemm_rows: dict[str, np.ndarray] = field(default_factory=dict)
    sources: np.ndarray = field(default_factory=lambda: np.array([]))
    bounds: dict[str, tuple[float, float, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, cases: list[Case] | None = None) -> Problem:
        cases = [c for c in (cases or all_training_cases()) if is_fit_case(c)]
        ctx = Context.build(load_catalog(use_env=False))
        errors = RowErrors(len(cases))
        x, blank, chip_idx = training_inputs(case_table(cases), ctx, errors)
        if errors:
            raise ValueError("; ".join(errors.messages()[:5]))
        base = {k: v.copy() for k, v in ctx.cal.items()}
        fw = np.nan_to_num(x["framework"], nan=0.0).astype(np.int64)
        # one chip-level constant for a chip and the chips whose compute it is (same_compute_as)
        chips = np.asarray([ctx.catalog.chips[c].calibration_chip for c in ctx.chips.ids])[chip_idx]
        families = np.asarray([ctx.catalog.chips[c].training_family for c in ctx.chips.ids])[chip_idx]
        fp8 = x["low_precision"] > 0
        params: list[Param] = [Param("global", "", k) for k in GLOBAL_KEYS]
        rows_of: dict[str, np.ndarray] = {p.name: np.arange(len(cases)) for p in params}
        gemm_rows: dict[str, np.ndarray] = {}
        for fam in sorted(set(families)):
            for k in FAMILY_KEYS:
                p = Param("family", fam, k)
                params.append(p)
                rows_of[p.name] = np.nonzero(families == fam)[0]
        for chip in sorted(set(chips)):
            for k in CHIP_KEYS:
                sel = (chips == chip) & (fp8 if k == "mm_eff_max_fp8" else ~fp8)
                if k == "mm_eff_max":
                    sel = chips == chip  # attention and 16-bit GEMMs of fp8 runs use it too
                if sel.any():
                    p = Param("chip", chip, k)
                    params.append(p)
                    rows_of[p.name] = np.nonzero(sel)[0]
                    gemm_rows[p.name] = np.nonzero((chips == chip) & (fp8 if k == "mm_eff_max_fp8" else ~fp8))[0]
        for code in sorted(set(fw.tolist())):
            name = FRAMEWORKS[code]
            for k in FRAMEWORK_KEYS:
                family = SHARED_FRAMEWORK_KEYS.get(k)
                if family is not None and name.startswith(family):  # one constant for the family's generations
                    p = Param("framework", family, k)
                    if p not in params:
                        params.append(p)
                        rows_of[p.name] = np.nonzero(np.isin(fw, framework_codes(family, k)))[0]
                    continue
                if k in NCCL_SHARE_KEYS and not name.startswith("deepspeed"):
                    continue  # NCCL's own efficiency (1.0) for every other framework: nothing to fit
                if k == "tp_overlap_eff" and name not in ("megatron_core_2025", "megatron", "maxtext", "fsdp2"):
                    continue
                if k == "overlap_eff" and name in ("megatron_2020", "megatron_2022", "deepspeed_2021"):
                    continue  # no overlap in those releases (defaults.yaml frameworks)
                p = Param("framework", name, k)
                params.append(p)
                rows_of[p.name] = np.nonzero(fw == code)[0]
        prob = cls(cases, ctx, x, blank, chip_idx, base, params, rows_of, gemm_rows,
                   np.asarray([c.source for c in cases]), bounds_table())
        return prob

    # ---- values <-> calibration arrays ----------------------------------------------------------
    def current_values(self, clip: bool = True) -> dict[str, float]:
        """The catalog's value of every fitted constant (`clip`: moved 2 % inside its bounds, to start a fit)."""
        out: dict[str, float] = {}
        for p in self.params:
            arr = self.base_cal[p.key]
            if p.level == "chip":
                out[p.name] = float(arr[0, self.ctx.chips.index()[p.target]])
            elif p.level == "framework":
                out[p.name] = float(arr[framework_codes(p.target, p.key)].mean())
            elif p.level == "family":
                idx = [i for i, c in enumerate(self.ctx.chips.ids) if self.ctx.catalog.chips[c].training_family == p.target]
                out[p.name] = float(arr[0, idx].mean())
            else:
                out[p.name] = float(np.median(arr))
        lo_hi = self.bounds
        if not clip:
            return out
        for p in self.params:  # start strictly inside the bounds (2 % of the searched scale)
            lo, hi, _ = lo_hi[_bound_key(p)]
            out[p.name] = _from_u(float(np.clip(_to_u(out[p.name], lo, hi), -3.9, 3.9)), lo, hi)
        return out

    def apply(self, values: dict[str, float]) -> dict[str, np.ndarray]:
        """Calibration arrays with the fitted constants among `values` set (held_out.apply: global, then family,
        chip, framework, most specific last)."""
        return apply_values(self.ctx, self.base_cal, {p.name: values[p.name] for p in self.params if p.name in values})

    def predict(self, values: dict[str, float], rows: np.ndarray | None = None) -> np.ndarray:
        """log(predicted / measured) of the fit cases (all, or `rows`)."""
        rows = np.arange(len(self.cases)) if rows is None else rows
        self.ctx.cal = self.apply(values)
        x = {k: v[rows] for k, v in self.x.items()}
        _, out = search_training(x, {k: v[rows] for k, v in self.blank.items()}, self.ctx, self.chip_idx[rows])
        res = extract([self.cases[i] for i in rows], out, x["n_chips"])
        pred = np.array([r.predicted for r in res])
        meas = np.array([r.case.measured for r in res])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(pred / meas)


def prior(problem: Problem, values: dict[str, float], params: list[Param] | None = None) -> float:
    """PRIOR_WEIGHT x Σ squared distances on the logistic map u of the bounds (module doc): chip constants from
    their family's mean, family and framework constants from their level's mean, each mean and every global
    constant from u = 0 (the middle of the range). Fixed: no earlier fit enters it."""
    params = params if params is not None else problem.params
    total = 0.0
    pooled: dict[str, list[float]] = {}
    for p in params:
        lo, hi, _ = problem.bounds[_bound_key(p)]
        u = _to_u(values[p.name], lo, hi)
        if p.level == "framework" or p.level == "family":
            pooled.setdefault(f"{p.level}:{p.key}", []).append(u)
        elif p.level == "chip":
            pooled.setdefault(f"chip:{problem.ctx.catalog.chips[p.target].training_family}:{p.key}", []).append(u)
        else:
            total += u * u
    for us in pooled.values():
        mean = float(np.mean(us))
        total += sum((u - mean) ** 2 for u in us) + mean * mean
    return PRIOR_WEIGHT * total


def objective(logerr: np.ndarray, sources: np.ndarray, keep: np.ndarray) -> float:
    """Mean over sources of the mean |log error| (a row the model refuses counts as a factor e error)."""
    e = np.where(np.isfinite(logerr), np.abs(logerr), 1.0)
    per = [e[keep & (sources == s)].mean() for s in np.unique(sources[keep])]
    return float(np.mean(per)) if per else 0.0


def _log_scale(lo: float, hi: float) -> bool:
    return lo > 0 and hi / lo > 20.0  # bounds spanning decades are searched on a log scale


def _to_u(v: float, lo: float, hi: float) -> float:
    if _log_scale(lo, hi):
        v, lo, hi = np.log(v), np.log(lo), np.log(hi)
    f = np.clip((v - lo) / (hi - lo), 1e-9, 1 - 1e-9)
    return float(np.log(f / (1 - f)))


def _from_u(u: float, lo: float, hi: float) -> float:
    if _log_scale(lo, hi):
        return float(np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) / (1.0 + np.exp(-u))))
    return float(lo + (hi - lo) / (1.0 + np.exp(-u)))


def fit(problem: Problem, start: dict[str, float], keep: np.ndarray, rounds: int = 4, step0: float = 1.0,
        log: bool = True) -> dict[str, float]:
    """Coordinate descent in the logistic space of each constant's bounds, on the rows `keep`."""
    values = dict(start)
    logerr = problem.predict(values)
    params = [p for p in problem.params if keep[problem.rows_of[p.name]].any()]

    def total(le: np.ndarray, vals: dict[str, float]) -> float:
        return objective(le, problem.sources, keep) + prior(problem, vals, params)

    best = total(logerr, values)
    step = {p.name: step0 for p in params}
    for r in range(rounds):
        for p in params:
            lo, hi, _ = problem.bounds[_bound_key(p)]
            rows = problem.rows_of[p.name]
            for direction in (1.0, -1.0):
                improved = True
                while improved:
                    improved = False
                    u = _to_u(values[p.name], lo, hi) + direction * step[p.name]
                    trial = {**values, p.name: _from_u(u, lo, hi)}
                    le = logerr.copy()
                    le[rows] = problem.predict(trial, rows)
                    t = total(le, trial)
                    if t < best - 1e-7:
                        values, logerr, best, improved = trial, le, t, True
            step[p.name] *= 0.5
        if log:
            print(f"round {r}: objective {best:.4f}", flush=True)
    return values


def lends(problem: Problem, p: Param, keep: np.ndarray) -> bool:
    """Whether chip constant `p` may be lent to chips of another core architecture: some of the rows `keep` run its
    matrix multiplies at its precision (the GB200's 16-bit efficiency, set only by the attention and output layer of
    its fp8 runs, fits them, and the B300's, the same kernels, but no chip by GEMM ratio or family mean)."""
    return bool(keep[problem.gemm_rows.get(p.name, problem.rows_of[p.name])].any())


def fill_unfitted(problem: Problem, values: dict[str, float], keep: np.ndarray) -> dict[str, float]:
    """Constants the fit rows do not reach take what the catalog gives a chip, family or framework without runs
    (`write`): a chip the value the catalog's own rule gives it (workers/context.py `extrapolate_matrix`, the
    extrapolation `calibrated_on` names), else the mean of every fitted chip; a family or framework the mean of the
    fitted ones at its level (a framework's DeepSpeed-only collective
    efficiencies NCCL's own, 1.0). So a fit without a source never keeps a value that source gave it."""
    out = dict(values)
    for level in ("family", "framework"):
        reached = [p for p in problem.params if p.level == level and keep[problem.rows_of[p.name]].any()]
        for p in problem.params:
            if p.level != level or p in reached:
                continue
            pool = [values[q.name] for q in reached if q.key == p.key]
            if level == "framework" and p.key in NCCL_SHARE_KEYS:
                out[p.name] = 1.0
            elif pool:
                out[p.name] = float(np.mean(pool))
    chips = problem.ctx.catalog.chips
    reach = problem.ctx.defaults.get("gemm_reach")
    for key in CHIP_KEYS:
        fitted = [p for p in problem.params if p.level == "chip" and p.key == key and keep[problem.rows_of[p.name]].any()]
        for p in problem.params:
            if p.level != "chip" or p.key != key or p in fitted:
                continue
            own = chips[p.target]
            donors = [(chips[q.target], values[q.name]) for q in fitted if lends(problem, q, keep)]
            unlent = [(chips[q.target], values[q.name]) for q in fitted if not lends(problem, q, keep)]
            same = [v for c, v in donors if c.training_family == own.training_family]
            family_mean = float(np.exp(np.mean(np.log(same)))) if same else None  # what `write` puts in its family set
            got = extrapolate_matrix(own, donors, family_mean, reach, chips.values(), unlent=unlent)
            if got is not None:
                out[p.name] = got[0]
            elif donors:
                out[p.name] = float(np.exp(np.mean(np.log([v for _, v in donors]))))
    return out


def check_bounds(problem: Problem, values: dict[str, float], tol: float = 0.01) -> list[str]:
    """Constants within `tol` of the width of their bounds from one of them."""
    out = []
    for p in problem.params:
        lo, hi, _ = problem.bounds[_bound_key(p)]
        v = values[p.name]
        f = (np.log(v / lo) / np.log(hi / lo)) if _log_scale(lo, hi) else (v - lo) / (hi - lo)  # on the searched scale
        if min(f, 1.0 - f) < tol:
            out.append(f"{p.name} = {v:.4g} (bounds {lo:g}..{hi:g})")
    return out


def neutral_start(problem: Problem) -> dict[str, float]:
    """Every constant in the middle of its bounds (u = 0 on the searched scale): a start no source has set."""
    out: dict[str, float] = {}
    for p in problem.params:
        lo, hi, _ = problem.bounds[_bound_key(p)]
        out[p.name] = _from_u(0.0, lo, hi)
    return out


def leave_one_source_out(problem: Problem, rounds: int = LOSO_ROUNDS) -> dict[str, dict[str, float]]:
    """Per source: the constants fitted on every other source, from a start no source has set (`neutral_start`).
    Started from the full fit instead, a constant the other sources barely determine keeps the value the left-out
    source gave it, and the source is predicted partly by itself."""
    out: dict[str, dict[str, float]] = {}
    neutral = neutral_start(problem)
    for src in sorted(set(problem.sources.tolist())):
        keep = problem.sources != src
        start = fill_unfitted(problem, neutral, keep)
        print(f"-- without {src}", flush=True)
        vals = fit(problem, start, keep, rounds=rounds, step0=1.0, log=False)
        out[src] = fill_unfitted(problem, vals, keep)
    return out


# ---- the MoE stage: what only mixture-of-experts runs show, fitted after the dense constants ---------------
MOE_KEY = "moe_permute_eff"  # a fixed cost per MoE layer pass fitted jointly with it went to ~0 (docs/accuracy.md)


@dataclass
class MoeFit:
    values: dict[str, float]  # `level:target:key` -> value (a framework's, and `global:` the default of the others)
    sources: dict[str, list[str]]  # framework -> the sources whose MoE runs fitted it


def moe_frameworks(cases: list[Case]) -> list[str]:
    """Frameworks whose MoE runs come from two or more sources: runs of one source alone would make the constant
    that source's knob (its leave-one-source-out fit would have nothing to stand on)."""
    by: dict[str, set[str]] = {}
    for c in cases:
        by.setdefault(str(c.row["framework"]), set()).add(c.source)
    return sorted(fw for fw, srcs in by.items() if len(srcs) >= 2)


def fit_moe(ctx: Context, dense: dict[str, float], cases: list[Case], frameworks: list[str]) -> MoeFit:
    """`moe_permute_eff` of each of `frameworks` on its MoE runs among `cases`, the dense constants `dense` (on top
    of the catalog's) held fixed: a grid, then a finer one, over the logistic map of its bounds, on the objective
    and prior of the dense fit. Frameworks without MoE runs take the mean (`global:`)."""
    lo, hi, _ = bounds_table()[MOE_KEY]
    values: dict[str, float] = {}
    sources: dict[str, list[str]] = {}
    for fw in frameworks:
        group = [c for c in cases if str(c.row["framework"]) == fw]
        if not group:
            continue
        src = np.asarray([c.source for c in group])
        name = f"framework:{fw}:{MOE_KEY}"

        def total(u: float, group: list[Case] = group, src: np.ndarray = src, name: str = name) -> float:
            res = predict_with(ctx, {**dense, name: _from_u(u, lo, hi)}, group)
            with np.errstate(invalid="ignore", divide="ignore"):
                le = np.log(np.array([r.predicted / r.case.measured for r in res]))
            return objective(le, src, np.ones(len(group), dtype=bool)) + PRIOR_WEIGHT * u * u

        grid = np.linspace(-4.0, 4.0, 17)
        u0 = float(grid[int(np.argmin([total(u) for u in grid]))])
        fine = u0 + np.linspace(-0.5, 0.5, 11)
        values[name] = _from_u(float(fine[int(np.argmin([total(u) for u in fine]))]), lo, hi)
        sources[fw] = sorted(set(src.tolist()))
    if values:
        values[f"global:{MOE_KEY}"] = float(np.mean(list(values.values())))
    return MoeFit(values, sources)


def moe_fit_cases(catalog: Catalog) -> list[Case]:
    """The MoE runs the permute rate is fitted on: a source's known regression is never fitted, nor a row restating
    another case's run (fitted once, as that case), nor a run that publishes no layout (answered with the layout
    search, as the dense runs without one)."""
    return [c for c in moe2026_cases(catalog=catalog)[0] if not c.regressed and not c.restates and c.has_layout]


def moe_stage(ctx: Context, held: dict[str, dict[str, float]] | None) -> MoeFit:
    """The MoE constant fitted on every MoE run (the catalog's), and, into `held`, once per MoE source without
    that source's runs on the constants fitted without it (its out-of-source prediction)."""
    cases = moe_fit_cases(ctx.catalog)
    frameworks = moe_frameworks(cases)
    full = fit_moe(ctx, {}, cases, frameworks)
    for name, v in full.values.items():
        print(f"  {name} = {v:.6g}  (MoE runs of {', '.join(sum(full.sources.values(), []))})")
    if held is None:
        return full
    for src in sorted({c.source for c in cases}):
        dense = {k: v for k, v in held.get(src, {}).items() if parse(k)[2] != MOE_KEY}
        part = fit_moe(ctx, dense, [c for c in cases if c.source != src], frameworks)
        held[src] = {**dense, **part.values}
        print(f"  without {src}: " + ", ".join(f"{k} = {v:.6g}" for k, v in part.values.items()))
    return full


def report(problem: Problem, values: dict[str, float]) -> None:
    le = problem.predict(values)
    print(f"{'source':28s} {'n':>5s} {'median':>8s} {'p90':>8s}")
    for s in sorted(set(problem.sources.tolist())):
        e = np.abs(np.expm1(le[problem.sources == s]))
        print(f"{s:28s} {len(e):5d} {np.nanmedian(e) * 100:7.1f}% {np.nanpercentile(e, 90) * 100:7.1f}%")


def write(problem: Problem, values: dict[str, float], held_out: dict[str, dict[str, float]] | None,
          moe: MoeFit) -> None:
    """calibration.yaml (every set rewritten, the bounds kept) and the leave-one-source-out constants in
    tests/validation/held_out_fits.json."""
    path = CATALOG_DIR / "calibration.yaml"
    text = path.read_text()
    head = text[: text.index("calibration:\n")]
    tail = text[text.index("\n# Physical bounds"):]
    base = problem.base_cal
    values = fill_unfitted(problem, values, np.ones(len(problem.cases), dtype=bool))

    def sources(p: Param) -> list[str]:
        return sorted(set(problem.sources[problem.rows_of[p.name]].tolist()))

    def const(v: float, src: list[str], how: str = "fitted by workers/validation/calibrate.py", lends: bool = True) -> str:
        kept = "" if lends else ", lends: false"  # a constant no chip of another architecture borrows
        return f"{{value: {v:.6g}, source: \"{how}\", fitted_on: [{', '.join(src)}]{kept}}}"

    lines = ["calibration:", "  default:", "    constants:"]
    glob = {p.key: p for p in problem.params if p.level == "global"}
    fixed_keys = [k for k in base if k not in (*CHIP_KEYS, *FAMILY_KEYS, *FRAMEWORK_KEYS, *GLOBAL_KEYS)]
    del fixed_keys  # defaults.yaml keeps those (pue, prices, ...)
    chip_params = [p for p in problem.params if p.level == "chip"]
    for key in GLOBAL_KEYS:
        lines.append(f"      {key}: {const(values[glob[key].name], sources(glob[key]))}")
    every = np.ones(len(problem.cases), dtype=bool)
    lent = [p for p in chip_params if lends(problem, p, every)]
    for key in CHIP_KEYS:
        pool = [values[p.name] for p in lent if p.key == key]
        mean = float(np.exp(np.mean(np.log(pool)))) if pool else float(np.median(base[key]))
        lines.append(f"      {key}: {const(mean, [], 'mean of the chips fitted on their own runs (chips without runs use it)')}")
    for key in FAMILY_KEYS:
        pool = [values[p.name] for p in problem.params if p.level == "family" and p.key == key]
        lines.append(f"      {key}: {const(float(np.mean(pool)), [], 'mean of the fitted families (families without runs use it)')}")
    fw_params = [p for p in problem.params if p.level == "framework"]
    for key in FRAMEWORK_KEYS:
        if key in NCCL_SHARE_KEYS:
            lines.append(f"      {key}: {{value: 1.0, source: \"not fitted: NCCL's own efficiency (up_eff / out_eff) for frameworks without a measured penalty\", fitted_on: []}}")
            continue
        pool = [values[p.name] for p in fw_params if p.key == key]
        lines.append(f"      {key}: {const(float(np.mean(pool)) if pool else float(np.median(base[key])), [], 'mean of the fitted frameworks')}")
    lines.append(f"      {MOE_KEY}: {const(moe.values[f'global:{MOE_KEY}'], [], 'mean of the fitted frameworks')}")
    fams = sorted({p.target for p in problem.params if p.level == "family"})
    for fam in fams:
        lines += [f"  family_{fam}:", f"    applies_to: [{fam}]", "    constants:"]
        for p in problem.params:
            if p.level == "family" and p.target == fam:
                lines.append(f"      {p.key}: {const(values[p.name], sources(p))}")
        for key in CHIP_KEYS:
            pool = [values[q.name] for q in lent if q.key == key
                    and problem.ctx.catalog.chips[q.target].training_family == fam]
            if pool:
                mean = float(np.exp(np.mean(np.log(pool))))
                lines.append(f"      {key}: {const(mean, [], f'mean of the {fam} chips fitted on their own runs')}")
    ran = set(np.asarray(problem.ctx.chips.ids)[problem.chip_idx].tolist())
    for chip in sorted({p.target for p in chip_params}):
        twins = sorted(c for c in ran if c != chip and problem.ctx.catalog.chips[c].calibration_chip == chip)
        lines += [f"  chip_{chip}:", f"    applies_to: [{', '.join([chip, *twins])}]", "    constants:"]
        for p in chip_params:
            if p.target == chip:
                lines.append(f"      {p.key}: {const(values[p.name], sources(p), lends=p in lent)}")
    for fw in sorted({p.target for p in fw_params}):
        lines += [f"  framework_{fw}:", f"    frameworks: [{fw}{', megatron' if fw == 'megatron_core_2025' else ''}]",
                  "    constants:"]
        for p in fw_params:  # a family's shared constant is written under each of its generations
            if FRAMEWORKS.index(fw) in framework_codes(p.target, p.key):
                lines.append(f"      {p.key}: {const(values[p.name], sources(p))}")
        if fw in moe.sources:
            lines.append(f"      {MOE_KEY}: {const(moe.values[f'framework:{fw}:{MOE_KEY}'], moe.sources[fw])}")
    path.write_text(head + "\n".join(lines) + "\n" + tail)
    if held_out is not None:
        HELD_OUT_PATH.write_text(json.dumps({
            "note": "per validation source: the constants fitted on every other source (calibrate.py); "
                    "`chipsweep validate` predicts each source with its own set",
            "fits": {s: {k: float(v) for k, v in vals.items()} for s, vals in held_out.items()},
        }, indent=1, sort_keys=True) + "\n")


def fit_edge(catalog: Catalog | None = None) -> dict[str, float]:
    """Re-derive the fitted edge-ASIC constant of asic.yaml from its cases (printed by `--edge`, to copy into
    schemas/catalog/asic.yaml). The serving constants of catalog chips are fitted by
    `python -m chipsweep.workers.validation.serving --fit` (asic.yaml `serving`)."""
    catalog = catalog or load_catalog()
    # the misc block's power density (a share of the MAC array's): least squares in log of the edge NPUs' published
    # TOPS/W, a golden-section search over the constant's range (the loss is smooth and has one minimum there)
    npus = [c for c in asic_cases(catalog) if c.source == "asic_edge_tops_per_w"]
    lo, hi = (float(b) for b in catalog.asic["asic"]["misc_power_density_ratio"]["range"])

    def with_ratio(r: float) -> Catalog:
        c = copy.deepcopy(catalog)
        c.asic["asic"]["misc_power_density_ratio"]["value"] = r
        return c

    # TOPS/W is the peak over the full-load power, which is linear in the share (the misc power is, and leakage and
    # the GPU factor scale the sum): the designs evaluated at 0 and 1 give every value between
    measured = np.array([c.measured for c in npus])
    inv0, inv1 = (1.0 / np.array([res.predicted for res in edge.predict(npus, with_ratio(r))]) for r in (0.0, 1.0))

    def loss(r: float) -> float:
        return float(np.mean(np.log(1.0 / (inv0 + r * (inv1 - inv0)) / measured) ** 2))

    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    while b - a > 1e-4:
        c1, c2 = b - g * (b - a), a + g * (b - a)
        a, b = (a, c2) if loss(c1) <= loss(c2) else (c1, b)
    ratio = round((a + b) / 2.0, 3)
    # GPU power factor: TDP / the NPU model's full-load power, geometric mean over A100 and H100
    gpu = [_with(c, {"arch": "npu"}) for c in asic_cases(catalog) if c.source == "asic_fit_gpu_power"]
    f = np.array([res.case.measured / res.predicted for res in edge.predict(gpu, with_ratio(ratio))])
    return {"asic.misc_power_density_ratio": ratio, "asic.gpu_power_factor": float(np.exp(np.log(f).mean()))}


def _with(c: Case, extra: dict[str, object]) -> Case:
    """The case with `extra` cells set in its row."""
    return Case(c.case_id, c.source, {**c.row, **extra}, c.metric, c.measured, c.scale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the fitted values into the catalog")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--loso-rounds", type=int, default=LOSO_ROUNDS)
    parser.add_argument("--no-loso", action="store_true", help="skip the leave-one-source-out fits")
    parser.add_argument("--report", action="store_true", help="only report errors with the current catalog")
    parser.add_argument("--edge", action="store_true", help="print the fitted edge constants")
    parser.add_argument("--moe", action="store_true",
                        help="only the MoE stage, on the catalog's dense constants and their held-out fits")
    args = parser.parse_args()
    if args.edge:
        for k, v in fit_edge().items():
            print(f"  {k} = {v:.6g}")
        return 0
    problem = Problem.build()
    start = problem.current_values()
    if args.report:
        report(problem, start)
        return 0
    if args.moe:
        held_now = load_fits()
        moe = moe_stage(problem.ctx, held_now)
        if args.write:
            write(problem, problem.current_values(clip=False), held_now, moe)
            print(f"written to {Path(CATALOG_DIR)} and {HELD_OUT_PATH}")
        return 0
    keep = np.ones(len(problem.cases), dtype=bool)
    values = fit(problem, start, keep, rounds=args.rounds)
    values = fill_unfitted(problem, values, keep)
    report(problem, values)
    for line in check_bounds(problem, values):
        print("AT A BOUND:", line)
    held = None if args.no_loso else leave_one_source_out(problem, args.loso_rounds)
    problem.ctx.cal = problem.apply(fill_unfitted(problem, values, keep))
    moe = moe_stage(problem.ctx, held)
    if args.write:
        write(problem, values, held, moe)
        print(f"written to {Path(CATALOG_DIR)} and {HELD_OUT_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
