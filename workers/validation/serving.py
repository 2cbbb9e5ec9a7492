"""Serving validation: the published inference runs as `evaluate --kind inference` rows, the fit of the serving
efficiency and power constants per engine and chip, and leave-one-source-out (out-of-source) errors.

    python -m chipsweep.workers.validation.serving             # out-of-source errors per metric family and source
    python -m chipsweep.workers.validation.serving --fit       # ... and the constants fitted on every source
    python -m chipsweep.workers.validation.serving --fit --write   # write them into schemas/catalog/asic.yaml

Runs (tests/validation/): `inference_runs_2026.csv` (3,128 rows: TensorRT-LLM perf tables v0.5-v0.17 and online
serving, ML.ENERGY vLLM energy runs, llama.cpp llama-bench on consumer/workstation GPUs and Apple M-series,
mlc-ai/llm-perf-bench, Jetson Orin Nano Super power modes, JetStream on TPU v5e, SGLang DeepSeek),
`inference_runs_azure.csv` (30 rows in the same columns: Azure's AI-benchmarking-guide end-to-end runs, TensorRT-LLM
on GB200 and vLLM on MI300X, 1,000 requests each), plus from
`inference_runs.csv` the llama.cpp PR #2959 M2 Max rows and the MLPerf Inference v4.1 Llama-2-70B rows. The
2026 file's Jetson AI Lab table repeats the 14 rows of `inference_runs.csv`; those are read once, from the
2026 file.

How a run becomes a row (every choice here is a property of the published run, not a fitted knob):
- device -> catalog chip, with what-ifs the run's own description fixes (the 7-core M1 GPU, the 30-core M2 Max,
  the Jetson power modes' GPU clock, powered TPCs, bandwidth and budget from the catalog entry's notes);
- engine -> the serving engine whose efficiency applies; llama.cpp and ExLlama split layers over GPUs (pp), MLC,
  vLLM, TensorRT-LLM and SGLang split tensors (n_chips);
- weights -> bits plus the quantisation-scale overhead of the format (ggml block sizes; GPTQ/AWQ group 128) or,
  for llama.cpp, the published file size;
- load: TensorRT-LLM max-throughput tables leave concurrency blank (the engine's limits and the KV cache decide),
  ML.ENERGY runs at its measured mean running batch, online-serving rows at the concurrency Little's law gives from
  the run's own request rate and latencies (L = lambda x (TTFT + (g - 1) x ITL)), static-batch tables at their batch;
  the online runs that send all N requests at once (QPS=INF) are a burst: N prompts taken in one batch and
  prefilled in turn, the mean TTFT (N + 1) / 2N of the time to prefill them all; while prompts remain, every
  iteration carries the engine's max_tokens of prompt chunks beside the decodes (in-flight batching), so request j
  decodes one token per such iteration until the N - j prompts behind it are prefilled, then at the batch's decode
  step: its mean inter-token latency.

Fit (`fit`): per engine, the achieved bandwidth fraction, compute fraction and time per layer are fitted at six
levels: every engine together, the engine on all chips, on a chip class, on one vendor's chips of that class (one
software stack: CUDA, ROCm, Metal), on the chips of one compute (catalog `same_compute_as`: one die and its kernels),
on one chip (each level starts from the one above and only moves with its own runs; a chip whose runs are exactly its
vendor set's repeats that set's values; a chip of a shared compute fits only its memory's share), and the achieved share of the chips' link per engine and chip alone, on
the runs over several chips whose all-reduces are large enough to run at its bandwidth; then power (idle share,
compute and memory weights) per chip class and per chip, on the energy and power runs (never pooled across classes:
the sources measure different things; a class without runs starts from asic.yaml serving.power_prior or the fallback).
The search is a bounded coordinate descent in log space (two passes) on the mean absolute log error, runs weighted so
that each source counts once per group, and for a constant only some runs tell (MoE layers, 8-bit layers) once among
those runs (numpy only). `loso` refits without
each source and predicts that source with the result: those are the errors `chipsweep validate` prints.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.catalog import CATALOG_DIR, Catalog, content_hash, load_catalog
from chipsweep.schemas.vocab import ENGINES
from chipsweep.workers import inference
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import (
    EFFICIENCY_KEYS,
    POWER_KEYS,
    assemble_inference,
    compute_roots,
    parse_inference,
    set_priority,
)
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.validation.cases import CASES_DIR, Case, Result, case_table

log = logging.getLogger(__name__)

CSV_2026 = CASES_DIR / "inference_runs_2026.csv"
CSV_OLD = CASES_DIR / "inference_runs.csv"
CSV_AZURE = CASES_DIR / "inference_runs_azure.csv"  # the 2026 file's columns: Azure's GB200 and MI300X runs
GB = 1e9
GIB = 2.0**30

# ---------------------------------------------------------------------------------------------------
# the runs' vocabulary -> catalog ids
# ---------------------------------------------------------------------------------------------------
SOURCES: dict[str, str] = {  # prefix of the CSV `source` -> the group errors are reported (and left out) by
    "NVIDIA TensorRT-LLM perf-overview v0.13": "trtllm_v0.13",
    "NVIDIA TensorRT-LLM perf-overview v0.17": "trtllm_v0.17",
    "NVIDIA TensorRT-LLM perf-overview, Online": "trtllm_online_v0.14",
    "NVIDIA TensorRT-LLM performance.md": "trtllm_v0.5_v0.6",
    "ML.ENERGY": "mlenergy_vllm",
    "XiongjieDai": "xiongjiedai_llamacpp",
    "mlc-ai/llm-perf-bench": "mlc_llm_perf_bench",
    "NVIDIA Jetson AI Lab": "jetson_ai_lab_mlc",
    "SmolHub": "smolhub_jetson_power",
    "JetStream": "jetstream_tpu_v5e",
    "LMSYS/SGLang": "sglang_deepseek",
    "ggml-org/llama.cpp PR #2959": "llamacpp_pr2959_m2max",
    "MLPerf Inference": "mlperf_v4.1",
    "Azure AI-benchmarking-guide": "azure_benchmarking_guide",
}

DEVICES: dict[str, tuple[str, dict[str, Any]]] = {  # device text -> (chip id, what-ifs the text itself fixes)
    "AMD Instinct MI300X": ("amd_mi300x", {}),
    "AMD Radeon RX 7900 XTX": ("amd_radeon_rx_7900_xtx", {}),
    "Apple M1 (7-core GPU, 8 GB)": ("apple_m1", {"gpu_cores": (7, 8)}),
    "Apple M1 Max (32-core GPU, 64 GB)": ("apple_m1_max", {}),
    "Apple M2 Ultra (76-core GPU, 192 GB)": ("apple_m2_ultra", {}),
    "Apple M3 Max (40-core GPU, 64 GB)": ("apple_m3_max", {}),
    "Apple M2 Max 30-core GPU (Metal)": ("apple_m2_max", {"gpu_cores": (30, 38)}),
    "Google Cloud TPU v5e-1": ("google_tpu_v5e", {}),
    "Google Cloud TPU v5e-8": ("google_tpu_v5e", {}),
    "NVIDIA A100 (PCIe-connected per README; variant not stated)": ("nvidia_a100_pcie_80gb", {}),
    "NVIDIA A100 (variant not stated)": ("nvidia_a100_sxm_80gb", {}),
    "NVIDIA A100 PCIe 80GB": ("nvidia_a100_pcie_80gb", {}),
    "NVIDIA A100 SXM 80GB": ("nvidia_a100_sxm_80gb", {}),
    "NVIDIA A100-SXM4-80GB": ("nvidia_a100_sxm_80gb", {}),
    "NVIDIA A10G": ("nvidia_a10g", {}),
    "NVIDIA A40 48GB": ("nvidia_a40", {}),
    "NVIDIA B200": ("nvidia_b200_hgx", {}),
    "NVIDIA GB200": ("nvidia_gb200_per_gpu", {}),
    "NVIDIA GH200 120GB (doc label)": ("nvidia_gh200", {}),
    "NVIDIA GH200 480GB": ("nvidia_gh200", {}),
    "NVIDIA GeForce RTX 3070 8GB": ("nvidia_rtx_3070", {}),
    "NVIDIA GeForce RTX 3080 10GB": ("nvidia_rtx_3080", {}),
    "NVIDIA GeForce RTX 3080 Ti 12GB": ("nvidia_rtx_3080_ti", {}),
    "NVIDIA GeForce RTX 3090 24GB": ("nvidia_rtx_3090", {}),
    "NVIDIA GeForce RTX 3090 Ti": ("nvidia_rtx_3090_ti", {}),
    "NVIDIA GeForce RTX 4070 Ti 12GB": ("nvidia_rtx_4070_ti", {}),
    "NVIDIA GeForce RTX 4080 16GB": ("nvidia_rtx_4080", {}),
    "NVIDIA GeForce RTX 4090": ("nvidia_rtx_4090", {}),
    "NVIDIA GeForce RTX 4090 24GB": ("nvidia_rtx_4090", {}),
    "NVIDIA H100": ("nvidia_h100_sxm", {}),
    "NVIDIA H100 (12 nodes x 8, Atlas Cloud)": ("nvidia_h100_sxm", {}),
    "NVIDIA H100 80GB HBM3": ("nvidia_h100_sxm", {}),
    "NVIDIA H100 80GB HBM3 (doc: H100-HBM3-80GB system)": ("nvidia_h100_sxm", {}),
    "NVIDIA H100 PCIe 80GB": ("nvidia_h100_pcie", {}),
    "NVIDIA H200 (doc label: 'H200 131GB HBM3')": ("nvidia_h200_sxm", {}),
    "NVIDIA H200 141GB HBM3": ("nvidia_h200_sxm", {}),
    "NVIDIA Jetson Orin Nano 8GB (original)": ("nvidia_jetson_orin_nano_8gb", {"mode": "ORIGINAL_15W"}),
    "NVIDIA Jetson Orin Nano 8GB Super (MAXN SUPER)": ("nvidia_jetson_orin_nano_8gb", {"mode": "MAXN_SUPER"}),
    "NVIDIA Jetson Orin Nano Super 8GB dev kit (nvpmodel 15W)": ("nvidia_jetson_orin_nano_8gb", {"mode": "15W"}),
    "NVIDIA Jetson Orin Nano Super 8GB dev kit (nvpmodel 25W)": ("nvidia_jetson_orin_nano_8gb", {"mode": "25W"}),
    "NVIDIA Jetson Orin Nano Super 8GB dev kit (nvpmodel 7W)": ("nvidia_jetson_orin_nano_8gb", {"mode": "7W"}),
    "NVIDIA Jetson Orin Nano Super 8GB dev kit (nvpmodel MAXN_SUPER)": ("nvidia_jetson_orin_nano_8gb", {"mode": "MAXN_SUPER"}),
    "NVIDIA L40S": ("nvidia_l40s", {}),
    "NVIDIA L40S 48GB": ("nvidia_l40s", {}),
    "NVIDIA RTX 4000 Ada 20GB": ("nvidia_rtx_4000_ada", {}),
    "NVIDIA RTX 5000 Ada 32GB": ("nvidia_rtx_5000_ada", {}),
    "NVIDIA RTX 6000 Ada 48GB": ("nvidia_rtx_6000_ada", {}),
    "NVIDIA RTX A6000 48GB": ("nvidia_rtx_a6000", {}),
}

MODELS: dict[str, str] = {  # model text -> catalog model id (variants of one architecture share an id)
    "CodeLlama-34B": "codellama_34b",
    "DeepSeek-V3/R1 (blog: 'DeepSeek')": "deepseek_v3",
    "deepseek-ai/DeepSeek-R1-0528": "deepseek_v3",
    "Falcon 180B": "falcon_180b",
    "GPT-J 6B": "gptj_6b",
    "GPTJ 6B": "gptj_6b",
    "Gemma 2 2B": "gemma2_2b",
    "Gemma 2 9B": "gemma2_9b",
    "Gemma 2B": "gemma_2b",
    "Gemma 7B": "gemma_7b",
    "Gemma3-1B-IT": "gemma3_1b",
    "google/gemma-3-12b-it": "gemma3_12b",
    "google/gemma-3-27b-it": "gemma3_27b",
    "LFM2.5-1.2B-Instruct": "lfm2.5_1.2b",
    "LFM2.5-350M": "lfm2.5_350m",
    "LLaMA 3.1 70B": "llama3_70b",
    "LLaMA v3 70B": "llama3_70b",
    "LLaMA v3.1 70B": "llama3_70b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama3_70b",
    "Llama 3 70B (F16)": "llama3_70b",
    "Llama 3 70B (Q4_K_M)": "llama3_70b",
    "LLaMA 3.1 8B": "llama3.1_8b",
    "LLaMA v3.1 8B": "llama3.1_8b",
    "Llama 3.1 8B": "llama3.1_8b",
    "LLaMA v3 8B": "llama3_8b",
    "Llama 3 8B": "llama3_8b",
    "Llama 3 8B (F16)": "llama3_8b",
    "Llama 3 8B (Q4_K_M)": "llama3_8b",
    "LLaMA v3.1 405B": "llama3_405b",
    "meta-llama/Llama-3.1-405B-Instruct": "llama3_405b",
    "LLaMA v2 70B": "llama2_70b",
    "Llama 2 70B (table label 'LLaMA 70B')": "llama2_70b",
    "Llama-2-70B": "llama2_70b",
    "Llama 2 70B": "llama2_70b",
    "LLaMA v2 7B": "llama2_7b",
    "Llama 2 7B": "llama2_7b",
    "Llama 2 7B (table label 'LLaMA 7B')": "llama2_7b",
    "Llama-2-7B": "llama2_7b",
    "Llama 2 13B": "llama2_13b",
    "Llama-2-13B": "llama2_13b",
    "Llama 3.2 3B": "llama3.2_3b",
    "Llama-3.2-1B-Instruct": "llama3.2_1b",
    "Mistral 7B": "mistral_7b",
    "Mixtral 8x22B": "mixtral_8x22b",
    "Mixtral 8x7B": "mixtral_8x7b",
    "Phi 3.5 3B": "phi3.5_mini_3.8b",
    "Qwen/Qwen3-235B-A22B-Instruct-2507": "qwen3_235b_a22b",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "qwen3_235b_a22b",
    "Qwen2.5 7B": "qwen2.5_7b",
    "Qwen2.5-0.5B-Instruct": "qwen2.5_0.5b",
    "Qwen3-0.6B": "qwen3_0.6b",
    "SmolLM2": "smollm2_1.7b",
    "SmolLM2-135M-Instruct": "smollm2_135m",
    "SmolLM2-360M-Instruct": "smollm2_360m",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": "llama4_scout",
    "nvidia/NVIDIA-Nemotron-Nano-9B-v2": "nemotron_nano_9b_v2",
    "LLaMA 7B Q4_0": "llama_7b",
}

ENGINE_OF: tuple[tuple[str, str], ...] = (  # engine text (prefix) -> ENGINES entry
    # vLLM of 2023-10 (commit acbed3e, mlc-ai/llm-perf-bench) predates CUDA graphs (v0.2.5): its own generation
    ("TensorRT-LLM", "tensorrt_llm"), ("vLLM (commit", "vllm_2023"), ("vLLM", "vllm"), ("SGLang", "sglang"),
    ("llama.cpp", "llama_cpp"), ("MLC", "mlc"), ("ExLlama", "exllama"), ("JetStream", "jetstream"),
)
LAYER_SPLIT = ("llama_cpp", "exllama")  # engines that split layers over GPUs (pipeline), not tensors

# weight format -> (bits, quantisation-scale overhead over those bits, compute precision or None = by weight bits)
# ggml block formats (ggml-org/ggml ggml-quants.h): Q4_0 = 32 4-bit weights + one fp16 scale (4.5 bits), Q8_0 =
# 32 8-bit weights + one fp16 scale (8.5 bits); Q4_K_M is read from the published file size instead. MLC q4f16_1:
# group 32 with an fp16 scale (4.5 bits, mlc-llm quantization docs); GPTQ / AWQ: group 128 with fp16 scale and
# packed zero point (4.25 bits, AutoGPTQ / AutoAWQ defaults).
QUANT: dict[str, tuple[int, float | None, str | None]] = {
    "BF16": (16, 0.0, "bf16"), "F16": (16, 0.0, "fp16"), "FP16": (16, 0.0, "fp16"), "FP8": (8, 0.0, "fp8"),
    "INT8": (8, 0.0, "int8"), "Q4_0": (4, 0.125, None), "Q8_0": (8, 0.0625, None), "Q4_K_M": (4, None, None),
    "INT4 (MLC)": (4, 0.125, None), "int4 q4f16_1": (4, 0.125, None), "int4 GPTQ": (4, 0.0625, "fp16"),
    "int4 AWQ": (4, 0.0625, "fp16"),
}
# XiongjieDai README model files (GiB, as ls -h and the README print them: 14.96 x 2^30 = 16.06e9 bytes of F16 8B)
FILE_GB = {"llama3_8b": {"Q4_K_M": 4.58, "F16": 14.96}, "llama3_70b": {"Q4_K_M": 39.59, "F16": 131.42}}

# metric families the bounds of issue 14 are stated for
FAMILY: dict[str, str] = {
    "output_tokens_per_s_total": "serving_throughput", "output_tokens_per_s_per_gpu": "serving_throughput",
    "prefill_tokens_per_s": "prefill", "decode_tokens_per_s": "decode", "energy_j_per_token": "energy_per_token",
    "power_w": "power", "ttft_ms": "ttft", "itl_ms": "tpot", "prefill_node_tokens_per_s": "serving_throughput",
}
# a single stream's output tokens/s over whole requests (prompt included) on an edge device
REQUEST_THROUGHPUT = "request_throughput"
# engine settings a source's run configurations publish beside the CSV's columns (per model): ML.ENERGY's vLLM configs
# (ml-energy/benchmark configs/vllm/lm-arena-chat/nvidia/NVIDIA-Nemotron-Nano-9B-v2/B200/monolithic.config.yaml and
# configs/vllm/gpqa/.../H100/monolithic.config.yaml @ f7537b49: `mamba-ssm-cache-dtype: float32`) keep the Mamba-2
# state of Nemotron Nano 9B v2 in fp32, as its model card asks
RUN_SETTINGS: dict[str, dict[str, dict[str, object]]] = {
    "mlenergy_vllm": {"nemotron_nano_9b_v2": {"ssm_state_bits": 32}},
}
# the published input lengths a source leaves open: the documented assumption each run of it uses
OPEN_LENGTHS = {
    # ML.ENERGY lm-arena-chat prompts: the leaderboard JSON gives the mean output length, not the input's. The runs
    # themselves bound it: Llama 3.1 70B on two B200s held 2,042 running requests of ~351 output tokens, which leaves
    # KV room for prompts of at most ~140 tokens on average; 100 tokens (LMArena first-turn prompts are short) is
    # the assumption, one value for every run of the source
    "mlenergy_vllm": 100,
    # JetStream: ShareGPT prompts capped at 1,024 in and 1,024 out; Gemma 2B at batch 1,024 on one 16 GB v5e fits
    # only below ~600 tokens of context: a quarter of each cap, 256 (assumption; the table is flagged ambiguous)
    "jetstream_tpu_v5e": 256,
}
# SGLang's 96-H100 DeepSeek deployment: 3 prefill nodes and 9 decode nodes of 8 GPUs, throughput quoted per node
# (LMSYS blog 2025-05-05 as recalled: node split not read from the primary page by the reference set; assumption)
SGLANG_NODES = {"prefill": 3, "decode": 9}


@dataclass
class ServingCase(Case):
    """A published serving measurement: the `evaluate` row, the metric and how to read it from the outputs."""

    family: str = ""
    chip: str = ""
    engine: str = ""
    derived: str = ""  # how the metric is computed from the outputs, '' when it is one output column
    extra: dict[str, float] = field(default_factory=dict)


def _f(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def _source(text: str) -> str:
    for prefix, group in SOURCES.items():
        if text.startswith(prefix):
            return group
    raise KeyError(f"serving validation: source {text!r} has no group in SOURCES")


def _engine(text: str) -> str:
    for prefix, engine in ENGINE_OF:
        if text.startswith(prefix):
            return engine
    raise KeyError(f"serving validation: engine {text!r} has no entry in ENGINE_OF")


def jetson_modes(catalog: Catalog) -> dict[str, dict[str, float]]:
    """The Orin Nano power modes of the catalog entry's notes: GPU MHz, GB/s, powered TPCs, W, and the factor on
    the catalog's dense peak (the clock and the powered TPCs against those the peak is quoted at)."""
    notes = catalog.chips["nvidia_jetson_orin_nano_8gb"].notes
    ref = re.search(r"dense TOPS are at (\d+) MHz on (\d) TPCs", notes)
    if ref is None:
        raise ValueError("nvidia_jetson_orin_nano_8gb notes: say at which GPU clock and TPC count the dense TOPS are "
                         "quoted ('dense TOPS are at <MHz> MHz on <n> TPCs')")
    ref_mhz, ref_tpcs = float(ref.group(1)), float(ref.group(2))
    modes: dict[str, dict[str, float]] = {}
    for m, mhz, gbs, tpcs in re.findall(r"(ORIGINAL_15W|7W|15W|25W|MAXN_SUPER): GPU (\d+) MHz, (\d+) GB/s, (\d) of \d TPCs",
                                        notes):
        budget = re.search(r"(\d+)W$", m)
        modes[m] = {"mhz": float(mhz), "gbs": float(gbs), "tpcs": float(tpcs),
                    "w": float(budget.group(1)) if budget else 25.0,  # MAXN_SUPER: the 25 W budget of the notes
                    "scale": float(mhz) / ref_mhz * float(tpcs) / ref_tpcs}  # the 7W mode gates half the TPCs
    return modes


def _device_overrides(chip: str, extra: Mapping[str, Any], catalog: Catalog) -> dict[str, object]:
    c = catalog.chips[chip]
    out: dict[str, object] = {}
    if "gpu_cores" in extra:  # a smaller GPU of the same chip: the peak scales with the cores
        have, top = extra["gpu_cores"]
        out["chip.peak_tflops_fp16"] = float(c.peak_tflops_fp16 or 0) * have / top
    if "mode" in extra:
        m = jetson_modes(catalog)[extra["mode"]]
        out["chip.peak_tops_int8"] = float(c.peak_tops_int8 or 0) * m["scale"]
        out["chip.memory_bandwidth_gb_s"] = m["gbs"]
        out["chip.tdp_w"] = m["w"]
    return out


def _weights(prec: str, model: str, params: float) -> tuple[int, float | None, str | None]:
    bits, over, compute = QUANT[prec]
    if over is None and model in FILE_GB and prec in FILE_GB[model]:
        over = FILE_GB[model][prec] * GIB / (params * bits / 8.0) - 1.0  # the file's bytes over bits x parameters
    return bits, over, compute


@lru_cache(maxsize=4)
def _params(catalog_key: int) -> dict[str, float]:
    from chipsweep.workers.workload import model_arrays

    ctx = _ctx_cache[catalog_key]
    m = model_arrays({"model_idx": np.arange(len(ctx.models.ids))}, ctx, len(ctx.models.ids))
    return dict(zip(ctx.models.ids, m["params"].tolist(), strict=True))


_ctx_cache: dict[int, Context] = {}


def _context(catalog: Catalog) -> Context:
    key = id(catalog)
    if key not in _ctx_cache:
        _ctx_cache[key] = Context.build(catalog)
    return _ctx_cache[key]


def serving_cases(catalog: Catalog | None = None) -> list[ServingCase]:
    """Every serving run as a case (the 2026 file, then the llama.cpp PR #2959 and MLPerf rows of the old file)."""
    catalog = catalog or load_catalog()
    ctx = _context(catalog)
    params = _params(id(catalog))
    out: list[ServingCase] = []
    for path in (CSV_2026, CSV_AZURE):
        with path.open() as fh:
            for d in csv.DictReader(fh):
                out.extend(_case_2026(d, catalog, params))
    with CSV_OLD.open() as fh:
        for d in csv.DictReader(fh):
            if d["case_id"].startswith(("llamacpp_pr2959", "mlperf_")):
                out.append(_case_old(d, catalog, params))
    del ctx
    return out


def _base(d: Mapping[str, str], catalog: Catalog, params: Mapping[str, float]) -> tuple[dict[str, object], str, str, str]:
    chip, extra = DEVICES[d["device"]]
    model = MODELS[d["model"]]
    engine = _engine(d["engine"])
    n = int(_f(d["n_devices"]) or 1)
    row: dict[str, object] = {"model": model, "chip": chip, "engine": engine, **_device_overrides(chip, extra, catalog)}
    prec = d["weight_precision"] or ("FP8" if "FP8" in d["model"] else "BF16")
    bits, over, compute = _weights(prec, model, params[model])
    row["weight_bits"] = bits
    if over is not None:
        row["quant_overhead"] = round(over, 6)
    if compute:
        row["compute_precision"] = compute
    kv = d.get("kv_precision") or ""
    row["kv_bits"] = 8 if kv in ("FP8", "INT8") else 16
    if n > 1:
        row["n_chips"] = n
        if engine in LAYER_SPLIT:
            row["pp"] = n
    ep = _f(d.get("ep"))
    if ep > 1:
        row["ep"] = int(ep)
    return row, chip, engine, model


def _case_2026(d: Mapping[str, str], catalog: Catalog, params: Mapping[str, float]) -> list[ServingCase]:
    group = _source(d["source"])
    if group == "jetson_ai_lab_mlc":  # the same runs as inference_runs.csv's jetson rows: kept here, once
        pass
    row, chip, engine, model = _base(d, catalog, params)
    metric, value = d["metric"], _f(d["value"])
    p, g = _f(d["input_len"]), _f(d["output_len"])
    batch = _f(d["batch"])
    notes = d["notes"]
    cid = d["case_id"]

    def case(out_metric: str, scale: float = 1.0, derived: str = "", extra: dict[str, float] | None = None) -> ServingCase:
        return ServingCase(cid, group, dict(row), out_metric, value, scale, family=FAMILY[metric], chip=chip,
                           engine=engine, derived=derived, extra=extra or {})

    if group in ("trtllm_v0.13", "trtllm_v0.17"):  # max-load offline throughput of the TP group
        row.update(prompt_len=int(p), gen_len=int(g))
        return [case("output_tokens_per_s")]
    if group == "azure_benchmarking_guide":
        # 1,000 requests of one length pair queued at once, every one of them admitted (TensorRT-LLM sizes its batch
        # from the KV cache, vLLM's max_num_seqs is 3,000): 1,000 in flight, or what the KV cache holds
        row.update(prompt_len=int(p), gen_len=int(g), concurrency=int(_f(d["concurrency"])))
        steps = re.search(r"--num-scheduler-steps (\d+)", notes)  # vLLM's multi-step scheduling, as the run set it
        if steps:
            # a V0-engine option (vLLM's V1 dropped it): that engine scheduled each step in turn, never asynchronously
            row.update(scheduler_steps=int(steps.group(1)), async_scheduling="false")
        return [case("output_tokens_per_s")]
    if group == "trtllm_online_v0.14":
        rate = float(re.search(r"achieved (\d+(?:\.\d+)?) req/s", notes).group(1))  # type: ignore[union-attr]
        n_req, offered = re.search(r"(\d+) requests at request rate QPS=(\w+)", notes).groups()  # type: ignore[union-attr]
        row.update(prompt_len=int(p), gen_len=int(g))
        run = {"rate": rate, "offered": float("inf") if offered == "INF" else float(offered), "requests": float(n_req)}
        if metric == "ttft_ms" and offered == "INF":
            # every request sent at once (no delay between requests): the engine takes them all in one batch (its
            # scheduler and KV cache hold them: the row's static batch must fit) and prefills the prompts in turn, so
            # the mean first token comes after about half of all the prompts are prefilled (`_extract`, 'burst')
            row["batch"] = int(n_req)
            return [case("ttft_s", 1000.0, "burst", run)]
        if metric == "itl_ms" and offered == "INF":
            # the same burst seen by a running request: until every prompt is prefilled, each iteration carries the
            # engine's max_tokens of prompt chunks beside the decodes (in-flight batching), so a request decodes one
            # token per such iteration while prompts remain, then at the batch's decode step (`_extract`, 'burst_itl')
            row["batch"] = int(n_req)
            m_tok = float(catalog.asic["serving"]["max_tokens"]["value"][engine])
            return [case("tpot_s", 1000.0, "burst_itl", {**run, "max_tokens": m_tok})]
        return [case({"ttft_ms": "ttft_s", "itl_ms": "tpot_s", "output_tokens_per_s_total": "output_tokens_per_s"}[metric],
                     1000.0 if metric.endswith("_ms") else 1.0, "littles_law", run)]
    if group == "trtllm_v0.5_v0.6":
        row.update(prompt_len=int(p), gen_len=int(g), batch=int(batch))
        if metric == "ttft_ms":
            row["concurrency"] = 1
            return [case("ttft_s", 1000.0)]
        return [case("output_tokens_per_s_per_chip", derived="static_batch", extra={"batch": batch, "p": p, "g": g})]
    if group == "mlenergy_vllm":
        mean_batch = float(re.search(r"avg running batch (\d+(?:\.\d+)?)", notes).group(1))  # type: ignore[union-attr]
        gen = float(re.search(r"avg output len (\d+(?:\.\d+)?)", notes).group(1))  # type: ignore[union-attr]
        row.update(prompt_len=OPEN_LENGTHS[group], gen_len=int(round(gen)), concurrency=max(1, int(round(mean_batch))))
        row.update(RUN_SETTINGS[group].get(str(row.get("model")), {}))
        # every ML.ENERGY vLLM config sets `async-scheduling: true` (ml-energy/benchmark configs/vllm/lm-arena-chat/
        # <model>/<gpu>/monolithic.config.yaml, e.g. Llama-3.1-70B-Instruct/B200 @ a9f134a8, gemma-3-12b-it/B200 @
        # 60f99ccf, Qwen3-235B-A22B-Instruct-2507-FP8/H100 @ f7537b49)
        row["async_scheduling"] = "true"
        # the CSV reads tp 1 for the MoE runs, but the harness passes --tensor-parallel-size <GPUs> unless a config sets
        # data-parallel-size (none does; the leaderboard says DP=1): attention is tensor-parallel, the experts spread
        # over the same GPUs (enable-expert-parallel), as the row's n_chips and ep already say
        col = {"energy_j_per_token": "energy_per_token_j", "power_w": "power_w", "itl_ms": "tpot_s",
               "output_tokens_per_s_total": "output_tokens_per_s"}[metric]
        return [case(col, 1000.0 if metric == "itl_ms" else 1.0)]
    if group in ("xiongjiedai_llamacpp",):
        row["batch"] = 1
        if metric == "prefill_tokens_per_s":
            row.update(prompt_len=int(p), gen_len=0)
            return [case("prefill_tokens_per_s")]
        row.update(prompt_len=0, gen_len=int(g))
        return [case("decode_tokens_per_s")]
    if group == "mlc_llm_perf_bench":
        row.update(batch=1, prompt_len=int(p), gen_len=int(g))
        return [case("decode_tokens_per_s")]
    if group == "jetson_ai_lab_mlc":
        row.update(batch=1)  # prompt and generation lengths not stated: the catalog's workload defaults
        return [case("decode_tokens_per_s")]
    if group == "smolhub_jetson_power":
        row.update(concurrency=1)
        if metric == "power_w":  # Table 6: mean rail power over the sweep (prompts 128-2048, gen 64-256): its midpoint
            row.update(prompt_len=928, gen_len=149)
            return [case("power_w")]
        row.update(prompt_len=int(p), gen_len=int(g))
        if metric.startswith("output"):
            c = case("output_tokens_per_s")
            c.family = REQUEST_THROUGHPUT
            return [c]
        return [case("energy_per_token_j")]
    if group == "jetstream_tpu_v5e":
        dp = "shard_on_batch" in notes  # data parallel: one replica per chip
        n = int(_f(d["n_devices"]))
        if dp:
            row.pop("n_chips", None)
        row.update(concurrency=int(batch / (n if dp else 1)), prompt_len=OPEN_LENGTHS[group], gen_len=OPEN_LENGTHS[group])
        return [case("output_tokens_per_s", float(n) if dp else 1.0)]
    if group == "sglang_deepseek":
        per_node = int(_f(d["n_devices"]))
        nodes = SGLANG_NODES["prefill" if metric == "prefill_tokens_per_s" else "decode"]
        n = per_node * nodes
        # DeepEP's dispatch, as the source names it: one RDMA send per remote node, fanned out over NVLink there
        row.update(n_chips=n, ep=n, dp_attention="true", ep_dedup="true", compute_precision="fp8", weight_bits=8, kv_bits=8,
                   prompt_len=int(p))
        # the layout (nodes per pool, ep, precision) is an assumption, not the source's (SGLANG_NODES): predicted,
        # never fitted (two headline numbers of an assumed deployment set SGLang's constants for every model, chip
        # and load: its compute share at its bound made it the whole serving frontier, 2026-12-07)
        assumed = {"layout_assumed": 1.0}
        if metric == "prefill_tokens_per_s":  # the prefill pool: prompts batched to one pass per attention rank
            row.update(gen_len=0, batch=n)
            return [ServingCase(cid, group, dict(row), "prefill_tokens_per_s", value, 1.0 / nodes,
                                family="serving_throughput", chip=chip, engine=engine, derived="prefill_node",
                                extra=assumed)]
        row.update(gen_len=int(p), disaggregated="true")
        return [case("output_tokens_per_s", 1.0 / nodes, extra=assumed)]
    raise KeyError(f"serving validation: no rule for source group {group}")


def _case_old(d: Mapping[str, str], catalog: Catalog, params: Mapping[str, float]) -> ServingCase:
    """inference_runs.csv: llama.cpp PR #2959 on a 30-core M2 Max, MLPerf Inference v4.1 Llama-2-70B."""
    cid, value = d["case_id"], float(d["measured_value"])
    if cid.startswith("llamacpp_pr2959"):
        model = MODELS[d["model"]]
        chip, extra = DEVICES["Apple M2 Max 30-core GPU (Metal)"]
        gib = float(re.search(r"(\d+(?:\.\d+)?) GiB file", [r for r in _old_rows() if r["model"] == d["model"] and "GiB" in r["notes"]][0]["notes"]).group(1))  # type: ignore[union-attr]
        row: dict[str, object] = {"model": model, "chip": chip, "engine": "llama_cpp", "weight_bits": 4, "batch": 1,
                                  "quant_overhead": round(gib * GIB / (params[model] * 0.5) - 1.0, 6),
                                  "prompt_len": int(float(d["prompt_len"])), "gen_len": int(float(d["gen_len"])),
                                  **_device_overrides(chip, extra, catalog)}
        pp = d["measured_metric"].startswith("prompt")
        return ServingCase(cid, "llamacpp_pr2959_m2max", row, "prefill_tokens_per_s" if pp else "decode_tokens_per_s",
                           value, 1.0, family="prefill" if pp else "decode", chip=chip, engine="llama_cpp")
    # MLPerf: the row spells out model, system, precision and the measured mean lengths in its own columns
    tp, instances = (int(v) for v in re.search(r"TP(\d+)x(\d+)", d["notes"]).groups())  # type: ignore[union-attr]
    row = {"model": d["model"], "chip": d["chip"], "engine": "tensorrt_llm", "n_chips": tp,
           "weight_bits": int(float(d["quant_bits"])), "kv_bits": 8, "compute_precision": "fp8",
           "concurrency": int(float(d["batch"])), "prompt_len": int(float(d["prompt_len"])), "gen_len": int(float(d["gen_len"]))}
    return ServingCase(cid, "mlperf_v4.1", row, "output_tokens_per_s", value, float(instances), family="serving_throughput",
                       chip=d["chip"], engine="tensorrt_llm")


@lru_cache(maxsize=1)
def _old_rows() -> tuple[dict[str, str], ...]:
    with CSV_OLD.open() as fh:
        return tuple(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------------
# predicting: parse and assemble once, then run the core with any calibration
# ---------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """The cases parsed and assembled once; `predict` re-runs only the numpy core."""

    cases: list[ServingCase]
    ctx: Context
    x: dict[str, np.ndarray]
    cal: dict[str, np.ndarray]
    chip_idx: np.ndarray
    engine_idx: np.ndarray
    classes: list[str]
    measured: np.ndarray
    source: np.ndarray
    roots: list[str | None] = field(default_factory=list)  # per catalog chip: the chip whose compute it shares

    @classmethod
    def build(cls, cases: list[ServingCase], catalog: Catalog | None = None) -> Prepared:
        catalog = catalog or load_catalog()
        ctx = _context(catalog)
        table = _littles_law(cases, case_table(cases))
        errors = RowErrors(table.num_rows)
        raw = parse_inference(table, ctx, errors)
        if errors:
            raise ValueError("serving cases do not parse: " + "; ".join(errors.messages()[:5]))
        x, cal = assemble_inference(raw, ctx, errors, efficiency=[], power=[])
        cal = {k: np.array(np.broadcast_to(v, (len(cases),)), dtype=np.float64) for k, v in cal.items()}
        # a published run ran, so its batch and concurrency fit its memory; where the memory model disagrees (a few
        # runs, listed by `memory_disagreements`) the run is evaluated at the most the model fits
        out = inference.evaluate(x, cal)
        short = (np.asarray(out["reason_mask"]) & inference.R_MEMORY) != 0
        for key, fit_key in (("concurrency", "concurrency_fit"), ("batch", "batch_fit")):
            given = np.isfinite(x[key]) & short & (out[fit_key] >= 1)
            x[key] = np.where(given, np.minimum(x[key], out[fit_key]), x[key])
        for i in np.nonzero(short)[0].tolist():
            cases[i].extra["memory_disagreement"] = 1.0
        chip_idx = np.asarray(x["chip_idx"], dtype=np.int64)
        classes = [catalog.chips[ctx.chips.ids[i]].chip_class for i in chip_idx]
        return cls(cases, ctx, x, cal, chip_idx, np.asarray(x["engine"], dtype=np.int64), classes,
                   np.array([c.measured for c in cases]), np.array([c.source for c in cases]),
                   compute_roots(catalog, ctx.chips.ids))

    def run(self, cal: Mapping[str, np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """Predicted metric of each case (in its units)."""
        if rows is None:
            out = inference.evaluate(self.x, cal)
            cases = self.cases
        else:
            out = inference.evaluate({k: v[rows] for k, v in self.x.items()}, {k: v[rows] for k, v in cal.items()})
            cases = [self.cases[i] for i in rows]
        return _extract(cases, out)


def memory_disagreements(cases: Iterable[ServingCase]) -> list[str]:
    """Runs whose published batch or concurrency the memory model says does not fit (evaluated at what fits)."""
    return [c.case_id for c in cases if c.extra.get("memory_disagreement")]


def _littles_law(cases: list[ServingCase], table: pa.Table) -> pa.Table:
    """Online-serving rows run at the concurrency Little's law gives from the run's rate and measured latencies."""
    def run(c: ServingCase) -> tuple[str, ...]:  # one published run: its model, system, lengths and offered rate
        return tuple(str(c.row.get(k, 1)) for k in ("model", "chip", "n_chips", "prompt_len", "gen_len")) + (
            str(c.extra["offered"]),)

    by_run: dict[tuple[str, ...], dict[str, float]] = {}
    for c in cases:
        if c.derived in ("littles_law", "burst", "burst_itl"):
            by_run.setdefault(run(c), {})[c.metric] = c.measured / c.scale
    conc = []
    for c in cases:
        if c.derived not in ("littles_law", "burst", "burst_itl"):
            conc.append(None if c.row.get("concurrency") is None else str(c.row["concurrency"]))
            continue
        m = by_run[run(c)]
        g = float(c.row["gen_len"])  # type: ignore[arg-type]
        latency = m.get("ttft_s", 0.0) + (g - 1.0) * m.get("tpot_s", 0.0)  # s per request
        conc.append(str(max(1, int(round(c.extra["rate"] * latency)))))
    names = table.column_names
    col = pa.array(conc, type=pa.string())
    return table.set_column(names.index("concurrency"), "concurrency", col) if "concurrency" in names else table.append_column("concurrency", col)


def _extract(cases: Sequence[ServingCase], out: Mapping[str, np.ndarray]) -> np.ndarray:
    pred = np.full(len(cases), np.nan)
    for i, c in enumerate(cases):
        if c.derived == "static_batch":  # B sequences: one prefill pass, then g decode steps; per chip
            b, p, g = c.extra["batch"], c.extra["p"], c.extra["g"]
            t = p / out["prefill_tokens_per_s"][i] + g / out["decode_tokens_per_s"][i]  # s per batch
            pred[i] = b * g / t / out["n_chips"][i]
        elif c.derived == "prefill_node":  # prompt tokens/s of the whole prefill pool, per node
            pred[i] = out["prefill_tokens_per_s"][i] * out["batch"][i] * c.scale
        elif c.derived == "burst":  # N prompts prefilled in turn: prompt j's first token at j/N of the whole; mean
            n, p = c.extra["requests"], float(c.row["prompt_len"])  # type: ignore[arg-type]
            whole = p / out["prefill_tokens_per_s"][i] * n / out["batch"][i]  # s to prefill all N (batches of what fits)
            pred[i] = whole * (n + 1.0) / (2.0 * n) * c.scale
        elif c.derived == "burst_itl":  # request j decodes beside the prompt chunks of the N - j after it, then alone
            n, p = c.extra["requests"], float(c.row["prompt_len"])  # type: ignore[arg-type]
            g = float(c.row["gen_len"])  # type: ignore[arg-type]
            rate = out["prefill_tokens_per_s"][i] * out["batch"][i]  # prompt tokens/s of a batched prefill
            whole = n * p / rate  # s to prefill all N
            chunk = c.extra["max_tokens"] / rate  # s of prompt chunk in each iteration while prompts remain
            step = 1.0 / out["decode_tokens_per_s"][i]  # s per decode step of the N sequences
            j = np.arange(1.0, n + 1.0)
            during = np.minimum(g - 1.0, (n - j) / n * whole / (chunk + step))  # its steps while prompts remain
            pred[i] = float(np.mean(step + during * chunk / max(g - 1.0, 1.0))) * c.scale
        else:
            pred[i] = out[c.metric][i] * c.scale
    return pred


# ---------------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------------
def _bounds(catalog: Catalog) -> dict[str, tuple[float, float]]:
    return {k: (float(v[0]), float(v[1])) for k, v in catalog.asic["serving"]["bounds"]["value"].items()}


@dataclass
class Group:
    key: tuple[str, str]  # (engine or '*', chip id / class / '*')
    rows: np.ndarray


# fit levels, general to specific (the order inference_rows.serving_calibration resolves them in reverse):
# (engine or every engine '*', place: every chip '*', a class, one vendor's chips of a class, one chip)
# (engine or every engine '*', place: every chip '*', a class, one vendor's chips of a class, the chips of one compute,
# one chip)
EFFICIENCY_LEVELS = (("*", "*"), ("e", "*"), ("e", "class"), ("e", "vendor_class"), ("e", "compute"), ("e", "chip"))
PLACE_LEVEL = {"*": 1, "vendor": 2, "class": 3, "vendor_class": 4, "compute": 5, "chip": 6}
# chips of one compute (catalog `same_compute_as`: one die, the H100's in the H200 and H800, the GB200's in the
# B200) share what the die and the engine's kernels set, fitted on all their runs together; each keeps its own memory's share
# (HBM3 against HBM3e) and its own link's (CHIP_ONLY). Fitted per chip, the H100 and H200 took TensorRT-LLM
# constants up to 4x apart (the fp8 quantisation's time per layer 0.03 against 0.11 ms), which made the H200 the
# slower chip at low concurrency, its datasheet notwithstanding
MEMORY_KEYS = ("mem_bw_fraction",)
# power pools within a chip class only: a datacenter board's draw (HBM, VRM and fans included, ML.ENERGY) and an
# embedded module's CPU+GPU rail (Jetson) are not one population; a class without power runs keeps the fallback
POWER_LEVELS = (("*", "class"), ("*", "chip"))
# the host's share of an iteration (scheduler, sampler, output processing per running sequence) is the engine's
# software, whatever accelerator it drives: fitted per engine only
ENGINE_ONLY = ("seq_overhead_s",)
# seconds that start at 0 in the fallback: their candidates include a log ladder (a multiple of 0 stays 0)
FROM_ZERO = ENGINE_ONLY + ("moe_layer_overhead_s", "quant_layer_overhead_s")
# the achieved share of a chip's link is a property of its system (NVLink and its switches, or PCIe through the
# host's switches and sockets, which the catalog does not describe) and of the engine's collectives: fitted per engine
# and chip on the runs that can tell it (`_link_rows`), never pooled across chips
CHIP_ONLY = ("link_fraction",)
LINK_BANDWIDTH_BYTES = 1e6  # all-reduce message size from which a run tells the link's bandwidth share
LINK_SENSITIVITY = 0.05  # |log| change of the median prediction when the link share halves, for a fit to use it


def _groups(prep: Prepared, rows: np.ndarray, level: tuple[str, str]) -> list[Group]:
    """The fit groups of `rows` at one level (none at the compute level for a chip whose compute is its own)."""
    keys: dict[tuple[str, str], list[int]] = {}
    for i in rows.tolist():
        e = "*" if level[0] == "*" else ENGINES[int(prep.engine_idx[i])]
        place = _place(prep, i, level[1])
        if place:
            keys.setdefault((e, place), []).append(i)
    return [Group(k, np.array(v)) for k, v in sorted(keys.items())]


def _place(prep: Prepared, i: int, kind: str) -> str:
    chip = prep.ctx.chips.ids[int(prep.chip_idx[i])]
    if kind == "chip":
        return chip
    if kind == "compute":  # '' for a chip of a compute of its own: no group at that level
        root = prep.roots[int(prep.chip_idx[i])]
        return f"compute:{root}" if root else ""
    if kind == "class":
        return prep.classes[i]
    if kind == "vendor":
        return "vendor:" + prep.ctx.catalog.chips[chip].vendor
    if kind == "vendor_class":
        return f"vendor:{prep.ctx.catalog.chips[chip].vendor}/{prep.classes[i]}"
    return "*"


def _loss(pred: np.ndarray, meas: np.ndarray, weight: np.ndarray) -> float:
    err = np.abs(np.log(np.where(pred > 0, pred, np.nan) / meas))
    err = np.where(np.isfinite(err), err, 3.0)  # no prediction: a large, finite penalty
    return float(np.sum(weight * err) / np.sum(weight))


# constants that only some runs tell, by what the run serves: a mixture-of-experts layer's time and share (runs of
# MoE models), the activation quantisation's time (runs whose matrix multiplies run at 8 bits or fewer)
KEY_RUNS = {"moe_layer_overhead_s": "moe_layers", "moe_fraction": "moe_layers", "quant_layer_overhead_s": "low_compute"}


def _source_weights(prep: Prepared, rows: np.ndarray, member: np.ndarray, key: str = "") -> np.ndarray:
    """Weights of `rows` (of the groups `member` numbers) in the fit of `key`: each source counts once in a group, 1 /
    (its runs in the group); for a constant of KEY_RUNS, once among the runs that tell it (the others weigh 0).
    Spread over all of a source's runs, a constant only MoE runs tell would weigh a source of 2 MoE runs 6 times as
    much as one with 141 MoE runs among 862, and fit the first."""
    _, src = np.unique(prep.source[rows], return_inverse=True)
    cell = member * (int(src.max(initial=0)) + 1) + src  # one source in one group
    tells = prep.x[KEY_RUNS[key]][rows] > 0 if key in KEY_RUNS else np.ones(len(rows), dtype=bool)
    tells |= ~np.isin(member, member[tells])  # a group with no such run keeps every run (the constant stays put)
    counts = np.bincount(cell, weights=tells)
    return np.where(tells, 1.0 / np.maximum(counts[cell], 1.0), 0.0)


MULTIPLIERS = (np.array([0.5, 0.7, 0.85, 1.0, 1.18, 1.43, 2.0]), np.array([0.9, 0.95, 1.0, 1.05, 1.11]))
# passes of the two grids: one pass leaves a group where its first constants stopped before the later ones moved
# (on every source, the mean |log error| per source: one pass 0.138, two 0.1236, three 0.1234)
DESCENT_PASSES = 2
SECONDS_LADDER = (0.0, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)  # s: the host time's candidates beside the current multiples


def _descend(prep: Prepared, cal: dict[str, np.ndarray], groups: list[Group], keys: Sequence[str],
             bounds: Mapping[str, tuple[float, float]], fit_rows: np.ndarray) -> dict[tuple[str, str], dict[str, float]]:
    """Coordinate descent of `keys` for every group at once (each group's rows take its own candidate); returns
    the fitted value of each key each group is sensitive to."""
    if not groups:
        return {}
    rows = np.concatenate([g.rows for g in groups])
    member = np.concatenate([np.full(len(g.rows), j) for j, g in enumerate(groups)])
    meas = prep.measured[rows]
    weights = {k: _source_weights(prep, rows, member, k) for k in keys}
    sub_x = {k: v[rows] for k, v in prep.x.items()}
    cur = {k: np.array([float(cal[k][g.rows[0]]) for g in groups]) for k in keys}
    sensitive = {k: np.zeros(len(groups), dtype=bool) for k in keys}
    sub_cases = [prep.cases[i] for i in rows]
    base = {k: v[rows].copy() for k, v in cal.items()}

    def group_losses(trial: Mapping[str, np.ndarray], w: np.ndarray) -> np.ndarray:
        c = dict(base)
        for k in keys:
            c[k] = trial[k][member]
        pred = _extract(sub_cases, inference.evaluate(sub_x, c))
        err = np.abs(np.log(np.where(pred > 0, pred, np.nan) / meas))
        err = np.where(np.isfinite(err), err, 3.0)
        return np.bincount(member, weights=w * err, minlength=len(groups)) / np.bincount(member, weights=w, minlength=len(groups))

    for grid in MULTIPLIERS * DESCENT_PASSES:
        for k in keys:
            lo, hi = bounds[k]
            losses, values = [], []
            # seconds start anywhere on a log ladder (a fallback of 0 cannot grow by multiplying), then refine
            ladder = SECONDS_LADDER if k in FROM_ZERO and grid is MULTIPLIERS[0] else ()
            start = np.maximum(cur[k], 1e-7) if k in ("layer_overhead_s", "moe_layer_overhead_s", "quant_layer_overhead_s") else cur[k]
            for cand in [start * m for m in grid] + [np.full(len(groups), v) for v in ladder]:
                trial = dict(cur)
                trial[k] = np.clip(cand, lo, hi)
                values.append(trial[k])
                losses.append(group_losses(trial, weights[k]))
            L = np.array(losses)  # (candidates, groups)
            best = np.argmin(L, axis=0)
            spread = L.max(axis=0) - L.min(axis=0)
            sensitive[k] |= spread > 1e-4
            cur[k] = np.array(values)[best, np.arange(len(groups))]
    return {g.key: {k: float(cur[k][j]) for k in keys if sensitive[k][j]} for j, g in enumerate(groups)}


@dataclass
class Fit:
    efficiency: list[dict[str, Any]]
    power: list[dict[str, Any]]


def fit(prep: Prepared, rows: np.ndarray, catalog: Catalog | None = None) -> Fit:
    """Fit the serving efficiency and power sets on `rows` of the prepared cases (hierarchical, see module doc)."""
    catalog = catalog or prep.ctx.catalog
    bounds = _bounds(catalog)
    cal = {k: v.copy() for k, v in prep.cal.items()}
    power_metrics = np.array([c.family in ("energy_per_token", "power") for c in prep.cases])
    # runs the memory model says could not fit are predicted (at what fits) but never fitted on, nor runs whose layout
    # is an assumption
    rows = rows[[not (prep.cases[i].extra.get("memory_disagreement") or prep.cases[i].extra.get("layout_assumed"))
                 for i in rows]]
    eff_rows = rows[~power_metrics[rows]]
    pow_rows = rows[power_metrics[rows]]
    efficiency: list[dict[str, Any]] = []
    prio = {k: np.zeros(len(prep.cases), dtype=np.int64) for k in EFFICIENCY_KEYS}  # priority of each row's value
    link_rows = _link_rows(prep)
    vendor_sets: dict[tuple[int, ...], dict[str, float]] = {}  # runs of a set of one vendor's chips of a class: its values
    for level in EFFICIENCY_LEVELS:
        groups = [g for g in _groups(prep, eff_rows, level) if len(g.rows) >= 2]
        by_keys: dict[tuple[str, ...], list[Group]] = {}
        # a chip's group fitted on exactly its vendor set's runs: those values (below)
        inherited = {g.key: vendor_sets[r] for g in groups if level[1] == "chip" and (r := tuple(g.rows.tolist())) in vendor_sets}
        for g in groups:
            skip = set(ENGINE_ONLY + CHIP_ONLY)
            if g.key in inherited:
                # the only chip of its vendor's class with runs: the set of its vendor's chips was fitted on exactly
                # these runs, and a second descent on them would only wander along what they cannot tell apart; the
                # chip's set repeats its values
                skip |= set(EFFICIENCY_KEYS)
            # the host's time per sequence is told apart from the time per layer only by runs of several sequences
            if level == ("e", "*") and bool(np.any(~(np.fmin(prep.x["batch"][g.rows], prep.x["concurrency"][g.rows]) <= 1))):
                skip -= set(ENGINE_ONLY)
            if level == ("e", "chip") and _link_tells(prep, cal, g.rows[link_rows[g.rows]]):
                skip -= set(CHIP_ONLY)
            if level == ("e", "chip") and prep.roots[int(prep.chip_idx[g.rows[0]])]:
                skip |= set(EFFICIENCY_KEYS) - set(MEMORY_KEYS)  # its compute's set gives the rest
            by_keys.setdefault(tuple(k for k in EFFICIENCY_KEYS if k not in skip), []).append(g)
        found = {}
        for keys, gs in by_keys.items():
            found.update(_descend(prep, cal, gs, keys, bounds, eff_rows))
        for g in groups:
            vals = {**inherited.get(g.key, {}), **found.get(g.key, {})}
            if level == ("e", "chip") and prep.roots[int(prep.chip_idx[g.rows[0]])]:  # its compute's set has the rest
                vals = {k: v for k, v in vals.items() if k in (*MEMORY_KEYS, *CHIP_ONLY)}
            kept = {}
            for k, v in vals.items():  # a value overrides rows only where it outranks theirs (as the catalog resolves)
                under = _rows_under(prep, g.key, level[1])
                rank = np.array([set_priority(g.key[0], PLACE_LEVEL[level[1]], ENGINES[int(prep.engine_idx[i])], k)
                                 for i in under.tolist()])
                take = rank > prio[k][under]
                cal[k][under[take]] = v
                prio[k][under[take]] = rank[take]
                if take.any():
                    kept[k] = v
            if level[1] == "vendor_class":
                vendor_sets[tuple(g.rows.tolist())] = kept
            if kept:
                efficiency.append(_set(prep, g, kept))
    power: list[dict[str, Any]] = []
    for level in POWER_LEVELS:
        groups = [g for g in _groups(prep, pow_rows, level) if len(g.rows) >= 2]
        found = _descend(prep, cal, groups, POWER_KEYS, bounds, pow_rows)
        for g in groups:
            vals = found.get(g.key, {})
            for k, v in vals.items():
                cal[k][_rows_under(prep, g.key, level[1])] = v
            if vals:
                power.append(_set(prep, g, vals, power=True))
    return Fit(efficiency, power)


def _link_tells(prep: Prepared, cal: Mapping[str, np.ndarray], rows: np.ndarray) -> bool:
    """Whether `rows` (a group's link rows) can tell its link share: at least two, and halving the share moves their
    median prediction by LINK_SENSITIVITY or more (below that the link is a small part of their iterations and a fit
    would only absorb what the model misses elsewhere)."""
    if len(rows) < 2:
        return False
    half = dict(cal)
    half["link_fraction"] = cal["link_fraction"] * 0.5
    ratio = prep.run(half, rows) / prep.run(cal, rows)
    return bool(np.median(np.abs(np.log(ratio))) >= LINK_SENSITIVITY)


def _link_rows(prep: Prepared) -> np.ndarray:
    """Rows that tell a link's achieved bandwidth share: chips that talk (tensor or expert parallel) in all-reduce
    messages (one hidden state per running sequence) large enough to run at the link's bandwidth. Below ~1 MB a
    collective is latency-bound (Azure AI-benchmarking-guide, ND H200 v5 NCCL all-reduce: 53 GB/s bus bandwidth at
    1 MB against 480 GB/s at 8 GB), so batch-1 decodes say nothing about it; runs at the engine's own limit (no
    batch or concurrency given) carry the most sequences that fit."""
    x = prep.x
    tp = x["n_chips"] / np.where(np.isfinite(x["pp"]), x["pp"], 1.0)
    talks = (tp > 1) | (np.nan_to_num(x["ep"], nan=1.0) > 1)
    load = np.fmin(x["batch"], x["concurrency"])
    large = ~np.isfinite(load) | (load * x["hidden"] * x["act_bytes"] >= LINK_BANDWIDTH_BYTES)
    return talks & large


def _rows_under(prep: Prepared, key: tuple[str, str], kind: str) -> np.ndarray:
    """Every prepared row (of any metric) a set at `key` applies to, so later levels start from it."""
    engine, where = key
    rows = np.arange(len(prep.cases))
    ok = np.array([_place(prep, i, kind) == where for i in rows.tolist()])
    if engine != "*":
        ok &= prep.engine_idx == ENGINES.index(engine)
    return rows[ok]


def _set(prep: Prepared, g: Group, vals: Mapping[str, float], power: bool = False) -> dict[str, Any]:
    engine, where = g.key
    cases = [prep.cases[i] for i in g.rows]
    sources = sorted({c.source for c in cases})
    selectors = sorted({f"{c.source}:{c.engine}:{c.chip}" for c in cases})
    s: dict[str, Any] = {} if power else {"engine": engine}
    s["applies_to"] = where
    s.update({k: round(float(v), 6) for k, v in vals.items()})
    s["sources"] = sources
    s["runs"] = len(cases)
    s["fitted_on"] = selectors
    s["source"] = "fitted by workers/validation/serving.py (coordinate descent on the mean |log error| of these runs)"
    return s


def expand_selector(selector: str, cases: Iterable[ServingCase]) -> list[str]:
    """The case ids a `fitted_on` selector (source:engine:chip) names."""
    source, engine, chip = selector.split(":")
    return [c.case_id for c in cases if c.source == source and c.engine == engine and c.chip == chip]


def predict_with(prep: Prepared, f: Fit, rows: np.ndarray | None = None) -> np.ndarray:
    """Predictions with the fitted sets `f` (resolved per engine and chip as the catalog resolves them)."""
    from chipsweep.workers.inference_rows import chip_tables

    tables = chip_tables(prep.ctx, f.efficiency, f.power)
    nc = len(prep.ctx.chips.ids)
    cal = {k: v.copy() for k, v in prep.cal.items()}
    flat = prep.engine_idx * nc + prep.chip_idx
    eff = tables["eff"]
    for k in EFFICIENCY_KEYS:
        cal[k] = _column(eff, k)[flat]
    for k in POWER_KEYS:
        cal[k] = _column(tables["cal"], k)[prep.chip_idx]
    return prep.run(cal, rows)


def _column(table: Mapping[str, Any], key: str) -> np.ndarray:
    if key in table["const"]:
        return np.full(table["stack"].shape[1] if table["names"] else 1, float(table["const"][key]))
    return table["stack"][table["names"].index(key)]


# ---------------------------------------------------------------------------------------------------
# out-of-source errors
# ---------------------------------------------------------------------------------------------------
# the leave-one-source-out fits as last written (`--write-held-out`), with the key of what they were fitted on
HELD_OUT_PATH = CASES_DIR / "serving_held_out_fits.json"
# the code a fit's result depends on beside its inputs: the core and the modules it calls for times (the expert
# all-to-all's copies, divisibility, blocks; training.py gives it only the economics no fitted metric reads), the
# assembly's calibration resolution, the fit
FIT_CODE = tuple(Path(__file__).resolve().parents[1] / f for f in (
    "inference.py", "comm.py", "bits.py", "blocks.py", "inference_rows.py", "validation/serving.py"))


def fits_key(prep: Prepared, catalog: Catalog) -> str:
    """What a held-out fit is a function of: the prepared rows (every catalog number and assembly choice they
    carry), the calibration the fits start from (fallback and power priors), the cases' measurements and how each is
    read, the bounds, and the source of the core, the calibration resolution and the fit. A stored fit is used only
    under the same key, so it never stands in for one a change would move."""
    h = hashlib.sha256()
    for name, arrays in (("x", prep.x), ("cal", prep.cal)):
        for k in sorted(arrays):
            a = np.ascontiguousarray(np.asarray(arrays[k]))
            h.update(f"{name}.{k}:{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
    reads = [(c.case_id, c.source, c.family, c.metric, c.derived, c.scale, c.measured, sorted(c.extra.items()))
             for c in prep.cases]
    h.update(json.dumps(reads, default=str).encode())
    places = [_place(prep, i, "vendor_class") for i in range(len(prep.cases))]  # the fit's groups: chip, vendor, class
    h.update(json.dumps([prep.ctx.chips.ids[int(c)] for c in prep.chip_idx.tolist()] + places).encode())
    h.update(json.dumps(_bounds(catalog), sort_keys=True).encode())
    for path in FIT_CODE:
        h.update(path.read_bytes())
    return h.hexdigest()


def stored_fits(key: str, path: Path | None = None) -> dict[str, Fit]:
    """The stored held-out fits (source -> fit without it) when they were fitted under `key`; else none."""
    path = path or HELD_OUT_PATH
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("key") != key:
        return {}
    return {src: Fit(f["efficiency"], f["power"]) for src, f in data.get("fits", {}).items()}


def held_out_fits(prep: Prepared, catalog: Catalog, stored: Mapping[str, Fit] | None = None) -> dict[str, Fit]:
    """Per source, the fit on every other source: the stored one where its key matches, else fitted here."""
    if stored is None:
        stored = stored_fits(fits_key(prep, catalog))
        if not stored:  # a changed catalog number, measurement or fit code: fitted here, as the key demands
            log.warning("chipsweep: the stored held-out serving fits (%s) are for other inputs; fitting them "
                        "(~90 s; `python -m chipsweep.workers.validation.serving --write-held-out` stores them)",
                        HELD_OUT_PATH.name)
    out = {}
    for src in sorted(set(prep.source.tolist())):
        out[src] = stored.get(src) or fit(prep, np.nonzero(prep.source != src)[0], catalog)
    return out


def write_held_out(catalog: Catalog | None = None, path: Path | None = None) -> Path:
    """Fit every source's held-out constants afresh and store them with their key (`--write-held-out`)."""
    catalog = catalog or load_catalog(use_env=False)
    prep = Prepared.build(serving_cases(catalog), catalog)
    fits = held_out_fits(prep, catalog, stored={})
    path = path or HELD_OUT_PATH
    body = {"key": fits_key(prep, catalog),
            "note": "written by python -m chipsweep.workers.validation.serving --write-held-out: per source, the "
                    "serving constants fitted without it; used only while the key (inputs, priors, bounds and fit "
                    "code) is unchanged",
            "fits": {src: {"efficiency": f.efficiency, "power": f.power} for src, f in fits.items()}}
    path.write_text(json.dumps(body, separators=(",", ":")) + "\n")
    return path


@lru_cache(maxsize=2)
def _loso_cached(catalog_key: str) -> tuple[tuple[ServingCase, ...], np.ndarray, np.ndarray]:
    catalog = _catalogs[catalog_key]
    cases = serving_cases(catalog)
    prep = Prepared.build(cases, catalog)
    pred = np.full(len(cases), np.nan)
    for src, f in held_out_fits(prep, catalog).items():
        hold = np.nonzero(prep.source == src)[0]
        pred[hold] = predict_with(prep, f, hold)
    in_source = predict_with(prep, Fit(list(catalog.asic["serving"].get("efficiency") or []),
                                       list(catalog.asic["serving"].get("power") or [])))
    return tuple(cases), pred, in_source


_catalogs: dict[str, Catalog] = {}


def _cached(catalog: Catalog | None) -> tuple[tuple[ServingCase, ...], np.ndarray, np.ndarray]:
    """The cases, their out-of-source and their in-source predictions, computed once per catalog content: a catalog
    loaded again with the same entries (the loader's cache cleared by a catalog edit elsewhere) hits the cache, and a
    changed one never does (the key is the content hash of every entry, not the object's identity)."""
    catalog = catalog or load_catalog()
    key = content_hash(catalog.hashes())
    _catalogs[key] = catalog  # read by a cache miss only: not kept past the call
    try:
        return _loso_cached(key)
    finally:
        _catalogs.pop(key, None)


def loso(catalog: Catalog | None = None) -> list[Result]:
    """Each serving case predicted with constants fitted without its source (the out-of-source errors)."""
    cases, pred, _ = _cached(catalog)
    return [Result(c, float(v)) for c, v in zip(cases, pred, strict=True)]


def in_source(catalog: Catalog | None = None) -> list[Result]:
    """Each serving case predicted with the catalog's constants (fitted on every source, its own included)."""
    cases, _, pred = _cached(catalog)
    return [Result(c, float(v)) for c, v in zip(cases, pred, strict=True)]


EDGE_SPLIT = ("prefill", "decode")  # families issue 14 bounds on edge chips: also summarised by chip class


def summary(results: Sequence[Result], catalog: Catalog | None = None) -> list[tuple[str, str, int, float, float]]:
    """(family, source, cases, median |error|, 90th percentile |error|), then one 'all' row per family (and for
    prefill and decode, 'edge chips' and 'datacenter chips' rows: every chip class but datacenter_* is edge)."""
    catalog = catalog or load_catalog()
    rows = []
    by: dict[tuple[str, str], list[float]] = {}
    for r in results:
        c = r.case
        fam = getattr(c, "family", "")
        err = abs(r.error) if np.isfinite(r.predicted) else np.inf
        keys = [c.source, "all"]
        chip = catalog.chips.get(getattr(c, "chip", ""))
        if fam in EDGE_SPLIT and chip is not None:
            keys.append("datacenter chips" if chip.chip_class.startswith("datacenter") else "edge chips")
        for key in keys:
            by.setdefault((fam, key), []).append(err)
    last = {"edge chips": 1, "datacenter chips": 2, "all": 3}
    for (fam, src), errs in sorted(by.items(), key=lambda kv: (kv[0][0], last.get(kv[0][1], 0), kv[0][1])):
        e = np.array(errs)
        rows.append((fam, src, len(e), float(np.median(e)), float(np.percentile(e, 90))))
    return rows


def constants_at_bounds(catalog: Catalog | None = None, tol: float = 0.01) -> tuple[int, list[tuple[str, str, str, float, int]]]:
    """The fitted serving constants (asic.yaml serving efficiency and power sets) within `tol` of the width of their
    bounds from one of them: (how many constants the sets fit, [(engine, applies_to, key, value, runs)]). A constant
    at a bound is one its runs barely determine, or one that absorbs time the model leaves unexplained."""
    catalog = catalog or load_catalog()
    bounds = _bounds(catalog)
    serving_sets = catalog.asic["serving"]
    total, at = 0, []
    for kind in ("efficiency", "power"):
        for s in serving_sets.get(kind) or []:
            for key, value in s.items():
                if key not in bounds:
                    continue
                lo, hi = bounds[key]
                total += 1
                f = (float(value) - lo) / (hi - lo)
                if min(f, 1.0 - f) < tol:
                    at.append((str(s.get("engine", "*")), str(s["applies_to"]), key, float(value), int(s.get("runs", 0))))
    return total, at


# ---------------------------------------------------------------------------------------------------
# writing the fitted sets into asic.yaml
# ---------------------------------------------------------------------------------------------------
def write(f: Fit, path: Path | None = None) -> None:
    """Replace the `efficiency:` and `power:` lists of asic.yaml's `serving` section (the rest is left as is)."""
    import yaml

    path = path or CATALOG_DIR / "asic.yaml"
    text = path.read_text()
    start = text.index("\n  efficiency:", text.index("\nserving:"))
    end = text.find("\n# ", start)
    end = len(text) if end < 0 else end
    body = yaml.safe_dump({"efficiency": f.efficiency, "power": f.power}, sort_keys=False, width=200)
    block = "\n" + "".join(f"  {line}\n" for line in body.splitlines())
    path.write_text(text[:start] + block.rstrip("\n") + "\n" + text[end:].lstrip("\n"))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="fit on every source and print the constants")
    ap.add_argument("--write", action="store_true", help="with --fit: write them into schemas/catalog/asic.yaml")
    ap.add_argument("--write-held-out", action="store_true",
                    help=f"fit each source's held-out constants afresh and store them in {HELD_OUT_PATH.name}")
    args = ap.parse_args()
    catalog = load_catalog(use_env=False)
    if args.write_held_out:
        print(f"written to {write_held_out(catalog)}")
        return 0
    if args.fit:
        cases = serving_cases(catalog)
        prep = Prepared.build(cases, catalog)
        f = fit(prep, np.arange(len(cases)), catalog)
        for s in f.efficiency + f.power:
            print({k: v for k, v in s.items() if k != "fitted_on"})
        if args.write:
            write(f)
            print("written to schemas/catalog/asic.yaml")
        return 0
    res = loso(catalog)
    print(f"{'family':20s} {'source':26s} {'cases':>5s} {'median':>8s} {'p90':>8s}   (out of source)")
    for fam, src, n, med, p90 in summary(res):
        print(f"{fam:20s} {src:26s} {n:5d} {med * 100:7.1f}% {p90 * 100:7.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
