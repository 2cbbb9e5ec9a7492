"""Hybrid state-space models in training (Megatron-Core's hybrid pattern: every layer one attention, Mamba-2 or MLP/MoE
block): the block counts follow Dao & Gu 2024 (Mamba-2) sec. 6-7, a hybrid's parameters and FLOPs add up its blocks
instead of treating every layer as attention + MLP, and layers the core cannot model are refused with the reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.workers.context import Context
from chipsweep.workers.memory import activation_bytes_per_layer
from chipsweep.workers.training_rows import evaluate_training
from chipsweep.workers.transformer import (
    SSD_CHUNK,
    Shapes,
    model_flops_per_seq,
    ssm_matrix_params,
    ssm_scan_flops_per_token,
    total_params,
)
from chipsweep.workers.workload import model_arrays


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.build(load_catalog(use_env=False))


def run(ctx: Context, **cols: list[object]) -> dict[str, list[object]]:
    table = pa.table({k: pa.array([None if v is None else str(v) for v in vals], type=pa.string())
                      for k, vals in cols.items()})
    out, _ = evaluate_training(table, ctx)
    return out.to_pydict()


def shapes(L: float, **hybrid: float) -> Shapes:
    """Nemotron Nano 9B v2's widths (h 4480, 40 heads of 128, 8 KV heads, MLP 15680, two projections) over L layers,
    with the hybrid fields given."""
    one = np.array(1.0)
    extra = {k: np.array(v) for k, v in hybrid.items()}
    return Shapes(layers=np.array(L), hidden=np.array(4480.0), heads=np.array(40.0), kv_heads=np.array(8.0),
                  head_dim=np.array(128.0), ffn=np.array(15680.0), vocab=np.array(131072.0), seq=np.array(8192.0),
                  n_proj=np.array(2.0), learned_pos=0.0 * one, tied=0.0 * one, **extra)


def test_a_mamba2_block_counts_its_projections_and_ssd_scan_as_dao_and_gu_publish():
    """Dao & Gu 2024 sec. 7: in_proj h -> z, x (H·P each), B, C (G·N each), dt (H); out_proj H·P -> h. Sec. 6: the
    chunked SSD costs 2QNG + 2QPH + 2NPH + 2NPH FLOPs per token (Q tokens a chunk), plus the depthwise convolution
    over x, B, C (2K per channel)."""
    m = shapes(56, att_layers=4, mlp_layers=25, ssm_layers=27, ssm_heads=128, ssm_head_dim=80, ssm_state=128,
               ssm_groups=8, ssm_conv=4)
    h, H, P, N, G, K, Q = 4480.0, 128.0, 80.0, 128.0, 8.0, 4.0, SSD_CHUNK
    assert float(ssm_matrix_params(m)) == pytest.approx(h * (2 * H * P + 2 * G * N + H) + H * P * h, rel=1e-12)
    scan = 2 * Q * N * G + 2 * Q * P * H + 4 * N * P * H + 2 * K * (H * P + 2 * G * N)
    assert float(ssm_scan_flops_per_token(m)) == pytest.approx(scan, rel=1e-12)
    assert m.shares() == pytest.approx((4 / 56, 25 / 56, 27 / 56))


def test_nemotron_nano_9b_v2_counts_its_published_size_from_its_blocks(ctx):
    """The catalog's 56 blocks (27 Mamba-2, 25 MLP, 4 attention; config.json's hybrid_override_pattern) with the
    Mamba-2 counts give the published 8.89B parameters; the training core once counted 56 attention + MLP layers
    (12.1B). Inference's published size agrees."""
    i = ctx.models.ids.index("nemotron_nano_9b_v2")
    assert ctx.model_terms["n_params"][i] == pytest.approx(8.89e9, rel=0.005)
    assert model_arrays({"model_idx": np.array([i])}, ctx, 1)["params"][0] == pytest.approx(8.89e9, rel=1e-9)
    # the same widths as a 56-layer transformer: 36 % more
    m = ctx.catalog.models["nemotron_nano_9b_v2"]
    dense = total_params(shapes(56))
    assert float(dense) > 1.3 * 8.89e9 and m.layers == 56


def test_a_hybrid_training_row_does_the_flops_of_its_blocks(ctx):
    """A training row of Nemotron Nano 9B v2 does ~6 FLOPs per parameter per token, counting only the weights a token
    multiplies (not the input embedding table): within 4 % of 6 x (8.89B - V·h), the attention of 4 layers and the
    SSD scans of 27 adding the rest; before, every layer was attention + MLP (83 GFLOP per token)."""
    out = run(ctx, model=["nemotron_nano_9b_v2"], chip=["nvidia_h100_sxm"], n_chips=[8], tp=[1], pp=[1],
              global_batch=[256], micro_batch=[1], seq_len=[8192], tokens=[1e12])
    assert out["infeasible_reason"] == [""]
    per_token = out["model_tflops_per_chip"][0] * 1e12 * 8 / out["tokens_per_s"][0]
    weights = 8.89e9 - 131072 * 4480
    assert 6 * weights < per_token < 1.04 * 6 * weights, per_token / (6 * weights)


def test_attention_and_mlp_as_separate_blocks_are_the_transformer_of_half_the_layers():
    """Megatron-Core's pattern '*-*-...' (an attention block, then an MLP block, each a layer with its own norm) over
    2L layers is the L-layer transformer: the same parameters, model FLOPs and activation bytes (without full
    recompute, which keeps each layer's input: one per block)."""
    L = 16.0
    plain, split = shapes(L), shapes(2 * L, att_layers=L, mlp_layers=L, ssm_layers=0.0, ssm_heads=0.0,
                                     ssm_head_dim=0.0, ssm_state=0.0, ssm_groups=0.0, ssm_conv=0.0)
    assert split.hybrid and not plain.hybrid
    assert float(total_params(split)) == pytest.approx(float(total_params(plain)), rel=1e-12)
    assert float(model_flops_per_seq(split)) == pytest.approx(float(model_flops_per_seq(plain)), rel=1e-12)
    args = (np.array(1.0), np.array(2.0), np.array(1.0), np.array(1.0), 2.0, 0.0)
    a = activation_bytes_per_layer(plain, *args)
    b = activation_bytes_per_layer(split, *args)
    for kept_plain, kept_split in zip(a[:2], b[:2], strict=True):
        assert float(2 * L * kept_split) == pytest.approx(float(L * kept_plain), rel=1e-12)


def test_nemotron_3_nano_is_a_hybrid_mixture_of_experts_with_experts_in_its_23_moe_blocks(ctx):
    """Nemotron 3 Nano (Megatron-Bridge's Nemotron3NanoProvider): 52 blocks, 23 of them MoE (128 experts of 1856,
    top 6, one shared expert of 3712), 23 Mamba-2, 6 attention. Its experts sit in the 23 MoE blocks only: ~31.5B
    parameters (the release table rounds to 30B), not the 66B experts in all 52 layers would make."""
    i = ctx.models.ids.index("nemotron_3_nano")
    params = model_arrays({"model_idx": np.array([i])}, ctx, 1)["params"][0]
    experts = 23 * 128 * 2 * 2688 * 1856
    assert params == pytest.approx(3.5e9 + experts * (1 - 6 / 128), rel=1e-9)
    assert 30e9 < params < 33e9
    out = run(ctx, model=["nemotron_3_nano"], chip=["nvidia_h100_sxm"], n_chips=[16], tp=[1], pp=[1], ep=[8],
              global_batch=[1024], micro_batch=[1], seq_len=[8192], precision=["fp8"], recompute=["none"],
              zero_stage=[1], grad_bytes=[2], tokens=[1e12])
    assert out["infeasible_reason"] == [""]
    assert out["moe_a2a_s"][0] > 0  # expert parallelism over 8 GPUs: the dispatch all-to-all is paid
    # the active FLOPs: about 6 x 3.2B per token (the 3.5B published active size counts the input embedding)
    per_token = out["model_tflops_per_chip"][0] * 1e12 * 16 / out["tokens_per_s"][0]
    assert 6 * 2.9e9 < per_token < 6 * 3.5e9, per_token / 6e9


def test_mamba_heads_and_groups_must_split_over_the_tensor_parallel_ranks(ctx):
    """Megatron-Core's MambaMixer splits its heads and B/C groups over tp: Nemotron Nano 9B v2's 40 attention heads
    split 5 ways but its 8 groups do not."""
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        model=["nemotron_nano_9b_v2"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[40, 40], tp=[5, 4], pp=[1, 1],
        global_batch=[80, 80], micro_batch=[1, 1], seq_len=[8192, 8192], tokens=[1e12, 1e12]).items()})
    result, errors = evaluate_training(table, ctx)
    out = result.to_pydict()
    assert ("tp must divide the model's 40 attention heads, its 128 Mamba heads and 8 groups and n_chips = 40; "
            "allowed: 1, 2, 4, 8") in " ".join(errors.messages())
    assert out["infeasible_reason"][1] == ""


def test_layers_whose_mixer_is_neither_attention_nor_state_space_are_refused_in_training(ctx):
    """LFM2.5 mixes tokens with short convolutions in 10 of its 16 layers; the training core models attention and
    Mamba-2 blocks only, so its rows say so instead of pricing 16 attention layers (inference reads its published
    size and KV layers and keeps answering)."""
    out = run(ctx, model=["lfm2.5_1.2b"], chip=["nvidia_h100_sxm"], n_chips=[8], global_batch=[64], seq_len=[4096],
              tokens=[1e12])
    reason = out["infeasible_reason"][0]
    assert "neither attention nor state-space" in reason and "not modelled in training" in reason
    assert np.isnan(out["tokens_per_s"][0])


@pytest.mark.parametrize("entry, message", [
    ("{id: llama3_8b, moe_latent_dim: 512}", "moe_latent_dim is a mixture-of-experts field"),
    ("{id: nemotron_nano_9b_v2, mlp_layers: 57}", "mlp_layers (57) must not exceed layers (56)"),
    ("{id: deepseek_v3, mtp_layers: 9}", "mtp_layers"),
])
def test_a_catalog_overlay_with_impossible_hybrid_fields_is_refused_naming_them(tmp_path, entry, message):
    from chipsweep.schemas.catalog import CatalogError

    overlay = tmp_path / "bad.yaml"
    overlay.write_text(f"models:\n  - {entry}\n")
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_catalog(overlay)
