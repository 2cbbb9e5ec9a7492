"""Validation of the inference and edge-ASIC models (`chipsweep validate --kind inference|asic`).

Cases, by group:
- `jetson_orin_nano`: NVIDIA Jetson AI Lab MLC INT4 decode speeds on the Orin Nano 8GB, original mode
  (68 GB/s) and Super mode (102 GB/s), tests/validation/inference_runs.csv. Super is the same catalog chip
  with what-if overrides from the catalog's own notes: memory_bandwidth_gb_s = the row's 102, peak_tops_int8
  33.5 (67 sparse TOPS / 2), tdp_w 25.
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

`python -m service.validate_edge --fit` re-derives the fitted constants and prints them.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.service.validate import CASES_DIR, Case, Result
from chipsweep.workers import asic
from chipsweep.workers.edge_rows import asic_constants, evaluate_asic, evaluate_inference, fitted_case_ids
from chipsweep.workers.evaluate import Context

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


# ---------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------
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
    from chipsweep.workers.edge_rows import _model_arrays

    ctx = Context.build(catalog)
    m = _model_arrays({"model_idx": np.array([ctx.models.index()[model]])}, ctx, 1)
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


# ---------------------------------------------------------------------------------------------------
# prediction
# ---------------------------------------------------------------------------------------------------
def _table(rows: list[dict[str, object]]) -> pa.Table:
    keys = sorted({k for r in rows for k in r})
    return pa.table({k: pa.array([None if r.get(k) is None else str(r[k]) for r in rows], type=pa.string()) for k in keys})


def _run(kind: str, cases: list[Case], ctx: Context) -> list[Result]:
    if not cases:
        return []
    fn = evaluate_inference if kind == "inference" else evaluate_asic
    out, _ = fn(_table([c.row for c in cases]), ctx)
    res = []
    for i, c in enumerate(cases):
        v = out.column(c.metric)[i].as_py()
        res.append(Result(c, float("nan") if v is None else float(v) * c.scale))
    return res


def _direct(c: Case, k: dict) -> float:  # type: ignore[type-arg]
    """Checks of one formula (dies per wafer, yield) at a given die area."""
    area = np.array([float(c.row["die_area_mm2"])])  # type: ignore[arg-type]
    if c.metric == "dies_per_wafer":
        return float(asic.dies_per_wafer(area, k)[0])
    model = np.array([float(asic.YIELD_MODELS.index(str(c.row["yield_model"])))])
    return float(asic.defect_yield(area, np.array([float(c.row["d0_per_cm2"])]), model, k["yield_alpha"])[0])  # type: ignore[arg-type]


def predict(cases: Iterable[Case], catalog: Catalog | None = None) -> list[Result]:
    ctx = Context.build(catalog or load_catalog())
    k = asic_constants(ctx)
    cases = list(cases)
    direct = [c for c in cases if "die_area_mm2" in c.row]
    inf = [c for c in cases if "chip" in c.row]
    asc = [c for c in cases if c not in direct and c not in inf]
    results = {id(r.case): r for r in _run("inference", inf, ctx) + _run("asic", asc, ctx)}
    results.update({id(c): Result(c, _direct(c, k)) for c in direct})
    return [results[id(c)] for c in cases]


def all_cases(kind: str = "all") -> list[Case]:
    cases: list[Case] = []
    if kind in ("inference", "all"):
        cases += inference_cases()
    if kind in ("asic", "all"):
        cases += asic_cases()
    return cases


def run(kind: str = "all") -> list[Result]:
    return predict(all_cases(kind))


def fitted_cases() -> set[str]:
    return fitted_case_ids(load_catalog())


# ---------------------------------------------------------------------------------------------------
# fitting (prints the values to copy into schemas/catalog/asic.yaml)
# ---------------------------------------------------------------------------------------------------
def fit(catalog: Catalog | None = None) -> dict[str, float]:
    """Re-derive the fitted constants from their cases, with the constant itself set to 1 in the rows."""
    catalog = catalog or load_catalog()
    fitted = fitted_case_ids(catalog)
    inf = inference_cases(catalog=catalog)
    # u_m (edge): decode at batch 1 is memory-bound, so tokens/s is proportional to u_m; the minimax value
    # makes the largest relative error over the fit cases as small as possible: u = 2 / (r_min + r_max)
    jet = [_with(c, {"cal.mem_bw_fraction": 1.0}) for c in inf if c.case_id in fitted and c.source == "jetson_orin_nano"]
    r = np.array([res.predicted / res.case.measured for res in predict(jet, catalog)])
    u_m = 2.0 / (r.min() + r.max())
    # u_c (Neural Engine proxy): prefill is compute-bound; geometric mean of measured / predicted at u_c = 1
    pp = [_with(c, {"cal.compute_fraction": 1.0}) for c in inf if c.case_id in fitted and c.source == "llamacpp_m2max"]
    q = np.array([res.case.measured / res.predicted for res in predict(pp, catalog)])
    u_c = float(np.exp(np.log(q).mean()))
    # GPU power factor: TDP / the NPU model's full-load power, geometric mean over A100 and H100
    gpu = [_with(c, {"arch": "npu"}) for c in asic_cases(catalog) if c.source == "asic_fit_gpu_power"]
    f = np.array([res.case.measured / res.predicted for res in predict(gpu, catalog)])
    return {"inference.edge.mem_bw_fraction": float(u_m), "inference.apple_neural_engine_proxy.compute_fraction": u_c,
            "asic.gpu_power_factor": float(np.exp(np.log(f).mean()))}


def _with(c: Case, extra: dict[str, object]) -> Case:
    return Case(c.case_id, c.source, {**c.row, **extra}, c.metric, c.measured, c.scale)


if __name__ == "__main__":
    if "--fit" in sys.argv[1:]:
        for key, value in fit().items():
            print(f"{key}: {value:.4g}")
    else:
        for res in run():
            print(f"{res.case.case_id:55s} {res.case.metric:22s} {res.predicted:12.4g} {res.case.measured:12.4g} {res.error * 100:7.1f}%")
