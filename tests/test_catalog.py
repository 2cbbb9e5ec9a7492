"""The built-in spec catalog (schemas/catalog/*.yaml): complete, sourced, self-consistent.

Nothing here reads the reference compilation the catalog was copied from: the chip ids are listed below.
"""

from __future__ import annotations

import pytest

from chipsweep.schemas.catalog import load_catalog, validate_catalog

# The 40 accelerators of the reference compilation, by the ids the project must use.
REFERENCE_CHIP_IDS = [
    "nvidia_v100_sxm2_32gb",
    "nvidia_a100_sxm_40gb",
    "nvidia_a100_sxm_80gb",
    "nvidia_h100_sxm",
    "nvidia_h200_sxm",
    "nvidia_b200_hgx",
    "nvidia_gb200_per_gpu",
    "amd_mi250x",
    "amd_mi300x",
    "google_tpu_v4",
    "google_tpu_v5e",
    "google_tpu_v5p",
    "intel_gaudi2",
    "intel_gaudi3",
    "huawei_ascend_910",
    "huawei_ascend_910b",
    "cambricon_mlu370_x8",
    "biren_br100",
    "iluvatar_corex_bi100",
    "cerebras_wse2_cs2",
    "cerebras_wse3_cs3",
    "tesla_dojo_d1",
    "tesla_dojo_training_tile",
    "nvidia_jetson_agx_orin_64gb",
    "nvidia_jetson_orin_nx_16gb",
    "nvidia_jetson_orin_nano_8gb",
    "google_coral_edge_tpu",
    "hailo_8",
    "hailo_10h",
    "huawei_ascend_310",
    "qualcomm_snapdragon_8_gen3",
    "apple_m2",
    "apple_m3",
    "apple_m4",
    "apple_a17_pro",
    "rockchip_rk3588",
    "horizon_journey5",
    "cambricon_mlu220",
    "aispeech_shencong_taihang",
    "groq_lpu_v1",
]

REFERENCE_CLUSTER_IDS = [
    "azure_openai_2020",
    "nvidia_dgx_a100",
    "nvidia_dgx_h100",
    "nvidia_dgx_superpod_h100",
    "meta_24k_h100",
    "google_tpu_v4_pod",
    "google_tpu_v5p_pod",
    "cerebras_wafer_scale_cluster",
    "tesla_dojo_exapod",
]


@pytest.fixture(scope="module")
def cat():
    return load_catalog(use_env=False)


def test_builtin_catalog_loads_with_chips_models_and_clusters(cat):
    assert cat.chips and cat.models and cat.clusters


def test_the_builtin_catalog_reads_the_same_through_libyaml_as_through_python(monkeypatch):
    """`trusted_yaml` parses the project's own YAML with libyaml where PyYAML was built with it (chips.yaml 8x
    faster, the first sweep a fresh server accepts 2.5 s -> 0.3 s); the values, and so the content hashes that decide
    which sweeps re-run, are those PyYAML's Python parser gives."""
    import yaml

    from chipsweep.schemas import catalog as catalog_module

    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML built without libyaml here: both paths are the Python parser")
    assert catalog_module._FAST_SAFE_LOADER is yaml.CSafeLoader
    fast = catalog_module._load_builtin.__wrapped__()
    monkeypatch.setattr(catalog_module, "_FAST_SAFE_LOADER", yaml.SafeLoader)
    slow = catalog_module._load_builtin.__wrapped__()
    assert fast.hashes() == slow.hashes()
    assert (fast.asic, fast.defaults) == (slow.asic, slow.defaults)


def test_validate_catalog_reports_no_problems(monkeypatch):
    monkeypatch.delenv("CHIPSWEEP_CATALOG", raising=False)
    assert validate_catalog() == []


def test_reference_list_has_40_distinct_chip_ids():
    assert len(REFERENCE_CHIP_IDS) == 40
    assert len(set(REFERENCE_CHIP_IDS)) == 40


def test_every_reference_chip_is_in_the_catalog(cat):
    missing = [cid for cid in REFERENCE_CHIP_IDS if cid not in cat.chips]
    assert missing == []


def test_every_reference_cluster_preset_is_in_the_catalog(cat):
    missing = [cid for cid in REFERENCE_CLUSTER_IDS if cid not in cat.clusters]
    assert missing == []


def test_a_vendor_is_spelled_one_way_so_its_chips_share_a_calibration_family(cat):
    """A chip without published runs takes its calibration family's fitted mean, and the family comes from the
    vendor's name: two spellings of one vendor (the Ascend 910C was once 'Huawei' beside 'Huawei (HiSilicon)')
    would split it. No vendor name may be the first word of another's."""
    vendors = sorted({c.vendor for c in cat.chips.values()})
    first = {v: v.split()[0].lower() for v in vendors}
    clashes = [(a, b) for a in vendors for b in vendors if a < b and first[a] == first[b]]
    assert clashes == []


def test_every_entry_names_at_least_one_source_with_a_title(cat):
    for kind in ("chips", "models", "clusters"):
        for eid, entry in getattr(cat, kind).items():
            assert entry.sources, f"{kind}/{eid} has no source"
            assert all(s.title.strip() for s in entry.sources), f"{kind}/{eid} has a source without a title"


def test_every_cluster_chip_is_a_catalog_chip(cat):
    for cid, cluster in cat.clusters.items():
        assert cluster.chip is not None, f"cluster {cid} names no chip"
        assert cluster.chip in cat.chips, f"cluster {cid}: chip {cluster.chip} not in catalog"


def test_h100_bf16_peak_is_dense_and_nvlink_is_one_direction(cat):
    h100 = cat.chip("nvidia_h100_sxm")
    assert h100.peak_tflops_bf16 == pytest.approx(989.4)  # not the 1979 sparse headline
    assert h100.scale_up_gb_s == pytest.approx(450)  # half of 900 GB/s bidirectional
    assert "scale_up_gb_s" in h100.derived


def test_nvlink_chips_are_halved_from_bidirectional(cat):
    one_way = {
        "nvidia_v100_sxm2_32gb": 150,
        "nvidia_a100_sxm_40gb": 300,
        "nvidia_a100_sxm_80gb": 300,
        "nvidia_h200_sxm": 450,
        "nvidia_b200_hgx": 900,
        "nvidia_gb200_per_gpu": 900,
    }
    for cid, gb_s in one_way.items():
        assert cat.chip(cid).scale_up_gb_s == pytest.approx(gb_s), cid
    assert cat.chip("nvidia_gb200_per_gpu").scale_up_domain == 72
    assert cat.chip("nvidia_h100_sxm").scale_up_domain == 8


def test_every_halved_or_derived_scale_up_says_how(cat):
    for cid, chip in cat.chips.items():
        if chip.scale_up_gb_s is not None:
            assert "scale_up_gb_s" in chip.derived, f"{cid}: scale_up_gb_s without a derivation"


def test_jetson_dense_int8_is_half_the_sparse_figure_and_says_so(cat):
    # the AGX Orin's is its GPU's: half of the 170 sparse NVIDIA splits out of 275 (the two DLAs run no LLM engine);
    # the Orin NX's 100 has no split in the reference data: half of it, marked low confidence
    for cid, sparse in (("nvidia_jetson_agx_orin_64gb", 170), ("nvidia_jetson_orin_nx_16gb", 100)):
        chip = cat.chip(cid)
        assert chip.peak_tops_int8 == pytest.approx(sparse / 2)
        assert "peak_tops_int8" in chip.derived
    assert "DLA" in cat.chip("nvidia_jetson_agx_orin_64gb").derived["peak_tops_int8"]
    assert "peak_tops_int8" in cat.chip("nvidia_jetson_orin_nx_16gb").low_confidence_fields


def test_wse2_has_no_invented_flops(cat):
    wse2 = cat.chip("cerebras_wse2_cs2")
    peaks = [
        wse2.peak_tflops_fp32,
        wse2.peak_tflops_tf32,
        wse2.peak_tflops_fp16,
        wse2.peak_tflops_bf16,
        wse2.peak_tflops_fp8,
    ]
    assert all(p is None for p in peaks)
    assert wse2.peak_tops_int8 is None
    assert "null on purpose" in wse2.notes
    assert wse2.system_kind == "wafer_scale"
    assert wse2.external_memory_gb is not None and wse2.external_memory_gb_s is not None


def test_dojo_tile_is_25_dies_with_a_derived_external_memory_tier(cat):
    tile = cat.chip("tesla_dojo_training_tile")
    assert tile.system_kind == "tile"
    assert tile.chips_per_system == 25
    assert "external_memory_gb" in tile.derived
    assert "external_memory_gb" in tile.low_confidence_fields


@pytest.mark.parametrize(
    "cid",
    ["huawei_ascend_910b", "cambricon_mlu220", "aispeech_shencong_taihang", "qualcomm_snapdragon_8_gen3"],
)
def test_low_confidence_chips_are_marked_low_and_explained(cat, cid):
    chip = cat.chip(cid)
    assert chip.confidence == "low"
    assert len(chip.notes) > 40


def test_conflicting_published_figures_are_quoted_and_the_field_stays_blank(cat):
    """The Ascend 910B's memory bandwidth and HCCS figures conflict between sources (reference chips-notes.md
    sec. 3): the catalog quotes them and leaves the fields blank, so evaluate asks for a value."""
    from pydantic import ValidationError

    from chipsweep.schemas.catalog import Chip

    chip = cat.chip("huawei_ascend_910b")
    assert chip.memory_bandwidth_gb_s is None and chip.scale_up_gb_s is None
    assert chip.quoted == {"memory_bandwidth_gb_s": [400, 768, 1200, 1600], "scale_up_gb_s": [392, 600]}
    raw = chip.model_dump(by_alias=True)
    for bad, message in (({"memory_bandwidth_gb_s": 1600}, "has a value .1600.0.; quote only fields left blank"),
                         ({"quoted": {"colour": [1]}}, "'colour' is not a numeric chip field"),
                         ({"quoted": {"scale_up_gb_s": []}}, r"'scale_up_gb_s' = \[\]; allowed: one or more positive")):
        with pytest.raises(ValidationError, match=message):
            Chip.model_validate({**raw, **bad})


def test_a_row_refused_for_a_blank_field_lists_what_the_sources_quote(cat):
    import pyarrow as pa

    from chipsweep.workers.context import Context
    from chipsweep.workers.inference_rows import evaluate_inference
    from chipsweep.workers.training_rows import evaluate_training

    ctx = Context.build(cat)

    def table(**cols: list[object]) -> pa.Table:
        return pa.table({k: pa.array([None if v is None else str(v) for v in vals], type=pa.string()) for k, vals in cols.items()})

    quote = "they quote memory_bandwidth_gb_s: 400, 768, 1200, 1600; scale_up_gb_s: 392, 600"
    out, _ = evaluate_training(table(model=["llama2_7b"] * 3, chip=["huawei_ascend_910b"] * 2 + ["cambricon_mlu370_x8"],
                                     n_chips=[64] * 3, global_batch=[512] * 3, precision=["fp16"] * 3,
                                     **{"chip.memory_bandwidth_gb_s": [None, "1600", None]}), ctx)
    why = out.column("infeasible_reason").to_pylist()
    assert "memory_bandwidth_gb_s not published" in why[0] and quote in why[0]
    assert why[1] == "" and "quote" not in why[2]  # a row that picks a value runs; a chip without quotes says nothing
    out, _ = evaluate_inference(table(model=["llama2_7b"], chip=["huawei_ascend_910b"]), ctx)
    why = out.column("infeasible_reason").to_pylist()
    assert "memory bandwidth not published" in why[0] and quote in why[0]


def test_chips_without_a_numeric_source_carry_no_numbers(cat):
    numeric = (
        "peak_tflops_fp32",
        "peak_tflops_tf32",
        "peak_tflops_fp16",
        "peak_tflops_bf16",
        "peak_tflops_fp8",
        "peak_tops_int8",
        "peak_tops_int4",
        "memory_gb",
        "memory_bandwidth_gb_s",
        "tdp_w",
        "process_nm",
    )
    for cid in ("cambricon_mlu220", "aispeech_shencong_taihang"):
        chip = cat.chip(cid)
        assert all(getattr(chip, f) is None for f in numeric), cid
        assert "no numeric source" in chip.notes.lower()


def test_range_prices_take_the_low_end_and_say_so(cat):
    assert cat.chip("nvidia_h100_sxm").usd_per_hour == pytest.approx(1.90)
    assert cat.chip("amd_mi300x").usd_per_hour == pytest.approx(1.50)
    assert cat.chip("intel_gaudi3").purchase_usd == pytest.approx(125000 / 8)
    for cid in ("nvidia_h100_sxm", "amd_mi300x"):
        assert "low end" in cat.chip(cid).derived["usd_per_hour"]
    # rental prices added 2026-12-04 from on-demand quotes of 2026-09: the low end of each chip's quoted range, dated,
    # and low confidence (transcribed or aggregator pages)
    for cid, low in (("nvidia_b200_hgx", 5.98), ("nvidia_a100_sxm_80gb", 1.39), ("nvidia_l40s", 0.79),
                     ("nvidia_h100_pcie", 1.99), ("nvidia_gh200", 2.29), ("nvidia_b300_hgx", 7.40)):
        chip = cat.chip(cid)
        assert chip.usd_per_hour == pytest.approx(low), cid
        assert "low end" in chip.derived["usd_per_hour"] and chip.price_date, cid
        assert "usd_per_hour" in chip.low_confidence_fields, cid


def test_azure_2020_preset_is_10000_v100_with_derived_50_gbit(cat):
    azure = cat.clusters["azure_openai_2020"]
    assert azure.chip == "nvidia_v100_sxm2_32gb"
    assert azure.n_chips == 10000
    assert azure.cpu_cores == 285000
    assert azure.scale_out_gbit_s == pytest.approx(50)
    assert "scale_out_gbit_s" in azure.low_confidence_fields


def _simple_param_count_b(model) -> float:
    """Narayanan-style estimate: 12*L*h^2 (attention + GELU MLP) + V*h (embedding), in billions."""
    return (12 * model.layers * model.hidden**2 + model.vocab * model.hidden) / 1e9


def test_gpt3_and_megatron_sizes_match_12Lh2_plus_Vh_within_10_percent(cat):
    checked = 0
    for mid, model in cat.models.items():
        if model.family not in ("gpt3", "megatron"):
            continue
        est = _simple_param_count_b(model)
        assert est == pytest.approx(model.params_b, rel=0.10), (
            f"{mid}: {est:.3f}B vs published {model.params_b}B"
        )
        checked += 1
    assert checked >= 19  # 8 GPT-3 sizes + 10 weak-scaling models + the 22B


def _full_param_count_b(model) -> float:
    """Per-architecture count: GQA attention, 2 or 3 MLP projections, (un)tied embeddings, learned positions."""
    h, heads = model.hidden, model.heads
    kv = model.kv_heads or heads
    d = model.head_dim or h // heads
    f = model.ffn_hidden or 4 * h
    attn = 2 * h * heads * d + 2 * h * kv * d
    proj = 3 if model.mlp == "swiglu" else 2
    mlp = proj * h * f
    emb = model.vocab * h * (1 if model.tied_embeddings else 2)
    if model.position == "learned":
        emb += model.seq_len * h
    if model.moe_experts:  # mixture of experts: routed + shared experts and a router in each MoE layer
        moe_layers = model.layers - (model.moe_dense_layers or 0)
        experts = (model.moe_experts + (model.moe_shared_experts or 0)) * proj * h * model.moe_ffn_hidden
        return (model.layers * attn + (model.layers - moe_layers) * mlp + moe_layers * (experts + h * model.moe_experts)
                + emb) / 1e9
    return (model.layers * (attn + mlp) + emb) / 1e9


def test_every_model_shape_reproduces_its_published_size_within_5_percent(cat):
    for mid, model in cat.models.items():
        if model.attention_layers is not None:
            continue  # hybrid (Mamba / convolution layers): the catalog takes the model card's size as published
        est = _full_param_count_b(model)
        assert est == pytest.approx(model.params_b, rel=0.05), (
            f"{mid}: {est:.3f}B vs published {model.params_b}B"
        )


def test_requested_model_ids_are_present(cat):
    wanted = [
        "gpt3_125m",
        "gpt3_350m",
        "gpt3_760m",
        "gpt3_1.3b",
        "gpt3_2.7b",
        "gpt3_6.7b",
        "gpt3_13b",
        "gpt3_175b",
        "megatron_1.7b",
        "megatron_3.6b",
        "megatron_7.5b",
        "megatron_18.4b",
        "megatron_39.1b",
        "megatron_76.1b",
        "megatron_145.6b",
        "megatron_310.1b",
        "megatron_529.6b",
        "megatron_1t",
        "megatron_22b",
        "mtnlg_530b",
        "palm_8b",
        "palm_62b",
        "palm_540b",
        "opt_175b",
        "bloom_176b",
        "llama_7b",
        "llama_13b",
        "llama_33b",
        "llama_65b",
        "llama2_7b",
        "llama2_13b",
        "llama2_70b",
        "llama3_8b",
        "llama3_70b",
        "llama3_405b",
        "llama3.2_3b",
        "llama3.1_8b",
        "qwen2.5_7b",
        "gemma2_2b",
        "gemma2_9b",
        "phi3.5_mini_3.8b",
        "smollm2_1.7b",
        "qwen2_1.5b",
    ]
    missing = [m for m in wanted if m not in cat.models]
    assert missing == []


def test_palm_540b_is_multi_query_with_256_wide_heads(cat):
    palm = cat.model("palm_540b")
    assert (palm.layers, palm.hidden, palm.heads, palm.kv_heads, palm.head_dim) == (118, 18432, 48, 1, 256)
    assert palm.mlp == "swiglu" and palm.position == "rope" and palm.tied_embeddings


def test_low_confidence_and_derived_fields_name_real_fields(cat):
    # the schema rejects unknown names at load time; this guards against empty derivation texts
    for kind in ("chips", "models", "clusters"):
        for eid, entry in getattr(cat, kind).items():
            for field_name, how in entry.derived.items():
                assert how.strip(), f"{kind}/{eid}: empty derivation for {field_name}"


# issue 13: chips added from published specifications; third-party figures are marked low confidence
ISSUE13_CHIP_IDS = [
    "nvidia_h800_sxm",
    "nvidia_h20",
    "nvidia_b300_hgx",
    "nvidia_gb300_per_gpu",
    "amd_mi325x",
    "amd_mi355x",
    "google_tpu7x_ironwood",
    "aws_trainium2",
    "huawei_ascend_910c",
    "google_tpu_v6e",
    "aws_trainium1",
]
# rental prices added 2026-12-04, after issue 13: the B300's low end of two neocloud list prices, TensorWave's MI325X
# rate, an on-demand trn1.32xlarge divided by its 16 Trainium chips, and the TPU v6e's GA list price
ISSUE13_RENTAL_PRICES = {"nvidia_b300_hgx": 7.40, "amd_mi325x": 1.95, "aws_trainium1": 21.50 / 16,
                         "google_tpu_v6e": 2.70}  # Google's on-demand price at GA, as a news page quotes it


@pytest.mark.parametrize("cid", ISSUE13_CHIP_IDS)
def test_issue13_chip_is_present_with_a_source_url(cat, cid):
    chip = cat.chip(cid)
    assert any(s.url and s.url.startswith("https://") for s in chip.sources), cid


@pytest.mark.parametrize(
    ("cid", "fields"),
    [
        ("nvidia_h800_sxm", ["peak_tflops_bf16", "memory_gb", "memory_bandwidth_gb_s"]),
        ("nvidia_h20", ["peak_tflops_fp16", "memory_gb", "memory_bandwidth_gb_s", "tdp_w"]),
        ("nvidia_b300_hgx", ["peak_tflops_bf16", "peak_tflops_fp8", "peak_tflops_fp4", "tdp_w"]),
        ("nvidia_gb300_per_gpu", ["memory_gb", "tdp_w"]),
        ("amd_mi325x", ["peak_tflops_bf16", "peak_tflops_fp8", "memory_bandwidth_gb_s", "tdp_w"]),
        ("amd_mi355x", ["peak_tflops_fp8", "peak_tflops_fp4", "memory_bandwidth_gb_s", "tdp_w", "scale_up_gb_s",
                        "scale_out_gbit_s"]),
        ("google_tpu7x_ironwood", ["memory_bandwidth_gb_s", "scale_up_gb_s"]),
        ("aws_trainium2", ["scale_up_gb_s"]),
        ("huawei_ascend_910c", ["peak_tflops_bf16", "memory_gb", "memory_bandwidth_gb_s", "scale_up_gb_s"]),
    ],
)
def test_issue13_third_party_figures_are_marked_low_confidence(cat, cid, fields):
    chip = cat.chip(cid)
    for name in fields:
        assert getattr(chip, name) is not None, f"{cid}.{name} is empty"
        assert name in chip.low_confidence_fields, f"{cid}.{name} is third-party but not low confidence"


def test_issue13_peaks_are_dense_and_links_one_direction(cat):
    assert cat.chip("nvidia_h800_sxm").scale_up_gb_s == pytest.approx(200)  # half of 400 GB/s bidirectional
    assert cat.chip("nvidia_gb300_per_gpu").scale_up_domain == 72
    gb300 = cat.chip("nvidia_gb300_per_gpu")
    assert gb300.peak_tflops_fp8 == pytest.approx(5000)  # 720 PF sparse per rack / 72 / 2
    assert cat.chip("amd_mi325x").peak_tflops_fp8 == pytest.approx(2614.9)  # not the 5229.8 sparse figure
    assert cat.chip("aws_trainium2").peak_tflops_bf16 == pytest.approx(667)  # not the 2563 sparse figure
    assert cat.chip("huawei_ascend_910c").scale_up_gb_s == pytest.approx(392)  # stated one-way, not halved
    for cid in ISSUE13_CHIP_IDS:
        chip = cat.chip(cid)
        assert chip.purchase_usd is None, f"{cid}: unsourced purchase price"
        if cid in ISSUE13_RENTAL_PRICES:  # a rental price found later: quoted, dated, derived and low confidence
            assert chip.usd_per_hour == pytest.approx(ISSUE13_RENTAL_PRICES[cid], abs=0.005), cid
            assert chip.price_date and chip.derived.get("usd_per_hour"), cid
            assert "usd_per_hour" in chip.low_confidence_fields, cid
        else:
            assert chip.usd_per_hour is None, f"{cid}: unsourced price"


@pytest.mark.parametrize(
    ("cluster_id", "chip", "n_chips"),
    [
        ("nvidia_gb300_nvl72", "nvidia_gb300_per_gpu", 72),
        ("huawei_cloudmatrix384", "huawei_ascend_910c", 384),
        ("deepseek_v3_h800_2048", "nvidia_h800_sxm", 2048),
        ("nvidia_dgx_b300", "nvidia_b300_hgx", 8),
        ("aws_trn2_ultraserver", "aws_trainium2", 64),
    ],
)
def test_issue13_cluster_presets_name_their_chip_and_size(cat, cluster_id, chip, n_chips):
    cluster = cat.clusters[cluster_id]
    assert (cluster.chip, cluster.n_chips) == (chip, n_chips)
    assert any(s.url for s in cluster.sources)


# issue 12: models of the MindSpeed-LLM (Ascend 910B) rows that publish only a model name
MINDSPEED_MODEL_IDS = [
    "aquila_7b", "aquila2_7b", "aquila2_34b", "yi_34b", "baichuan_7b", "baichuan_13b", "baichuan2_7b",
    "baichuan2_13b", "bloom_7b1", "chatglm3_6b",
    "internlm_7b", "qwen_7b", "qwen_14b", "qwen_72b", "qwen1.5_0.5b", "qwen1.5_1.8b", "qwen1.5_4b", "qwen1.5_7b",
    "qwen1.5_14b", "qwen1.5_32b", "qwen1.5_72b",
]
# published total parameter counts (billions), where the authors state one: BLOOM paper Table 3 (7.1B)
PUBLISHED_TOTAL_B = {"bloom_7b1": 7.1}


@pytest.mark.parametrize("mid", MINDSPEED_MODEL_IDS)
def test_issue12_mindspeed_model_is_present_with_a_source_url(cat, mid):
    m = cat.models[mid]
    assert m.sources and all(s.url.startswith("https://") for s in m.sources), mid
    assert m.confidence in ("high", "medium", "low")


@pytest.mark.parametrize("mid", sorted(PUBLISHED_TOTAL_B))
def test_issue12_catalog_shapes_give_the_published_parameter_count(cat, mid):
    import numpy as np

    from chipsweep.workers.transformer import Shapes, total_params

    m = cat.models[mid]
    one = np.array(1.0)
    shapes = Shapes(layers=np.array(float(m.layers)), hidden=np.array(float(m.hidden)), heads=np.array(float(m.heads)),
                    kv_heads=np.array(float(m.kv_heads or m.heads)),
                    head_dim=np.array(float(m.head_dim or m.hidden // m.heads)),
                    ffn=np.array(float(m.ffn_hidden or 4 * m.hidden)), vocab=np.array(float(m.vocab)),
                    seq=np.array(float(m.seq_len)), n_proj=np.array(3.0 if m.mlp == "swiglu" else 2.0),
                    learned_pos=one * (m.position == "learned"), tied=one * m.tied_embeddings)
    assert abs(float(total_params(shapes)) / (PUBLISHED_TOTAL_B[mid] * 1e9) - 1) < 0.03


def test_issue12_every_2026_model_name_maps_to_a_catalog_model(cat):
    from chipsweep.workers.validation.cases import MODEL_IDS_2026

    missing = {name: mid for name, mid in MODEL_IDS_2026.items() if mid not in cat.models}
    assert not missing, missing


def test_sliding_window_fields_come_together_and_within_the_attention_layers(cat):
    """Gemma 3 27B: 52 of 62 layers on a 1024-token window (Gemma 3 report sec. 2); a window without its layer count,
    or more windowed layers than attention layers, is refused with the field and what is allowed."""
    from pydantic import ValidationError

    from chipsweep.schemas.catalog import Model

    m = cat.models["gemma3_27b"]
    assert (m.sliding_window, m.sliding_window_layers) == (1024, 52)
    assert cat.models["llama3_70b"].sliding_window is None  # full attention everywhere
    raw = m.model_dump(by_alias=True)
    for bad, message in (({"sliding_window_layers": None}, "gives sliding_window and sliding_window_layers together"),
                         ({"sliding_window_layers": 63}, r"sliding_window_layers \(63\) must not exceed the attention "
                                                         r"layers \(62\)"),
                         ({"sliding_window": 0}, "sliding_window")):
        with pytest.raises(ValidationError, match=message):
            Model.model_validate({**raw, **bad})


def test_state_space_fields_come_together_and_with_the_attention_layers_within_the_layers(cat):
    """Nemotron Nano 9B v2 (config.json): 27 Mamba-2 layers and 4 attention layers of 56 blocks. A state-space layer
    count without its widths, or more state-space and attention layers than blocks, is refused naming the fields."""
    from pydantic import ValidationError

    from chipsweep.schemas.catalog import Model

    m = cat.models["nemotron_nano_9b_v2"]
    assert (m.ssm_layers, m.ssm_heads, m.ssm_head_dim, m.ssm_state_dim, m.ssm_groups, m.ssm_conv_kernel) == (
        27, 128, 80, 128, 8, 4)
    assert cat.models["llama3_70b"].ssm_layers is None
    raw = m.model_dump(by_alias=True)
    for bad, message in (({"ssm_state_dim": None}, r"give ssm_layers, .* together \(missing: ssm_state_dim\)"),
                         ({"ssm_layers": 53}, r"ssm_layers \(53\) plus attention_layers \(4\) must not exceed layers "
                                              r"\(56\)"),
                         ({"ssm_heads": 0}, "ssm_heads")):
        with pytest.raises(ValidationError, match=message):
            Model.model_validate({**raw, **bad})


def test_catalog_show_says_which_runs_fitted_a_chip_or_what_it_is_extrapolated_from(capsys):
    import json

    import yaml

    from chipsweep.service.cli import main as cli

    # the H100 has runs of its own: training on four sources, TensorRT-LLM, vLLM and SGLang on the chip itself
    assert cli(["catalog", "show", "nvidia_h100_sxm"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    train, serve = shown["calibration"]["training"], shown["calibration"]["serving"]
    assert "megatron_bridge" in train["calibrated_on"] and not train["calibrated_on"].startswith("extrapolated")
    assert 0.3 < train["mm_eff_max"] < 1.0 and 0.3 < train["mm_eff_max_fp8"] < 1.0
    assert serve["default_engine"] == "tensorrt_llm"
    assert serve["calibrated_on"]["vllm"] == "mlenergy_vllm (vllm on nvidia_h100_sxm)"
    # the B300 has none: its matrix efficiency is its core architecture's (the GB200's, whose set the B200 shares),
    # and it says so
    assert cli(["catalog", "show", "nvidia_b300_hgx", "--json"]) == 0
    cal = json.loads(capsys.readouterr().out)["calibration"]
    assert cal["training"]["calibrated_on"].startswith("extrapolated from nvidia_gb200_per_gpu (same core")
    assert list(cal["serving"]["calibrated_on"]) == ["tensorrt_llm"]
    assert cal["serving"]["calibrated_on"]["tensorrt_llm"].startswith("extrapolated from tensorrt_llm on NVIDIA")
    # a TPU v6e has no fp8 tensor rate, so no fp8 efficiency is shown for it
    assert cli(["catalog", "show", "google_tpu_v6e", "--json"]) == 0
    assert "mm_eff_max_fp8" not in json.loads(capsys.readouterr().out)["calibration"]["training"]


def test_a_skinny_gemm_faster_than_the_large_matrices_is_refused_naming_the_field() -> None:
    """`gemm_measured.narrow` is the same benchmark's skinny shape: a rate at or above the large-matrix one would give
    a negative half width, so the catalog refuses it with the field, the value and what is allowed."""
    from pydantic import ValidationError

    from chipsweep.schemas.catalog import Chip

    base = load_catalog(use_env=False).chips["nvidia_h100_sxm"].model_dump()
    good = Chip.model_validate(base)
    assert good.gemm_half_width == pytest.approx(192 * (1382.2 / 663.8 - 1))
    base["gemm_measured"]["narrow"]["tflops"] = 1400.0
    with pytest.raises(ValidationError, match=r"gemm_measured.narrow.tflops: 1400 is not below the large-matrix 1382.2"):
        Chip.model_validate(base)


def test_a_pre_training_sequence_shorter_than_the_context_says_where_it_comes_from(cat):
    """`train_seq_len` (the sequence most of a model's published pre-training ran at) is shorter than the model's
    context (`seq_len`) and each entry that has one says how it was read (`derived`) beside a source."""
    have = {mid: m for mid, m in cat.models.items() if m.train_seq_len is not None}
    assert {"qwen3_30b_a3b", "qwen3_235b_a22b", "qwen3_8b", "llama3.1_8b"} <= set(have)
    for mid, m in have.items():
        assert m.train_seq_len < m.seq_len, mid
        assert "train_seq_len" in m.derived and any("(train_seq_len)" in s.title for s in m.sources), mid
    assert cat.models["qwen3_30b_a3b"].train_seq_len == 4096 and cat.models["qwen3_30b_a3b"].seq_len == 32768


def test_a_pre_training_sequence_longer_than_the_context_is_refused_naming_both(cat):
    from chipsweep.schemas.catalog import Model

    entry = cat.models["qwen3_8b"].model_dump()
    with pytest.raises(ValueError, match=r"train_seq_len \(65536\) must not exceed seq_len \(32768\)"):
        Model.model_validate({**entry, "train_seq_len": 65536})
    assert Model.model_validate({**entry, "train_seq_len": 32768}).train_seq_len == 32768


def test_every_priced_chip_says_what_its_price_buys(cat):
    """A unit cost compares like with like only when it is the price of the same kind of thing: every catalog chip
    with a purchase price says whether it buys an accelerator (a card, an SXM or OAM module, a USB stick, a HAT: it
    runs in a host computer) or a complete system (a developer kit, a desktop, a CS-3); a chip left blank reads by
    class (a Mac, a phone, a wafer-scale system: system; the rest: accelerator)."""
    priced = {cid: c for cid, c in cat.chips.items() if c.purchase_usd is not None}
    assert len(priced) >= 20
    assert not [cid for cid, c in priced.items() if c.purchase_scope is None]
    scope = {cid: c.cost_scope for cid, c in priced.items()}
    # the sources' own words: a developer kit, a desktop, a system; a card, a module, a USB stick, a HAT
    assert scope["nvidia_jetson_orin_nano_8gb"] == scope["nvidia_dgx_spark_gb10"] == scope["cerebras_wse3_cs3"] == "system"
    assert scope["nvidia_rtx_4090"] == scope["nvidia_a100_sxm_40gb"] == scope["google_coral_edge_tpu"] == "accelerator"
    assert scope["hailo_10h"] == "accelerator"
    assert cat.chips["apple_m2_ultra"].cost_scope == "system" and cat.chips["nvidia_h100_sxm"].cost_scope == "accelerator"
