"""Serving and edge inference against published measurements (tests/validation/inference_runs_2026.csv and
inference_runs.csv) through workers/validation/serving.py, out of source (constants fitted without the
measurement's own source) as `chipsweep validate` prints them; and the edge-ASIC checks (asic-notes.md worked
checks, vendor TOPS/W) through workers/validation/edge.py."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.workers import validation
from chipsweep.workers.validation import edge, serving
from chipsweep.workers.validation.calibrate import fit_edge
from chipsweep.workers.validation.cases import EDGE_NPUS, Result, edge_cases
from chipsweep.workers.validation.report import edge_fitted_cases


@pytest.fixture(scope="module")
def asic_results() -> list[Result]:
    return edge.predict(edge_cases("asic"))


@pytest.fixture(scope="module")
def out_of_source() -> list[Result]:
    return serving.loso()


@pytest.fixture(scope="module")
def in_sample() -> list[Result]:
    return serving.in_source()


def _abs_errors(results: list[Result], family: str | None = None, **match: str) -> np.ndarray:
    keep = [r for r in results if (family is None or r.case.family == family)  # type: ignore[attr-defined]
            and all(getattr(r.case, k) == v for k, v in match.items())]
    return np.array([abs(r.error) if np.isfinite(r.predicted) else np.inf for r in keep])


# ---------------------------------------------------------------------------------------------------------
# serving: coverage, the issue-14 bounds, the named cases
# ---------------------------------------------------------------------------------------------------------
def test_every_measurement_on_a_catalogued_device_gets_an_answer(out_of_source: list[Result]) -> None:
    published = []
    for path in (serving.CSV_2026, serving.CSV_AZURE):
        with open(path, newline="") as fh:
            published += [r["case_id"] for r in csv.DictReader(fh)]
    answered = {r.case.case_id: r.predicted for r in out_of_source}
    assert len(published) == 3128 + 30 and set(published) <= set(answered)
    assert all(np.isfinite(v) and v > 0 for v in answered.values())
    # plus the llama.cpp PR #2959 M2 Max rows and the MLPerf v4.1 rows of inference_runs.csv
    assert len(answered) == 3128 + 30 + 4 + 2


# Issue 14's bounds on the out-of-source errors, per metric family: (median, 90th percentile).
BOUNDS = {
    "serving_throughput": (0.20, 0.50), "decode": (0.20, 0.50), "prefill": (0.20, 0.50),
    "energy_per_token": (0.25, 0.50), "power": (None, 0.50), "tpot": (None, 0.50), "ttft": (None, 0.50),
    "request_throughput": (None, 0.50),
}
# The bounds this model misses, with the level it reaches (a regression guard, not a target) and why; README.md
# ("How accurate is it") and docs/accuracy.md ("Why the misses") carry the same table.
MISSED = {
    ("prefill", "median"): (0.25, "on edge chips the bound is met (below); llama.cpp on datacenter GPUs misses it: "
                                  "its one other source is the 2023 M2 Max PR table, and the H100 PCIe reaches 23 % "
                                  "of its fp16 peak where the M2 Max reaches ~60 %"),
    ("prefill", "p90"): (1.00, "A100 SXM and L40S F16 rows run at 1/4-1/13 of every other chip's fraction of peak"),
    ("energy_per_token", "median"): (0.37, "36.6 % since SGLang's two LMSYS headline numbers, whose deployment "
                                           "(nodes per pool, ep, precision) is an assumption, are predicted and never "
                                           "fitted (2026-12-07, a thirty-second session): each source weighs the same "
                                           "in the every-engine fit, and without them vLLM's held-out set, fitted "
                                           "from it on Azure's 17 MI300X runs, took 110 us per layer (61 before) and "
                                           "105 us per MoE layer pass (0): held-out ML.ENERGY TPOT +40 % dense, +25 % "
                                           "MoE at the median (+23 %, +3 % before); 30.3 % after the serving core's "
                                           "data-parallel-attention fixes the same day, which moved the same "
                                           "every-engine constants (no ML.ENERGY row's own prediction moved); "
                                           "27.6 % since a constant only MoE (or 8-bit) runs tell weighs each "
                                           "source once among those runs and the fit descends twice (2026-12-05, a "
                                           "fourteenth session): held out, ML.ENERGY's MoE runs no longer read 30-100 "
                                           "% fast, and the power prior's overestimate (+10 to +60 %) no longer "
                                           "cancels in their J/token; "
                                           "25.1 %, 0.1 point over, since a prompt longer than the token budget "
                                           "pays each pass's weight reads and fixed time (2026-12-05, a thirteenth "
                                           "session), which moved the every-engine constants held-out ML.ENERGY runs "
                                           "on; 21.7 % (met) between that and latent attention's expanded prompts, "
                                           "29.4-29.8 % before; the datacenter power prior (idle 0.825 of TDP) runs "
                                           "its power 20-50 % high at light load out of source"),
    ("energy_per_token", "p90"): (1.10, "109.2 % since SGLang's headline numbers are predicted, not fitted, and "
                                        "the datacenter chips without a GEMM measurement of their own take their "
                                        "twin's or core architecture's (2026-12-07, a thirty-second session: the "
                                        "every-engine MoE constants held-out ML.ENERGY takes, as the median above); "
                                        "89.8 % after the data-parallel-attention fixes the same day; 67.7 % since a constant only MoE runs tell weighs each source once among "
                                        "those runs (as the median above); "
                                        "58.8 % since a long prompt pays each pass (2026-12-05, a thirteenth "
                                        "session); 53.0 % since latent attention's prompts run expanded (70.5 % "
                                        "before; ML.ENERGY's DeepSeek-R1 J/token +116 % -> +49 % at 8 requests): only two power sources, measuring different things (H100/B200 board power "
                                        "under vLLM, a Jetson CPU+GPU rail under llama.cpp): out of source a class's "
                                        "power runs on its prior (datacenter: asic.yaml serving.power_prior, from "
                                        "the sourced training draw), and J/token carries ML.ENERGY's out-of-source "
                                        "throughput error (p90 62 %), whose vLLM constants come from Azure's MI300X "
                                        "runs alone; 65.3 % before the datacenter prior (2026-12-03), "
                                        "when power predicted 45 % low offset the throughput predicted low; 74.6 % -> "
                                        "76.1 % once ML.ENERGY's MoE runs split attention over every GPU as their "
                                        "harness launches them (2026-12-04); 90.8 % once MoE layers pay their "
                                        "fixed time, which removed the fast MoE throughput that offset the power "
                                        "prior (2026-12-05); 70.5 % once 8-bit matrix multiplies pay their own time per layer"),
    ("tpot", "p90"): (0.73, "72.5 % since SGLang's two headline numbers of an assumed deployment are predicted, "
                            "not fitted (2026-12-07, a thirty-second session): held out, ML.ENERGY's vLLM runs take "
                            "vLLM's constants from Azure's 17 MI300X runs, fitted from an every-engine start "
                            "that moved (110 us per layer against 61, 105 us per MoE layer pass against 0): TPOT "
                            "+40 % dense, +25 % MoE at the median (+23 %, +3 % before); 56.3 % after the serving core's "
                            "data-parallel-attention fixes that day (no ML.ENERGY row's own prediction moved: the "
                            "every-engine fit, where each source weighs the same, did); 46.7 % (met) before"),
    ("power", "p90"): (0.62, "56.7 % (2026-12-05); power is fitted within a chip class, and each class has one power source: out of "
                             "source the datacenter class runs on its derived prior (idle 0.825 of TDP), the edge "
                             "class on the fallback (idle 25 % of TDP, full load at peak); the Jetson's 7 W mode and "
                             "ML.ENERGY's largest batches sit furthest from them (56.3 % with the Jetson-based "
                             "fallback for both, median 45.3 % -> 24.1 % with the prior)"),
    ("request_throughput", "p90"): (2.35, "231.8 % since the fit descends twice (2026-12-05, a fourteenth session); "
                                          "225.5 % since a long prompt pays each pass (2026-12-05, a thirteenth "
                                          "session: the every-engine constants moved); SmolHub Jetson single-stream "
                                          "rates: a fit of llama.cpp on two other "
                                          "sources leaves the 7 W mode's half-gated GPU and 4-core 960 MHz CPU "
                                          "(kernel launches, host work) to constants fitted at 15-25 W; 354 % before "
                                          "the prompts' chunks were charged as compute-bound iterations; 142.3 % "
                                          "-> 151.2 % with vLLM's one-shot all-reduce, which moves the every-engine "
                                          "constants a held-out source falls back on; 141.8 % -> 221.0 % once a "
                                          "prompt's chunks carry even shares of it (a 2,048-token prompt in "
                                          "llama.cpp's 2,048-token batch beside one decode had paid two full "
                                          "2,047-token chunks, twice its compute): the model's prompts on the Jetson "
                                          "are now what the other sources' constants give, and these runs read "
                                          "slower (in sample 15.7 % -> 23.9 % median)"),
}


@pytest.mark.parametrize("family", list(BOUNDS))
def test_out_of_source_errors_meet_the_issue_bounds_or_their_recorded_miss(out_of_source: list[Result],
                                                                          family: str) -> None:
    e = _abs_errors(out_of_source, family)
    assert len(e) > 0
    stats = {"median": float(np.median(e)), "p90": float(np.percentile(e, 90))}
    for which, bound in zip(("median", "p90"), BOUNDS[family], strict=True):
        if (family, which) in MISSED:
            ceiling, _why = MISSED[(family, which)]
            assert stats[which] <= ceiling, (family, which, stats[which])
        elif bound is not None:
            assert stats[which] <= bound, (family, which, stats[which])


def test_edge_chips_prefill_and_decode_meet_the_medians_and_the_p90(out_of_source: list[Result]) -> None:
    """Edge prefill p90: 48.6 % until the 16-bit head of 2026-12-02, 53.5 % with it, 43.2 % once a prompt's chunks
    are charged as the compute-bound iterations they run in."""
    rows = {(fam, src): (med, p90) for fam, src, _n, med, p90 in serving.summary(out_of_source)}
    for fam in ("prefill", "decode"):
        assert rows[(fam, "edge chips")][0] <= 0.20, fam
        assert rows[(fam, "edge chips")][1] <= 0.50, fam


def test_online_runs_take_the_concurrency_of_their_own_run() -> None:
    # Little's law per published run (model, system, lengths, offered rate): runs that share a model, system and
    # achieved rate but differ in lengths must not borrow each other's latencies
    cases = [c for c in serving.serving_cases() if c.source == "trtllm_online_v0.14"]
    table = serving._littles_law(cases, serving.case_table(cases))
    conc = dict(zip([c.case_id for c in cases], table.column("concurrency").to_pylist(), strict=True))
    def run(c: serving.ServingCase) -> tuple:
        return (c.row["model"], c.row["chip"], c.row.get("n_chips"), c.row["prompt_len"], c.row["gen_len"],
                c.extra["offered"])

    runs: dict[tuple, dict[str, float]] = {}
    for c in cases:
        runs.setdefault(run(c), {})[c.metric] = c.measured / c.scale
    checked = set()
    for c in cases:
        m = runs[run(c)]
        want = max(1, round(c.extra["rate"] * (m["ttft_s"] + (c.row["gen_len"] - 1) * m["tpot_s"])))
        assert int(conc[c.case_id]) == want, c.case_id
        checked.add((c.row["model"], c.extra["rate"], c.row["prompt_len"], c.row["gen_len"]))
    # the same model at the same achieved rate with other lengths is a different run
    assert ("llama3.1_8b", 4.0, 467, 256) in checked and ("llama3.1_8b", 4.0, 467, 16) in checked


def test_a_burst_of_requests_waits_for_the_prompts_ahead_of_it(out_of_source: list[Result]) -> None:
    # QPS=INF online rows: 500 requests sent at once; the mean TTFT is about half the time to prefill all 500
    # prompts (seconds, not the tens of milliseconds of one prompt alone), within 30 % out of source
    burst = [r for r in out_of_source if r.case.derived == "burst"]  # type: ignore[attr-defined]
    assert len(burst) == 12
    assert all(r.case.measured > 1000 and abs(r.error) <= 0.30 for r in burst), [
        (r.case.case_id, r.predicted, r.case.measured) for r in burst]


def test_a_burst_decodes_beside_the_prompt_chunks_of_the_requests_behind_it(out_of_source: list[Result]) -> None:
    # QPS=INF online rows: until every prompt is prefilled, each iteration carries the engine's max_tokens (8,192) of
    # prompt chunks beside the decodes, so a request decodes one token per such iteration while prompts remain behind
    # it, then at the batch's decode step. At 16 output tokens that is ~10x the decode step alone (measured 190-548
    # ms); out of source within 20 % for the 467-token prompts
    itl = [r for r in out_of_source if r.case.derived == "burst_itl"]  # type: ignore[attr-defined]
    assert len(itl) == 12
    assert all(r.case.measured > 150 for r in itl if r.case.row["gen_len"] == 16)
    assert all(abs(r.error) <= 0.20 for r in itl if r.case.row["prompt_len"] == 467), [
        (r.case.case_id, r.predicted, r.case.measured) for r in itl]
    # the derivation itself: 4 requests of 100-token prompts at 40 prompt tokens/s (10 s to prefill them all),
    # 20-token chunks (0.5 s), a 10 ms decode step, 3 output tokens: the first three requests take both of their
    # later tokens beside a chunk (0.51 s each), the last decodes alone
    case = dataclasses.replace(itl[0].case, row={**itl[0].case.row, "prompt_len": 100, "gen_len": 3},
                               extra={**itl[0].case.extra, "requests": 4.0, "max_tokens": 20.0})  # type: ignore[type-var]
    out = {"prefill_tokens_per_s": np.array([10.0]), "batch": np.array([4.0]), "decode_tokens_per_s": np.array([100.0])}
    assert serving._extract([case], out)[0] == pytest.approx((3 * 0.51 + 0.01) / 4 * 1000.0)


def test_mlperf_llama2_70b_on_8_h100_is_within_20pct(out_of_source: list[Result], in_sample: list[Result]) -> None:
    for results in (out_of_source, in_sample):
        e = _abs_errors(results, source="mlperf_v4.1")
        assert len(e) == 2 and e.max() <= 0.20


def test_m2_ultra_prompt_processing_and_decode_are_within_20pct(in_sample: list[Result]) -> None:
    # llama.cpp on the M2 Ultra (XiongjieDai): prompt processing (under-predicted by ~50 % before issue 14) and
    # decode with the catalog's constants; decode at 4-8k tokens of context stays high (docs/accuracy.md: llama.cpp's
    # attention without -fa slows more with context than its bandwidth says)
    pre = _abs_errors(in_sample, "prefill", chip="apple_m2_ultra")
    dec = _abs_errors(in_sample, "decode", chip="apple_m2_ultra")
    assert len(pre) == 16 and pre.max() <= 0.20
    assert len(dec) == 16 and np.median(dec) <= 0.20


# ---------------------------------------------------------------------------------------------------------
# serving: the fitted constants
# ---------------------------------------------------------------------------------------------------------
def test_fitted_serving_constants_are_what_their_fit_gives() -> None:
    catalog = load_catalog()
    cases = serving.serving_cases(catalog)
    prep = serving.Prepared.build(cases, catalog)
    f = serving.fit(prep, np.arange(len(cases)), catalog)
    assert f.efficiency == catalog.asic["serving"]["efficiency"]
    assert f.power == catalog.asic["serving"]["power"]


def test_stored_held_out_serving_fits_are_current_and_what_a_refit_gives() -> None:
    """`chipsweep validate` predicts each serving source with the constants fitted without it; those fits are stored
    (tests/validation/serving_held_out_fits.json, `--write-held-out`) under the key of what they were fitted on. The
    stored key is today's (the file is current), every source has its fit, and the fit without one source, recomputed
    here, is the stored one."""
    catalog = load_catalog()
    cases = serving.serving_cases(catalog)
    prep = serving.Prepared.build(cases, catalog)
    stored = serving.stored_fits(serving.fits_key(prep, catalog))
    assert set(stored) == set(prep.source.tolist()), "stale: run python -m chipsweep.workers.validation.serving --write-held-out"
    src = "mlenergy_vllm"
    again = serving.fit(prep, np.nonzero(prep.source != src)[0], catalog)
    assert again.efficiency == stored[src].efficiency and again.power == stored[src].power


def test_the_held_out_key_covers_every_module_the_serving_core_times_with() -> None:
    """The stored fits' key hashes the core's source and every chipsweep module it imports, but training.py, which
    gives it only the economics (hours per year, owned-cluster rates) that no fitted metric reads."""
    import ast
    from pathlib import Path

    core = Path(serving.inference.__file__)
    imported = {node.module.rsplit(".", 1)[-1] + ".py" for node in ast.walk(ast.parse(core.read_text()))
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chipsweep.workers")}
    hashed = {p.name for p in serving.FIT_CODE}
    assert imported - {"training.py"} <= hashed and {"inference.py", "inference_rows.py", "serving.py"} <= hashed


def test_held_out_fits_are_not_reused_once_an_input_changes(tmp_path) -> None:
    """A stored fit stands only for the inputs it was fitted on: a changed input column (the memory bandwidth of the
    vLLM rows, as a catalog edit would move it) or a changed measurement gives another key, and the stored fits are
    not used under it."""
    catalog = load_catalog()
    prep = serving.Prepared.build(serving.serving_cases(catalog), catalog)
    key = serving.fits_key(prep, catalog)
    path = tmp_path / "fits.json"
    path.write_text(serving.json.dumps({"key": key, "fits": {"x": {"efficiency": [], "power": []}}}))
    assert set(serving.stored_fits(key, path)) == {"x"}
    i = serving.ENGINES.index("vllm")
    moved = dataclasses.replace(prep, x={**prep.x, "mem_bw": prep.x["mem_bw"] * np.where(prep.engine_idx == i, 1.01, 1.0)})
    assert serving.fits_key(moved, catalog) != key and serving.stored_fits(serving.fits_key(moved, catalog), path) == {}
    measured = dataclasses.replace(prep, cases=[dataclasses.replace(prep.cases[0], measured=prep.cases[0].measured * 2),
                                                *prep.cases[1:]])
    assert serving.fits_key(measured, catalog) != key


def test_held_out_fits_under_another_key_are_fitted_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    """Rows the stored fits were not fitted on (here a few runs of two sources) get each source's fit computed on the
    other's runs, with a warning that names the command that stores them."""
    catalog = load_catalog()
    prep = serving.Prepared.build(serving.serving_cases(catalog), catalog)
    rows = np.concatenate([np.nonzero(prep.source == s)[0][:6] for s in ("mlperf_v4.1", "trtllm_v0.17")])
    sub = dataclasses.replace(
        prep, cases=[prep.cases[i] for i in rows], x={k: v[rows] for k, v in prep.x.items()},
        cal={k: v[rows] for k, v in prep.cal.items()}, chip_idx=prep.chip_idx[rows], engine_idx=prep.engine_idx[rows],
        classes=[prep.classes[i] for i in rows], measured=prep.measured[rows], source=prep.source[rows])
    with caplog.at_level("WARNING", logger=serving.log.name):
        fits = serving.held_out_fits(sub, catalog)
    assert set(fits) == {"mlperf_v4.1", "trtllm_v0.17"}
    assert "--write-held-out" in caplog.text
    again = serving.fit(sub, np.nonzero(sub.source != "mlperf_v4.1")[0], catalog)
    assert fits["mlperf_v4.1"].efficiency == again.efficiency


def test_a_constant_only_moe_runs_tell_weighs_each_source_once_among_its_moe_runs() -> None:
    catalog = load_catalog()
    cases = serving.serving_cases(catalog)
    prep = serving.Prepared.build(cases, catalog)
    rows = np.arange(len(cases))
    member = np.zeros(len(rows), dtype=np.int64)  # one group: every run
    moe = prep.x["moe_layers"] > 0
    w_moe = serving._source_weights(prep, rows, member, "moe_fraction")
    w_all = serving._source_weights(prep, rows, member, "mem_bw_fraction")
    assert np.all(w_moe[~moe] == 0.0) and np.all(w_all > 0)
    for src in sorted(set(prep.source[moe].tolist())):
        # each source with MoE runs carries one weight over them, whether it has 2 MoE runs or 141 among 862
        assert w_moe[moe & (prep.source == src)].sum() == pytest.approx(1.0), src
        assert w_all[prep.source == src].sum() == pytest.approx(1.0), src
    trt = moe & (prep.source == "trtllm_v0.13")
    assert trt.sum() > 20 and w_all[trt].sum() < 0.2  # spread over every run, its MoE runs would weigh under 0.2


def test_fitted_serving_constants_stay_inside_physical_bounds_and_name_their_runs(out_of_source: list[Result]) -> None:
    serving_yaml = load_catalog().asic["serving"]
    bounds = serving_yaml["bounds"]["value"]
    cases = [r.case for r in out_of_source]
    for s in serving_yaml["efficiency"] + serving_yaml["power"]:
        for key, (lo, hi) in bounds.items():
            if key in s:
                assert lo <= s[key] <= hi, (s["applies_to"], key, s[key])
        # no bandwidth above what the chip's memory delivers (mem_bw_fraction is a share of the measured STREAM-like
        # bandwidth, defaults.yaml memory_reach where none is measured: at most 95 % of the published peak)
        assert s.get("mem_bw_fraction", 0.0) <= 1.0
        assert s["sources"] and s["runs"] >= 2
        # fitted_on: source:engine:chip selectors of the runs (their throughput/latency rows fit the efficiency sets,
        # their energy/power rows the power sets)
        named = [cid for sel in s["fitted_on"] for cid in serving.expand_selector(sel, cases)]  # type: ignore[arg-type]
        assert all(serving.expand_selector(sel, cases) for sel in s["fitted_on"])  # type: ignore[arg-type]
        assert len(named) >= s["runs"], s["applies_to"]


def test_ml_energy_moe_runs_split_attention_over_every_gpu_as_their_harness_launches_them() -> None:
    """ML.ENERGY's harness starts vLLM with --tensor-parallel-size <GPUs> unless a config sets data-parallel-size (none
    of its MoE configs does: `enable-expert-parallel: true` alone, ml-energy/benchmark configs/vllm/lm-arena-chat/
    Qwen/Qwen3-235B-A22B-Instruct-2507-FP8/H100/monolithic.config.yaml @ f7537b49), and the leaderboard says DP=1:
    attention is tensor-parallel over every GPU and the experts are spread over the same GPUs. The CSV's `tp` column
    reads 1 for these runs; they are not attention data-parallel."""
    moe = [c for c in serving.serving_cases() if c.source == "mlenergy_vllm" and int(c.row.get("ep", 1)) > 1]
    assert len(moe) >= 4 * 60
    assert all(c.row["ep"] == c.row["n_chips"] and "dp_attention" not in c.row for c in moe)
    assert {c.row["model"] for c in moe} >= {"qwen3_235b_a22b", "llama4_scout", "deepseek_v3"}


def test_a_chip_whose_vendor_class_has_only_its_runs_repeats_that_sets_values() -> None:
    """A vendor's class set fitted on one chip's runs, and that chip's own set, see exactly the same runs: the chip's
    set repeats the vendor set's values (a second descent on the same runs would wander along what they cannot tell
    apart: the MI300X's vLLM time per layer read 128 us against its vendor set's 61 us, 2026-12-04), and it still
    names the chip and its runs."""
    sets = load_catalog().asic["serving"]["efficiency"]
    vendor = next(s for s in sets if s["engine"] == "vllm" and s["applies_to"] == "vendor:AMD/datacenter_training")
    chip = next(s for s in sets if s["engine"] == "vllm" and s["applies_to"] == "amd_mi300x")
    assert chip["fitted_on"] == vendor["fitted_on"] and chip["runs"] == vendor["runs"]
    for key in serving.EFFICIENCY_KEYS:
        if key in vendor:
            assert chip[key] == vendor[key], key


def test_chips_of_one_compute_share_their_serving_compute_constants_and_keep_their_own_memory() -> None:
    """The H200 and H800 are the H100's die at its clocks and power (catalog `same_compute_as`): an engine's kernel
    rates and fixed times on them are one set, fitted on all their runs ('compute:nvidia_h100_sxm'); each chip keeps its
    own memory's share (HBM3 against HBM3e). Fitted per chip, TensorRT-LLM's fp8 quantisation time per layer read
    0.03 ms on the H100 and 0.11 ms on the H200, and the H200 served Llama 3 70B slower per user at low concurrency."""
    from chipsweep.workers.inference_rows import EFFICIENCY_KEYS, compute_roots, serving_calibration

    catalog = load_catalog()
    ids = ["nvidia_h100_sxm", "nvidia_h200_sxm", "nvidia_h800_sxm", "nvidia_l40s"]
    assert compute_roots(catalog, ids) == ["nvidia_h100_sxm"] * 3 + [None]
    # the B200 is the GB200's die at a lower power limit: its compute is the GB200's, and the GB200 names itself
    assert compute_roots(catalog, ["nvidia_b200_hgx", "nvidia_gb200_per_gpu"]) == ["nvidia_gb200_per_gpu"] * 2
    sets = catalog.asic["serving"]["efficiency"]
    shared = next(s for s in sets if s["engine"] == "tensorrt_llm" and s["applies_to"] == "compute:nvidia_h100_sxm")
    assert {sel.rsplit(":", 1)[1] for sel in shared["fitted_on"]} == {"nvidia_h100_sxm", "nvidia_h200_sxm"}
    for s in sets:  # a chip of a shared compute fits only its memory's share (and its link's) on its own
        if s["applies_to"] in ("nvidia_h100_sxm", "nvidia_h200_sxm"):
            assert set(s) & set(EFFICIENCY_KEYS) <= {"mem_bw_fraction", "link_fraction"}, s
    cal = serving_calibration(catalog, ids)
    e, n = serving.ENGINES.index("tensorrt_llm"), len(ids)
    at = {k: cal[k][e * n:(e + 1) * n] for k in EFFICIENCY_KEYS}
    for key in ("compute_fraction", "attention_fraction", "layer_overhead_s", "quant_layer_overhead_s"):
        assert at[key][0] == at[key][1] == at[key][2], key
    texts = [cal["texts"][c] for c in cal["calibrated_on"][e * n:(e + 1) * n]]
    assert "nvidia_h100_sxm, nvidia_h200_sxm" in texts[2] and texts[2].startswith("extrapolated")  # H800: no runs
    import chipsweep

    rows = [dict(model="llama3_70b", chip=c, n_chips=t, concurrency=8, prompt_len=1024, gen_len=1024,
                 compute_precision="fp8", engine="tensorrt_llm") for c in ids[:2] for t in (1, 2, 4, 8)]
    per_user = chipsweep.evaluate(rows, kind="inference").column("tokens_per_s_per_user").to_pylist()
    assert all(h200 >= h100 for h100, h200 in zip(per_user[:4], per_user[4:], strict=True)), per_user


def test_power_constants_are_fitted_within_a_chip_class_never_across() -> None:
    # ML.ENERGY measures H100/B200 board power, SmolHub a Jetson CPU+GPU rail: one population per chip class, and a
    # class without power runs keeps the catalog's fallback (never another class's fit)
    catalog = load_catalog()
    classes = {c.chip_class for c in catalog.chips.values()}
    for s in catalog.asic["serving"]["power"]:
        where = s["applies_to"]
        assert where in classes or where in catalog.chips, where
        if where in catalog.chips:
            continue
        chips = {sel.split(":")[2] for sel in s["fitted_on"]}
        assert {catalog.chips[c].chip_class for c in chips} == {where}, (where, chips)


def test_host_time_per_sequence_is_fitted_per_engine_on_runs_of_several_sequences() -> None:
    # vLLM's scheduler, sampler and output processing run on the host for every running sequence (vLLM v0.6.0 blog):
    # ML.ENERGY's iterations grow with concurrency faster than the GPU work does. It is the engine's software, so one
    # value per engine; batch-1 runs cannot tell it from the time per layer, so engines measured only at one sequence
    # keep the fallback (0)
    catalog = load_catalog()
    cases = serving.serving_cases(catalog)
    prep = serving.Prepared.build(cases, catalog)
    fallback = catalog.asic["serving"]["fallback"]["seq_overhead_s"]["value"]
    assert fallback == 0.0
    found = {}
    for s in catalog.asic["serving"]["efficiency"]:
        if "seq_overhead_s" in s:
            assert s["applies_to"] == "*" and s["engine"] != "*", s
            found[s["engine"]] = s["seq_overhead_s"]
            rows = [i for i, c in enumerate(cases) if c.engine == s["engine"]]
            seqs = np.fmin(prep.x["batch"][rows], prep.x["concurrency"][rows])
            assert np.any(~(seqs <= 1)), s["engine"]  # some run holds several sequences (NaN: the most that fit)
    # 111 us per sequence and scheduler call since 2026-12-03, set by Azure's V0 runs (10 forward passes per call: 11 us
    # per iteration); ML.ENERGY's runs schedule asynchronously, so the chips' step hides it there (33 us before)
    assert 1e-5 <= found["vllm"] <= 1.5e-4
    # the C++ runtime keeps nearly ahead of the GPU: 0 on NVIDIA's own tables, 3 us since Azure's GB200 runs of
    # 1,000 requests in flight joined the fit (against vLLM's 33 us)
    assert found["tensorrt_llm"] <= 0.2 * found["vllm"]
    assert "llama_cpp" not in found  # every llama.cpp run decodes one sequence


def test_link_share_is_fitted_per_engine_and_chip_on_runs_whose_all_reduces_run_at_bandwidth(
        out_of_source: list[Result]) -> None:
    # what share of its link a chip's collectives reach depends on its system (NVLink switches, or PCIe through the
    # host's switches and sockets) and on the engine: one value per engine and chip, fitted only where several runs
    # over several chips move all-reduce messages of >= 1 MB (below that a collective is latency-bound)
    catalog = load_catalog()
    cases = serving.serving_cases(catalog)
    prep = serving.Prepared.build(cases, catalog)
    told = serving._link_rows(prep)
    fallback = catalog.asic["serving"]["fallback"]["link_fraction"]["value"]
    fitted = {}
    for s in catalog.asic["serving"]["efficiency"]:
        if "link_fraction" not in s:
            continue
        assert s["engine"] != "*" and s["applies_to"] in catalog.chips, s
        rows = np.array([i for i, c in enumerate(cases) if c.engine == s["engine"] and c.chip == s["applies_to"]])
        assert int(np.count_nonzero(told[rows])) >= 2, s["applies_to"]
        fitted[(s["engine"], s["applies_to"])] = s["link_fraction"]
    # batch-1 decodes over several chips (mlc-ai/llm-perf-bench) never tell it: llama.cpp, MLC and 2023 vLLM keep it;
    # nor do ML.ENERGY's vLLM runs on NVLink 4/5, where halving the share moves their median prediction < 5 %
    assert not [k for k in fitted if k[0] in ("llama_cpp", "mlc", "vllm_2023")], fitted
    assert ("vllm", "nvidia_b200_hgx") not in fitted and ("vllm", "nvidia_h100_sxm") not in fitted
    one = [i for i, c in enumerate(cases) if c.source == "mlc_llm_perf_bench" and prep.x["n_chips"][i] > 1]
    assert one and not told[one].any()
    # 8 L40S pass their all-reduces over PCIe 4.0 x16 (no NVLink): half the link, where the fallback assumes 75 %;
    # with it the TensorRT-LLM TP4/TP8 tables land within 20 % (median), where they were 35-65 % fast before the share
    # was fitted (2026-12-03); out of source: the v0.13 rows take the share v0.17's runs fitted, and the reverse
    assert 0.3 <= fitted[("tensorrt_llm", "nvidia_l40s")] <= 0.8 * fallback  # about half: 0.50-0.53 over 2026-12's refits
    l40s = _abs_errors([r for r in out_of_source if r.case.row.get("n_chips", 1) > 1],  # type: ignore[attr-defined]
                       "serving_throughput", chip="nvidia_l40s")
    assert len(l40s) == 104 and float(np.median(l40s)) <= 0.20


def test_a_class_without_fitted_power_starts_from_its_prior_and_fitted_sets_replace_it() -> None:
    # asic.yaml serving.power_prior: datacenter training accelerators draw 0.93 of TDP while training (defaults.yaml
    # power_draw_fraction), which the fallback weights put at an idle share of 0.825; an edge chip keeps the fallback
    from chipsweep.workers.inference_rows import serving_calibration
    catalog = load_catalog()
    ids = ["nvidia_h100_sxm", "nvidia_a100_sxm_80gb", "nvidia_jetson_orin_nano_8gb"]
    prior = catalog.asic["serving"]["power_prior"]
    assert [p["applies_to"] for p in prior] == ["datacenter_training"]
    draw, u_c = catalog.defaults["defaults"]["power_draw_fraction"]["value"], 0.6
    assert prior[0]["idle_fraction"] == pytest.approx((draw - u_c) / (1 - u_c), abs=1e-9)
    bare = serving_calibration(catalog, ids, efficiency=[], power=[])["power"]["idle_fraction"]
    fallback = catalog.asic["serving"]["fallback"]["idle_fraction"]["value"]
    assert list(bare) == [prior[0]["idle_fraction"], prior[0]["idle_fraction"], fallback]
    fitted = serving_calibration(catalog, ids)["power"]["idle_fraction"]  # ML.ENERGY's fits replace the prior
    sets = {s["applies_to"]: s for s in catalog.asic["serving"]["power"]}
    assert fitted[0] == sets["nvidia_h100_sxm"]["idle_fraction"]
    assert fitted[1] == sets["datacenter_training"]["idle_fraction"] != prior[0]["idle_fraction"]


def test_host_time_per_sequence_adds_to_every_serving_iteration() -> None:
    import chipsweep

    # scheduled in turn (vLLM schedules asynchronously by default: tests/test_inference.py)
    base = {"model": "llama3_8b", "chip": "nvidia_h100_sxm", "engine": "vllm", "prompt_len": 512, "gen_len": 256,
            "async_scheduling": "false"}
    rows = [dict(base, concurrency=c, **{"cal.seq_overhead_s": h}) for c in (1, 64) for h in (0.0, 5e-5)]
    c1_off, c1_on, c64_off, c64_on = chipsweep.evaluate(rows, kind="inference").to_pylist()
    assert c1_on["tpot_s"] - c1_off["tpot_s"] == pytest.approx(5e-5, rel=1e-6)
    assert c64_on["tpot_s"] - c64_off["tpot_s"] == pytest.approx(64 * 5e-5, rel=1e-6)
    with pytest.warns(Warning, match="cal.seq_overhead_s"):
        bad = chipsweep.evaluate([base, dict(base, **{"cal.seq_overhead_s": -1})], kind="inference")
    reason = bad.column("infeasible_reason").to_pylist()[1]
    assert "cal.seq_overhead_s" in reason and "-1" in reason and "allowed" in reason, reason


def test_calibrated_on_names_the_sources_or_the_extrapolation() -> None:
    import chipsweep

    out = chipsweep.evaluate([{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "engine": "tensorrt_llm"},
                         {"model": "llama3_8b", "chip": "nvidia_rtx_4090"},
                         {"model": "llama3_8b", "chip": "intel_gaudi3", "engine": "vllm"}], kind="inference")
    h100, rtx, gaudi = out.column("calibrated_on").to_pylist()
    assert "trtllm_v0.13" in h100 and "nvidia_h100_sxm" in h100
    assert "xiongjiedai_llamacpp" in rtx
    assert gaudi.startswith("extrapolated")


# ---------------------------------------------------------------------------------------------------------
# edge ASICs
# ---------------------------------------------------------------------------------------------------------
def test_fitted_asic_constants_are_what_their_fit_gives() -> None:
    asic_yaml = load_catalog().asic
    refit = fit_edge()
    assert refit["asic.gpu_power_factor"] == pytest.approx(asic_yaml["asic"]["gpu_power_factor"]["value"], rel=2e-3)
    assert refit["asic.misc_power_density_ratio"] == pytest.approx(asic_yaml["asic"]["misc_power_density_ratio"]["value"], abs=2e-3)
    # the fit reads TOPS/W at shares 0 and 1 and interpolates the power between them: the model's own answer at the
    # catalog's share is that interpolation (full-load power is linear in the share)
    import copy

    from chipsweep.workers.validation import edge
    from chipsweep.workers.validation.cases import asic_cases

    catalog = load_catalog()
    npus = [c for c in asic_cases(catalog) if c.source == "asic_edge_tops_per_w"]

    def at(r: float) -> np.ndarray:
        c = copy.deepcopy(catalog)
        c.asic["asic"]["misc_power_density_ratio"]["value"] = r
        return np.array([res.predicted for res in edge.predict(npus, c)])

    r = asic_yaml["asic"]["misc_power_density_ratio"]["value"]
    assert np.allclose(1.0 / at(r), 1.0 / at(0.0) + r * (1.0 / at(1.0) - 1.0 / at(0.0)), rtol=1e-9)


def test_every_fitted_on_name_is_a_validation_case(asic_results: list[Result]) -> None:
    ids = {r.case.case_id for r in asic_results}
    assert edge_fitted_cases() <= ids


def test_asic_notes_worked_checks_are_reproduced_within_2pct(asic_results: list[Result]) -> None:
    checks = [r for r in asic_results if r.case.source == "asic_worked_checks"]
    assert len(checks) == 12
    for r in checks:
        assert abs(r.error) < 0.02, (r.case.case_id, r.predicted, r.case.measured)


@pytest.mark.parametrize("chip", list(EDGE_NPUS))
def test_edge_npu_tops_per_w_lands_within_2x_of_published(asic_results: list[Result], chip: str) -> None:
    (r,) = [r for r in asic_results if r.case.case_id == f"asic_tops_per_w_{chip}"]
    assert 0.5 <= r.predicted / r.case.measured <= 2.0, (chip, r.predicted, r.case.measured)


def test_chipsweep_validate_runs_the_serving_and_edge_groups() -> None:
    inf = {r.case.source for r in validation.run("inference")}
    asic = {r.case.source for r in validation.run("asic")}
    assert {"serving_throughput/mlperf_v4.1", "prefill/xiongjiedai_llamacpp", "energy_per_token/mlenergy_vllm",
            "decode/jetson_ai_lab_mlc"} <= inf
    assert {"asic_worked_checks", "asic_edge_tops_per_w", "asic_fit_gpu_power"} <= asic
    text = validation.render_serving()
    assert "serving_throughput" in text and "median" in text and "p90" in text and "in-sample" in text
    # each source's row carries its in-sample figures beside the out-of-source ones, as README's table quotes them
    mlperf = next(line for line in text.splitlines() if line.startswith("serving_throughput") and "mlperf_v4.1" in line)
    assert mlperf.count("%") == 4 and "nan" not in mlperf, mlperf


def test_jetson_power_modes_scale_the_peak_by_clock_and_powered_tpcs() -> None:
    """NVIDIA's nvpmodel files for the 8 GB Orin Nano (P3767-0003, catalog notes): the 7 W mode powers 2 of the
    GPU's 4 TPCs (TPC_PG_MASK 252) at 408 MHz, the other modes all 4; the 20 dense TOPS are quoted at 625 MHz on 4."""
    modes = serving.jetson_modes(load_catalog(use_env=False))
    assert set(modes) == {"7W", "15W", "25W", "MAXN_SUPER", "ORIGINAL_15W"}
    assert modes["7W"]["tpcs"] == 2 and all(m["tpcs"] == 4 for k, m in modes.items() if k != "7W")
    assert modes["7W"]["scale"] == pytest.approx(408 / 625 / 2)
    assert modes["ORIGINAL_15W"]["scale"] == 1.0 and modes["MAXN_SUPER"]["scale"] == pytest.approx(1020 / 625)
    assert (modes["7W"]["gbs"], modes["15W"]["gbs"], modes["25W"]["gbs"]) == (68, 68, 102)


def test_the_readme_serving_table_is_what_validate_prints(out_of_source: list[Result], in_sample: list[Result]) -> None:
    """README.md's serving table quotes `chipsweep validate --kind inference --summary` (out of source) and the
    in-sample errors of the same rows: cases and the four figures as the code gives them now, within their last
    digit."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| metric and source (as `validate --kind inference --summary` prints them) |"):].split("\n\n", 1)[0].splitlines()[2:]
    oos = {(fam, src): (n, med, p90) for fam, src, n, med, p90 in serving.summary(out_of_source)}
    ins = {(fam, src): (n, med, p90) for fam, src, n, med, p90 in serving.summary(in_sample)}
    assert len(table) >= 12
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        fam, src = cells[0].split("`")[1].split(" ", 1)
        n, med, p90 = oos[(fam, src)]
        _, med_in, p90_in = ins[(fam, src)]
        assert int(cells[1]) == n, line
        got = [float(c.split()[0]) for c in cells[2:6]]
        np.testing.assert_allclose(got, np.array([med, p90, med_in, p90_in]) * 100, atol=0.11, err_msg=line)
