"""Behaviour of the training core and the `evaluate` path (formulas, layout search, systems, bad input)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.workers import training
from chipsweep.workers.context import Context
from chipsweep.workers.layout import CANDIDATES
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.training_rows import evaluate_training, run_training, training_inputs
from chipsweep.workers.transformer import Shapes, model_flops_per_seq, recompute_flops_per_seq, total_params


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.build(load_catalog(use_env=False))


def table(**cols: list[object]) -> pa.Table:
    return pa.table({k: pa.array([None if v is None else str(v) for v in vals], type=pa.string()) for k, vals in cols.items()})


def run(ctx: Context, **cols: list[object]) -> dict[str, list[object]]:
    out, _ = evaluate_training(table(**cols), ctx)
    return out.to_pydict()


def gpt(L: float, h: float, a: float, s: float = 2048, V: float = 51200) -> Shapes:
    one = np.array(1.0)
    return Shapes(layers=np.array(L), hidden=np.array(h), heads=np.array(a), kv_heads=np.array(a),
                  head_dim=np.array(h / a), ffn=np.array(4 * h), vocab=np.array(V), seq=np.array(s),
                  n_proj=np.array(2.0), learned_pos=one, tied=one)


def test_parameter_count_follows_narayanan_eq2_for_gpt3_175b():
    m = gpt(96, 12288, 96)
    L, h, V, s = 96, 12288, 51200, 2048
    eq2 = 12 * L * h**2 * (1 + 13 / (12 * h) + (V + s) / (12 * L * h))
    assert abs(float(total_params(m)) / eq2 - 1) < 1e-3
    assert abs(float(total_params(m)) / 174.6e9 - 1) < 0.01


def test_flops_per_iteration_follow_narayanan_eq3_with_and_without_recompute():
    L, h, s, V, B = 96, 12288, 2048, 51200, 1536
    m = gpt(L, h, 96)
    model = float(model_flops_per_seq(m, causal=False)) * B
    full = model + float(recompute_flops_per_seq(m, np.array(2), causal=False)) * B
    assert abs(model / (72 * B * s * L * h**2 * (1 + s / (6 * h) + V / (12 * L * h))) - 1) < 1e-9
    assert abs(full / (96 * B * s * L * h**2 * (1 + s / (6 * h) + V / (16 * L * h))) - 1) < 1e-9


def test_selective_recompute_reruns_the_attention_core_once_korthikanti_sec5_causal_in_time_mfu_and_hfu(ctx):
    """Korthikanti sec. 5: selective recompute re-runs QK^T, softmax and x V once. Model FLOPs count causal
    attention (s^2/2, as inference does); HFU adds exactly that one forward pass, and the time charges it."""
    L, h, s, V, B = 96, 12288, 2048, 51200, 64
    m = gpt(L, h, 96)
    causal_model = float(model_flops_per_seq(m)) * B
    # 72 B s L h^2 (1 + s/12h + V/12Lh): eq. 3's model FLOPs with the attention term halved (causal)
    assert causal_model == pytest.approx(72 * B * s * L * h**2 * (1 + s / (12 * h) + V / (12 * L * h)), rel=1e-9)
    selective = float(recompute_flops_per_seq(m, np.array(1))) * B
    assert selective == pytest.approx(L * 2 * s * s * h * B, rel=1e-9)  # one causal forward of the attention core
    d = run(ctx, model=["gpt3_175b"] * 2, chip=["nvidia_a100_sxm_80gb"] * 2, n_chips=[64] * 2, global_batch=[64] * 2,
            tp=[8] * 2, pp=[8] * 2, micro_batch=[1] * 2, interleave=[1] * 2, recompute=["none", "selective"],
            zero_stage=[0] * 2, framework=["megatron_2022"] * 2, **{"chip.memory_gb": [1e4] * 2})
    mfu, hfu = d["mfu"], d["hfu"]
    assert mfu[0] == pytest.approx(hfu[0], rel=1e-9)  # no recompute: HFU = MFU
    att_share = (2 * s * s * h) / (2 * s * 12 * h * h * 3 + 3 * 2 * s * s * h)  # one attention forward / model FLOPs per layer
    assert hfu[1] * d["step_time_s"][1] / (mfu[1] * d["step_time_s"][1]) == pytest.approx(1 + att_share, rel=0.02)


def test_pipeline_bubble_is_p_minus_1_over_v_m_when_links_are_free(ctx):
    base = dict(model=["megatron_22b"] * 3, chip=["nvidia_a100_sxm_80gb"] * 3, global_batch=[64] * 3, tp=[8] * 3,
                micro_batch=[1] * 3, recompute=["full"] * 3, zero_stage=[0] * 3,
                **{"chip.scale_up_gb_s": [1e9] * 3, "chip.scale_out_gbit_s": [1e10] * 3, "chip.memory_gb": [1e4] * 3})
    cols = {**base, "pp": [1, 8, 8], "n_chips": [8, 64, 64], "interleave": [1, 1, 2], "vocab": [1024] * 3}
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in cols.items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(3))
    # free links: no bandwidth limit (the what-ifs above) and no per-message latency or per-layer launch overhead;
    # the logits make this approximate, the bubble dominates the difference
    cal = {**ctx.cal_for(cidx, x["framework"]), "up_latency_s": 0.0, "out_latency_s": 0.0, "layer_overhead_s": 0.0}
    t1, t8, t8v2 = run_training(x, cal)["step_time_s"]
    m = 64
    assert t8 * 8 / t1 == pytest.approx((m + 7) / m, rel=0.03)
    assert t8v2 * 8 / t1 == pytest.approx((m + 7 / 2) / m, rel=0.03)


def test_zero_stages_shrink_model_state_memory(ctx):
    d = run(ctx, model=["llama2_70b"] * 4, chip=["nvidia_h100_sxm"] * 4, n_chips=[64] * 4, global_batch=[512] * 4,
            tp=[8] * 4, pp=[1] * 4, micro_batch=[1] * 4, recompute=["full"] * 4, zero_stage=[0, 1, 2, 3])
    mem = d["mem_per_chip_gb"]
    assert mem[0] > mem[1] > mem[2] > mem[3]


def test_layout_search_returns_the_fastest_feasible_layout(ctx):
    common = dict(model=["llama2_13b"], chip=["nvidia_a100_sxm_80gb"], n_chips=[32], global_batch=[256])
    best = run(ctx, **common)
    assert best["infeasible_reason"] == [""]
    # brute force every candidate as explicit rows
    rows = [(t, p, mb, v, r, z) for t in CANDIDATES["tp"] for p in CANDIDATES["pp"] for mb in CANDIDATES["micro_batch"]
            for v in CANDIDATES["interleave"] for r in ("none", "selective", "full") for z in (0, 1, 2, 3)
            if t * p <= 32 and 32 % (t * p) == 0]
    n = len(rows)
    d = run(ctx, model=["llama2_13b"] * n, chip=["nvidia_a100_sxm_80gb"] * n, n_chips=[32] * n, global_batch=[256] * n,
            tp=[r[0] for r in rows], pp=[r[1] for r in rows], micro_batch=[r[2] for r in rows],
            interleave=[r[3] for r in rows], recompute=[r[4] for r in rows], zero_stage=[r[5] for r in rows])
    feasible = [t for t, reason in zip(d["step_time_s"], d["infeasible_reason"], strict=True) if reason == ""]
    assert best["step_time_s"][0] == pytest.approx(min(feasible), rel=1e-9)


def test_invalid_layouts_are_masked_with_readable_reasons(ctx):
    d = run(ctx, model=["gpt3_175b"] * 4, chip=["nvidia_a100_sxm_80gb"] * 4, n_chips=[64, 64, 60, 64],
            global_batch=[1536, 1536, 1536, 2], tp=[7, 8, 8, 8], pp=[1, 5, 1, 1], micro_batch=[1, 1, 1, 3],
            recompute=["full"] * 4, zero_stage=[1] * 4, framework=["megatron_2022"] * 4)
    reasons = d["infeasible_reason"]
    # a layout the row gives is a bad cell: row, field, value and what is allowed (as every other bad input)
    assert reasons[0].startswith("row 1: field 'tp' = 7: tp must divide the model's 96 attention heads")
    assert "allowed: 1, 2, 4, 8, 16, 32" in reasons[0]
    assert "field 'pp' = 5: tp x pp must divide n_chips = 64" in reasons[1]
    assert reasons[2].startswith("row 3: field 'tp' = 8: tp x pp must divide n_chips = 60")
    assert reasons[3].startswith("row 4: field 'micro_batch' = 3: allowed: 1 to global_batch = 2")
    assert all(t is None or t != t for t in d["step_time_s"])  # no time for a layout that cannot run
    # the even split of Megatron 2022: 96 layers over 5 stages (on 80 chips, which tp x pp divides)
    (r,) = run(ctx, model=["gpt3_175b"], chip=["nvidia_a100_sxm_80gb"], n_chips=[80], global_batch=[1536], tp=[8],
               pp=[5], micro_batch=[1], recompute=["full"], zero_stage=[1], framework=["megatron_2022"])["infeasible_reason"]
    assert r.startswith("row 1: field 'pp' = 5: layers not divisible by pp*interleave") and "(96 layers)" in r


def test_a_given_dp_that_does_not_make_the_chip_count_is_refused_not_rewritten(ctx):
    """tp 8 x pp 4 x dp 32 needs 1,024 chips: on 512 the row is refused naming dp and the one value that fits (it was
    rewritten to dp 16 with a 47.6-day training time beside NaN step time and the reason 'n_chips not divisible')."""
    d = run(ctx, model=["llama3_70b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[512, 512], global_batch=[1024] * 2,
            tokens=[2e12] * 2, tp=[8, 8], pp=[4, 4], dp=[32, 16])
    assert d["infeasible_reason"][0] == ("row 1: field 'dp' = 32: tp x pp x cp x dp must equal n_chips = 512; "
                                         "allowed: 16 (or blank)")
    assert d["time_to_train_days"][0] != d["time_to_train_days"][0]  # NaN
    assert d["infeasible_reason"][1] == "" and d["dp"][1] == 16 and d["time_to_train_days"][1] > 0


def test_memory_infeasibility_names_the_sizes(ctx):
    d = run(ctx, model=["gpt3_175b"], chip=["nvidia_a100_sxm_80gb"], n_chips=[8], global_batch=[8], tp=[8], pp=[1],
            micro_batch=[1], recompute=["none"], zero_stage=[0])
    assert d["fits"] == [False]
    assert "does not fit in memory" in d["infeasible_reason"][0] and "GB per chip >" in d["infeasible_reason"][0]


def test_cerebras_cs2_runs_a_trillion_parameter_model_by_weight_streaming(ctx):
    d = run(ctx, model=["megatron_1t", "megatron_1t"], chip=["cerebras_wse2_cs2"] * 2, n_chips=[16, 16],
            global_batch=[1024, 1024], recompute=["full", "full"], **{"chip.peak_tflops_bf16": [None, 7500]})
    assert d["fits"] == [True, True]
    assert d["tp"] == [1, 1] and d["pp"] == [1, 1] and d["dp"] == [16, 16]
    # WSE-2 has no published FLOP/s: the row says so instead of inventing one ...
    assert "peak FLOP/s not published" in d["infeasible_reason"][0]
    # ... and a what-if peak gives a time bounded by compute or by the MemoryX weight stream
    assert d["infeasible_reason"][1] == "" and d["step_time_s"][1] > 0


def test_a_weight_streaming_system_streams_the_model_once_per_micro_batch_it_holds(ctx):
    """A CS-3 holds the activations of one micro-batch (the memory check) while the weights stream through it layer by
    layer, forward and backward, and the gradients stream out: a step of m micro-batches streams the model m times.
    The step streamed it once whatever m, so 4 CS-3 trained Llama 3 8B at 5.9M tokens/s (0.72 s per 512-sequence
    step at micro-batch 1: 128 micro-batches per system), 2.5x 256 H100s. Streamed once per micro-batch, at the
    catalog's 150 GB/s MemoryX link: 3 x 8.03B x 2 bytes x m / 150 GB/s per step."""
    n = 8.03e9  # Llama 3 8B (the catalog's parameter count, within 0.1 %)
    d = run(ctx, model=["llama3_8b"] * 3, chip=["cerebras_wse3_cs3"] * 3, n_chips=[4] * 3, global_batch=[512] * 3,
            micro_batch=[1, 8, None], recompute=["full"] * 3, tp=[1] * 3, pp=[1] * 3)
    assert d["infeasible_reason"][:2] == ["", ""]
    for i, m in enumerate((128, 16)):  # micro-batches per system per step
        assert d["step_time_s"][i] == pytest.approx(3 * n * 2 * m / 150e9, rel=0.01)
    # the search weighs holding more activations against streaming fewer times: never the 0.72 s of streaming once
    assert d["fits"][2] and d["step_time_s"][2] > 3 * n * 2 / 150e9 * 4


def test_dojo_tile_holds_weights_in_its_external_tier_and_d1_alone_cannot(ctx):
    d = run(ctx, model=["gpt3_2.7b", "gpt3_2.7b", "gpt3_2.7b", "llama2_13b"],
            chip=["tesla_dojo_training_tile", "tesla_dojo_training_tile", "tesla_dojo_d1", "tesla_dojo_training_tile"],
            n_chips=[120] * 4, global_batch=[1200] * 4, **{"chip.external_memory_gb_s": [None, 2000, None, 2000]})
    # the HBM behind the interface processors has no published bandwidth: the row names the field ...
    assert "set chip.external_memory_gb_s" in d["infeasible_reason"][0]
    # ... and with a what-if bandwidth the 2.7B model trains from the tile's 11 GB SRAM + external tier
    assert d["fits"][1] is True and d["infeasible_reason"][1] == "" and d["step_time_s"][1] > 0
    # a single D1 die (442 MB SRAM, no DRAM) cannot hold it
    assert d["fits"][2] is False
    # 13B x 18 bytes of weights and Adam state exceed the tile's ~117 GB external tier
    assert d["fits"][3] is False and "in the external tier (limit 117.0 GB)" in d["infeasible_reason"][3]


def test_azure_2020_cluster_preset_supplies_chip_count_and_network(ctx):
    d = run(ctx, model=["gpt3_175b", "gpt3_175b"], cluster=["azure_openai_2020"] * 2, global_batch=[1536, 1536],
            tokens=[300e9, 300e9], tp=[8, 8], pp=[16, 16], micro_batch=[1, 1], recompute=["full", "full"], zero_stage=[1, 1],
            n_chips=[None, 1024])
    assert d["dp"][1] == 8 and d["infeasible_reason"][1] == ""
    # 10,000 chips is not a multiple of 8 x 16: the preset's own size is refused, naming the layout that does not fit
    assert d["infeasible_reason"][0].startswith("row 1: field 'pp' = 16: tp x pp must divide n_chips = 10000")
    assert 10 < d["time_to_train_days"][1] < 400 and d["cost_usd"][1] > 0


def test_a_cluster_preset_refuses_another_chip_and_says_when_it_is_several_of_itself(ctx):
    """A preset is built of one chip: a row that names it and another chip ran on that other chip without a word; it
    is refused, naming the preset's chip. More chips than the preset holds are several of it (NVL72 racks, TPU pods
    over the data-centre network, as multislice training runs them): answered, and the notes say so."""
    d = run(ctx, model=["llama3_70b"] * 3, cluster=["google_tpu_v5p_pod"] * 3, global_batch=[1024] * 3,
            chip=[None, "nvidia_h100_sxm", None], n_chips=[17_920, 1024, 1024])
    assert "field 'chip' = 'nvidia_h100_sxm': cluster google_tpu_v5p_pod is built of google_tpu_v5p; allowed: " \
        "google_tpu_v5p or blank" in d["infeasible_reason"][1]
    several = "n_chips above the cluster preset's own size"
    assert d["infeasible_reason"][0] == "" and several in d["notes"][0]
    assert d["infeasible_reason"][2] == "" and d["chip"][2] == "google_tpu_v5p" and several not in d["notes"][2]


def test_non_nvidia_chips_evaluate(ctx):
    chips = ["iluvatar_corex_bi100", "huawei_ascend_910b", "intel_gaudi3", "amd_mi300x", "google_tpu_v5p", "cambricon_mlu370_x8"]
    n = len(chips)
    d = run(ctx, model=["llama2_7b"] * n, chip=chips, n_chips=[64] * n, global_batch=[512] * n)
    r = d["infeasible_reason"]
    assert all(reason == "" for i, reason in enumerate(r) if i != 1), r
    # the Ascend 910B has no agreed memory bandwidth: the row says which field to supply
    assert "memory_bandwidth_gb_s not published" in r[1]
    assert all(0.05 < m < 0.8 for i, m in enumerate(d["mfu"]) if i != 1)


def test_what_if_price_override_scales_cost(ctx):
    base = dict(model=["llama2_7b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[64] * 2, global_batch=[512] * 2,
                tp=[1, 1], pp=[1, 1], micro_batch=[1, 1], recompute=["selective"] * 2, zero_stage=[1, 1])
    d = run(ctx, **base, **{"chip.usd_per_hour": [None, 3.8]})
    assert d["cost_usd"][1] == pytest.approx(d["cost_usd"][0] * 2, rel=1e-6)  # catalog: 1.90 (low end)


def test_bad_rows_are_reported_and_the_other_rows_still_run(ctx):
    d = run(ctx, model=["gpt5_10t", "llama2_7b", "llama2_7b", "llama2_7b", "llama2_7b"],
            chip=["nvidia_h100_sxm", "nvidia_h101", "nvidia_h100_sxm", "nvidia_h100_sxm", "nvidia_h100_sxm"],
            n_chips=[8, 8, -4, "eight", 8], global_batch=[64] * 5)
    r = d["infeasible_reason"]
    assert "row 1: field 'model' = 'gpt5_10t': unknown model id" in r[0]
    assert "row 2: field 'chip' = 'nvidia_h101': unknown chip id; did you mean " in r[1] and "nvidia_h100_sxm" in r[1]
    # an id that a catalog id extends comes first (nvidia_b200 -> nvidia_b200_hgx, not the nearer spelling gh200)
    (b200,) = run(ctx, model=["llama2_7b"], chip=["nvidia_b200"], n_chips=[8], global_batch=[64])["infeasible_reason"]
    assert "did you mean nvidia_b200_hgx," in b200
    assert "row 3: field 'n_chips' = '-4': allowed: an integer >= 1" in r[2]
    assert "row 4: field 'n_chips' = 'eight': allowed: an integer >= 1" in r[3]
    assert r[4] == "" and d["step_time_s"][4] > 0


def _cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "service", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_evaluate_cli_writes_csv_and_parquet_and_strict_refuses_bad_files(tmp_path: Path):
    src = tmp_path / "in.csv"
    src.write_text("case_id,model,chip,n_chips,global_batch\na,llama2_7b,nvidia_h100_sxm,64,512\nb,llama2_7b,nvidia_h100_sxm,0,512\n")
    res = _cli("evaluate", "--kind", "training", str(src), "-o", str(tmp_path / "out.parquet"))
    assert res.returncode == 0, res.stderr
    assert "row 2: field 'n_chips' = '0'" in res.stderr
    import pyarrow.parquet as pq

    out = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert out["case_id"] == ["a", "b"] and out["infeasible_reason"][0] == "" and out["tp"][0] >= 1
    res = _cli("evaluate", "--kind", "training", str(src), "-o", "-", "--strict")
    assert res.returncode == 2 and "row 2: field 'n_chips'" in res.stderr
    res = _cli("evaluate", "--kind", "training", "-", "-o", "-", stdin=src.read_text())
    assert res.returncode == 0 and res.stdout.startswith('"case_id"')
    # strict names every bad row at once, the layout errors of rows that parsed and a near-miss column too (it
    # stopped at the parse errors, and the misspelt column was said only without --strict)
    both = tmp_path / "both.csv"
    both.write_text("model,chip,n_chips,global_batch,tp,precison\nllama2_7b,nvidia_h100_sxm,64,512,3,bf16\n"
                    "llama2_7b,nvidia_h100_sxm,0,512,1,bf16\n")
    res = _cli("evaluate", "--kind", "training", str(both), "-o", "-", "--strict")
    assert res.returncode == 2 and "row 1: field 'tp' = 3" in res.stderr and "row 2: field 'n_chips'" in res.stderr
    assert "column 'precison' is not an input of kind training" in res.stderr
    # an output whose extension names neither format is refused (it was written as CSV under any name)
    res = _cli("evaluate", "--kind", "training", str(src), "-o", str(tmp_path / "out.xlsx"))
    assert res.returncode == 2 and "field 'output'" in res.stderr and "allowed: a path ending in .csv or .parquet" \
        in res.stderr and not (tmp_path / "out.xlsx").exists()


def test_catalog_overlay_adds_a_chip_and_changes_a_price(tmp_path: Path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "chips:\n"
        "  - {id: nvidia_h100_sxm, usd_per_hour: 1.8}\n"
        "  - {id: my_chip, name: My chip, vendor: Me, class: datacenter_training, peak_tflops_bf16: 500,\n"
        "     memory_gb: 96, memory_bandwidth_gb_s: 4000, scale_up_gb_s: 400, scale_up_domain: 8, scale_out_gbit_s: 400,\n"
        "     tdp_w: 600, usd_per_hour: 2.0}\n"
    )
    src = tmp_path / "in.csv"
    src.write_text("model,chip,n_chips,global_batch\nllama2_7b,my_chip,64,512\n")
    res = _cli("evaluate", "--kind", "training", str(src), "-o", "-", env={"CHIPSWEEP_CATALOG": str(overlay)})
    assert res.returncode == 0, res.stderr
    assert ",true," in res.stdout
    show = _cli("catalog", "show", "nvidia_h100_sxm", "--json", env={"CHIPSWEEP_CATALOG": str(overlay)})
    assert '"usd_per_hour": 1.8' in show.stdout


def test_an_overlay_chip_says_which_chips_its_matrix_efficiency_comes_from(tmp_path: Path):
    """A planner's hypothetical chip: with an NVIDIA compute capability it takes the fitted chips of its core
    architecture (10.x: the B200's and GB200's), without one and in a family no fitted chip is in the mean measured
    GEMM share, and each row's `calibrated_on` says so."""
    overlay = tmp_path / "overlay.yaml"
    spec = ("name: {n}, vendor: {v}, class: datacenter_training, peak_tflops_bf16: 3000, memory_gb: 288, "
            "memory_bandwidth_gb_s: 8000, scale_up_gb_s: 900, scale_up_domain: 8, scale_out_gbit_s: 800, tdp_w: 1200")
    overlay.write_text(
        "chips:\n"
        f"  - {{id: next_blackwell, compute_capability: '10.0', {spec.format(n='Next Blackwell', v='NVIDIA')}}}\n"
        f"  - {{id: startup_npu, {spec.format(n='Startup NPU', v='Startup')}}}\n")
    src = tmp_path / "in.csv"
    src.write_text("model,chip,n_chips,global_batch\nllama2_7b,next_blackwell,64,512\nllama2_7b,startup_npu,64,512\n")
    out = tmp_path / "out.csv"
    res = _cli("evaluate", "--kind", "training", str(src), "-o", str(out), env={"CHIPSWEEP_CATALOG": str(overlay)})
    assert res.returncode == 0, res.stderr
    import csv

    rows = list(csv.DictReader(out.open()))
    from chipsweep.workers.context import UNMEASURED_16

    assert rows[0]["calibrated_on"] == ("extrapolated from nvidia_gb200_per_gpu (same core architecture, compute "
                                        "capability 10.x)" + UNMEASURED_16)
    # (provenance follows the 16-bit constant, which the GB200 lends to no other architecture)
    assert rows[1]["calibrated_on"].startswith("extrapolated from nvidia_a100_sxm_80gb, nvidia_h100_sxm by the mean "
                                               "measured GEMM share")


def test_broken_overlay_is_refused_with_file_line_and_field(tmp_path: Path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: -3\n")
    res = _cli("catalog", "validate", env={"CHIPSWEEP_CATALOG": str(overlay)})
    assert res.returncode == 2
    assert "bad.yaml:2" in res.stderr and "usd_per_hour" in res.stderr and "-3" in res.stderr
    overlay.write_text("chips:\n  - id: x\n    name: [unclosed\n")
    res = _cli("catalog", "validate", env={"CHIPSWEEP_CATALOG": str(overlay)})
    assert res.returncode == 2 and "bad.yaml:" in res.stderr and "invalid YAML" in res.stderr
    # a mistyped id is a new chip missing its required fields: the refusal says so and names the near ids
    from chipsweep.schemas.catalog import CatalogError

    overlay.write_text("chips:\n  - {id: nvidia_h100_sxmm, usd_per_hour: 1.8}\n")
    with pytest.raises(CatalogError, match="is not in the catalog, so the entry is a new chip .*did you mean "
                                           "nvidia_h100_sxm"):
        load_catalog(str(overlay), use_env=False)


def test_core_never_loops_over_rows_and_handles_a_million_configurations(ctx):
    n = 1_000_000
    rng = np.random.default_rng(0)
    model_idx = np.full(n, ctx.models.index()["llama2_70b"])
    chip_idx = rng.integers(0, len(ctx.chips.ids), n)
    from chipsweep.workers.training_rows import assemble_training

    raw = {"model_idx": model_idx, "chip_idx": chip_idx, "n_chips": np.full(n, 1024.0), "global_batch": np.full(n, 1024.0),
           "tp": rng.choice([1.0, 2, 4, 8], n), "pp": rng.choice([1.0, 2, 4, 8, 16], n), "micro_batch": np.ones(n),
           "interleave": np.ones(n), "recompute": np.full(n, 2.0), "zero_stage": np.ones(n)}
    x, blank, cidx = assemble_training(raw, ctx)
    out = training.evaluate(x, ctx.cal_for(cidx, x["framework"]))
    assert out["step_time_s"].shape == (n,)
    assert np.isfinite(out["step_time_s"]).sum() > n // 10


def test_lora_trains_adapters_only_4n_flops_and_fits_where_full_finetuning_does_not(ctx):
    d = run(ctx, model=["llama2_7b"] * 3, chip=["nvidia_a100_sxm_80gb"] * 3, n_chips=[1] * 3, global_batch=[8] * 3,
            tokens=[1e8] * 3, mode=["lora", "full", "pretrain"], lora_rank=[8, None, None], tp=[1] * 3, pp=[1] * 3,
            seq_len=[512] * 3,
            micro_batch=[1] * 3, recompute=["full"] * 3, zero_stage=[0] * 3)
    from chipsweep.workers.tables import model_shape_arrays
    from chipsweep.workers.training_rows import lora_parameters

    shapes = model_shape_arrays({k: v[[ctx.models.index()["llama2_7b"]]] for k, v in ctx.models.cols.items()})
    # W_q and W_v of 32 layers, r = 8: 8 x (4096 + 4096) x 2 x 32 = 4.19M trainable parameters
    assert float(lora_parameters(shapes, np.array([8.0]), np.array([0.0]))[0]) == 8 * (4096 + 4096) * 2 * 32
    assert d["fits"] == [True, False, False]
    assert "does not fit in memory" in d["infeasible_reason"][1]
    # model FLOPs per token: ~4N with LoRA vs 6N for full training (short sequences: attention is small)
    lora_flops = d["model_tflops_per_chip"][0] * d["step_time_s"][0]
    d_full = run(ctx, model=["llama2_7b"], chip=["nvidia_a100_sxm_80gb"], n_chips=[8], global_batch=[64], tokens=[1e8],
                 mode=["full"], tp=[1], pp=[1], micro_batch=[1], recompute=["full"], zero_stage=[3], seq_len=[512])
    full_flops_per_seq = d_full["model_tflops_per_chip"][0] * d_full["step_time_s"][0] * 8 / 64
    assert lora_flops / 8 / full_flops_per_seq == pytest.approx(4 / 6, rel=0.03)


def test_lora_on_a_mixture_of_experts_keeps_frozen_experts_weights_only(ctx):
    """LoRA on DeepSeek-V3 over 64 H100 at ep 16 read a step of -8.6 s, memory -0 GB and a cost of -$1,109, and the
    layout search chose it for being fastest: the routed experts other ranks hold were taken off the trainable
    parameters, which under LoRA are the adapters alone. Now the adapters train and the frozen experts keep their
    weights only (no gradients, no Adam state): positive, below full training at the same layout."""
    layout = dict(n_chips=[64] * 2, global_batch=[64] * 2, tokens=[1e9] * 2, tp=[1] * 2, pp=[1] * 2, ep=[16] * 2,
                  micro_batch=[1] * 2, interleave=[1] * 2, recompute=["full"] * 2, zero_stage=[3] * 2,
                  precision=["fp8"] * 2)
    d = run(ctx, model=["deepseek_v3"] * 2, chip=["nvidia_h100_sxm"] * 2, mode=["lora", "full"], lora_rank=[16, None],
            **layout)
    lora, full = ({k: v[i] for k, v in d.items()} for i in (0, 1))
    assert lora["fits"] and lora["infeasible_reason"] == ""
    assert lora["step_time_s"] > 0 and lora["optimizer_s"] > 0 and lora["time_to_train_days"] > 0
    assert 0 < lora["mem_per_chip_gb"] < full["mem_per_chip_gb"]
    # the frozen experts' 16-bit weights: 58 MoE layers x 256 experts x 3 x 7,168 x 2,048, an ep 16 share, sharded
    # by ZeRO-3 over the 4 expert-data-parallel ranks: at least that on the chip
    assert lora["mem_per_chip_gb"] * 1e9 > 58 * 256 * 3 * 7168 * 2048 / 16 / 4 * 2


def test_a_blank_cp_is_searched_on_long_sequences_and_stays_1_on_short_ones(ctx):
    """Context parallelism was never searched: a blank cp was 1, so Llama 3 70B on 1,024 H100 at 128K tokens found tp
    16 with full recompute (MFU 0.23) where cp 8 runs at 0.40. A blank cp is now searched (2-32) beside the rest of
    the layout where a sequence has 16K tokens or more; an 8K sequence keeps cp 1."""
    base = dict(model=["llama3_70b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[1024] * 2, tokens=[1e10] * 2)
    d = run(ctx, seq_len=[131072] * 2, global_batch=[64] * 2, cp=[None, 1], **base)
    searched, one = ({k: v[i] for k, v in d.items()} for i in (0, 1))
    assert searched["cp"] > 1 and one["cp"] == 1 and searched["infeasible_reason"] == one["infeasible_reason"] == ""
    assert searched["time_to_train_days"] < 0.8 * one["time_to_train_days"]
    assert 131072 % searched["cp"] == 0 and searched["tp"] * searched["pp"] * searched["cp"] * searched["dp"] == 1024
    short = run(ctx, seq_len=[8192] * 2, global_batch=[1024] * 2, cp=[None, None], **base)
    assert short["cp"] == [1, 1]


def test_int8_training_under_a_framework_without_it_names_the_precision_and_the_framework_that_has_it(ctx):
    """int8 on an H100 under Megatron was refused with 'the framework has no such feature (selective recompute,
    sequence parallelism, this ZeRO stage or int8 training)', naming no field; it is a bad precision cell now, saying
    MaxText (AQT) alone trains in int8. The same row under MaxText runs."""
    base = dict(model=["llama3_8b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[8] * 2, global_batch=[64] * 2,
                precision=["int8"] * 2)
    d = run(ctx, framework=[None, "maxtext"], **base)
    assert d["infeasible_reason"][0].startswith("row 1: field 'precision' = 'int8': int8 training (integer GEMMs, AQT) "
                                                "is in framework maxtext alone")
    assert d["infeasible_reason"][1] == "" and d["time_to_train_days"][1] > 0


def test_sweep_gather_path_resolves_rows_exactly_like_the_general_path(ctx):
    from chipsweep.workers.training_rows import _assemble_catalog_rows, _assemble_general

    rng = np.random.default_rng(1)
    n = 5000
    raw = {
        "model_idx": rng.integers(0, len(ctx.models.ids), n), "chip_idx": rng.integers(0, len(ctx.chips.ids), n),
        "n_chips": rng.choice([8.0, 64, 512], n), "global_batch": rng.choice([256.0, 1024], n),
        "tp": rng.choice([1.0, 2, 8, np.nan], n), "pp": rng.choice([1.0, 4, np.nan], n), "micro_batch": np.ones(n),
        "precision": rng.choice([np.nan, 0.0, 1.0, 2.0, 3.0], n), "framework": rng.choice([0.0, 1.0], n),
        "mode": rng.choice([0.0, 1.0, 2.0], n), "lora_rank": rng.choice([np.nan, 4.0], n), "tokens": rng.choice([np.nan, 1e9], n),
    }
    fast, blank_f, _ = _assemble_catalog_rows(raw, ctx)
    slow, blank_s, _ = _assemble_general(raw, ctx)
    for key in training.INPUT_KEYS:
        np.testing.assert_allclose(np.asarray(fast[key], dtype=float), np.asarray(slow[key], dtype=float), rtol=1e-12,
                                   equal_nan=True, err_msg=key)
    for key in blank_s:
        np.testing.assert_array_equal(blank_f[key], blank_s[key])


PARTS = ("bubble_s", "tp_comm_s", "dp_comm_s", "moe_a2a_s", "optimizer_s")  # where a step goes (s per step)


def test_float32_core_agrees_with_float64_and_keeps_its_dtype(ctx):
    """Sweeps run the core in float32 (workers/chunk.py CORE_DTYPE): same reasons and fits on every row,
    values within 1e-5 relative, and no pass silently widens to float64."""
    from chipsweep.workers.training_rows import assemble_training

    rng = np.random.default_rng(2)
    n = 200_000
    raw = {
        "model_idx": rng.integers(0, len(ctx.models.ids), n), "chip_idx": rng.integers(0, len(ctx.chips.ids), n),
        "n_chips": rng.choice([8.0, 64, 96, 512, 1024, 4096], n), "global_batch": rng.choice([256.0, 1024, 1536], n),
        "tp": rng.choice([1.0, 2, 4, 8], n), "pp": rng.choice([1.0, 2, 4, 8, 16], n), "micro_batch": rng.choice([1.0, 2, 4], n),
        "interleave": rng.choice([1.0, 2], n), "recompute": rng.choice([0.0, 1, 2], n), "zero_stage": rng.choice([0.0, 1, 2, 3], n),
        "framework": rng.choice([0.0, 1, 2], n), "mode": rng.choice([0.0, 2.0], n),
    }
    x, _, cidx = assemble_training(raw, ctx)
    cal = ctx.cal_for(cidx, x["framework"])
    f64 = training.evaluate(x, cal)
    f32 = training.evaluate(x, cal, dtype=np.float32)
    np.testing.assert_array_equal(f32["reason_mask"], f64["reason_mask"])
    np.testing.assert_array_equal(f32["fits"], f64["fits"])
    feasible = f64["reason_mask"] == 0
    assert feasible.sum() > n // 50
    for key, v in f32.items():
        if v.dtype.kind != "f":
            continue
        assert v.dtype == np.float32, key
        if key in PARTS:  # a part of the step (a difference of float32 terms): within 1e-5 of the step it is part of
            diff = np.abs(v - f64[key])[np.isfinite(f64[key])]
            assert (diff <= 1e-5 * f64["step_time_s"][np.isfinite(f64[key])]).all(), key
            continue
        np.testing.assert_allclose(v, f64[key], rtol=1e-5, equal_nan=True, err_msg=key)


def test_reason_bits_are_set_exactly_where_their_condition_holds():
    from chipsweep.workers.bits import flag

    mask = np.array([0, 1, 4, 5], dtype=np.int32)
    flag(mask, np.array([True, False, True, True]), 4)
    flag(mask, np.array([False, False, False, True]), 2048)
    assert mask.tolist() == [4, 1, 4, 5 | 2048]
    flag(mask, False, 8)  # a scalar condition (e.g. no DeepSpeed rows) sets nothing
    assert mask.tolist() == [4, 1, 4, 5 | 2048]


def _offload_rows(ctx: Context, offload: list[object], link: list[object], mb: int = 1) -> dict[str, list[object]]:
    n = len(offload)
    return run(ctx, model=["llama3_8b"] * n, chip=["nvidia_gb200_per_gpu"] * n, n_chips=[64] * n, tp=[1] * n,
               pp=[1] * n, micro_batch=[mb] * n, interleave=[1] * n, zero_stage=[3] * n, global_batch=[256] * n,
               precision=["fp8"] * n, recompute=["none"] * n, framework=["megatron_core_2025"] * n,
               offload_layers=offload, **{"chip.host_link_gb_s": link})


def test_offloaded_layers_leave_their_activations_in_host_memory_but_the_one_in_flight(ctx):
    """Megatron-Core --cpu-offloading-num-layers (Transformer Engine's CPU offload context): the saved activations of
    `offload_layers` of a stage's layers wait in host memory between forward and backward; one layer's copy is in
    flight on the chip. Llama 3 8B (32 layers) on GB200, no recompute: 16 offloaded keep 17 of 32 layers' worth."""
    out = _offload_rows(ctx, [0, 16, 31, 2], [None, None, None, None])
    mem = out["mem_per_chip_gb"]
    saved = [mem[0] - m for m in mem]  # GB: 15, 30 and 1 layers' activations leave (weights and states stay)
    assert saved[1] > 5.0 and all(out["fits"])
    assert saved[2] == pytest.approx(2 * saved[1], rel=1e-6)
    assert saved[3] == pytest.approx(saved[1] / 15, rel=1e-6)
    assert out["offload_layers"] == [0, 16, 31, 2]


def test_offload_copies_show_only_where_the_host_link_is_slower_than_a_layers_compute(ctx):
    """Each offloaded layer's activations cross the host link once each way, beside the next layer's forward
    (backward): at the GB200's measured NVLink-C2C copy rate (catalog 197 GB/s per direction) part of the copy shows,
    at a PCIe 5.0 x16 card's 64 GB/s most of it, and at a link far faster than the chip nothing; the exposed time grows
    with the layers offloaded."""
    out = _offload_rows(ctx, [0, 16, 16, 16, 8], [None, 1e6, None, 64, 64], mb=2)
    tps = out["tokens_per_s"]
    assert tps[1] == pytest.approx(tps[0], rel=1e-9)  # a link that outruns every layer: the copies hide
    assert tps[0] > tps[2] > tps[3]
    assert tps[3] < tps[4] < tps[0]
    # the exposed time is linear in the layers offloaded: 16 layers cost twice what 8 cost
    step = [1 / v for v in tps]
    assert (step[3] - step[0]) == pytest.approx(2 * (step[4] - step[0]), rel=1e-6)


def test_offload_on_every_layer_or_without_a_host_link_is_infeasible_with_a_reason(ctx):
    out = run(ctx, model=["llama3_70b", "llama3_70b"], chip=["nvidia_gb200_per_gpu", "nvidia_b200_hgx"],
              n_chips=[64, 64], tp=[1, 8], pp=[1, 8], micro_batch=[1, 1], interleave=[1, 1], zero_stage=[3, 1],
              global_batch=[256, 256], recompute=["none", "none"], offload_layers=[80, 2])
    assert out["tokens_per_s"][0] != out["tokens_per_s"][0] and out["tokens_per_s"][1] != out["tokens_per_s"][1]
    assert "offload_layers must be fewer than the layers of a pipeline stage" in out["infeasible_reason"][0]
    assert "set chip.host_link_gb_s" in out["infeasible_reason"][1]  # no host link read for the B200 yet


def test_negative_offload_layers_is_a_row_error_naming_field_and_value(ctx):
    errors = RowErrors(1)
    training_inputs(table(model=["llama3_70b"], chip=["nvidia_gb200_per_gpu"], n_chips=[64], offload_layers=[-1]),
                    ctx, errors)
    msg = " ".join(errors.messages())
    assert "offload_layers" in msg and "-1" in msg


def test_a_sweep_over_offload_layers_lands_the_axis_and_matches_the_evaluate_path(ctx):
    """`offload_layers` is a sweep axis and a lake column: the chunk path gives each configuration the step time the
    `evaluate` path gives the same row, and offloading more layers on the GB200 needs less memory."""
    from chipsweep.schemas.spec import parse_spec
    from chipsweep.schemas.sweep import resolve
    from chipsweep.workers.chunk import ChunkEvaluator

    catalog = load_catalog(use_env=False)
    spec = {
        "name": "offload", "kind": "training", "store": "all",
        "axes": {"model": ["llama3_8b"], "chip": ["nvidia_gb200_per_gpu"], "micro_batch": [1, 2],
                 "offload_layers": [0, 8, 16]},
        "fixed": {"n_chips": 64, "tp": 1, "pp": 1, "interleave": 1, "zero_stage": 3, "global_batch": 256,
                  "precision": "fp8", "recompute": "none", "framework": "megatron_core_2025", "tokens": 1.0e11},
    }
    ev = ChunkEvaluator(resolve(parse_spec(spec), catalog))
    rows = ev.evaluate(0, ev.sweep.configurations).to_pylist()
    assert sorted({r["offload_layers"] for r in rows}) == [0, 8, 16] and all(r["fits"] for r in rows)
    for mb in (1, 2):
        mem = [r["mem_per_chip_gb"] for r in sorted(rows, key=lambda r: r["offload_layers"]) if r["micro_batch"] == mb]
        assert mem[0] > mem[1] > mem[2]
    out = run(ctx, **{k: [r[k] if k != "model" else "llama3_8b" for r in rows] for k in ("model", "micro_batch", "offload_layers")},
              chip=["nvidia_gb200_per_gpu"] * len(rows), n_chips=[64] * len(rows), tp=[1] * len(rows),
              pp=[1] * len(rows), interleave=[1] * len(rows), zero_stage=[3] * len(rows), global_batch=[256] * len(rows),
              precision=["fp8"] * len(rows), recompute=["none"] * len(rows), framework=["megatron_core_2025"] * len(rows))
    for r, step in zip(rows, out["step_time_s"], strict=True):
        assert r["step_time_s"] == pytest.approx(step, rel=1e-5)


def test_a_row_that_fits_only_with_host_offload_gets_it_when_it_leaves_offload_blank(ctx):
    """Llama 3 70B on 64 TPU v6e (32 GB) at tp 1, micro-batch 2, sequence 8192 fits no recompute mode: with
    `offload_layers` blank the search offloads every layer but the one in flight over the chip's host link (MaxText's
    decoder_layer_input offload, as tpu-recipes runs it); pinned to 0 the row stays refused for memory. A fully blank
    layout that fits without offloading keeps it (a smaller, slower layout), and a chip without a published host link
    (the v5p) gets no offload, nor does a GPU row under Megatron-Core (Llama 3 70B on 8,192 H100 at micro-batch 2
    without recompute: it fits only with 79 layers offloaded, which it gets when it asks). The sweep (chunk) path gives
    the fixed-layout row the same answer."""
    from chipsweep.schemas.spec import parse_spec
    from chipsweep.schemas.sweep import resolve
    from chipsweep.workers.chunk import ChunkEvaluator

    fixed = dict(model="llama3_70b", n_chips=64, global_batch=128, seq_len=8192, tp=1, pp=1, micro_batch=2,
                 interleave=1, recompute="full", zero_stage=3)
    rows = [dict(fixed, chip="google_tpu_v6e"), dict(fixed, chip="google_tpu_v6e", offload_layers=0),
            dict(model="llama3_70b", chip="google_tpu_v6e", n_chips=64, global_batch=128, seq_len=8192),
            dict(fixed, chip="google_tpu_v5p", n_chips=16, micro_batch=8)]
    gpu = dict(model="llama3_70b", chip="nvidia_h100_sxm", n_chips=8192, tp=8, pp=1, micro_batch=2, interleave=1,
               recompute="none", zero_stage=1, global_batch=2048, seq_len=8192)
    rows += [gpu, dict(gpu, offload_layers=79)]
    out = run(ctx, **{k: [r.get(k) for r in rows] for k in {k for r in rows for k in r}})
    assert out["fits"][0] and out["offload_layers"][0] == 79 and out["mem_per_chip_gb"][0] < 32.6
    assert not out["fits"][1] and out["infeasible_reason"][1].startswith("does not fit in memory")
    assert out["fits"][2] and out["offload_layers"][2] == 0 and out["tokens_per_s"][2] < out["tokens_per_s"][0]
    assert not out["fits"][3] and out["offload_layers"][3] == 0 and "memory" in out["infeasible_reason"][3]
    assert not out["fits"][4] and out["offload_layers"][4] == 0 and out["fits"][5] and out["offload_layers"][5] == 79
    # the refusal says what would fit, at what speed: the row with offload_layers = 79's own
    assert f"fits with offload_layers = 79 (activations in host memory over the 52 GB/s host link: " \
           f"{out['tokens_per_s'][5]:,.0f} tokens/s)" in out["infeasible_reason"][4]
    catalog = load_catalog(use_env=False)
    spec = {"name": "v6e-offload", "kind": "training", "store": "all",
            "axes": {"model": ["llama3_70b"], "chip": ["google_tpu_v6e"]},
            "fixed": {**{k: v for k, v in fixed.items() if k not in ("model",)}, "tokens": 1.0e11}}
    ev = ChunkEvaluator(resolve(parse_spec(spec), catalog))
    swept = ev.evaluate(0, ev.sweep.configurations).to_pylist()
    assert len(swept) == 1 and swept[0]["fits"] and swept[0]["offload_layers"] == 79
    assert swept[0]["step_time_s"] == pytest.approx(out["step_time_s"][0], rel=1e-5)


def test_vocab_tiles_hold_one_tile_of_the_logits_at_a_time(ctx):
    """MaxText's `num_vocab_tiling` computes the output layer and loss in vocabulary chunks: the last stage holds one
    chunk's logits. Gemma 3 12B (a 262,208-token vocabulary) at sequence 32,768 on a v6e: the bf16 logits of one sequence
    are 17.2 GB, one of 16 tiles 1.07 GB, which is what lets tpu-recipes' run fit 32 GB. Zero tiles is a row error."""
    base = dict(model="gemma3_12b", chip="google_tpu_v6e", n_chips=256, global_batch=256, seq_len=32768, tp=1, pp=1,
                micro_batch=1, interleave=1, recompute="full", zero_stage=3, offload_layers=0, cp=1)
    out = run(ctx, **{k: [v, v] for k, v in base.items()}, vocab_tiles=[1, 16])
    saved = out["mem_per_chip_gb"][0] - out["mem_per_chip_gb"][1]
    vocab = ctx.catalog.models["gemma3_12b"].vocab  # 262,208 (262,144 + 64)
    assert saved == pytest.approx(32768 * vocab * 2 * (1 - 1 / 16) / 1e9, rel=1e-6)
    assert not out["fits"][0] and out["fits"][1] and out["mem_per_chip_gb"][1] < 32.6  # the recipe's 16 tiles fit
    errors = RowErrors(1)
    training_inputs(table(**{k: [v] for k, v in base.items()}, vocab_tiles=[0]), ctx, errors)
    msg = " ".join(errors.messages())
    assert "vocab_tiles" in msg and "0" in msg, msg


def test_the_cost_basis_asked_for_is_kept_and_a_chip_with_no_price_has_none(ctx):
    """A row that asks for rental on a chip with no rental price keeps the rental basis, with no cost and a note
    naming the missing price (it became 'owned', and the note asked for a price the chip already had); one that asks
    for owned on a chip with a rental price but no purchase price names the purchase price; a row that asks for no
    basis on a chip with no price of either kind has no basis (it read 'owned')."""
    d = run(ctx, model=["llama3_70b"] * 4, chip=["nvidia_gb200_per_gpu", "amd_mi300x", "google_tpu_v5p", "nvidia_h100_sxm"],
            n_chips=[512] * 4, global_batch=[1024] * 4, tokens=[2e12] * 4, cost_basis=["rental", "owned", None, None])
    assert d["cost_basis"] == ["rental", "owned", None, "rental"]
    assert [c != c for c in d["cost_usd"]] == [True, True, True, False]  # NaN but the H100's
    assert "cost_basis rental, and the chip has no rental price (give chip.usd_per_hour)" in d["notes"][0]
    assert "cost_basis owned, and the chip has no purchase price" in d["notes"][1] and "usd_per_hour" not in d["notes"][1]
    assert "no rental price and no purchase price published" in d["notes"][2]


def test_a_blank_tokens_is_answered_with_the_workload_it_stands_for(ctx):
    """A row that leaves `tokens` blank trains the model's published token count (Llama 3 8B: 15T, models.yaml
    training_tokens_b), and the output says so, as the lake stores it: days and cost were for 1.5e13 tokens while
    the `tokens` cell stayed blank (user test). A given count is echoed as given."""
    out = run(ctx, model=["llama3_8b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[64] * 2, global_batch=[512] * 2,
              tokens=[None, 1e11])
    published = ctx.catalog.models["llama3_8b"].training_tokens_b * 1e9
    assert out["tokens"] == [pytest.approx(published), 1e11]
    days = [t / tps / 86400 for t, tps in zip(out["tokens"], out["tokens_per_s"], strict=True)]
    assert out["time_to_train_days"] == pytest.approx(days, rel=1e-9)
