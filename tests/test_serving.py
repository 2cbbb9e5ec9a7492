"""The serving model (continuous batching, workers/inference.py via `evaluate --kind inference`): concurrency, the
KV-cache limit, the power model, MoE with expert parallelism, disaggregated prefill, the errors of bad serving
inputs, a serving sweep into the lake and the `pareto_serving` frontier with its SLO filters."""

from __future__ import annotations

import heapq
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import chipsweep
from chipsweep.lake import Lake
from chipsweep.queries.output import to_text
from chipsweep.queries.runner import beyond_limits, run_saved
from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.columns import arrow_schema
from chipsweep.schemas.spec import parse_spec
from chipsweep.schemas.sweep import resolve
from chipsweep.workers.chunk import ChunkEvaluator
from chipsweep.workers.context import Context
from chipsweep.workers.parse import EvaluateError
from tests.conftest import evaluated_lake

H100 = "nvidia_h100_sxm"
B200 = "nvidia_b200_hgx"
DOUBLINGS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def run(*rows: dict, strict: bool = False) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return chipsweep.evaluate(list(rows), kind="inference", strict=strict).to_pylist()


# ---------------------------------------------------------------------------------------------------------
# concurrency: per-user speed against throughput, until compute or the KV cache saturates
# ---------------------------------------------------------------------------------------------------------
def test_a_prompt_costs_the_compute_bound_iteration_it_runs_in_spread_over_the_outputs() -> None:
    """One user, a 2,048-token prompt, 256 outputs on an H100: the scheduler runs the prompt as one chunk (it fits
    the engine's token budget) in an iteration that is compute-bound, then decodes in memory-bound iterations. The
    instance's mean time per output token is the decode iteration's plus that chunk's extra time over the 256
    outputs: it does not hide under the decodes' weight reads a few prompt tokens at a time. The user's own TPOT is
    the decode iteration's: its prompt ran before its first token (its TTFT). A second user sees the first one's
    prompts in its iterations (until 2026-12-05 a user's TPOT carried its own prompt too, 29 % on an M2 Ultra)."""
    base = {"model": "llama3_8b", "chip": H100, "engine": "vllm", "concurrency": 1, "gen_len": 256}
    short, long_, decode_only, two = run(dict(base, prompt_len=128), dict(base, prompt_len=2048),
                                         dict(base, prompt_len=2048, disaggregated="true"),
                                         dict(base, prompt_len=2048, concurrency=2))
    t_d = decode_only["tpot_s"]  # the prompt runs on the other pool: decode iterations only
    chunk = long_["ttft_s"]  # one prompt alone, its compute-bound pass
    assert chunk > 4 * t_d
    assert (1.0 / long_["output_tokens_per_s"] - t_d) * 256 == pytest.approx(chunk - t_d, rel=0.05)
    assert long_["tpot_s"] == pytest.approx(t_d, rel=1e-6) and short["tpot_s"] == pytest.approx(t_d, rel=0.02)
    assert short["output_tokens_per_s"] > long_["output_tokens_per_s"]
    # two users: each iteration carries the other's prompt every 256 outputs, the instance both of them
    per_user = two["tpot_s"] - 1.0 / two["tokens_per_s_per_user"]
    assert per_user == 0.0 and two["tpot_s"] < 2.0 / two["output_tokens_per_s"]


def test_per_user_speed_falls_and_per_chip_throughput_rises_with_concurrency_until_saturation() -> None:
    base = {"model": "llama3_8b", "chip": H100, "weight_bits": 16, "prompt_len": 1024, "gen_len": 256}
    *swept, most = run(*[dict(base, concurrency=c) for c in DOUBLINGS], base)
    per_user = np.array([r["tokens_per_s_per_user"] for r in swept])
    per_chip = np.array([r["output_tokens_per_s_per_chip"] for r in swept])
    assert all(r["fits"] for r in swept)
    assert (np.diff(per_user) < 0).all() and (np.diff(per_chip) > 0).all()
    gain = per_chip[1:] / per_chip[:-1]
    assert gain[0] > 1.9  # one more sequence costs almost nothing while the weights dominate
    assert gain[-1] < 1.2  # compute-bound: doubling the users no longer doubles the tokens
    # a blank concurrency is the most the KV cache holds: one more does not fit, and the error says so
    c = most["concurrency"]
    assert c > DOUBLINGS[-1] and most["output_tokens_per_s_per_chip"] >= per_chip[-1]
    (over,) = run(dict(base, concurrency=c + 1))
    assert not over["fits"] and f"allowed: 1 to {c} at this model" in over["infeasible_reason"]
    # refused, yet its bytes are the row's, as a sweep's lake row keeps them (it read fits null, mem_gb NaN)
    assert over["fits"] is False and over["mem_gb"] > most["mem_gb"]
    assert f"({over['mem_gb']:.2f} GB per chip" in over["infeasible_reason"]
    assert math.isclose(most["tokens_per_s_per_user"], 1.0 / most["tpot_s"], rel_tol=1e-6)
    # the instance's iterations carry every user's prompts, a user's the other c - 1 users' only
    assert (c - 1) / most["tpot_s"] <= most["output_tokens_per_s"] < c / most["tpot_s"]


def test_kv_cache_limits_concurrency_more_with_longer_contexts_and_less_with_8_bit_kv() -> None:
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 4, "weight_bits": 8, "compute_precision": "fp8"}
    short, long, long8 = run(dict(base, prompt_len=1024, gen_len=256), dict(base, prompt_len=8192, gen_len=1024),
                             dict(base, prompt_len=8192, gen_len=1024, kv_bits=8))
    assert short["concurrency"] > long["concurrency"] > 1
    assert long8["concurrency"] == pytest.approx(2 * long["concurrency"], rel=0.05)


def test_ttft_grows_with_load_and_prompt_length() -> None:
    base = {"model": "llama3_8b", "chip": H100, "weight_bits": 16, "gen_len": 256}
    lo, hi, longer = run(dict(base, prompt_len=1024, concurrency=1), dict(base, prompt_len=1024, concurrency=128),
                         dict(base, prompt_len=8192, concurrency=1))
    assert lo["ttft_s"] < hi["ttft_s"] and lo["ttft_s"] < longer["ttft_s"]


# ---------------------------------------------------------------------------------------------------------
# power and energy
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chip", [H100, B200, "nvidia_jetson_orin_nano_8gb", "nvidia_rtx_4090"])
def test_energy_per_token_at_low_utilisation_is_below_tdp_over_tokens_per_second(chip: str) -> None:
    tdp = load_catalog().chips[chip].tdp_w
    (r,) = run({"model": "llama3.2_1b", "chip": chip, "weight_bits": 8, "concurrency": 1, "prompt_len": 128,
                "gen_len": 128})
    assert r["power_w"] < tdp
    assert r["energy_per_token_j"] < tdp / r["output_tokens_per_s"]


@pytest.mark.parametrize("chip", ["apple_m1", "apple_m1_max", "apple_m2_max", "apple_m2_ultra"])
def test_a_mac_draws_between_apples_published_idle_and_maximum_at_the_wall(chip: str) -> None:
    """Apple publishes no chip TDP, but it publishes each desktop Mac's draw at the wall, idle and at full load
    (Mac Studio and Mac mini support pages): those are the chip's idle_w and tdp_w, so a Mac row gets power and
    energy per token (before, both were blank: 'tdp_w not published'). Decoding one stream is memory-bound, so the
    Mac draws more than idle and less than its maximum, and its energy per token is that power over its tokens/s."""
    spec = load_catalog().chips[chip]
    assert spec.tdp_w is not None and spec.idle_w is not None and spec.idle_w < spec.tdp_w
    one, many = run(*[{"model": "llama3_8b", "chip": chip, "weight_bits": 4, "prompt_len": 512, "gen_len": 256,
                       "concurrency": c} for c in (1, 4)])
    for r in (one, many):
        assert r["fits"] and "tdp_w not published" not in (r["notes"] or "")
        assert spec.idle_w < r["power_w"] < spec.tdp_w
        assert r["energy_per_token_j"] == pytest.approx(r["power_w"] / r["output_tokens_per_s"], rel=1e-6)
    assert many["power_w"] > one["power_w"] and many["energy_per_token_j"] < one["energy_per_token_j"]


def test_power_rises_and_energy_per_token_falls_with_load() -> None:
    base = {"model": "llama3_8b", "chip": H100, "weight_bits": 16, "prompt_len": 1024, "gen_len": 256}
    rows = run(*[dict(base, concurrency=c) for c in (1, 8, 64, 256)])
    power = [r["power_w"] for r in rows]
    energy = [r["energy_per_token_j"] for r in rows]
    assert power == sorted(power) and power[-1] <= 700.0 + 1e-6
    assert energy == sorted(energy, reverse=True)


def test_prefill_energy_is_counted() -> None:
    base = {"model": "llama3_8b", "chip": H100, "weight_bits": 16, "gen_len": 128, "concurrency": 32}
    short, long = run(dict(base, prompt_len=128), dict(base, prompt_len=8192))
    assert long["energy_per_token_j"] > 1.5 * short["energy_per_token_j"]


# ---------------------------------------------------------------------------------------------------------
# MoE, expert parallelism, precision, disaggregation
# ---------------------------------------------------------------------------------------------------------
def test_moe_decodes_at_its_active_parameters_and_touches_more_experts_with_more_users() -> None:
    base = {"chip": H100, "weight_bits": 16, "prompt_len": 1024, "gen_len": 1024, "concurrency": 1}
    moe, dense = run(dict(base, model="qwen3_30b_a3b"), dict(base, model="qwen3_32b"))
    assert moe["tokens_per_s_per_user"] > 1.5 * dense["tokens_per_s_per_user"]
    m1, m16, d16 = run(dict(base, model="qwen3_30b_a3b"), dict(base, model="qwen3_30b_a3b", concurrency=16),
                       dict(base, model="qwen3_32b", concurrency=16))
    # sixteen users touch most of the 128 experts (one user reads 8 of them a layer): the MoE's per-user speed drops
    # by far more than the dense model's, whose 16 users share one read of the same weights
    moe_drop = m16["tokens_per_s_per_user"] / m1["tokens_per_s_per_user"]
    dense_drop = d16["tokens_per_s_per_user"] / dense["tokens_per_s_per_user"]
    assert moe_drop < 0.7 * dense_drop


def test_expert_parallelism_serves_a_big_moe_across_chips() -> None:
    base = {"model": "deepseek_v3", "chip": B200, "n_chips": 8, "weight_bits": 8, "compute_precision": "fp8",
            "prompt_len": 1024, "gen_len": 1024, "concurrency": 64}
    tp, ep = run(base, dict(base, ep=8, dp_attention="true"))
    assert tp["fits"] and ep["fits"] and ep["ep"] == 8
    assert ep["output_tokens_per_s"] > 0 and tp["output_tokens_per_s"] > 0


def test_fp8_and_fp4_compute_raise_compute_bound_throughput_on_chips_that_have_them() -> None:
    base = {"model": "llama3_70b", "chip": B200, "n_chips": 2, "prompt_len": 4096, "gen_len": 256, "concurrency": 64}
    bf16, fp8, fp4 = run(dict(base, weight_bits=16, compute_precision="bf16"),
                         dict(base, weight_bits=8, compute_precision="fp8"),
                         dict(base, weight_bits=4, compute_precision="fp4"))
    assert bf16["output_tokens_per_s"] < fp8["output_tokens_per_s"] < fp4["output_tokens_per_s"]


def test_disaggregated_prefill_adds_a_prompt_pool_and_frees_decode_iterations() -> None:
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 4, "weight_bits": 8, "compute_precision": "fp8",
            "prompt_len": 4096, "gen_len": 256, "concurrency": 64}
    mixed, split = run(base, dict(base, disaggregated="true"))
    assert split["tpot_s"] < mixed["tpot_s"]  # no prompt chunks in the decode iterations
    assert split["output_tokens_per_s_per_chip"] < split["output_tokens_per_s"] / 4  # the prompt pool's chips count
    assert split["ttft_s"] > 0
    # the pool is whole prompt instances (xPyD): the row says so and which, the other does not
    assert "prefill_instances prompt instances" in split["notes"] and "prompt instances" not in mixed["notes"]
    assert split["prefill_instances"] >= 1 and split["decode_instances"] == 1
    assert mixed["prefill_instances"] is None and mixed["decode_instances"] is None


def test_a_disaggregated_replica_buys_its_share_of_the_prompt_pool() -> None:
    # a unit cost of the decode chips alone put a disaggregated row on an edge frontier at a price that buys no
    # prompt pool; the cost per token already paid for the pool's chips
    base = {"model": "llama3_8b", "chip": "nvidia_rtx_4090", "engine": "vllm", "n_chips": 2, "concurrency": 16,
            "prompt_len": 1000, "gen_len": 500}
    mixed, split = run(base, dict(base, disaggregated="true"))
    price = load_catalog().chips["nvidia_rtx_4090"].purchase_usd
    chips = split["output_tokens_per_s"] / split["output_tokens_per_s_per_chip"]  # decode chips plus the pool's share
    assert chips > 2.05 and mixed["unit_cost_usd"] == pytest.approx(2 * price)
    assert split["unit_cost_usd"] == pytest.approx(price * chips)


def test_an_owned_server_chip_costs_a_serving_hour_what_a_training_hour_costs() -> None:
    # a chip sold into servers, owned (no rental price: Intel's Gaudi 3 at its UBB kit's $15,625 a chip): its
    # serving hour pays the training TCO (server and network shares at the cost of capital, the chip's and its host's
    # power at the PUE, facility and operations per kW), not the bare purchase over four years (3x cheaper before);
    # a device (an RTX 4090) stays its purchase plus its electricity
    catalog = load_catalog()
    d = Context.build(catalog).defaults
    gaudi, rtx = run({"model": "llama3_8b", "chip": "intel_gaudi3", "concurrency": 16, "prompt_len": 1000,
                      "gen_len": 500, "weight_bits": 16},
                     {"model": "llama3_8b", "chip": "nvidia_rtx_4090", "engine": "vllm", "concurrency": 16,
                      "prompt_len": 1000, "gen_len": 500, "weight_bits": 16})

    def per_hour(r: dict) -> float:  # USD per chip-hour the row's cost per token implies
        return r["usd_per_million_tokens"] * r["output_tokens_per_s"] / 1e6 * 3600.0

    r, years = d["cost_of_capital"], d["amortization_years"]
    capex = catalog.chips["intel_gaudi3"].purchase_usd + d["host_usd"] + d["network_usd"]
    capex_h = capex * r / (1.0 - (1.0 + r) ** -years) / 8766.0
    per_kwh = d["pue"] * d["usd_per_kwh"] + (d["facility_usd_per_kw_month"] + d["ops_usd_per_kw_month"]) * 12 / 8766.0
    it_kw = (gaudi["power_w"] + d["host_power_w"]) / 1000.0
    assert per_hour(gaudi) == pytest.approx(capex_h + it_kw * per_kwh, rel=1e-6)
    assert per_hour(gaudi) > 2.0 * catalog.chips["intel_gaudi3"].purchase_usd / (years * 8766.0)
    device = catalog.chips["nvidia_rtx_4090"].purchase_usd / (years * 8766.0) + rtx["power_w"] / 1000.0 * d["pue"] * d["usd_per_kwh"]
    assert per_hour(rtx) == pytest.approx(device, rel=1e-6)


def test_an_owned_chip_without_power_says_why_its_cost_per_token_is_missing() -> None:
    # without a rental price the cost per token is the purchase spread over its life plus the electricity: no tdp_w,
    # no cost, and the row says which column would give it (it said only that energy was not computed)
    (r,) = run({"model": "llama3_8b", "chip": "apple_m3_max", "engine": "llama_cpp", "concurrency": 1,
                "weight_bits": 4, "chip.purchase_usd": 3999})
    assert math.isnan(r["usd_per_million_tokens"]) and r["unit_cost_usd"] == 3999
    assert "cost per token not computed" in r["notes"] and "give chip.tdp_w or chip.usd_per_hour" in r["notes"]
    (powered,) = run({"model": "llama3_8b", "chip": "apple_m3_max", "engine": "llama_cpp", "concurrency": 1,
                      "weight_bits": 4, "chip.purchase_usd": 3999, "chip.tdp_w": 100})
    assert powered["usd_per_million_tokens"] > 0 and "cost per token not computed" not in powered["notes"]


# ---------------------------------------------------------------------------------------------------------
# bad serving inputs: row, field, value and what is allowed
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("row", "field", "value", "allowed"), [
    ({"model": "llama3_70b", "chip": H100, "n_chips": 2, "weight_bits": 8, "concurrency": 100000}, "concurrency",
     100000, "1 to "),
    ({"model": "llama3_8b", "chip": H100, "compute_precision": "fp4"}, "compute_precision", "fp4", "fp16, bf16, fp8"),
    ({"model": "llama3_8b", "chip": H100, "n_chips": 2, "ep": 2}, "ep", 2, "1"),
    ({"model": "qwen3_30b_a3b", "chip": H100, "n_chips": 2, "ep": 4}, "ep", 4, "1, 2"),
    ({"model": "llama3_8b", "chip": H100, "concurrency": 0}, "concurrency", "0", "an integer >= 1"),
    ({"model": "llama3_8b", "chip": H100, "compute_precision": "fp6"}, "compute_precision", "fp6", "fp16"),
    # vLLM, SGLang and TensorRT-LLM give each chip whole heads: Llama 3 70B's 64 query / 8 KV heads over 3 chips
    ({"model": "llama3_70b", "chip": H100, "n_chips": 3, "weight_bits": 8}, "n_chips", 3, "1, 2, 4, 8, 16"),
    ({"model": "llama3_70b", "chip": "amd_mi300x", "n_chips": 8, "engine": "tensorrt_llm"}, "engine",
     "tensorrt_llm", "vllm, sglang, llama_cpp"),
    ({"model": "llama3_8b", "chip": "apple_m2_ultra", "engine": "qnn"}, "engine", "qnn", "llama_cpp"),
    ({"model": "llama3_70b", "chip": H100, "n_chips": 8, "dp_attention": True}, "dp_attention", "true", "false"),
    # a rate or capacity of zero divided by zero downstream (numpy warnings, a memory refusal as the reason)
    ({"model": "llama3_8b", "chip": H100, "chip.memory_bandwidth_gb_s": 0}, "chip.memory_bandwidth_gb_s", "0",
     "a finite number > 0"),
])
def test_bad_serving_input_names_row_field_value_and_allowed(row: dict, field: str, value: object,
                                                              allowed: str) -> None:
    good = {"model": "llama3_8b", "chip": H100}
    out = run(good, row)
    assert out[0]["infeasible_reason"] == ""
    reason = out[1]["infeasible_reason"]
    assert reason.startswith(f"row 2: field '{field}' = {value!r}") and "allowed: " in reason
    assert allowed in reason.split("allowed: ", 1)[1]
    with pytest.raises(EvaluateError) as exc:
        run(good, row, strict=True)
    assert exc.value.field == field and "row 2" in str(exc.value)


# ---------------------------------------------------------------------------------------------------------
# a serving sweep in the lake and its frontier
# ---------------------------------------------------------------------------------------------------------
SPEC = {"name": "serve", "kind": "inference", "store": "all", "axes": {
    "model": ["llama3_70b", "qwen3_30b_a3b"], "chip": [H100, B200], "n_chips": [1, 2, 4, 8],
    "weight_bits": [8], "compute_precision": ["fp8"], "concurrency": [1, 4, 16, 64, 256, 1024],
    "prompt_len": [1024], "gen_len": [512], "ep": [1, 2]}}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    sweep = resolve(parse_spec(SPEC), load_catalog())
    table = ChunkEvaluator(sweep).evaluate(0, sweep.configurations)
    assert table.schema.equals(arrow_schema("inference")) and table.num_rows == sweep.configurations
    root = str(tmp_path_factory.mktemp("lake"))
    store = Lake(root)
    store.write_part(table, "inference", "serve", 1, 0)
    store.write_dims(sweep, 1, created_at=0.0, state="done")
    return root


def test_an_slo_no_row_meets_names_the_least_ttft_any_row_reaches(lake: str) -> None:
    """A TTFT SLO below every row said 'the best ttft_s without it is 0.0548': the least TTFT of the frontier's rows
    (TTFT is no objective of it), where a row off the frontier reaches 0.0373. The hint is the least value of the
    rows the frontier is taken from."""
    params = {"model": "llama3_70b"}
    rows = run_saved("pareto_serving", params, lake=lake, frontier=False).to_pylist()
    objectives = ("output_tokens_per_s_per_chip", "tokens_per_s_per_user")
    least = min(r["ttft_s"] for r in rows if all(r[k] is not None and math.isfinite(r[k]) for k in ("ttft_s", *objectives)))
    on_front = min(run_saved("pareto_serving", params, lake=lake)["ttft_s"].to_pylist())
    assert least < on_front
    assert beyond_limits("pareto_serving", {**params, "ttft_max_s": least / 2}, lake=lake) == [
        f"no row meets ttft_max_s = {least / 2}: the best ttft_s without it is {least:.3g}"]


def test_a_serving_sweep_lands_with_its_serving_columns(lake: str) -> None:
    t = pa.concat_tables([pq.read_table(p) for p in Path(lake).rglob("part-*.parquet")
                          if "inference" in str(p)])
    ok = pc.and_(t.column("fits"), pc.equal(t.column("infeasible_reason").cast(pa.string()), ""))
    fit = t.filter(ok)
    assert fit.num_rows > 0
    assert set(fit.column("compute_precision").to_pylist()) == {"fp8"}
    assert {1, 2} <= set(fit.column("ep").to_pylist())
    assert all(c for c in fit.column("calibrated_on").to_pylist())
    assert np.isfinite(np.asarray(fit.column("output_tokens_per_s_per_chip"), dtype=float)).all()


def test_pareto_serving_trades_per_chip_throughput_against_per_user_speed(lake: str) -> None:
    front = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=lake).to_pylist()
    assert len(front) >= 3 and {r["model"] for r in front} == {"llama3_70b"}
    front.sort(key=lambda r: r["output_tokens_per_s_per_chip"])
    users = [r["tokens_per_s_per_user"] for r in front]
    assert users == sorted(users, reverse=True)  # more per chip only for less per user
    assert " user" in front[0]["layout"]


def test_every_frontier_row_names_its_layout_when_the_compute_precision_is_left_to_the_weights(tmp_path: Path) -> None:
    """A sweep that leaves compute_precision blank (the weight bits choose it) stores it as null; the frontier's
    layout still reads '<chips>, <bits>-bit weights, <n> users' (or '1 user') instead of going null with it."""
    spec = {"name": "blank", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_8b"], "chip": [H100], "n_chips": [1], "weight_bits": [8, 16], "concurrency": [1, 16, 256],
        "prompt_len": [512], "gen_len": [256]}}
    sweep = resolve(parse_spec(spec), load_catalog())
    store = Lake(str(tmp_path))
    store.write_part(ChunkEvaluator(sweep).evaluate(0, sweep.configurations), "inference", "blank", 1, 0)
    store.write_dims(sweep, 1, created_at=0.0, state="done")
    front = run_saved("pareto_serving", {"model": "llama3_8b"}, lake=str(tmp_path)).to_pylist()
    assert front and all(r["compute_precision"] is None for r in front)
    for r in front:
        users = "1 user" if r["concurrency"] == 1 else f"{r['concurrency']} users"
        assert r["layout"] == f"1 chip, {r['weight_bits']}-bit weights, {users}", r["layout"]


def test_the_chart_draws_one_staircase_per_workload_frontier(tmp_path: Path) -> None:
    """pareto_serving returns one frontier per workload (prompt and output length); the chart joins each one's
    points in its own staircase, never a point of one workload to a point of another."""
    from chipsweep.queries.chart import chart
    from chipsweep.queries.plot import figure_data

    spec = {"name": "two", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_8b"], "chip": [H100], "n_chips": [1, 2], "weight_bits": [8], "compute_precision": ["fp8"],
        "concurrency": [1, 4, 16, 64, 256], "prompt_len": [128, 4096], "gen_len": [128, 1024]}}
    sweep = resolve(parse_spec(spec), load_catalog())
    store = Lake(str(tmp_path))
    store.write_part(ChunkEvaluator(sweep).evaluate(0, sweep.configurations), "inference", "two", 1, 0)
    store.write_dims(sweep, 1, created_at=0.0, state="done")
    front = run_saved("pareto_serving", {"model": "llama3_8b"}, lake=str(tmp_path))
    workloads = {(r["prompt_len"], r["gen_len"]) for r in front.to_pylist()}
    assert len(workloads) == 4
    fig = figure_data(front)
    assert {p["group"] for p in fig.frontier} == {f"prompt_len {a}, gen_len {b}" for a, b in workloads}
    stairs = [t for t in chart(fig).data if t.meta == "staircase"]
    groups: dict[str, list[tuple[float, float]]] = {}
    for p in fig.frontier:
        groups.setdefault(str(p["group"]), []).append((float(p["x"]), float(p["y"])))  # type: ignore[arg-type]
    assert sorted(t.name for t in stairs) == sorted(g for g, pts in groups.items() if len(pts) > 1)
    for t in stairs:
        assert sorted(zip(t.x, t.y, strict=True)) == sorted(groups[t.name])  # only its own workload's points
        assert list(t.y) == sorted(t.y, reverse=True)  # more per chip only for less per user, along each
        # both axes maximised: the line turns through the corner worse than both neighbours (this point's tokens/s
        # per chip at the next one's per-user rate: 'vh'), never through one that beats them both (plotly's 'hv' did)
        assert t.line.shape == "vh"


def test_a_tpot_slo_removes_the_high_concurrency_points_from_the_frontier(lake: str) -> None:
    free = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=lake).to_pylist()
    slo = 0.5 * max(r["tpot_s"] for r in free)
    held = run_saved("pareto_serving", {"model": "llama3_70b", "tpot_max_s": slo}, lake=lake).to_pylist()
    assert held and all(r["tpot_s"] <= slo for r in held)
    assert max(r["concurrency"] for r in held) < max(r["concurrency"] for r in free)
    ttft = run_saved("pareto_serving", {"model": "llama3_70b", "ttft_max_s": 1e-9}, lake=lake)
    assert ttft.num_rows == 0


def test_pareto_serving_takes_cost_or_energy_as_a_third_objective(lake: str) -> None:
    for third in ("usd_per_million_tokens", "energy_per_token_j"):
        objectives = f"output_tokens_per_s_per_chip:max,tokens_per_s_per_user:max,{third}"
        t = run_saved("pareto_serving", {"objectives": objectives}, lake=lake)
        assert t.num_rows > 0 and t.column_names.count(third) == 1
        assert {"qwen3_30b_a3b", "llama3_70b"} <= set(t.column("model").to_pylist())


def test_pareto_serving_can_keep_only_chips_fitted_on_their_own_runs(lake: str) -> None:
    """The B200's serving efficiency is extrapolated (no published TensorRT-LLM run of it fitted), the H100's
    fitted on its runs: `calibration=measured` keeps the H100's frontier only."""
    every = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=lake)
    fitted = run_saved("pareto_serving", {"model": "llama3_70b", "calibration": "measured"}, lake=lake)
    assert B200 in every.column("chip").to_pylist()
    assert fitted.num_rows > 0 and set(fitted.column("chip").to_pylist()) == {H100}
    assert not any(str(c).startswith("extrapolated") for c in fitted.column("calibrated_on").to_pylist())


def test_a_sweep_over_the_mamba_state_precision_lands_in_the_lake(tmp_path: Path) -> None:
    """Nemotron Nano 9B v2 keeps a Mamba-2 state per sequence: a sweep over ssm_state_bits (16, 32) stores the column,
    and at the most that fits the fp32 state leaves room for fewer requests and gives fewer output tokens/s per chip
    (each decode step rewrites twice the bytes)."""
    from chipsweep.queries.runner import run_sql

    spec = {"name": "mamba", "kind": "inference", "store": "all", "axes": {
        "model": ["nemotron_nano_9b_v2"], "chip": [H100], "n_chips": [1], "weight_bits": [16],
        "ssm_state_bits": [16, 32], "prompt_len": [512], "gen_len": [1024]}}
    sweep = resolve(parse_spec(spec), load_catalog())
    store = Lake(str(tmp_path))
    store.write_part(ChunkEvaluator(sweep).evaluate(0, sweep.configurations), "inference", "mamba", 1, 0)
    store.write_dims(sweep, 1, created_at=0.0, state="done")
    rows = run_sql("SELECT ssm_state_bits, concurrency, output_tokens_per_s_per_chip FROM inference ORDER BY 1",
                   lake=str(tmp_path)).to_pylist()
    assert [r["ssm_state_bits"] for r in rows] == [16, 32]
    half, full = rows
    assert full["concurrency"] < half["concurrency"]
    assert full["output_tokens_per_s_per_chip"] < half["output_tokens_per_s_per_chip"]
    # the frontier says which state precision each row ran (else two rows of one layout look alike)
    front = run_saved("pareto_serving", {"model": "nemotron_nano_9b_v2"}, lake=str(tmp_path)).to_pylist()
    assert front and all(r["layout"].endswith(", fp32 Mamba state") == (r["ssm_state_bits"] == 32) for r in front)
    # the H100's default engine, TensorRT-LLM, schedules in turn (vLLM asynchronously)
    assert all(r["engine"] == "tensorrt_llm" and r["async_scheduling"] is False for r in front)


def test_a_blank_weight_precision_follows_the_compute_precision():
    """fp8 or int8 matrix multiplies read 8-bit weights and fp4 ones 4-bit weights: a row that gives
    compute_precision and leaves weight_bits blank gets those bits (16 where neither is given); DeepSeek-V3 then fits
    8 H200s (671 GB of fp8 weights, where 16-bit ones need 1.3 TB), and a refusal says which knobs free memory."""
    base = dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=8, tp=8, concurrency=64, prompt_len=1000,
                gen_len=1000)
    fp8, fp4, blank, given = run(dict(base, compute_precision="fp8"), dict(base, compute_precision="fp4", chip=B200),
                                 dict(base), dict(base, compute_precision="fp8", weight_bits=16))
    assert (fp8["weight_bits"], fp4["weight_bits"]) == (8, 4)
    assert fp8["infeasible_reason"] == "" and fp8["output_tokens_per_s"] > 0
    assert fp4["infeasible_reason"] == "" and fp4["output_tokens_per_s"] > 0
    for refused in (blank, given):  # 16-bit weights: 168 GB per chip before any KV cache
        assert "field 'concurrency' = 64: does not fit in memory" in refused["infeasible_reason"]
        assert "lower weight_bits" in refused["infeasible_reason"]


def test_a_serving_row_without_any_price_says_why_it_has_no_cost_per_token():
    """The H800's sources publish neither a rental nor a purchase price: its cost per million tokens stays empty and
    its notes say which column to give; the H100's rental price gives one, and a given price fills the H800's."""
    h800_id = "nvidia_h800_sxm"
    h800_entry = load_catalog().chip(h800_id)
    assert h800_entry.usd_per_hour is None and h800_entry.purchase_usd is None  # the premise: no price catalogued
    base = dict(model="llama3_70b", n_chips=8, tp=8, concurrency=64, compute_precision="fp8", engine="tensorrt_llm")
    h800, h100, priced = run(dict(base, chip=h800_id), dict(base, chip="nvidia_h100_sxm"),
                             dict(base, chip=h800_id, **{"chip.usd_per_hour": 6.0}))
    assert h800["infeasible_reason"] == "" and h800["output_tokens_per_s"] > 0
    assert h800["usd_per_million_tokens"] is None or math.isnan(h800["usd_per_million_tokens"])
    assert "cost per token not computed" in h800["notes"] and "chip.usd_per_hour" in h800["notes"]
    assert "cost per token" not in h100["notes"] and h100["usd_per_million_tokens"] > 0
    assert "cost per token" not in priced["notes"] and priced["usd_per_million_tokens"] > 0


def test_a_multi_chip_row_says_when_the_link_between_its_chips_is_a_stand_in():
    """The note follows the link the row's chips use: the A100 PCIe's and the L40S's links are not published (PCIe
    cards, no NIC): both say so; 16 H100s cross the published NICs, 8 stay on published NVLink and 8 MI355X on the
    Infinity Fabric reported from AMD's Hot Chips 2025 talk: no note; one chip uses no link."""
    rows = [dict(model="llama3_8b", chip=c, n_chips=n, tp=n) for c, n in
            (("nvidia_a100_pcie_80gb", 8), ("nvidia_l40s", 4), ("nvidia_h100_sxm", 16), ("nvidia_h100_sxm", 8),
             ("amd_mi355x", 8), ("amd_mi355x", 1))]
    notes = [r["notes"] for r in run(*rows)]
    said = ["no published link between the row's chips" in t for t in notes]
    assert said == [True, True, False, False, False, False], notes


def test_validate_lists_the_serving_constants_a_fit_left_at_a_bound():
    """A fitted constant within 1 % of (the width of) its bounds is one its runs barely determine, or one that
    absorbs time the model leaves unexplained: `validate --kind inference --summary` counts and lists them. A
    constant moved onto its bound joins the list; one moved to mid-range leaves it."""
    import copy
    import dataclasses

    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.workers.validation import report
    from chipsweep.workers.validation.serving import constants_at_bounds

    cat = load_catalog(use_env=False)
    total, at = constants_at_bounds(cat)
    assert 0 < len(at) < total
    bounds = cat.asic["serving"]["bounds"]["value"]
    for _engine, _where, key, value, _runs in at:
        lo, hi = bounds[key]
        assert min(value - lo, hi - value) < 0.01 * (hi - lo)
    asic = copy.deepcopy(cat.asic)
    sets = asic["serving"]["efficiency"]
    inside = next(s for s in sets if "mem_bw_fraction" in s and 0.3 < s["mem_bw_fraction"] < 0.9)
    edge = next(s for s in sets if s.get("attention_fraction") == bounds["attention_fraction"][1])
    inside["mem_bw_fraction"], edge["attention_fraction"] = bounds["mem_bw_fraction"][1], 0.5
    moved = constants_at_bounds(dataclasses.replace(cat, asic=asic))[1]
    key_of = lambda s: (str(s.get("engine", "*")), s["applies_to"])  # noqa: E731
    assert (*key_of(inside), "mem_bw_fraction") in {a[:3] for a in moved}
    assert (*key_of(edge), "attention_fraction") not in {a[:3] for a in moved}
    assert f"within 1 % of a bound: {len(at)} of {total}" in report.render_serving([])


def test_a_concurrency_refused_for_a_kv_cache_tensor_parallelism_replicates_points_to_dp_attention() -> None:
    """DeepSeek-V3's latent attention keeps one latent per layer: tensor parallelism over 8 H200 holds every
    request's KV cache on each of the 8 chips, so 1,536 requests of 3,000 tokens do not fit; attention data
    parallelism (SGLang's --enable-dp-attention) keeps each chip's own requests' only (and the layers it runs
    data-parallel whole: 2,048 requests no longer fit beside them), and they do. The refusal says so. Llama 3 70B's
    8 KV heads split over 8 chips: nothing is replicated, no such hint."""
    ds = dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=8, ep=8, prompt_len=2000, gen_len=1000,
              concurrency=1536, compute_precision="fp8")
    refused, served = run(ds, {**ds, "dp_attention": True})
    assert "does not fit in memory" in refused["infeasible_reason"]
    assert "or set dp_attention true" in refused["infeasible_reason"] and "8x over" in refused["infeasible_reason"]
    assert served["infeasible_reason"] in ("", None) and served["output_tokens_per_s_per_chip"] > 0
    llama = run(dict(model="llama3_70b", chip=H100, n_chips=8, prompt_len=1000, gen_len=500, concurrency=100000))[0]
    assert "does not fit in memory" in llama["infeasible_reason"] and "dp_attention" not in llama["infeasible_reason"]


def test_a_chip_without_runs_takes_its_vendors_set_for_its_class_before_the_class_set() -> None:
    """The serving sets resolve engine -> class -> one vendor's chips of the class -> chip: a software stack (CUDA,
    ROCm, Metal) is a vendor's. The MI325X has no runs; under vLLM it takes the set Azure's MI300X runs fit for AMD's
    datacenter chips, not the class set that ML.ENERGY's CUDA runs dominate. The MI325X is the MI300X's silicon with
    more HBM bandwidth: at one request (bandwidth-bound) it is faster by at most that ratio. With the class set it
    read 1.5x."""
    from chipsweep.schemas.catalog import load_catalog

    rows = [dict(model="llama3_70b", chip=c, n_chips=8, prompt_len=1000, gen_len=500, concurrency=1, engine="vllm")
            for c in ("amd_mi325x", "amd_mi300x")]
    mi325x, mi300x = run(*rows)
    assert "vllm on AMD datacenter_training chips" in mi325x["calibrated_on"]
    assert "(vllm on amd_mi300x)" in mi300x["calibrated_on"]
    cat = load_catalog(use_env=False)
    memory_reach = float(cat.defaults["defaults"]["memory_reach"]["value"])
    a, b = cat.chips["amd_mi325x"], cat.chips["amd_mi300x"]
    bw_325 = a.memory_bandwidth_measured_gb_s or a.memory_bandwidth_gb_s * memory_reach
    bw_300 = b.memory_bandwidth_measured_gb_s or b.memory_bandwidth_gb_s * memory_reach
    assert 1.0 < mi300x["tpot_s"] / mi325x["tpot_s"] <= bw_325 / bw_300


def test_expert_all_to_alls_send_across_nodes_only_the_copies_bound_there() -> None:
    """DeepSeek-V3 (k = 8 of 256 experts in 8 groups, at most 4 groups per token) served on H200s with expert
    parallelism and data-parallel attention. Inside one 8-GPU node the dispatch is all NVLink, plain or hierarchical alike. Over two
    nodes (ep 16) a plain all-to-all sends each token's copies for the other node's experts over the NICs, k x 8/16 =
    4 per token (and 3.5 over NVLink, at once); a hierarchical one (`ep_dedup`, DeepEP) sends one copy to each remote
    node holding one of its experts, 1 - C(4,4)/C(8,4) = 69/70 per token under group-limited routing (groups laid out
    4 per node), and fans out over NVLink there. The all-to-all time per decoded token (the slope of the iteration's
    collectives in the tokens it carries) falls by 4 / (69/70); before, every copy crossed the NICs."""
    base = dict(model="deepseek_v3", chip="nvidia_h200_sxm", engine="sglang", compute_precision="fp8", weight_bits=8,
                kv_bits=8, dp_attention="true", prompt_len=0, gen_len=256)

    def comm(n: int, dedup: str, c: int) -> float:
        rows = chipsweep.evaluate([dict(base, n_chips=n, ep=n, ep_dedup=dedup, concurrency=c)], kind="inference",
                                  explain=True).to_pylist()
        assert rows[0]["infeasible_reason"] == "", rows[0]["infeasible_reason"]
        return float(rows[0]["tpot_comm_s"])

    assert comm(8, "true", 64) == pytest.approx(comm(8, "false", 64), rel=1e-6)
    slope = {d: (comm(16, d, 128) - comm(16, d, 64)) / 64 for d in ("false", "true")}  # s per token in flight
    assert slope["false"] / slope["true"] == pytest.approx(4 / (69 / 70), rel=1e-3)
    # the network carries the plain dispatch: 4 copies of the token's hidden state (7,168 16-bit activations,
    # defaults.yaml act_bytes), dispatch and combine in each of the 58 MoE layers, over one H200's 400 Gb/s NIC at
    # the engine's link share; each of the 16 chips carries 1/16 of the tokens
    link = 400e9 / 8 * 0.75
    assert slope["false"] * 16 == pytest.approx(2 * 58 * 7168 * 2 * 4 / link, rel=1e-3)


def test_tensor_parallelism_that_splits_a_head_or_an_engine_off_its_vendor_never_reaches_a_frontier() -> None:
    """A sweep's rows are judged like `evaluate`'s: tp = 3 over Llama 3 70B's 64 heads (which read 2.3x the per-chip
    output of 8 chips before the rule), TensorRT-LLM on an MI300X and data-parallel attention on a dense model are
    infeasible with the reason; llama.cpp splits rows in any proportion, so 3 chips stay feasible under it."""
    spec = {"name": "rules", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_70b"], "chip": [H100, "amd_mi300x"], "n_chips": [3, 8], "engine": ["tensorrt_llm", "llama_cpp"],
        "weight_bits": [8], "concurrency": [8]}}
    sweep = resolve(parse_spec(spec), load_catalog())
    rows = ChunkEvaluator(sweep).evaluate(0, sweep.configurations).to_pylist()
    ids = Context.build(load_catalog()).chips.ids  # the lake's chip_id: an index into the context's chips
    assert len(rows) == 8

    def reason(chip: str, n: int, engine: str) -> str:
        hit = [r for r in rows if ids[r["chip_id"]] == chip and r["n_chips"] == n and r["engine"] == engine]
        assert len(hit) == 1, (chip, n, engine)
        return str(hit[0]["infeasible_reason"] or "")

    assert "must divide the query heads" in reason(H100, 3, "tensorrt_llm")
    assert reason(H100, 8, "tensorrt_llm") == ""
    assert reason(H100, 3, "llama_cpp") == ""
    assert "does not run on this chip's vendor" in reason("amd_mi300x", 8, "tensorrt_llm")
    assert reason("amd_mi300x", 8, "llama_cpp") == ""


def test_data_parallel_attention_gives_one_request_one_rank() -> None:
    """Under data-parallel attention each request's attention runs on the rank that holds its KV cache: one user
    gets no attention speed-up from 8 ranks (the busiest rank holds ceil(C / 8) requests), 8 users spread evenly.
    (Decode iterations alone, the prompts on a pool of their own: a user's TPOT carries the others' prompts.)"""
    ds = dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=8, ep=8, prompt_len=4000, gen_len=1000,
              compute_precision="fp8", dp_attention=True, disaggregated=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one, eight, nine = chipsweep.evaluate([dict(ds, concurrency=1), dict(ds, concurrency=8),
                                               dict(ds, concurrency=9)], kind="inference", explain=True).to_pylist()
    # attention per iteration: one request alone costs what eight spread over eight ranks cost
    assert one["tpot_attention_s"] == pytest.approx(eight["tpot_attention_s"], rel=0.02)
    # a ninth request lands on a rank that already holds one: the busiest rank's attention doubles
    assert nine["tpot_attention_s"] == pytest.approx(2 * eight["tpot_attention_s"], rel=0.05)


def test_a_serving_row_prices_the_cost_basis_it_asks_for() -> None:
    """`cost_basis` on a serving row (and a serving sweep's axis), as on a training row: owned sets the chips' rental
    price aside and prices what owning them costs (the H100, sold into servers, at its server's share: the training
    TCO), rental leaves a chip without a rental price uncosted, each saying why; the output's one `cost_basis` column
    says the basis (the input was once passed through beside it, two columns of one name, and ignored)."""
    base = dict(model="llama3_70b", chip=H100, n_chips=8, concurrency=256, prompt_len=1024, gen_len=1024,
                compute_precision="fp8")
    gb200 = "nvidia_gb200_per_gpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = chipsweep.evaluate([base, dict(base, cost_basis="owned"), dict(base, cost_basis="rental"),
                                    dict(base, chip=gb200, cost_basis="rental")], kind="inference")
    assert table.column_names.count("cost_basis") == 1
    blank, owned, rental, unpriced = table.to_pylist()
    assert blank["cost_basis"] == rental["cost_basis"] == "rental" and owned["cost_basis"] == "owned"
    assert rental["usd_per_million_tokens"] == blank["usd_per_million_tokens"]
    assert owned["output_tokens_per_s"] == blank["output_tokens_per_s"]  # the same serving point, priced otherwise
    assert 0 < owned["usd_per_million_tokens"] != blank["usd_per_million_tokens"]
    assert math.isnan(unpriced["usd_per_million_tokens"]) and "cost_basis rental" in unpriced["notes"]
    spec = {"name": "bases", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_70b"], "chip": [H100], "n_chips": [8], "cost_basis": ["rental", "owned"]},
        "fixed": {"concurrency": 256, "prompt_len": 1024, "gen_len": 1024, "compute_precision": "fp8"}}
    sweep = resolve(parse_spec(spec), load_catalog())
    rows = ChunkEvaluator(sweep).evaluate(0, sweep.configurations).to_pylist()
    costs = {r["cost_basis"]: r["usd_per_million_tokens"] for r in rows}
    assert costs == pytest.approx({"rental": blank["usd_per_million_tokens"], "owned": owned["usd_per_million_tokens"]},
                                  rel=1e-5)


def test_data_parallel_attention_needs_an_expert_parallel_group_spanning_its_ranks() -> None:
    """Under data-parallel attention a chip holds only its own requests' tokens, and they reach the experts by
    all-to-all over the ep group (SGLang's --enable-dp-attention with DeepEP runs ep-size = tp-size). DeepSeek-V3 on
    32 H200 at ep 8 spread the experts over all 32 chips while its all-to-all ran inside one 8-GPU node: no token
    crossed the network to the three quarters of its experts on other nodes, and the row read 3,263 tokens/s per chip,
    2.5x the ep = 32 row's 1,299 and above four independent 8-chip replicas. It is refused, naming ep, its value and
    the allowed ones; in a sweep the row carries the reason. (Decode iterations, the prompts on a pool of their own:
    co-located, a rank's 1,024-token chunk sends its tokens to the experts alone, and that all-to-all sets the
    iteration's pace, 206 tokens/s per chip at ep 32 against 271 with the experts split, 412 with DeepEP's
    per-node dispatch, `ep_dedup`.)"""
    base = dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=32, dp_attention=True, concurrency=2048,
                prompt_len=1024, gen_len=1024, compute_precision="fp8", kv_bits=8, engine="sglang", disaggregated=True)
    short, whole, none = run(dict(base, ep=8), dict(base, ep=32), dict(base, ep=1))
    assert math.isnan(short["output_tokens_per_s_per_chip"])
    assert "field 'ep' = 8" in short["infeasible_reason"] and "allowed: 1, 32" in short["infeasible_reason"]
    assert whole["infeasible_reason"] == none["infeasible_reason"] == ""
    assert whole["output_tokens_per_s_per_chip"] > none["output_tokens_per_s_per_chip"] > 0
    with pytest.raises(EvaluateError) as err:
        run(dict(base, ep=8), strict=True)
    assert err.value.field == "ep" and err.value.value == 8
    spec = {"name": "dpa", "kind": "inference", "store": "all", "axes": {
        "model": ["deepseek_v3"], "chip": ["nvidia_h200_sxm"], "n_chips": [32], "ep": [8, 32]},
        "fixed": {"dp_attention": True, "concurrency": 2048, "prompt_len": 1024, "gen_len": 1024,
                  "compute_precision": "fp8", "engine": "sglang"}}
    sweep = resolve(parse_spec(spec), load_catalog())
    rows = ChunkEvaluator(sweep).evaluate(0, sweep.configurations).to_pylist()
    by_ep = {r["ep"]: r for r in rows}
    assert "dp_attention with expert parallelism needs ep = n_chips / pp" in by_ep[8]["infeasible_reason"]
    assert by_ep[32]["infeasible_reason"] == ""


def test_data_parallel_attention_keeps_the_layers_it_runs_data_parallel_whole_on_every_chip() -> None:
    """Each rank of data-parallel attention runs whole attention layers for its own requests, and, as SGLang deploys
    it (--moe-dense-tp-size 1), the dense MLPs and shared experts too, with no all-reduce between ranks: it holds all
    of those weights (SGLang's attention tensor-parallel size is tp / dp = 1), not a 1/8 share; the routed experts
    and the head stay split. DeepSeek-V3's latent attention per layer (arXiv:2412.19437 sec. 2.1.1, the HF config's
    ranks) is q 7168x1536 + 1536x128x192, the latent 7168x(512+64) + 512x128x(128+128), out 128x128x7168 = 187.1M
    weights, 11.41B over 61 layers; its 3 dense MLPs 3 x 3 x 7168 x 18432 = 1.19B; its 58 shared experts 58 x 3 x
    7168 x 2048 = 2.55B (and 58 routers of 7168 x 256, 0.1B): at fp8, 7/8 of ~15.3 GB more per chip, which the
    memory, and the bytes a decode step reads, now count (they kept 1/8)."""
    per_layer = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168
    assert per_layer == 187_105_280
    whole = 61 * per_layer + 3 * 3 * 7168 * 18432 + 58 * 3 * 7168 * 2048 + 58 * 7168 * 256
    ds = dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=8, ep=8, prompt_len=2000, gen_len=500,
              compute_precision="fp8", weight_bits=8, kv_bits=8, concurrency=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dpa, tp = chipsweep.evaluate([dict(ds, dp_attention=True), dict(ds, dp_attention=False)], kind="inference",
                                     explain=True).to_pylist()
    # the KV cache moves the other way: tensor parallelism keeps MLA's one latent head on every rank, data-parallel
    # attention keeps a request's cache on its own rank only (an eighth per chip on average)
    kv = 61 * 576 * (2000 + 250) / 1e9  # GB of one request's latent cache at 8 bits (kv_reserve 0.5 of 500 outputs)
    extra = dpa["mem_gb"] - tp["mem_gb"]
    # the catalog fixes the weights a token uses by the published "37B active" (rounded): less the input embedding,
    # the head (129,280 x 7,168 each) and a token's 8 of 256 routed experts, 14.72B, within 4 % of the shape count
    routed = 58 * 256 * 3 * 7168 * 2048
    published = 37e9 - 2 * 129280 * 7168 - routed * 8 / 256
    assert published == pytest.approx(whole, rel=0.04)
    assert extra == pytest.approx(published * 7 / 8 / 1e9 + (kv / 8 - kv), rel=0.01)
    # one user's decode step is memory-bound: its dense GEMMs now read all of those weights (15 of the ~16 GB outside
    # the routed experts) where tensor parallelism reads an eighth of everything
    assert dpa["tpot_gemm_s"] > 5 * tp["tpot_gemm_s"]


def test_an_xpyd_sweep_lands_its_pools_in_the_lake_and_names_them_on_the_frontier(tmp_path: Path) -> None:
    """`prefill_instances` and `decode_instances` are sweep axes: the lake stores each row's pool (a blank prefill
    count resolved to the fewest that keep up; NULL on a colocated row), `prefill_pool_busy` beside it, and
    pareto_serving names the pool in the layout ('1P4D') and returns both columns."""
    spec = {"name": "xpyd", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_70b"], "chip": [H100], "disaggregated": [False, True], "decode_instances": [1, 4],
        "concurrency": [64, 256]},
        "fixed": {"n_chips": 8, "compute_precision": "fp8", "weight_bits": 8, "prompt_len": 512, "gen_len": 1024}}
    root = str(tmp_path / "lake")
    rows = evaluated_lake(spec, tmp_path / "lake").to_pylist()
    split = [r for r in rows if r["disaggregated"]]
    together = [r for r in rows if not r["disaggregated"]]
    assert len(split) == len(together) == 4
    assert all(r["prefill_instances"] is None and r["decode_instances"] is None and r["prefill_pool_busy"] is None
               for r in together)
    assert all(r["prefill_instances"] >= 1 and 0 < r["prefill_pool_busy"] < 1 for r in split)
    assert {r["decode_instances"] for r in split} == {1, 4}
    front = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=root).to_pylist()
    by_idx = {r["idx"]: r for r in rows}
    for f in front:
        r = by_idx[f["idx"]]
        assert (f["prefill_instances"], f["decode_instances"]) == (r["prefill_instances"], r["decode_instances"])
        if r["disaggregated"]:
            assert f"{r['prefill_instances']}P{r['decode_instances']}D" in f["layout"]
    assert any(f["decode_instances"] == 4 for f in front)  # a shared pool reaches the frontier


def test_a_frontier_lists_once_a_row_a_sweep_repeats_along_an_axis_that_does_not_apply_to_it(tmp_path: Path) -> None:
    """decode_instances does not apply to a colocated row: the sweep evaluates it once per value, each copy as good
    as the other, and pareto_serving listed both (idx 2 and 5: 872.7 tokens/s per chip at 27.3 per user). The
    frontier lists the first and its footer counts the rest."""
    spec = {"name": "repeats", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_70b"], "chip": [H100], "disaggregated": [False, True], "decode_instances": [1, 4],
        "concurrency": [16, 64, 256]},
        "fixed": {"n_chips": 8, "compute_precision": "fp8", "weight_bits": 8, "prompt_len": 512, "gen_len": 1024}}
    root = str(tmp_path / "lake")
    evaluated_lake(spec, tmp_path / "lake")
    table = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=root)
    front = table.to_pylist()
    together = [f for f in front if not f["disaggregated"]]
    assert together and sorted(f["concurrency"] for f in together) == sorted({f["concurrency"] for f in together})
    assert len({tuple((k, v) for k, v in f.items() if k != "idx") for f in front}) == len(front)
    assert all(f["idx"] < 3 for f in together)  # the first copy, decode_instances 1's (idx 3-5: 4's)
    candidates = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=root, frontier=False).to_pylist()
    assert len([c for c in candidates if not c["disaggregated"]]) == 6  # both copies are still candidates
    assert f"{len(together)} rows identical in every column but idx to one shown left out" in to_text(table)
    # a cut answer is cut after the repeats are left out
    cut = run_saved("pareto_serving", {"model": "llama3_70b"}, lake=root, max_rows=len(front) - 1)
    assert cut.column("idx").to_pylist() == [f["idx"] for f in front][:-1]


def test_pareto_edge_judges_a_catalog_chip_at_one_operating_point(tmp_path: Path) -> None:
    """A blank batch is the largest static batch that fits (248 sequences on an RTX 4090), while energy per token
    and TTFT are the row's serving point (one llama.cpp user). The edge frontier compared the big batch's
    per-sequence decode speed with one user's energy, and left off the Jetson AGX Orin (28 tokens/s at 0.74 J for
    one user: faster than the Orin Nano, leaner than the 4090) because its 748-sequence batch decodes at 0.8 tokens/s
    each. Each catalog row is now judged at its serving point."""
    spec = {"name": "edge", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_8b"], "chip": ["nvidia_rtx_4090", "nvidia_jetson_orin_nano_8gb", "nvidia_jetson_agx_orin_64gb"],
        "weight_bits": [4]}, "fixed": {"prompt_len": 512, "gen_len": 128},
        "overrides": {"nvidia_jetson_agx_orin_64gb": {"purchase_usd": 1999}}}
    root = str(tmp_path / "lake")
    rows = {r["idx"]: r for r in evaluated_lake(spec, tmp_path / "lake").to_pylist()}
    assert all(r["batch"] > r["concurrency"] == 1 for r in rows.values())  # the two points differ
    front = run_saved("pareto_edge", {"model": "llama3_8b"}, lake=root).to_pylist()
    assert {f["chip"] for f in front} == {"nvidia_rtx_4090", "nvidia_jetson_orin_nano_8gb", "nvidia_jetson_agx_orin_64gb"}
    for f in front:
        r = rows[f["idx"]]
        assert f["decode_tokens_per_s"] == pytest.approx(r["tokens_per_s_per_user"])
        assert f["energy_per_token_j"] == pytest.approx(r["energy_per_token_j"]) and f["batch"] == r["concurrency"]


def test_pareto_edge_ranks_asic_designs_at_their_serving_point_per_workload_and_names_every_axis(tmp_path: Path) -> None:
    """An ASIC row was ranked with decode-only energy, beside catalog chips whose energy per token counts their
    prompts; rows of different prompt lengths competed on one frontier (a short prompt always won); axes such as
    arch and dram_mt_s were not stored, and a 4.5 nm node was stored as 4. Speed per user is the decode rate on both
    sides (a catalog chip's 1 / TPOT, an ASIC's per-sequence step rate), TTFT apart."""
    spec = {"name": "designs", "kind": "asic", "store": "all", "axes": {
        "model": ["llama3.2_3b"], "node_nm": [4.5, 7], "n_mac": [2048, 8192], "dram": ["lpddr5x"],
        "dram_bus_bits": [128], "dram_mt_s": [6400, 8533], "precision": ["int8"], "arch": ["npu", "gpu"],
        "prompt_len": [128, 2048]}, "fixed": {"weight_bits": 8, "gen_len": 256, "batch": 1}}
    root = str(tmp_path / "lake")
    rows = {r["idx"]: r for r in evaluated_lake(spec, tmp_path / "lake").to_pylist()}
    assert {r["node_nm"] for r in rows.values()} == {4.5, 7.0}
    assert {r["dram_mt_s"] for r in rows.values()} == {6400.0, 8533.0} and {r["arch"] for r in rows.values()} == {"npu", "gpu"}
    front = run_saved("pareto_edge", {"model": "llama3.2_3b"}, lake=root).to_pylist()
    assert {f["prompt_len"] for f in front} == {128, 2048}  # one frontier per workload
    for f in front:
        r = rows[f["idx"]]
        assert f["decode_tokens_per_s"] == pytest.approx(r["decode_tokens_per_s"])
        assert f["energy_per_token_j"] == pytest.approx(r["energy_per_token_j"])
        assert r["energy_per_token_j"] > r["decode_energy_per_token_j"]
        assert (f["dram_mt_s"], f["arch"], f["node_nm"]) == (r["dram_mt_s"], r["arch"], r["node_nm"])
        node = "4.5" if r["node_nm"] == 4.5 else "7"
        assert f["chip"].startswith(f"asic {node}nm ") and f["chip"].endswith("(GPU datapath)") == (r["arch"] == "gpu")
        # the design's caveats travel with it: 4.5 nm lies between the tables' 3 and 5 nm
        assert ("interpolated" in f["notes"]) == (r["node_nm"] == 4.5) and f["notes"] == r["notes"]


def test_throughput_never_falls_as_concurrency_crosses_a_prompt_chunk_boundary() -> None:
    """llama.cpp's 2,048-token batch beside C decodes leaves 2,048 - C tokens for a 2,000-token prompt: from 49 users
    on it takes two chunks. Each chunk carried a full budget (1,984 tokens, twice the prompt's compute in all), so
    per-chip throughput fell from 133 to 75 tokens/s between 48 and 64 users and came back at 256. Two chunks now
    carry 1,000 tokens each: throughput per chip never falls as users are added."""
    base = {"model": "llama3_8b", "chip": "apple_m2_ultra", "n_chips": 1, "compute_precision": "bf16",
            "prompt_len": 2000, "gen_len": 300}
    users = (16, 32, 48, 49, 64, 96, 128, 256)
    out = run(*[dict(base, concurrency=c) for c in users])
    rate = [r["output_tokens_per_s_per_chip"] for r in out]
    assert all(r["infeasible_reason"] == "" for r in out)
    assert all(b >= a * (1 - 1e-6) for a, b in zip(rate, rate[1:], strict=False)), rate
    assert rate[users.index(64)] > 0.95 * rate[users.index(48)]


def test_a_model_no_sweep_ran_is_refused_naming_the_models_the_sweeps_ran(lake: str) -> None:
    """The lake's models table lists each version's whole catalog, so a model no sweep evaluated (llama3_8b here)
    passed the check and answered 0 rows; the sweeps' specs say which models the lake holds."""
    from chipsweep.queries.errors import QueryError

    with pytest.raises(QueryError) as err:
        run_saved("pareto_serving", {"model": "llama3_8b"}, lake=lake)
    assert err.value.field == "model"
    assert "'llama3_8b' is not in the lake; allowed: llama3_70b, qwen3_30b_a3b" in str(err.value)
    with pytest.raises(QueryError, match="tpot_max_s: '0' is not a finite number > 0"):
        run_saved("pareto_serving", {"model": "llama3_70b", "tpot_max_s": 0}, lake=lake)


def test_a_blank_ep_on_a_mixture_of_experts_is_searched_like_any_blank_layout_cell() -> None:
    """A blank cell means 'choose for me' (CONTRACT.md): a blank ep on an MoE model over 8 chips is the ep among the
    divisors of 8 that serves the most output tokens/s; a dense model keeps ep 1. Beside data-parallel attention the
    tokens reach the experts by all-to-all over all 8 chips (ep 8) or by an all-gather and reduce-scatter over every
    chip (ep 1); ep 2 and 4 are refused there (the all-to-all would not reach the experts on the other chips: until
    2026-12-07 ep 2 won by skipping that traffic). Under tensor-parallel attention every chip holds every token and an
    all-reduce sums the experts' outputs whatever ep is (vLLM's FusedMoE, TensorRT-LLM): ep only moves weights, each
    chip reads the same bytes, and every ep serves alike (ep 2 read 4 % faster when its MoE layers skipped the
    all-reduce)."""
    base = {"model": "qwen3_30b_a3b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "concurrency": 64,
            "dp_attention": True}
    blank, *given = run(base, *[dict(base, ep=e) for e in (1, 2, 4, 8)])
    assert [math.isnan(r["output_tokens_per_s"]) for r in given] == [False, True, True, False]
    best = max((r for r in given if not math.isnan(r["output_tokens_per_s"])), key=lambda r: r["output_tokens_per_s"])
    assert blank["ep"] == best["ep"] == 8 and blank["output_tokens_per_s"] == pytest.approx(best["output_tokens_per_s"])
    assert blank["output_tokens_per_s"] > given[0]["output_tokens_per_s"]  # better than ep = 1
    tp_attention = run(*[dict(base, ep=e, dp_attention=False) for e in (1, 2, 4, 8)])
    assert len({round(r["output_tokens_per_s"], 6) for r in tp_attention}) == 1
    (dense,) = run(dict(base, model="llama3_70b", dp_attention=False))
    assert dense["ep"] == 1


def test_a_memory_bandwidth_what_if_moves_a_chip_whose_bandwidth_was_measured() -> None:
    """The model reads the measured bandwidth where the catalog has one (the H100's), so chip.memory_bandwidth_gb_s
    alone changed nothing: an H100 at 4,800 GB/s served exactly as at 3,350. The measured figure now follows the
    published one by the same ratio, in a row what-if and in a spec override alike."""
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 2, "compute_precision": "fp8", "concurrency": 16}
    slow, fast = run(base, {**base, "chip.memory_bandwidth_gb_s": 4800})
    assert fast["tpot_s"] < 0.95 * slow["tpot_s"]
    chip = load_catalog().chips[H100]
    spec = {"name": "bw", "kind": "inference", "axes": {"model": ["llama3_70b"], "chip": [H100]},
            "overrides": {H100: {"memory_bandwidth_gb_s": 4800}}}
    over = resolve(parse_spec(spec), load_catalog()).catalog.chips[H100]
    assert over.memory_bandwidth_measured_gb_s == pytest.approx(
        chip.memory_bandwidth_measured_gb_s * 4800 / chip.memory_bandwidth_gb_s)


def test_a_price_change_shows_in_a_serving_diff_compared_on_cost(tmp_path: Path) -> None:
    """A serving frontier of per-chip against per-user speed does not move when a price does, so the diff of a
    re-priced serving sweep was always empty; `frontier=serving_cost` adds USD per million tokens as a third
    objective (pareto_serving's), and the H100 at a third of its price enters that frontier."""
    root = str(tmp_path / "lake")
    store = Lake(root)
    base = {"name": "srv", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_8b"], "chip": [H100, "amd_mi300x"], "n_chips": [1], "engine": ["vllm"],
        "concurrency": [1, 8, 64], "prompt_len": [1024], "gen_len": [256]}}
    price = load_catalog().chips[H100].usd_per_hour
    for version, spec in ((1, base), (2, {**base, "overrides": {H100: {"usd_per_hour": price / 3}}})):
        sweep = resolve(parse_spec(spec), load_catalog())
        store.write_part(ChunkEvaluator(sweep).evaluate(0, sweep.configurations), "inference", "srv", version, 0)
        store.write_dims(sweep, version, created_at=float(version), state="done")
    params = {"sweep": "srv", "from_version": 1, "to_version": 2}
    assert run_saved("frontier_diff", params, lake=root).num_rows == 0  # speeds only: nothing moved
    moved = run_saved("frontier_diff", {**params, "frontier": "serving_cost"}, lake=root).to_pylist()
    entered = [r for r in moved if r["change"] == "entered"]
    assert entered and all(r["chip"] == H100 and r["kind"] == "serving" for r in entered)
    assert all(r["usd_per_million_tokens"] > 0 for r in moved)


def test_a_blank_batch_beside_a_concurrency_is_a_static_batch_that_fits() -> None:
    """Concurrency 1,166 fits the serving KV cache (p + g/2 per request on average), but a static batch holds every
    sequence's whole p + g: the static columns were reported for a batch of 1,166 beside a refusal of an explicit
    1,164 for memory. A blank batch is now the concurrency only where that fits, else the largest that does."""
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "prompt_len": 1000,
            "gen_len": 500}
    (free,) = run(base)
    (given,) = run(dict(base, concurrency=free["concurrency"]))
    assert given["batch"] == free["batch"] < given["concurrency"]
    fits, over = run(dict(base, batch=given["batch"]), dict(base, batch=given["batch"] + 1))
    assert fits["infeasible_reason"] == "" and "does not fit in memory" in over["infeasible_reason"]
    (small,) = run(dict(base, concurrency=8))
    assert small["batch"] == 8  # a concurrency that fits as a static batch is the static batch


def test_pareto_serving_compares_one_engine_when_asked_and_says_when_its_frontier_mixes_them(tmp_path: Path) -> None:
    """Each chip runs its default engine where the sweep leaves engine blank (TensorRT-LLM on an H100, vLLM on an
    MI300X), so a chip difference on the frontier may be a software one: the table says which engines it holds, and
    `--param engine=` keeps one. The choices are the engines the core knows."""
    from chipsweep.queries.output import to_text
    from chipsweep.queries.saved import load_query
    from chipsweep.schemas.vocab import ENGINES

    (engine,) = [p for p in load_query("pareto_serving").params if p.name == "engine"]
    assert tuple(engine.choices or ()) == ENGINES
    spec = {"name": "mixed", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_8b"], "chip": [H100, "amd_mi300x"], "concurrency": [1, 16, 256]},
        "fixed": {"prompt_len": 1024, "gen_len": 256}}
    sweep = resolve(parse_spec(spec), load_catalog())
    root = str(tmp_path / "lake")
    store = Lake(root)
    store.write_part(ChunkEvaluator(sweep).evaluate(0, sweep.configurations), "inference", "mixed", 1, 0)
    store.write_dims(sweep, 1, created_at=0.0, state="done")
    both = run_saved("pareto_serving", {"model": "llama3_8b"}, lake=root)
    assert set(both["engine"].to_pylist()) == {"tensorrt_llm", "vllm"}  # the H100's and the MI300X's defaults
    assert "engines on it: tensorrt_llm, vllm" in to_text(both)
    one = run_saved("pareto_serving", {"model": "llama3_8b", "engine": "vllm"}, lake=root)
    assert one.num_rows >= 1 and set(one["engine"].to_pylist()) == {"vllm"} and "engines on it" not in to_text(one)


def test_attention_runs_at_its_kernels_precision_not_the_gemms() -> None:
    """FlashAttention and the engines' FMHA run in 16 bits whatever the GEMMs run in; in fp8 only with an 8-bit KV
    cache (TensorRT-LLM's FP8 context FMHA, FlashAttention-3's FP8 path); nothing runs attention in 4 bits. An fp4
    row ran its attention at the fp4 peak (4x the 16-bit rate): a 32K-token prompt of Llama 3 8B on a B200 took
    0.16 s. Halving the GEMMs' time twice (bf16 -> fp8 -> fp4, 16-bit KV) now saves twice as much the first time,
    the attention staying at the 16-bit rate; an 8-bit KV cache moves attention to the fp8 rate. (One pass: the
    token budget holds the prompt.)"""
    base = dict(model="llama3_8b", chip=B200, prompt_len=32000, gen_len=128, concurrency=1, **{"cal.max_tokens": 32768})
    bf16, fp8, fp4, fp8_kv8, fp4_kv8 = (r["ttft_s"] for r in run(
        dict(base, compute_precision="bf16", kv_bits=16), dict(base, compute_precision="fp8", kv_bits=16),
        dict(base, compute_precision="fp4", kv_bits=16), dict(base, compute_precision="fp8", kv_bits=8),
        dict(base, compute_precision="fp4", kv_bits=8)))
    assert (bf16 - fp8) / (fp8 - fp4) == pytest.approx(2.0, rel=0.05)  # only the GEMMs' share halves each time
    assert fp8_kv8 < fp8 and fp4_kv8 < fp4  # an 8-bit KV cache moves attention to the fp8 rate
    assert (fp8 - fp8_kv8) == pytest.approx(fp4 - fp4_kv8, rel=0.02)  # the same attention saving at fp8 and fp4


def test_a_disaggregated_prompt_pool_pays_what_a_colocated_prefill_pays() -> None:
    """The prompt pool of a disaggregated instance was charged the bare compute-bound FLOPs of its prompts: no fixed
    time per layer, no all-reduces, no memory time, though its prompts run on the same 8 chips. Llama 3.1 405B at fp8
    on 8 H200 with 4,000-token prompts: 0.72 ms of pool chip-time per prompt token against 1.14 ms for the same
    prefill colocated, so disaggregation read 46 tokens/s per chip against 36. The pool runs each prompt as the
    colocated instance prefills one alone (a 32K-token prompt fills its passes): its busy instance-seconds per prompt
    token = a lone prompt's TTFT / its tokens. The pool is whole instances of the 8 chips (xPyD, 2026-12-07; it was
    the fractional chip-seconds, a pool that never queues), and every one of its chips counts."""
    base = dict(model="llama3_405b", chip="nvidia_h200_sxm", n_chips=8, compute_precision="fp8", prompt_len=32000,
                gen_len=200)
    dis, alone = run(dict(base, concurrency=16, disaggregated="true"), dict(base, concurrency=1))
    pool_chips = dis["output_tokens_per_s"] / dis["output_tokens_per_s_per_chip"] - 8
    assert pool_chips == pytest.approx(8 * dis["prefill_instances"], rel=1e-9) and dis["decode_instances"] == 1
    prompts_s = dis["output_tokens_per_s"] / 200  # the prompts the decodes consume
    busy = prompts_s * alone["ttft_s"]  # prompt instances' worth of passes
    assert dis["prefill_pool_busy"] * dis["prefill_instances"] == pytest.approx(busy, rel=0.01)
    assert math.floor(busy) + 1 <= dis["prefill_instances"] and dis["prefill_pool_busy"] < 1


def test_a_disaggregated_prompt_waits_in_the_pools_queue_as_distserve_gives_it() -> None:
    """DistServe (OSDI '24) sec. 3.1 models a prompt instance as an M/D/1 queue: Poisson arrivals at R prompts/s, one
    pass of D s each, TTFT = D + R D^2 / (2 (1 - R D)). The pool used to be the fractional chip-seconds its prompts
    need, a pool busy all the time whose prompts never waited: the TTFT of a one-instance pool at 80 % load read the
    lone pass. Llama 3 70B on 8 H100 with one prompt instance (1P1D): the wait is DistServe's, at every load the
    concurrency sets, and it grows without bound as the load nears the pool's capacity; a pool of 64 instances
    waits almost nothing, so the difference of the two TTFTs is the queue."""
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "weight_bits": 8,
            "prompt_len": 1024, "gen_len": 512, "engine": "vllm", "disaggregated": True}
    waits, loads = [], []
    for c in (8, 32, 96):
        one, wide = run(dict(base, concurrency=c, prefill_instances=1), dict(base, concurrency=c, prefill_instances=64))
        assert one["prefill_instances"] == 1 and wide["prefill_instances"] == 64
        rho = one["prefill_pool_busy"]
        assert rho == pytest.approx(64 * wide["prefill_pool_busy"], rel=1e-9)  # the same prompts over 64x the pool
        waits.append(one["ttft_s"] - wide["ttft_s"])
        loads.append(rho)
    (lone,) = run(dict(base, concurrency=1, disaggregated=False))
    pass_s = lone["ttft_s"]  # the lone prompt's pass, the pool's service time
    for rho, w in zip(loads, waits, strict=True):
        assert w == pytest.approx(rho * pass_s / (2 * (1 - rho)), rel=0.01, abs=2e-4 * pass_s), (rho, w)
    assert loads[0] < loads[1] < loads[2] < 1 and waits[2] > pass_s  # past 2/3 of its capacity it waits a pass


def test_a_disaggregated_pool_too_small_for_its_prompts_is_refused_naming_what_keeps_up() -> None:
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "weight_bits": 8,
            "prompt_len": 2000, "gen_len": 256, "concurrency": 256, "disaggregated": True}
    blank, short, colocated = run(base, dict(base, prefill_instances=2),
                                  dict(base, disaggregated=False, prefill_instances=2))
    assert blank["infeasible_reason"] == "" and blank["prefill_instances"] >= 3
    assert short["infeasible_reason"].startswith("row 2: field 'prefill_instances' = 2: allowed: at least 3")
    assert "keep 2." in short["infeasible_reason"] and math.isnan(short["output_tokens_per_s"])
    # a colocated row has no prompt pool: the setting does not apply, the row says none and its notes say so
    assert colocated["infeasible_reason"] == "" and colocated["prefill_instances"] is None
    assert "ignored on this colocated row" in colocated["notes"] and "ignored" not in blank["notes"]
    with pytest.raises(EvaluateError, match="prefill_instances"):
        run(dict(base, prefill_instances=2), strict=True)
    bad = run(dict(base, prefill_instances=0), dict(base, decode_instances=65))
    assert bad[0]["infeasible_reason"] == "row 1: field 'prefill_instances' = '0': allowed: an integer from 1 to 64"
    assert bad[1]["infeasible_reason"] == "row 2: field 'decode_instances' = '65': allowed: an integer from 1 to 64"


def test_a_blank_concurrency_beside_a_given_pool_is_the_most_that_pool_keeps_within_a_pass() -> None:
    """A blank concurrency was the most requests memory holds whatever the prompt pool: 929 on Llama 3 70B fp8 on 8
    H100 with 2,000-token prompts, whose prompts keep 2.9 instances busy, so one given prompt instance refused the row.
    Now it is the most whose prompts the given pool takes without a wait longer than their pass -- the rule a blank
    pool is sized by, the other way round: at that concurrency the blank pool is at most the given one, one request
    more needs a larger one."""
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "weight_bits": 8,
            "kv_bits": 8, "prompt_len": 2000, "gen_len": 256, "disaggregated": True}
    colocated, = run(dict(base, disaggregated=False))
    for given in (1, 2, 4, 64):
        row, = run(dict(base, prefill_instances=given))
        assert row["infeasible_reason"] == "" and row["prefill_instances"] == given
        most = row["concurrency"]
        if given == 64:  # a pool that takes every prompt: memory's most, as a colocated row's
            assert most == colocated["concurrency"]
            continue
        assert 1 < most < colocated["concurrency"]
        at, above = run(dict(base, concurrency=int(most)), dict(base, concurrency=int(most) + 1))
        assert at["prefill_instances"] <= given < above["prefill_instances"]
        assert row["ttft_s"] == pytest.approx(run(dict(base, prefill_instances=given, concurrency=int(most)))[0]["ttft_s"])


def test_a_disaggregated_row_without_outputs_is_a_bad_cell_naming_the_field() -> None:
    """Disaggregated with gen_len 0 was refused with a reason alone: no 'row N: field', no warning on stderr, and not
    counted with the bad rows. It is a bad cell of `disaggregated` now, as a too-small pool is of prefill_instances."""
    base = {"model": "llama3_8b", "chip": H100, "n_chips": 1, "prompt_len": 512, "gen_len": 0, "disaggregated": True}
    bad, good = run(base, dict(base, gen_len=128))
    assert bad["infeasible_reason"].startswith("row 1: field 'disaggregated' = 'true': allowed: false where prompt_len "
                                               "or gen_len is 0")
    assert math.isnan(bad["output_tokens_per_s"]) and good["infeasible_reason"] == ""
    with pytest.raises(EvaluateError) as exc:
        run(base, strict=True)
    assert exc.value.field == "disaggregated"


def _simulated_md_c_wait(servers: int, load: float, arrivals: int = 120_000, seed: int = 7) -> float:
    """Mean wait in queue of a first-come first-served M/D/c queue, simulated: Poisson arrivals at `load` x servers
    per unit of service time, each served for exactly 1 by the first server free (the first tenth dropped)."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0 / (load * servers), arrivals))
    free = [0.0] * servers
    waits = np.empty(arrivals)
    for i, a in enumerate(times.tolist()):
        start = max(a, heapq.heappop(free))
        waits[i] = start - a
        heapq.heappush(free, start + 1.0)
    return float(waits[arrivals // 10:].mean())


@pytest.mark.parametrize("servers,load", [(1, 0.5), (1, 0.8), (2, 0.6), (4, 0.7), (8, 0.85), (16, 0.9)])
def test_the_prompt_pools_queue_waits_as_a_simulated_m_d_c_queue(servers: int, load: float) -> None:
    """The prompt pool's wait (workers/inference.py `prompt_pool`: Erlang C, Allen-Cunneen's half for a deterministic
    pass, Cosmetatos' correction for c > 1) against a simulated M/D/c queue: within 8 % (the simulation's own spread at
    90 % load is about 3 %; the approximation reads 2-7 % low at 60-95 % load); exact M/D/1 (DistServe's) at c = 1."""
    from chipsweep.workers.inference import prompt_pool

    one = np.ones(1)
    pool, wait = prompt_pool(np.full(1, float(servers)), np.full(1, load * servers), one, one)
    assert pool[0] == servers
    simulated = _simulated_md_c_wait(servers, load)
    assert wait[0] == pytest.approx(simulated, rel=0.08)
    if servers == 1:
        assert wait[0] == pytest.approx(load / (2 * (1 - load)), rel=1e-12)


def test_the_pools_wait_matches_erlangs_full_recursion_for_pools_of_thousands_of_servers() -> None:
    """`prompt_pool` walks Erlang B's recursion (`erlang_b`) from 6 sqrt(a) + 6 servers below the load (the recursion
    forgets its start) and answers no wait beyond that far above it: against the recursion from B(0) = 1 over every server, each
    wait to 1e-6 of a pass (a pass of 1 s), given pools of 1 to 3,000 servers at 10-99.9 % load."""
    from chipsweep.workers.inference import prompt_pool

    def full(c: int, a: float) -> float:  # the M/D/c wait of a 1 s pass from Erlang's C over every server
        b = 1.0
        for k in range(1, c + 1):
            b = a * b / (k + a * b)
        rho = a / c
        fix = 1 + (1 - rho) * (c - 1) * (math.sqrt(4 + 5 * c) - 2) / (16 * rho * c)
        return 0.5 * c * b / (c - a * (1 - b)) * fix / (c - a)

    cases = [(c, rho) for c in (1, 2, 7, 50, 300, 3000) for rho in (0.1, 0.5, 0.9, 0.99, 0.999)]
    servers = np.asarray([float(c) for c, _ in cases])
    one = np.ones(len(cases))
    pool, wait = prompt_pool(servers, np.asarray([rho * c for c, rho in cases]), one, one)
    np.testing.assert_array_equal(pool, servers)
    for (c, rho), w in zip(cases, wait.tolist(), strict=True):
        assert w == pytest.approx(full(c, rho * c), abs=1e-6), (c, rho)
    _, at_capacity = prompt_pool(np.full(1, 4.0), np.full(1, 4.0), np.ones(1), np.ones(1))
    assert at_capacity[0] == np.inf  # a pool at its load never catches up


def test_decode_instances_sharing_a_prompt_pool_pay_a_share_of_it() -> None:
    """A fleet of y decode instances shares x prompt instances (xPyD, as SGLang's and Dynamo's deployments run):
    each decode instance counts x/y of the pool, so a light prompt load (short prompts, long outputs) no longer pays
    a whole prompt instance per decode instance, and a larger pool queues less at the same load (more servers).
    The pool's idle chips draw their idle power: the same prompts over more instances add their idle draw, nothing
    more."""
    base = {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "weight_bits": 8,
            "prompt_len": 512, "gen_len": 1024, "concurrency": 64, "disaggregated": True}
    alone, fleet, fleet2, fleet3 = run(base, dict(base, decode_instances=8),
                                       dict(base, decode_instances=8, prefill_instances=4),
                                       dict(base, decode_instances=8, prefill_instances=6))
    assert alone["prefill_instances"] == 1 and alone["prefill_pool_busy"] < 0.2  # one whole instance, mostly idle
    assert fleet["prefill_instances"] < 8 and fleet["prefill_pool_busy"] > alone["prefill_pool_busy"]
    assert fleet["output_tokens_per_s_per_chip"] > 1.5 * alone["output_tokens_per_s_per_chip"]
    assert fleet["tpot_s"] == alone["tpot_s"]  # the decode instances run as before
    chips = [r["output_tokens_per_s"] / r["output_tokens_per_s_per_chip"] for r in (alone, fleet, fleet2, fleet3)]
    assert chips[1] == pytest.approx(8 + 8 * fleet["prefill_instances"] / 8, rel=1e-9)
    assert fleet2["ttft_s"] < fleet["ttft_s"] or fleet2["prefill_instances"] == fleet["prefill_instances"]
    # W per added pool chip: one constant (its idle draw), below the busy chips' and the TDP
    step = [(b["power_w"] - a["power_w"]) / (cb - ca) for a, b, ca, cb in
            ((fleet, fleet2, chips[1], chips[2]), (fleet2, fleet3, chips[2], chips[3]))]
    assert chips[2] > chips[1] and step[0] == pytest.approx(step[1], rel=1e-6)
    assert 0 < step[0] < fleet["power_w"] / chips[1] and step[0] < float(load_catalog().chips[H100].tdp_w)


def test_latent_attention_prefills_expanded_and_decodes_absorbed() -> None:
    """Multi-head latent attention decodes with its projections absorbed, every head scoring the cached 576-wide
    latent (DeepSeek-V2 report sec. 2.1.3), but a prompt's pass expands the latent into per-head keys and values and
    runs ordinary attention over them (vLLM's and SGLang's MLA prefill): q·k over 128 + 64 dims, a·v over 128, 160
    per head. The prompt was charged the absorbed width, 3.6x the FLOPs. The quadratic term of a prompt's TTFT (the
    second difference over 16K, 32K and 48K tokens) of DeepSeek-V3 against Llama 3 70B on the same 8 H200 (same
    engine, attention at the same fp8 rate) is their attention widths' ratio: 61 x 128 x 160 / (80 x 8192) = 1.906,
    not 61 x 128 x 576 / (80 x 8192) = 6.86."""

    def quadratic(model: str, **extra: object) -> float:
        rows = [dict(model=model, chip="nvidia_h200_sxm", n_chips=8, compute_precision="fp8", kv_bits=8,
                     prompt_len=p, gen_len=16, concurrency=1, **extra) for p in (16384, 32768, 49152)]
        a, b, c = (r["ttft_s"] for r in run(*rows))
        return (c - 2 * b + a) / 2 / 16384 ** 2

    assert quadratic("deepseek_v3", ep=8) / quadratic("llama3_70b") == pytest.approx(61 * 128 * 160 / (80 * 8192),
                                                                                     rel=1e-3)
    # beside data-parallel attention a lone prompt's attention runs on its own rank, not spread over the 8: its
    # quadratic term is 8x (its TTFT was 0.14 s at 8K tokens against 0.18 s under tensor parallelism)
    assert quadratic("deepseek_v3", ep=8, dp_attention=True) / quadratic("deepseek_v3", ep=8) == pytest.approx(8, rel=1e-3)
    # ... and so does a static batch of one prompt: its prefill rate is that TTFT's (it read the ranks' even share)
    (one,) = run(dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=8, ep=8, compute_precision="fp8",
                      prompt_len=8000, gen_len=200, concurrency=1, batch=1, dp_attention=True))
    assert one["prefill_tokens_per_s"] * one["ttft_s"] == pytest.approx(8000, rel=1e-6)


def test_weights_computed_in_fp4_carry_nvfp4s_scales() -> None:
    """A row computing in fp4 stores NVFP4: one 8-bit scale per 16 four-bit values, 12.5 % more bytes than the bare
    4 bits (asic.yaml quant_overhead_nvfp4). It took group-wise INT4's 4.5 %, reading 7 % too few weight bytes per
    decode step. Weight-only 4-bit rows keep 4.5 %."""
    base = dict(model="llama3_70b", chip=B200, n_chips=1, prompt_len=1000, gen_len=200, concurrency=1)
    fp4, fp4_125, fp4_045, int4 = run(dict(base, compute_precision="fp4"),
                                      dict(base, compute_precision="fp4", quant_overhead=0.125),
                                      dict(base, compute_precision="fp4", quant_overhead=0.045),
                                      dict(base, weight_bits=4))
    assert fp4["mem_gb"] == pytest.approx(fp4_125["mem_gb"], rel=1e-9)
    # the embedding and the head stay at 16 bits (TensorRT-LLM's quantiser): the other 67.9B weights carry the scales
    quantised = load_catalog().models["llama3_70b"].params_b * 1e9 - 2 * 128256 * 8192
    assert fp4["mem_gb"] - fp4_045["mem_gb"] == pytest.approx(quantised * 0.5 * (0.125 - 0.045) / 1e9, rel=0.02)
    assert fp4["tpot_s"] > fp4_045["tpot_s"]  # a memory-bound decode reads the scales too
    int4_045 = run(dict(base, weight_bits=4, quant_overhead=0.045))[0]
    assert int4["mem_gb"] == pytest.approx(int4_045["mem_gb"], rel=1e-9)  # weight-only 4-bit keeps 4.5 %


def test_a_prompt_longer_than_the_token_budget_pays_each_pass_and_waits_beside_the_decodes_each_time() -> None:
    """A prompt longer than the engine's token budget (max_tokens, 8,192 under vLLM) runs in several passes: each
    pays the fixed time per layer and reads the weights again, and beside running requests each of its chunks is
    one pass with their decodes. TTFT charged one pass and one decode iteration whatever the length (Llama 3 70B,
    32K tokens on 8 H100: 9 % short); then, until 2026-12-05, the lone prompt's passes plus a decode iteration per
    chunk, the weights read and the fixed time paid twice for one pass. The same 32K prompt with a budget that holds
    it whole (cal.max_tokens 40,000) is the one-pass reference."""
    base = dict(model="llama3_70b", chip=H100, n_chips=8, compute_precision="fp8", engine="vllm", gen_len=128,
                prompt_len=32000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        four, one, busy4, busy1, decodes = chipsweep.evaluate(
            [dict(base, concurrency=1), dict(base, concurrency=1, **{"cal.max_tokens": 40000}),
             dict(base, concurrency=8), dict(base, concurrency=8, **{"cal.max_tokens": 40000}),
             dict(base, concurrency=7, disaggregated=True)],
            kind="inference", explain=True).to_pylist()
    assert four["ttft_fixed_s"] == pytest.approx(4 * one["ttft_fixed_s"], rel=1e-9)  # ceil(32000 / 8192) passes
    assert busy4["infeasible_reason"] == busy1["infeasible_reason"] == ""

    def in_flight(r: dict) -> float:  # half the instance's iteration: a new request waits for the one in flight
        return 0.5 * r["concurrency"] / r["output_tokens_per_s"]

    # beside 7 running requests: 4 chunks, each one pass with their decodes, never sooner than the prompt alone,
    # and sooner than the prompt alone plus a separate decode iteration of the 7 per chunk
    passes4, passes1 = busy4["ttft_s"] - in_flight(busy4), busy1["ttft_s"] - in_flight(busy1)
    assert busy4["ttft_s"] >= four["ttft_s"] and passes4 > passes1
    assert passes4 < four["ttft_s"] + 4 * decodes["tpot_s"]
    assert sum(busy4[k] for k in busy4 if k.startswith("ttft_") and k != "ttft_s") == pytest.approx(busy4["ttft_s"])


def test_a_concurrency_above_the_engines_default_limit_says_it_is_taken_as_the_setting() -> None:
    """vLLM runs at most 256 requests at once by default (--max-num-seqs): a row that asks for 300 is answered as an
    engine set to run 300, and its notes say so; at 256 nothing is said. With data-parallel attention each chip runs a
    scheduler of its own, so the limit is per chip."""
    limit = load_catalog().asic["serving"]["max_batch"]["value"]["vllm"]
    rows = [{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "prompt_len": 512, "gen_len": 128, "engine": "vllm",
             "concurrency": c} for c in (limit, limit + 44)]
    rows.append({"model": "qwen3_30b_a3b", "chip": "nvidia_h100_sxm", "n_chips": 2, "ep": 2, "dp_attention": "true",
                 "prompt_len": 512, "gen_len": 128, "engine": "vllm", "concurrency": 2 * limit})
    at, above, dpa = chipsweep.evaluate(rows, kind="inference").to_pylist()
    said = "above the engine's default limit on running requests"
    assert said not in at["notes"] and said in above["notes"] and said not in dpa["notes"]
    assert above["output_tokens_per_s"] > at["output_tokens_per_s"]  # the 300 run together: the setting, as asked


def test_a_request_longer_than_the_models_context_says_so() -> None:
    """Llama 3 8B was released with an 8,192-token context (the catalog's seq_len): a 200,000-token prompt was
    answered without a word. It is answered (a long-context variant is a what-if worth asking) and its notes say the
    model id is not that variant; 2,000 + 128 tokens says nothing."""
    assert load_catalog().models["llama3_8b"].seq_len == 8192
    long_, short = run({"model": "llama3_8b", "chip": H100, "prompt_len": 200_000, "gen_len": 128},
                       {"model": "llama3_8b", "chip": H100, "prompt_len": 8_000, "gen_len": 192})
    said = "beyond the model's context"
    assert said in long_["notes"] and long_["ttft_s"] > 0 and said not in short["notes"]


def test_llama_cpp_rows_weigh_the_files_llama_cpp_loads() -> None:
    """llama.cpp's 4-bit files are Q4_K_M (Llama 3 8B: 4.58 GiB, 22.5 % over 4 bits a weight; 70B: 20.5 %) and its
    8-bit ones Q8_0 (one fp16 scale per 32 weights, 6.25 %): its rows took AWQ's 4.5 % and 0 %, weights 14 % and 6 %
    lighter than what the engine loads, so Llama 3 8B at 8 bits 'fit' an 8 GB Jetson Orin Nano (8.54 GB of weights
    alone). A row's quant_overhead still overrides the format."""
    serving = load_catalog().asic["serving"]
    q4, q8 = (serving[f"weight_format_overhead_{b}bit"]["value"]["llama_cpp"] for b in (4, 8))
    assert q4 == pytest.approx((22.5 + 20.5) / 200, abs=1e-3) and q8 == 16 / (32 * 8)
    base = {"model": "llama3_8b", "chip": "nvidia_rtx_4090", "engine": "llama_cpp", "prompt_len": 512, "gen_len": 128,
            "concurrency": 1}
    own, given, awq = run(dict(base, weight_bits=4), dict(base, weight_bits=4, quant_overhead=q4),
                          dict(base, weight_bits=4, quant_overhead=0.045))
    params = load_catalog().models["llama3_8b"].params_b * 1e9
    assert own["mem_gb"] == pytest.approx(given["mem_gb"], rel=1e-9)
    assert own["mem_gb"] - awq["mem_gb"] == pytest.approx(params * 0.5 * (q4 - 0.045) / 1e9, rel=0.02)
    (jetson,) = run(dict(base, chip="nvidia_jetson_orin_nano_8gb", weight_bits=8))
    assert not jetson["fits"] and "does not fit in memory" in jetson["infeasible_reason"]


def test_a_disaggregated_prompt_pool_runs_the_passes_its_ttft_says() -> None:
    """The prompt pool is sized at the pass a prompt's TTFT is: one prompt alone, so the pool's busy instances are the
    prompts/s the decode instance consumes times that pass (it was sized with passes of 8 prompts, 36 % cheaper than
    the TTFT it gave). Under data-parallel attention every rank runs a prompt of its own in the pass, so the pass is
    t prompts: cheaper per prompt than one, and the TTFT is that pass, each rank under its own token budget (the
    ranks side by side: about one prompt's time, plus the experts' work on t prompts' tokens and the KV cache's
    move; until 2026-12-07 the t prompts shared one budget, 8 passes for 1). Blank, the pool is the fewest whole
    instances at which a prompt waits no longer than its pass: Llama's one-server instances at most 2/3 busy (the
    M/D/1 wait rho / (2 (1 - rho)) of a pass)."""
    llama = {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "weight_bits": 8,
             "prompt_len": 1024, "gen_len": 256, "concurrency": 128, "engine": "vllm", "disaggregated": True}
    ds = {"model": "deepseek_v3", "chip": "nvidia_h200_sxm", "n_chips": 8, "ep": 8, "dp_attention": True,
          "disaggregated": True, "compute_precision": "fp8", "weight_bits": 8, "kv_bits": 8, "prompt_len": 2000,
          "gen_len": 500, "concurrency": 256, "engine": "sglang"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = chipsweep.evaluate([llama, ds], kind="inference", explain=True).to_pylist()
    for r, spread in zip(rows, (False, True), strict=True):
        t, g = r["n_chips"], r["gen_len"]
        lone = r["ttft_compute_s"] + r["ttft_fixed_s"] + r["ttft_comm_s"]  # one prompt's pass alone
        prompts_s = r["output_tokens_per_s"] / g
        busy = r["prefill_pool_busy"] * r["prefill_instances"]  # prompt instances' worth of passes
        pool = r["output_tokens_per_s"] / r["output_tokens_per_s_per_chip"] - t
        assert pool == pytest.approx(t * r["prefill_instances"], rel=1e-9)
        if spread:  # t prompts a pass: less than t lone passes' time
            assert busy < 0.75 * prompts_s * lone and 0 < r["ttft_queue_s"] < 0.5 * lone
        else:
            assert busy == pytest.approx(prompts_s * lone, rel=1e-6)
            rho = r["prefill_pool_busy"]
            assert rho <= 2 / 3 and busy / (r["prefill_instances"] - 1) > 2 / 3  # the fewest that wait within a pass


def test_a_serving_row_says_the_basis_of_its_cost() -> None:
    """`usd_per_million_tokens` is the chips' rental price where the catalog has one (H100 SXM), else what owning
    them costs (Gaudi 3: its kit price over its life, hosted, at the training TCO's rates), else not computed (an M2
    Ultra: no price of either kind). `cost_basis` says which, as a training row's does, so a frontier never sets one
    against the other."""
    base = {"model": "llama3_8b", "n_chips": 1, "prompt_len": 512, "gen_len": 256, "concurrency": 8}
    rows = [dict(base, chip="nvidia_h100_sxm"), dict(base, chip="intel_gaudi3"),
            dict(base, chip="apple_m2_ultra", weight_bits=4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = chipsweep.evaluate(rows, kind="inference").to_pylist()
    assert [r["cost_basis"] for r in out] == ["rental", "owned", None]
    assert out[0]["usd_per_million_tokens"] > 0 and out[1]["usd_per_million_tokens"] > 0
    assert math.isnan(out[2]["usd_per_million_tokens"])


def test_each_iteration_kind_draws_its_own_capped_power() -> None:
    """Power is linear in utilisation up to the TDP (idle + (TDP - idle) x min(a u_c + b u_m, 1)). A serving
    instance alternates decode iterations and mixed ones that carry a prompt chunk; the cap applies to each kind, the
    two then weighted by their time (the TDP is an instantaneous limit). Raising the compute weight `a`, the draw rises
    in a straight line while no iteration reaches the TDP, then bends below the line once the mixed iterations do,
    though their average with the decodes is still far from it (averaged first, the line went on: 565 W at a = 3.2
    where the capped kinds give 551 W)."""
    base = dict(model="llama3_8b", chip="nvidia_h100_sxm", engine="vllm", n_chips=1, compute_precision="fp8",
                weight_bits=8, kv_bits=8, prompt_len=2000, gen_len=200, concurrency=64,
                **{"cal.power_memory": 0.0, "cal.idle_fraction": 0.2})
    weights = (0.2, 0.4, 3.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = [r["power_w"] for r in chipsweep.evaluate([dict(base, **{"cal.power_compute": a}) for a in weights],
                                                       kind="inference").to_pylist()]
    slope = (p[1] - p[0]) / (weights[1] - weights[0])
    line = p[0] + slope * (weights[2] - weights[0])
    assert p[0] == pytest.approx(0.2 * 700 + slope * 0.2, rel=1e-6)  # the line starts at the idle draw
    assert line < 700  # the average utilisation stays under the cap ...
    assert p[2] < 0.99 * line  # ... but the mixed iterations reach it


def test_unfused_attention_scores_count_in_the_memory_the_power_model_reads() -> None:
    """llama.cpp's attention writes its fp32 scores and reads them back (no fused kernel): the iteration's time pays
    those bytes, so the memory utilisation counts them too. With only memory drawing power (b = 1) and every part of a
    long-context decode memory-bound at the chip's full measured bandwidth (no fixed times), the draw is the TDP times
    the share of the peak bandwidth the memory delivers; without the scores' bytes it was 1 % short."""
    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.workers.context import Context

    row = dict(model="llama3_8b", chip="nvidia_rtx_4090", engine="llama_cpp", n_chips=1, weight_bits=4, prompt_len=1,
               gen_len=8000, concurrency=1, **{"cal.power_memory": 1.0, "cal.power_compute": 1e-9,
                                               "cal.idle_fraction": 1e-9, "cal.mem_bw_fraction": 1.0,
                                               "cal.layer_overhead_s": 0.0, "cal.seq_overhead_s": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = chipsweep.evaluate([row], kind="inference").to_pylist()[0]
    ctx = Context.build(load_catalog(use_env=False))
    reach = float(ctx.chip_links["mem_reach"][ctx.chips.index()["nvidia_rtx_4090"]])
    assert r["power_w"] == pytest.approx(450.0 * reach, rel=1e-6)


def test_a_prompt_pool_draws_the_power_of_its_passes_not_of_full_rate_gemms() -> None:
    """A disaggregated prompt pool runs one prompt a pass; a pass pays its fixed time per layer and its all-reduces
    beside its kernels, so its chips' matrix units are busy a small share of the pass, not at the GEMM library's full
    rate. With power following compute alone (idle 0.2 of the TDP, a = 1), Llama 3 70B in fp8 on 8 H100 with 128-token
    prompts: whatever the decode chips draw above idle, the pool's chips draw under idle plus half the dynamic range
    (charged at the full GEMM rate, 576 W each)."""
    row = dict(model="llama3_70b", chip="nvidia_h100_sxm", n_chips=8, compute_precision="fp8", weight_bits=8,
               kv_bits=8, prompt_len=128, gen_len=512, concurrency=128, disaggregated=True,
               **{"cal.power_memory": 1e-9, "cal.power_compute": 1.0, "cal.idle_fraction": 0.2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = chipsweep.evaluate([row], kind="inference").to_pylist()[0]
    assert r["infeasible_reason"] == ""
    pool = r["output_tokens_per_s"] / r["output_tokens_per_s_per_chip"] - 8  # the pool's chips per instance
    assert pool > 0.1
    idle = 0.2 * 700
    assert (r["power_w"] - 8 * idle) / pool < idle + 0.5 * (700 - idle)


def test_tensor_parallel_serving_on_a_full_mesh_reaches_only_the_links_to_its_peers(tmp_path: Path) -> None:
    """The MI300X's 8-GPU Infinity Fabric mesh (7 links of 64 GB/s per GPU, one to each peer): a tp-2 instance's
    all-reduces ride one link, 64 of the 448 GB/s, and serve slower than a switch of the same aggregate would let
    them; a tp-8 instance uses all seven and is unchanged."""
    overlay = tmp_path / "switch.yaml"
    overlay.write_text("chips:\n  - {id: amd_mi300x, scale_up_full_mesh: false}\n")
    rows = [dict(model="llama3_70b", chip="amd_mi300x", n_chips=n, concurrency=64, prompt_len=1024, gen_len=1024,
                 compute_precision="fp8") for n in (2, 8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mesh = chipsweep.evaluate(rows, kind="inference").to_pylist()
        switch = chipsweep.evaluate(rows, kind="inference", catalog=load_catalog(overlay)).to_pylist()
    assert mesh[0]["tpot_s"] > 1.05 * switch[0]["tpot_s"]
    assert mesh[1]["tpot_s"] == pytest.approx(switch[1]["tpot_s"], rel=1e-9)


def test_a_pipeline_over_two_nodes_runs_each_stages_all_reduces_on_its_nodes_link() -> None:
    """Llama 3 405B served at tp 8 x pp 2 on two 8-GPU H100 nodes (the usual two-node deployment): each stage's
    tensor-parallel all-reduces stay on its node's NVLink, only the stage hand-off crosses the network. A what-if
    audit found the all-reduces priced at the InfiniBand rate whenever the instance spanned two nodes (TPOT 197 ms
    against 88.5 on one node, 137 ms of it collectives) and deaf to the NVLink's bandwidth."""
    base = dict(model="llama3_405b", chip="nvidia_h100_sxm", prompt_len=2000, gen_len=500, concurrency=64,
                weight_bits=8, compute_precision="fp8")
    rows = [dict(base, n_chips=8), dict(base, n_chips=16, pp=2),
            dict(base, n_chips=16, pp=2, **{"chip.scale_up_gb_s": 45.0}),
            dict(base, n_chips=16, pp=2, **{"chip.scale_out_gbit_s": 800.0})]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one, two, slow_nvlink, fast_nic = chipsweep.evaluate(rows, kind="inference", explain=True).to_pylist()
    # the same all-reduces on the same NVLink, one hidden state more a token over the network
    assert two["tpot_comm_s"] == pytest.approx(one["tpot_comm_s"], rel=0.05)
    assert two["tpot_s"] == pytest.approx(one["tpot_s"], rel=0.05)
    assert slow_nvlink["tpot_comm_s"] > 2.0 * two["tpot_comm_s"]  # the stages' link is the scale-up link
    assert fast_nic["tpot_comm_s"] == pytest.approx(two["tpot_comm_s"], rel=0.02)  # the NIC carries one hand-off
    # a stage on a scale-up link the catalog leaves blank (the Ascend 910B's HCCS rate is quoted in conflict) says
    # its all-reduces ride a stand-in, as the one-node instance does
    ascend = dict(model="llama3_70b", chip="huawei_ascend_910b", prompt_len=1000, gen_len=200, concurrency=16,
                  compute_precision="fp16", **{"chip.memory_bandwidth_gb_s": 1600.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = chipsweep.evaluate([dict(ascend, n_chips=8), dict(ascend, n_chips=16, pp=2)], kind="inference").to_pylist()
    assert all("no published link between the row's chips" in r["notes"] for r in rows), [r["notes"] for r in rows]


def test_a_running_request_limit_below_the_concurrency_queues_the_rest() -> None:
    """`cal.max_batch` is the engine's limit on running requests (vLLM --max-num-seqs): a row that sets it below its
    concurrency runs that many and queues the rest, whose wait (Little's law: the queue over the rate requests
    finish) joins TTFT; throughput and per-user speed are the running requests'. A what-if audit found the limit
    ignored (256 requests at a limit of 8 read exactly as at 2,048) under a note that said it sets the limit. At the
    engine's default a row above it still runs them all, with the note that says so."""
    base = dict(model="llama3_8b", chip="nvidia_h100_sxm", n_chips=1, prompt_len=1000, gen_len=200, engine="vllm")
    rows = [dict(base, concurrency=300, **{"cal.max_batch": 8}), dict(base, concurrency=8),
            dict(base, concurrency=300, **{"cal.max_batch": 2048}), dict(base, concurrency=300)]  # vLLM's default: 256
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        queued, eight, unlimited, default = chipsweep.evaluate(rows, kind="inference").to_pylist()
    assert queued["concurrency"] == 300
    for k in ("output_tokens_per_s", "tokens_per_s_per_user", "tpot_s", "energy_per_token_j"):
        assert queued[k] == pytest.approx(eight[k], rel=1e-9), k
    wait = (300 - 8) / (eight["output_tokens_per_s"] / 200)  # s: the queue over the requests finishing per second
    assert queued["ttft_s"] == pytest.approx(eight["ttft_s"] + wait, rel=1e-6)
    assert "wait in the engine's queue" in queued["notes"] and "answered as an engine set to run them" not in queued["notes"]
    assert unlimited["output_tokens_per_s"] == pytest.approx(default["output_tokens_per_s"], rel=1e-9)
    assert unlimited["output_tokens_per_s"] > 3 * queued["output_tokens_per_s"]
    assert "answered as an engine set to run them all" in default["notes"] and "queue" not in unlimited["notes"]


DS_DPA = dict(model="deepseek_v3", chip="nvidia_h200_sxm", n_chips=8, ep=8, compute_precision="fp8",
              engine="tensorrt_llm")


def test_a_prompt_chunk_beside_data_parallel_attention_runs_on_its_own_rank() -> None:
    """Under data-parallel attention a prompt's chunk runs its attention and dense layers on the one rank that holds
    the request, and every rank waits for it at the MoE layers' all-to-alls: the mixed iteration's dense GEMMs take
    the whole chunk on one chip, tp times what tensor-parallel attention spends spreading it over the eight (an
    audit's hand figure: DeepSeek-V3 on 8 H200, 8 users with 8,000-token prompts, TPOT 65 ms against the 38 ms the
    core read when it spread the chunk's dense work over every chip, as it never did for a lone prompt)."""
    base = dict(DS_DPA, concurrency=8, prompt_len=8000, gen_len=256)
    rows = [dict(base, dp_attention=dpa, disaggregated=dis) for dpa in (True, False) for dis in (False, True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dpa, dpa_dec, tpa, tpa_dec = chipsweep.evaluate(rows, kind="inference", explain=True).to_pylist()
    # the chunk's share of each user's time per token (the decode iterations alone on a prompt pool: the rest)
    chunk_dpa = dpa["tpot_gemm_s"] - dpa_dec["tpot_gemm_s"]
    chunk_tpa = tpa["tpot_gemm_s"] - tpa_dec["tpot_gemm_s"]
    assert chunk_dpa == pytest.approx(8 * chunk_tpa, rel=0.02)
    assert dpa["tpot_s"] > 1.5 * tpa["tpot_s"] > 0
    # its tokens go to the experts from that rank alone: more all-to-all time than the same tokens spread
    assert dpa["tpot_comm_s"] - dpa_dec["tpot_comm_s"] > 0


def test_an_expert_all_to_all_over_pipeline_stages_costs_each_stage_its_own_chips() -> None:
    """Two pipeline stages of 8 H200 each run the expert all-to-alls of their own layers, one stage after the
    other, among their own 8 chips: the same traffic as one 8-chip instance plus one hand-off over the network. The
    core divided it over all 16 chips, so two stages read faster than one (TPOT 58.3 against 58.7 ms)."""
    base = dict(DS_DPA, dp_attention=True, concurrency=256, prompt_len=1000, gen_len=1000, disaggregated=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one, two = chipsweep.evaluate([base, dict(base, n_chips=16, pp=2)], kind="inference", explain=True).to_pylist()
    hand_off = 256 * 7168 * 2 / (400e9 / 8)  # s: 256 hidden states of 7,168 bf16 values at the NIC's spec
    assert one["tpot_comm_s"] < two["tpot_comm_s"] <= one["tpot_comm_s"] + 2.0 * hand_off + 1e-4
    assert two["tpot_s"] >= one["tpot_s"]


def test_one_more_user_never_speeds_the_others_up_where_a_prompt_splits_into_two_chunks() -> None:
    """A prompt longer than the token budget left beside the decodes (max_tokens - C) runs in two chunks. The
    schedulers fill the budget greedily (a full chunk, then the rest), so a user that tips the prompts into two
    chunks costs about one more decode's worth; split evenly, two half-chunks each hid a decode iteration's weight
    reads and a 193rd user read 15 % faster per user than 192 (DeepSeek-V3 on 8 H200 under vLLM, 8,000-token
    prompts, data-parallel attention)."""
    base = dict(DS_DPA, engine="vllm", dp_attention=True, prompt_len=8000, gen_len=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = chipsweep.evaluate([dict(base, concurrency=c) for c in range(186, 200)], kind="inference").to_pylist()
    per_user = [r["tokens_per_s_per_user"] for r in rows]
    assert all(math.isfinite(v) for v in per_user)
    assert all(b <= a * (1 + 1e-9) for a, b in zip(per_user, per_user[1:], strict=False)), per_user


def test_data_parallel_ranks_prefill_their_own_prompts_side_by_side() -> None:
    """Under data-parallel attention each rank chunks its own requests' prompts: up to tp chunks ride one iteration
    (the ranks independent: 1 - (1 - share / tp)^tp of the iterations carry any, the busiest rank one chunk), not one
    iteration each. Charged one after another, a review found DeepSeek-V3 on 8 H200 under SGLang at 999 users reading
    8,210 output tokens/s and at 1,001 users (every iteration then carrying prompt tokens) 15,594, and a longer output
    slower than a shorter one (2,000-token prompts: 3,909 tokens/s at 255 outputs, 1,401 at 257)."""
    base = dict(DS_DPA, engine="sglang", dp_attention=True, kv_bits=8)
    rows = [dict(base, concurrency=c, prompt_len=1000, gen_len=1000) for c in (999, 1001)]
    rows += [dict(base, concurrency=256, prompt_len=2000, gen_len=g) for g in (200, 255, 257, 400, 1000)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = chipsweep.evaluate(rows, kind="inference").to_pylist()
    below, above = out[:2]
    assert above["output_tokens_per_s"] == pytest.approx(below["output_tokens_per_s"], rel=0.01)
    assert above["tpot_s"] == pytest.approx(below["tpot_s"], rel=0.02)
    rates = [r["output_tokens_per_s"] for r in out[2:]]
    assert rates == sorted(rates) and all(r > 0 for r in rates), rates


def test_a_serving_row_says_whose_gemm_measurement_its_share_of_peak_is() -> None:
    """A chip without a GEMM measurement of its own takes its twin's, its core architecture's or its family's (the
    MI355X the MI300X's 0.443 of peak, where it took defaults.yaml's 0.647 until 2026-12-07 and tied the GB300 on
    every serving frontier); its `calibrated_on` says whose, so the borrowing travels with the row into the lake."""
    base = dict(model="llama3_70b", engine="vllm", compute_precision="fp8", concurrency=64, prompt_len=1000, gen_len=500)
    mi355, h100, b200 = run(dict(base, chip="amd_mi355x", n_chips=1), dict(base, chip="nvidia_h100_sxm", n_chips=2),
                            dict(base, chip="nvidia_b200_hgx", n_chips=1))
    assert mi355["calibrated_on"].endswith("GEMM share of peak from amd_mi300x's measurement")
    assert b200["calibrated_on"].endswith("GEMM share of peak from nvidia_gb200_per_gpu's measurement")
    assert "GEMM share" not in h100["calibrated_on"]
