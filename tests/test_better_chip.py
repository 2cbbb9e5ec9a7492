"""A better chip never answers worse: with the layout fixed, 25 % more of any published rate or capacity (a what-if
override: peak FLOP/s, memory bandwidth or size, scale-up or scale-out link) never slows a training step or a serving
answer, and never turns a row that fits into one that does not. A frontier picks the configurations where the model
is most optimistic, so a rate that made a chip slower would put the wrong chip on it."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest

import chipsweep
from chipsweep.schemas.catalog import load_catalog

TRAIN_CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_80gb", "nvidia_b200_hgx", "amd_mi300x", "google_tpu_v5p",
               "nvidia_gb200_per_gpu", "nvidia_v100_sxm2_32gb", "aws_trainium1"]
TRAIN_MODELS = ["gpt3_175b", "llama3_70b", "llama3_8b", "gpt3_13b", "mixtral_8x7b", "qwen3_30b_a3b", "deepseek_v3"]
SERVE_CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_80gb", "nvidia_b200_hgx", "amd_mi300x", "nvidia_l40s",
               "apple_m2_ultra", "nvidia_rtx_4090", "nvidia_jetson_orin_nano_8gb"]
SERVE_MODELS = ["llama3_8b", "llama3_70b", "mixtral_8x7b", "qwen3_30b_a3b", "gemma3_27b", "qwen3_235b_a22b"]
RATES = ("peak_tflops_bf16", "peak_tflops_fp16", "peak_tflops_fp8", "peak_tops_int8", "memory_bandwidth_gb_s",
         "memory_gb", "scale_up_gb_s", "scale_out_gbit_s")
SLACK = 1e-9  # relative: float rounding only


def _better(base: list[dict], field: str, cat) -> list[dict]:
    out = []
    for row in base:
        value = getattr(cat.chips[row["chip"]], field, None)
        out.append({**row, f"chip.{field}": float(value) * 1.25} if value else dict(row))
    return out


def _runs(row: dict, key: str) -> bool:
    """The row has an answer: it fits and its layout is valid (an infeasible row's outputs are empty or NaN)."""
    value = row.get(key)
    return bool(row["fits"]) and value is not None and value == value


def _evaluate(rows: list[dict], kind: str) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return chipsweep.evaluate(rows, kind=kind).to_pylist()


def _check_never_worse(base: list[dict], kind: str, cat, higher: tuple[str, ...] = (),
                       lower: tuple[str, ...] = (), exempt: Any = None) -> None:
    """Every rate 25 % higher in turn: a row that ran still runs, each of `higher` is no lower, each of `lower`
    no higher (but where `exempt(row, key)` says the answer may rise for a reason the test names)."""
    answer = (*higher, *lower)[0]
    before = _evaluate(base, kind)
    assert sum(_runs(r, answer) for r in before) > 150  # enough rows that run for the check to mean something
    for field in RATES:
        after = _evaluate(_better(base, field, cat), kind)
        for row, x, y in zip(base, before, after, strict=True):
            if not _runs(x, answer):
                continue
            assert _runs(y, answer), (field, row, y["infeasible_reason"])
            for key, sign in [(k, 1.0) for k in higher] + [(k, -1.0) for k in lower]:
                if _runs(x, key) and _runs(y, key) and not (exempt and exempt(row, key)):
                    assert sign * (y[key] - x[key]) >= -SLACK * abs(x[key]), (field, key, row, y[key] / x[key])


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_more_of_any_rate_never_slows_a_training_step_at_a_fixed_layout(cat) -> None:
    rng = random.Random(7)
    base = []
    for _ in range(800):
        model = rng.choice(TRAIN_MODELS)
        tp, pp, dp = rng.choice([1, 2, 4, 8]), rng.choice([1, 2, 4, 8, 16]), rng.choice([1, 2, 8, 32, 128])
        row = {"model": model, "chip": rng.choice(TRAIN_CHIPS), "tp": tp, "pp": pp, "n_chips": tp * pp * dp,
               "global_batch": rng.choice([256, 1024, 2048]), "micro_batch": rng.choice([1, 2, 4]),
               "recompute": rng.choice(["none", "selective", "full"]), "zero_stage": rng.choice([0, 1, 2, 3]),
               "seq_len": rng.choice([2048, 4096, 8192])}
        if cat.models[model].moe_experts:
            row["ep"] = rng.choice([1, 2, 4, 8])
        base.append(row)
    _check_never_worse(base, "training", cat, lower=("step_time_s",))

def test_more_of_any_rate_never_slows_a_serving_answer(cat) -> None:
    rng = random.Random(11)
    base = []
    for _ in range(800):
        row = {"model": rng.choice(SERVE_MODELS), "chip": rng.choice(SERVE_CHIPS), "n_chips": rng.choice([1, 2, 4, 8]),
               "weight_bits": rng.choice([4, 8, 16]), "prompt_len": rng.choice([128, 1000, 4000]),
               "gen_len": rng.choice([64, 500]), "concurrency": rng.choice([1, 4, 16, 64, 256]),
               "compute_precision": rng.choice(["bf16", "fp16", "fp8", "int8"]), "disaggregated": rng.choice([0, 0, 1])}
        engine = rng.choice(["vllm", "tensorrt_llm", "sglang", "llama_cpp", None])
        if engine:
            row["engine"] = engine
        base.append(row)
    # a disaggregated row's TTFT waits in its prompt pool's queue: a faster decode sends the pool more prompts a
    # second, and a blank pool is the fewest instances whose wait stays within a pass, so a faster chip may run one
    # instance fewer at a longer wait (its per-chip rate the better for it); its TPOT is held as every row's
    _check_never_worse(base, "inference", cat, higher=("output_tokens_per_s", "tokens_per_s_per_user"),
                       lower=("ttft_s", "tpot_s"), exempt=lambda row, key: key == "ttft_s" and row["disaggregated"])
