"""Inference and edge-ASIC predictions against published measurements (tests/validation/inference_runs.csv,
asic-notes.md checks, vendor TOPS/W), via workers/validation/edge.py: the same rows `chipsweep validate` runs."""

from __future__ import annotations

import numpy as np
import pytest

from chipsweep.workers import validation
from chipsweep.workers.validation import edge
from chipsweep.workers.validation.calibrate import fit_edge
from chipsweep.workers.validation.cases import EDGE_NPUS, Result, edge_cases
from chipsweep.workers.validation.report import edge_fitted_cases


@pytest.fixture(scope="module")
def results() -> list[Result]:
    return edge.predict(edge_cases("all"))


def _errors(results: list[Result], groups: tuple[str, ...], held_out_only: bool = False) -> np.ndarray:
    fitted = edge_fitted_cases()
    return np.array([abs(r.error) for r in results
                     if r.case.source in groups and not (held_out_only and r.case.case_id in fitted)])


INFERENCE_GROUPS = ("jetson_orin_nano", "llamacpp_m2max")


def test_every_inference_run_becomes_a_case_on_a_catalog_chip(results: list[Result]) -> None:
    cases = [r for r in results if r.case.source in INFERENCE_GROUPS]
    assert len(cases) == 18  # all rows of inference_runs.csv
    assert all(np.isfinite(r.predicted) for r in cases)


def test_inference_runs_mean_error_under_20pct_and_none_over_35pct(results: list[Result]) -> None:
    e = _errors(results, INFERENCE_GROUPS)
    assert e.mean() < 0.20
    assert e.max() < 0.35


def test_held_out_inference_runs_stay_within_the_same_bounds(results: list[Result]) -> None:
    e = _errors(results, INFERENCE_GROUPS, held_out_only=True)
    assert len(e) == 9  # 7 Jetson Super-mode runs and the 2 llama.cpp decode runs
    assert e.mean() < 0.20
    assert e.max() < 0.35


def test_fitted_constants_are_what_their_fit_gives() -> None:
    from chipsweep.schemas.catalog import load_catalog

    asic_yaml = load_catalog().asic
    refit = fit_edge()
    assert refit["inference.edge.mem_bw_fraction"] == pytest.approx(asic_yaml["inference"]["edge"]["mem_bw_fraction"]["value"], rel=2e-3)
    assert refit["inference.apple_neural_engine_proxy.compute_fraction"] == pytest.approx(
        asic_yaml["inference"]["apple_neural_engine_proxy"]["compute_fraction"]["value"], rel=2e-3)
    assert refit["asic.gpu_power_factor"] == pytest.approx(asic_yaml["asic"]["gpu_power_factor"]["value"], rel=2e-3)


def test_every_fitted_on_name_is_a_validation_case(results: list[Result]) -> None:
    ids = {r.case.case_id for r in results}
    assert edge_fitted_cases() <= ids


def test_asic_notes_worked_checks_are_reproduced_within_2pct(results: list[Result]) -> None:
    checks = [r for r in results if r.case.source == "asic_worked_checks"]
    assert len(checks) == 12
    for r in checks:
        assert abs(r.error) < 0.02, (r.case.case_id, r.predicted, r.case.measured)


@pytest.mark.parametrize("chip", list(EDGE_NPUS))
def test_edge_npu_tops_per_w_lands_within_2x_of_published(results: list[Result], chip: str) -> None:
    (r,) = [r for r in results if r.case.case_id == f"asic_tops_per_w_{chip}"]
    assert 0.5 <= r.predicted / r.case.measured <= 2.0, (chip, r.predicted, r.case.measured)


def test_chipsweep_validate_runs_the_edge_groups() -> None:
    inf = {r.case.source for r in validation.run("inference")}
    asic = {r.case.source for r in validation.run("asic")}
    assert inf == set(INFERENCE_GROUPS)
    assert {"asic_worked_checks", "asic_edge_tops_per_w", "asic_fit_gpu_power"} <= asic
