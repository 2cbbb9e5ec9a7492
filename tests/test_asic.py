"""The edge-ASIC model (workers/asic.py through `evaluate --kind asic`): the asic-notes.md worked checks,
yield models, redundancy, cost, power and the per-row reasons for designs that cannot be built or run."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.vocab import ASIC_PRECISIONS, DRAM_TYPES, YIELD_MODELS
from chipsweep.workers import asic
from chipsweep.workers.asic_rows import asic_constants, assemble_asic, evaluate_asic
from chipsweep.workers.context import Context
from chipsweep.workers.parse import EvaluateError

# asic-notes.md section 4 worked check: 5 nm, 8192 INT8 MACs, 16 MB SRAM, x64 LPDDR5X (DRAM priced apart)
WORKED = {"node_nm": 5, "n_mac": 8192, "clock_ghz": 1.0, "sram_mb": 16, "dram": "lpddr5x", "dram_bus_bits": 64,
          "dram_gb": 0, "precision": "int8"}


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.build(load_catalog())


@pytest.fixture(scope="module")
def k(ctx: Context) -> dict:
    return asic_constants(ctx)


def run(ctx: Context, *rows: dict, strict: bool = False) -> list[dict]:
    keys = sorted({key for r in rows for key in r})
    table = pa.table({key: pa.array([None if r.get(key) is None else str(r[key]) for r in rows], type=pa.string())
                      for key in keys})
    out, _ = evaluate_asic(table, ctx, strict=strict)
    return out.to_pylist()


def test_dies_per_wafer_reproduces_601_136_61_for_100_400_800_mm2(k: dict) -> None:
    dpw = asic.dies_per_wafer(np.array([100.0, 400.0, 800.0]), k)
    assert dpw.tolist() == [601.0, 136.0, 61.0]


def test_negative_binomial_yield_is_091_069_049_at_d0_01_alpha_3(k: dict) -> None:
    y = asic.defect_yield(np.array([100.0, 400.0, 800.0]), np.full(3, 0.1), np.zeros(3), k["yield_alpha"])
    assert np.round(y, 2).tolist() == [0.91, 0.69, 0.49]


def test_5nm_worked_design_reproduces_area_dies_yield_die_cost_and_unit_cost(ctx: Context) -> None:
    (r,) = run(ctx, WORKED)
    # area ~ 3.7 (MAC) + 6.7 (SRAM) + 6 (PHY) + 5 (misc) ~ 21 mm^2: within 2 % of 21
    assert r["die_area_mm2"] == pytest.approx(21.0, rel=0.02)
    x, kk = assemble_asic(_raw(ctx, WORKED), ctx)
    parts = asic.evaluate(x, kk)
    assert parts["area_mac_mm2"][0] == pytest.approx(3.7, abs=0.05)
    assert parts["area_sram_mm2"][0] == pytest.approx(6.7, abs=0.05)
    assert parts["area_phy_mm2"][0] == pytest.approx(6.0)
    # ~2,900 dies at 97.9 % yield: within 1 % and 0.001
    assert r["dies_per_wafer"] == pytest.approx(2900, rel=0.01)
    assert r["defect_yield"] == pytest.approx(0.979, abs=0.001)
    # die ~ $5.7 and unit ~ $11.5 (packaged, tested, DRAM apart): within 2 %
    assert r["die_cost_usd"] == pytest.approx(5.7, rel=0.02)
    assert r["unit_cost_usd"] == pytest.approx(11.5, rel=0.02)
    assert r["infeasible_reason"] == ""


def _raw(ctx: Context, row: dict) -> dict:
    """A one-row raw dict as a sweep worker would build it (choices as indices)."""
    raw = {"model_idx": np.array([-1])}
    for key, v in row.items():
        if key == "dram":
            raw[key] = np.array([float(DRAM_TYPES.index(v))])
        elif key == "precision":
            raw[key] = np.array([float(ASIC_PRECISIONS.index(v))])
        elif key == "model":
            raw["model_idx"] = np.array([ctx.models.index()[v]])
        else:
            raw[key] = np.array([np.nan if v is None else float(v)])
    return raw


@pytest.mark.parametrize("model", YIELD_MODELS)
def test_each_yield_model_follows_its_formula(ctx: Context, model: str) -> None:
    ad = 400.0 * 1.0 / 100.0  # 400 mm^2 at 1 defect/cm^2: 4 expected defects
    expected = {
        "negative_binomial": (1.0 + ad / 3.0) ** -3.0,
        "poisson": math.exp(-ad),
        "murphy": ((1.0 - math.exp(-ad)) / ad) ** 2,
        "seeds": math.exp(-math.sqrt(ad)),
    }[model]
    got = asic.defect_yield(np.array([400.0]), np.array([1.0]), np.array([float(YIELD_MODELS.index(model))]), 3.0)
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_yield_model_column_selects_the_model_per_row(ctx: Context) -> None:
    rows = [dict(WORKED, n_mac=400_000, yield_model=m) for m in YIELD_MODELS]
    out = run(ctx, *rows)
    area = out[0]["die_area_mm2"]
    ad = area / 100.0 * 0.10  # 5 nm D0 from the catalog: 0.10 per cm^2
    expected = [(1 + ad / 3) ** -3, math.exp(-ad), ((1 - math.exp(-ad)) / ad) ** 2, math.exp(-math.sqrt(ad))]
    assert [r["defect_yield"] for r in out] == pytest.approx(expected, rel=1e-9)
    assert [r["yield_model"] for r in out] == list(YIELD_MODELS)


def test_binomial_tile_yield_is_exact_for_few_spares_and_close_for_many() -> None:
    def exact(k: int, n: int, p: float) -> float:
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                            + j * math.log(p) + (n - j) * math.log1p(-p)) for j in range(k + 1))

    small = asic.binomial_cdf(np.array([0.0, 3.0, 10.0]), np.array([50.0, 100.0, 1000.0]), np.array([0.02, 0.05, 0.01]))
    assert small.tolist() == pytest.approx([exact(0, 50, 0.02), exact(3, 100, 0.05), exact(10, 1000, 0.01)], rel=1e-9)
    big = asic.binomial_cdf(np.array([100.0]), np.array([2000.0]), np.array([0.05]))  # normal approximation
    assert big[0] == pytest.approx(exact(100, 2000, 0.05), abs=0.01)


def test_design_past_the_reticle_without_redundancy_is_reported_not_dropped(ctx: Context) -> None:
    out = run(ctx, dict(WORKED, n_mac=2_000_000, case_id="big"), WORKED)
    big, ok = out
    assert big["case_id"] == "big"
    assert big["die_area_mm2"] > 858
    assert "exceeds the reticle limit 858 mm^2" in big["infeasible_reason"]
    assert "spare_tiles" in big["infeasible_reason"]
    assert math.isnan(big["unit_cost_usd"])
    assert ok["infeasible_reason"] == ""


def test_spare_tiles_make_a_wafer_scale_die_buildable_with_binomial_tile_yield(ctx: Context, k: dict) -> None:
    row = dict(WORKED, n_mac=2_000_000, tiles=1000, spare_tiles=64)
    (r,) = run(ctx, row)
    assert r["infeasible_reason"] == ""
    assert r["dies_per_wafer"] == 1
    assert "wafer-scale path" in r["notes"]
    # yield = wafer yield x NB(PHY + misc) x P[defective tiles <= 64] over 1064 tiles
    x, kk = assemble_asic(_raw(ctx, row), ctx)
    parts = asic.evaluate(x, kk)
    tiled = r["die_area_mm2"] - parts["area_phy_mm2"][0] - k["misc_area_mm2"]
    p_tile = 1 - math.exp(-tiled / 1064 / 100 * 0.10)
    rest = (1 + (parts["area_phy_mm2"][0] + k["misc_area_mm2"]) / 100 * 0.10 / 3) ** -3
    expected = k["wafer_yield"] * rest * asic.binomial_cdf(np.array([64.0]), np.array([1064.0]), np.array([p_tile]))[0]
    assert r["yield"] == pytest.approx(expected, rel=1e-12)


def test_spare_tiles_raise_the_yield_of_a_large_die(ctx: Context) -> None:
    plain, spared = run(ctx, dict(WORKED, n_mac=1_500_000), dict(WORKED, n_mac=1_500_000, tiles=600, spare_tiles=12))
    assert plain["die_area_mm2"] < 858
    assert plain["defect_yield"] < 0.6
    assert spared["defect_yield"] > 0.9


def test_precision_that_cannot_run_the_weights_is_reported(ctx: Context) -> None:
    (r,) = run(ctx, dict(WORKED, precision="int4", model="llama3.2_3b", weight_bits=8, dram_gb=None))
    # a bad cell: row, field, value and what is allowed (it was a reason beside fits = true and half the outputs)
    assert r["infeasible_reason"] == ("row 1: field 'weight_bits' = 8: an int4 design cannot run these weights; "
                                      "allowed: 4 or fewer (or a wider precision)")
    assert math.isnan(r["decode_tokens_per_s"]) and math.isnan(r["peak_tops"]) and r["fits"] is None


def test_node_outside_the_sourced_tables_is_reported_with_the_range(ctx: Context) -> None:
    (r,) = run(ctx, dict(WORKED, node_nm=28))
    assert r["infeasible_reason"].startswith("row 1: field 'node_nm' = 28.0: outside the sourced constant tables")
    assert r["infeasible_reason"].endswith("allowed: 3 to 16")
    assert math.isnan(r["die_area_mm2"]) and r["fits"] is None


def test_node_between_table_nodes_is_interpolated_and_says_so(ctx: Context, k: dict) -> None:
    r16, r12, r7 = run(ctx, dict(WORKED, node_nm=16), dict(WORKED, node_nm=12), dict(WORKED, node_nm=7))
    assert r7["die_area_mm2"] < r12["die_area_mm2"] < r16["die_area_mm2"]
    assert "interpolated" in r12["notes"] and "interpolated" not in r16["notes"]


def test_mac_count_from_published_tops_is_tops_over_two_clocks(ctx: Context) -> None:
    (r,) = run(ctx, {"node_nm": 16, "peak_tops": 26, "clock_ghz": 1.3, "precision": "int8", "dram": "none"})
    assert r["n_mac"] == pytest.approx(26e12 / (2 * 1.3e9))
    assert r["peak_tops"] == pytest.approx(26)
    assert "n_mac = peak_tops / (2 x clock_ghz)" in r["notes"]


def test_energy_per_token_of_a_dram_bound_decode_is_bytes_times_pj_per_bit(ctx: Context, k: dict) -> None:
    # asic-notes section 5: 1.7 GB/token at 5 pJ/bit (LPDDR5X) is 68 mJ/token; MAC energy is under 1 mJ
    row = dict(WORKED, sram_mb=0, dram_gb=None, params_b=3.4, layers=1, hidden=64, heads=1, vocab=1, weight_bits=4,
               quant_overhead=0, prompt_len=0, gen_len=1, batch=1)
    (r,) = run(ctx, row)
    t_step = 1.0 / r["decode_tokens_per_s"]
    leak = r["full_load_power_w"] * k["leakage_fraction"] / (1 + k["leakage_fraction"])  # W
    dram_j = 1.7e9 * 8 * 5e-12
    assert dram_j == pytest.approx(0.068)
    rest = r["energy_per_token_j"] - dram_j - leak * t_step  # MAC + SRAM + misc while computing
    assert 0 < rest < 0.002


def test_sram_costs_more_per_mb_at_3nm_than_at_5nm(ctx: Context) -> None:
    # asic-notes section 1: SRAM area is flat from N5 to N3E while the wafer costs more
    r5, r3 = run(ctx, dict(WORKED, n_mac=1024, sram_mb=256), dict(WORKED, n_mac=1024, sram_mb=256, node_nm=3))
    x5, kk = assemble_asic(_raw(ctx, dict(WORKED, n_mac=1024, sram_mb=256)), ctx)
    x3, _ = assemble_asic(_raw(ctx, dict(WORKED, n_mac=1024, sram_mb=256, node_nm=3)), ctx)
    assert asic.evaluate(x5, kk)["area_sram_mm2"][0] == pytest.approx(asic.evaluate(x3, kk)["area_sram_mm2"][0])
    assert r3["die_cost_usd"] > r5["die_cost_usd"] * 1.1


def test_blank_batch_is_the_largest_that_fits_a_fixed_dram(ctx: Context) -> None:
    base = dict(WORKED, model="llama3.2_3b", weight_bits=4, dram_gb=4, batch=None)
    (r,) = run(ctx, base)
    b = r["batch"]
    assert b >= 2
    fit, over = run(ctx, dict(base, batch=b), dict(base, batch=b + 1))
    assert fit["fits"] and fit["infeasible_reason"] == ""
    assert not over["fits"]
    assert "does not fit at batch" in over["infeasible_reason"]


def test_model_that_fits_no_batch_is_reported(ctx: Context) -> None:
    (r,) = run(ctx, dict(WORKED, model="llama3.1_8b", weight_bits=4, dram_gb=2, batch=None))
    assert r["fits"] is False
    assert "does not fit at any batch" in r["infeasible_reason"]


def test_dram_capacity_left_blank_is_sized_to_the_workload_and_priced(ctx: Context, k: dict) -> None:
    sized, none = run(ctx, dict(WORKED, model="llama3.2_3b", weight_bits=4, dram_gb=None, batch=1),
                      dict(WORKED, model="llama3.2_3b", weight_bits=4, dram_gb=0, batch=1))
    assert sized["dram_gb"] == pytest.approx(sized["mem_gb"] - 16e6 / 1e9)
    lpddr = k["dram_usd_per_gb"][DRAM_TYPES.index("lpddr5x")]
    assert lpddr == 4.0  # asic_constants.yaml unit_cost.lpddr_cost_per_GB
    assert sized["unit_cost_usd"] - 11.48 == pytest.approx(sized["dram_gb"] * lpddr, abs=0.02)
    assert not none["fits"]


def test_hbm_is_priced_at_trendforces_ratio_to_commodity_dram_not_at_the_lpddr_price(ctx: Context, k: dict) -> None:
    """An HBM design's bundled memory was priced at LPDDR's $4/GB, so an HBM3 stack looked no dearer per GB than a
    phone's LPDDR and HBM designs crowded the cost objective. TrendForce puts HBM at about five times DDR5 per unit
    (2024-05-06 press release; four to five times through 2025): HBM is priced at 5x the LPDDR price, and the row
    says the price is that estimate. The same capacity costs 5x; the die and package are the HBM design's own."""
    base = dict(WORKED, model="llama3.1_8b", weight_bits=8, dram_gb=24, batch=1, n_mac=65536)
    lp, hbm = run(ctx, dict(base, dram="lpddr5x", dram_bus_bits=1024), dict(base, dram="hbm3", dram_bus_bits=1024))
    price = {d: k["dram_usd_per_gb"][DRAM_TYPES.index(d)] for d in ("lpddr5x", "hbm3")}
    assert price["hbm3"] == pytest.approx(5 * price["lpddr5x"])
    chip_lp, chip_hbm = lp["unit_cost_usd"] - 24 * price["lpddr5x"], hbm["unit_cost_usd"] - 24 * price["hbm3"]
    assert chip_lp > 0 and chip_hbm > 0  # what is left is the die, its package and test
    assert hbm["unit_cost_usd"] - lp["unit_cost_usd"] >= 24 * 4 * price["lpddr5x"]  # the memory alone: $384 more
    assert "TrendForce" in hbm["notes"] and "TrendForce" not in lp["notes"]


def test_sram_only_design_runs_compute_bound_without_dram_energy(ctx: Context, k: dict) -> None:
    row = {"node_nm": 7, "n_mac": 16384, "sram_mb": 300, "dram": "none", "precision": "int8", "model": "gpt3_125m",
           "weight_bits": 8, "batch": 1, "prompt_len": 128, "gen_len": 128}
    (r,) = run(ctx, row)
    assert r["infeasible_reason"] == "" and r["fits"]
    assert "no DRAM" in r["notes"]
    # compute-bound: tokens/s = u_c x peak ops / FLOPs per token
    flops = 2 * 125e6  # ~2N; attention over 192 tokens of context adds ~3 %
    assert r["decode_tokens_per_s"] == pytest.approx(k["compute_fraction"] * 2 * 16384 * 1e9 / flops, rel=0.05)


def test_a_smaller_node_lowers_power_and_energy_per_token_for_the_same_design(ctx: Context, k: dict) -> None:
    # the catalog's energy per int8 MAC falls from 16 to 3 nm (0.22 -> 0.12 pJ); the misc block is one fixed
    # function whose gates toggle at the node's energy per operation, so the whole chip follows (it rose when the
    # misc block burnt the array's power density over a fixed area: 1.86 TOPS/W at 16 nm, 0.97 at 3 nm)
    nodes = (16, 12, 7, 5, 3)
    idle = run(ctx, *[dict(node_nm=n, n_mac=1024, sram_mb=8, dram="none", precision="int8") for n in nodes])
    tops_w = [r["tops_per_w"] for r in idle]
    assert tops_w == sorted(tops_w) and tops_w[-1] > 1.5 * tops_w[0]
    work = dict(n_mac=2048, sram_mb=8, dram="lpddr5x", dram_bus_bits=256, precision="int8", model="llama3.2_3b",
                weight_bits=8, batch=64, prompt_len=128, gen_len=128)
    j = [r["energy_per_token_j"] for r in run(ctx, *[dict(work, node_nm=n) for n in nodes])]
    assert j == sorted(j, reverse=True) and j[-1] < j[0]
    # at the reference node (5 nm) the misc power is its fitted share of the array's power density times its area
    design = dict(node_nm=5, n_mac=1024, sram_mb=8, dram="none", precision="int8")
    (r5,) = run(ctx, design)
    x, kk = assemble_asic(_raw(ctx, design), ctx)
    area_mac = asic.evaluate(x, kk)["area_mac_mm2"][0]
    p_mac = 1024 * 1e9 * asic.node_values(np.array([5.0]), kk)[0][0] * 1e-12  # W: every int8 MAC busy at 1 GHz
    p_misc = p_mac * k["misc_power_density_ratio"] * k["misc_area_mm2"] / area_mac
    assert r5["full_load_power_w"] == pytest.approx((p_mac + p_misc) * (1 + k["leakage_fraction"]), rel=1e-6)


def test_energy_per_token_counts_the_prompt_as_catalog_chips_do(ctx: Context) -> None:
    # 12 nm, 2048 int4 MACs at 1.5 GHz, 1024-bit LPDDR5X, Llama 3 8B in 4 bits, one user: the prefill is
    # compute-bound (17.9 s for 4,096 tokens), decode DRAM-bound; pareto_edge compares this with a catalog
    # chip's serving point, whose J/token includes the prompt (its speed per user is the decode rate, 1 / TPOT,
    # TTFT apart, as an ASIC's decode_tokens_per_s)
    base = dict(node_nm=12, n_mac=2048, clock_ghz=1.5, dram="lpddr5x", dram_bus_bits=1024, precision="int4",
                model="llama3_8b", weight_bits=4, batch=1, gen_len=256)
    none, short, long_, only = run(ctx, dict(base, prompt_len=0), dict(base, prompt_len=512),
                                   dict(base, prompt_len=4096), dict(base, prompt_len=512, gen_len=0))
    assert none["energy_per_token_j"] == pytest.approx(none["decode_energy_per_token_j"])
    for r in (short, long_):
        g = 256
        prompt_j = (r["energy_per_token_j"] - r["decode_energy_per_token_j"]) * g  # J the prefill took
        assert prompt_j > 0
        # the prefill's average power is between the array's idle leakage and the chip's full load
        assert 0 < prompt_j / r["ttft_s"] < r["full_load_power_w"]
    assert long_["ttft_s"] > short["ttft_s"] > none["ttft_s"] == 0
    assert long_["energy_per_token_j"] > short["energy_per_token_j"] > none["energy_per_token_j"]
    # a prefill-only workload generates nothing: no decode speed or energy per generated token
    assert only["ttft_s"] == pytest.approx(short["ttft_s"])
    for col in ("decode_tokens_per_s", "energy_per_token_j", "power_w"):
        assert only[col] is None or math.isnan(only[col]), col


def test_a_dram_bus_is_a_whole_number_of_channels_or_stacks_and_the_clock_a_shipping_one(ctx: Context) -> None:
    # a zero-bit LPDDR5X bus ran at 0 tokens/s and infinite J/token with fits=True and no reason
    base = dict(node_nm=7, n_mac=1024, precision="int8", model="qwen2_1.5b", batch=1)
    zero, eight, odd, hbm64, hbm2k, fast = run(
        ctx, dict(base, dram="lpddr5x", dram_bus_bits=0), dict(base, dram="lpddr5x", dram_bus_bits=8),
        dict(base, dram="lpddr5x", dram_bus_bits=48), dict(base, dram="hbm3", dram_bus_bits=64),
        dict(base, dram="hbm3", dram_bus_bits=2048), dict(base, dram="lpddr5x", dram_bus_bits=64, clock_ghz=99))
    for r in (zero, eight):
        assert "field 'dram_bus_bits'" in r["infeasible_reason"] and "multiples of 16" in r["infeasible_reason"]
    assert "multiples of 1024" in hbm64["infeasible_reason"]
    assert odd["infeasible_reason"] == hbm2k["infeasible_reason"] == ""  # three channels; two stacks
    assert odd["decode_tokens_per_s"] > 0 and hbm2k["decode_tokens_per_s"] > 0
    assert "field 'clock_ghz'" in fast["infeasible_reason"] and "6.2" in fast["infeasible_reason"]
    with pytest.raises(EvaluateError) as err:
        run(ctx, dict(base, dram="lpddr5x", dram_bus_bits=0), strict=True)
    assert (err.value.field, err.value.value) == ("dram_bus_bits", 0)


def test_a_strict_refusal_of_a_design_that_does_not_fit_names_field_value_and_allowed(ctx: Context) -> None:
    # the memory refusal had field, value and allowed None (every other refusal names them)
    with pytest.raises(EvaluateError) as err:
        run(ctx, dict(node_nm=7, n_mac=8192, dram="lpddr5x", dram_bus_bits=128, model="llama3_70b", dram_gb=8, batch=1),
            strict=True)
    e = err.value
    assert (e.field, e.value) == ("batch", 1)
    assert "does not fit at batch 1" in e.allowed and "70.84 GB needed > 8.000 GB" in e.allowed


def test_names_an_asic_user_reaches_for_get_a_hint_not_silence() -> None:
    import warnings

    import chipsweep

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chipsweep.evaluate([dict(node_nm=7, n_mac=1024, dram_type="lpddr5x", dram_bus_bits=64, weight_precision=4,
                                 model="qwen2_1.5b")], kind="asic")
    said = " ".join(str(w.message) for w in caught)
    assert "'dram_type'" in said and "did you mean dram?" in said
    assert "'weight_precision'" in said and "did you mean weight_bits" in said


def test_gpu_arch_scales_full_load_power_by_the_fitted_factor(ctx: Context, k: dict) -> None:
    npu, gpu = run(ctx, WORKED, dict(WORKED, arch="gpu"))
    assert gpu["full_load_power_w"] == pytest.approx(npu["full_load_power_w"] * k["gpu_power_factor"])
    assert gpu["tops_per_w"] == pytest.approx(npu["tops_per_w"] / k["gpu_power_factor"])


def test_sweep_raw_path_gives_the_same_numbers_as_evaluate(ctx: Context) -> None:
    row = dict(WORKED, model="llama3.2_3b", weight_bits=4, dram_gb=None, batch=2, prompt_len=256, gen_len=64)
    (r,) = run(ctx, row)
    x, kk = assemble_asic(_raw(ctx, row), ctx)
    out = asic.evaluate(x, kk)
    for name in ("die_area_mm2", "unit_cost_usd", "tops_per_w", "decode_tokens_per_s", "ttft_s", "energy_per_token_j"):
        assert out[name][0] == pytest.approx(r[name], rel=1e-12)


def test_bad_cells_stay_on_their_row_and_strict_mode_refuses(ctx: Context) -> None:
    out = run(ctx, dict(WORKED, dram="ddr9"), WORKED)
    assert "field 'dram' = 'ddr9'" in out[0]["infeasible_reason"] and "lpddr5x" in out[0]["infeasible_reason"]
    assert out[1]["infeasible_reason"] == "" and out[1]["die_area_mm2"] > 0
    with pytest.raises(EvaluateError, match="dram"):
        run(ctx, dict(WORKED, dram="ddr9"), WORKED, strict=True)
    with pytest.raises(EvaluateError, match="reticle"):
        run(ctx, dict(WORKED, n_mac=2_000_000), strict=True)


def test_catalog_gather_path_equals_the_general_path(ctx: Context) -> None:
    from chipsweep.workers.parse import RowErrors

    rng = np.random.default_rng(2)
    n = 500
    raw = {"model_idx": rng.integers(-1, len(ctx.models.ids), n), "node_nm": rng.choice([3.0, 5.0, 12.0], n),
           "n_mac": rng.choice([1024.0, 65536.0], n), "dram": rng.integers(0, len(DRAM_TYPES), n).astype(float),
           "dram_bus_bits": rng.choice([64.0, 128.0], n), "precision": rng.integers(0, 3, n).astype(float),
           "batch": rng.choice([1.0, np.nan], n), "sram_mb": rng.choice([2.0, 64.0], n)}
    fast_x, _ = assemble_asic(raw, ctx)
    slow_x, _ = assemble_asic(raw, ctx, RowErrors(n))
    assert set(fast_x) == set(slow_x)
    for key in fast_x:
        np.testing.assert_array_equal(np.asarray(fast_x[key], dtype=np.float64), np.asarray(slow_x[key], dtype=np.float64), err_msg=key)


def test_many_spares_use_the_normal_approximation_and_say_so(ctx: Context, k: dict) -> None:
    # Cerebras-style: ~7 % spare tiles on a wafer-scale array (asic-notes section 3)
    (r,) = run(ctx, dict(WORKED, n_mac=2_000_000, tiles=20_000, spare_tiles=1_400))
    assert "normal approximation" in r["notes"] and r["dies_per_wafer"] == 1
    rest = r["yield"] / k["wafer_yield"]
    assert 0.97 < rest < 1.0  # ~1.4 expected tile defects against 1,400 spares: only the PHY/misc area can fail


def test_a_batch_of_moe_decodes_reads_the_experts_its_tokens_touch_not_one_tokens_share(ctx: Context) -> None:
    """A decode step of B sequences on a mixture of experts reads every expert one of its B tokens picks: of E experts
    at top-k, 1 - (1 - k/E)^B of them (Fedus et al. 2022; the serving core's `_touched`). The ASIC read one token's
    share (k/E) whatever the batch, so a batch of 64 on Mixtral 8x7B decoded 2.5x too fast. Mixtral's published
    shapes (32 layers, h 4096, 8 experts of 3 x 4096 x 14336, top-2, GQA 8 x 128, vocab 32000): routed experts
    45.1B weights, the rest a token reads ~1.47B. DRAM-bound with no SRAM and a 2-token context, a step of 64 reads
    (1.47 + 45.1 x (1 - 0.75^64)) / (1.47 + 45.1 x 0.25) = 3.65x the bytes of a step of one."""
    expert = 3 * 4096 * 14336 * 8 * 32
    dense = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 4096 * 8) + 32000 * 4096
    want = (dense + expert * (1 - 0.75 ** 64)) / (dense + expert * 0.25)
    base = dict(WORKED, model="mixtral_8x7b", n_mac=65536, sram_mb=0, dram_bus_bits=256, dram_gb=None, precision="int4", weight_bits=4,
                prompt_len=1, gen_len=2)
    one, many = run(ctx, dict(base, batch=1), dict(base, batch=64))
    assert one["decode_tokens_per_s"] / many["decode_tokens_per_s"] == pytest.approx(want, rel=0.03)
    # a dense model's step reads its weights whatever the batch (a 2-token context adds next to nothing)
    d1, d64 = run(ctx, dict(base, model="llama3_8b", batch=1), dict(base, model="llama3_8b", batch=64))
    assert d1["decode_tokens_per_s"] / d64["decode_tokens_per_s"] == pytest.approx(1.0, rel=0.03)


def test_an_hbm_design_holds_at_least_a_stack_of_capacity_per_stack_of_bus(ctx: Context, k: dict) -> None:
    """An HBM stack comes in 4 GB at least (JEDEC JESD238: 4-high x 8 Gb to 16-high x 32 Gb). A capacity sized to the
    workload bought 8 stacks' bandwidth with 4.3 GB behind them (Llama 3 8B at 4 bits: $86 of HBM on a $627 unit);
    it is now 32 GB, priced as such. A capacity given below the stacks' least is refused, naming dram_gb; LPDDR has
    no floor here."""
    base = dict(WORKED, model="llama3_8b", weight_bits=4, precision="int4", n_mac=65536, batch=1, dram="hbm3",
                dram_bus_bits=8192)
    (sized,) = run(ctx, dict(base, dram_gb=None))
    assert sized["dram_gb"] == pytest.approx(32.0)
    price = k["dram_usd_per_gb"][DRAM_TYPES.index("hbm3")]
    assert sized["unit_cost_usd"] > 32 * price
    lp = run(ctx, dict(base, dram="lpddr5x", dram_bus_bits=1024, dram_gb=None))[0]
    assert lp["dram_gb"] < 8  # the workload's own bytes
    with pytest.raises(EvaluateError) as err:
        run(ctx, dict(base, dram_gb=8), strict=True)
    assert "dram_gb" in str(err.value) and "a 8192-bit hbm3 bus is 8 stack(s)" in str(err.value)
    assert "allowed: at least 32 GB" in str(err.value)


def test_a_clock_beyond_the_measured_silicon_says_its_energy_is_a_1_ghz_designs(ctx: Context) -> None:
    """The energy per MAC and the MAC area come from silicon clocked at 0.5-1.5 GHz (asic-notes sec. 8): a 3 GHz design
    takes them unchanged, so its TOPS/W doubles for free (a faster clock needs a higher voltage, which the model does
    not charge). The row says so; a design inside the range does not."""
    fast, base = run(ctx, dict(WORKED, model="llama3.2_3b", weight_bits=4, batch=1, clock_ghz=3.0),
                     dict(WORKED, model="llama3.2_3b", weight_bits=4, batch=1, clock_ghz=1.5))
    assert "clock above the 0.5-1.5 GHz" in fast["notes"] and "clock above" not in base["notes"]
    assert fast["tops_per_w"] > base["tops_per_w"]  # what the note warns of


def test_a_design_holds_no_more_dram_than_its_bus_interfaces_come_in():
    """An LPDDR5X channel (16 bits) comes in at most 8 GB (the catalog's densest parts: a 64 GB Snapdragon X Elite
    on 8 channels, a 512 GB M3 Ultra on 64), an HBM3 stack at most 64 GB (JESD238: 32 Gb dies, 16-high). A design
    once sized its DRAM to the workload without a ceiling: Llama 3 405B's 212.5 GB (4-bit weights) on one 16-bit
    LPDDR5X channel, or on one HBM3 stack. It is refused now, naming the bus and the width that would hold it; a
    given dram_gb above the bus's ceiling is a bad cell; a bus wide enough runs."""
    import warnings

    import chipsweep

    base = dict(node_nm=5, n_mac=16384, clock_ghz=1, sram_mb=32, dram="lpddr5x", dram_bus_bits=128, precision="int8",
                weight_bits=4, batch=1, prompt_len=512, gen_len=128, model="llama3_405b")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one, hbm, wide, given = chipsweep.evaluate(
            [dict(base, dram_bus_bits=16), dict(base, dram="hbm3", dram_bus_bits=1024), dict(base, dram_bus_bits=512),
             dict(base, model="llama3.1_8b", dram_gb=500)], kind="asic").to_pylist()
    assert not one["fits"] and "a 16-bit lpddr5x bus holds at most 8 GB" in one["infeasible_reason"]
    assert "dram_bus_bits >= 432" in one["infeasible_reason"]
    assert not hbm["fits"] and "a 1024-bit hbm3 bus holds at most 64 GB" in hbm["infeasible_reason"]
    assert wide["fits"] and wide["infeasible_reason"] == "" and 200 < wide["dram_gb"] <= 256
    assert "field 'dram_gb' = 500.0" in given["infeasible_reason"] and "allowed: at most 64 GB" in given["infeasible_reason"]


def test_a_design_without_a_workload_says_it_is_the_design_alone(ctx: Context) -> None:
    """A row with a blank model evaluates the design (area, yield, unit cost, peak, power) and leaves speed, energy
    per token and `fits` blank: its notes say so (a contract audit read its empty `infeasible_reason` and blank `fits`
    as a feasible row of unknown speed)."""
    alone, loaded = run(ctx, WORKED, {**WORKED, "model": "llama3_8b", "weight_bits": 4, "dram_gb": 8})
    assert "no workload (no model" in alone["notes"] and alone["unit_cost_usd"] > 0
    assert alone["decode_tokens_per_s"] is None or math.isnan(alone["decode_tokens_per_s"])
    assert "no workload" not in (loaded["notes"] or "") and loaded["decode_tokens_per_s"] > 0
