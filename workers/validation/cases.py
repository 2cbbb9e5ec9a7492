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
from chipsweep.workers.workload import model_arrays

CASES_DIR = Path(__file__).resolve().parents[2] / "tests" / "validation"
A100 = "nvidia_a100_sxm_80gb"


@dataclass
class Case:
    """One published measurement and the `evaluate` row that should reproduce it."""

    case_id: str
    source: str  # group name used in the summary
    row: dict[str, object]  # evaluate input row
    metric: str  # output column (or derived metric) compared
    measured: float
    scale: float = 1.0  # predicted output x scale -> measured units


@dataclass
class Result:
    """A case and what the model predicts for it (in the case's units)."""

    case: Case
    predicted: float

    @property
    def error(self) -> float:
        return (self.predicted - self.case.measured) / self.case.measured


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
    }


def training_cases(path: Path | None = None) -> list[Case]:
    """The Megatron / Korthikanti / MT-NLG / PaLM / GPT-3 rows of training_runs.csv as evaluate rows."""
    path = path or CASES_DIR / "training_runs.csv"
    out: list[Case] = []
    with path.open() as fh:
        for d in csv.DictReader(fh):
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
            if cid.startswith("narayanan21"):
                group = "narayanan21_table1" if "_t1_" in cid else "narayanan21_table2" if "_t2_" in cid else "narayanan21_e2e"
                if "zero3" in cid:
                    group = "narayanan21_table2_zero3"
                    row["zero_stage"] = 3
                    row["framework"] = "deepspeed_2021"  # Narayanan's baseline: DeepSpeed's ZeRO-3 of 2021
                if d["tokens_b"]:
                    row["tokens"] = float(d["tokens_b"]) * 1e9
                if metric == "achieved_tflops_per_gpu":
                    out.append(Case(cid, group, row, "hardware_tflops_per_chip", value))
                elif metric == "pct_of_peak_flops":
                    out.append(Case(cid, group, row, "hfu", value, 100.0))
                elif metric == "aggregate_pflops":
                    out.append(Case(cid, group, row, "aggregate_pflops", value))
                elif metric.startswith("time_to_train"):
                    row.setdefault("recompute", "full")
                    row.setdefault("global_batch", 1536)  # GPT-3's 3.2M-token batch (Brown et al. 2020 Table 2.1)
                    out.append(Case(cid, group, row, "time_to_train_days", value))
            elif cid.startswith("korthikanti22"):
                v = 3 if int(d["layers"]) in (96, 105) else 1  # interleaving used for 175B and 530B
                row["interleave"] = v
                if "_mem_" in cid:
                    row["tp"], row["pp"] = int(tp or 1), int(pp or 1)
                    row["n_chips"] = int(tp or 1) * int(pp or 1)
                    row["global_batch"] = int(mb or 1)
                    row["micro_batch"] = int(mb or 1)
                    if d["recompute"] == "n/a":
                        row["recompute"] = "full"
                        out.append(Case(cid, "korthikanti22_memory", row, "mem_states_gib", value))
                    else:
                        out.append(Case(cid, "korthikanti22_memory", row, "mem_activations_gib", value))
                    continue
                if "2240gpu" in cid:
                    row["global_batch"] = 1920  # not stated in the abstract; MT-NLG's batch on the same layout
                    row["micro_batch"] = 1
                    row.pop("interleave")  # 240 micro-batches on 35 stages: the search finds what can interleave
                group = "korthikanti22_time" if metric == "iteration_time" else "korthikanti22_utilisation"
                if metric == "iteration_time":
                    out.append(Case(cid, group, row, "step_time_s", value))
                elif metric == "MFU":
                    out.append(Case(cid, group, row, "mfu", value, 100.0))
                elif metric == "HFU":
                    out.append(Case(cid, group, row, "hfu", value, 100.0))
            elif cid.startswith("mtnlg"):
                row["recompute"] = "full"
                row["sequence_parallel"] = False
                row["interleave"] = 1  # DeepSpeed's pipeline engine runs plain 1F1B
                row["framework"] = "deepspeed_2021"  # MT-NLG: DeepSpeed's 2021 pipeline + Megatron tensor parallelism
                if metric == "iteration_time":
                    out.append(Case(cid, "mtnlg", row, "step_time_s", value))
                else:
                    out.append(Case(cid, "mtnlg", row, "hardware_tflops_per_chip", value))
            elif cid.startswith("palm540b"):
                row.update({
                    "model": "palm_540b", "chip": "google_tpu_v4", "n_chips": 6144, "global_batch": 2048,
                    "tp": 12, "pp": 1, "micro_batch": 4, "recompute": "full", "zero_stage": 3, "tokens": 780e9,
                    # GSPMD shards activations over the model-parallel axis, as sequence parallelism does
                    "sequence_parallel": True,
                    # TPU v4 ICI is not in Google's v4 doc: ~45 GB/s one way per link x 6 links (JAX scaling
                    # book, low confidence, chips.yaml notes); PaLM trained on pods of 3,072 chips
                    "chip.scale_up_gb_s": 270, "chip.scale_up_domain": 3072,
                })
                for key in ("layers", "hidden", "heads", "vocab", "seq_len", "mlp"):
                    row.pop(key, None)
                if metric == "MFU":
                    out.append(Case(cid, "palm", row, "mfu", value, 100.0))
                elif metric == "HFU":
                    out.append(Case(cid, "palm", row, "hfu", value, 100.0))
                elif metric == "training_throughput":
                    out.append(Case(cid, "palm", row, "tokens_per_s", value))
                elif metric == "total_training_flops":
                    out.append(Case(cid, "palm", row, "total_flops", value))
            elif cid.startswith("gpt3_175b"):
                row = {"model": "gpt3_175b", "chip": "nvidia_v100_sxm2_32gb", "cluster": "azure_openai_2020",
                       "global_batch": 1536, "tokens": 300e9}
                out.append(Case(cid, "gpt3", row, "total_flops", value))
    return out


def lambda_cases() -> list[Case]:
    """Lambda's 2020 GPT-3-on-V100 estimate (chips.yaml gpt3_lambda_estimate): 3.14e23 FLOPs at
    28 TFLOP/s sustained and ~$1.5 per V100-hour gives 355 GPU-years and $4.6M."""
    row = {
        "model": "gpt3_175b", "chip": "nvidia_v100_sxm2_32gb", "n_chips": 1024, "global_batch": 1536,
        "tp": 8, "pp": 16, "micro_batch": 1, "recompute": "full", "zero_stage": 0,
        "sustained_tflops": 28, "total_flops": 3.14e23, "chip.usd_per_hour": 1.5,
    }
    return [
        Case("lambda_gpt3_cost", "lambda_gpt3", dict(row), "cost_usd", 4.6e6),
        Case("lambda_gpt3_gpu_years", "lambda_gpt3", dict(row), "gpu_years", 355.0),
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
                "recompute": "full", "zero_stage": 0, "interleave": 1, "sequence_parallel": False,
                "framework": "deepspeed",  # Megatron-DeepSpeed: DeepSpeed's pipeline engine and fp16 gradients
            }
            if which == "single":
                row["cluster"] = "vtrain_single_node"
            else:
                row["cluster"] = "vtrain_multi_node"
            out.append(Case(f"vtrain_{which}_{i}", f"vtrain_{which}_node", row, "step_time_s", float(d["iteration time (ms)"]) / 1000.0))
    return out


def all_training_cases() -> list[Case]:
    """Every training case: training_runs.csv, Lambda's estimate and both vTrain files."""
    return [*training_cases(), *lambda_cases(), *vtrain_cases("multi"), *vtrain_cases("single")]


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
        row["peak_tops"] = chip.peak_tops_int8
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
    orin = {"chip": JETSON, "chip.memory_bandwidth_gb_s": 102, "cal.mem_bw_fraction": 0.85, "weight_bits": 4,
            "quant_overhead": 0, "params_b": 9.4, "layers": 1, "hidden": 64, "heads": 1, "vocab": 1, "batch": 1,
            "prompt_len": 0, "gen_len": 1}
    out.append(Case("asic_notes_orin_nano_super_decode", "asic_worked_checks", orin, "decode_tokens_per_s", 18.4))
    for chip_id, spec in EDGE_NPUS.items():
        chip = catalog.chips[chip_id]
        peak = chip.peak_tops_int4 if spec.get("precision") == "int4" else chip.peak_tops_int8
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
