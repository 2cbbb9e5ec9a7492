"""The inference model (workers/inference.py through `evaluate --kind inference`): the roofline, memory and
batch, tensor parallelism, energy, what-if overrides, and per-row reasons and notes."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.vocab import ENGINES
from chipsweep.workers import inference
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import assemble_inference, evaluate_inference, parse_inference
from chipsweep.workers.parse import EvaluateError, RowErrors

JETSON = "nvidia_jetson_orin_nano_8gb"
H100 = "nvidia_h100_sxm"


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.build(load_catalog())


def run(ctx: Context, *rows: dict, strict: bool = False) -> list[dict]:
    keys = sorted({key for r in rows for key in r})
    table = pa.table({key: pa.array([None if r.get(key) is None else str(r[key]) for r in rows], type=pa.string())
                      for key in keys})
    out, _ = evaluate_inference(table, ctx, strict=strict)
    return out.to_pylist()


def test_orin_nano_super_decode_is_102_gbs_times_085_over_47_gb(ctx: Context) -> None:
    # asic-notes section 7 check 1: a 4.7 GB weight stream per token at 0.85 of 102 GB/s -> ~18.4 tokens/s (the row
    # says the memory delivers its whole 102 GB/s, so mem_bw_fraction is the share of the peak)
    row = {"chip": JETSON, "chip.memory_bandwidth_gb_s": 102, "chip.memory_bandwidth_measured_gb_s": 102,
           "cal.mem_bw_fraction": 0.85, "params_b": 9.4,
           "layers": 1, "hidden": 64, "heads": 1, "vocab": 1, "weight_bits": 4, "quant_overhead": 0, "batch": 1,
           "prompt_len": 0, "gen_len": 1, "cal.seq_overhead_s": 0, "cal.layer_overhead_s": 0}
    (r,) = run(ctx, row)
    assert r["decode_tokens_per_s"] == pytest.approx(102e9 * 0.85 / 4.7e9, rel=1e-3)
    assert r["decode_tokens_per_s"] == pytest.approx(18.4, rel=0.005)


def test_batch_one_decode_speed_scales_with_memory_bandwidth(ctx: Context) -> None:
    # without the fixed time per layer (launches) and the host's per sequence (sampling) a batch-1 decode is all
    # weight and KV-cache streaming
    base = {"model": "llama3.1_8b", "chip": JETSON, "weight_bits": 4, "batch": 1, "cal.layer_overhead_s": 0,
            "cal.seq_overhead_s": 0}
    slow, fast = run(ctx, base, dict(base, **{"chip.memory_bandwidth_gb_s": 102}))
    assert fast["decode_tokens_per_s"] / slow["decode_tokens_per_s"] == pytest.approx(102 / 68, rel=1e-9)


def test_weight_streaming_runs_at_a_share_of_what_the_memory_delivers_and_gemms_of_what_the_library_does(
        ctx: Context) -> None:
    """mem_bw_fraction is a share of the measured STREAM-like bandwidth (memory_bandwidth_measured_gb_s), compute_fraction
    of the measured GEMM rate (gemm_measured); chips without a measurement take the measured chips' mean shares
    (defaults.yaml memory_reach, gemm_reach), which are what the catalog's measurements give."""
    chips = ctx.catalog.chips
    bw = [c.memory_bandwidth_measured_gb_s / c.memory_bandwidth_gb_s for c in chips.values()
          if c.memory_bandwidth_measured_gb_s is not None]
    gemm = [c.gemm_fraction for c in chips.values() if c.gemm_fraction is not None]
    assert len(bw) == 4 and len(gemm) == 5
    assert ctx.defaults["memory_reach"] == pytest.approx(np.mean(bw), abs=5e-4)
    assert ctx.defaults["gemm_reach"] == pytest.approx(np.mean(gemm), abs=5e-4)
    base = {"model": "llama3.1_8b", "chip": H100, "weight_bits": 16, "batch": 1, "cal.layer_overhead_s": 0,
            "cal.seq_overhead_s": 0, "prompt_len": 0, "gen_len": 1}
    measured, half = run(ctx, base, dict(base, **{"chip.memory_bandwidth_measured_gb_s": 1590}))
    assert half["decode_tokens_per_s"] / measured["decode_tokens_per_s"] == pytest.approx(0.5, rel=1e-6)
    x, cal = assemble_inference({"model_idx": np.array([ctx.models.index()["llama3.1_8b"]] * 2),
                                 "chip_idx": np.array([ctx.chips.index()[c] for c in (H100, "amd_mi300x")])}, ctx)
    np.testing.assert_allclose(x["mem_reach"], [3180 / 3350, 4260 / 5300])
    np.testing.assert_allclose(x["compute_reach"], [1382.2 / 1978.9, 1159.2 / 2614.9])


def test_a_mixture_of_experts_layer_pays_its_own_fixed_time_per_pass(ctx: Context) -> None:
    """cal.moe_layer_overhead_s: the router, top-k, permutation and grouped-GEMM kernels of each MoE layer, once per
    forward pass. Qwen3-30B-A3B has 48 MoE layers: 100 us each add 4.8 ms to every decode step; a dense model's TPOT
    does not move."""
    base = {"chip": H100, "engine": "vllm", "weight_bits": 16, "concurrency": 8, "prompt_len": 128, "gen_len": 256}
    moe = {**base, "model": "qwen3_30b_a3b"}
    dense = {**base, "model": "qwen3_32b"}
    m0, m1, d0, d1 = run(ctx, {**moe, "cal.moe_layer_overhead_s": 0}, {**moe, "cal.moe_layer_overhead_s": 1e-4},
                         {**dense, "cal.moe_layer_overhead_s": 0}, {**dense, "cal.moe_layer_overhead_s": 1e-4})
    assert m1["tpot_s"] - m0["tpot_s"] == pytest.approx(48 * 1e-4, rel=0.02)
    assert d1["tpot_s"] == d0["tpot_s"]
    # the catalog's vLLM sets carry a fitted value (schemas/catalog/asic.yaml serving.efficiency, MoE runs of
    # ML.ENERGY), so a row that leaves it blank pays it
    (fitted,) = run(ctx, moe)
    assert fitted["tpot_s"] > m0["tpot_s"] + 48 * 5e-5


def test_matrix_multiplies_at_8_bits_pay_a_fixed_time_per_layer_of_their_own(ctx: Context) -> None:
    """cal.quant_layer_overhead_s: where the GEMMs run at 8 bits or fewer (compute_precision fp8, int8, fp4) each
    layer pays a fixed time per pass beside the one every layer pays (the activations' quantisation and scaling
    kernels); 16-bit rows and rows that only store 8-bit weights (weight-only quantisation) do not."""
    base = {"model": "llama3_8b", "chip": H100, "engine": "vllm", "concurrency": 8, "prompt_len": 128, "gen_len": 256}
    rows = [{**base, "compute_precision": p, "cal.quant_layer_overhead_s": q}
            for p in ("fp8", "bf16") for q in (0.0, 1e-4)]
    rows += [{**base, "weight_bits": 8, "cal.quant_layer_overhead_s": q} for q in (0.0, 1e-4)]
    f0, f1, b0, b1, w0, w1 = run(ctx, *rows)
    assert f1["tpot_s"] - f0["tpot_s"] == pytest.approx(32 * 1e-4, rel=0.02)  # Llama 3 8B: 32 layers
    assert b1["tpot_s"] == b0["tpot_s"] and w1["tpot_s"] == w0["tpot_s"]
    # fitted: the catalog's vLLM sets carry it (ML.ENERGY's Qwen3-235B in bf16 and fp8 on the same chips)
    (fitted,) = run(ctx, {**base, "compute_precision": "fp8"})
    assert fitted["tpot_s"] > f0["tpot_s"] + 32 * 1e-5


def test_multi_step_scheduling_pays_the_hosts_per_sequence_time_once_per_scheduler_call(ctx: Context) -> None:
    # vLLM --num-scheduler-steps n: the scheduler and input preparation run once per n forward passes
    base = {"model": "llama3_8b", "chip": H100, "engine": "vllm", "concurrency": 64, "prompt_len": 128,
            "gen_len": 512, "cal.seq_overhead_s": 3e-5, "async_scheduling": "false"}
    one, ten, bad = run(ctx, base, dict(base, scheduler_steps=10), dict(base, scheduler_steps=0))
    assert one["tpot_s"] - ten["tpot_s"] == pytest.approx(64 * 3e-5 * 0.9, rel=0.02)
    assert ten["scheduler_steps"] == 10 and one["scheduler_steps"] == 1
    assert bad["infeasible_reason"].startswith("row 3: field 'scheduler_steps' = '0': allowed: an integer >= 1")


def test_async_scheduling_waits_only_for_the_longer_of_the_hosts_and_the_chips_time(ctx: Context) -> None:
    """vLLM --async-scheduling prepares the next iteration on the host while the chips run this one: with the host's
    64 x 30 us below the chips' step, TPOT loses exactly the host's time; with 64 x 200 us above it, TPOT is the
    host's time alone."""
    base = {"model": "llama3_8b", "chip": H100, "engine": "vllm", "concurrency": 64, "prompt_len": 128,
            "gen_len": 512, "cal.seq_overhead_s": 3e-5}
    serial, overlapped, bad, default, trt = run(
        ctx, dict(base, async_scheduling="false"), dict(base, async_scheduling="true"), dict(base, async_scheduling="maybe"),
        base, dict(base, engine="tensorrt_llm"))
    assert serial["tpot_s"] - overlapped["tpot_s"] == pytest.approx(64 * 3e-5, rel=1e-6)
    assert overlapped["async_scheduling"] is True and serial["async_scheduling"] is False  # booleans, as the lake
    # vLLM schedules asynchronously by default (PR #27614); TensorRT-LLM's tables ran its C++ runtime in turn
    assert default["async_scheduling"] is True and default["tpot_s"] == overlapped["tpot_s"]
    assert trt["async_scheduling"] is False
    assert "field 'async_scheduling' = 'maybe'" in bad["infeasible_reason"]
    slow = dict(base, **{"cal.seq_overhead_s": 2e-4})
    host_bound, = run(ctx, dict(slow, async_scheduling="true"))
    assert host_bound["tpot_s"] == pytest.approx(64 * 2e-4, rel=1e-9)


def test_engines_own_all_reduce_takes_one_step_inside_the_scale_up_domain(ctx: Context) -> None:
    """vLLM's CustomAllreduce (2-8 GPUs of one NVLink domain, messages below 8 MiB) reads every peer's buffer once
    after one barrier: one link latency per all-reduce where NCCL's tree takes 2 x ceil(log2 tp). A TP4 decode of 16
    sequences (16 x 8,192 x 2 bytes per message) loses exactly 2L x (4 - 1) latencies; a 32k-token prompt (512 MiB
    messages) runs on NCCL either way."""
    rows = [{"model": "llama3_70b", "chip": H100, "engine": "vllm", "n_chips": 4, "concurrency": 16, "prompt_len": 128,
             "gen_len": 256, "cal.seq_overhead_s": 0},
            {"model": "llama3_70b", "chip": H100, "engine": "vllm", "n_chips": 4, "batch": 1, "prompt_len": 32768,
             "gen_len": 1}]
    table = pa.table({k: pa.array([None if r.get(k) is None else str(r[k]) for r in rows], type=pa.string())
                      for k in sorted({k for r in rows for k in r})})
    errors = RowErrors(table.num_rows)
    x, cal = assemble_inference(parse_inference(table, ctx, errors), ctx, errors)
    assert not errors and cal["custom_all_reduce_bytes"][0] == 8 * 2**20
    own = inference.evaluate(x, cal)
    nccl = inference.evaluate(x, dict(cal, custom_all_reduce_bytes=np.zeros(2)))
    lat, layers = cal["link_latency_s"][0], x["layers"][0]
    assert nccl["tpot_s"][0] - own["tpot_s"][0] == pytest.approx(2 * layers * 3 * lat, rel=1e-6)
    assert own["ttft_s"][1] == nccl["ttft_s"][1]
    # chips beyond their scale-up domain keep NCCL's steps
    x8 = {k: (np.array([v[0]]) if isinstance(v, np.ndarray) and v.shape == (2,) else v) for k, v in x.items()}
    c8 = {k: (np.array([v[0]]) if isinstance(v, np.ndarray) and v.shape == (2,) else v) for k, v in cal.items()}
    x8["up_domain"] = np.array([2.0])
    beyond = inference.evaluate(x8, c8)
    beyond_nccl = inference.evaluate(x8, dict(c8, custom_all_reduce_bytes=np.zeros(1)))
    assert beyond["tpot_s"][0] == beyond_nccl["tpot_s"][0]


def test_decode_turns_compute_bound_at_large_batch(ctx: Context) -> None:
    base = {"model": "llama3_8b", "chip": H100, "weight_bits": 8, "prompt_len": 64, "gen_len": 64,
            "cal.layer_overhead_s": 0}
    b1, b2, b1024, b2048 = run(ctx, *[dict(base, batch=b) for b in (1, 2, 1024, 2048)])
    assert b2["throughput_tokens_per_s"] / b1["throughput_tokens_per_s"] == pytest.approx(2.0, rel=0.01)  # weight-bound
    assert b2048["throughput_tokens_per_s"] / b1024["throughput_tokens_per_s"] == pytest.approx(1.0, abs=0.02)  # FLOP-bound


def test_prefill_of_a_long_prompt_runs_at_the_achievable_compute_rate(ctx: Context) -> None:
    (r,) = run(ctx, {"model": "llama3_8b", "chip": H100, "weight_bits": 16, "batch": 1, "prompt_len": 4096, "gen_len": 1})
    x, cal = assemble_inference({"model_idx": np.array([ctx.models.index()["llama3_8b"]]),
                                 "chip_idx": np.array([ctx.chips.index()[H100]])}, ctx)
    n, layers, d = x["params_read"][0], x["layers"][0], x["att_dim"][0]
    # 2NP at the matrix multiplies' achieved rate: a share of what cuBLASLt delivers on the H100 (gemm_measured)
    assert x["compute_reach"][0] == pytest.approx(1382.2 / 1978.9)
    gemm = 2 * n * 4096 / (989.4e12 * x["compute_reach"][0] * cal["compute_fraction"][0])
    attention = 2 * layers * 4096**2 * d / (989.4e12 * cal["attention_fraction"][0])  # causal attention 2LP^2 d
    assert r["ttft_s"] == pytest.approx(gemm + attention + layers * cal["layer_overhead_s"][0], rel=1e-9)
    assert r["prefill_tokens_per_s"] == pytest.approx(4096 / r["ttft_s"])


def test_llama_cpp_cuda_prompt_pass_pays_the_dequantise_to_fp16_round_trip(ctx: Context) -> None:
    # llama.cpp PR #3412: quantised weights are dequantised into an fp16 buffer, then cuBLAS runs the GEMM; the extra
    # kernel reads the stored weights and writes the copy once per 512-token micro-batch. Metal dequantises tiles on
    # chip and TensorRT-LLM in registers: no round trip there. Batch-1 decode (quantised mat-vec) never pays it.
    def prompt_s(chip: str, engine: str, bits: int) -> tuple[float, float]:
        (r,) = run(ctx, {"model": "llama3_8b", "chip": chip, "engine": engine, "weight_bits": bits, "quant_overhead": 0,
                         "batch": 1, "prompt_len": 512, "gen_len": 1})
        return 512 / r["prefill_tokens_per_s"], r["decode_tokens_per_s"]

    rtx = "nvidia_rtx_4090"
    (q4, q4_dec), (f16, f16_dec) = prompt_s(rtx, "llama_cpp", 4), prompt_s(rtx, "llama_cpp", 16)
    x, cal = assemble_inference({"model_idx": np.array([ctx.models.index()["llama3_8b"]]),
                                 "chip_idx": np.array([ctx.chips.index()[rtx]]),
                                 "engine": np.array([float(ENGINES.index("llama_cpp"))])}, ctx)
    assert cal["dequant_round_trip"][0] == 1
    bw = x["mem_bw"][0] * x["mem_reach"][0] * cal["mem_bw_fraction"][0]
    round_trip = x["w_dense"][0] * (4 / 8 + 2) / bw  # read 4-bit weights, write the fp16 copy (the GEMM reads it either way)
    assert q4 - f16 == pytest.approx(round_trip, rel=1e-6)
    assert q4_dec > f16_dec  # decode streams the 4-bit weights
    for chip, engine in (("apple_m2_ultra", "llama_cpp"), (H100, "tensorrt_llm")):
        (q4_other, _), (f16_other, _) = prompt_s(chip, engine, 4), prompt_s(chip, engine, 16)
        assert q4_other == pytest.approx(f16_other, rel=1e-9), chip  # compute-bound prompt, no copy written
    # a what-if: llama.cpp with its int8 tensor-core kernels (MMQ, PR #7860) instead of dequantise + cuBLAS
    row = {"model": "llama3_8b", "chip": rtx, "engine": "llama_cpp", "weight_bits": 4, "quant_overhead": 0, "batch": 1,
           "prompt_len": 512, "gen_len": 1}
    (mmq,) = run(ctx, dict(row, **{"cal.dequant_round_trip": 0}))
    assert 512 / mmq["prefill_tokens_per_s"] == pytest.approx(f16, rel=1e-9)
    _, errs = evaluate_inference(pa.table({k: [str(v)] for k, v in dict(row, **{"cal.dequant_round_trip": 2}).items()}), ctx)
    msgs = errs.messages()
    assert len(msgs) == 1 and "cal.dequant_round_trip" in msgs[0] and "2" in msgs[0], msgs


def test_blank_batch_is_the_largest_that_fits(ctx: Context) -> None:
    base = {"model": "llama3_8b", "chip": H100, "weight_bits": 16, "prompt_len": 2048, "gen_len": 512}
    (r,) = run(ctx, base)
    b = r["batch"]
    assert b > 8
    fit, over = run(ctx, dict(base, batch=b), dict(base, batch=b + 1))
    assert fit["fits"] and fit["infeasible_reason"] == ""
    assert not over["fits"]
    assert f"does not fit in memory at batch {b + 1}" in over["infeasible_reason"]


def test_model_too_big_for_one_chip_is_reported_and_fits_on_two(ctx: Context) -> None:
    one, two, four = run(ctx, *[{"model": "llama3_70b", "chip": H100, "weight_bits": 16, "n_chips": n} for n in (1, 2, 4)])
    assert one["fits"] is False
    assert "does not fit in memory at any batch" in one["infeasible_reason"]
    assert "raise n_chips" in one["infeasible_reason"]
    assert math.isnan(one["decode_tokens_per_s"])
    assert two["fits"] and two["infeasible_reason"] == ""
    assert four["batch"] > two["batch"]


def test_tensor_parallel_all_reduce_costs_time_on_the_scale_up_link(ctx: Context) -> None:
    base = {"model": "llama3_70b", "chip": H100, "weight_bits": 8, "batch": 1}
    t2, t4 = run(ctx, dict(base, n_chips=2), dict(base, n_chips=4))
    no_link = run(ctx, dict(base, n_chips=4, **{"chip.scale_up_gb_s": 1e9}))[0]
    assert t2["decode_tokens_per_s"] < t4["decode_tokens_per_s"] < 2 * t2["decode_tokens_per_s"]
    assert no_link["decode_tokens_per_s"] > t4["decode_tokens_per_s"]


def test_gqa_and_kv_bits_shrink_the_kv_cache(ctx: Context) -> None:
    shape = {"chip": H100, "layers": 32, "hidden": 4096, "heads": 32, "vocab": 32000, "weight_bits": 16, "batch": 8,
             "prompt_len": 1000, "gen_len": 0}
    mha, gqa, gqa8 = run(ctx, dict(shape, kv_heads=32), dict(shape, kv_heads=8), dict(shape, kv_heads=8, kv_bits=8))
    kv_gb = 8 * 2 * 32 * 128 * 1000 * 2 / 1e9  # GB of 16-bit KV per KV head: B x 2 x L x d_h x context x bytes
    k_v_weights_gb = 2 * 32 * 4096 * 128 * 2 / 1e9  # GB of 16-bit K and V projection weights per KV head
    assert mha["mem_gb"] - gqa["mem_gb"] == pytest.approx(24 * (kv_gb + k_v_weights_gb), rel=1e-9)
    assert gqa["mem_gb"] - gqa8["mem_gb"] == pytest.approx(8 * kv_gb / 2, rel=1e-9)


def test_weight_bits_set_the_weight_bytes(ctx: Context) -> None:
    base = {"model": "llama3_8b", "chip": H100, "batch": 1, "quant_overhead": 0, "engine": "mlc"}
    w16, w8, w4 = run(ctx, *[dict(base, weight_bits=b) for b in (16, 8, 4)])
    assert w16["mem_gb"] - w8["mem_gb"] == pytest.approx(2 * (w8["mem_gb"] - w4["mem_gb"]), rel=1e-9)
    assert w16["mem_gb"] - w8["mem_gb"] == pytest.approx(8.03, rel=0.01)  # ~8.03e9 parameters x 1 byte


def test_engines_that_leave_the_embedding_and_head_at_16_bits_hold_them_at_16_bits(ctx: Context) -> None:
    """TensorRT-LLM's and vLLM's quantisers skip the output head and the embedding (asic.yaml serving.head_16bit):
    Llama 3 8B's untied 128,256 x 4,096 embedding and head (1.05e9 weights) stay at 2 bytes in an FP8 or INT4
    checkpoint; MLC quantises them with the rest."""
    vh = 128_256 * 4_096  # weights of the embedding, and of the head
    rows = [{"model": "llama3_8b", "chip": H100, "batch": 1, "quant_overhead": 0, "engine": e, "weight_bits": b}
            for e in ("tensorrt_llm", "vllm", "mlc") for b in (16, 8, 4)]
    (t16, t8, t4), (v16, v8, v4), (m16, m8, m4) = (run(ctx, *rows[i:i + 3]) for i in (0, 3, 6))
    assert t16["mem_gb"] == pytest.approx(m16["mem_gb"], rel=1e-9)  # 16-bit weights: nothing changes
    assert t8["mem_gb"] - m8["mem_gb"] == pytest.approx(2 * vh * 1e-9, rel=1e-6)  # 2 x V x h weights, 1 byte more
    assert t4["mem_gb"] - m4["mem_gb"] == pytest.approx(2 * vh * 1.5e-9, rel=1e-6)  # ... 1.5 bytes more
    assert v8["mem_gb"] == pytest.approx(t8["mem_gb"], rel=1e-9) and v4["mem_gb"] == pytest.approx(t4["mem_gb"], rel=1e-9)


def test_energy_per_token_follows_utilisation_below_tdp_over_tokens_per_second(ctx: Context) -> None:
    # one user, 4-bit weights: the chip streams weights at a fraction of its bandwidth and barely computes, so it
    # draws between its idle power and its TDP (asic.yaml serving.power) and J/token is below TDP / tokens/s
    for chip, tdp in ((JETSON, 15.0), (H100, 700.0)):
        (r,) = run(ctx, {"model": "llama3.1_8b", "chip": chip, "weight_bits": 4, "concurrency": 1, "prompt_len": 128,
                         "gen_len": 128})
        assert 0.1 * tdp < r["power_w"] < tdp
        assert r["energy_per_token_j"] == pytest.approx(r["power_w"] / r["output_tokens_per_s"], rel=1e-6)
        assert r["energy_per_token_j"] < tdp / r["output_tokens_per_s"]


def test_unit_cost_is_the_purchase_price_of_the_replica(ctx: Context) -> None:
    one, two = run(ctx, *[{"model": "llama3.2_3b", "chip": JETSON, "weight_bits": 4, "batch": 1, "n_chips": n} for n in (1, 2)])
    assert (one["unit_cost_usd"], two["unit_cost_usd"]) == (249.0, 498.0)


def test_a_precision_the_chip_cannot_run_is_reported(ctx: Context) -> None:
    coral, hailo = run(ctx, {"model": "gpt3_125m", "chip": "google_coral_edge_tpu", "weight_bits": 16, "batch": 1},
                       {"model": "gpt3_125m", "chip": "hailo_10h", "weight_bits": 16, "batch": 1})
    for r in (coral, hailo):
        assert "publishes no peak for this compute precision" in r["infeasible_reason"]
        assert math.isnan(r["decode_tokens_per_s"])


def test_missing_catalog_numbers_name_the_override_that_fixes_them(ctx: Context) -> None:
    hailo10, hailo8, rk = run(ctx, {"model": "qwen2_1.5b", "chip": "hailo_10h", "weight_bits": 4, "batch": 1},
                              {"model": "gpt3_125m", "chip": "hailo_8", "weight_bits": 8, "batch": 1},
                              {"model": "qwen2_1.5b", "chip": "rockchip_rk3588", "weight_bits": 8, "batch": 1})
    assert "add a chip.memory_bandwidth_gb_s column" in hailo10["infeasible_reason"]
    assert "add a chip.memory_gb column" in hailo8["infeasible_reason"]
    assert "chip.memory_bandwidth_gb_s" in rk["infeasible_reason"]
    (fixed,) = run(ctx, {"model": "qwen2_1.5b", "chip": "hailo_10h", "weight_bits": 4, "batch": 1,
                         "chip.memory_bandwidth_gb_s": 17})
    assert fixed["infeasible_reason"] == "" and fixed["decode_tokens_per_s"] > 0


def test_chip_overrides_are_what_ifs(ctx: Context) -> None:
    (r,) = run(ctx, {"model": "llama3_70b", "chip": H100, "weight_bits": 16, "n_chips": 1, "chip.memory_gb": 192})
    assert r["fits"] and r["infeasible_reason"] == ""


def test_low_confidence_catalog_values_are_named_in_notes(ctx: Context) -> None:
    snap, over, nx = run(ctx, {"model": "llama3.2_3b", "chip": "qualcomm_snapdragon_8_gen3", "weight_bits": 4, "batch": 1},
                         {"model": "llama3.2_3b", "chip": "qualcomm_snapdragon_8_gen3", "weight_bits": 4, "batch": 1,
                          "chip.peak_tops_int8": 45},
                         {"model": "llama3.2_3b", "chip": "nvidia_jetson_orin_nx_16gb", "weight_bits": 4, "batch": 1})
    assert "chip catalog confidence is low (qualcomm_snapdragon_8_gen3)" in snap["notes"]
    assert "low-confidence catalog value: peak_tops_int8, memory_gb" in snap["notes"]
    assert "low-confidence catalog value: memory_gb" in over["notes"]
    assert "low-confidence catalog value: peak_tops_int8, memory_bandwidth_gb_s, tdp_w" in nx["notes"]


def test_sram_only_chip_spreads_the_model_over_enough_chips(ctx: Context) -> None:
    (r,) = run(ctx, {"model": "llama2_70b", "chip": "groq_lpu_v1", "weight_bits": 8, "batch": 1})
    assert r["fits"] and r["infeasible_reason"] == ""
    assert r["n_chips"] * 0.23 * 0.95 >= 69.0  # ~69e9 parameters at 1 byte each, in 230 MB SRAM per chip
    assert "SRAM-only chip" in r["notes"] and "PCIe" in r["notes"]


def test_apple_neural_engine_tops_stand_in_for_a_compute_peak(ctx: Context) -> None:
    # the A17 Pro has no published GPU peak: its Neural Engine TOPS stand in (memory: LPDDR5-6400 x 64 bit, 8 GB)
    (r,) = run(ctx, {"model": "llama3.2_3b", "chip": "apple_a17_pro", "weight_bits": 4, "batch": 1,
                     "chip.memory_bandwidth_gb_s": 51.2, "chip.memory_gb": 8})
    assert r["decode_tokens_per_s"] > 0
    assert "Apple Neural Engine" in r["notes"] and "tdp_w not published" in r["notes"]


@pytest.mark.parametrize("chip", ["nvidia_h100_sxm", "nvidia_h200_sxm", "amd_mi300x", "intel_gaudi2", "intel_gaudi3",
                                  "google_tpu_v5e", "nvidia_jetson_agx_orin_64gb", "nvidia_jetson_orin_nx_16gb",
                                  JETSON, "qualcomm_snapdragon_8_gen3", "apple_m2", "apple_m3"])
def test_datacenter_and_edge_chips_serve_a_small_model(ctx: Context, chip: str) -> None:
    (r,) = run(ctx, {"model": "llama3.2_3b", "chip": chip, "weight_bits": 8, "batch": 1})
    assert r["infeasible_reason"] == "" and r["decode_tokens_per_s"] > 1


def test_every_catalog_chip_gets_numbers_or_a_reason(ctx: Context) -> None:
    rows = [{"model": "llama3.2_3b", "chip": c, "weight_bits": 4} for c in ctx.chips.ids]
    out = run(ctx, *rows)
    assert len(out) == len(rows)
    for r in out:
        assert (r["infeasible_reason"] != "") != (r["decode_tokens_per_s"] is not None and r["decode_tokens_per_s"] > 0)


def test_bad_rows_never_stop_the_others_and_strict_refuses(ctx: Context) -> None:
    good = {"model": "llama3.2_3b", "chip": JETSON, "weight_bits": 4, "batch": 1}
    out = run(ctx, dict(good, weight_bits=5), dict(good, model="no_such_model"), good)
    assert "field 'weight_bits' = '5'" in out[0]["infeasible_reason"] and "4, 8, 16" in out[0]["infeasible_reason"]
    assert "unknown model id" in out[1]["infeasible_reason"]
    assert out[2]["infeasible_reason"] == "" and out[2]["decode_tokens_per_s"] > 0
    with pytest.raises(EvaluateError, match="weight_bits"):
        run(ctx, dict(good, weight_bits=5), good, strict=True)
    with pytest.raises(EvaluateError, match="publishes no peak for this compute precision"):
        run(ctx, {"model": "gpt3_125m", "chip": "google_coral_edge_tpu", "weight_bits": 16}, strict=True)


def test_a_refused_row_still_shows_what_it_asked_for(ctx: Context) -> None:
    """A bad row's resolved columns hold the cells the user gave where their type can (5 weight bits, 64 users,
    recompute 'bogus'), beside the message naming the field; a good row shows the resolved values as before."""
    from chipsweep.workers.training_rows import evaluate_training

    good = {"model": "llama3_8b", "chip": H100, "weight_bits": 8, "concurrency": 64}
    ok, bad = run(ctx, good, dict(good, weight_bits=5))
    assert (ok["weight_bits"], ok["concurrency"]) == (8, 64) and ok["kv_bits"] == 16
    assert (bad["weight_bits"], bad["concurrency"]) == (5, 64) and bad["kv_bits"] is None
    assert "field 'weight_bits' = '5'" in bad["infeasible_reason"] and not bad["output_tokens_per_s"] > 0
    # a flag keeps its word's meaning (it read blank until 2026-12-05: a boolean column took no text)
    dense_dpa, = run(ctx, dict(good, dp_attention="yes", disaggregated="0"))
    assert (dense_dpa["dp_attention"], dense_dpa["disaggregated"]) == (True, False)
    assert "field 'dp_attention'" in dense_dpa["infeasible_reason"]
    table = pa.table({"model": ["llama3_8b"] * 2, "chip": [H100] * 2, "n_chips": ["8"] * 2, "global_batch": ["64"] * 2,
                      "recompute": ["full", "bogus"], "tp": ["2", "3.5"]})
    out, _ = evaluate_training(table, ctx)
    rows = out.to_pylist()
    assert rows[0]["recompute"] == "full" and rows[0]["tp"] == 2
    assert rows[1]["recompute"] == "bogus" and rows[1]["tp"] is None  # 3.5 is no integer: the message names it
    assert "field 'recompute' = 'bogus'" in rows[1]["infeasible_reason"] and "field 'tp'" in rows[1]["infeasible_reason"]


def test_a_what_if_the_kind_does_not_apply_is_an_error_not_ignored(ctx: Context) -> None:
    """`cal.ubatch` is not a what-if of the inference core and `chip.bogus` no chip field: answering without
    them would answer another question, so the rows that fill them are refused with the columns allowed; rows that
    leave them blank are answered."""
    from chipsweep.workers.training_rows import evaluate_training

    good = {"model": "llama3_8b", "chip": H100}
    out = run(ctx, dict(good, **{"cal.ubatch": 100}), dict(good, **{"chip.bogus": 1}), good)
    assert "field 'cal.ubatch' = '100'" in out[0]["infeasible_reason"]
    assert "cal.compute_fraction" in out[0]["infeasible_reason"] and not out[0]["output_tokens_per_s"] > 0
    assert "field 'chip.bogus' = '1'" in out[1]["infeasible_reason"] and "chip.memory_gb" in out[1]["infeasible_reason"]
    assert out[2]["infeasible_reason"] == "" and out[2]["output_tokens_per_s"] > 0
    with pytest.raises(EvaluateError, match="cal.ubatch"):
        run(ctx, dict(good, **{"cal.ubatch": 100}), strict=True)
    # the engine's limits are what-ifs (its server flags), whole numbers of at least one
    (limited,) = run(ctx, dict(good, **{"cal.max_tokens": 100}))
    assert limited["infeasible_reason"] == ""
    with pytest.raises(EvaluateError, match="cal.max_batch"):
        run(ctx, dict(good, **{"cal.max_batch": 0.5}), strict=True)
    table = pa.table({"model": ["llama3_8b"], "chip": [H100], "n_chips": ["8"], "global_batch": ["64"],
                      "cal.mm_eff": ["0.5"]})
    _, errors = evaluate_training(table, ctx)
    assert errors.messages() == ["row 1: field 'cal.mm_eff' = '0.5': not a cal what-if of this kind: this kind takes "
                                 "no cal.* what-ifs"]


def test_sweep_raw_path_gives_the_same_numbers_as_evaluate(ctx: Context) -> None:
    row = {"model": "llama3_70b", "chip": H100, "weight_bits": 8, "kv_bits": 8, "n_chips": 4, "prompt_len": 1024,
           "gen_len": 256, "chip.memory_bandwidth_gb_s": 3000}
    (r,) = run(ctx, row)
    raw = {"model_idx": np.array([ctx.models.index()["llama3_70b"]]), "chip_idx": np.array([ctx.chips.index()[H100]]),
           "weight_bits": np.array([8.0]), "kv_bits": np.array([8.0]), "n_chips": np.array([4.0]),
           "batch": np.array([np.nan]), "prompt_len": np.array([1024.0]), "gen_len": np.array([256.0]),
           "chip.memory_bandwidth_gb_s": np.array([3000.0])}
    out = inference.evaluate(*assemble_inference(raw, ctx))
    assert out["batch"][0] == r["batch"]
    for name in ("ttft_s", "decode_tokens_per_s", "throughput_tokens_per_s", "energy_per_token_j", "mem_gb"):
        assert out[name][0] == pytest.approx(r[name], rel=1e-12)


def test_float32_assembly_gives_the_core_the_same_inputs(ctx: Context) -> None:
    """A sweep gathers the catalog columns in float32 (`assemble_inference(..., dtype=np.float32)`, tables.gather):
    the core sees exactly the values the float64 assembly's columns round to, so every output is bit-identical, and
    every catalog column arrives in float32 (the core casts only the row's own columns)."""
    rng = np.random.default_rng(5)
    n = 50_000
    raw = {"model_idx": rng.integers(0, len(ctx.models.ids), n), "chip_idx": rng.integers(0, len(ctx.chips.ids), n),
           "n_chips": rng.choice([1.0, 2.0, 8.0], n), "weight_bits": rng.choice([4.0, 8.0, 16.0], n),
           "batch": rng.choice([np.nan, 8.0], n), "prompt_len": rng.choice([128.0, 2048.0], n),
           "gen_len": rng.choice([1.0, 512.0], n), "concurrency": rng.choice([np.nan, 16.0], n),
           "ep": rng.choice([1.0, 2.0], n), "compute_precision": rng.choice([np.nan, 0.0, 2.0], n),
           "engine": rng.choice([np.nan, 0.0, 1.0], n)}
    x64, cal64 = assemble_inference(raw, ctx)
    x32, cal32 = assemble_inference(raw, ctx, dtype=np.float32)
    assert np.asarray(x32["peak_flops"]).dtype == np.float32 and np.asarray(x32["params"]).dtype == np.float32
    assert np.asarray(cal32["max_tokens"]).dtype == np.float32 and np.asarray(cal32["mem_bw_fraction"]).dtype == np.float32
    assert np.asarray(x32["pre_mask"]).dtype == np.int64
    a = inference.evaluate(x64, cal64, dtype=np.float32)
    b = inference.evaluate(x32, cal32, dtype=np.float32)
    assert (a["reason_mask"] == 0).sum() > n // 10
    for key, v in a.items():
        np.testing.assert_array_equal(b[key], v, err_msg=key)


WHOLE = ("batch", "batch_fit", "concurrency", "concurrency_fit")  # floors to whole sequences
STATIC = ("prefill_tokens_per_s", "decode_tokens_per_s", "throughput_tokens_per_s")  # follow the static batch
POOLED = ("ttft_s",)  # waits in a disaggregated prompt pool's queue


def test_float32_core_agrees_with_float64_and_keeps_its_dtype(ctx: Context) -> None:
    """Sweeps run the inference core in float32 (workers/chunk.py CORE_DTYPE): the same reasons and fits on every
    row, every float output in float32, values within 1e-5 relative. A floor to whole sequences is exact below 100
    sequences; above, float32's rounding of the memory left (capacity minus weights) may move it by up to two (a floor
    of a floor), or 1e-5 of the count (hundreds of thousands of sequences fit only tiny models)."""
    rng = np.random.default_rng(3)
    n = 200_000
    raw = {"model_idx": rng.integers(0, len(ctx.models.ids), n), "chip_idx": rng.integers(0, len(ctx.chips.ids), n),
           "n_chips": rng.choice([1.0, 2.0, 4.0, 8.0], n), "weight_bits": rng.choice([4.0, 8.0, 16.0], n),
           "kv_bits": rng.choice([8.0, 16.0], n), "batch": rng.choice([np.nan, 1.0, 8.0, 64.0], n),
           "prompt_len": rng.choice([0.0, 128.0, 2048.0], n), "gen_len": rng.choice([1.0, 128.0, 512.0], n),
           "concurrency": rng.choice([np.nan, 1.0, 16.0, 256.0], n), "ep": rng.choice([1.0, 2.0], n),
           "compute_precision": rng.choice([np.nan, 0.0, 2.0], n), "disaggregated": rng.choice([0.0, 1.0], n)}
    x, cal = assemble_inference(raw, ctx)
    f64 = inference.evaluate(x, cal)
    f32 = inference.evaluate(x, cal, dtype=np.float32)
    np.testing.assert_array_equal(f32["reason_mask"], f64["reason_mask"])
    np.testing.assert_array_equal(f32["fits"], f64["fits"])
    assert (f64["reason_mask"] == 0).sum() > n // 10
    same_batch = np.ones(n, dtype=bool)
    for key in WHOLE:
        a, b = f64[key], f32[key].astype(np.float64)
        off = np.isfinite(a) & (a != b)
        assert (np.abs(a - b)[off] <= 2.0 + 1e-5 * np.abs(a[off])).all(), key
        assert not (off & (np.abs(a) < 100)).any(), key
        if key == "batch":
            same_batch = ~off
    for key, v in f32.items():
        if v.dtype.kind != "f":
            continue
        assert v.dtype == np.float32, key
        rows = same_batch if key in STATIC else slice(None)
        if key in POOLED:
            # a prompt's wait in a disaggregated pool near its capacity, 1 / (c - a), magnifies float32's rounding of
            # the load a (a pool of 1,338 instances at 99.9 % of it: 1e-4); the colocated rows stay within 1e-5
            pooled = x["disaggregated"] > 0
            np.testing.assert_allclose(v[pooled], f64[key][pooled], rtol=1e-3, equal_nan=True, err_msg=key)
            rows = ~pooled
        if key not in WHOLE:
            np.testing.assert_allclose(v[rows], f64[key][rows], rtol=1e-5, equal_nan=True, err_msg=key)


def test_explicit_model_shapes_work_without_a_catalog_id(ctx: Context) -> None:
    (r,) = run(ctx, {"chip": JETSON, "params_b": 7.0, "layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8,
                     "vocab": 32000, "weight_bits": 4, "batch": 1, "quant_overhead": 0, "prompt_len": 0, "gen_len": 2,
                     "cal.mem_bw_fraction": 0.5829, "cal.layer_overhead_s": 0})
    # 7e9 x 0.5 bytes of weights plus ~1 token of KV cache per step at 0.58 of what 68 GB/s of memory delivers
    # (no measurement on the Jetson: defaults.yaml memory_reach)
    reach = ctx.defaults["memory_reach"]
    assert r["decode_tokens_per_s"] == pytest.approx(68e9 * reach * 0.5829 / 3.5e9, rel=0.001)


def test_catalog_gather_path_equals_the_general_path(ctx: Context) -> None:
    from chipsweep.workers.parse import RowErrors

    rng = np.random.default_rng(1)
    nm, nc = len(ctx.models.ids), len(ctx.chips.ids)
    model_idx, chip_idx = np.meshgrid(np.arange(nm), np.arange(nc), indexing="ij")
    n = model_idx.size
    raw = {"model_idx": model_idx.ravel(), "chip_idx": chip_idx.ravel(),
           "weight_bits": rng.choice([4.0, 8.0, 16.0, np.nan], n), "kv_bits": rng.choice([8.0, 16.0], n),
           "n_chips": rng.choice([1.0, 4.0, np.nan], n), "batch": rng.choice([1.0, np.nan], n)}
    fast_x, fast_cal = assemble_inference(raw, ctx)
    slow_x, slow_cal = assemble_inference(raw, ctx, RowErrors(n))  # an errors object takes the general path
    assert set(fast_x) == set(slow_x)
    for key in fast_x:
        np.testing.assert_array_equal(np.asarray(fast_x[key], dtype=np.float64), np.asarray(slow_x[key], dtype=np.float64), err_msg=key)
    for key in fast_cal:
        np.testing.assert_array_equal(fast_cal[key], slow_cal[key], err_msg=key)


def test_wafer_scale_results_carry_the_pipeline_latency_caveat(ctx: Context) -> None:
    (r,) = run(ctx, {"model": "llama3.2_3b", "chip": "cerebras_wse3_cs3", "weight_bits": 16, "batch": 1})
    assert r["decode_tokens_per_s"] > 0
    assert "wafer-scale system" in r["notes"] and "peak_tflops_fp16" in r["notes"]


def test_sliding_window_layers_keep_and_read_only_the_window_of_kv(ctx: Context) -> None:
    """Gemma 3 27B (report sec. 2): 52 of its 62 layers attend to the last 1024 tokens, so a 32K-token sequence keeps
    1024 tokens of KV in those layers. Against the same shapes without a window (explicit columns, no catalog id),
    the KV a sequence holds drops by exactly 52 x (32768 + 1024 - 1024) tokens x 2 x 16 KV heads x 128 x 2 bytes, the
    long prompt's prefill and the decode get faster, and a context within the window changes nothing."""
    shapes = {"layers": 62, "hidden": 5376, "heads": 32, "kv_heads": 16, "head_dim": 128, "ffn_hidden": 21504,
              "vocab": 262208, "mlp": "swiglu"}
    base = {"chip": H100, "n_chips": 2, "weight_bits": 16, "kv_bits": 16, "batch": 1}
    long_ctx = {"prompt_len": 32768, "gen_len": 1024}
    short = {"prompt_len": 512, "gen_len": 256}
    win, full, win_s, full_s, win2, full2 = run(
        ctx, dict(base, model="gemma3_27b", **long_ctx), dict(base, **shapes, **long_ctx),
        dict(base, model="gemma3_27b", **short), dict(base, **shapes, **short),
        dict(base, model="gemma3_27b", **long_ctx, batch=2), dict(base, **shapes, **long_ctx, batch=2))
    kv_token_layer = 2 * 16 * 128 * 2  # bytes of K and V per token and layer
    saved = 52 * (32768 + 1024 - 1024) * kv_token_layer / 2 / 1e9  # GB per chip (KV split over the 2 chips' heads)
    per_seq_win, per_seq_full = win2["mem_gb"] - win["mem_gb"], full2["mem_gb"] - full["mem_gb"]  # GB per sequence
    assert per_seq_full - per_seq_win == pytest.approx(saved, rel=1e-9)
    assert win["prefill_tokens_per_s"] > full["prefill_tokens_per_s"]
    assert win["decode_tokens_per_s"] > full["decode_tokens_per_s"]
    for key in ("mem_gb", "prefill_tokens_per_s", "decode_tokens_per_s", "output_tokens_per_s"):
        assert win_s[key] == pytest.approx(full_s[key], rel=1e-12), key


def test_state_space_layers_keep_and_rewrite_a_fixed_state_per_sequence(ctx: Context) -> None:
    """Nemotron Nano 9B v2 (config.json: 27 Mamba-2 layers of 128 heads x 80 channels x a 128-wide state, 8 groups,
    a 4-tap convolution): each sequence keeps 27 x 128 x 80 x 128 state elements whatever its context, and a decode
    step reads and rewrites them (Mamba-2's selective state update). Holding the state in fp32 instead of 16 bits
    (vLLM --mamba-ssm-cache-dtype float32, as ML.ENERGY ran it) adds exactly 27 x 1,310,720 x 2 bytes per sequence and,
    on a memory-bound decode step of b sequences, b x 2 x those bytes over the bandwidth; the convolution state
    (27 x (10,240 + 2 x 8 x 128) x 3 inputs at 2 bytes) is there at either precision."""
    base = {"model": "nemotron_nano_9b_v2", "chip": H100, "weight_bits": 16, "kv_bits": 16, "prompt_len": 128,
            "gen_len": 128, "cal.layer_overhead_s": 0, "cal.seq_overhead_s": 0, "cal.mem_bw_fraction": 1,
            "chip.memory_bandwidth_gb_s": 3350, "chip.memory_bandwidth_measured_gb_s": 3350}
    half1, half4, full1, full4 = run(ctx, dict(base, batch=1), dict(base, batch=4),
                                     dict(base, batch=1, ssm_state_bits=32), dict(base, batch=4, ssm_state_bits=32))
    extra = 27 * 128 * 80 * 128 * 2  # bytes per sequence: fp32 over a 16-bit state
    per_seq_half = (half4["mem_gb"] - half1["mem_gb"]) / 3 * 1e9  # bytes per sequence
    per_seq_full = (full4["mem_gb"] - full1["mem_gb"]) / 3 * 1e9
    assert per_seq_full - per_seq_half == pytest.approx(extra, rel=1e-9)
    kv = 4 * 2 * 8 * 128 * 2 * 256  # bytes: the 4 attention layers' K and V over the 256-token context
    conv = 27 * (128 * 80 + 2 * 8 * 128) * 3 * 2
    logits = 131072 * 2
    prompt_acts = 128 * (2 * 4480 + 15680) * 2  # bytes: the prompt pass's activations (layer in/out, MLP hidden)
    assert per_seq_half == pytest.approx(kv + 27 * 128 * 80 * 128 * 2 + conv + logits + prompt_acts, rel=1e-9)
    # seconds per decode step: the 4 sequences' extra state, read and written, at 3.35 TB/s
    assert 1 / full4["decode_tokens_per_s"] - 1 / half4["decode_tokens_per_s"] == pytest.approx(
        4 * 2 * extra / 3.35e12, rel=1e-6)
    assert full4["ssm_state_bits"] == 32 and half4["ssm_state_bits"] == 16


def test_on_die_sram_is_counted_in_decimal_bytes(ctx: Context) -> None:
    """memory_gb is read as GiB (an HBM stack's '80 GB' is 80 GiB), but on-die SRAM is quoted in decimal units:
    Cerebras's 44 GB is 900,000 cores x 48 KB, Groq's 230 MB is 220 MiB. Read as GiB, a WSE-3 held 7.4 % more: four
    of them served Llama 3 70B to 76 users where 45 fit, and stood on the serving frontier at 64."""
    from chipsweep.schemas.catalog import load_catalog

    chips = load_catalog().chips
    assert chips["cerebras_wse3_cs3"].memory_capacity_gb == 44 and chips["groq_lpu_v1"].memory_capacity_gb == 0.23
    assert chips["nvidia_h100_sxm"].memory_capacity_gb == pytest.approx(80 * 2**30 / 1e9)  # HBM stays binary
    usable = load_catalog().asic["serving"]["mem_usable"]["value"]["vllm"]
    most, at64 = run(ctx, {"model": "llama3_70b", "chip": "cerebras_wse3_cs3", "n_chips": 4, "engine": "vllm",
                           "prompt_len": 1024, "gen_len": 256},
                     {"model": "llama3_70b", "chip": "cerebras_wse3_cs3", "n_chips": 4, "engine": "vllm",
                      "prompt_len": 1024, "gen_len": 256, "concurrency": 64})
    assert most["mem_gb"] <= 44 * usable + 1e-9 and most["concurrency"] == 45
    assert "does not fit in memory" in at64["infeasible_reason"] and "39.60 GB usable" in at64["infeasible_reason"]


def test_a_row_that_generates_nothing_reports_no_decode_rate(ctx: Context) -> None:
    """gen_len 0 is a prompt alone (the prefill measurements are such rows): it reported a decode rate and a
    throughput of a static batch that never decodes (13,659 tokens/s beside blank serving columns). Its prefill stays."""
    only, both = run(ctx, {"model": "llama3_8b", "chip": H100, "prompt_len": 512, "gen_len": 0, "batch": 8},
                     {"model": "llama3_8b", "chip": H100, "prompt_len": 512, "gen_len": 128, "batch": 8})
    assert only["prefill_tokens_per_s"] == pytest.approx(both["prefill_tokens_per_s"], rel=1e-9)
    assert not only["decode_tokens_per_s"] > 0 and not only["throughput_tokens_per_s"] > 0
    assert both["decode_tokens_per_s"] > 0 and both["throughput_tokens_per_s"] > 0


def test_a_mac_gives_its_gpu_the_working_set_metal_recommends_not_all_its_memory(tmp_path):
    """macOS wires at most Metal's recommendedMaxWorkingSetSize for the GPU (llama.cpp's ggml_metal_init prints it:
    10,922.67 MB on a 16 GB M1, 49,152 MiB on a 64 GB M1 Max): 2/3 of unified memory up to 32 GB, 3/4 above. Llama
    3.1 8B in 16 bits (16 GB of weights) once 'fit' a 16 GB M1 at 16.2 of 16.8 GB; it is refused for memory now,
    and its 4-bit weights fit. The catalog keeps the figure as the chip's memory_visible_gb, low confidence (macOS 26
    raises the default; sysctl iogpu.wired_limit_mb sets it), and an overlay (or a spec's overrides) of
    memory_visible_gb moves it."""
    import warnings

    import chipsweep

    m1 = load_catalog(use_env=False).chips["apple_m1"]
    assert m1.memory_visible_gb == pytest.approx(16 * 2**30 * 2 / 3 / 1e9, rel=1e-3)
    assert "memory_visible_gb" in m1.low_confidence_fields
    base = dict(model="llama3.1_8b", chip="apple_m1", n_chips=1, batch=1, prompt_len=512, gen_len=128)
    overlay = tmp_path / "wired.yaml"
    overlay.write_text("chips:\n  - {id: apple_m1, memory_visible_gb: 17}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f16, q4 = chipsweep.evaluate([dict(base, weight_bits=16), dict(base, weight_bits=4)],
                                     kind="inference").to_pylist()
        (wired,) = chipsweep.evaluate([dict(base, weight_bits=16)], kind="inference",
                                      catalog=load_catalog(overlay)).to_pylist()
    assert f16["fits"] is False and "does not fit" in f16["infeasible_reason"]
    assert q4["fits"] and q4["infeasible_reason"] == ""
    assert wired["fits"]  # the wired limit raised to 17 GB (iogpu.wired_limit_mb): the 16-bit weights fit again


def test_a_rows_outputs_do_not_depend_on_the_rows_beside_it(ctx: Context) -> None:
    """The core evaluates a block's rows nothing refused apart from the refused where these are a quarter or more:
    every output of every row of random catalog rows is the same in a block mostly refused (split), in one mostly
    running (not split) and alone."""
    rng = np.random.default_rng(7)
    n = 300
    raw = {
        "model_idx": rng.integers(0, len(ctx.models.ids), n),
        "chip_idx": rng.integers(0, len(ctx.chips.ids), n),
        "n_chips": rng.choice([1.0, 2.0, 8.0], n),
        "weight_bits": rng.choice([4.0, 8.0, 16.0], n),
        "kv_bits": rng.choice([8.0, 16.0], n),
        "batch": np.where(rng.random(n) < 0.5, np.nan, rng.choice([1.0, 8.0], n)),
        "prompt_len": rng.choice([0.0, 512.0, 2048.0], n, p=[0.1, 0.45, 0.45]),
        "gen_len": rng.choice([0.0, 128.0, 512.0], n, p=[0.1, 0.45, 0.45]),
        "concurrency": np.where(rng.random(n) < 0.5, np.nan, rng.choice([1.0, 64.0], n)),
        "ep": rng.choice([1.0, 2.0], n),
        "disaggregated": rng.choice([0.0, 1.0], n, p=[0.7, 0.3]),
        "prefill_instances": np.where(rng.random(n) < 0.5, np.nan, rng.choice([1.0, 4.0], n)),
    }
    x, cal = assemble_inference(raw, ctx)

    def run(rows: np.ndarray) -> dict[str, np.ndarray]:
        return inference.evaluate(*({k: v[rows] if np.ndim(v) else v for k, v in d.items()} for d in (x, cal)),
                                  dtype=np.float32)

    def same(got: dict[str, np.ndarray], rows: np.ndarray) -> None:
        assert got.keys() == mixed.keys()
        for k, v in got.items():
            want = mixed[k][rows]
            assert v.dtype == want.dtype, k
            differ = ~((v == want) | (np.isnan(v) & np.isnan(want)) if v.dtype.kind == "f" else v == want)
            assert not differ.any(), (k, rows[differ][:3], v[differ][:3], want[differ][:3])

    mixed = run(np.arange(n))
    refused = np.nonzero(mixed["reason_mask"] != 0)[0]
    live = np.nonzero(mixed["reason_mask"] == 0)[0]
    assert 0.4 < refused.size / n < 0.9  # a block the core splits, with both kinds of rows
    for few in np.array_split(refused, int(np.ceil(4 * refused.size / live.size))):  # ... and blocks it does not
        rows = np.concatenate([live, few])
        assert few.size < 0.25 * rows.size
        same(run(rows), rows)
    for i in range(n):
        same(run(np.array([i])), np.array([i]))
