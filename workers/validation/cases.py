"""The published runs the models are checked against, as `evaluate` rows: tests/validation/*.csv and the
checks of the reference set (case files stay in the source checkout, beside the tests).

Training (`chipsweep validate --kind training`), by group: Narayanan et al. 2021 Tables 1-2 and end-to-end
times, Korthikanti et al. 2022 iteration times, utilisation and memory, MT-NLG, PaLM 540B, GPT-3's FLOPs
(training_runs.csv); vTrain's measured Megatron-DeepSpeed iteration times on A100 (vtrain_a100_*.csv);
Lambda's 2020 GPT-3-on-V100 estimate. Cases whose inputs the publication leaves open (micro-batch size,
interleaving) leave those cells blank, so the layout search picks the fastest choice as the authors tuned theirs.

Inference and edge ASICs (`--kind inference|asic`), by group:
- `jetson_orin_nano`: NVIDIA Jetson AI Lab MLC INT4 decode speeds on the Orin Nano 8GB, original mode
  (68 GB/s) and Super mode (102 GB/s), inference_runs.csv. Super is the same catalog chip with what-if
  overrides from the catalog's own notes: memory_bandwidth_gb_s = the row's 102, peak_tops_int8 33.5
  (67 sparse TOPS / 2), tdp_w 25.
- `llamacpp_m2max`: llama.cpp PR #2959, LLaMA-7B Q4_0 on a 30-core M2 Max. The M2 Max is not in the catalog
  and nothing is added for it: the rows run on `apple_m2` with chip.memory_bandwidth_gb_s = 400 (the row's
  Apple spec). Its GPU peak is not in the reference set either, so prefill uses the Neural Engine TOPS as a
  stand-in, with a compute fraction fitted on the two pp512 rows (asic.yaml `inference.apple_neural_engine_proxy`).
  Q4_0 weight bytes come from the row's file size (3.56 GiB), as `quant_overhead`.
- `asic_worked_checks`: asic-notes.md sections 2-4 and 7 (dies per wafer, NB yield, the 5 nm worked design,
  the Orin Nano Super decode estimate).
- `asic_edge_tops_per_w`: real edge NPUs through the ASIC model from their published peak TOPS, node and
  memory, against their published TOPS / power.
- `asic_fit_gpu_power`: the A100 / H100 full-load power the GPU power factor is fitted on.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.context import Context
from chipsweep.workers.transformer import Shapes, megatron_flops_per_iteration, recompute_flops_per_seq
from chipsweep.workers.workload import model_arrays

CASES_DIR = Path(__file__).resolve().parents[2] / "tests" / "validation"
A100 = "nvidia_a100_sxm_80gb"


@dataclass
class Case:
    """One published measurement and the `evaluate` row that should reproduce it."""

    case_id: str
    source: str  # group name used in the summary (one publication or table)
    row: dict[str, object]  # evaluate input row
    metric: str  # output column (or derived metric) compared
    measured: float
    scale: float = 1.0  # predicted output x scale -> measured units
    # the primary case of the same run when this one restates it in another unit (MFU of a fitted iteration
    # time, % of peak of achieved TFLOP/s): reported, never counted as held out or out of source
    restates: str | None = None
    flops_per_step: float | None = None  # FLOPs per step by the source's own formula (published_tflops_per_chip)
    year: int | None = None  # year of the run (2024-26 runs make the headline statistics)
    has_layout: bool = True  # the source published the parallel layout (tp/pp/fsdp...) of the run
    notes: str = ""
    # the source's own footnote that this run measured a known regression (a bug of that release, fixed in the next):
    # predicted and shown, never fitted on nor counted in the statistics (`known_regression`)
    regressed: str = ""


@dataclass
class Result:
    """A case and what the model predicts for it (in the case's units)."""

    case: Case
    predicted: float

    @property
    def error(self) -> float:
        return (self.predicted - self.case.measured) / self.case.measured


@dataclass
class Skipped:
    """A published run the core cannot answer yet, and why (MoE, context parallelism, FP4: issue 13)."""

    case_id: str
    source: str
    reason: str


def count_reasons(skipped: list[Skipped]) -> dict[str, int]:
    """Runs not answered, by 'source: reason', in sorted order (what `validate --summary` lists)."""
    counts: dict[str, int] = {}
    for s in skipped:
        counts[f"{s.source}: {s.reason}"] = counts.get(f"{s.source}: {s.reason}", 0) + 1
    return dict(sorted(counts.items()))


def case_table(cases: list[Case]) -> pa.Table:
    """The cases' rows as one `evaluate` input table (every cell as text, as a CSV would give it)."""
    keys: list[str] = sorted({k for c in cases for k in c.row})
    return pa.table({
        k: pa.array([None if c.row.get(k) is None else str(c.row.get(k)) for c in cases], type=pa.string()) for k in keys
    })


# ---------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------
def _f(v: str) -> float | None:
    v = (v or "").strip()
    try:
        return float(v)
    except ValueError:
        return None


def _model_row(d: dict[str, str]) -> dict[str, object]:
    return {
        "layers": int(float(d["layers"])),
        "hidden": int(float(d["hidden"])),
        "heads": int(float(d["heads"])),
        "vocab": int(float(d["vocab"])),
        "seq_len": int(float(d["seq_len"])),
        "mlp": "gelu",
        "dropout": True,  # GPT-3-style models of 2020-22 trained with dropout (Korthikanti Table 2 counts it)
    }


def _shapes(row: dict[str, object]) -> Shapes:
    """The core's shapes of an explicit-shape case row (GPT-style defaults where the row is silent)."""
    L, h, a = float(row["layers"]), float(row["hidden"]), float(row["heads"])  # type: ignore[arg-type]
    kv = float(row.get("kv_heads") or a)  # type: ignore[arg-type]
    f = float(row.get("ffn_hidden") or 4 * h)  # type: ignore[arg-type]
    one = np.array(1.0)
    return Shapes(layers=np.array(L), hidden=np.array(h), heads=np.array(a), kv_heads=np.array(kv),
                  head_dim=np.array(h / a), ffn=np.array(f), vocab=np.array(float(row["vocab"])),  # type: ignore[arg-type]
                  seq=np.array(float(row["seq_len"])), n_proj=np.array(3.0 if row.get("mlp") == "swiglu" else 2.0),  # type: ignore[arg-type]
                  learned_pos=one * 0.0, tied=one)


def _narayanan_flops(row: dict[str, object], batch: float, full: bool = True) -> float:
    """Narayanan eq. 3 FLOPs per iteration (what its and Korthikanti's TFLOP/s, MFU and HFU divide by)."""
    return float(megatron_flops_per_iteration(_shapes(row), np.asarray(batch), full))


def training_cases(path: Path | None = None) -> list[Case]:
    """The Megatron / Korthikanti / MT-NLG / PaLM / GPT-3 rows of training_runs.csv as evaluate rows.

    One case per run carries the run's time or throughput; the same run's other published metrics (% of
    peak, aggregate PFLOP/s, MFU/HFU of an iteration time) are kept as restatements of it."""
    path = path or CASES_DIR / "training_runs.csv"
    out: list[Case] = []
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    for d in rows:
        cid = d["case_id"]
        metric, value = d["measured_metric"], float(d["measured_value"])
        row = _model_row(d)
        row["chip"] = A100
        tp, pp, dp, mb = _f(d["tp"]), _f(d["pp"]), _f(d["dp"]), _f(d["micro_batch"])
        n, batch = _f(d["n_chips"]), _f(d["global_batch_seqs"])
        rec = d["recompute"].split("+")[0].split(" ")[0]
        for key, val in (("tp", tp), ("pp", pp), ("dp", dp), ("micro_batch", mb), ("n_chips", n), ("global_batch", batch)):
            if val is not None:
                row[key] = int(val)
        if rec in ("full", "selective", "none"):
            row["recompute"] = rec
        row["sequence_parallel"] = "sequence_parallel" in d["recompute"]
        row["zero_stage"] = 0
        row["framework"] = "megatron_2022"  # Megatron-LM of Narayanan 2021 / Korthikanti 2022
        run = cid.rsplit("_", 1)[0]
        if cid.startswith("narayanan21"):
            group = "narayanan21_table1" if "_t1_" in cid else "narayanan21_table2" if "_t2_" in cid else "narayanan21_e2e"
            if "zero3" in cid:
                group = "narayanan21_table2_zero3"
                row["zero_stage"] = 3
                row["framework"] = "deepspeed_2021"  # Narayanan's baseline: DeepSpeed's ZeRO-3 of 2021
            if d["tokens_b"]:
                row["tokens"] = float(d["tokens_b"]) * 1e9
            primary = f"{run}_tflops"
            flops = _narayanan_flops(row, float(batch or 0)) if batch else None
            if metric == "achieved_tflops_per_gpu":
                out.append(Case(cid, group, row, "published_tflops_per_chip", value, flops_per_step=flops, year=2021))
            elif metric == "pct_of_peak_flops":
                out.append(Case(cid, group, row, "published_tflops_per_chip", value, 100.0 / 312.0, restates=primary,
                                flops_per_step=flops, year=2021))
            elif metric == "aggregate_pflops":
                out.append(Case(cid, group, row, "published_tflops_per_chip", value, float(n or 0) / 1000.0,
                                restates=primary, flops_per_step=flops, year=2021))
            elif metric.startswith("time_to_train"):
                row.setdefault("recompute", "full")
                row.setdefault("global_batch", 1536)  # GPT-3's 3.2M-token batch (Brown et al. 2020 Table 2.1)
                # Table 2's days for 300B tokens restate the same runs' TFLOP/s; sec. 5.1's estimates stand alone
                restated = primary if group != "narayanan21_e2e" else None
                out.append(Case(cid, group, row, "time_to_train_days", value, restates=restated, year=2021))
        elif cid.startswith("korthikanti22"):
            v = 3 if int(d["layers"]) in (96, 105) else 1  # interleaving used for 175B and 530B
            row["interleave"] = v
            if "_mem_" in cid:
                row["tp"], row["pp"] = int(tp or 1), int(pp or 1)
                row["n_chips"] = int(tp or 1) * int(pp or 1)
                # the first stage of a steady 1F1B pipeline holds p micro-batches (Korthikanti sec. 4.2.3)
                row["global_batch"] = int(mb or 1) * int(pp or 1) * v
                row["micro_batch"] = int(mb or 1)
                if d["recompute"] == "n/a":
                    row["recompute"] = "full"
                    out.append(Case(cid, "korthikanti22_memory", row, "mem_states_gib", value, year=2022))
                else:
                    out.append(Case(cid, "korthikanti22_memory", row, "mem_activations_gib", value, year=2022))
                continue
            if "2240gpu" in cid:
                row["global_batch"] = 1920  # not stated in the abstract; MT-NLG's batch on the same layout
                row["micro_batch"] = 1
                row.pop("interleave")  # 240 micro-batches on 35 stages: the search finds what can interleave
            # Korthikanti's MFU counts Narayanan's model FLOPs (72·B·s·L·h²...), its HFU adds the recompute
            # (full: eq. 3's 96; selective: sec. 6's 72·(1 + s/3h ...), i.e. the score FLOPs once more)
            seqsel = "seqsel" in cid
            B = float(batch or 0)
            model = _narayanan_flops(row, B, full=False)
            m = _shapes(row)
            hfu = _narayanan_flops(row, B, full=True) if not seqsel else model + float(
                recompute_flops_per_seq(m, np.asarray(1.0), causal=False)) * 3.0 * B
            primary = cid.rsplit("_", 1)[0] + "_itertime"
            if metric == "iteration_time":
                out.append(Case(cid, "korthikanti22_time", row, "step_time_s", value, year=2022))
            elif metric == "MFU":
                out.append(Case(cid, "korthikanti22_utilisation", row, "published_tflops_per_chip", value, 100.0 / 312.0,
                                restates=primary, flops_per_step=model, year=2022))
            elif metric == "HFU":
                out.append(Case(cid, "korthikanti22_utilisation", row, "published_tflops_per_chip", value, 100.0 / 312.0,
                                restates=primary, flops_per_step=hfu, year=2022))
        elif cid.startswith("mtnlg"):
            row["recompute"] = "full"
            row["sequence_parallel"] = False
            row["interleave"] = 1  # DeepSpeed's pipeline engine runs plain 1F1B
            row["framework"] = "deepspeed_2021"  # MT-NLG: DeepSpeed's 2021 pipeline + Megatron tensor parallelism
            primary = run + "_itertime"
            if metric == "iteration_time":
                out.append(Case(cid, "mtnlg", row, "step_time_s", value, year=2021))
            else:
                out.append(Case(cid, "mtnlg", row, "published_tflops_per_chip", value, restates=primary,
                                flops_per_step=_narayanan_flops(row, float(batch or 0)), year=2021))
        elif cid.startswith("palm540b"):
            row.update({
                "model": "palm_540b", "chip": "google_tpu_v4", "n_chips": 6144, "global_batch": 2048,
                "tp": 12, "pp": 1, "micro_batch": 4, "recompute": "full", "zero_stage": 3, "tokens": 780e9,
                # GSPMD shards activations over the model-parallel axis, as sequence parallelism does
                "sequence_parallel": True, "framework": "maxtext",
                # TPU v4 ICI is not in Google's v4 doc: ~45 GB/s one way per link x 6 links (JAX scaling
                # book, low confidence, chips.yaml notes); PaLM trained on pods of 3,072 chips
                "chip.scale_up_gb_s": 270, "chip.scale_up_domain": 3072,
            })
            for key in ("layers", "hidden", "heads", "vocab", "seq_len", "mlp", "dropout"):
                row.pop(key, None)
            primary = "palm540b_training_throughput"
            model_tok, hw_tok = _palm_flops_per_token()
            tok_step = 2048.0 * 2048.0  # tokens per step
            if metric == "MFU":
                out.append(Case(cid, "palm", row, "published_tflops_per_chip", value, 100.0 / 275.0, restates=primary,
                                flops_per_step=model_tok * tok_step, year=2022))
            elif metric == "HFU":
                out.append(Case(cid, "palm", row, "published_tflops_per_chip", value, 100.0 / 275.0, restates=primary,
                                flops_per_step=hw_tok * tok_step, year=2022))
            elif metric == "training_throughput":
                out.append(Case(cid, "palm", row, "tokens_per_s", value, year=2022))
            elif metric == "total_training_flops":
                out.append(Case(cid, "palm_flops", row, "total_flops", value, year=2022))
        elif cid.startswith("gpt3_175b"):
            row = {"model": "gpt3_175b", "chip": "nvidia_v100_sxm2_32gb", "cluster": "azure_openai_2020",
                   "global_batch": 1536, "tokens": 300e9, "framework": "megatron_2020"}
            out.append(Case(cid, "gpt3", row, "total_flops", value, year=2020))
    return out


def _palm_flops_per_token() -> tuple[float, float]:
    """PaLM appendix B: model FLOPs per token 6·N + 12·L·H·Q·T (N without embeddings, full attention); the
    HFU it reports adds the rematerialised forward pass (2·N + 4·L·H·Q·T)."""
    m = load_catalog(use_env=False).models["palm_540b"]
    L, h, q = float(m.layers), float(m.hidden), float(m.heads * (m.head_dim or m.hidden // m.heads))
    kv = float((m.kv_heads or m.heads) * (m.head_dim or m.hidden // m.heads))
    f = float(m.ffn_hidden or 4 * m.hidden)
    n_proj = 3.0 if m.mlp == "swiglu" else 2.0
    N = L * (2.0 * h * q + 2.0 * h * kv + n_proj * h * f)  # non-embedding matrix parameters
    att = L * q * float(m.seq_len)
    return 6.0 * N + 12.0 * att, 8.0 * N + 16.0 * att


def lambda_cases() -> list[Case]:
    """Lambda's 2020 GPT-3-on-V100 estimate (chips.yaml gpt3_lambda_estimate): 3.14e23 FLOPs at
    28 TFLOP/s sustained and ~$1.5 per V100-hour gives 355 GPU-years and $4.6M."""
    row = {
        "model": "gpt3_175b", "chip": "nvidia_v100_sxm2_32gb", "n_chips": 1024, "global_batch": 1536,
        "tp": 8, "pp": 16, "micro_batch": 1, "recompute": "full", "zero_stage": 0, "framework": "megatron_2020",
        "sustained_tflops": 28, "total_flops": 3.14e23, "chip.usd_per_hour": 1.5,
    }
    return [
        Case("lambda_gpt3_cost", "lambda_gpt3", dict(row), "cost_usd", 4.6e6, year=2020),
        Case("lambda_gpt3_gpu_years", "lambda_gpt3", dict(row), "gpu_years", 355.0, restates="lambda_gpt3_cost", year=2020),
    ]


def vtrain_cases(which: str = "multi") -> list[Case]:
    """vTrain's measured Megatron-DeepSpeed iteration times (ms) on A100 (1F1B, full recompute)."""
    path = CASES_DIR / f"vtrain_a100_{'multi_node' if which == 'multi' else 'single_node'}.csv"
    out = []
    with path.open() as fh:
        for i, d in enumerate(csv.DictReader(fh)):
            row = {
                "chip": A100, "n_chips": int(d["# GPUs"]), "global_batch": int(d["global batch"]),
                "micro_batch": int(d["micro batch"]), "hidden": int(d["hidden size"]), "heads": int(d["attention heads"]),
                "layers": int(d["# layers"]), "seq_len": int(d["sequence length"]), "vocab": 51200, "mlp": "gelu",
                "tp": int(d["tensor parallelism"]), "dp": int(d["data parallelism"]), "pp": int(d["pipeline parallelism"]),
                "recompute": "full", "zero_stage": 0, "interleave": 1, "sequence_parallel": False, "dropout": True,
                "framework": "deepspeed",  # Megatron-DeepSpeed: DeepSpeed's pipeline engine and fp16 gradients
            }
            if which == "single":
                row["cluster"] = "vtrain_single_node"
            else:
                row["cluster"] = "vtrain_multi_node"
            out.append(Case(f"vtrain_{which}_{i}", f"vtrain_{which}_node", row, "step_time_s",
                            float(d["iteration time (ms)"]) / 1000.0, year=2023))
    return out


# ---- training_runs_2026.csv ------------------------------------------------------------------------
# short source names of the 2026 file (by a prefix of its `source` column)
SOURCES_2026 = (
    ("mosaicml/llm-foundry", "llm_foundry", "fsdp"),
    ("NVIDIA-NeMo/Megatron-Bridge", "megatron_bridge", "megatron_core_2025"),
    ("NVIDIA/NeMo performance summary 24.07", "nemo_2407", "megatron_core_2025"),
    ("NVIDIA NeMo Framework user guide", "nemo_docs_2025", "megatron_core_2025"),
    ("NVIDIA/Megatron-LM README performance", "megatron_lm_readme", "megatron_core_2025"),
    ("NVIDIA/Megatron-LM README strong", "megatron_lm_strong", "megatron_core_2025"),
    ("AI-Hypercomputer/maxtext TPU", "maxtext_configs_2023", "maxtext"),
    ("AI-Hypercomputer/maxtext optimized", "maxtext_tiering", "maxtext"),
    ("AI-Hypercomputer/tpu-recipes", "tpu_recipes", "maxtext"),
    ("AWS Neuron SDK", "neuron_trn1", "neuronx"),
    ("Intel Gaudi 2", "intel_gaudi2", "deepspeed"),
    ("Ascend/MindSpeed-LLM", "mindspeed_ascend", "megatron_core_2025"),
    ("BigScience BLOOM", "bloom", "deepspeed_2021"),
    ("OPT paper", "opt", "fsdp"),
    ("DeepSeek-V3 technical report", "deepseek_v3", "megatron_core_2025"),
)
GATED = ("llama", "mistral", "qwen", "gemma", "mixtral", "yi ", "yi_", "baichuan", "internlm", "aquila", "codellama",
         "chatglm", "grok", "deepseek", "nemotron-h", "kimi")
UNTIED = ("llama", "mistral", "qwen", "mixtral", "yi ", "baichuan", "internlm", "aquila", "codellama", "grok", "maxtext",
          "nemotron")
# vocabularies a row leaves blank but its model family fixes (model-name pattern -> vocabulary):
# Nemotron-3 8B and Nemotron-4 15B/22B/340B share one 256,000-token SentencePiece vocabulary with an untied output
# layer and squared-ReLU MLPs (Parmar et al. 2024, Nemotron-4 15B, arXiv:2402.16819 sec. 2; huggingface/transformers
# models/nemotron/configuration_nemotron.py: vocab_size 256000, tie_word_embeddings False, hidden_act relu2)
FAMILY_VOCAB = {r"nemotron-\d+b": 256000}  # a full match of the row's lower-case model name


def _run_and_metric(d: dict[str, str]) -> tuple[str, str]:
    """A training_runs_2026.csv row's run id and metric: its case id is `<run>__<metric>`, and a run id may hold `__`
    itself (tpu-recipes' `..._MaxText__256c`), so the split is at the row's own metric, not at the first `__`."""
    suffix = "__" + d["metric"]
    if not d["case_id"].endswith(suffix):
        raise ValueError(f"training_runs_2026.csv: case_id {d['case_id']!r} does not end with '{suffix}' (its metric)")
    return d["case_id"][: -len(suffix)], d["metric"]


def _source_2026(text: str) -> tuple[str, str]:
    for prefix, name, framework in SOURCES_2026:
        if text.startswith(prefix):
            return name, framework
    return "other_2026", "megatron"


def _maxtext_2023_flops_per_token(d: dict[str, str]) -> float:
    """MaxText's calculate_tflops_training_per_device as of its 2023 config READMEs (full, non-causal
    attention; the synthetic models have one ReLU MLP matrix pair), per token: 3 x (matrices + logits)
    + 3 x attention."""
    h, f, L, V, s = (float(d[k]) for k in ("hidden", "ffn_hidden", "layers", "vocab", "seq_len"))
    heads = float(d["heads"])
    head_dim = 256.0  # base.yml head_dim of the synthetic models (notes)
    kv = float(d["kv_heads"] or heads)
    ffn = 2.0 * f * h * 2.0  # up and down, 2 FLOPs per MAC
    qkv = 2.0 * h * (heads + 2.0 * kv) * head_dim
    proj = 2.0 * h * heads * head_dim
    att = 4.0 * s * heads * head_dim
    emb = 2.0 * h * V
    return 3.0 * (L * (ffn + qkv + proj) + emb) + 3.0 * L * att


def _megatron_flops_per_token(row: dict[str, object]) -> float:
    """Megatron-LM's num_floating_point_operations (training.py, 2024) per token, GPT with GELU MLP (f = 4h),
    full attention: 72·L·h²·(1 + s/6h + V/12Lh) per sequence (Narayanan eq. 3 without recompute) / s."""
    h, L, V, s = (float(row[k]) for k in ("hidden", "layers", "vocab", "seq_len"))  # type: ignore[arg-type]
    return 72.0 * L * h * h * (1.0 + s / (6.0 * h) + V / (12.0 * L * h))


MAXTEXT_SOURCES = ("maxtext_configs_2023", "maxtext_tiering", "tpu_recipes")


def _maxtext_layout(row: dict[str, object], d: dict[str, str], B: float | None, tp: float | None,
                    fsdp: float | None) -> float | None:
    """The layout a MaxText run (tpu-recipes, the MaxText configs and tiering tables) ran, set on `row`: tensor
    parallelism as published (else 1), no pipeline, one micro-batch per step, weights and optimizer state sharded
    over the fsdp mesh axis, and the remat policy's recompute where the core models it. Returns the global batch
    (the published one, else per-device batch x chips)."""
    n = int(row["n_chips"])  # type: ignore[call-overload]
    mb = _f(d["micro_batch"])
    t = int(tp or 1)
    row.update({"tp": t, "pp": 1, "interleave": 1})
    if B is None and mb is not None:
        B = mb * n
    if B is not None:
        # every chip of a tensor-parallel group works on the same sequences: one micro-batch per step
        row["micro_batch"] = max(int(round(B * t / n)), 1)
    # MaxText shards weights, gradients and optimizer state over its fsdp mesh axis, which base.yml sizes
    # to every chip of the slice the other ICI axes leave (ici_fsdp_parallelism: -1, 'recommended ICI axis to
    # be auto-sharded'; dcn_data_parallelism: -1 across slices): a row that publishes no fsdp size runs that
    # default, not unsharded data parallelism
    slice_chips = n // _slices(d["notes"])
    row["zero_stage"] = 3
    row["zero_group"] = int(fsdp) if fsdp else max(slice_chips // t, 1)
    row["chip.scale_up_domain"] = slice_chips  # the ICI slice; slices talk over DCN
    # MaxText remat policies: full saves nothing; minimal and save_dot_except_mlpwi keep the matrix outputs and
    # recompute the element-wise work, as selective recompute does; a custom policy that offloads the decoder layer
    # input (and the projections it names) keeps no activation of a finished layer on the chip: full recompute with
    # every layer's saved input in host memory but the one in flight (`offload_layers` = layers - 1, the core's
    # double-buffered copy). Other custom policies are left to the search (the fastest recompute that fits)
    rec = d["recompute"].lower()
    if "full" in rec:
        row["recompute"] = "full"
        row["offload_layers"] = 0  # MaxText's full policy keeps each layer's input on the device
    elif "save_dot" in rec or "minimal" in rec:
        row["recompute"] = "selective"
    elif "layers" in row and ("offload decoder_layer_input" in rec or any(
            d["case_id"].startswith(run) for run in MAXTEXT_HOST_OFFLOAD)):
        row["recompute"] = "full"
        row["offload_layers"] = int(row["layers"]) - 1  # type: ignore[call-overload]
    for run, tiles in MAXTEXT_VOCAB_TILES.items():
        if d["case_id"].startswith(run):
            row["vocab_tiles"] = tiles
            row["offload_layers"] = 0  # decoder_layer_input=device: nothing offloaded
    return B


# tpu-recipes runs whose MaxText arguments (remat_policy=custom) offload the decoder layer input to host memory,
# read from each recipe's run_recipe.sh (AI-Hypercomputer/tpu-recipes training/trillium/...): Llama3.1-70B-MaxText
# v6e-32 / v6e-64 / v6e-128 (decoder_layer_input, query/key/value_proj, and out_proj on 64 and 128), v6e-256 (MaxText
# benchmarks/maxtext_trillium_model_configs.py llama3_1_70b_8192, which its README names); Llama3.1-8B-MaxText v6e-8
# and Mistral-7B-MaxText (decoder_layer_input, q/k/v/out_proj); Llama3.1-405B-MaxText (decoder_layer_input). The
# CSV's remat column says only 'custom' for them; the tiering table's rows say 'offload decoder_layer_input' themselves.
# All are v6e runs (the chip's host link is in the catalog); GPT3-175B runs remat full and Gemma3-12B keeps the layer
# input on the device (decoder_layer_input=device), so neither offloads
# tpu-recipes' Gemma3-12B-MaxText runs (v6e-256, 2x and 4x v6e-256) compute the logits of their 262,208-token
# vocabulary in 16 tiles (`num_vocab_tiling=16` in each run_recipe.sh): one tile's logits are held at a time; they
# keep the decoder layer input on the device (decoder_layer_input=device) and rematerialise the rest
MAXTEXT_VOCAB_TILES = {"tpurecipes_trillium_Gemma3-12B-MaxText_": 16}
MAXTEXT_HOST_OFFLOAD = (
    "tpurecipes_trillium_Llama3.1-70B-MaxText_v6e-", "tpurecipes_trillium_Llama3.1-8B-MaxText_v6e-8_8c",
    "tpurecipes_trillium_Mistral-7B-MaxText_", "tpurecipes_trillium_Llama3.1-405B-MaxText_",
)


def _slices(notes: str) -> int:
    m = re.search(r"across (\d+) slice", notes)
    return int(m.group(1)) if m else 1


# catalog models of the 2026 rows that leave the architecture blank (the MindSpeed-LLM README table names the
# model only): the row's own seq_len wins over the catalog's. LLaMA2 34B was never released; Code Llama 34B is
# initialised from it (Roziere et al. 2023 sec. 2), and MindSpeed's examples/llama2/pretrain_llama2_34B_ptd_16p.sh
# gives the same 48 x 8192, 64 / 8 heads, ffn 22016.
MODEL_IDS_2026 = {
    "LLaMA 7B": "llama_7b", "LLaMA 13B": "llama_13b", "LLaMA 33B": "llama_33b", "LLaMA 65B": "llama_65b",
    "LLaMA2 34B": "codellama_34b", "CodeLlama 34B": "codellama_34b", "Gemma 2B": "gemma_2b", "Gemma 7B": "gemma_7b",
    "Aquila 7B": "aquila_7b", "Aquila2 7B": "aquila2_7b", "Aquila2 34B": "aquila2_34b", "Yi 34B": "yi_34b",
    "Baichuan 7B": "baichuan_7b", "Baichuan 13B": "baichuan_13b",
    "Baichuan2 7B": "baichuan2_7b", "Baichuan2 13B": "baichuan2_13b", "Bloom 7B1": "bloom_7b1",
    "ChatGLM3 6B": "chatglm3_6b", "InternLM 7B": "internlm_7b", "Qwen 7B": "qwen_7b", "Qwen 14B": "qwen_14b",
    "Qwen 72B": "qwen_72b", "Qwen1.5 0.5B": "qwen1.5_0.5b", "Qwen1.5 1.8B": "qwen1.5_1.8b", "Qwen1.5 4B": "qwen1.5_4b",
    "Qwen1.5 7B": "qwen1.5_7b", "Qwen1.5 14B": "qwen1.5_14b", "Qwen1.5 32B": "qwen1.5_32b", "Qwen1.5 72B": "qwen1.5_72b",
}
# shapes of rows that name a framework's example model rather than a released one: AWS Neuron's NeMo rows run
# neuronx-nemo-megatron's nemo/examples/nlp/language_modeling/gpt_23b.sh and gpt_46b.sh (hidden 8192, 64 heads,
# 28 / 56 layers, sequence 2048), through test.sh: ffn 4 x hidden, GPT-2 tokenizer (Megatron pads 50,257 to 51,200
# at tp 8), hidden and attention dropout 0.1, activation checkpointing selective (23B) / full (46B)
SHAPES_2026: dict[str, dict[str, object]] = {
    "GPT3-23B": {"layers": 28, "hidden": 8192, "heads": 64, "ffn_hidden": 32768, "seq_len": 2048, "dropout": True,
                 "recompute": "selective"},
    "GPT3-46B": {"layers": 56, "hidden": 8192, "heads": 64, "ffn_hidden": 32768, "seq_len": 2048, "dropout": True,
                 "recompute": "full"},
    # the Megatron-LM README's strong-scaling paragraph names "the standard GPT-3 model (our version has slightly more
    # than 175 billion parameters due to larger vocabulary size)" at "the same batch size of 1152 sequences": the GPT
    # 177B of the same README's model table (96 layers, hidden 12,288, 96 heads, vocabulary 131,072, 1,152 sequences),
    # whose benchmarks all run 4,096-token sequences; the paragraph itself states no shape (an inference, in notes)
    "GPT-3 175B (Megatron, 'slightly more than 175B due to larger vocabulary')": {
        "layers": 96, "hidden": 12288, "heads": 96, "vocab": 131072, "seq_len": 4096},
}
# models of those rows whose architecture could not be sourced, and why
UNSOURCED_2026 = {
    "InternLM 65B": "InternLM published no 65B architecture (no paper table, no released config); MindSpeed's own "
                    "examples/intern/pretrain_internlm_65b_ptd.sh runs a 16-layer cut, so the measured model is unknown",
    "Grok1 40B": "xAI released Grok-1 as a 314B mixture of experts; the 40B variant of the MindSpeed table has no "
                 "published architecture",
}

# runs whose model's architecture is published elsewhere but uses parts the training core does not model yet
NOT_MODELLED_2026 = {
    "DeepSeekV4 Flash": "architecture not read (hybrid latent and compressed sparse attention, hash-routed MoE, MTP, per "
                        "the file's notes); not modelled",
}


def _arch_2026(d: dict[str, str], catalog: Catalog) -> dict[str, object] | str:
    """The shapes a 2026 row leaves blank, from its catalog model ({} when the row states its own), or the reason
    none can be had."""
    if all(d[k] for k in ("layers", "hidden", "heads", "seq_len")):
        return {}
    if d["model"] in SHAPES_2026:
        return dict(SHAPES_2026[d["model"]])
    if d["model"] in UNSOURCED_2026:
        return f"architecture not published in the source: {UNSOURCED_2026[d['model']]}"
    if d["model"] in NOT_MODELLED_2026:
        return NOT_MODELLED_2026[d["model"]]
    model_id = MODEL_IDS_2026.get(d["model"])
    if model_id is None or model_id not in catalog.models:
        return "architecture (layers, hidden, heads, seq_len) not published in the source"
    m = catalog.models[model_id]
    arch: dict[str, object] = {
        "layers": m.layers, "hidden": m.hidden, "heads": m.heads, "vocab": m.vocab, "mlp": m.mlp,
        "seq_len": int(float(d["seq_len"])) if d["seq_len"] else m.seq_len,  # the run's own sequence first
        "tied_embeddings": m.tied_embeddings,
    }
    for key, value in (("kv_heads", m.kv_heads), ("ffn_hidden", m.ffn_hidden), ("head_dim", m.head_dim)):
        if value is not None:
            arch[key] = value
    return arch


# rows that state their shapes but whose catalog model carries what the file's columns cannot: Gemma 3's 256-wide
# heads (16 x 256 = 4,096 against a hidden of 3,840) and its 5:1 local/global attention (a 1,024-token window in 40 of
# 48 layers; Gemma 3 Technical Report sec. 2): tpu-recipes' Gemma3-12B-MaxText runs at 32,768 tokens take the catalog
# model, whose stated shapes equal the row's (test `test_a_row_naming_a_catalog_model_takes_its_windows_and_head_width`)
CATALOG_MODEL_2026 = {"Gemma3 12B": "gemma3_12b"}
SHAPE_COLUMNS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab", "mlp", "tied_embeddings", "head_dim")


# what a run's own recipe sets where the file leaves it unsaid or reads it off a directory name: tpu-recipes'
# training/trillium/GPT3-175B-MaxText/fp8/README.md runs MaxText's benchmark model `gpt_3_175b`, whose tuning_params
# set "quantization": "int8" and "remat_policy": "full" (AI-Hypercomputer/maxtext
# benchmarks/maxtext_trillium_model_configs.py, the versions of late 2024 and 2025 read; the bf16 README runs its sibling
# `gpt_3_175b_bf16`, added later). A TPU v6e has no fp8 MXU mode (catalog: bf16 and int8 peaks only); the run is 1.21x
# its bf16 sibling's speed. Run id -> (the precision label it ran, its row settings)
RECIPE_SETTINGS: dict[str, tuple[str, dict[str, object]]] = {
    "tpurecipes_trillium_GPT3-175B-MaxText_fp8_256c": (
        "int8 (AQT; MaxText benchmarks/maxtext_trillium_model_configs.py gpt_3_175b: quantization int8, whatever the "
        "recipe's directory name says)", {"recompute": "full", "offload_layers": 0}),
}


def runs2026_cases(path: Path | None = None, catalog: Catalog | None = None,
                   only_cp: bool = False, only_fp4: bool = False, only_int8: bool = False) -> tuple[list[Case], list[Skipped]]:
    """training_runs_2026.csv: one case per published run, compared on tokens/s per chip (TFLOP/s
    definitions differ between sources). Runs the core cannot model yet are returned as `Skipped`. With
    `only_cp`, the dense runs with context parallelism instead (issue 13, reported apart: workers/validation/moe.py),
    which the fits of issue 12 never saw; with `only_fp4`, the dense NVFP4 runs likewise, with `only_int8` the int8
    (AQT) runs."""
    path = path or CASES_DIR / "training_runs_2026.csv"
    catalog = catalog or load_catalog(use_env=False)
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    runs: dict[str, dict[str, dict[str, str]]] = {}
    for d in rows:
        run, metric = _run_and_metric(d)
        runs.setdefault(run, {})[metric] = d
    cases: list[Case] = []
    skipped: list[Skipped] = []
    for run, metrics in runs.items():
        d = next(iter(metrics.values()))
        source, framework = _source_2026(d["source"])

        def skip(reason: str, run: str = run, source: str = source) -> None:
            skipped.append(Skipped(run, source, reason))

        label, recipe = RECIPE_SETTINGS.get(run, (d["precision"], {}))
        prec = label.lower()
        if _moe_run(d, catalog):
            skip("mixture of experts: issue 13, reported apart (workers/validation/moe.py)")
            continue
        if known_regression(d["notes"]):
            skip(f"its source calls it a known regression: '{known_regression(d['notes'])}'")
            continue
        if ((_f(d["cp"]) or 1) > 1) != only_cp:
            if not only_cp:
                skip("context parallelism: issue 13, reported apart (workers/validation/moe.py)")
            continue
        if ("nvfp4" in prec) != only_fp4:
            if not only_fp4:
                skip(f"precision {d['precision']}: issue 13, reported apart (workers/validation/moe.py)")
            continue
        if ("int8" in prec and "int8_training=false" not in prec) != only_int8:
            if not only_int8:
                skip(f"precision {label}: issue 13, reported apart (workers/validation/moe.py)")
            continue
        arch = _arch_2026(d, catalog)
        if isinstance(arch, str):
            skip(arch)
            continue
        if d["chip"] not in catalog.chips:
            skip(f"chip '{d['chip']}' not in the catalog")
            continue
        if "fp8" in prec and catalog.chips[d["chip"]].peak_tflops_fp8 is None:
            skip(f"fp8 on a chip without a published fp8 peak ({d['chip']}): issue 13")
            continue
        name = d["model"].lower()
        n = int(float(d["n_chips"]))
        gated = any(g in name for g in GATED)
        row: dict[str, object] = {
            "chip": d["chip"], "n_chips": n, "layers": int(float(d["layers"] or 0)), "hidden": int(float(d["hidden"] or 0)),
            "heads": int(float(d["heads"] or 0)), "seq_len": int(float(d["seq_len"] or 0)),
            # the family's vocabulary, else GPT-3's padded one when the row leaves it blank
            "vocab": int(float(d["vocab"])) if d["vocab"] else next(
                (v for pattern, v in FAMILY_VOCAB.items() if re.fullmatch(pattern, name)), 51200),
            "mlp": "swiglu" if gated else "gelu", "framework": framework, "dropout": False,
            "precision": "nvfp4" if only_fp4 else "int8" if only_int8 else "fp8" if "fp8" in prec
            else "fp16" if prec.startswith("fp16") else "bf16",
        }
        row.update(arch)  # the catalog model's shapes when the row names one and leaves its architecture blank
        # a published layout's cp: 1 where the run states none (a blank cp is searched on long sequences)
        row["cp"] = int(_f(d["cp"]) or 1)
        tag = run.lower()
        if "_lor" in tag or "_sft" in tag:  # fine-tuning rows of NeMo / Megatron-Bridge (LoRA, SFT)
            row["mode"] = "lora" if "_lor" in tag else "full"
        if d["kv_heads"]:
            row["kv_heads"] = int(float(d["kv_heads"]))
        if d["ffn_hidden"]:
            row["ffn_hidden"] = int(float(d["ffn_hidden"]))
        if "maxtext synthetic" in name:
            row["head_dim"] = 256  # base.yml head_dim (notes)
        if (not gated or "gemma" in name) and "tied_embeddings" not in arch:
            row["tied_embeddings"] = "gemma" in name or not any(u in name for u in UNTIED)
        if d["model"] in CATALOG_MODEL_2026:  # the catalog model in place of the stated shapes (the same, and more)
            for key in SHAPE_COLUMNS:
                row.pop(key, None)
            row["model"] = CATALOG_MODEL_2026[d["model"]]
        B = _f(d["global_batch"])
        tp, pp, vp, mb = _f(d["tp"]), _f(d["pp"]), _virtual_stages(d["vp"]), _f(d["micro_batch"])
        fsdp, zero = _f(d["fsdp"]), _f(d["zero_stage"])
        layout = any(v is not None for v in (tp, pp, fsdp))
        if "internally inconsistent" in d["notes"]:
            # the row's own notes say the published topology contradicts its world size (AWS Neuron's NeMo rows:
            # TP x DP x PP = 128 NeuronCores on 512 or 1,024): the layout that ran is unknown, so the run is answered
            # with the layout search, as the runs that publish none, and never fitted
            tp = pp = vp = fsdp = None
            layout = False
        rec = d["recompute"].lower()
        if source in MAXTEXT_SOURCES:
            B = _maxtext_layout(row, d, B, tp, fsdp)
        elif source == "neuron_trn1" and layout:
            # TP/PP/DP in NeuronCores, two per Trainium1 chip: tensor parallelism spans tp/2 chips
            row.update({"tp": max(int(tp or 2) // 2, 1), "pp": int(pp or 1), "micro_batch": int(mb or 1), "interleave": 1,
                        "zero_stage": int(zero if zero is not None else 1)})
        elif source == "llm_foundry":
            row.update({"tp": 1, "pp": 1, "micro_batch": int(mb or 1), "interleave": 1, "zero_stage": int(zero or 3),
                        "recompute": "full" if "checkpoint" in rec else "none", "sequence_parallel": False})
            # Composer's FSDP mixed-precision mode PURE reduces gradients in the autocast dtype (bf16: composer
            # get_mixed_precision); the other rows keep the framework's fp32 reduction (DEFAULT in later releases)
            if "mixed-precision mode=PURE" in d["notes"]:
                row["grad_bytes"] = 2
        elif layout:
            row.update({"tp": int(tp or 1), "pp": int(pp or 1)})
            if vp is not None:
                row["interleave"] = int(vp)
            if mb is not None:
                row["micro_batch"] = int(mb)
            if fsdp and fsdp > 0:
                row["zero_stage"] = 3
            elif zero is not None:
                row["zero_stage"] = int(zero)
            elif framework.startswith("megatron"):
                row["zero_stage"] = 1  # NeMo / Megatron-Bridge run Megatron's distributed optimizer
            if "full" in rec:
                row["recompute"] = "full"
            if source == "megatron_bridge" and "_pre" in tag and d["model"].upper().startswith("LLAMA3"):
                row.update(_MBRIDGE_DENSE_PRETRAIN)
                offload = _MBRIDGE_OFFLOAD.get((d["model"].upper(), d["chip"], int(tp or 1))) if fsdp else None
                if offload is not None:
                    row.update(offload_layers=offload, recompute="none")
        if source not in MAXTEXT_SOURCES:
            # a published run that offloads activations says so (Megatron-Bridge's Megatron-FSDP presets, set above);
            # the layout search's offload fallback is for rows that leave it open, not for runs that did not use it
            row.setdefault("offload_layers", 0)
        row.update(recipe)
        if B is not None:
            row["global_batch"] = int(B)
        elif layout:
            skip("global batch not published")
            continue
        else:
            row["global_batch"] = 8 * n  # no batch published: one that the search can split
        # the measured value: tokens/s per chip, else a step time, else TFLOP/s by the source's own formula
        year = 2026
        flops_tok = None
        if "tokens_per_s_per_chip" in metrics:
            measured = float(metrics["tokens_per_s_per_chip"]["value"])
            how = "tokens/s per chip as published"
        elif "step_time_s" in metrics and B:
            measured = B * float(row["seq_len"]) / (float(metrics["step_time_s"]["value"]) * n)  # type: ignore[arg-type]
            how = "derived: global batch x sequence / (step time x chips)"
        elif "model_tflops_per_chip" in metrics and source == "maxtext_configs_2023":
            flops_tok = _maxtext_2023_flops_per_token(d)
            measured = float(metrics["model_tflops_per_chip"]["value"]) * 1e12 / flops_tok
            how = "derived: TFLOP/s per chip / MaxText's 2023 FLOPs per token (full attention)"
        elif "model_tflops_per_chip" in metrics and source == "megatron_lm_readme":
            flops_tok = _megatron_flops_per_token(row)
            measured = float(metrics["model_tflops_per_chip"]["value"]) * 1e12 / flops_tok
            how = "derived: TFLOP/s per chip / Megatron-LM's FLOPs per token (full attention)"
        elif "mfu" in metrics and source == "megatron_lm_strong":
            # the README's MFU is its TFLOP/s per chip over the H100's 989 dense BF16 (its model table's 432.8 TFLOP/s
            # read 44 %), with Megatron-LM's FLOP count
            flops_tok = _megatron_flops_per_token(row)
            peak = catalog.chips[d["chip"]].peak_tflops_bf16 or 0.0
            measured = float(metrics["mfu"]["value"]) / 100.0 * peak * 1e12 / flops_tok
            how = ("derived: MFU x the BF16 peak / Megatron-LM's FLOPs per token (full attention); shapes of the README's "
                   "GPT 177B, sequence 4,096 as its benchmarks (the paragraph states none)")
        elif "model_tflops_per_chip" in metrics and source == "opt":
            flops_tok = _megatron_flops_per_token(row)
            measured = float(metrics["model_tflops_per_chip"]["value"]) * 1e12 / flops_tok
            how = "derived with Megatron's FLOP count (OPT does not state its convention; 'up to' = best observed)"
            year = 2022
        else:
            skip("no tokens/s, step time or convertible TFLOP/s published")
            continue
        if source in ("bloom", "maxtext_configs_2023"):
            year = 2023 if source == "maxtext_configs_2023" else 2022
        if source == "bloom":
            row["cluster"] = "bloom_jean_zay"  # its Omni-Path network: 50 Gb/s per GPU (clusters.yaml)
        cases.append(Case(f"{run}__tokens_per_s_per_chip", source, row, "tokens_per_s", measured, 1.0 / n,
                          year=year, has_layout=layout, notes=how))
    return cases, skipped


def all_training_cases() -> list[Case]:
    """Every training case: training_runs.csv, Lambda's estimate, both vTrain files and the 2024-26 runs."""
    return [*training_cases(), *lambda_cases(), *vtrain_cases("multi"), *vtrain_cases("single"), *runs2026_cases()[0]]


# ---------------------------------------------------------------------------------------------------
# inference and edge ASICs
# ---------------------------------------------------------------------------------------------------
JETSON = "nvidia_jetson_orin_nano_8gb"
MODEL_OF = {
    "Llama 3.1 8B": "llama3.1_8b",
    "Llama 3.2 3B": "llama3.2_3b",
    "Qwen2.5 7B": "qwen2.5_7b",
    "Gemma 2 2B": "gemma2_2b",
    "Gemma 2 9B": "gemma2_9b",
    "Phi 3.5 3B": "phi3.5_mini_3.8b",
    "SmolLM2": "smollm2_1.7b",
    "LLaMA 7B Q4_0": "llama_7b",
}
GIB = 2.0**30


def inference_cases(path: Path | None = None, catalog: Catalog | None = None) -> list[Case]:
    """tests/validation/inference_runs.csv as `evaluate --kind inference` rows."""
    path = path or CASES_DIR / "inference_runs.csv"
    catalog = catalog or load_catalog()
    out: list[Case] = []
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    # Q4_0 file sizes are stated once per model (the 'PR' rows); the 'master' rows run the same file
    sizes = {d["model"]: float(m.group(1)) for d in rows if (m := re.search(r"(\d+(?:\.\d+)?) GiB file", d["notes"]))}
    for d in rows:
        cid, value = d["case_id"], float(d["measured_value"])
        if cid.startswith("mlperf_"):  # serving runs: workers/validation/serving.py reads them
            continue
        model = MODEL_OF[d["model"]]
        row: dict[str, object] = {"model": model, "weight_bits": int(float(d["quant_bits"])), "batch": int(float(d["batch"]))}
        if cid.startswith("jetson_"):
            row["chip"] = JETSON
            row["chip.memory_bandwidth_gb_s"] = float(d["memory_bw_gbs"])
            if "_super_" in cid:
                row.update(_super_mode(catalog))
            out.append(Case(cid, "jetson_orin_nano", row, "decode_tokens_per_s", value))
        elif cid.startswith("llamacpp_"):
            row["chip"] = "apple_m2"
            row["chip.memory_bandwidth_gb_s"] = float(d["memory_bw_gbs"])
            row["prompt_len"] = int(float(d["prompt_len"]))
            row["gen_len"] = int(float(d["gen_len"]))
            row["quant_overhead"] = _q4_0_overhead(sizes[d["model"]], model, catalog)
            metric = "prefill_tokens_per_s" if d["measured_metric"].startswith("prompt") else "decode_tokens_per_s"
            out.append(Case(cid, "llamacpp_m2max", row, metric, value))
    return out


def _super_mode(catalog: Catalog) -> dict[str, object]:
    """Orin Nano 'Super' what-ifs, from the catalog entry's notes (67 sparse TOPS, up to 25 W)."""
    notes = catalog.chips[JETSON].notes
    sparse = float(re.search(r"Super mode (\d+(?:\.\d+)?) TOPS sparse", notes).group(1))  # type: ignore[union-attr]
    watts = float(re.search(r"Super mode: \d+ GB/s, up to (\d+(?:\.\d+)?) W", notes).group(1))  # type: ignore[union-attr]
    return {"chip.peak_tops_int8": sparse / 2.0, "chip.tdp_w": watts}


def _q4_0_overhead(gib: float, model: str, catalog: Catalog) -> float:
    """Quantisation-scale overhead implied by a Q4_0 file size over 4 bits per parameter."""
    params = _params(model, catalog)
    return gib * GIB / (params * 4.0 / 8.0) - 1.0


def _params(model: str, catalog: Catalog) -> float:
    ctx = Context.build(catalog)
    m = model_arrays({"model_idx": np.array([ctx.models.index()[model]])}, ctx, 1)
    return float(m["params"][0])


# published TOPS/W = the catalog's peak / the catalog's power; node and memory as the table says
EDGE_NPUS: dict[str, dict[str, object]] = {
    # Hailo-8: no DRAM, weights on chip; node not public (TSMC 16 nm commonly reported, unverified)
    "hailo_8": {"node_nm": 16, "precision": "int8", "dram": "none", "sram_mb": 0},
    # Hailo-10H: INT4 40 TOPS at 2.5 W; LPDDR4/4X on the module (bus width not public: x64 assumed); node not public
    "hailo_10h": {"node_nm": 16, "precision": "int4", "dram": "lpddr4x", "dram_bus_bits": 64},
    # Edge TPU: 8 MB SRAM, host link only; its unofficial 28 nm is outside the tables: 16 nm stands in
    "google_coral_edge_tpu": {"node_nm": 16, "precision": "int8", "dram": "none", "sram_mb": 8},
    # Ascend 310: TSMC 12FFC, LPDDR4X (board-dependent; x64 assumed)
    "huawei_ascend_310": {"node_nm": 12, "precision": "int8", "dram": "lpddr4x", "dram_bus_bits": 64},
    # Orin Nano: Samsung 8 nm GPU, 128-bit LPDDR5 at 68 GB/s (4266 MT/s)
    JETSON: {"node_nm": 8, "precision": "int8", "dram": "lpddr5", "dram_bus_bits": 128, "dram_mt_s": 4266, "arch": "gpu"},
    # AGX Orin: Samsung 8 nm, 256-bit LPDDR5 at 204.8 GB/s (6400 MT/s)
    "nvidia_jetson_agx_orin_64gb": {"node_nm": 8, "precision": "int8", "dram": "lpddr5", "dram_bus_bits": 256, "arch": "gpu"},
}
# the module's dense int8 where the catalog's peak is one engine's share of it: the AGX Orin's published TOPS/W counts
# its two DLAs beside the GPU (275 sparse = GPU 170 + DLAs 105, reference chips.yaml), the catalog's peak the GPU alone
MODULE_TOPS = {"nvidia_jetson_agx_orin_64gb": 275 / 2}
GPU_FIT = {
    "nvidia_a100_sxm_80gb": {"node_nm": 7, "dram": "hbm2e"},
    "nvidia_h100_sxm": {"node_nm": 4, "dram": "hbm3"},
}
HBM_BUS_BITS = 5120  # five active 1024-bit HBM stacks on A100 and H100 (bandwidth / bus gives the pin rate)


def _chip_row(chip_id: str, spec: dict[str, object], catalog: Catalog) -> dict[str, object]:
    chip = catalog.chips[chip_id]
    row = dict(spec)
    if spec.get("precision") == "int4":
        row["peak_tops"] = chip.peak_tops_int4
    else:
        row["peak_tops"] = MODULE_TOPS.get(chip_id, chip.peak_tops_int8)
    return row


def asic_cases(catalog: Catalog | None = None) -> list[Case]:
    catalog = catalog or load_catalog()
    out: list[Case] = []
    for area, dies in ((100, 601), (400, 136), (800, 61)):
        out.append(Case(f"asic_notes_dpw_{area}mm2", "asic_worked_checks", {"die_area_mm2": area}, "dies_per_wafer", dies))
    for area, y in ((100, 0.91), (400, 0.69), (800, 0.49)):
        row = {"die_area_mm2": area, "d0_per_cm2": 0.1, "yield_model": "negative_binomial"}
        out.append(Case(f"asic_notes_nb_yield_{area}mm2", "asic_worked_checks", row, "defect_yield", y))
    worked = {"node_nm": 5, "n_mac": 8192, "clock_ghz": 1.0, "sram_mb": 16, "dram": "lpddr5x", "dram_bus_bits": 64,
              "dram_gb": 0, "precision": "int8"}
    for metric, value in (("die_area_mm2", 21.0), ("dies_per_wafer", 2900.0), ("defect_yield", 0.979),
                          ("die_cost_usd", 5.7), ("unit_cost_usd", 11.5)):
        out.append(Case(f"asic_notes_5nm_{metric}", "asic_worked_checks", dict(worked), metric, value))
    # asic-notes section 7 check 1: 102 GB/s x 0.85 / ~4.7 GB per token; a 4.7 GB stream of 4-bit weights
    orin = {"chip": JETSON, "chip.memory_bandwidth_gb_s": 102, "chip.memory_bandwidth_measured_gb_s": 102,
            "cal.mem_bw_fraction": 0.85, "weight_bits": 4,
            "quant_overhead": 0, "params_b": 9.4, "layers": 1, "hidden": 64, "heads": 1, "vocab": 1, "batch": 1,
            "prompt_len": 0, "gen_len": 1}
    out.append(Case("asic_notes_orin_nano_super_decode", "asic_worked_checks", orin, "decode_tokens_per_s", 18.4))
    for chip_id, spec in EDGE_NPUS.items():
        chip = catalog.chips[chip_id]
        peak = chip.peak_tops_int4 if spec.get("precision") == "int4" else MODULE_TOPS.get(chip_id, chip.peak_tops_int8)
        assert peak is not None and chip.tdp_w is not None
        out.append(Case(f"asic_tops_per_w_{chip_id}", "asic_edge_tops_per_w", _chip_row(chip_id, spec, catalog),
                        "tops_per_w", peak / chip.tdp_w))
    for chip_id, spec in GPU_FIT.items():
        chip = catalog.chips[chip_id]
        assert chip.tdp_w is not None and chip.memory_bandwidth_gb_s is not None
        row = {**spec, "precision": "int8", "arch": "gpu", "peak_tops": chip.peak_tops_int8, "sram_mb": chip.sram_mb,
               "dram_bus_bits": HBM_BUS_BITS, "dram_mt_s": chip.memory_bandwidth_gb_s * 8e3 / HBM_BUS_BITS}
        out.append(Case(f"asic_fit_gpu_power_{chip_id}", "asic_fit_gpu_power", row, "full_load_power_w", chip.tdp_w))
    return out


def edge_cases(kind: str = "all") -> list[Case]:
    """The inference cases, the ASIC cases, or both (`kind` inference | asic | all)."""
    cases: list[Case] = []
    if kind in ("inference", "all"):
        cases += inference_cases()
    if kind in ("asic", "all"):
        cases += asic_cases()
    return cases


# catalog ids of the MoE models in training_runs_2026.csv (issue 13); DeepSeek-V4 has no catalog entry
MOE_MODEL_IDS = {
    "deepseekv3": "deepseek_v3", "qwen3_235b_a22b": "qwen3_235b_a22b", "qwen3_30b_a3b": "qwen3_30b_a3b",
    "gpt oss 120b": "gpt_oss_120b", "mixtral-8x7b": "mixtral_8x7b", "mixtral 8x7b": "mixtral_8x7b",
    "mixtral-8x22b": "mixtral_8x22b", "mixtral 8x22b": "mixtral_8x22b", "llama4-scout-llm": "llama4_scout",
    "deepseek-v3 671b": "deepseek_v3", "llama 4 scout 17b-16e": "llama4_scout",
    "llama 4 maverick 17b-128e": "llama4_maverick", "nemotron_3_nano": "nemotron_3_nano",
    "nemotron_3_super": "nemotron_3_super",
}


def _moe_run(d: dict[str, str], catalog: Catalog) -> bool:
    """A mixture-of-experts run: the file gives its experts, or its model is a catalog MoE model (Nemotron 3 Super's
    rows leave the architecture blank)."""
    model = MOE_MODEL_IDS.get(d["model"].lower())
    return bool(d["moe_experts"]) or (model in catalog.models and catalog.models[model].moe_experts is not None)


# what Megatron-Bridge's performance scripts run for a dense Llama pre-training row its release table leaves unsaid
# (NVIDIA-NeMo/Megatron-Bridge scripts/performance/configs/llama/): `set_llama3_common_configs` and
# `set_llama31_common_configs` set `grad_reduce_in_fp32 = False`, so gradients are 16-bit (2 bytes, not the fp32
# main-grad buffer). Recompute stays with the layout search: the workload presets (llama3_workload_base_configs.py,
# llama31_workload_base_configs.py) and the recipes they start from (llama3_70b / llama31_405b_pretrain_config,
# Megatron's default `recompute_granularity` None) recompute nothing, and where the memory model agrees the search
# picks exactly that; Llama 3 8B in fp8 on H100 recomputes 5 of its 32 layers (`recompute_num_layers=5`, a partial
# recompute the core does not model), and the Megatron-FSDP presets on GB200 and B200 offload activations to host
# memory instead (`cpu_offloading_num_layers`), which the memory model does not count: stating none for those would
# refuse runs that ran
_MBRIDGE_DENSE_PRETRAIN: dict[str, object] = {"grad_bytes": 2}
# the Megatron-FSDP presets that offload activations to host memory instead of recomputing them
# (llama3_workload_base_configs.py LLAMA3_70B_PRETRAIN_CONFIG_GB200_FP8_CS_V1/V2: micro-batch 2,
# use_megatron_fsdp, cpu_offloading_num_layers=40; llama31_workload_base_configs.py
# LLAMA31_405B_PRETRAIN_CONFIG_GB200_FP8_CS_V2: tp 2, use_megatron_fsdp, cpu_offloading_num_layers=92; both recompute
# nothing), keyed by the table's model, the chip and tp: a release row with that Megatron-FSDP layout runs the
# preset (the scripts read are of 2026; the 25.09 and 25.11 rows publish the same layouts, their scripts not read)
_MBRIDGE_OFFLOAD: dict[tuple[str, str, int], int] = {
    ("LLAMA3_70B", "nvidia_gb200_per_gpu", 1): 40,
    ("LLAMA3.1_405B", "nvidia_gb200_per_gpu", 2): 92,
}


# what Megatron-Bridge's performance scripts set for the MoE runs of its release tables, where the table leaves it
# unsaid (NVIDIA-NeMo/Megatron-Bridge scripts/performance/configs/): Qwen3 `recompute_granularity = None`
# (qwen/qwen3_llm_pretrain.py set_qwen3_common_configs); DeepSeek-V3 `recompute_granularity = "selective"` with
# recompute_modules ["mla_up_proj"] (["mla_up_proj", "mlp"] on H100; deepseek/deepseek_llm_pretrain.py); GPT-OSS-120B
# recompute_modules ["layernorm", "moe_act"] (gpt_oss/gpt_oss_workload_base_configs.py) -- module-level recompute the
# core models as its `selective` (a partial forward re-run instead of a full one); all three set
# `grad_reduce_in_fp32 = False` (16-bit gradients). The DeepSeek-V3 and Qwen3 workload presets keep each expert whole
# on a chip (BASE_DEEPSEEK_V3_CONFIG, BASE_QWEN3_*_CONFIG: `expert_tensor_parallel_size=1`;
# deepseek/deepseek_workload_base_configs.py, qwen/qwen3_workload_base_configs.py), where Megatron-Core's default,
# the core's blank, splits them over tp when ep divides dp: it matters for DeepSeek-V3 on 1,024 H100 (tp 2, ep 64 of dp
# 64), whose ep group then spans 8 nodes instead of 16
_MBRIDGE_MOE_SETTINGS: dict[str, dict[str, object]] = {
    "qwen3_30b_a3b": {"recompute": "none", "grad_bytes": 2, "expert_tp": 1},
    "qwen3_235b_a22b": {"recompute": "none", "grad_bytes": 2, "expert_tp": 1},
    "deepseek_v3": {"recompute": "selective", "grad_bytes": 2, "expert_tp": 1},
    "gpt_oss_120b": {"recompute": "selective", "grad_bytes": 2},
    # src/megatron/bridge/recipes/nemotronh/nemotron_3_nano.py: recompute_granularity None;
    # scripts/performance/configs/nemotronh/nemotron_3_nano_llm_pretrain.py: grad_reduce_in_fp32 = False
    "nemotron_3_nano": {"recompute": "none", "grad_bytes": 2},
    # nemotronh/nemotron_3_llm_pretrain.py set_nemotron_3_super_common_configs: grad_reduce_in_fp32 = False; the
    # recompute per chip and precision: _MBRIDGE_SUPER_RECOMPUTE
    "nemotron_3_super": {"grad_bytes": 2},
}

# Nemotron 3 Super's module recompute as its performance presets set it (scripts/performance/configs/nemotronh/
# nemotron_3_workload_base_configs.py @ 06e8da4e): on GB200 in BF16 and MXFP8 the whole MoE block, the expert
# activation, the norms and the attention core (recompute_modules moe, moe_act, layernorm, core_attn) -- most of a
# layer's forward, whose nearest in the core is full recompute (which re-runs the Mamba-2 blocks too); on B200 in BF16
# and MXFP8 the expert activation, the norms and the attention core (selective); in NVFP4 none. (chip, 8-bit) ->
# recompute; the file holds one version of the presets, and the release tables do not say which version ran
_MBRIDGE_SUPER_RECOMPUTE: dict[tuple[str, bool], str] = {
    ("nvidia_gb200_per_gpu", False): "full", ("nvidia_b200_hgx", False): "selective",
    ("nvidia_gb200_per_gpu", True): "none", ("nvidia_b200_hgx", True): "none",
}


# Nemotron 3 Super's NVFP4 performance runs use the model's own NVFP4 recipe, not the generic one the dense NVFP4 runs
# use: scripts/performance/configs/nemotronh/nemotron_3_llm_pretrain.py set_nemotron_3_super_common_configs sets
# `nemotron_3_super_bf16_with_nvfp4_mixed()` for precision nvfp4, which keeps the last 14 of the 88 layers in BF16
# (src/megatron/bridge/training/mixed_precision.py: first_last_layers_bf16 = True, num_layers_at_end_in_bf16 = 14; the
# technical report's 'final 15 % in BF16', arXiv:2604.12374). The dense NVFP4 and FP8-CS performance runs switch these
# layers off (`first_last_layers_bf16 = False`, 'disable first/last layer bf16 for benchmarking')
_MBRIDGE_SUPER_NVFP4_BF16_LAST = 14

# a release table's own footnote that a run measured a bug of that release (Megatron-Bridge's 26.06.01 table:
# 'Performance regression in GPT-OSS 120B pre-training is a known issue (cudnn-frontend#256). It will be resolved with
# the next container release.': a Blackwell grouped-GEMM dGLU kernel ten times slower in cudnn-frontend 1.24,
# NVIDIA/cudnn-frontend issue #256; the 26.06 and 26.08 tables publish the same input at 1.58x its speed)
KNOWN_REGRESSION = re.compile(r"performance regression[^']*is a known issue[^']*", re.IGNORECASE)


# runs the framework's maintainers document as a regression of that release in their own tracker (run-id prefix ->
# the issue's words): Megatron-Bridge issue #1998, '[Regression] Low QWEN3 30B B200 and H100 performance with
# dropless', labelled performance/release (2026-01-20): 'We have 2X slower performance in QWEN3 30B on H100 and B200
# with the dropless schedule compared to the token-drop schedule. Basically, the perf in 25.11 is 2X slower than
# 25.09.' (the 25.11 table's runs: B200 9,299 and H100 5,275 tokens/s per GPU; 26.04 publishes 26,859 and 8,901
# dropless). The 26.02 table's B200 and H100 runs read the same (9,691 and 5,113), and the maintainers' PRs name the
# configs that ran them: #2351 (2026-02-12: after the perf configs' refactor the flex dispatcher backend of Qwen3's
# H100, B200 and B300 configs was None, 'This PR changes back the default for specific systems to deepep') and #2499
# (2026-02-23: the B200 config had the dispatcher 'hardcoded to "alltoall"', 'micro_batch_size=4 was not set' and no
# attention CUDA graph; the 26.02 B200 row runs micro batch 1, 26.04's micro batch 4 at 2.8x); the 26.02.01 table
# publishes the 26.02 H100 row's input unchanged (PP 2, VP 12, EP 8, micro batch 1) at 9,058, 1.77x.
MAINTAINER_REGRESSIONS = {
    ("mbridge_25.11_Qwen3-30B-a3B_DGX-B200", "mbridge_25.11_Qwen3-30B-a3B_DGX-H100"):
        "Megatron-Bridge issue #1998 (performance/release): 'the perf in 25.11 is 2X slower than 25.09' for Qwen3 "
        "30B on H100 and B200 with the dropless schedule",
    ("mbridge_26.02_Qwen3-30B-a3B_DGX-B200", "mbridge_26.02_Qwen3-30B-a3B_DGX-H100"):
        "Megatron-Bridge PRs #2351 and #2499 (February 2026): the perf configs' refactor left Qwen3 30B's flex "
        "dispatcher backend unset on H100 and B200, and B200's config ran the all-to-all dispatcher without micro "
        "batch 4 or the attention CUDA graph (this table's B200 row: micro batch 1); issue #1998 ('We need to fix this "
        "in 26.02'); the 26.02.01 table publishes the H100 input at 1.77x",
}


def known_regression(notes: str, run: str = "") -> str:
    """The source's footnote that the run measured a known regression, or its maintainers' issue saying so
    (`MAINTAINER_REGRESSIONS`); '' where there is neither."""
    m = KNOWN_REGRESSION.search(notes)
    if m:
        return m.group(0).strip()
    return next((why for prefixes, why in MAINTAINER_REGRESSIONS.items() if run.startswith(prefixes)), "")


# Megatron-Bridge's DeepSeek-V3 runs ran one multi-token-prediction module unless the table labels them '(w/o MTP)'.
# The tables do not say so, their own figures do: every row's Model TFLOP/s over its tokens/s is 259.6-260.4 GFLOP
# per token, which is Megatron-Core's FLOP count (megatron/training/training.py num_floating_point_operations:
# 260.0 at sequence 4,096 with mtp_num_layers 1; 249.8 without, counting the MTP layer, its projection and its second
# output head only where the module runs), and the 25.11 rows labelled '(w/o MTP)' read 249.1-249.6. The core's own
# count is 260.6 and 250.4 (test `test_megatron_bridge_deepseek_v3_rows_run_the_mtp_module_their_flops_per_token_say`)
_MBRIDGE_DEEPSEEK_V3_MTP = 1


def release_flops_per_token(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], float]:
    """The FLOPs per token a release table's own figures give, per (table section, model, sequence length): its Model
    TFLOP/s over its tokens/s, where every run of the key that publishes both agrees within 1 % (one formula);
    a key whose runs disagree is left out."""
    runs: dict[str, dict[str, dict[str, str]]] = {}
    for d in rows:
        run, metric = _run_and_metric(d)
        runs.setdefault(run, {})[metric] = d
    ratios: dict[tuple[str, str, str], list[float]] = {}
    for metrics in runs.values():
        tps, tf = metrics.get("tokens_per_s_per_chip"), metrics.get("model_tflops_per_chip")
        if tps and tf and float(tps["value"]) > 0:
            ratios.setdefault(release_key(tps), []).append(float(tf["value"]) * 1e12 / float(tps["value"]))
    return {k: float(np.mean(v)) for k, v in ratios.items() if max(v) <= 1.01 * min(v)}


def release_key(d: dict[str, str]) -> tuple[str, str, str]:
    """(the release table's section, e.g. '## 25.09 NeMo Container', model, sequence length) of a row."""
    section = re.search(r"'(## [^']*)'", d["source_locator"])
    return (section.group(1) if section else d["source_locator"], d["model"], d["seq_len"])


# MaxText tiering-table MoE rows that publish no batch, answered with the recipe the row links (run -> (row settings,
# the run it restates or None, why)). The v5p Mixtral 8x7B row links tpu-recipes training/v5p/Mixtral-8X7B-Maxtext,
# whose MaxText arguments (scripts/run_mixtral-8x7b.sh, carried into cluster_toolkit/run_recipe.sh) set
# per_device_batch_size=36 at max_target_length=4096 and no remat_policy (base.yml's default 'full'); the recipe is
# written for a v5p-128 (64 chips), and a per-device batch is per chip whatever the slice. The v6e Mixtral 8x22B row
# is the linked recipe's own run (tpu-recipes training/trillium/Mixtral-8x22B-MaxText, the same 1,326 tokens/s per
# chip, batch 2,048 from its log line): it restates that case, answered with its row and never counted twice
TIERING_RECIPES: dict[str, tuple[dict[str, object], str | None, str]] = {
    "maxtext_tiering_v5p_Mixtral8X7B_256": (
        {"micro_batch": 36, "recompute": "full"}, None,
        "batch from the linked recipe (tpu-recipes v5p Mixtral-8X7B-Maxtext: per_device_batch_size 36, remat full)"),
    "maxtext_tiering_v6e_Mixtral8X22B_256": (
        {}, "tpurecipes_trillium_Mixtral-8x22B-MaxText__256c",
        "the linked recipe's own run (tpu-recipes trillium Mixtral-8x22B-MaxText, 1,326 tokens/s per chip): answered "
        "with that case's row, not counted twice"),
}


def moe2026_cases(path: Path | None = None, catalog: Catalog | None = None) -> tuple[list[Case], list[Skipped]]:
    """The mixture-of-experts runs of training_runs_2026.csv (tokens/s per chip), as rows that name the catalog
    model and give the published layout (tp, pp, ep, vp, micro-batch, batch); the recompute and gradient precision a
    Megatron-Bridge table leaves unsaid come from its performance scripts (`_MBRIDGE_MOE_SETTINGS`), other sources'
    recompute is left to the layout search. A run that publishes neither batch nor layout is answered with the
    layout search (`has_layout` False); runs without a catalog model, or with a layout but no batch, are returned as
    `Skipped` with the reason."""
    path = path or CASES_DIR / "training_runs_2026.csv"
    catalog = catalog or load_catalog(use_env=False)
    cases: list[Case] = []
    skipped: list[Skipped] = []
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    with_tokens = {run for run, metric in map(_run_and_metric, rows) if metric == "tokens_per_s_per_chip"}
    # a run that publishes only its Model TFLOP/s is compared in that unit where its own release table fixes the FLOPs
    # per token (`release_flops_per_token`: the table's other runs of that model and length)
    per_token = release_flops_per_token(rows)
    by_tflops = {run for run, metric in map(_run_and_metric, rows) if metric == "model_tflops_per_chip"} - with_tokens
    said: set[str] = set()
    restating: list[tuple[dict[str, str], tuple[dict[str, object], str | None, str]]] = []
    for d in rows:  # runs without tokens/s are said, not silently dropped
        run, metric = _run_and_metric(d)
        if metric == "model_tflops_per_chip" and run in by_tflops and release_key(d) in per_token:
            continue
        if _moe_run(d, catalog) and run not in with_tokens and run not in said:
            said.add(run)
            why = ("whole-run GPU-hours (`validate --bounds` answers DeepSeek-V3's pre-training and full-training totals)"
                   if metric == "gpu_hours_total" else
                   "each source counts a mixture-of-experts step's FLOPs its own way (routed experts, MLA, MTP)")
            skipped.append(Skipped(run, _source_2026(d["source"])[0], f"only {metric} published, no tokens/s: {why}"))
    for d in rows:
        run, metric = _run_and_metric(d)
        tflops_only = metric == "model_tflops_per_chip" and run in by_tflops and release_key(d) in per_token
        if not _moe_run(d, catalog) or not (metric == "tokens_per_s_per_chip" or tflops_only):
            continue
        source, framework = _source_2026(d["source"])
        model = MOE_MODEL_IDS.get(d["model"].lower())
        if model is None or model not in catalog.models:
            skipped.append(Skipped(run, source, f"MoE model '{d['model']}' not in the catalog"))
            continue
        recipe = TIERING_RECIPES.get(run)
        if recipe is not None and recipe[1] is not None:
            restating.append((d, recipe))
            continue
        searched = ""
        if recipe is not None:  # the linked recipe's batch per chip (`_maxtext_layout` multiplies it by the chips)
            d = {**d, **{k: str(v) for k, v in recipe[0].items()}}
        elif _f(d["global_batch"]) is None and source not in MAXTEXT_SOURCES and not any(
                _f(d[k]) for k in ("tp", "pp", "ep", "cp", "fsdp", "micro_batch")):
            # neither batch nor layout published (MindSpeed's README table): answered as the dense runs that publish
            # none, 8 sequences a chip and the layout searched; never in the statistics, which count published layouts
            d = {**d, "global_batch": str(8 * int(float(d["n_chips"])))}
            searched = "no batch or layout published: 8 sequences a chip, the layout searched (as the dense runs)"
        elif _f(d["global_batch"]) is None:
            skipped.append(Skipped(run, source, "global batch not published"))
            continue
        if d["chip"] not in catalog.chips:
            skipped.append(Skipped(run, source, f"chip '{d['chip']}' not in the catalog"))
            continue
        n = int(float(d["n_chips"]))
        prec = d["precision"].lower()
        row: dict[str, object] = {
            "model": model, "chip": d["chip"], "n_chips": n, "seq_len": int(float(d["seq_len"])),
            "global_batch": int(float(d["global_batch"] or 0)), "framework": framework,
            # MXFP8 and FP8 blockwise/per-tensor run their GEMMs in 8 bits; the core has one fp8 path yet
            "precision": "nvfp4" if "nvfp4" in prec else "fp8" if "fp8" in prec else "bf16",
        }
        if source in MAXTEXT_SOURCES:  # MaxText's dropless MoE (megablox) gathers the experts over fsdp: ep 1
            row["global_batch"] = int(_maxtext_layout(row, d, _f(d["global_batch"]), _f(d["tp"]), _f(d["fsdp"])) or 0)
            row["ep"] = 1
        else:
            for key in ("tp", "pp", "ep", "cp", "micro_batch"):
                if _f(d[key]):
                    row[key] = int(_f(d[key]) or 1)
        if not searched:  # a published layout's cp: 1 where the run states none (a blank cp is searched)
            row["cp"] = int(_f(d["cp"]) or 1)
        vp = _virtual_stages(d["vp"])
        if vp is not None and int(row.get("pp", 1)) > 1:  # type: ignore[call-overload]
            row["interleave"] = int(vp)
        if framework.startswith("megatron"):
            row["zero_stage"] = 1  # Megatron's distributed optimizer
        if "full" in d["recompute"].lower():
            row["recompute"] = "full"
        elif source == "megatron_bridge":
            row.update(_MBRIDGE_MOE_SETTINGS.get(model, {}))
            if model == "nemotron_3_super" and (d["chip"], "nvfp4" in prec) in _MBRIDGE_SUPER_RECOMPUTE:
                row["recompute"] = _MBRIDGE_SUPER_RECOMPUTE[(d["chip"], "nvfp4" in prec)]
            if model == "nemotron_3_super" and "nvfp4" in prec:
                row["bf16_last_layers"] = _MBRIDGE_SUPER_NVFP4_BF16_LAST
        if source not in MAXTEXT_SOURCES:
            row["offload_layers"] = 0  # GPU recipes state activation offloading where they use it (none here)
        # Megatron-Bridge 25.11 labels its DeepSeek-V3 rows 'DeepSeekV3 (w/o MTP)' or '(w/ MTP)'; other tables say
        # nothing and run without (the catalog model's default; the performance recipe's H100 pipeline layout
        # 'Et|(tt|)*30mL' does place one, 'm', but the tables do not say which rows ran it)
        label = re.search(r"\(w/(o)? ?MTP\)", d["notes"])
        if label:
            row["mtp_layers"] = 0 if label.group(1) else 1
        elif source == "megatron_bridge" and model == "deepseek_v3":
            row["mtp_layers"] = _MBRIDGE_DEEPSEEK_V3_MTP
        experts = int(float(d["moe_experts"])) if d["moe_experts"] else catalog.models[model].moe_experts or 0
        notes = "; ".join(x for x in (_fit_ep(row, experts), recipe[2] if recipe else "", searched) if x)
        regressed = known_regression(d["notes"], run)
        if tflops_only:
            fpt = per_token[release_key(d)]
            notes = (notes + "; " if notes else "") + (
                f"only Model TFLOP/s published: compared in it, at the {fpt / 1e9:.1f} GFLOP per token its release "
                f"table's other {d['model']} runs of {d['seq_len']} tokens give")
            flops = fpt * float(d["global_batch"]) * float(d["seq_len"])
            cases.append(Case(run, source, row, "published_tflops_per_chip", float(d["value"]), flops_per_step=flops,
                              year=2025, notes=notes, regressed=regressed))
            continue
        cases.append(Case(run, source, row, "tokens_per_s", float(d["value"]), 1.0 / n, year=2025, notes=notes,
                          regressed=regressed, has_layout=not searched))
    by_id = {c.case_id: c for c in cases}
    for d, (_, primary, why) in restating:
        run = _run_and_metric(d)[0]
        if primary not in by_id:
            skipped.append(Skipped(run, _source_2026(d["source"])[0], f"restates {primary}, which has no answer"))
            continue
        first = by_id[primary]
        cases.append(Case(run, _source_2026(d["source"])[0], dict(first.row), "tokens_per_s", float(d["value"]),
                          first.scale, restates=primary, year=first.year, notes=why))
    return cases, skipped


def _virtual_stages(text: str) -> float | None:
    """The published virtual-pipeline size: a number, 1 for 'n/a' (Megatron-Bridge's release tables print 'n/a' where
    no virtual pipeline ran: GPT-OSS-120B on 64 H100 at PP 4 and DeepSeek-V3 on 256 B200 at PP 16 read VP '1' in the
    25.11 table and 'n/a' from 26.02 on, one layout; the GPT-OSS recipe leaves virtual_pipeline_model_parallel_size
    None), None where the source leaves it blank (the layout search chooses)."""
    return 1.0 if text.strip().lower() == "n/a" else _f(text)


def _fit_ep(row: dict[str, object], experts: int) -> str:
    """Experts shard over the tensor-, context- and data-parallel ranks of a pipeline stage (Megatron-Core's
    expert-model-parallel group), so ep must divide tp x cp x dp. A release table's variant that lists only the
    cells it changed (Megatron-Bridge 25.09's parenthesised 'PP=8, VP=2, GA=64') inherits the base cell's ep,
    which can break that; such a row runs at the largest ep that divides both the ranks and the experts, and
    says so (empty when the published ep holds)."""
    ep = int(row.get("ep", 1))  # type: ignore[call-overload]
    ranks = int(row["n_chips"]) // (int(row.get("pp", 1)) * int(row.get("cp", 1)))  # type: ignore[call-overload]
    if ep <= 1 or ranks % ep == 0:
        return ""
    row["ep"] = max(e for e in range(1, ep + 1) if ranks % e == 0 and experts % e == 0)
    return (f"published ep={ep} cannot shard over the {ranks} tensor/context/data-parallel ranks of a stage "
            f"(pp={row.get('pp', 1)}); run at ep={row['ep']}")
