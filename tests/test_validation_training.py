"""Accuracy of the training core against published runs (tests/validation/, sources per row), as
`chipsweep validate` reports it: in-sample (the catalog's constants, fitted on every source) and out of
source (each source predicted by the constants fitted without it, tests/validation/held_out_fits.json,
written by workers/validation/calibrate.py). Restated metrics of a run (MFU of a fitted iteration time, % of
peak of achieved TFLOP/s) never count as held out: one case per run is scored.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.workers.validation import training_report
from chipsweep.workers.validation.bracket import ASSUMED_BF16, bracket_lines
from chipsweep.workers.validation.calibrate import Problem, check_bounds
from chipsweep.workers.validation.held_out import load_fits

# sources whose out-of-source median misses 20 %, each with its reason (issue 12 asks misses to be reported).
# It was hidden while each leave-one-source-out fit started from the full fit and kept, for the constants only the
# left-out source reaches, the values that source gave them (calibrate.fill_unfitted now resets those), and, until
# 2026-12-03 (a fourth session), for the constants the other sources barely determine, values the left-out source
# had moved them to (each held-out fit now starts from the middle of every bound, calibrate.neutral_start).
# Trainium1 (neuron_trn1, the one aws_npu chip with runs) held out: its chip family and framework take the means of
# the fitted families' and frameworks' constants, so its figure moves with every other source's held-out fit. Out of
# source median: 13.9 % while held-out fits started from the full fit; 22.6 % once they started from the middle of the
# bounds (2026-12-03); 27.5 % with the GB200 Megatron-FSDP rows offloading over a 225 GB/s host link and 19.2 % over
# the 197 GB/s Azure measures (2026-12-04, the catalog's); with 12 search rounds instead of 6 the same data give
# 26.6 %; 19.3 % once ZeRO-3 hid each pass's collectives behind that pass (2026-12-05), and 25.3 % (p90 36.8 %) once
# fp8 runs' saved GEMM inputs took the one byte Transformer Engine keeps them in (the same day): the NVIDIA family's
# refitted scale-out latency went from 171 to 230 us, and the held-out Trainium1 takes the families' mean (119 ->
# 150 us) for its many-node runs. No published NeuronLink collective benchmark is in the catalog to set its link.
KNOWN_MISSES: dict[str, str] = {
    "neuron_trn1": "held out, its family and framework take the other fits' means (25.1 % median since the root unit's review fixes, 2026-12-07, a thirtieth session; 24.6 % once the layout search took interleave 8 and the refit after it, the same session; 25.5 % once the optimizer step moved its shard's bytes, the same session; 25.9 % since the training-core audit's fixes, the twenty-ninth; 24.9 % once the B200 and GB200 shared one set, the same day; 24.5 % before, 23.7 % before the loss cost its traffic, 2026-12-06)",
}
# the issue-12 bound on every 2024-26 run: met since 2026-12-03 (a fourth session), 7.9 % / 21.9 % out of source since
# the GB200 Megatron-FSDP rows offload activations as their presets do (2026-12-04), 8.8 % / 23.4 % before, once
# Megatron-Bridge's dense Llama rows reduce gradients in 16 bits as its performance scripts set (9.7 % / 31.0 %) and
# each held-out fit starts from the middle of the bounds instead of the full fit (llm-foundry, the only FSDP source,
# 10.6 % / 33.7 % -> 7.4 % / 22.3 %: its 16k-64k-token runs, held out, go from 30-55 % fast to 20-33 % fast). Before: 11.0 % / 31.8 % (30.4 % until the memory model read the 85.5 GB an
# '80 GB' H100 exposes), 10.4 % / 30.4 % with MaxText rows sharded over their slice, 11.2 % / 31.5 % before
# Trainium's held-out matrix efficiency came from the measured GEMM share, 11.4 % / 31.6 % before all-gathers stopped
# taking NVLink SHARP's all-reduce halving (2026-12-02).


@pytest.fixture(scope="module")
def rep():  # type: ignore[no-untyped-def]
    return training_report()


def test_out_of_source_median_on_2024_26_runs_with_a_layout_is_within_12pct(rep):
    o = rep.overall
    assert o["runs"] >= 300 and o["out_median"] <= 0.12, o


@pytest.mark.xfail(strict=True, reason=(
    "issue 12 miss, reported by `chipsweep validate --bounds` (2026-12-07, a thirtieth session): 30.04 % p90 (median "
    "9.9 %) over the 345 runs, missed by 0.04 points, after ZeRO-3's root unit took FSDP's whole root and a head re-gathered "
    "where a framework keeps none (31.0 % once the layout search took interleave 8 too and the dense constants were "
    "refitted to a fixed point: in sample 4.1 % / 12.8 % -> 4.0 % / 12.4 %; llm-foundry's 216 runs, held out, 28.8 % -> "
    "31.9 % p90, their FSDP constants the other frameworks' means, which the refit moved). 28.7 % (met) in the fit before, once the "
    "optimizer step moved its shard's bytes and ZeRO-3 paid its root unit; 30.5 % after the training-core audit: the "
    "held-out fits move by 2-3 points of p90 with small changes elsewhere, so the figure sits on the bound"))
def test_out_of_source_p90_on_2024_26_runs_with_a_layout_is_within_30pct(rep):
    o = rep.overall
    assert o["runs"] >= 300 and o["out_p90"] <= 0.30, o


def test_out_of_source_error_on_2024_26_runs_holds_its_measured_level(rep):
    """The level the p90 stands at (30.0 %, median 9.9 %, since the root unit's review fixes, 2026-12-07, a thirtieth
    session; 31.0 %, median 10.1 %, once the layout search took interleave 8 too and the refit that followed, the same
    session; 28.7 %, median 10.0 %, once the optimizer step moved its shard's
    bytes and ZeRO-3 paid its root unit, the same session; 30.5 %, median 10.9 %, since the training-core audit's fixes,
    the twenty-ninth session; 31.3 %, median 11.4 %, once the B200 and GB200 shared one set of matrix constants, the same
    day; 30.6 %, median 11.5 %, since the loss over the logits costs its memory traffic and
    llm-foundry's fused cross entropy keeps no fp32 copy, 2026-12-06, a twenty-sixth session; 31.2 % / 11.3 % since tpu-recipes' Gemma 3 12B runs took their catalog
    model's heads and windows, a twenty-third session: llm-foundry's held-out fit moved through the frameworks' pooled
    means; 25.3 % / 8.7 % before, 26.3 %, median 9.6 %, since AWS Neuron's six GPT3-23B/46B runs joined the fit,
    2026-12-04, a seventh session; 24.1 % / 8.7 % before them, 21.9 % / 7.9 % earlier that day, 23.4 % / 8.8 %
    2026-12-03), so a change that worsens it fails. The bound keeps room for the held-out search's noise (those six
    runs moved llm-foundry's held-out fit, through the frameworks' pooled means, from 24.2 % to 27.2 % p90; 12 search
    rounds instead of 6 moved the figure by 1.8 points before)."""
    o = rep.overall
    assert o["runs"] >= 300 and o["out_p90"] <= 0.32 and o["out_median"] <= 0.12, o
    assert o["in_median"] <= 0.06 and o["in_p90"] <= 0.18, o


def test_every_source_out_of_source_median_within_20pct_except_the_reported_misses(rep):
    for row in rep.rows:
        if row.runs == 0 or not np.isfinite(row.out_median) or row.source in KNOWN_MISSES:
            continue
        assert row.out_median <= 0.20, (row.source, row.out_median)


def test_restated_metrics_are_never_scored_as_runs(rep):
    by = {r.source: r for r in rep.rows}
    assert by["korthikanti22_utilisation"].runs == 0 and by["korthikanti22_utilisation"].restated == 10
    assert by["narayanan21_table1"].runs == 10 and by["narayanan21_table1"].restated == 20
    assert by["mtnlg"].runs == 3


def test_every_fitted_source_has_a_fit_that_did_not_see_it():
    fits = load_fits()
    fitted = {s for cset in load_catalog().calibration.values() for c in cset.constants.values() for s in c.fitted_on}
    sources_of_runs = {"llm_foundry", "megatron_bridge", "nemo_2407", "tpu_recipes", "neuron_trn1", "vtrain_single_node"}
    assert sources_of_runs <= fitted
    assert sources_of_runs <= set(fits)


def test_published_runs_get_an_answer_not_a_divisibility_refusal(rep):
    """Every run with a published layout is predicted (uneven stages, nearest batch); what the core cannot
    model yet (MoE, context parallelism, FP4: issue 13; architecture not published) is listed with its reason."""
    for r in rep.results:
        if r.case.has_layout and not r.case.restates and r.case.source != "mindspeed_ascend":
            assert np.isfinite(r.predicted), r.case.case_id


def test_runs_on_a_chip_with_conflicting_figures_are_answered_at_both_ends_of_the_quoted_range(rep):
    """The MindSpeed runs on the Ascend 910B (memory bandwidth quoted 400-1,600 GB/s, HCCS 392-600 GB/s): each is
    predicted at the low and at the high ends, faster at the high end. No source publishes a bf16 peak: the bf16
    runs are answered at the fp16 peak, an assumption the report line states; every run gets an answer."""
    ms = [r for r in rep.results if r.case.source == "mindspeed_ascend" and not r.case.restates]
    assert len(rep.bracket) == len(ms) >= 30 and not rep.unanswered
    bf16 = [lo for lo, _ in rep.bracket if lo.case.row.get("precision") == "bf16"]
    assert len(bf16) >= 20 and all(lo.case.row["chip.peak_tflops_bf16"] == 320 for lo in bf16)
    assert all("chip.peak_tflops_bf16" not in lo.case.row for lo, _ in rep.bracket if lo.case.row.get("precision") != "bf16")
    assert any(ASSUMED_BF16 in line for line in bracket_lines(rep.bracket, rep.unanswered))
    for lo, hi in rep.bracket:
        assert lo.case.row["chip.memory_bandwidth_gb_s"] == 400 and hi.case.row["chip.memory_bandwidth_gb_s"] == 1600
        assert lo.case.row["chip.scale_up_gb_s"] == 392 and hi.case.row["chip.scale_up_gb_s"] == 600
        assert 0 < lo.predicted < hi.predicted
    allowed = ("issue 13", "not published", "no tokens/s, step time or convertible TFLOP/s", "not modelled")
    assert all(any(a in s.reason for a in allowed) for s in rep.skipped), {s.reason for s in rep.skipped}


def test_korthikanti_activation_memory_reproduces_table2_formulas(rep):
    acts = [r for r in rep.results if r.case.source == "korthikanti22_memory" and r.case.metric == "mem_activations_gib"]
    assert len(acts) == 8
    assert max(abs(r.error) for r in acts) < 0.002


def test_lambda_gpt3_on_v100_estimate_reproduced_within_3pct(rep):
    by_metric = {r.case.metric: r for r in rep.results if r.case.source == "lambda_gpt3"}
    assert abs(by_metric["cost_usd"].predicted / 4.6e6 - 1) <= 0.03
    assert abs(by_metric["gpu_years"].predicted / 355 - 1) <= 0.03


def test_chip_families_with_runs_report_their_held_out_error(rep):
    """Each family's median error on its held-out sources within 20 % (aws_npu, Trainium1 alone, reported apart:
    KNOWN_MISSES and the test below)."""
    assert {"nvidia_gpu", "google_tpu", "aws_npu"} <= set(rep.families)
    for fam, (n, med, _) in rep.families.items():
        assert n > 0, fam
        if fam != "aws_npu":
            assert med <= 0.20, (fam, med)


@pytest.mark.xfail(strict=True, reason=(
    "issue 12 miss, reported by `chipsweep validate --bounds` (every source's median): Trainium1 held out reads "
    "25.9 % median, 40.8 % p90 (2026-12-07, since the training-core audit's fixes; 24.9 % / 38.2 % once the B200 and "
    "GB200 shared one set, the same day; 24.5 % from 2026-12-06, once the "
    "loss over the logits cost its memory traffic; 23.7 % / 34.9 % "
    "before; 25.3 % / 36.8 % before tpu-recipes' Gemma 3 runs took their windows; 19.3 % before fp8 runs' saved GEMM inputs took one byte, which moved the "
    "NVIDIA family's refitted scale-out latency from 171 to 230 us and the families' mean its held-out fit takes "
    "from 119 to 150 us); the comment on KNOWN_MISSES says how far this figure moves with the other sources' fits"))
def test_trainium_held_out_median_within_20pct(rep):
    """19.2 % median from 2026-12-04 to 2026-12-05 (a miss at 22.6-27.5 % before): the comment on KNOWN_MISSES says
    how far this figure moves with the other sources' held-out fits and the search's rounds."""
    assert rep.families["aws_npu"][1] <= 0.20 and next(r for r in rep.rows if r.source == "neuron_trn1").out_median <= 0.20


def test_chips_of_one_compute_share_one_fitted_matrix_efficiency():
    """The A100 SXM 40GB's runs (llm-foundry) and the 80GB's fit one `mm_eff_max` (`same_compute_as`); held out,
    llm-foundry's 40GB runs take the value the 80GB's other sources fit, not the nvidia_gpu family mean."""
    from chipsweep.workers.validation.held_out import apply

    problem = Problem.build()
    chips = {p.target for p in problem.params if p.level == "chip"}
    assert "nvidia_a100_sxm_80gb" in chips and "nvidia_a100_sxm_40gb" not in chips
    rows = problem.rows_of["chip:nvidia_a100_sxm_80gb:mm_eff_max"]
    assert {problem.cases[i].source for i in rows} >= {"llm_foundry", "vtrain_multi_node", "narayanan21_table1"}
    without = load_fits()["llm_foundry"]
    cal = apply(problem.ctx, problem.base_cal, without)
    ids = list(problem.ctx.chips.ids)
    a40, a80 = ids.index("nvidia_a100_sxm_40gb"), ids.index("nvidia_a100_sxm_80gb")
    assert cal["mm_eff_max"][0, a40] == cal["mm_eff_max"][0, a80] == without["chip:nvidia_a100_sxm_80gb:mm_eff_max"]
    # the B200 (HGX, 1,000 W) is the GB200's GPU at a lower clock: one share of each chip's own peak, on both runs
    for key in ("mm_eff_max", "mm_eff_max_fp8"):
        rows = problem.rows_of[f"chip:nvidia_gb200_per_gpu:{key}"]
        assert {problem.cases[i].row["chip"] for i in rows} == {"nvidia_gb200_per_gpu", "nvidia_b200_hgx"}


def test_one_die_at_two_power_limits_trains_at_one_share_of_its_peak():
    """On one chip (no links between chips) and at one layout, the B200 and the GB200, the same GPU at 1,000 and
    1,200 W, reach the same share of their own bf16 and fp8 peaks within 5 %: the rest of the step is memory time at
    the same 8 TB/s. Fitted apart, the B200's 16-bit efficiency (0.41) and the GB200's (0.72) put a bf16 B200 at 0.6x
    the GB200's MFU."""
    import chipsweep

    rows = [dict(model="llama3_8b", chip=chip, n_chips=1, tp=1, pp=1, micro_batch=1, global_batch=8,
                 recompute="full", zero_stage=0, precision=prec, seq_len=8192)
            for prec in ("bf16", "fp8") for chip in ("nvidia_b200_hgx", "nvidia_gb200_per_gpu")]
    out = chipsweep.evaluate(rows, kind="training").to_pydict()
    assert out["infeasible_reason"] == [""] * 4, out["infeasible_reason"]
    mfu = out["mfu"]
    for b200, gb200 in ((mfu[0], mfu[1]), (mfu[2], mfu[3])):
        assert b200 == pytest.approx(gb200, rel=0.05)
    assert out["tokens_per_s"][1] > out["tokens_per_s"][0] and out["tokens_per_s"][3] > out["tokens_per_s"][2]


@pytest.mark.parametrize("chip", [
    "nvidia_gb200_per_gpu",
    pytest.param("nvidia_h100_sxm", marks=pytest.mark.xfail(strict=True, reason=(
        "missed since 2026-12-06 (a twenty-third session): held out, the H100 reads 11.0 % median, 21.7 % p90 (10 % / "
        "21 % asked). Its 16-bit efficiency now comes from the NVIDIA family's chips whose 16-bit GEMMs ran, the "
        "A100 alone once the H100 is out (0.79 against its own 0.63), since the GB200's, which only the attention and "
        "output layer of its fp8 runs set (0.62 -> 0.67 in the refit after tpu-recipes' Gemma 3 runs took their "
        "windows), is lent to no chip (`lends: false`); borrowed from the GB200 by the GEMM ratio it read 4.3 % / "
        "12.3 % at 0.62 and 12.4 % / 23.6 % at 0.67"))),
])
def test_a_chip_whose_own_fit_is_held_out_is_predicted_by_its_measured_gemm_within_10pct_median_20pct_p90(chip):
    """The rules that give a chip without runs its matrix efficiencies (context.py `extrapolate_matrix`), checked on
    the two fitted chips measured the same way, with the chip's own `mm_eff_max` / `mm_eff_max_fp8` set removed and
    the family's 16-bit mean recomputed without it: the fp8 constant from the other chip scaled by the two measured
    fp8 GEMM shares; the 16-bit one likewise where the other lends it (the GB200 takes the H100's), else the family's
    chips whose 16-bit GEMMs ran (the H100 takes the A100's: the GB200's 16-bit constant is lent to none). Its
    2024-26 runs with a layout are predicted again. Measured 2026-12-06: GB200 (32 runs) 8.1 % median, 14.6 % p90
    (own fit 7.6 % / 16.5 %); H100 (112 runs) 11.0 % / 21.7 % (own fit 5.9 % / 12.9 %). Only the chip's matrix
    constants are held out: the framework and family link constants were fitted with these runs. Bounds: 10 %
    median, 21 % p90."""

    from chipsweep.workers.context import Context
    from chipsweep.workers.validation.cases import runs2026_cases
    from chipsweep.workers.validation.held_out import predict_with

    base = load_catalog(use_env=False)
    cases = [c for c in runs2026_cases(catalog=base)[0] if c.row.get("chip") == chip and c.has_layout]
    cal = {k: v for k, v in base.calibration.items() if k != f"chip_{chip}"}
    fam = cal["family_nvidia_gpu"]
    lent = [cset.constants["mm_eff_max"].value for name, cset in cal.items() if name.startswith("chip_nvidia")
            and "mm_eff_max" in cset.constants and cset.constants["mm_eff_max"].lends]
    mean16 = float(np.exp(np.mean(np.log(lent))))  # what calibrate.py would write without the chip's runs
    cal["family_nvidia_gpu"] = fam.model_copy(update={"constants": {
        **fam.constants, "mm_eff_max": fam.constants["mm_eff_max"].model_copy(update={"value": mean16})}})
    ctx = Context.build(dataclasses.replace(base, calibration=cal))
    i = ctx.chips.ids.index(chip)
    other = ({"nvidia_gb200_per_gpu", "nvidia_h100_sxm"} - {chip}).pop()
    assert ctx.calibrated_on[0, i] == (f"extrapolated from {other} by measured fp8 GEMM throughput"
                                       if chip == "nvidia_gb200_per_gpu" else "extrapolated from nvidia_gpu")
    err = np.abs([r.error for r in predict_with(ctx, {}, cases)])
    assert len(cases) >= 30 and np.isfinite(err).all()
    assert np.median(err) <= 0.10 and np.percentile(err, 90) <= 0.21, (np.median(err), np.percentile(err, 90))


@pytest.mark.xfail(strict=True, reason=(
    "issue 12 miss, reported by `chipsweep validate`: the fitted fp8 matrix efficiency is above the share of the fp8 "
    "peak cuBLASLt reaches on large matrices (H100 83.1 % against 69.8 %, 79.6 % before the loss over the logits "
    "cost its memory traffic, 2026-12-06; the B200 at 84.9 % against the GB200's 58.1 %, the same GPU revision, "
    "until the two chips came to share one set, 2026-12-07: 55.4 %, within; the GB200 within, 55.4 % against 58.1 %, since fp8 runs' saved GEMM inputs take the "
    "one byte Transformer Engine keeps them in, 2026-12-05: H100 83.1 % and GB200 67.8 % before; the GB200 at "
    "74.6 % until its Megatron-FSDP rows offloaded activations as their presets do instead of taking full recompute "
    "from the layout search, 2026-12-04; the H100 at 90.0 % before Megatron-Bridge's Llama 3 70B runs on 64 H100 took "
    "their recipe's 16-bit gradients and fit "
    "without the recompute the layout search had given them; the A100's bf16 78.8 % is within its fp16 GEMM's "
    "82.2 %). The fp8 runs are faster than the model's fp8 GEMMs at a physical "
    "rate allow, so the model counts too much time elsewhere in an fp8 step (element-wise work at the 16-bit memory "
    "efficiency is about a third of it); the MI300X, extrapolated by the GEMM ratio, inherits the excess. Tried and "
    "not adopted: the measured share as the chips' upper bound in the fit puts H100 fp8 at 0.68 and GB200 at 0.57, "
    "and the 2024-26 out-of-source error goes from 11.4 % / 31.6 % to 12.5 % / 33.5 % (Megatron-Bridge in-sample "
    "6.3 % -> 14.6 %); a third time on 2026-12-04 (H100 0.678, GB200 0.553): context-parallel runs 10.9 % / 25.1 %, "
    "but the 2024-26 runs 8.9 % / 27.9 %, Trainium1 34.6 %, mixture of experts 27.0 % / 65.6 %: the fix belongs in "
    "the fp8 step's other terms, not in a bound."))
def test_matrix_efficiency_stays_within_the_measured_gemm_share_of_peak():
    from chipsweep.workers.context import Context
    from chipsweep.workers.validation.report import gemm_checks

    checks = gemm_checks(Context.build(load_catalog(use_env=False)))
    assert {c[0] for c in checks} >= {"nvidia_h100_sxm", "nvidia_gb200_per_gpu", "nvidia_a100_sxm_80gb", "amd_mi300x"}
    above = [(cid, key, value, frac) for cid, _, frac, key, value, _, _ in checks if value > frac]
    assert above == [], above


def test_the_narrow_gemm_half_width_is_read_off_the_libraries_skinny_shape():
    """Azure's GEMM tables run one skinny shape beside the squares (m, n, k = 802816, 192, 768): the catalog keeps it
    as `gemm_measured.narrow`, and the width at which the library runs at half its large-matrix rate follows from the
    core's d / (d + half) law: 192 x (best / skinny - 1). A100 fp16 256.5 / 157.8, H100 fp8 1,382.2 / 663.8, H200 fp8
    1,366.3 / 717.5, GB200 fp8 2,906.9 / 1,459.5."""
    from chipsweep.workers.context import Context
    from chipsweep.workers.validation.report import half_width_check

    fitted, measured = half_width_check(Context.build(load_catalog(use_env=False)))
    want = {"nvidia_a100_sxm_80gb": 192 * (256.5 / 157.8 - 1), "nvidia_h100_sxm": 192 * (1382.2 / 663.8 - 1),
            "nvidia_h200_sxm": 192 * (1366.3 / 717.5 - 1), "nvidia_gb200_per_gpu": 192 * (2906.9 / 1459.5 - 1)}
    assert {c: w for c, _, w in measured} == pytest.approx(want)
    assert fitted == pytest.approx(load_catalog(use_env=False).calibration["default"].constants["mm_half_dim"].value)


@pytest.mark.xfail(strict=True, reason=(
    "issue 12 miss, reported by `chipsweep validate --bounds` (2026-12-06): the fitted narrow-GEMM half width, 20.2 "
    "elements, is below the 120-208 cuBLASLt's skinny shape gives on A100, H100, H200 and GB200. Refitted with the "
    "measured 163 fixed (docs/accuracy.md), the 2024-26 runs read 9.7 % / 32.6 % out of source against 8.7 % / 25.3 % "
    "(issue 12's 30 % p90 lost: the held-out llm-foundry runs, FSDP down to 125M models, read 12.4 % / 38.9 % against "
    "8.2 % / 23.9 %), though in sample 4.0 % / 12.8 % against 4.2 % / 13.4 % and Trainium1 held out 9.2 % against "
    "25.3 %: not adopted. Retried with the loss's memory traffic (a twenty-sixth session), bounded to 120-208: with "
    "attention at the same width 7.0 % / 21.1 % but DeepSeek-V3's context extension +43.5 % (the factor charges a "
    "FlashAttention kernel 2x at head dimension 128); with attention's own fitted width (15.9) 9.6 % / 31.3 %: "
    "neither adopted (docs/accuracy.md)."))
def test_the_fitted_narrow_gemm_half_width_is_within_what_the_library_measures():
    from chipsweep.workers.context import Context
    from chipsweep.workers.validation.report import half_width_check

    fitted, measured = half_width_check(Context.build(load_catalog(use_env=False)))
    widths = [w for *_, w in measured]
    assert min(widths) <= fitted <= max(widths), (fitted, widths)


def test_a_fitted_chip_without_a_gemm_measurement_is_held_to_its_gpu_revisions():
    """A chip fitted on its own runs without a GEMM measurement of its own is checked against the measurement of its
    GPU revision (the same compute capability: the same tensor cores and library) at that chip's share of peak; chips
    without runs of their own, or whose set is another chip's (`same_compute_as`), are not (their constants are
    another's, checked there). The catalog's B200 fits the GB200's set, so only the GB200 is checked; a B200 given a
    set of its own is held to the GB200's measurement."""
    from chipsweep.workers.context import Context
    from chipsweep.workers.validation.report import gemm_checks

    catalog = load_catalog(use_env=False)
    checks = {c[0]: c for c in gemm_checks(Context.build(catalog))}
    assert "nvidia_gb200_per_gpu" in checks and "nvidia_b200_hgx" not in checks
    assert all(c[6] == cid for cid, c in checks.items())
    assert "nvidia_b300_hgx" not in checks and "nvidia_gb300_per_gpu" not in checks  # extrapolated: no runs
    gb = catalog.calibration["chip_nvidia_gb200_per_gpu"]
    own = dataclasses.replace(
        catalog,
        chips={**catalog.chips, "nvidia_b200_hgx": catalog.chips["nvidia_b200_hgx"].model_copy(
            update={"same_compute_as": None})},
        calibration={**catalog.calibration,
                     "chip_nvidia_gb200_per_gpu": gb.model_copy(update={"applies_to": ["nvidia_gb200_per_gpu"]}),
                     "chip_nvidia_b200_hgx": gb.model_copy(update={"applies_to": ["nvidia_b200_hgx"]})})
    checks = {c[0]: c for c in gemm_checks(Context.build(own))}
    b200 = checks["nvidia_b200_hgx"]
    assert (b200[1], b200[3], b200[6]) == ("fp8", "mm_eff_max_fp8", "nvidia_gb200_per_gpu")
    assert b200[2] == pytest.approx(catalog.chips["nvidia_gb200_per_gpu"].gemm_fraction)


def test_no_calibration_constant_sits_at_a_bound():
    problem = Problem.build()
    assert check_bounds(problem, problem.current_values(clip=False)) == []


def test_the_fit_prior_is_fixed_and_a_held_out_fit_does_not_inherit_the_source_it_left_out():
    """The prior pulls each constant towards the middle of its bounds, never towards an earlier fit; and a fit
    without a source keeps none of the values that source gave: Trainium's family and framework constants, which
    only neuron_trn1 reaches, are in the fit without it the mean of the other families' and frameworks' values."""
    from chipsweep.workers.validation.calibrate import PRIOR_WEIGHT, prior

    problem = Problem.build()
    values = problem.current_values(clip=False)
    name = "framework:deepspeed:dp_coll_eff"  # one constant for the DeepSpeed generations (held_out.py)
    lo, hi, _ = problem.bounds["dp_coll_eff"]
    middle = prior(problem, {name: (lo + hi) / 2}, [p for p in problem.params if p.name == name])
    near_bound = prior(problem, {name: hi - 0.005 * (hi - lo)}, [p for p in problem.params if p.name == name])
    assert middle == pytest.approx(0.0, abs=1e-12) and near_bound > 25 * PRIOR_WEIGHT
    without = load_fits()["neuron_trn1"]
    for level, target, key in (("family", "aws_npu", "up_eff"), ("framework", "neuronx", "att_eff")):
        others = [v for k, v in without.items() if k.startswith(f"{level}:") and k.endswith(f":{key}")
                  and f":{target}:" not in k]
        assert without[f"{level}:{target}:{key}"] == pytest.approx(np.mean(others), rel=1e-9)
        assert abs(without[f"{level}:{target}:{key}"] / values[f"{level}:{target}:{key}"] - 1) > 0.05
    # Trainium1's matrix efficiency, fitted on neuron_trn1 alone, is without it what a chip of a family without
    # fitted chips takes: the mean measured GEMM share (gemm_reach) scaled from the measured fitted chips
    from chipsweep.workers.context import scaled_matrix_eff

    chips = problem.ctx.catalog.chips
    # (the GB200's 16-bit constant, set only by the 16-bit parts of its fp8 runs, is lent to none: calibrate.lends)
    pairs = [(v, chips[k.split(":")[1]].gemm_fraction) for k, v in without.items()
             if k.startswith("chip:") and k.endswith(":mm_eff_max") and chips[k.split(":")[1]].gemm_fraction
             and k != "chip:nvidia_gb200_per_gpu:mm_eff_max"]
    assert len(pairs) == 2  # A100, H100
    assert without["chip:aws_trainium1:mm_eff_max"] == pytest.approx(
        scaled_matrix_eff(problem.ctx.defaults["gemm_reach"], pairs), rel=1e-9)
    # (held out and fitted can come close by chance, 0.576 against 0.570 since the loss's memory traffic, 2026-12-06:
    # the equality above, from the A100's and H100's values alone, is what shows the held-out fit keeps none of it)
    # the DeepSpeed collectives stay fitted without the ZeRO-3 runs, by the other DeepSpeed runs (vTrain, BLOOM, MT-NLG)
    assert 0.05 < load_fits()["narayanan21_table2_zero3"][name] < 0.9  # NCCL's own share, 1.0, where unfitted


def test_the_prior_pools_a_framework_constant_with_the_other_frameworks():
    """Partial pooling: two frameworks' values of one constant cost less in the prior when they agree than when
    they straddle the same mean, and a lone mean away from the middle of the range costs as its own u²."""
    from chipsweep.workers.validation.calibrate import PRIOR_WEIGHT, _to_u, prior

    problem = Problem.build()
    pair = [p for p in problem.params if p.level == "framework" and p.key == "att_eff"][:2]
    assert len(pair) == 2
    lo, hi, _ = problem.bounds["att_eff"]
    same = prior(problem, {pair[0].name: 0.6, pair[1].name: 0.6}, pair)
    apart = prior(problem, {pair[0].name: 0.45, pair[1].name: 0.75}, pair)
    assert same == pytest.approx(PRIOR_WEIGHT * _to_u(0.6, lo, hi) ** 2, rel=1e-9)
    assert apart > same


def test_nemotron_runs_read_the_families_256k_vocabulary_and_untied_head():
    """NeMo's Nemotron rows leave the vocabulary blank; Nemotron-3 8B and Nemotron-4 15B/22B/340B share a
    256,000-token vocabulary with an untied output layer (arXiv:2402.16819 sec. 2; transformers NemotronConfig), not
    the GPT-3 51,200 other blank rows take. Nemotron-H / Nemotron 3 rows state their own vocabulary."""
    from chipsweep.workers.validation.cases import runs2026_cases

    cases, _ = runs2026_cases()
    nemotron = [c for c in cases if re.search(r"_nemotron-\d+b_", c.case_id.lower())]
    assert len(nemotron) == 7, [c.case_id for c in nemotron]
    assert all(c.row["vocab"] == 256000 and c.row["tied_embeddings"] is False for c in nemotron)
    gpt3 = [c for c in cases if "_gpt3-175b_" in c.case_id.lower()]
    assert gpt3 and all(c.row["vocab"] == 51200 for c in gpt3)


def test_runs_whose_published_topology_contradicts_their_world_size_are_answered_by_the_layout_search(rep):
    """AWS Neuron's NeMo rows of Llama 2 7B (32 nodes) and 13B (16 nodes) publish TP x DP x PP = 128 NeuronCores on
    1,024 or 512, as their notes say: the layout that ran is unknown, so the search answers them, they count as
    runs without a layout and no fit sees them."""
    odd = [r for r in rep.results if r.case.source == "neuron_trn1" and "_NeMo_" in r.case.case_id
           and "Llama2" in r.case.case_id]
    assert len(odd) == 4
    assert all(not r.case.has_layout and "tp" not in r.case.row and np.isfinite(r.predicted) for r in odd)
    gpt3 = [r for r in rep.results if r.case.source == "neuron_trn1" and "GPT3-175B" in r.case.case_id]
    assert gpt3 and all(r.case.has_layout and r.case.row["tp"] == 16 and r.case.row["pp"] == 8 for r in gpt3)


def test_neuron_example_models_run_with_the_shapes_of_their_scripts(rep):
    """AWS Neuron's GPT3-23B / GPT3-46B rows name neuronx-nemo-megatron's example scripts (gpt_23b.sh, gpt_46b.sh via
    test.sh: hidden 8192, 64 heads, 28 / 56 layers, sequence 2048, ffn 4 x hidden, dropout, selective / full
    checkpointing); they run with those shapes at their published layout (TP 8 and PP 4 / 8 NeuronCores: tp 4 chips)
    and are fitted like the other runs with a layout. In sample: 23B +9 to +15 %, 46B -2 to -5 %."""
    runs = [r for r in rep.results if r.case.source == "neuron_trn1" and re.search(r"_GPT3-(23|46)B_", r.case.case_id)]
    assert len(runs) == 6, [r.case.case_id for r in runs]
    for r in runs:
        big = "46B" in r.case.case_id
        row = r.case.row
        assert (row["layers"], row["hidden"], row["heads"], row["ffn_hidden"], row["seq_len"]) == (
            56 if big else 28, 8192, 64, 32768, 2048), row
        assert row["recompute"] == ("full" if big else "selective") and row["dropout"] is True
        assert r.case.has_layout and (row["tp"], row["pp"]) == (4, 8 if big else 4)
        assert np.isfinite(r.predicted) and abs(r.error) < 0.20, (r.case.case_id, r.error)



def test_megatron_lm_strong_scaling_runs_take_the_readme_models_shapes_and_are_answered_within_15pct(rep):
    """The Megatron-LM README's strong-scaling paragraph (GPT-3 175B 'slightly more than 175B due to larger
    vocabulary', 1,152 sequences, MFU 47 % on 96 H100s and 42 % on 4,608) states no shape: the runs take the GPT 177B
    of the README's model table (96 layers, hidden 12,288, 96 heads, vocabulary 131,072, sequence 4,096), their MFU
    becomes tokens/s by Megatron-LM's FLOP count at the H100's 989 TFLOP/s, and the layout search answers them, since
    no layout is published (never fitted). Measured 2026-12-06: +6.8 % on 96 chips, -8.8 % on 4,608."""
    runs = {r.case.case_id: r for r in rep.results if r.case.source == "megatron_lm_strong"}
    assert sorted(runs) == ["megatronlm_readme_strong_gpt175b_4608g__tokens_per_s_per_chip",
                            "megatronlm_readme_strong_gpt175b_96g__tokens_per_s_per_chip"]
    for r in runs.values():
        row = r.case.row
        assert (row["layers"], row["hidden"], row["heads"], row["vocab"], row["seq_len"]) == (96, 12288, 96, 131072, 4096)
        assert not r.case.has_layout and "tp" not in row
        assert np.isfinite(r.predicted) and abs(r.error) < 0.15, (r.case.case_id, r.error)
    # 47 % of 989 TFLOP/s over 72 L h^2 (1 + s/6h + V/12Lh) FLOPs per token
    h, L, V, s = 12288.0, 96.0, 131072.0, 4096.0
    assert runs["megatronlm_readme_strong_gpt175b_96g__tokens_per_s_per_chip"].case.measured == pytest.approx(
        0.47 * 989e12 / (72.0 * L * h * h * (1.0 + s / (6.0 * h) + V / (12.0 * L * h))), rel=1e-3)
def test_a_maxtext_run_without_a_published_fsdp_size_shards_over_its_slice():
    """MaxText's base.yml sizes the fsdp mesh axis to every chip of the slice the other ICI axes leave
    (`ici_fsdp_parallelism: -1`, 'recommended ICI axis to be auto-sharded'): Llama 3.1 405B on 256 v6e at ici_tensor 4
    (config llama3_1_405b_8192_fsdp_dcn) shards weights, gradients and optimizer state over 64 chips, and Llama 2 70B
    on 512 v5p over all 512. Read as unsharded data parallelism (before), the 405B row needed 1,857 GB per chip."""
    from chipsweep.workers.validation.cases import runs2026_cases

    cases, _ = runs2026_cases()
    by_id = {c.case_id: c.row for c in cases}
    r405 = by_id["maxtext_tiering_v6e_Llama3.1405B_256__tokens_per_s_per_chip"]
    r70 = by_id["maxtext_tiering_v5p_Llama270B_512__tokens_per_s_per_chip"]
    assert (r405["zero_stage"], r405["zero_group"], r405["tp"]) == (3, 64, 4)
    assert (r70["zero_stage"], r70["zero_group"]) == (3, 512)
    # a published fsdp size is taken as it stands (MaxText's 2023 table: a 32B model on 64 v5p at fsdp 16, tensor 4)
    assert by_id["maxtext_v5p_32b_1x-v5p-128__tokens_per_s_per_chip"]["zero_group"] == 16


def test_a_held_out_fit_starts_where_no_source_has_set_a_constant():
    """Each leave-one-source-out fit starts from the middle of every bound (`neutral_start`), not from the full fit:
    started there, a constant the other sources barely determine kept the value the left-out source had given it
    (vTrain's single-node runs, held out, were predicted with DeepSpeed's element-wise and per-layer costs they had
    set: 12.1 % / 31.2 %; from the middle, 14.6 % / 29.9 %). So the fit without a source is reproduced from the
    validation runs alone, whatever the catalog's fitted constants are: the fit without PaLM, recomputed here, is
    the one tests/validation/held_out_fits.json holds."""
    from chipsweep.workers.validation.calibrate import (
        LOSO_ROUNDS,
        _bound_key,
        _from_u,
        fill_unfitted,
        fit,
        neutral_start,
    )

    problem = Problem.build()
    start = neutral_start(problem)
    for p in problem.params[:5]:
        lo, hi, _ = problem.bounds[_bound_key(p)]
        assert start[p.name] == pytest.approx(_from_u(0.0, lo, hi))
    keep = problem.sources != "palm"
    again = fill_unfitted(problem, fit(problem, fill_unfitted(problem, start, keep), keep, rounds=LOSO_ROUNDS,
                                       step0=1.0, log=False), keep)
    stored = load_fits()["palm"]
    assert set(again) == set(stored)
    for name, v in stored.items():
        assert again[name] == pytest.approx(v, rel=1e-6), name
    # and it is not the full fit: the catalog's constants differ from it by more than rounding
    full = problem.current_values(clip=False)
    assert max(abs(stored[k] / full[k] - 1) for k in full) > 0.05


def test_megatron_bridge_dense_llama_rows_reduce_gradients_in_16_bits_as_its_performance_scripts_set():
    """Megatron-Bridge's performance scripts set `grad_reduce_in_fp32 = False` for its Llama pre-training
    (set_llama3_common_configs, set_llama31_common_configs): the rows its tables leave unsaid take 2-byte gradients,
    and the recompute stays with the layout search. Llama 3 70B in fp8 on 64 H100 at tp 4, pp 8, vp 5 fits without
    recompute, as its recipe runs it: 66.6 GB of 81.2 GB usable, its saved GEMM inputs in fp8 as Transformer Engine
    keeps them (71.5 GB with fp32 gradients). Before the fp8 copies were counted (2026-12-05) it needed 76.9 GB, and
    81.7 GB with fp32 gradients, where the search chose full recompute and read the six releases' runs 16-18 % slow."""

    from chipsweep.workers.context import Context
    from chipsweep.workers.training_rows import evaluate_training
    from chipsweep.workers.validation.cases import case_table, runs2026_cases

    cases = [c for c in runs2026_cases()[0] if c.source == "megatron_bridge" and "_Pre_" in c.case_id]
    assert len(cases) >= 25 and {c.row.get("grad_bytes") for c in cases} == {2}
    # the recompute stays with the layout search, but where a preset offloads activations instead (below)
    assert all("recompute" not in c.row for c in cases if not c.row.get("offload_layers"))
    h100_70b = [c for c in cases if "LLAMA3-70B_DGX-H100_64g" in c.case_id]
    assert len(h100_70b) >= 6
    ctx = Context.build(load_catalog(use_env=False))
    out = evaluate_training(case_table(h100_70b), ctx)[0].to_pylist()
    assert {o["recompute"] for o in out} == {"none"} and all(o["fits"] for o in out)
    assert {round(o["mem_per_chip_gb"], 1) for o in out} == {66.6}
    fp32 = [dataclasses.replace(c, row={**c.row, "grad_bytes": 4}) for c in h100_70b[:1]]
    [wide] = evaluate_training(case_table(fp32), ctx)[0].to_pylist()
    assert wide["recompute"] == "none" and round(wide["mem_per_chip_gb"], 1) == 71.5


def test_megatron_fsdp_rows_offload_the_activations_their_presets_offload_and_recompute_nothing():
    """Megatron-Bridge's GB200 Megatron-FSDP presets offload activations to host memory instead of recomputing
    (llama3_workload_base_configs.py LLAMA3_70B_PRETRAIN_CONFIG_GB200_FP8_CS_V1/V2: cpu_offloading_num_layers=40;
    llama31_workload_base_configs.py LLAMA31_405B_PRETRAIN_CONFIG_GB200_FP8_CS_V2: 92), so their rows state the
    preset's offload and no recompute. Before, the search gave them full recompute (the memory model did not count
    the offload) and predicted them 5-13 % slow, which the fit made up with a GB200 fp8 matrix efficiency of 0.75
    against the 0.58 cuBLASLt measures; offloaded, the refit put it at 0.68. Llama 3 70B at micro-batch 2 needed
    209.5 GB of the 189.7 GB usable while its saved GEMM inputs were counted at 16 bits; Transformer Engine keeps
    their fp8 copies, and it needs 173.8 GB and fits, as it ran (2026-12-05: the refit put GB200's fp8 efficiency at
    0.554, within the 0.581 cuBLASLt measures)."""
    from chipsweep.workers.context import Context
    from chipsweep.workers.training_rows import evaluate_training
    from chipsweep.workers.validation.cases import case_table, runs2026_cases

    cases = [c for c in runs2026_cases()[0] if c.source == "megatron_bridge"]
    off = {c.case_id: c.row["offload_layers"] for c in cases if c.row.get("offload_layers")}
    gb200_fsdp = [c for c in cases if c.row.get("zero_stage") == 3 and c.row["chip"] == "nvidia_gb200_per_gpu"]
    assert {c.case_id for c in gb200_fsdp} == set(off) and len(off) == 6
    assert sorted(set(off.values())) == [40, 92]
    assert all(c.row["recompute"] == "none" for c in gb200_fsdp)
    ctx = Context.build(load_catalog(use_env=False))
    out = evaluate_training(case_table(gb200_fsdp), ctx)[0].to_pylist()
    plain = evaluate_training(case_table([dataclasses.replace(c, row={**c.row, "offload_layers": 0})
                                          for c in gb200_fsdp]), ctx)[0].to_pylist()
    assert all(o["mem_per_chip_gb"] < p["mem_per_chip_gb"] for o, p in zip(out, plain, strict=True))
    mem_70b = {round(o["mem_per_chip_gb"], 1) for o, c in zip(out, gb200_fsdp, strict=True) if "70B" in c.case_id}
    assert mem_70b == {173.8} and all(o["fits"] for o in out)


def test_runs_whose_ids_hold_a_double_underscore_are_read_and_a_mislabelled_id_is_an_error(tmp_path):
    """training_runs_2026.csv ids are `<run>__<metric>`; tpu-recipes' run ids hold `__` themselves
    (`..._MaxText__256c`). Split at the first `__`, their metric read `256c__tokens_per_s_per_chip` and the runs fell
    out: four dense ones as 'no tokens/s published', five MoE ones without a trace. The split is at the row's own
    metric, and a row whose id does not end with it stops the reader with the id named."""
    import csv

    from chipsweep.workers.validation.cases import CASES_DIR, moe2026_cases, runs2026_cases

    catalog = load_catalog(use_env=False)
    dense, skipped = runs2026_cases(catalog=catalog)
    ids = {c.case_id for c in dense}
    for run in ("tpurecipes_trillium_Llama2-70B-MaxText__256c", "tpurecipes_trillium_Mistral-7B-MaxText__8c",
                "tpurecipes_trillium_Llama3.1-405B-MaxText__512c", "tpurecipes_v5p_Llama3.1-405B-MaxText__512c"):
        assert run + "__tokens_per_s_per_chip" in ids, run  # dense cases keep the metric in their id
    assert not [s for s in skipped if "__" in s.case_id and "tokens/s" in s.reason]
    moe, _ = moe2026_cases(catalog=catalog)
    assert {c.case_id for c in moe if c.source == "tpu_recipes"} == {
        "tpurecipes_trillium_Mixtral-8x22B-MaxText__256c", "tpurecipes_trillium_Mixtral-8x7B-MaxText__256c",
        "tpurecipes_v5p_DeepSeek3-671B-MaxText__512c", "tpurecipes_v5p_Llama4-Maverick-17B-128E-Maxtext__128c",
        "tpurecipes_v5p_Llama4-Scout-17B-16E-Maxtext__512c"}

    with (CASES_DIR / "training_runs_2026.csv").open() as fh:
        reader = csv.DictReader(fh)
        fields, first = reader.fieldnames, next(reader)
    bad = tmp_path / "runs.csv"
    with bad.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerow(dict(first, metric="step_time_s"))  # the id still ends with its real metric
    with pytest.raises(ValueError, match=re.escape(first["case_id"]) + ".*does not end with '__step_time_s'"):
        runs2026_cases(path=bad, catalog=catalog)


def test_the_readme_per_source_table_is_what_validate_prints(rep):  # type: ignore[no-untyped-def]
    """README.md's per-source training table quotes `chipsweep validate --summary`: each row's runs, fitted flag and
    four error figures (out of source and in sample) as the report gives them now, within their last digit."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| source: published runs |"):].split("\n\n", 1)[0].splitlines()[2:]
    by = {r.source: r for r in rep.rows}
    pct = re.compile(r"(-|\d+\.\d) %|^-$")

    def figure(cell: str) -> float:
        cell = cell.strip().strip("*").strip()
        assert pct.match(cell), cell
        return np.nan if cell == "-" else float(cell.split()[0])

    seen = 0
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        got = [figure(c) for c in cells[3:7]]
        if cells[0].startswith("**all"):
            o = rep.overall
            assert int(cells[1].strip("*")) == int(o["runs"]), line
            want = [o["out_median"], o["out_p90"], o["in_median"], o["in_p90"]]
        else:
            src = re.match(r"`(\w+)`:", cells[0]).group(1)  # type: ignore[union-attr]
            r = by[src]
            assert int(cells[1]) == r.runs and cells[2].startswith("yes" if r.fitted else "no"), (line, r)
            want = [r.out_median, r.out_p90, r.in_median, r.in_p90]
            seen += 1
        np.testing.assert_allclose(got, np.array(want) * 100, atol=0.11, err_msg=line)
    assert seen >= 20


def test_maxtext_recipes_that_offload_the_layer_input_run_with_their_activations_in_host_memory(rep):
    """tpu-recipes' Llama 3.1 70B (v6e-64/128/256), Llama 3.1 8B on v6e-8 and Mistral 7B run remat_policy=custom with
    decoder_layer_input (and the projections) offloaded: their rows run full recompute with every layer but one
    offloaded, and fit the v6e's 32 GB; GPT-3 175B (remat full) offloads nothing and stays refused (37.1 GB). Gemma 3
    12B keeps its layer input on the device and tiles its logits 16 ways (num_vocab_tiling=16), and fits. In sample
    within 10 % (Gemma 3 within 25 %: its three runs read 10-21 % slow)."""
    import chipsweep

    by = {r.case.case_id: r for r in rep.results}
    runs = [by[run + "__tokens_per_s_per_chip"] for run in (
        "tpurecipes_trillium_Llama3.1-70B-MaxText_v6e-64_64c", "tpurecipes_trillium_Llama3.1-70B-MaxText_v6e-256_256c",
        "tpurecipes_trillium_Llama3.1-8B-MaxText_v6e-8_8c", "tpurecipes_trillium_Mistral-7B-MaxText__8c",
        "maxtext_tiering_v6e_Llama3.170B_256")]
    out = chipsweep.evaluate([r.case.row for r in runs], kind="training").to_pylist()
    for r, o in zip(runs, out, strict=True):
        assert r.case.row["recompute"] == "full" and r.case.row["offload_layers"] == r.case.row["layers"] - 1, r.case.case_id
        assert o["fits"] and o["mem_per_chip_gb"] <= 32.6 and abs(r.error) < 0.10, (r.case.case_id, o["mem_per_chip_gb"], r.error)
    gpt3 = by["tpurecipes_trillium_GPT3-175B-MaxText_bf16_256c__tokens_per_s_per_chip"]
    gemma = [r for r in rep.results if r.case.case_id.startswith("tpurecipes_trillium_Gemma3-12B-MaxText_")]
    assert gpt3.case.row["offload_layers"] == 0 and gpt3.case.row["recompute"] == "full" and len(gemma) == 3
    out = chipsweep.evaluate([gpt3.case.row] + [r.case.row for r in gemma], kind="training").to_pylist()
    assert not out[0]["fits"] and all(o["fits"] for o in out[1:])
    assert all(r.case.row["vocab_tiles"] == 16 and r.case.row["offload_layers"] == 0 and abs(r.error) < 0.25 for r in gemma)


def test_a_row_naming_a_catalog_model_takes_its_windows_and_head_width():
    """tpu-recipes' Gemma 3 12B runs state 48 layers of 3,840 with 16 heads (8 KV) and an FFN of 15,360, as the catalog's
    gemma3_12b has them; the file's columns cannot say that its heads are 256 wide (16 x 256 = 4,096 query channels)
    nor that 40 of the 48 layers attend through a 1,024-token window (Gemma 3 Technical Report sec. 2). The cases name
    the catalog model, so the core counts the FLOPs per token MaxText publishes for the runs (78.0 G at 32,768 tokens)
    within 2 %; with the stated shapes alone it counted 36 % more (full attention in every layer)."""
    import csv

    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.workers.context import Context
    from chipsweep.workers.training_rows import evaluate_training
    from chipsweep.workers.validation.cases import (
        CASES_DIR,
        CATALOG_MODEL_2026,
        SHAPE_COLUMNS,
        case_table,
        runs2026_cases,
    )

    catalog = load_catalog(use_env=False)
    ctx = Context.build(catalog)
    cases = [c for c in runs2026_cases(catalog=catalog)[0] if "Gemma3-12B" in c.case_id]
    assert len(cases) == 3 and all(c.row["model"] == "gemma3_12b" for c in cases)
    assert not any(k in c.row for c in cases for k in SHAPE_COLUMNS)
    with (CASES_DIR / "training_runs_2026.csv").open() as fh:
        rows = [d for d in csv.DictReader(fh) if d["model"] in CATALOG_MODEL_2026]
    published = {}
    for d in rows:  # the stated shapes are the catalog model's
        m = catalog.models[CATALOG_MODEL_2026[d["model"]]]
        assert (int(d["layers"]), int(d["hidden"]), int(d["heads"]), int(d["kv_heads"]), int(d["ffn_hidden"])) == (
            m.layers, m.hidden, m.heads, m.kv_heads, m.ffn_hidden)
        published.setdefault(d["case_id"].rsplit("__", 1)[0], {})[d["metric"]] = float(d["value"])
    out, _ = evaluate_training(case_table(cases).append_column("tokens", [[1e12] * 3]), ctx)
    o = out.to_pydict()
    for i, c in enumerate(cases):
        pub = published[c.case_id.rsplit("__", 1)[0]]
        per_token = pub["model_tflops_per_chip"] * 1e12 / pub["tokens_per_s_per_chip"]
        core = o["model_tflops_per_chip"][i] * 1e12 * float(c.row["n_chips"]) / o["tokens_per_s"][i]
        assert core == pytest.approx(per_token, rel=0.02), c.case_id
        assert per_token == pytest.approx(78.04e9, rel=1e-3)


def test_a_matrix_efficiency_no_run_of_the_chip_ran_its_gemms_at_is_lent_to_no_other_chip():
    """Every dense GB200 and B200 run in the fit is fp8, so their 16-bit matrix efficiencies are set only by the
    attention and output layer those runs keep in 16 bits: they fit the chips' own runs, but a refit moves them
    (the GB200's 0.62 -> 0.67 on 2026-12-06) without telling anything of a 16-bit GEMM. calibrate.py writes them
    `lends: false`, and a chip of another architecture does not borrow them: the MI300X's 16-bit efficiency is the
    H100's scaled by the two chips' measured fp8 GEMM shares, and the NVIDIA family's mean (what a V100 takes) counts
    only chips whose 16-bit GEMMs ran. The B300 and GB300, the same kernels on the same core architecture, still take
    the GB200's (the B200's, the same die, is the GB200's), both precisions. Lent again, the GB200's would move the
    MI300X's."""
    import dataclasses as dc

    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.workers.context import Context, scaled_matrix_eff

    cat = load_catalog(use_env=False)
    gb200 = cat.calibration["chip_nvidia_gb200_per_gpu"].constants
    assert not gb200["mm_eff_max"].lends and gb200["mm_eff_max_fp8"].lends
    assert "chip_nvidia_b200_hgx" not in cat.calibration  # the B200 fits the GB200's set (same_compute_as)
    assert cat.calibration["chip_nvidia_h100_sxm"].constants["mm_eff_max"].lends
    ctx = Context.build(cat)

    def of(c: Context, chip: str, key: str = "mm_eff_max") -> float:
        return float(c.cal[key][0, c.chips.ids.index(chip)])

    i = ctx.chips.ids.index("amd_mi300x")
    assert ctx.calibrated_on[0, i] == "extrapolated from nvidia_h100_sxm by measured fp8 GEMM throughput"
    mi300x, h100 = cat.chips["amd_mi300x"], cat.chips["nvidia_h100_sxm"]
    want = scaled_matrix_eff(float(mi300x.gemm_fraction), [(of(ctx, "nvidia_h100_sxm"), float(h100.gemm_fraction))])
    assert of(ctx, "amd_mi300x") == pytest.approx(want, rel=1e-6)
    for key in ("mm_eff_max", "mm_eff_max_fp8"):
        assert of(ctx, "nvidia_b200_hgx", key) == of(ctx, "nvidia_gb200_per_gpu", key)
        assert of(ctx, "nvidia_b300_hgx", key) == pytest.approx(of(ctx, "nvidia_gb200_per_gpu", key), rel=1e-6)
    family = cat.calibration["family_nvidia_gpu"].constants["mm_eff_max"].value
    assert family == pytest.approx(np.sqrt(of(ctx, "nvidia_a100_sxm_80gb") * of(ctx, "nvidia_h100_sxm")), rel=1e-5)
    assert of(ctx, "nvidia_v100_sxm2_32gb") == pytest.approx(family, rel=1e-6)
    lent = dc.replace(cat, calibration={**cat.calibration, "chip_nvidia_gb200_per_gpu": cat.calibration[
        "chip_nvidia_gb200_per_gpu"].model_copy(update={"constants": {
            **gb200, "mm_eff_max": gb200["mm_eff_max"].model_copy(update={"lends": True})}})})
    other = Context.build(lent)
    assert "nvidia_gb200_per_gpu" in other.calibrated_on[0, i] and of(other, "amd_mi300x") > of(ctx, "amd_mi300x") * 1.02


def test_a_chip_whose_16_bit_gemms_no_run_measured_says_so_in_calibrated_on():
    """The B200's and GB200's 16-bit matrix efficiencies rest on the attention and output layer of fp8 runs (`lends:
    false`), and the B300 and GB300 take theirs: a bf16 row on those chips says so in `calibrated_on` (a sweep of
    Llama 3 70B on 1,024 chips in bf16 put the GB200 at 1.7x a B200 per chip, 0.67 against 0.41 of the 16-bit peak,
    which no 16-bit run of either chip measured, before the two came to share one set, 2026-12-07); chips whose runs
    ran 16-bit GEMMs carry no such note."""
    import chipsweep
    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.workers.context import UNMEASURED_16, Context

    ctx = Context.build(load_catalog(use_env=False))
    flagged = {c for c in ctx.chips.ids if str(ctx.calibrated_on[0, ctx.chips.ids.index(c)]).endswith(UNMEASURED_16)}
    assert {"nvidia_b200_hgx", "nvidia_gb200_per_gpu", "nvidia_b300_hgx", "nvidia_gb300_per_gpu"} <= flagged
    assert not flagged & {"nvidia_h100_sxm", "nvidia_h200_sxm", "nvidia_a100_sxm_80gb", "amd_mi300x", "google_tpu_v5p"}
    rows = [{"model": "llama3_70b", "chip": c, "n_chips": 1024, "global_batch": 1024, "precision": "bf16"}
            for c in ("nvidia_b200_hgx", "nvidia_h100_sxm")]
    on = chipsweep.evaluate(rows, kind="training").column("calibrated_on").to_pylist()
    assert on[0].startswith("megatron_bridge") and on[0].endswith(UNMEASURED_16) and UNMEASURED_16 not in on[1]


def test_validate_flops_compares_each_sources_flop_count_with_the_cores(capsys):
    """`chipsweep validate --flops`: per source, model and sequence length, the FLOPs per token a run's published
    TFLOP/s and tokens/s imply against the core's count for its case row. Where the formulas agree they are equal
    within 1.3 % (Megatron-Bridge's DeepSeek-V3 with the MTP module its runs carry, Qwen3, Llama 3 8B and 405B,
    Nemotron 3 Super; tpu-recipes' Gemma 3 12B with its catalog model's windows); NeMo counts full attention, so its
    Llama 3 8B at 8,192 tokens reads the core's causal count x 0.889 (full: 6 more FLOPs a context token a query
    channel) in every run; BLOOM's published TFLOP/s count the recomputed forward (x 4/3)."""
    import json

    from chipsweep.workers.validation.flops import flops_checks, render_flops

    checks = {(c.source, c.model, c.seq_len): c for c in flops_checks()}
    for key in [("megatron_bridge", "DeepSeekV3", 4096), ("megatron_bridge", "Qwen3_235B_a22B", 4096),
                ("megatron_bridge", "LLAMA3_8B", 8192), ("megatron_bridge", "Nemotron_3_Super", 8192),
                ("tpu_recipes", "Gemma3 12B", 32768)]:
        lo, hi = checks[key].ratio
        assert 0.99 <= lo <= hi <= 1.013, (key, checks[key].ratio)
    nemo = checks[("nemo_docs_2025", "LLAMA3-8B", 8192)]
    # the core's causal count against full attention: (N + causal) / (N + full), a model constant
    assert nemo.ratio[0] == pytest.approx(nemo.ratio[1], abs=1e-3) and nemo.ratio[0] == pytest.approx(0.889, abs=0.002)
    bloom = checks[("bloom", "BLOOM 176B", 2048)]
    assert bloom.ratio[0] == pytest.approx(0.75, abs=0.01)  # 6 against 8 FLOPs a parameter a token
    assert sum(c.runs for c in checks.values()) >= 190
    text = render_flops(list(checks.values()))
    assert "Gemma3 12B" in text and text.count("\n") == len(checks) + 2
    from chipsweep.service.cli import main as cli

    capsys.readouterr()
    assert cli(["validate", "--flops", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["source"], r["model"], r["seq_len"]) for r in rows} == set(checks)


def test_the_readme_gpt3_2020_line_is_what_the_core_gives():  # type: ignore[no-untyped-def]
    """README.md's own-model GPT-3 line (1,024 V100s of the 2020 Azure system, Megatron of 2020, 300B tokens, the
    layout searched, $1.5 per V100-hour as Lambda assumed) quotes the row `evaluate` gives now: its layout, GPU-years,
    cost, days and MFU, each within its last digit (it had gone stale through refits before this test)."""
    import chipsweep
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("| chipsweep's own model with 2020 software"))
    r = chipsweep.evaluate([{"model": "gpt3_175b", "cluster": "azure_openai_2020", "n_chips": 1024, "global_batch": 1536,
                             "tokens": 300e9, "framework": "megatron_2020", "chip.usd_per_hour": 1.5}],
                           kind="training").to_pylist()[0]
    assert r["infeasible_reason"] == ""
    layout = re.search(r"layout searched \(tp (\d+), pp (\d+), micro-batch (\d+), (\w+) recompute\)", line)
    assert layout is not None, line
    assert [int(layout.group(i)) for i in (1, 2, 3)] == [r["tp"], r["pp"], r["micro_batch"]] and layout.group(4) == r["recompute"]
    cells = [c.strip() for c in line.strip("|").split("|")]
    years, cost, days = cells[1], cells[2], cells[3]
    assert float(years) == pytest.approx(r["chip_hours"] / (365.25 * 24), abs=0.51)
    assert float(re.match(r"\$(\d+\.\d+)M", cost).group(1)) == pytest.approx(r["cost_usd"] / 1e6, abs=0.0051)  # type: ignore[union-attr]
    got = re.match(r"(\d+) days, MFU (\d+) %", days)
    assert got is not None, days
    assert float(got.group(1)) == pytest.approx(r["time_to_train_days"], abs=0.51)
    assert float(got.group(2)) == pytest.approx(r["mfu"] * 100, abs=0.51)
