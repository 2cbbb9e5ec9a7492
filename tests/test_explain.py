"""`evaluate --kind inference --explain`: the parts each serving row's TPOT and TTFT are made of (the dense GEMMs,
the routed experts, attention, the fitted fixed time per forward pass, collectives, the host's exposed work; the
prompt's kernels, fixed time, collectives and its wait behind the running decodes), computed by the same core
passes that give `tpot_s` and `ttft_s`, so the parts sum to them."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import pytest

import chipsweep
from chipsweep.schemas.catalog import load_catalog
from chipsweep.service.cli import main as cli
from chipsweep.workers.inference import EXPLAIN_OUT, TPOT_PARTS, TTFT_PARTS
from chipsweep.workers.parse import EvaluateError

H100 = "nvidia_h100_sxm"
# one row per path of the serving core: tensor parallelism, expert parallelism with data-parallel attention, layer
# split (llama.cpp), disaggregated prefill, an engine with host time per sequence and asynchronous scheduling,
# chunked prefill at high concurrency, and the engine's own limit (concurrency blank)
ROWS = [
    {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "concurrency": 1,
     "prompt_len": 1000, "gen_len": 500},
    {"model": "llama3_70b", "chip": H100, "n_chips": 8, "compute_precision": "fp8", "concurrency": 256,
     "prompt_len": 1000, "gen_len": 500},
    {"model": "deepseek_v3", "chip": "nvidia_h200_sxm", "n_chips": 8, "ep": 8, "dp_attention": "true",
     "compute_precision": "fp8", "concurrency": 64, "prompt_len": 1000, "gen_len": 500},
    {"model": "llama3_8b", "chip": "nvidia_rtx_4090", "n_chips": 2, "pp": 2, "engine": "llama_cpp", "weight_bits": 4,
     "concurrency": 1, "prompt_len": 512, "gen_len": 128},
    {"model": "llama3_8b", "chip": H100, "engine": "vllm", "concurrency": 32, "prompt_len": 2048, "gen_len": 256,
     "disaggregated": "true"},
    {"model": "llama3_8b", "chip": H100, "engine": "vllm", "async_scheduling": "true", "concurrency": 512,
     "prompt_len": 128, "gen_len": 512},
    {"model": "llama3_8b", "chip": H100, "engine": "vllm", "async_scheduling": "false", "concurrency": 512,
     "prompt_len": 128, "gen_len": 512},
    {"model": "llama3_8b", "chip": H100, "concurrency": 32, "prompt_len": 2048, "gen_len": 256},
    {"model": "qwen3_30b_a3b", "chip": "nvidia_b200_hgx", "prompt_len": 1000, "gen_len": 1000},
]


def explained(rows: list[dict], explain: bool = True) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return chipsweep.evaluate(rows, kind="inference", explain=explain).to_pylist()


def test_the_parts_of_tpot_and_ttft_sum_to_them_on_every_path_of_the_serving_core() -> None:
    out = explained(ROWS)
    for row, r in zip(ROWS, out, strict=True):
        assert r["fits"], (row, r["infeasible_reason"])
        assert all(r[k] >= 0.0 for k in EXPLAIN_OUT), (row, {k: r[k] for k in EXPLAIN_OUT})
        assert sum(r[k] for k in TPOT_PARTS) == pytest.approx(r["tpot_s"], rel=1e-9), row
        assert sum(r[k] for k in TTFT_PARTS) == pytest.approx(r["ttft_s"], rel=1e-9), row


def test_each_part_is_where_the_model_puts_the_time() -> None:
    one, busy, moe, layer_split, disagg, async_host, sync_host, chunked, _ = explained(ROWS)
    # one request on 8 chips: its decode step reads the weights once; all-reduces and the fixed time per pass, not
    # the KV cache, make up the rest, and nothing waits in front of its prompt
    assert one["tpot_gemm_s"] > 0 and one["tpot_comm_s"] > 0 and one["tpot_fixed_s"] > 0
    assert one["tpot_attention_s"] < 0.01 * one["tpot_s"]
    assert one["tpot_experts_s"] == 0.0 and one["ttft_queue_s"] == 0.0
    # the fixed time per forward pass is the same per iteration whatever the load; the GEMMs grow with the tokens
    assert busy["tpot_fixed_s"] == pytest.approx(one["tpot_fixed_s"])
    assert busy["tpot_gemm_s"] > 2.0 * one["tpot_gemm_s"] and busy["tpot_attention_s"] > 100.0 * one["tpot_attention_s"]
    assert busy["ttft_queue_s"] > 0.0  # a new prompt shares its iteration with the running decodes
    # a mixture of experts spends its decode step in the routed experts
    assert moe["tpot_experts_s"] > moe["tpot_gemm_s"] > 0.0
    # one chip per stage: no collective inside a stage, one hand-off between the two
    assert layer_split["tpot_comm_s"] > 0.0 and layer_split["tpot_experts_s"] == 0.0
    # disaggregated: the first token waits for the KV cache to move, not for the decodes
    assert disagg["ttft_queue_s"] > 0.0 and disagg["tpot_s"] == pytest.approx(
        sum(disagg[k] for k in TPOT_PARTS), rel=1e-9)
    # the host's time per sequence shows only where the chips wait on it
    assert sync_host["tpot_host_s"] > 0.0
    assert async_host["tpot_host_s"] < sync_host["tpot_host_s"]
    assert async_host["tpot_s"] < sync_host["tpot_s"]
    # a prompt's chunks ride some decode iterations (32 requests x 1 chunk per 256 iterations): their tokens make
    # the mean iteration's GEMMs slower than a pure decode iteration's of the same 32 sequences
    (pure,) = explained([dict(ROWS[7], disaggregated="true")])
    assert chunked["tpot_gemm_s"] > 1.5 * pure["tpot_gemm_s"]


def test_at_one_request_the_fixed_part_is_the_layers_times_the_fitted_time_per_layer() -> None:
    """The part README's 'what the misses mean' quotes: TensorRT-LLM's fitted time per layer on the H100's compute (the
    set the H100, H200 and H800 share), and, the row's GEMMs running in fp8, the time per layer of 8-bit matrix
    multiplies beside it."""
    catalog = load_catalog()
    sets = [s for s in catalog.asic["serving"]["efficiency"]
            if s.get("engine") == "tensorrt_llm" and s.get("applies_to") == f"compute:{H100}"]
    assert len(sets) == 1
    layers = catalog.models["llama3_70b"].layers
    (r,) = explained([ROWS[0]])
    assert r["engine"] == "tensorrt_llm"
    per_layer = sets[0]["layer_overhead_s"] + sets[0]["quant_layer_overhead_s"]
    assert r["tpot_fixed_s"] == pytest.approx(layers * per_layer, rel=1e-9)
    assert r["ttft_fixed_s"] == pytest.approx(r["tpot_fixed_s"], rel=1e-9)  # one prompt micro-batch: one pass


def test_a_new_request_waits_half_the_iteration_in_flight_then_shares_one_with_the_running_decodes() -> None:
    """Schedulers admit requests between iterations: a request arriving at a random time waits for the iteration in
    flight to end (half of one on average, the mean residual of a fixed cycle), then its prompt runs in one pass
    beside the running decodes: the instance's mixed iteration, whose C decodes count the one the request replaces
    (one decode's time more than the C - 1 running beside it; since 2026-12-07, when a pass of its own for C - 1
    decodes cost the serving core 7 % of its speed). With outputs so long that prompts are a negligible share of the
    iterations and a 16-token prompt, that pass is the 16-request decode step (the weights read once for all of
    them): TTFT at 16 requests is one and a half of that step (the 15 others' step and a half until 2026-12-07, 1.9 %
    less), and its queueing part what they add to the prompt alone (until 2026-12-05 the prompt's own pass and the
    decodes' step were added, the weights read twice); one request alone does not wait."""
    base = {"model": "llama3_8b", "chip": H100, "engine": "tensorrt_llm", "weight_bits": 16, "prompt_len": 16,
            "gen_len": 20_000}
    c16, c15, c1 = explained([{**base, "concurrency": 16}, {**base, "concurrency": 15}, {**base, "concurrency": 1}])
    assert c16["ttft_s"] == pytest.approx(1.5 * c16["tpot_s"], rel=2e-3)
    assert c16["ttft_s"] - 1.5 * c15["tpot_s"] < 0.05 * c16["ttft_s"]  # one decode's time more, no more
    assert c16["ttft_queue_s"] == pytest.approx(c16["ttft_s"] - c1["ttft_s"], rel=1e-6)
    assert c1["ttft_queue_s"] == 0.0
    assert c16["ttft_s"] == pytest.approx(sum(c16[k] for k in TTFT_PARTS), rel=1e-6)


def test_without_explain_the_outputs_are_the_same_and_the_parts_are_absent() -> None:
    plain, parts = explained(ROWS, explain=False), explained(ROWS)
    for a, b in zip(plain, parts, strict=True):
        assert not set(EXPLAIN_OUT) & set(a)
        for k, v in a.items():
            assert b[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(b[k])), k


def test_a_bad_row_keeps_empty_parts_and_its_reason() -> None:
    (r,) = explained([{"model": "llama3_70b", "chip": H100, "n_chips": 1, "concurrency": 1, "weight_bits": 16,
                       "prompt_len": 100, "gen_len": 10}])
    assert r["infeasible_reason"] and "memory" in r["infeasible_reason"]
    assert all(r[k] is None or math.isnan(r[k]) for k in EXPLAIN_OUT)


def test_explain_on_another_kind_is_refused_naming_the_field() -> None:
    with pytest.raises(EvaluateError) as err:
        chipsweep.evaluate([{"model": "llama3_8b", "chip": H100, "n_chips": 8}], kind="training", explain=True)
    assert err.value.field == "explain" and "inference" in str(err.value) and "bubble_s" in str(err.value)


def test_the_cli_writes_the_parts_with_explain(tmp_path: Path) -> None:
    src, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    with src.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        w.writeheader()
        w.writerow(ROWS[0])
    assert cli(["evaluate", "--kind", "inference", str(src), "--explain", "-o", str(out)]) == 0
    (r,) = list(csv.DictReader(out.open()))
    assert sum(float(r[k]) for k in TPOT_PARTS) == pytest.approx(float(r["tpot_s"]), rel=1e-6)
    assert cli(["evaluate", "--kind", "training", str(src), "--explain", "-o", str(out)]) != 0
