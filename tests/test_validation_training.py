"""Accuracy of the training core against published runs (tests/validation/, sources per row).

Bounds are those of the training-core issue. The calibration (schemas/catalog/calibration.yaml) was
fitted on Korthikanti's iteration times, Narayanan Table 1's TFLOP/s and the even rows of the vTrain
files and MT-NLG's 2,240-GPU iteration time (workers/validation/calibrate.py); the odd vTrain rows, MT-NLG's other
runs, PaLM, Narayanan Table 2, the memory figures and the GPT-3 cost estimate are held out. Both errors are asserted where a group was fitted.
"""

from __future__ import annotations

import numpy as np
import pytest

from chipsweep.workers.validation import Result, fitted_cases
from chipsweep.workers.validation.cases import lambda_cases, training_cases, vtrain_cases
from chipsweep.workers.validation.training import predict


@pytest.fixture(scope="module")
def results() -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for r in predict([*training_cases(), *lambda_cases(), *vtrain_cases("multi"), *vtrain_cases("single")]):
        out.setdefault(r.case.source, []).append(r)
    return out


def _errors(rs: list[Result], metric: str | None = None, held_out: bool = False) -> np.ndarray:
    fitted = fitted_cases()
    sel = [r for r in rs if (metric is None or r.case.metric == metric) and (not held_out or r.case.case_id not in fitted)]
    assert sel, "no cases selected"
    e = np.array([abs(r.error) for r in sel])
    assert np.isfinite(e).all(), [r.case.case_id for r in sel if not np.isfinite(r.error)]
    return e


def test_narayanan_table1_achieved_tflops_within_5pct_mean_12pct_max(results):
    e = _errors(results["narayanan21_table1"], "hardware_tflops_per_chip")
    assert len(e) == 10
    assert e.mean() <= 0.05 and e.max() <= 0.12, (e.mean(), e.max())


def test_narayanan_table1_percent_of_peak_matches_the_same_runs(results):
    e = _errors(results["narayanan21_table1"], "hfu")
    assert e.mean() <= 0.06 and e.max() <= 0.13, (e.mean(), e.max())


def test_korthikanti_iteration_times_within_5pct_mean_12pct_max(results):
    e = _errors(results["korthikanti22_time"])
    assert len(e) == 8
    assert e.mean() <= 0.05 and e.max() <= 0.12, (e.mean(), e.max())


def test_korthikanti_mfu_and_hfu_within_5pct_mean_12pct_max(results):
    e = _errors(results["korthikanti22_utilisation"])
    assert e.mean() <= 0.05 and e.max() <= 0.12, (e.mean(), e.max())


def test_korthikanti_memory_per_gpu_within_5pct_mean_12pct_max(results):
    e = _errors(results["korthikanti22_memory"])
    assert len(e) == 12
    assert e.mean() <= 0.05 and e.max() <= 0.12, (e.mean(), e.max())


def test_korthikanti_activation_memory_reproduces_table2_formulas_exactly(results):
    acts = [r for r in results["korthikanti22_memory"] if r.case.metric == "mem_activations_gib"]
    assert len(acts) == 8
    assert max(abs(r.error) for r in acts) < 0.002


def test_vtrain_multi_node_iteration_times_within_12pct_mae(results):
    e_all = _errors(results["vtrain_multi_node"])
    e_held = _errors(results["vtrain_multi_node"], held_out=True)
    assert len(e_all) == 109
    assert e_all.mean() <= 0.12 and e_held.mean() <= 0.12, (e_all.mean(), e_held.mean())


def test_vtrain_single_node_iteration_times_within_15pct_mae(results):
    e_all = _errors(results["vtrain_single_node"])
    e_held = _errors(results["vtrain_single_node"], held_out=True)
    assert len(e_all) == 1440
    assert e_all.mean() <= 0.15 and e_held.mean() <= 0.15, (e_all.mean(), e_held.mean())


def test_palm_540b_mfu_within_10pct(results):
    e = _errors(results["palm"], "mfu")
    assert e.max() <= 0.10, e


def test_palm_and_gpt3_total_training_flops_within_3pct(results):
    e = np.concatenate([_errors(results["palm"], "total_flops"), _errors(results["gpt3"], "total_flops")])
    assert e.max() <= 0.03, e


def test_mtnlg_iteration_time_and_tflops_within_10pct(results):
    """MT-NLG ran DeepSpeed's 2021 pipeline engine (framework deepspeed_2021). Its one fitted constant,
    the send efficiency of that engine, comes from the 2,240-GPU iteration time only; the 2,800- and
    3,360-GPU runs (data parallelism 10 and 12) test the scaling held out."""
    assert _errors(results["mtnlg"]).max() <= 0.10
    held = _errors(results["mtnlg"], held_out=True)
    assert len(held) == 5 and held.max() <= 0.10, held


def test_lambda_gpt3_on_v100_estimate_reproduced_within_3pct(results):
    by_metric = {r.case.metric: r for r in results["lambda_gpt3"]}
    assert abs(by_metric["cost_usd"].predicted / 4.6e6 - 1) <= 0.03
    assert abs(by_metric["gpu_years"].predicted / 355 - 1) <= 0.03


def test_zero3_baselines_of_narayanan_table2_held_out_within_25pct(results):
    """DeepSpeed's 2021 ZeRO-3 (Narayanan Table 2 baseline, framework deepspeed_2021): its collective
    efficiency is solved on the 768-GPU 174B run alone; the other five runs (384-2,240 GPUs, 174B and
    529B) are held out. Measured: mean 12.5 %, max 23.2 % on TFLOP/s. The model's weakest spot, bounded
    so that a regression shows."""
    held = _errors(results["narayanan21_table2_zero3"], "hardware_tflops_per_chip", held_out=True)
    assert len(held) == 5
    assert held.mean() <= 0.15 and held.max() <= 0.25, held
