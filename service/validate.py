"""`chipsweep validate`: predict every published run in tests/validation/ and report the errors.

Each case becomes one `evaluate` row (the same path users take); the measured metric is compared with
the matching output. Cases whose inputs the publication leaves open (micro-batch size, interleaving)
leave those cells blank, so the layout search picks the fastest choice as the authors tuned theirs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.evaluate import Context

CASES_DIR = Path(__file__).resolve().parents[1] / "tests" / "validation"
A100 = "nvidia_a100_sxm_80gb"


@dataclass
class Case:
    case_id: str
    source: str  # group name used in the summary
    row: dict[str, object]  # evaluate input row
    metric: str  # output column (or derived metric) compared
    measured: float
    scale: float = 1.0  # predicted output x scale -> measured units


@dataclass
class Result:
    case: Case
    predicted: float

    @property
    def error(self) -> float:
        return (self.predicted - self.case.measured) / self.case.measured


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


def all_cases() -> list[Case]:
    return [*training_cases(), *lambda_cases(), *vtrain_cases("multi"), *vtrain_cases("single")]


def case_table(cases: list[Case]) -> pa.Table:
    keys: list[str] = sorted({k for c in cases for k in c.row})
    return pa.table({
        k: pa.array([None if c.row.get(k) is None else str(c.row.get(k)) for c in cases], type=pa.string()) for k in keys
    })


def extract(cases: list[Case], out: dict[str, np.ndarray], n_chips: np.ndarray) -> list[Result]:
    """Predicted values of each case's metric from the core's outputs (row i = case i)."""
    results = []
    for i, c in enumerate(cases):
        if c.metric == "aggregate_pflops":
            pred = out["hardware_tflops_per_chip"][i] * n_chips[i] / 1000.0
        elif c.metric == "gpu_years":
            pred = out["chip_hours"][i] / 8766.0
        else:
            pred = out[c.metric][i]
        results.append(Result(c, float(pred) * c.scale))
    return results


def predict(cases: Iterable[Case], catalog: Catalog | None = None) -> list[Result]:
    """Run the cases through the same parse/assemble/search path `evaluate` uses."""
    from chipsweep.workers.evaluate import search_training, training_inputs
    from chipsweep.workers.parse import RowErrors

    cases = list(cases)
    if not cases:
        return []
    ctx = Context.build(catalog or load_catalog())
    table = case_table(cases)
    errors = RowErrors(table.num_rows)
    x, blank, chip_idx = training_inputs(table, ctx, errors)
    if errors:
        raise ValueError("validation cases do not parse: " + "; ".join(errors.messages()[:5]))
    _, out = search_training(x, blank, ctx, chip_idx)
    return extract(cases, out, x["n_chips"])


def summarize(results: list[Result]) -> list[tuple[str, int, float, float]]:
    """(group, cases, mean |error|, max |error|) per source group."""
    groups: dict[str, list[float]] = {}
    for r in results:
        groups.setdefault(r.case.source, []).append(abs(r.error))
    return [(g, len(e), float(np.nanmean(e)), float(np.nanmax(e))) for g, e in sorted(groups.items())]


def fitted_cases() -> set[str]:
    """Case ids any calibration constant in the catalog was fitted on."""
    cat = load_catalog()
    out: set[str] = set()
    for cset in cat.calibration.values():
        for const in cset.constants.values():
            out.update(_expand(const.fitted_on))
    for cl in cat.clusters.values():
        for text in cl.derived.values():
            if "fitted on" in text:
                out.update(_expand([w.strip(" ,.;") for w in text.split("fitted on", 1)[1].split()]))
    from chipsweep.workers.edge_rows import fitted_case_ids  # edge constants live in schemas/catalog/asic.yaml

    return out | fitted_case_ids(cat)


def _expand(names: Iterable[str]) -> set[str]:
    """Case ids, where `vtrain_single_even` style names stand for every even row of a vTrain file."""
    out: set[str] = set()
    for name in names:
        if name.startswith("vtrain_") and name.endswith(("_even", "_odd")):
            which = name.split("_")[1]
            parity = 0 if name.endswith("_even") else 1
            out.update(c.case_id for i, c in enumerate(vtrain_cases(which)) if i % 2 == parity)
        else:
            out.add(name)
    return out


def run(kind: str = "all") -> list[Result]:
    results: list[Result] = []
    if kind in ("training", "all"):
        results += predict(all_cases())
    if kind in ("inference", "asic", "all"):
        from chipsweep.service import validate_edge

        results += validate_edge.run(kind)
    return results


def summary_table(results: list[Result], fitted: set[str]) -> list[tuple[str, int, float, float, int, float, float]]:
    """Per source: all cases (n, mean, max |error|) and the held-out ones (not fitted on)."""
    rows = []
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.case.source, []).append(r)
    for g, rs in sorted(groups.items()):
        e = np.array([abs(r.error) for r in rs])
        held = np.array([abs(r.error) for r in rs if r.case.case_id not in fitted])
        rows.append((
            g, len(rs), float(np.nanmean(e)), float(np.nanmax(e)), len(held),
            float(np.nanmean(held)) if len(held) else float("nan"), float(np.nanmax(held)) if len(held) else float("nan"),
        ))
    return rows
