"""Formula fixes of issue 12, each checked against the published formula it implements, and the frontier
sanity checks: ZeRO/FSDP traffic per micro-batch, untied head and last-stage memory, activation memory from
the architecture, pipeline sends on the link that carries them, uneven pipeline stages, batches the chips do
not divide, software eras, and owned-cluster TCO."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.vocab import FRAMEWORKS
from chipsweep.workers.context import Context
from chipsweep.workers.memory import activation_bytes_per_layer
from chipsweep.workers.parse import RowErrors
from chipsweep.workers.training_rows import evaluate_training, run_training, training_inputs
from chipsweep.workers.transformer import Shapes


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.build(load_catalog(use_env=False))


def run(ctx: Context, **cols: list[object]) -> dict[str, list[object]]:
    n = len(next(iter(cols.values())))
    table = pa.table({k: pa.array([None if v is None else str(v) for v in vals], type=pa.string()) for k, vals in cols.items()})
    assert table.num_rows == n
    out, _ = evaluate_training(table, ctx)
    return out.to_pydict()


def shapes(L: float, h: float, a: float, s: float, kv: float | None = None, f: float | None = None,
           n_proj: float = 2.0) -> Shapes:
    one = np.array(1.0)
    return Shapes(layers=np.array(L), hidden=np.array(h), heads=np.array(a), kv_heads=np.array(kv or a),
                  head_dim=np.array(h / a), ffn=np.array(f or 4 * h), vocab=np.array(51200.0), seq=np.array(s),
                  n_proj=np.array(n_proj), learned_pos=one, tied=one)


def test_activation_memory_equals_korthikanti_table2_for_gpt3_and_follows_the_architecture():
    """Korthikanti 2022 Table 2: s·b·h·(34 + 5·a·s/h) bytes per layer (16-bit, f = 4h, MHA, dropout); with
    tensor and sequence parallelism divided by t; selective recompute keeps 34·sbh/t."""
    s, b, h, a, t = 2048.0, 1.0, 12288.0, 96.0, 8.0
    m = shapes(96, h, a, s)
    none, sel, full = activation_bytes_per_layer(m, b, np.array(t), np.array(1.0), np.array(0.0), 2.0, 1.0)
    sbh = s * b * h
    assert float(none) == pytest.approx(sbh * (34 + 5 * a * s / h) / t, rel=1e-12)
    assert float(sel) == pytest.approx(34 * sbh / t, rel=1e-12)
    assert float(full) == pytest.approx(2 * sbh / t, rel=1e-12)
    # tensor parallelism without sequence parallelism: sbh(10 + 24/t + 5as/(ht))
    none_tp, _, _ = activation_bytes_per_layer(m, b, np.array(t), np.array(0.0), np.array(0.0), 2.0, 1.0)
    assert float(none_tp) == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)), rel=1e-12)
    # no dropout (Llama-style): the two 1-byte masks and the score dropout go; FlashAttention keeps no scores
    no_drop, _, _ = activation_bytes_per_layer(m, b, np.array(1.0), np.array(0.0), np.array(0.0), 2.0, 0.0)
    assert float(no_drop) == pytest.approx(sbh * (32 + 2 * a * s / h), rel=1e-12)
    flash, _, _ = activation_bytes_per_layer(m, b, np.array(1.0), np.array(0.0), np.array(1.0), 2.0, 0.0)
    assert float(flash) == pytest.approx(sbh * 32 + 4 * a * s * b, rel=1e-12)
    # gated MLP (three f-wide tensors) and GQA (K, V of kv_heads only): Llama-3 8B shapes
    llama = shapes(32, 4096, 32, 8192, kv=8, f=14336, n_proj=3.0)
    _, sel_l, _ = activation_bytes_per_layer(llama, b, np.array(1.0), np.array(0.0), np.array(1.0), 2.0, 0.0)
    sbh_l = 8192 * 4096.0
    expected = 8 * sbh_l + 2 * 8192 * (2 * 4096 + 2 * 1024 + 3 * 14336)
    assert float(sel_l) == pytest.approx(expected, rel=1e-12)
    # fp32 activations take 4 bytes an element
    none32, _, _ = activation_bytes_per_layer(m, b, np.array(1.0), np.array(0.0), np.array(1.0), 4.0, 0.0)
    none16, _, _ = activation_bytes_per_layer(m, b, np.array(1.0), np.array(0.0), np.array(1.0), 2.0, 0.0)
    assert float(none32) == pytest.approx(2 * float(none16) - 4 * a * s * b, rel=1e-12)


def test_latent_attention_keeps_its_tensors_and_selective_recompute_keeps_only_the_latents(ctx):
    """Multi-head latent attention (DeepSeek-V3 arXiv:2412.19437 sec. 2.1.1: 128 heads of d_h = 128 with a 64-wide
    RoPE part, query rank 1536, key-value rank 512) keeps queries and keys of a·(d_h + d_R), values and the output
    projection's input of a·d_h and the latents. Selective recompute re-runs the up-projections in the backward
    (sec. 3.2.3), so only the output projection's input and the latents stay, and the step pays one more forward of
    the up-projections (and no attention-core re-run)."""
    s, b, h, a, d, r, qr, kvr = 4096.0, 1.0, 7168.0, 128.0, 128.0, 64.0, 1536.0, 512.0
    f = 18432.0
    one = np.array(1.0)
    m = Shapes(layers=np.array(61.0), hidden=np.array(h), heads=np.array(a), kv_heads=np.array(a), head_dim=np.array(d),
               ffn=np.array(f), vocab=np.array(129280.0), seq=np.array(s), n_proj=np.array(3.0), learned_pos=0 * one,
               tied=0 * one, mla_q_rank=np.array(qr), mla_kv_rank=np.array(kvr), mla_rope=np.array(r))
    none, sel, full = activation_bytes_per_layer(m, b, one, 0 * one, one, 2.0, 0.0)
    outside = s * b * h * 2.0 * 4.0  # two norm inputs, the attention and MLP inputs (16-bit)
    mlp = 3 * f
    latents = qr + kvr + r
    assert float(none) == pytest.approx(outside + 2.0 * s * b * (2 * a * (d + r) + 2 * a * d + latents + mlp) + 4 * a * s * b)
    assert float(sel) == pytest.approx(outside + 2.0 * s * b * (a * d + latents + mlp))
    assert float(full) == pytest.approx(2.0 * s * b * h)
    # the same row with selective and with no recompute: the up-projections' FLOPs once more per layer and sequence
    row = dict(model=["deepseek_v3"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[2048] * 2, tp=[1] * 2, pp=[16] * 2,
               ep=[64] * 2, zero_stage=[1] * 2, micro_batch=[1] * 2, global_batch=[15360] * 2, precision=["fp8"] * 2,
               framework=["megatron_core_2025"] * 2, recompute=["none", "selective"], **{"chip.memory_gb": [1000] * 2})
    out = run(ctx, **row)
    assert out["infeasible_reason"] == ["", ""]
    up = qr * a * (d + r) + kvr * 2 * a * d  # weights of the query and key-value up-projections
    tokens = 15360 * s
    per_step = [out["hardware_tflops_per_chip"][i] * 1e12 * out["step_time_s"][i] * 2048 for i in range(2)]
    np.testing.assert_allclose(per_step[1] - per_step[0], 61 * 2 * up * tokens, rtol=1e-6)


def test_untied_output_head_adds_v_times_h_parameters_on_the_last_stage(ctx):
    """An untied head (Llama) is a second V·h matrix: for Llama-3 8B (V = 128,256, h = 4,096) at tp 1 that is
    0.525 B parameters, ~9.5 GB of weights, gradients and Adam state at 18 bytes each."""
    rows = dict(chip=["nvidia_h100_sxm"] * 2, n_chips=[8] * 2, global_batch=[8] * 2, tp=[1] * 2, pp=[1] * 2,
                micro_batch=[1] * 2, recompute=["full"] * 2, zero_stage=[0] * 2, mode=["full"] * 2,
                layers=[32] * 2, hidden=[4096] * 2, heads=[32] * 2, kv_heads=[8] * 2, ffn_hidden=[14336] * 2,
                vocab=[128256] * 2, seq_len=[8192] * 2, mlp=["swiglu"] * 2, framework=["megatron"] * 2,
                **{"chip.memory_gb": [1e4] * 2})
    tied = run(ctx, **rows, tied_embeddings=["true", "true"])
    d = run(ctx, **rows)  # explicit shapes default to tied; give the Llama head its own matrix below
    assert d["mem_per_chip_gb"] == tied["mem_per_chip_gb"]
    untied_model = run(ctx, model=["llama3_8b"], chip=["nvidia_h100_sxm"], n_chips=[8], global_batch=[8], tp=[1],
                       pp=[1], micro_batch=[1], recompute=["full"], zero_stage=[0], mode=["full"],
                       **{"chip.memory_gb": [1e4]})
    assert not ctx.catalog.models["llama3_8b"].tied_embeddings
    head_gb = 128256 * 4096 * 18 / 1e9  # bytes per parameter: 2 + 4 + 12
    assert untied_model["mem_per_chip_gb"][0] - tied["mem_per_chip_gb"][0] == pytest.approx(head_gb, rel=0.06)


def test_fp8_layers_keep_their_gemm_inputs_in_fp8(ctx):
    """Transformer Engine's fp8 layers save the fp8 copy of a GEMM input they cast (linear.py `_Linear.forward`: the
    quantized input, row-wise data dropped, is what the weight-gradient GEMM reads; LayerNormLinear keeps `ln_out`
    so): the attention and MLP inputs (h each), the output projection's input (q) and the second MLP matrix's input
    (f) take 1 byte in fp8, 1 + 1/32 in MXFP8 (a scale per 32), 0.5 + 1/16 in NVFP4. GPT-3 at tp 1: (2h + h + 4h)
    = 7·sbh fewer bytes per layer than 16-bit, with or without selective recompute; full recompute keeps the 16-bit
    layer input alone. The element-wise kernels' time keeps the 16-bit accounting: a row's step is the same."""
    s, b, h, a = 2048.0, 1.0, 12288.0, 96.0
    m = shapes(96, h, a, s)
    one, zero = np.array(1.0), np.array(0.0)
    b16 = activation_bytes_per_layer(m, b, one, zero, one, 2.0, 1.0)
    b8 = activation_bytes_per_layer(m, b, one, zero, one, 2.0, 1.0, 1.0)
    sbh = s * b * h
    assert float(b16[0] - b8[0]) == pytest.approx(7 * sbh, rel=1e-12)
    assert float(b16[1] - b8[1]) == pytest.approx(7 * sbh, rel=1e-12)
    assert float(b16[2]) == float(b8[2]) == pytest.approx(2 * sbh)
    rows = dict(model=["llama3_70b"] * 3, chip=["nvidia_b200_hgx"] * 3, n_chips=[64] * 3, tp=[4] * 3, pp=[1] * 3,
                micro_batch=[1] * 3, interleave=[1] * 3, global_batch=[256] * 3, recompute=["selective"] * 3,
                zero_stage=[1] * 3, precision=["bf16", "fp8", "mxfp8"], **{"chip.memory_gb": [1e4] * 3})
    d = run(ctx, **rows)
    mem = d["mem_per_chip_gb"]
    assert mem[1] < mem[2] < mem[0]
    # MXFP8's scales: 1/32 byte more per saved GEMM input element than per-tensor fp8; Llama 3 70B at sequence 8,192,
    # tp 4 with sequence parallelism, 80 layers of one micro-batch: 80 x 8,192 x (2h + q + f) / 4 elements
    gemm_in = 80 * 8192 * (2 * 8192 + 8192 + 28672) / 4
    assert (mem[2] - mem[1]) * 1e9 == pytest.approx(gemm_in / 32, rel=1e-6)
    assert d["step_time_s"][1] == pytest.approx(d["step_time_s"][2], rel=1e-12)  # same tensor-core rate and traffic


def test_last_stage_memory_is_checked_not_only_the_first(ctx):
    """The last stage holds its layers, the output layer (V·h, Megatron keeps a copy there) and the logits
    (b·s·V/t): with a 256k vocabulary it outweighs the first stage, and the row's memory is the larger one."""
    rows = dict(chip=["nvidia_a100_sxm_80gb"] * 2, n_chips=[16] * 2, global_batch=[1] * 2, tp=[1] * 2, pp=[16] * 2,
                micro_batch=[1] * 2, recompute=["full"] * 2, zero_stage=[0] * 2, layers=[32] * 2, hidden=[4096] * 2,
                heads=[32] * 2, seq_len=[4096] * 2, mlp=["swiglu"] * 2, framework=["megatron_2022"] * 2,
                **{"chip.memory_gb": [1e4] * 2})
    d = run(ctx, **rows, vocab=[32000, 256000])
    extra_states = (256000 - 32000) * 4096 * 18 / 1e9  # GB: the larger embedding's weights, fp32 gradients, Adam
    # GB: one micro-batch of logits on the last stage, the fp32 copy the loss saves and the 16-bit logits at the cast
    extra_logits = 4096 * (256000 - 32000) * (4 + 2) / 1e9
    assert d["mem_per_chip_gb"][1] - d["mem_per_chip_gb"][0] == pytest.approx(extra_states + extra_logits, rel=0.02)


def test_the_loss_keeps_fp32_logits_unless_it_works_in_place(ctx):
    """Megatron's own vocab-parallel cross entropy (fused or not: cross_entropy.py `calculate_logits_max`) upcasts the
    logits with .float() and saves its softmax in that fp32 tensor for the backward, the bf16 logits beside it at the
    cast: 4 + 2 bytes per logit on the last stage at bf16, 4 at fp32 (the cast is the tensor itself). Transformer
    Engine's Triton cross entropy, which Megatron-Bridge's recipes select (Megatron-Core 2025), writes its gradient
    into the bf16 logits, and XLA fuses MaxText's fp32 cast into the loss: 2 bytes at bf16; so does llm-foundry's FSDP
    (`fsdp`: MPT's default flash-attn fused cross entropy), where torchtitan's FSDP2 upcasts (`fsdp2`: 4 + 2). Llama 3
    8B at sequence
    8,192, tp1, under 2022's Megatron: the logits of one micro-batch are 8,192 x 128,256 = 1.05e9 elements, 6.3 GB
    where 2.1 GB was counted. Computing them in two vocabulary tiles holds half of them: the difference is the
    logits' bytes alone."""
    fws = ["megatron_2022"] * 4 + ["maxtext"] * 2 + ["megatron_core_2025"] * 2 + ["fsdp"] * 2 + ["fsdp2"] * 2
    n = len(fws)
    rows = dict(model=["llama3_8b"] * n, chip=["nvidia_h100_sxm"] * n, n_chips=[8] * n, global_batch=[8] * n, tp=[1] * n,
                pp=[1] * n, micro_batch=[1] * n, recompute=["full"] * n, zero_stage=[1] * n, seq_len=[8192] * n,
                framework=fws, precision=["bf16"] * 2 + ["fp32"] * 2 + ["bf16"] * 8, vocab_tiles=[1, 2] * 6,
                **{"chip.memory_gb": [1e4] * n})
    mem = run(ctx, **rows)["mem_per_chip_gb"]
    half = 8192 * 128256 / 2 / 1e9  # G elements: half the logits of one micro-batch
    assert mem[0] - mem[1] == pytest.approx(half * 6, rel=1e-6)  # Megatron 2022, bf16: fp32 copy + bf16 logits
    assert mem[2] - mem[3] == pytest.approx(half * 4, rel=1e-6)  # fp32: the logits are the fp32 tensor
    assert mem[4] - mem[5] == pytest.approx(half * 2, rel=1e-6)  # MaxText: the cast fused, the bf16 logits alone
    assert mem[6] - mem[7] == pytest.approx(half * 2, rel=1e-6)  # Megatron-Core 2025: TE's cross entropy in place
    assert mem[8] - mem[9] == pytest.approx(half * 2, rel=1e-6)  # llm-foundry's FSDP: the fused loss, bf16 alone
    assert mem[10] - mem[11] == pytest.approx(half * 6, rel=1e-6)  # FSDP2 (torchtitan): .float() saves fp32
    on = {f for f in FRAMEWORKS if ctx.frameworks["fw_ce_in_place"][FRAMEWORKS.index(f)] == 1}
    assert on == {"maxtext", "megatron_core_2025", "megatron", "fsdp"}


def test_zero3_pays_its_gathers_every_micro_batch_rajbhandari_sec7_and_loses_to_zero1_when_weights_outrun_compute(ctx):
    """ZeRO-3 / FSDP (Rajbhandari 2020 sec. 7; Zhao 2023 sec. 3.3): every micro-batch all-gathers each layer's
    weights forward and backward and reduce-scatters its gradients; the prefetch hides one layer's gather
    behind one layer's compute. With small micro-batches (little compute per layer) over a slow network the
    weights do not fit that window, and 128 micro-batches per step make ZeRO-3 slower than ZeRO-1."""
    common = dict(model=["gpt3_175b"] * 2, chip=["amd_mi300x"] * 2, n_chips=[32] * 2, global_batch=[4096] * 2,
                  tp=[1] * 2, pp=[1] * 2, micro_batch=[1] * 2, recompute=["full"] * 2, framework=["deepspeed"] * 2,
                  **{"chip.memory_gb": [1e5] * 2})
    d = run(ctx, **common, zero_stage=[1, 3])
    assert d["infeasible_reason"] == ["", ""]
    z1, z3 = d["step_time_s"]
    assert z3 > 1.5 * z1
    # one micro-batch per step: the same ZeRO-3 traffic is paid once, not 128 times
    once = run(ctx, **{**common, "global_batch": [32] * 2}, zero_stage=[1, 3])
    per_mb_z3 = z3 / 128
    assert once["step_time_s"][1] == pytest.approx(per_mb_z3, rel=0.2)


def test_zero1_reduce_scatters_gradients_in_their_bytes_and_gathers_parameters_in_theirs(ctx):
    """Megatron-Core's distributed optimizer (ZeRO-1, Rajbhandari 2020 sec. 5.1) reduce-scatters the gradient buffer
    (fp32 under --accumulate-allreduce-grads-in-fp32: 4 bytes) and all-gathers the updated parameters in the model's
    own precision (16-bit: 2 bytes), each a ring of (n-1)/n of its bytes. With 4-byte gradients a step moves 4 + 2
    bytes per parameter, 3/2 of what it moves with 2-byte ones (2 + 2): counting the gather in gradient bytes gave 2x.
    In-network reduction (NVLink SHARP) halves an all-reduce but neither a reduce-scatter nor an all-gather, so on
    one HGX node ZeRO-1's two halves take twice the ZeRO-0 all-reduce of the same bytes."""
    common = dict(model=["llama2_70b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[1024] * 2, global_batch=[1024] * 2,
                  tp=[8] * 2, pp=[8] * 2, micro_batch=[1] * 2, interleave=[1] * 2, recompute=["full"] * 2,
                  zero_stage=[1] * 2, framework=["megatron_2022"] * 2)  # no overlap: the whole of it shows
    d = run(ctx, **common, grad_bytes=[4, 2])
    assert d["infeasible_reason"] == ["", ""]
    fp32, bf16 = d["dp_comm_s"]
    assert fp32 / bf16 == pytest.approx(1.5, rel=0.01)  # 2.2 GB per chip each way: the latencies are 0.3 %
    one_node = dict(model=["llama3_8b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[8] * 2, global_batch=[8] * 2,
                    tp=[1] * 2, pp=[1] * 2, micro_batch=[1] * 2, recompute=["full"] * 2, grad_bytes=[2] * 2,
                    framework=["megatron_2022"] * 2, **{"chip.memory_gb": [1e4] * 2})
    n = run(ctx, **one_node, zero_stage=[0, 1])
    assert n["infeasible_reason"] == ["", ""]
    z0, z1 = n["dp_comm_s"]
    assert z1 == pytest.approx(2.0 * z0, rel=0.01)


def test_each_pipeline_rank_holds_the_micro_batches_its_schedule_warms_up():
    """Micro-batches of activations a pipeline rank holds at its peak, in units of its stage's: 1F1B warms up
    pp - rank - 1 forwards and runs one (PipeDream-Flush; first stage pp, last 1). Interleaved 1F1B with v chunks
    (Megatron-Core schedules.forward_backward_pipelining_with_interleaving) warms up 2 (pp - rank - 1) + (v - 1) pp
    chunk forwards and runs one, at most the step's m v chunks, a chunk being 1/v of the stage: the first stage
    pp (1 + (pp - 1) / (pp v)) (Korthikanti 2022 sec. 4.2.3), the last ((v - 1) pp + 1) / v, not 1."""
    from chipsweep.workers.memory import in_flight_factor

    p, v, m = np.array([8.0]), np.array([4.0]), np.array([32.0])
    assert in_flight_factor(p, v, m)[0] == pytest.approx(8 * (1 + 7 / 32))
    assert in_flight_factor(p, v, m, 1.0)[0] == pytest.approx((2 * 6 + 3 * 8 + 1) / 4)
    assert in_flight_factor(p, v, m, 7.0)[0] == pytest.approx((3 * 8 + 1) / 4)
    one = np.array([1.0])
    assert [in_flight_factor(p, one, m, r)[0] for r in (0.0, 1.0, 7.0)] == [8.0, 7.0, 1.0]
    assert in_flight_factor(p, one, np.array([3.0]))[0] == 3.0  # fewer micro-batches than stages
    # m = pp: every chunk's forward runs before the first backward, pp micro-batches, not pp + (pp - 1) / v
    assert in_flight_factor(p, v, p)[0] == pytest.approx(8.0)


def test_an_interleaved_last_stage_holds_its_warm_up_chunks(ctx):
    """Llama 3 8B on 8 stages with full recompute: the last stage (4 layers, the logits) sets the memory. Interleaved
    four ways it holds (3 x 8 + 1) / 4 = 6.25 micro-batches of its layers' kept inputs (2 s b h bytes each, full
    recompute) where 1F1B holds one: 5.25 x 4 layers x 2 x 8,192 x 2 x 4,096 bytes more."""
    d = run(ctx, model=["llama3_8b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[64] * 2, global_batch=[512] * 2,
            tp=[1] * 2, pp=[8] * 2, interleave=[1, 4], micro_batch=[2] * 2, recompute=["full"] * 2,
            framework=["megatron_2022"] * 2, zero_stage=[1] * 2)
    assert d["infeasible_reason"] == ["", ""]
    assert d["last_stage_layers"] == [4.0, 4.0]
    grown = (d["mem_per_chip_gb"][1] - d["mem_per_chip_gb"][0]) * 1e9
    assert grown == pytest.approx(5.25 * 4 * 2 * 8192 * 2 * 4096, rel=1e-6)


def test_fsdp_shards_its_fp32_parameters_as_the_master_and_keeps_no_16_bit_shard(ctx):
    """ZeRO-3 as Megatron-FSDP and DeepSpeed run it keeps a 16-bit shard of the weights, fp32 gradients and the fp32
    master and Adam moments: (2 + 4 + 12) / d bytes per parameter (Korthikanti 2022 Fig. 1's 18 bytes, sharded).
    FSDP keeps the sharded parameters in fp32 as the optimizer's master and casts them to 16 bits only gathered
    (torch.distributed.fsdp.MixedPrecision: 'Outside forward and backward, the sharded parameters are kept in full
    precision'): (4 + 4 + 8) / d. Llama 3 8B over 8 chips: 2 bytes x 8.03e9 / 8 less under FSDP than Megatron-FSDP,
    the gathered layers and the activations alike."""
    d = run(ctx, model=["llama3_8b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[8] * 2, global_batch=[64] * 2,
            tp=[1] * 2, pp=[1] * 2, micro_batch=[1] * 2, recompute=["full"] * 2, zero_stage=[3] * 2,
            framework=["fsdp", "megatron_core_2025"], grad_bytes=[4] * 2, flash=["true"] * 2,
            **{"chip.memory_gb": [1e4] * 2})
    assert d["infeasible_reason"] == ["", ""]
    n = float(ctx.model_terms["n_params"][ctx.models.ids.index("llama3_8b")])
    assert n == pytest.approx(8.03e9, rel=0.01)
    # FSDP also keeps its root unit gathered across the loss, 2 bytes x (2 V·h + 2 h): the untied embedding and head
    # and the final norm (zero3_keeps_head 2; no source says Megatron-FSDP does)
    head = (2 * 128256 * 4096 + 2 * 4096) * 2.0
    assert (d["mem_per_chip_gb"][1] - d["mem_per_chip_gb"][0]) * 1e9 == pytest.approx(2.0 * n / 8 - head, abs=4096)


def test_zero3_hides_each_pass_collectives_behind_that_pass_only_zhao2023_sec3():
    """FSDP (Zhao et al. 2023 sec. 3.3-3.4) prefetches the forward's gathers behind the forward and the backward's
    gather and reduce-scatter behind the backward. With 16-bit weights and fp32 gradients a layer moves g forward and
    g + 2g backward; without recompute the backward is 2/3 of the compute. At g = 0.8 of the forward's compute the
    forward hides its gather and the backward leaves 3(0.8) - 2 = 0.4 forward-compute units exposed. Pooled over the
    whole layer (the model before 2026-12-05) the 4g = 3.2 units hid behind 3: 0.2 exposed, half the real figure."""
    from chipsweep.workers.training import zero3_exposed

    t_fwd = 1.0
    g = 0.8 * t_fwd
    window = 3.0 * t_fwd  # the whole layer: forward + 2x backward, all hideable (overlap 1)
    got = zero3_exposed(np.array([g]), np.array([3.0 * g]), np.array([window]), 2.0 / 3.0)
    assert got[0] == pytest.approx(3.0 * g - 2.0 * t_fwd)
    assert got[0] > max(4.0 * g - window, 0.0)  # the pooled figure
    # full recompute: the backward holds the recomputed forward too (3 of 4 passes)
    rc = zero3_exposed(np.array([g]), np.array([3.0 * g]), np.array([4.0 * t_fwd]), 3.0 / 4.0)
    assert rc[0] == pytest.approx(0.0)
    # a forward gather longer than the forward shows even when the backward has room
    slow_fwd = zero3_exposed(np.array([1.5]), np.array([1.5]), np.array([window]), 2.0 / 3.0)
    assert slow_fwd[0] == pytest.approx(0.5)


def test_nccl_all_gathers_and_reduce_scatters_are_rings_of_n_minus_1_steps(ctx):
    """NVIDIA/nccl src/graph/tuning.cc (ncclTopoTuneModel): all-gather and reduce-scatter run only as rings, latency
    baseLat + (nRanks - nNodes) x intra step + (nNodes - 1) x network step (Simple: 8.4, 3.4 and 9.6 us). ZeRO-1's
    reduce-scatter and all-gather on Megatron of 2022 (no overlap) each pay it once per step: 16 data-parallel ranks
    one per node (tp = 8) are 15 network steps. Sequence parallelism's reduce-scatters and all-gathers over the 8
    tensor-parallel ranks of a node pay it every layer pass: 2 per all-reduce they replace, 6 of those a layer with
    full recompute, 7 NVLink steps each. TPUs (XLA collectives) are not NCCL rings."""
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        model=["llama2_70b"] * 2, chip=["nvidia_h100_sxm", "google_tpu_v5p"], n_chips=[1024] * 2,
        global_batch=[1024] * 2, tp=[8] * 2, pp=[8] * 2, micro_batch=[1] * 2, interleave=[1] * 2,
        recompute=["full"] * 2, zero_stage=[1] * 2, framework=["megatron_2022"] * 2).items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(2))
    cal = ctx.cal_for(cidx, x["framework"])
    assert x["ring"].tolist() == [1.0, 0.0]
    rings = run_training(x, cal)
    plain = run_training({**x, "ring": np.zeros(2)}, cal)
    layer_passes = (1024 / 16 + 7) * 80 / 8  # (micro-batches + the 1F1B bubble) x layers of a stage
    tp_rings = layer_passes * 6 * 2 * (8.4e-6 + 7 * 3.4e-6)
    assert rings["tp_comm_s"][0] - plain["tp_comm_s"][0] == pytest.approx(tp_rings, rel=1e-6)
    zero1_rings = 2 * (8.4e-6 + 15 * 9.6e-6)
    assert rings["step_time_s"][0] - plain["step_time_s"][0] == pytest.approx(tp_rings + zero1_rings, rel=1e-6)
    assert rings["step_time_s"][1] == plain["step_time_s"][1]


def test_deepspeed_2021_zero3_gathers_each_tensor_in_an_nccl_ring(ctx):
    """DeepSpeed of 2021 gathered ZeRO-3 parameters tensor by tensor in synchronised calls (deepspeedai/DeepSpeed
    issue #1174, PR #1188), and NCCL ran an all-gather only as a ring (NVIDIA/nccl src/graph/tuning.cc: latency
    8.4 us + 3.4 us per NVLink step + 9.6 us per network step, Simple protocol). GPT-3's 96 layers x 12 tensors x
    2 gathers per micro-batch pay that ring latency on top of the bytes, more at 1,536 GPUs than at 384."""
    def ring(n: float) -> float:
        nodes = n / 8
        return 8.4e-6 + (n - nodes) * 3.4e-6 + (nodes - 1) * 9.6e-6

    n = [384, 1536]
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        model=["gpt3_175b"] * 2, chip=["nvidia_a100_sxm_80gb"] * 2, n_chips=n, global_batch=n, tp=[1] * 2, pp=[1] * 2,
        micro_batch=[1] * 2, interleave=[1] * 2, recompute=["full"] * 2, zero_stage=[3] * 2, framework=["deepspeed_2021"] * 2,
        **{"chip.memory_gb": [1e5] * 2}).items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(2))
    cal = ctx.cal_for(cidx, x["framework"])
    per_tensor = run_training(x, cal)["step_time_s"]
    coalesced = run_training({**x, "fw_z3_tensors": np.zeros(2)}, cal)["step_time_s"]  # gathers per layer
    assert x["fw_z3_tensors"].tolist() == [1.0, 1.0]
    # one micro-batch per step, no overlap in DeepSpeed of 2021: the latency adds up in full
    assert per_tensor - coalesced == pytest.approx([96 * 12 * 2 * ring(v) for v in n], rel=1e-9)
    assert (per_tensor - coalesced)[1] == pytest.approx(14.8, abs=0.1)  # s per step at 1,536 GPUs
    assert "deepspeed" in ctx.catalog.defaults["frameworks"]
    assert not ctx.catalog.defaults["frameworks"]["deepspeed"].get("zero3_per_tensor")  # coalesced since PR #1188


def test_deepspeed_zero3_holds_its_live_parameter_limit_not_two_whole_layers(ctx):
    """DeepSpeed's ZeRO-3 releases gathered parameters beyond stage3_max_live_parameters (default 1e9) and prefetches
    stage3_prefetch_bucket_size (5e7) more (deepspeed/runtime/zero/constants.py); a tensor larger than the limit is
    still gathered whole. Narayanan 2021 Table 2 ran the 529.6B model (h = 20,480: a 4h x h MLP matrix of 1.68e9
    parameters) under ZeRO-3 on 640 80-GB A100s; with two whole layers (10.1e9 parameters, 20 GB) held it would not
    fit. FSDP keeps its units (a layer) whole: the current one and the prefetched one."""
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        layers=[105] * 2, hidden=[20480] * 2, heads=[128] * 2, vocab=[51200] * 2, seq_len=[2048] * 2, mlp=["gelu"] * 2,
        chip=["nvidia_a100_sxm_80gb"] * 2, n_chips=[640] * 2, global_batch=[2560] * 2, tp=[1] * 2, pp=[1] * 2,
        micro_batch=[4] * 2, interleave=[1] * 2, recompute=["full"] * 2, zero_stage=[3] * 2,
        framework=["deepspeed_2021", "fsdp"],
        **{"chip.memory_gb": [1e5] * 2}).items()})  # room for both, so both report their memory
    x, _, cidx = training_inputs(table, ctx, RowErrors(2))
    cal = ctx.cal_for(cidx, x["framework"])
    assert x["fw_z3_live"].tolist() == [1e9, 0.0] and x["fw_z3_prefetch"].tolist() == [5e7, 0.0]
    capped = run_training(x, cal)["mem_per_chip_gb"]
    whole = run_training({**x, "fw_z3_live": np.zeros(2)}, cal)["mem_per_chip_gb"]
    layer = 12 * 20480**2 + 4 * 20480  # parameters of one GPT layer: 4 h^2 attention, 8 h^2 MLP, two norms
    assert whole[0] - capped[0] == pytest.approx((2 * layer - (4 * 20480**2 + 5e7)) * 2 / 1e9, rel=1e-6)
    assert whole[1] == capped[1]  # FSDP: unchanged
    assert capped[0] < 80 * 0.95 < whole[0]  # fits as the published run did; two whole layers would not
    assert not ctx.catalog.defaults["frameworks"]["fsdp"].get("zero3_live_params")


def test_hybrid_sharding_shards_inside_a_group_and_all_reduces_across_the_replicas(ctx):
    """Hybrid sharding (FSDP HYBRID_SHARD, Zhao et al. 2023 sec. 3.2.3; `zero_group`): ZeRO-3 over groups of 8 GPUs
    (one node, NVLink) with the 8 replicas all-reducing their gradient shards between nodes. A zero_group equal to
    the data-parallel size is plain sharding: the same numbers as leaving it blank. Sharding over 8 instead of 64
    keeps 8x the model states per chip; the per-layer gathers stay on NVLink."""
    rows = dict(model=["llama2_13b"] * 3, chip=["nvidia_h100_sxm"] * 3, n_chips=[64] * 3, global_batch=[512] * 3,
                tp=[1] * 3, pp=[1] * 3, micro_batch=[2] * 3, interleave=[1] * 3, recompute=["full"] * 3,
                zero_stage=[3] * 3, framework=["fsdp"] * 3, zero_group=[None, 64, 8])
    table = pa.table({k: pa.array([None if v is None else str(v) for v in vals]) for k, vals in rows.items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(3))
    cal = ctx.cal_for(cidx, x["framework"])
    both = run_training(x, cal)
    for key in ("step_time_s", "mem_per_chip_gb", "dp_comm_s"):
        assert both[key][0] == both[key][1], key  # zero_group = dp: plain sharding
    one = run_training({k: v[:2] for k, v in x.items()}, {k: v[:2] if np.ndim(v) else v for k, v in cal.items()})
    assert one["step_time_s"].tolist() == both["step_time_s"][:2].tolist()  # a block without hybrid rows agrees
    params = 13.0e9
    # model states: the fp32 master (the sharded parameters themselves), 4-byte gradients and Adam's 8 bytes per
    # parameter sharded over 8 instead of 64
    assert both["mem_states_gib"][2] - both["mem_states_gib"][0] == pytest.approx(
        params * 16 * (1 / 8 - 1 / 64) / 2**30, rel=0.03)
    assert both["dp_comm_s"][2] != both["dp_comm_s"][0]


def test_pipeline_sends_stay_on_the_scale_up_link_when_consecutive_stages_share_a_domain(ctx):
    """Ranks ordered [dp][pp][tp] (Megatron-Core --use-tp-pp-dp-mapping) keep a tp·pp = 8 pipeline inside one
    8-GPU node: its sends use NVLink even though the job spans 8 nodes. Megatron of 2022 ([pp][dp][tp] only)
    sends across the network."""
    common = dict(model=["llama2_13b"] * 2, chip=["nvidia_a100_sxm_80gb"] * 2, n_chips=[64] * 2, global_batch=[512] * 2,
                  tp=[1] * 2, pp=[8] * 2, micro_batch=[1] * 2, interleave=[1] * 2, recompute=["full"] * 2,
                  zero_stage=[0] * 2, sequence_parallel=["false"] * 2, flash_attention=["false"] * 2,
                  mode=["lora"] * 2,  # adapters only: the data-parallel reduce is negligible, the sends are what differs
                  **{"chip.scale_out_gbit_s": [1.0] * 2})  # a very slow network makes the link that carries the sends show
    d = run(ctx, **common, framework=["megatron_core_2025", "megatron_2022"])
    assert d["infeasible_reason"] == ["", ""]
    assert d["step_time_s"][1] > 3 * d["step_time_s"][0]


def test_a_pipeline_stays_inside_a_domain_only_where_its_whole_replica_does(ctx):
    """Megatron-Core orders a replica's ranks tp, cp, pp (parallel_state's 'tp-cp-ep-dp-pp'; --use-tp-pp-dp-mapping
    puts dp outermost): a replica of tp x cp x pp chips. tp 2 x pp 4 = 8 fits an 8-GPU node, but with cp = 2 the
    replica spans two nodes, so no order keeps its stage boundaries off the network: the same row steps as fast with
    the mapping as without it (the slow network shows which link carries the sends)."""
    common = dict(model=["llama2_13b"] * 2, chip=["nvidia_a100_sxm_80gb"] * 2, n_chips=[64] * 2, global_batch=[64] * 2,
                  tp=[2] * 2, pp=[4] * 2, cp=[2] * 2, micro_batch=[1] * 2, interleave=[1] * 2, recompute=["full"] * 2,
                  zero_stage=[0] * 2, seq_len=[8192] * 2, mode=["lora"] * 2, framework=["megatron_core_2025"] * 2,
                  **{"chip.scale_out_gbit_s": [1.0] * 2})
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in common.items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(2))
    cal = ctx.cal_for(cidx, x["framework"])
    x["fw_pp_inner"] = np.array([1.0, 0.0])
    out = run_training(x, cal)
    assert np.isfinite(out["step_time_s"]).all()
    assert out["step_time_s"][0] == out["step_time_s"][1]


def test_uneven_pipeline_stages_run_llama3_405b_on_pp16_and_bloom_on_pp12(ctx):
    """Dubey et al. 2024 (Llama 3) sec. 3.3.2: 126 layers on 16 stages with one layer fewer on the first and
    last (7 + 14 x 8 + 7); BLOOM's 70 layers on 12 stages with the embedding counted as a layer (5 + 10 x 6 + 5).
    Megatron of 2022 required an even split; explicit first/last-stage counts are honoured."""
    d = run(ctx, model=["llama3_405b", "bloom_176b" if "bloom_176b" in ctx.catalog.models else "llama3_405b",
                        "llama3_405b", "llama3_405b"],
            chip=["nvidia_h100_sxm"] * 4, n_chips=[2048, 384 if "bloom_176b" in ctx.catalog.models else 2048, 2048, 2048],
            global_batch=[2048] * 4, tp=[8, 4 if "bloom_176b" in ctx.catalog.models else 8, 8, 8],
            pp=[16, 12 if "bloom_176b" in ctx.catalog.models else 16, 16, 16], micro_batch=[1] * 4, interleave=[1] * 4,
            recompute=["full"] * 4, zero_stage=[1] * 4, framework=["megatron", "deepspeed", "megatron_2022", "megatron"],
            first_stage_layers=[None, None, None, 6], last_stage_layers=[None, None, None, 6])
    r = d["infeasible_reason"]
    assert r[0] == "" and d["first_stage_layers"][0] == 7 and d["last_stage_layers"][0] == 7
    if "bloom_176b" in ctx.catalog.models:
        assert r[1] == "" and d["first_stage_layers"][1] == 5 and d["last_stage_layers"][1] == 5
    assert "layers not divisible" in r[2]
    assert r[3] == "" and d["first_stage_layers"][3] == 6 and d["last_stage_layers"][3] == 6


def test_a_batch_the_chips_do_not_divide_runs_the_nearest_smaller_batch_or_leaves_chips_idle(ctx):
    """OPT-175B ran on 992 GPUs with a ~1,024-sequence batch (Zhang et al. 2022): 124 replicas at tp 8 run 8
    sequences each (992); a batch smaller than the replicas leaves chips idle. The row says which."""
    d = run(ctx, model=["gpt3_175b"] * 3, chip=["nvidia_a100_sxm_80gb"] * 3, n_chips=[992, 992, 992],
            global_batch=[1024, 992, 64], tp=[8] * 3, pp=[1] * 3, micro_batch=[1] * 3, recompute=["full"] * 3,
            zero_stage=[3] * 3, framework=["fsdp"] * 3)
    assert d["infeasible_reason"] == ["", "", ""]
    assert d["batch_handling"] == ["nearest_batch", "exact", "idle_chips"]
    assert d["global_batch_run"][:2] == [992.0, 992.0]
    assert d["idle_chips"][2] == (124 - 64) * 8
    # the smaller batch never makes a faster step than the exact one of the same size
    assert d["step_time_s"][0] == pytest.approx(d["step_time_s"][1], rel=1e-9)
    # and the layout search finds OPT a layout on 992 GPUs
    s = run(ctx, model=["gpt3_175b"], chip=["nvidia_a100_sxm_80gb"], n_chips=[992], global_batch=[1024], framework=["fsdp"])
    assert s["infeasible_reason"] == [""] and s["tp"][0] * s["pp"][0] * s["dp"][0] == 992


def test_megatron_2020_has_no_sequence_parallelism_selective_recompute_or_interleaving(ctx):
    """Megatron-LM as of 2020: full recompute only; interleaving (Narayanan 2021) and sequence parallelism
    and selective recompute (Korthikanti 2022) came later; the layout search stays inside those features."""
    d = run(ctx, model=["gpt3_175b"] * 3, cluster=["azure_openai_2020"] * 3, n_chips=[1024] * 3, global_batch=[1536] * 3,
            tp=[8] * 3, pp=[16] * 3, micro_batch=[1] * 3, recompute=["selective", "full", "full"], interleave=[1, 2, 1],
            zero_stage=[0, 0, 0], framework=["megatron_2020"] * 3, sequence_parallel=[None, None, "true"])
    r = d["infeasible_reason"]
    assert "framework has no such feature" in r[0]
    assert "interleave" in r[1]
    assert "framework has no such feature" in r[2]
    s = run(ctx, model=["gpt3_175b"], cluster=["azure_openai_2020"], n_chips=[1024], global_batch=[1536], tokens=[300e9],
            framework=["megatron_2020"])
    assert s["infeasible_reason"] == [""]
    assert s["interleave"] == [1] and s["recompute"][0] in ("none", "full") and s["zero_stage"] == [0]


def test_owned_h100_cluster_cost_is_within_published_tco_analyses(ctx):
    """An owned H100 row (server and network share, measured draw x PUE, facility and operations per kW,
    4 years at 10 % cost of capital) against the per-GPU-hour range defaults.yaml `tco_checks` cites."""
    check = ctx.catalog.defaults["tco_checks"]["nvidia_h100_sxm"]
    lo, hi = check["usd_per_gpu_hour"]
    assert "gpu-tco-analysis" in check["source"]
    d = run(ctx, model=["llama3_70b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[512] * 2, global_batch=[1024] * 2,
            tokens=[1e12] * 2, cost_basis=["owned", "rental"])
    assert d["cost_basis"] == ["owned", "rental"]
    per_hour = d["cost_usd"][0] / d["chip_hours"][0]
    assert lo <= per_hour <= hi, per_hour
    assert d["capex_usd"][0] + d["opex_usd"][0] == pytest.approx(d["cost_usd"][0], rel=1e-9)
    assert d["capex_usd"][0] > d["opex_usd"][0] > 0
    assert np.isnan(d["capex_usd"][1]) and d["cost_usd"][1] / d["chip_hours"][1] == pytest.approx(1.9, rel=1e-6)


def test_an_owned_system_pays_no_host_share_and_an_unpriced_chip_no_part_of_a_cost(ctx):
    """The owned purchase is the chip's price plus a server's host share (defaults.yaml host_usd, an 8-GPU server's
    CPUs and chassis) plus the network's share -- but a price that buys a whole system (`purchase_scope: system`, a
    DGX Spark) already holds its host: a cost analyst's audit found one owned DGX Spark charged $18,249 of purchase
    for a $3,999 desktop. And a chip without a purchase price has no owned cost: its running costs alone
    (`opex_usd`) once stood in the row and would rank it cheapest in a sum or a min."""
    from chipsweep.workers.training import capital_recovery

    tco = {k: float(v["value"]) for k, v in ctx.catalog.defaults["defaults"].items()}
    d = run(ctx, model=["gpt3_125m"] * 3, chip=["nvidia_dgx_spark_gb10", "nvidia_rtx_4090", "nvidia_gb200_per_gpu"],
            n_chips=[1, 1, 8], global_batch=[8, 8, 64], seq_len=[2048] * 3, tokens=[1e8] * 3, tp=[1] * 3, pp=[1] * 3,
            cost_basis=["owned", "owned", None])
    per_hour = capital_recovery(tco["cost_of_capital"], tco["amortization_years"]) / 8766.0
    spark, card = ctx.catalog.chips["nvidia_dgx_spark_gb10"], ctx.catalog.chips["nvidia_rtx_4090"]
    assert spark.cost_scope == "system" and card.cost_scope == "accelerator"
    assert d["capex_usd"][0] / d["chip_hours"][0] == pytest.approx((spark.purchase_usd + tco["network_usd"]) * per_hour,
                                                                   rel=1e-6)
    assert d["capex_usd"][1] / d["chip_hours"][1] == pytest.approx(
        (card.purchase_usd + tco["host_usd"] + tco["network_usd"]) * per_hour, rel=1e-6)
    # ... nor a host's power: the system's draw is the whole computer's; a card's adds its host's share
    draw = tco["power_draw_fraction"] * tco["pue"] * 1e-6  # MWh per W-hour of TDP at the facility
    assert d["energy_mwh"][0] == pytest.approx(d["chip_hours"][0] * spark.tdp_w * draw, rel=1e-5)
    assert d["energy_mwh"][1] == pytest.approx(
        d["chip_hours"][1] * (card.tdp_w * tco["power_draw_fraction"] + tco["host_power_w"]) * tco["pue"] * 1e-6, rel=1e-5)
    # the GB200 has neither a rental nor a purchase price: no cost, no basis, and no part of a cost either
    assert np.isnan(d["cost_usd"][2]) and np.isnan(d["capex_usd"][2]) and np.isnan(d["opex_usd"][2])
    assert d["energy_mwh"][2] > 0  # its energy stands: the draw is known


def test_calibrated_on_names_the_sources_or_says_extrapolated(ctx):
    d = run(ctx, model=["llama2_7b"] * 3, chip=["nvidia_h100_sxm", "amd_mi300x", "nvidia_v100_sxm2_32gb"],
            n_chips=[64] * 3, global_batch=[512] * 3)
    on = d["calibrated_on"]
    assert "megatron_bridge" in on[0] or "llm_foundry" in on[0]
    assert on[1].startswith("extrapolated from")
    assert on[2] == "extrapolated from nvidia_gpu"  # Volta (7.0): no fitted chip of its core architecture


def test_a_chip_with_another_chips_compute_takes_its_matrix_efficiency_not_the_family_mean(ctx):
    """The H200 and H800 SXM are the H100 SXM's GH100 at its peaks and power (they differ in memory and NVLink), and
    the A100 SXM 40GB the 80GB's GA100 (`same_compute_as`): they take that chip's fitted matrix efficiency, bf16
    and fp8, where the family mean (B200 and GB200 in it) would be 8 % lower. The 40GB's own llm-foundry runs fit
    the one constant with the 80GB's, so its `calibrated_on` names them; the H200's says whose value it is."""
    ids = list(ctx.chips.ids)
    col = {c: ids.index(c) for c in ("nvidia_h100_sxm", "nvidia_h200_sxm", "nvidia_h800_sxm", "nvidia_gh200",
                                     "nvidia_a100_sxm_80gb", "nvidia_a100_sxm_40gb")}
    for key in ("mm_eff_max", "mm_eff_max_fp8"):
        eff = ctx.cal[key][0]
        assert eff[col["nvidia_h200_sxm"]] == eff[col["nvidia_h800_sxm"]] == eff[col["nvidia_h100_sxm"]]
    eff = ctx.cal["mm_eff_max"][0]
    assert eff[col["nvidia_a100_sxm_40gb"]] == eff[col["nvidia_a100_sxm_80gb"]]
    assert eff[col["nvidia_h100_sxm"]] == eff[col["nvidia_gh200"]]  # the GH200 (1,000 W): by its core architecture
    d = run(ctx, model=["llama2_7b"] * 3, chip=["nvidia_h200_sxm", "nvidia_h800_sxm", "nvidia_a100_sxm_40gb"],
            n_chips=[64] * 3, global_batch=[512] * 3)
    on = d["calibrated_on"]
    assert on[0] == on[1] == "extrapolated from nvidia_h100_sxm (same compute)"
    assert "llm_foundry" in on[2] and "vtrain_single_node" in on[2]


def test_a_chip_without_runs_takes_the_matrix_efficiency_its_measured_gemm_implies(ctx):
    """The MI300X has no published training run. Its measured fp8 GEMM (hipBLASLt, 1,159 of 2,615 TFLOP/s: 44 % of
    peak) against the H100's and GB200's (cuBLASLt, 70 % and 58 %, same Azure microbenchmark) scales their fitted
    matrix efficiencies: the geometric mean of constant x 0.443 / theirs, not the all-chip mean (0.68); at 16 bits
    the H100's alone, since the GB200's 16-bit constant, set only by the attention and output layer of its fp8
    runs, is lent to no other architecture (`lends: false`). The MI325X, unmeasured, in the MI300X's family (no
    fitted chip in it), takes the MI300X's measured share: the vendor library is the family's (the same CDNA3 compute
    and hipBLASLt); the row says whose."""
    ids = list(ctx.chips.ids)
    chips = ctx.catalog.chips
    mi = ids.index("amd_mi300x")
    frac = chips["amd_mi300x"].gemm_fraction
    assert frac == pytest.approx(1159.2 / 2614.9)
    for key in ("mm_eff_max", "mm_eff_max_fp8"):
        eff = ctx.cal[key][0]
        refs = ("nvidia_h100_sxm",) if key == "mm_eff_max" else ("nvidia_h100_sxm", "nvidia_gb200_per_gpu")
        expect = np.exp(np.mean([np.log(eff[ids.index(r)] * frac / chips[r].gemm_fraction) for r in refs]))
        assert eff[mi] == pytest.approx(expect, rel=1e-12)
        assert eff[ids.index("amd_mi325x")] == eff[mi]
    eff = ctx.cal["mm_eff_max"][0]
    assert 0.35 < eff[mi] < 0.45  # ~0.40 against the all-chip mean's ~0.68
    d = run(ctx, model=["llama2_7b"] * 2, chip=["amd_mi300x", "amd_mi325x"], n_chips=[64] * 2, global_batch=[512] * 2)
    assert d["calibrated_on"] == [  # provenance follows the 16-bit constant
        "extrapolated from nvidia_h100_sxm by measured fp8 GEMM throughput",
        "extrapolated from nvidia_h100_sxm by amd_mi300x's measured fp8 GEMM throughput (its family's)"]


def test_a_chip_without_runs_takes_its_core_architectures_fitted_matrix_efficiency(ctx):
    """NVIDIA's compute capability: 'devices with the same major revision number are of the same core architecture'
    (CUDA C++ Programming Guide). The B300 and GB300 (10.3) have the B200's and GB200's (10.0) dense bf16 and fp8
    peaks; with the nvidia_gpu family mean (Ampere and Hopper in it) the B300 ran 1.38x the B200's matrix rate at the
    same peak. They now take the fitted Blackwells' constants, bf16 and fp8 (the GB200's set, which the B200, the same
    die, shares: `same_compute_as`); the GH200 and H100 PCIe
    (9.0) the H100's; the L40S and GeForce RTX 4090 (8.9, an incremental revision of Ampere's 8) the A100's bf16
    (the A100 has no fp8 runs, so their fp8 stays the family's). A chip whose revision has no fitted chip (RTX 5090,
    12.0; V100, 7.0) keeps its family's mean."""
    ids = list(ctx.chips.ids)

    def eff(key: str, chip: str) -> float:
        return float(ctx.cal[key][0, ids.index(chip)])

    for key in ("mm_eff_max", "mm_eff_max_fp8"):
        blackwell = eff(key, "nvidia_gb200_per_gpu")
        assert eff(key, "nvidia_b200_hgx") == blackwell
        assert eff(key, "nvidia_b300_hgx") == pytest.approx(blackwell, rel=1e-12) == eff(key, "nvidia_gb300_per_gpu")
        assert eff(key, "nvidia_gh200") == eff(key, "nvidia_h100_pcie") == eff(key, "nvidia_h100_sxm")
    assert eff("mm_eff_max", "nvidia_l40s") == eff("mm_eff_max", "nvidia_rtx_4090") == eff("mm_eff_max", "nvidia_a100_sxm_80gb")
    family = ctx.cal["mm_eff_max"][0, ids.index("nvidia_v100_sxm2_32gb")]
    assert eff("mm_eff_max", "nvidia_rtx_5090") == family and eff("mm_eff_max_fp8", "nvidia_l40s") == eff(
        "mm_eff_max_fp8", "nvidia_v100_sxm2_32gb")
    # the Blackwell set is not the family's mean, so the equalities above tell the two apart: bf16 0.72 against the
    # family's 0.71, fp8 0.55 against 0.68
    assert abs(eff("mm_eff_max", "nvidia_b300_hgx") / family - 1) > 0.01
    family_fp8 = ctx.cal["mm_eff_max_fp8"][0, ids.index("nvidia_v100_sxm2_32gb")]
    assert abs(eff("mm_eff_max_fp8", "nvidia_b300_hgx") / family_fp8 - 1) > 0.1
    d = run(ctx, model=["llama2_7b"] * 3, chip=["nvidia_b300_hgx", "nvidia_gh200", "nvidia_rtx_5090"], n_chips=[64] * 3,
            global_batch=[512] * 3)
    from chipsweep.workers.context import UNMEASURED_16

    assert d["calibrated_on"] == [
        "extrapolated from nvidia_gb200_per_gpu (same core architecture, compute capability 10.x)" + UNMEASURED_16,
        "extrapolated from nvidia_h100_sxm (same core architecture, compute capability 9.x)", "extrapolated from nvidia_gpu"]
    with pytest.raises(ValueError, match=r"'ten' is not a compute capability; allowed: 'major.minor'"):
        type(ctx.catalog.chips["nvidia_b300_hgx"]).model_validate(
            {**ctx.catalog.chips["nvidia_b300_hgx"].model_dump(), "compute_capability": "ten"})


def test_a_chip_of_a_family_without_runs_takes_the_mean_measured_gemm_share_not_the_all_chip_mean(ctx):
    """A chip with no run, no twin and no GEMM measurement, in a family with neither a fitted nor a measured chip
    (Gaudi 2 and 3, the Ascends): its vendor library is taken to reach the mean measured share of peak
    (defaults.yaml gemm_reach, 0.647: five chips of the Azure microbenchmark), and the fitted chips measured that way
    (A100, H100, GB200; at 16 bits not the GB200, whose 16-bit constant is lent to none) lend their constants scaled
    by it, x 0.647 / their own share. The all-chip mean it replaces
    (0.68) mixed in the TPUs' XLA efficiencies. A chip whose family has fitted chips keeps the family's mean
    (Trainium2: Trainium1's; TPU7x: the TPUs'), and the row says which rule gave its value."""
    from chipsweep.workers.context import scaled_matrix_eff

    ids = list(ctx.chips.ids)
    chips = ctx.catalog.chips
    reach = ctx.defaults["gemm_reach"]
    refs = ("nvidia_a100_sxm_80gb", "nvidia_gb200_per_gpu", "nvidia_h100_sxm")
    for key in ("mm_eff_max", "mm_eff_max_fp8"):
        eff = ctx.cal[key][0]
        lent = refs[::2] if key == "mm_eff_max" else refs[1:]  # 16-bit: A100, H100; fp8: GB200, H100 (no A100 fp8)
        pairs = [(eff[ids.index(r)], chips[r].gemm_fraction) for r in lent]
        expect = np.exp(np.mean([np.log(v * reach / f) for v, f in pairs]))
        for chip in ("intel_gaudi2", "intel_gaudi3", "huawei_ascend_910c"):
            assert eff[ids.index(chip)] == pytest.approx(expect, rel=1e-12) == scaled_matrix_eff(reach, pairs)
    eff = ctx.cal["mm_eff_max"][0]
    assert 0.55 < eff[ids.index("intel_gaudi3")] < 0.65  # ~0.60 against the all-chip mean's 0.68
    assert eff[ids.index("aws_trainium2")] == eff[ids.index("aws_trainium1")]
    assert eff[ids.index("google_tpu7x_ironwood")] > 0.75  # the TPU family's mean
    d = run(ctx, model=["llama2_7b"] * 3, chip=["intel_gaudi3", "aws_trainium2", "google_tpu7x_ironwood"],
            n_chips=[64] * 3, global_batch=[512] * 3)
    assert d["calibrated_on"] == [
        f"extrapolated from {', '.join(refs[::2])} by the mean measured GEMM share (defaults.yaml gemm_reach; no run "
        "or GEMM measurement of its own or its family's)", "extrapolated from aws_npu", "extrapolated from google_tpu"]


@pytest.mark.parametrize(("overlay", "message"), [
    ("- id: amd_mi300x\n    gemm_measured: {precision: fp8, tflops: 3000, source: x}",
     r"amd_mi300x.*gemm_measured.tflops: 3000 is above the published fp8 peak 2614.9; allowed: a measured value up to"),
    ("- id: nvidia_a100_sxm_80gb\n    gemm_measured: {precision: fp8, tflops: 300, source: x}",
     r"gemm_measured.precision: 'fp8' has no published peak on this chip; allowed: a precision whose peak_tflops_fp8"),
    ("- {id: nvidia_h100_sxm, memory_bandwidth_measured_gb_s: 4000}",
     r"memory_bandwidth_measured_gb_s: 4000 is above the published memory_bandwidth_gb_s 3350.0; allowed: a measured"),
    ("- {id: nvidia_h100_sxm, memory_visible_gb: 90}",
     r"memory_visible_gb: 90 is above memory_gb 80.0 GiB \(85.90 GB\); allowed: what the driver exposes"),
])
def test_a_measurement_above_the_chips_peak_or_without_one_is_refused(tmp_path, overlay, message):
    from chipsweep.schemas.catalog import CatalogError, load_catalog

    path = tmp_path / "overlay.yaml"
    path.write_text(f"chips:\n  {overlay}\n")
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_same_compute_as_must_name_another_chip_without_one(tmp_path):
    """An overlay naming an unknown chip, or a chip that is itself another's, is refused at load with the field,
    the value and what is allowed; a chip whose peaks differ from its twin's is a `catalog validate` problem."""
    from chipsweep.schemas.catalog import CatalogError, load_catalog, same_compute_problems

    bad = tmp_path / "bad.yaml"
    bad.write_text("chips:\n  - {id: nvidia_h200_sxm, same_compute_as: nvidia_h999}\n")
    with pytest.raises(CatalogError, match=r"nvidia_h200_sxm.*same_compute_as 'nvidia_h999'.*allowed: the id of"):
        load_catalog(bad)
    chain = tmp_path / "chain.yaml"
    chain.write_text("chips:\n  - {id: nvidia_gh200, same_compute_as: nvidia_h200_sxm}\n")
    with pytest.raises(CatalogError, match=r"names a chip that itself has same_compute_as 'nvidia_h100_sxm'"):
        load_catalog(chain)
    faster = tmp_path / "faster.yaml"
    faster.write_text("chips:\n  - {id: nvidia_h100_sxm, peak_tflops_bf16: 1200}\n")
    cat = load_catalog(faster)  # loads: an overlay may change one of the two
    assert any("peak_tflops_bf16 is 989.4 against 1200" in p for p in same_compute_problems(cat.chips, numbers=True))
    assert same_compute_problems(load_catalog(use_env=False).chips, numbers=True) == []
    # the same die at another clock: the B200's peaks stand at 0.9 of the GB200's at every precision, which passes;
    # one peak out of that ratio is flagged, naming it against the first peak both give
    b200 = load_catalog(use_env=False).chips["nvidia_b200_hgx"]
    assert b200.same_compute_as == "nvidia_gb200_per_gpu"
    odd = tmp_path / "odd.yaml"
    odd.write_text("chips:\n  - {id: nvidia_b200_hgx, peak_tflops_fp8: 5000}\n")
    problems = same_compute_problems(load_catalog(odd).chips, numbers=True)
    assert any("peak_tflops_fp8 is 5000 against 5000 where peak_tflops_fp16 is 2250 against 2500" in p
               for p in problems), problems


def test_step_breakdown_names_the_bubble_and_the_communication_compute_does_not_hide(ctx):
    # Llama-3 70B on 64 H100s, tp 8 x pp 4 x dp 2, ZeRO-1: doubling the micro-batches adds m more stage times to
    # the step while the bubble, (pp - 1) / interleave stage times (Narayanan et al. 2021 sec. 2.2), stays; so the
    # bubble equals 3 x the added time per added micro-batch. pp = 1 has none; tp = 1 no tensor-parallel traffic;
    # a dense model no all-to-all; one replica no data-parallel traffic.
    base = dict(model="llama3_70b", chip="nvidia_h100_sxm", n_chips=64, tp=8, pp=4, micro_batch=1, interleave=1,
                recompute="selective", zero_stage=1, seq_len=8192)
    out = run(ctx, **{k: [base[k]] * 2 for k in base}, global_batch=[32, 64])
    assert out["infeasible_reason"] == ["", ""]
    step_a, step_b = out["step_time_s"]
    stage = (step_b - step_a) / (32 - 16)  # s per added micro-batch (dp 2: 16 -> 32 micro-batches)
    np.testing.assert_allclose(out["bubble_s"], [3 * stage] * 2, rtol=1e-5)
    assert all(0 < v < s for v, s in zip(out["tp_comm_s"], out["step_time_s"], strict=True))
    assert out["moe_a2a_s"] == [0.0, 0.0]
    assert all(v >= 0 for v in out["dp_comm_s"])
    flat = run(ctx, model=["llama3.2_1b"], chip=["nvidia_h100_sxm"], n_chips=[1], tp=[1], pp=[1], micro_batch=[1],
               global_batch=[8], recompute=["full"], zero_stage=[0], seq_len=[8192])
    assert (flat["bubble_s"], flat["tp_comm_s"], flat["dp_comm_s"], flat["moe_a2a_s"]) == ([0.0], [0.0], [0.0], [0.0])
    refused = run(ctx, **{k: [v] for k, v in base.items()}, global_batch=[32], **{"chip.memory_gb": [1]})
    assert refused["bubble_s"] == [None] or np.isnan(refused["bubble_s"][0])  # infeasible rows carry no breakdown


def test_a_cluster_row_says_which_chip_and_how_many_it_ran_on(ctx):
    out = run(ctx, model=["llama3_70b", "llama3_70b"], cluster=["nvidia_dgx_b300", None], chip=[None, "nvidia_h100_sxm"],
              n_chips=[None, 64], global_batch=[256, 256], seq_len=[8192, 8192])
    assert out["infeasible_reason"] == ["", ""]
    preset = ctx.catalog.clusters["nvidia_dgx_b300"]
    assert out["chip"] == [preset.chip, "nvidia_h100_sxm"] and out["n_chips"] == [preset.n_chips, 64]


def test_flash_attention_2_runs_slower_on_chips_whose_tensor_cores_need_asynchronous_mma(ctx):
    """FlashAttention-3 is 1.5-2.0x faster than FlashAttention-2 on an H100, where FA2 reaches 35 % of the peak
    (Shah et al. 2024, arXiv:2407.08608): llm-foundry's FSDP runs FA2 (defaults.yaml fsdp fa2_attention), so on an
    H100 (catalog async_mma) its attention costs FA2_ON_ASYNC_MMA x what a Hopper-native kernel costs. The gap is
    attention's alone: it grows with the sequence (s^2 attention against s GEMMs); unfused attention and the
    Megatron-Core framework (cuDNN attention) do not pay it; an A100 has no asynchronous MMA."""
    from chipsweep.workers.training import FA2_ON_ASYNC_MMA

    assert 1.5 <= FA2_ON_ASYNC_MMA <= 2.0
    assert ctx.catalog.chips["nvidia_h100_sxm"].async_mma and not ctx.catalog.chips["nvidia_a100_sxm_80gb"].async_mma
    rows = dict(model=["llama2_7b"] * 6, chip=["nvidia_h100_sxm"] * 6, n_chips=[8] * 6, global_batch=[64] * 6,
                tp=[1] * 6, pp=[1] * 6, micro_batch=[1] * 6, interleave=[1] * 6, recompute=["full"] * 6, zero_stage=[3] * 6,
                seq_len=[2048, 16384, 16384, 16384, 2048, 16384],
                framework=["fsdp", "fsdp", "fsdp", "megatron", "fsdp", "fsdp"],
                flash_attention=["true", "true", "false", "true", "true", "true"])
    table = pa.table({k: pa.array([None if v is None else str(v) for v in vals]) for k, vals in rows.items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(6))
    cal = ctx.cal_for(cidx, x["framework"])
    on = run_training(x, cal)["step_time_s"]
    off = run_training({**x, "async_mma": np.zeros(6)}, cal)["step_time_s"]
    gap = on / off - 1.0
    assert gap[0] > 0 and gap[1] > 2 * gap[0]  # FA2 on an H100 is slower, more so at 16K tokens than at 2K
    assert gap[2] == 0 and gap[3] == 0  # unfused attention, Megatron-Core's cuDNN attention: no FA2 gap
    # the flag comes from the catalog chip: every H100 row carries it, an A100 row does not
    assert np.all(x["async_mma"] == 1)
    a100 = pa.table({**{k: table.column(k) for k in table.column_names if k != "chip"},
                     "chip": pa.array(["nvidia_a100_sxm_80gb"] * 6)})
    assert np.all(training_inputs(a100, ctx, RowErrors(6))[0]["async_mma"] == 0)


def test_fp8_training_runs_its_output_layer_at_the_16_bit_rate(ctx):
    """Transformer Engine's fp8 autocast reaches TE modules only: Megatron-Core's output layer is a plain
    tensor_parallel.ColumnParallelLinear and a tied head multiplies by the 16-bit embedding table, so the logits
    GEMMs run in bf16 in an fp8 run. On one chip (no collectives) the time a larger vocabulary adds is the same in
    an fp8 and a bf16 run, while the layers' GEMMs run faster in fp8."""
    n = 4
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        model=["llama3.2_1b"] * n, chip=["nvidia_h100_sxm"] * n, n_chips=[1] * n, global_batch=[8] * n, tp=[1] * n,
        pp=[1] * n, micro_batch=[1] * n, interleave=[1] * n, recompute=["full"] * n, zero_stage=[0] * n,
        seq_len=[2048] * n, framework=["megatron"] * n, precision=["fp8", "fp8", "bf16", "bf16"]).items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(n))
    cal = ctx.cal_for(cidx, x["framework"])
    t = run_training({**x, "vocab": x["vocab"] * np.array([1.0, 1.5, 1.0, 1.5])}, cal)["step_time_s"]
    assert np.all(np.isfinite(t))
    assert t[0] < t[2]  # the layers' GEMMs in fp8: the fp8 step is shorter
    head_fp8, head_bf16 = t[1] - t[0], t[3] - t[2]
    assert head_fp8 > 0 and head_fp8 == pytest.approx(head_bf16, rel=1e-6)


def test_in_network_reduction_halves_an_all_reduce_but_not_an_all_gather():
    """Patarasuk & Yuan 2009: a ring all-reduce moves 2(n-1)/n of the bytes per chip, an all-gather or a
    reduce-scatter (n-1)/n. NVLink SHARP (NCCL NVLS) reduces in the switch: an all-reduce's chip sends its bytes once
    and takes the sum once, (n-1)/n each way. An all-gather gains nothing: every chip still takes in the other
    chips' (n-1)/n of the bytes (the ZeRO-3/FSDP parameter gathers, the ZeRO reduce-scatters)."""
    from chipsweep.workers import comm

    n, bw, nbytes = 8.0, 400e9, 1e9
    args = (np.array([n]), 1.0, np.array([8.0]), np.array([bw]), np.array([50e9]), np.array([0.0]), np.array([0.0]))
    ring, sharp = comm.Group(*args, in_network=0.0), comm.Group(*args, in_network=1.0)
    np.testing.assert_allclose(ring.allreduce(nbytes), 2 * (n - 1) / n * nbytes / bw, rtol=1e-12)
    np.testing.assert_allclose(sharp.allreduce(nbytes), (n - 1) / n * nbytes / bw, rtol=1e-12)
    for group in (ring, sharp):
        np.testing.assert_allclose(group.allgather(nbytes), (n - 1) / n * nbytes / bw, rtol=1e-12)
    # across two domains of 4 (hierarchical): the network carries (k-1)/k of each chip's 1/g share
    two = comm.Group(np.array([n]), 1.0, np.array([4.0]), np.array([bw]), np.array([50e9]), np.array([0.0]),
                     np.array([0.0]), in_network=1.0)
    np.testing.assert_allclose(two.allgather(nbytes), (3 / 4) * nbytes / bw + (1 / 2) * nbytes / 4 / 50e9, rtol=1e-12)


def test_sequence_parallel_tensor_collectives_get_no_in_network_halving(ctx):
    """Megatron's tensor parallelism all-reduces each layer output; with sequence parallelism it reduce-scatters and
    all-gathers it instead (Korthikanti 2022 sec. 4.2.2), the same ring volume. On an NVLink SHARP switch (H100
    HGX, catalog `scale_up_reduction`) the all-reduce is halved in the switch, the reduce-scatter and all-gather are
    not: with sequence parallelism the bytes' share of the tensor-parallel time doubles (the latency stays)."""
    from chipsweep.workers import comm

    n, bw, msg, lat = 8.0, 400e9, 64e6, 5e-6
    sharp = comm.Group(np.array([n]), 1.0, np.array([8.0]), np.array([bw]), np.array([50e9]), np.array([lat]),
                       np.array([0.0]), in_network=1.0)
    np.testing.assert_allclose(2 * sharp.allgather(msg) - sharp.allreduce(msg), (n - 1) / n * msg / bw, rtol=1e-12)
    base = dict(model=["llama3_70b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[64] * 2, tp=[8] * 2, pp=[1] * 2,
                micro_batch=[1] * 2, global_batch=[64] * 2, recompute=["full"] * 2, zero_stage=[1] * 2,
                framework=["megatron_2022"] * 2, sequence_parallel=["false", "true"],
                **{"chip.memory_gb": [1000] * 2})
    out = run(ctx, **base)  # a framework without TP overlap: the collectives' whole time shows
    assert out["infeasible_reason"] == ["", ""]
    assert out["tp_comm_s"][0] < out["tp_comm_s"][1] < 2.0 * out["tp_comm_s"][0], out["tp_comm_s"]


def test_tensor_parallel_overlap_needs_sequence_parallelism_and_one_scale_up_domain(ctx):
    """Megatron-Core's --tp-comm-overlap pipelines the all-gathers and reduce-scatters of sequence parallelism beside
    the GEMMs through userbuffers, which need CUDA multicast over NVLink ("only possible with single-node tensor-
    parallelism", TransformerEngine issue #1071): without sequence parallelism, or with a tensor-parallel group that
    spans two HGX nodes, nothing is hidden. Both were hidden (GPT-3 175B at tp16 on A100s: 15.7 s per step, 21.5 s
    without the overlap; Llama 3 70B at tp8 without sequence parallelism 12 % fast)."""
    def tp_comm(tp: int, sp: str, framework: str) -> float:
        out = run(ctx, model=["llama3_70b"], chip=["nvidia_h100_sxm"], n_chips=[256], pp=[1], micro_batch=[1],
                  global_batch=[256], recompute=["full"], zero_stage=[1], tp=[tp], sequence_parallel=[sp],
                  framework=[framework], **{"chip.memory_gb": [1000]})
        assert out["infeasible_reason"] == [""]
        return float(out["tp_comm_s"][0])

    # inside the 8-GPU node with sequence parallelism: most of it hidden
    assert tp_comm(8, "true", "megatron_core_2025") < 0.5 * tp_comm(8, "true", "megatron_2022")
    # without sequence parallelism, or over two nodes: the whole collective time shows, as without the overlap
    assert tp_comm(8, "false", "megatron_core_2025") == pytest.approx(tp_comm(8, "false", "megatron_2022"), rel=1e-6)
    assert tp_comm(16, "true", "megatron_core_2025") == pytest.approx(tp_comm(16, "true", "megatron_2022"), rel=1e-6)


def test_sliding_window_layers_count_the_band_of_causal_pairs_in_time_and_mfu(ctx):
    """Gemma 3 27B (report sec. 2: 5 local layers of a 1024-token window per global layer; 52 of 62 here) at 32K
    tokens: a windowed layer's causal attention covers s^2/2 - (s - w)^2/2 (query, key) pairs instead of s^2/2. The
    model FLOPs of a step drop by exactly that (x 3 passes, 2 s^2 q_dim per causal layer); the same shapes without a
    window (explicit columns, no catalog id) count the full triangle, and at s <= w nothing changes."""
    m = ctx.catalog.models["gemma3_27b"]
    assert (m.sliding_window, m.sliding_window_layers) == (1024, 52)
    row = dict(chip="nvidia_h100_sxm", n_chips=64, tp=4, pp=1, micro_batch=1, global_batch=64, recompute="full",
               zero_stage=1, tokens=1e9)
    own = dict(layers=62, hidden=5376, heads=32, kv_heads=16, head_dim=128, ffn_hidden=21504, vocab=262208,
               mlp="swiglu", position="rope")
    out = run(ctx, **{k: [v, v, v, v] for k, v in row.items()},
              model=["gemma3_27b", None, "gemma3_27b", None], seq_len=[32768, 32768, 1024, 1024],
              **{k: [None, v, None, v] for k, v in own.items() if k != "position"})
    assert out["infeasible_reason"] == ["", "", "", ""]
    s, w, q_dim = 32768.0, 1024.0, 32 * 128
    per_seq = 3 * 52 * 2 * s * s * q_dim * (1 - w / s) ** 2  # model FLOPs per sequence the band leaves out
    step_flops = np.array(out["model_tflops_per_chip"]) * 1e12 * np.array(out["step_time_s"]) * 64  # per step
    np.testing.assert_allclose(step_flops[1] - step_flops[0], 64 * per_seq, rtol=1e-6)
    assert out["step_time_s"][0] < out["step_time_s"][1]  # FlashAttention skips the blocks outside the band
    np.testing.assert_allclose(step_flops[2], step_flops[3], rtol=1e-9)  # s <= w: no change
    np.testing.assert_allclose(out["step_time_s"][2], out["step_time_s"][3], rtol=1e-9)


def test_tensor_parallel_overlap_hides_no_more_than_the_gemms_it_runs_beside(ctx):
    """Megatron-Core's --tp-comm-overlap runs each tensor-parallel collective beside the layer's matrix multiplies:
    it can hide a share of the communication, never more than that GEMM time. Tensor parallelism of 16 across two
    8-GPU H100 nodes sends each layer's activations over 400 Gb/s NICs: the communication outlasts the GEMMs and
    stays mostly exposed, and the layout search keeps tensor parallelism inside the NVLink domain. (Until 2026-12-03
    the overlap hid 91 % of any amount, and the search chose tp 16 for Llama 3 70B in fp8 on 1,024 H100s.)"""
    base = dict(model="llama3_70b", chip="nvidia_h100_sxm", n_chips=1024, global_batch=1024, tokens=15e12,
                precision="fp8", micro_batch=4, zero_stage=2, recompute="none", pp=1)
    out = run(ctx, **{k: [v] * 2 for k, v in base.items()}, tp=[16, 8],
              **{"chip.memory_gb": [80, 400]})  # tp 8 given room to fit: the same work, its collectives on NVLink
    assert out["infeasible_reason"] == ["", ""]
    (step16, step8), (tp16, tp8) = out["step_time_s"], out["tp_comm_s"]
    assert tp16 > 0.4 * step16 and tp8 < 0.25 * step8, out
    assert step16 > 1.3 * step8
    searched = run(ctx, model=["llama3_70b"] * 2, chip=["nvidia_h100_sxm", "nvidia_b200_hgx"], n_chips=[1024] * 2,
                   global_batch=[1024] * 2, tokens=[15e12] * 2, precision=["fp8"] * 2)
    assert searched["infeasible_reason"] == ["", ""]
    assert all(t <= 8 for t in searched["tp"]), searched["tp"]


def test_a_row_that_leans_on_a_stand_in_or_lacks_an_output_says_why_in_notes(ctx, tmp_path):
    """A chip whose sources publish no Infinity Fabric or NIC rate (the MI355X as it stood until 2026-12-04, an
    overlay blanking its links): a multi-node row's collectives run at the PCIe fallback and its notes say so (a
    single chip uses no link); a chip without any price (the H800) gets no cost and says which field to give; a chip
    whose sources give everything carries no note."""
    overlay = tmp_path / "no-links.yaml"
    overlay.write_text("chips:\n  - {id: amd_mi355x, scale_up_gb_s: null, scale_out_gbit_s: null}\n")
    blank = Context.build(load_catalog(overlay))
    out = run(blank, model=["llama3_8b"] * 4, chip=["amd_mi355x", "amd_mi355x", "nvidia_h800_sxm", "nvidia_h100_sxm"],
              n_chips=[16, 1, 16, 16], global_batch=[64] * 4, tokens=[1e12] * 4)
    assert out["infeasible_reason"] == [""] * 4
    multi, single, h800, h100 = out["notes"]
    assert "no published scale-up link" in multi and "no published scale-out link" in multi
    assert "chip.scale_up_gb_s" in multi and "chip.usd_per_hour" in multi
    assert "link" not in single and "cost not computed" in single
    assert h800.startswith("cost not computed") and "link" not in h800 and np.isnan(out["cost_usd"][2])
    assert h100 == "" and out["cost_usd"][3] > 0
    given = run(blank, model=["llama3_8b"], chip=["amd_mi355x"], n_chips=[16], global_batch=[64], tokens=[1e12],
                **{"chip.scale_up_gb_s": [448], "chip.scale_out_gbit_s": [400], "chip.usd_per_hour": [2.0]})
    assert given["notes"] == [""] and given["cost_usd"][0] > 0
    # the built-in catalog's MI355X carries its platform's links: only the missing price is left to say
    built_in = run(ctx, model=["llama3_8b"], chip=["amd_mi355x"], n_chips=[16], global_batch=[64], tokens=[1e12])
    assert built_in["notes"][0].startswith("cost not computed") and "link" not in built_in["notes"][0]


def test_trainium_nics_are_the_instances_efa_over_its_16_chips(ctx):
    """AWS publishes EFA per instance (trn1.32xlarge 800 Gbps, trn2-16.48xlarge 3,200 Gbps, 16 chips each): the
    catalog's per-chip NIC rate is that over 16, so a row of two Trn2 instances runs its data-parallel traffic on
    EFA and carries no stand-in note (until 2026-12-04 the Trn2's was blank and ran at the PCIe stand-in)."""
    assert ctx.catalog.chips["aws_trainium1"].scale_out_gbit_s == pytest.approx(800 / 16)
    assert ctx.catalog.chips["aws_trainium2"].scale_out_gbit_s == pytest.approx(3200 / 16)
    out = run(ctx, model=["llama3_8b"], chip=["aws_trainium2"], n_chips=[32], global_batch=[64], tokens=[1e12])
    assert out["infeasible_reason"] == [""] and "link" not in out["notes"][0], out["notes"]


def test_the_layout_search_minimises_the_time_per_token_not_the_step(ctx):
    """A candidate that runs a smaller valid batch (batch_handling nearest_batch) takes a shorter step for fewer
    tokens: steps do not compare, the time per token does. Llama 3 8B on 2,048 H100s at a batch of 15,360: the
    search ranked by step time picked micro-batches of 4 under full recompute (8,192 sequences a step, 14.0 M
    tokens/s); by time per token it finds 18.0 M (one sequence per replica, 14,336 a step). The searched row is at
    least as fast per token as every layout given explicitly."""
    base = dict(model="llama3_8b", chip="nvidia_h100_sxm", n_chips=2048, global_batch=15360, tokens=1e12)
    given = [dict(tp=1, pp=1, micro_batch=4, zero_stage=3, recompute="full"),
             dict(tp=1, pp=1, micro_batch=1, zero_stage=2, recompute="none"),
             dict(tp=2, pp=1, micro_batch=2, zero_stage=1, recompute="selective")]
    rows = [{}, *given]
    keys = ["tp", "pp", "micro_batch", "zero_stage", "recompute"]
    out = run(ctx, **{k: [v] * len(rows) for k, v in base.items()}, **{k: [r.get(k) for r in rows] for k in keys})
    assert out["infeasible_reason"] == [""] * len(rows)
    searched, *explicit = out["tokens_per_s"]
    assert searched >= max(explicit) * (1 - 1e-9), (searched, explicit)
    assert searched > 1.2 * explicit[0]  # the step-time pick


def test_the_layout_search_chooses_expert_parallelism_for_a_mixture_of_experts(ctx):
    """ep is part of a MoE row's layout: blank, the search tries every ep the experts and the replicas allow (a
    dense row keeps ep = 1). Kimi K2 (1.04 T parameters, 384 experts) on 512 H100s: with its experts sharded the
    search finds a faster layout than the best it can find at ep = 1. (On 256 H100s, since the memory model reads the
    85.5 GB an H100 exposes, tensor parallelism over 8 and 32 stages fit at ep = 1 and win.)"""
    rows = dict(model=["kimi_k2", "kimi_k2", "llama3_8b"], chip=["nvidia_h100_sxm"] * 3, n_chips=[512] * 3,
                global_batch=[4096] * 3, tokens=[1e12] * 3, precision=["fp8"] * 3, ep=[None, 1, None])
    out = run(ctx, **rows)
    assert out["infeasible_reason"] == ["", "", ""]
    assert out["ep"][0] > 1 and out["ep"][1] == 1 and out["ep"][2] == 1
    assert out["tokens_per_s"][0] > out["tokens_per_s"][1]


def test_every_datacenter_training_chip_trains_a_blank_precision_in_16_bits(ctx):
    """A blank precision is the chip's 16-bit mixed precision (bf16, else fp16). The MI355X's catalog entry had FP8,
    FP4 and FP32 peaks but no 16-bit one, so its rows trained in fp32 at 157 TFLOP/s: 16x below the MI300X's bf16
    rate, off every frontier. Its 16-bit rate is now derived (half the FP8 rate, as CDNA 3 publishes) and flagged low
    confidence; every datacenter training chip must have one."""
    cat = ctx.catalog
    chips = [cid for cid, c in cat.chips.items() if c.chip_class == "datacenter_training"]
    no16 = [cid for cid in chips if cat.chips[cid].peak_tflops_bf16 is None and cat.chips[cid].peak_tflops_fp16 is None]
    assert no16 == []
    mi355x = cat.chips["amd_mi355x"]
    assert "peak_tflops_bf16" in mi355x.low_confidence_fields and "peak_tflops_bf16" in mi355x.derived
    out = run(ctx, model=["llama3_8b"] * 2, chip=["amd_mi355x", "amd_mi300x"], n_chips=[8, 8], global_batch=[64, 64])
    assert out["precision"] == ["bf16", "bf16"]
    mi355, mi300 = (t / 8 for t in out["tokens_per_s"])
    assert mi355 > mi300  # twice the matrix rate, 1.5x the bandwidth: faster than its predecessor, not 8x slower


def test_the_mi325x_trains_at_least_as_fast_as_the_mi300x_whose_silicon_and_platform_it_shares(ctx):
    """The MI325X is the MI300X's CDNA 3 silicon with more and faster HBM, a drop-in replacement on the MI300X's
    8-GPU Infinity Fabric platform. With its links blank in the catalog its collectives ran at the PCIe stand-in, and
    on 2,048 chips Llama 3 8B trained at 3,401 tokens/s per chip against the MI300X's 7,694; its links are now the
    platform's (derived, low confidence). The same holds for the H200 against the H100 (GH100, more HBM), and for
    the MI355X (CDNA 4: about twice the 16-bit rate, 7 x 153.6 GB/s Infinity Fabric links reported from AMD's Hot
    Chips 2025 talk), whose blank links had put Llama 3 70B on 2,048 of them at 16 % MFU and 92 days against the
    MI300X's 36 % and 81."""
    pairs = [("amd_mi325x", "amd_mi300x"), ("nvidia_h200_sxm", "nvidia_h100_sxm"), ("amd_mi355x", "amd_mi300x")]
    chips = [c for pair in pairs for c in pair]
    n = len(chips)
    for model in ("llama3_8b", "llama3_70b"):
        out = run(ctx, model=[model] * n, chip=chips, n_chips=[2048] * n, global_batch=[1024] * n, seq_len=[8192] * n)
        assert out["infeasible_reason"] == [""] * n, out["infeasible_reason"]
        per_chip = dict(zip(chips, (t / 2048 for t in out["tokens_per_s"]), strict=True))
        for newer, older in pairs:
            assert per_chip[newer] >= per_chip[older], (model, newer, per_chip)
    for chip_id in ("amd_mi325x", "amd_mi355x"):
        chip = ctx.catalog.chips[chip_id]
        assert {"scale_up_gb_s", "scale_out_gbit_s"} <= set(chip.low_confidence_fields) & set(chip.derived)



def test_a_blank_framework_runs_the_software_of_the_chips_family(ctx):
    """Megatron-Core does not run on TPUs or Trainium: a blank `framework` is the chip family's own stack
    (defaults.yaml framework_default: MaxText on TPUs, NeuronX Distributed on Trainium, Megatron-DeepSpeed on Gaudi),
    whose features and fitted constants are the ones its chips' published runs fitted. Before, every blank row ran
    as Megatron-Core, so a TPU row hid 91 % of its tensor-parallel traffic (Megatron's --tp-comm-overlap) where
    MaxText's TPU runs fit 38 %."""
    chips = ["google_tpu_v5p", "aws_trainium1", "intel_gaudi2", "nvidia_h100_sxm"]
    common = dict(model=["llama3_70b"] * 6, n_chips=[256] * 6, global_batch=[512] * 6, tp=[8] * 6, pp=[1] * 6,
                  micro_batch=[1] * 6, zero_stage=[1] * 6, recompute=["selective"] * 6)
    out = run(ctx, chip=[*chips, "google_tpu_v5p", "google_tpu_v5p"],
              framework=[None, None, None, None, "maxtext", "megatron"], **common)
    assert out["framework"] == ["maxtext", "neuronx", "deepspeed", "megatron", "maxtext", "megatron"]
    t = out["step_time_s"]
    assert t[0] == pytest.approx(t[4], rel=1e-12)  # blank on a TPU = MaxText, exactly
    assert t[0] > t[5]  # MaxText's fitted overlaps hide less than Megatron-Core's
    assert "maxtext_configs_2023" in out["calibrated_on"][0] or "tpu_recipes" in out["calibrated_on"][0]


def test_a_framework_default_rule_naming_an_unknown_framework_is_refused():
    """defaults.yaml framework_default is catalog data: a rule naming a framework the core does not have is a
    catalog error naming the field, the value and what is allowed, not a silent fallback."""
    import copy
    import dataclasses

    from chipsweep.schemas.catalog import CatalogError

    cat = load_catalog(use_env=False)
    defaults = copy.deepcopy(cat.defaults)
    defaults["framework_default"] = [{"vendor": "Google", "framework": "jax"}, {"framework": "megatron"}]
    with pytest.raises(CatalogError) as exc:
        Context.build(dataclasses.replace(cat, defaults=defaults))
    assert "framework_default" in str(exc.value) and "'jax'" in str(exc.value) and "maxtext" in str(exc.value)


def test_training_and_serving_read_the_memory_the_driver_exposes(ctx):
    """An '80 GB' H100 exposes 81,559 MiB (85.5 GB, nvidia-smi; catalog memory_visible_gb), an '80 GB' A100
    81,920 MiB: 80 GiB, as HBM stacks are sized. The training path had read memory_gb as 80e9 bytes, 7 % short of
    the serving path's and of the chip's: at 95 % usable, 76.0 GB where 81.2 GB are there. A chip without a
    measurement reads memory_gb as GiB (TPU v5e: 16 GiB), and the 'GB' of a B200 is decimal (192.3 GB)."""
    from chipsweep.workers.tables import chip_link_arrays

    ids = list(ctx.chips.ids)
    mem = chip_link_arrays(ctx.chips.cols, ctx.defaults)["mem_bytes"]
    assert mem[ids.index("nvidia_h100_sxm")] == pytest.approx(81_559 * 2**20, rel=1e-5)
    assert mem[ids.index("nvidia_a100_sxm_80gb")] == pytest.approx(80 * 2**30, rel=1e-5)
    assert mem[ids.index("nvidia_b200_hgx")] == pytest.approx(183_359 * 2**20, rel=1e-5)
    assert mem[ids.index("google_tpu_v5e")] == 16 * 2**30
    # a what-if on memory_gb keeps the share the driver exposes: a 160 GB H100 would show twice 85.5 GB
    cols = dict(ctx.chips.cols, memory_gb=ctx.chips.cols["memory_gb"] * 2.0)
    twice = chip_link_arrays(cols, ctx.defaults)["mem_bytes"]
    assert twice[ids.index("nvidia_h100_sxm")] == pytest.approx(2 * 81_559 * 2**20, rel=1e-5)
    # a layout that needs more than 76 GB and less than 81 GB fits an H100 (Llama 3.1 405B in bf16 at tp 8, pp 8, cp 2
    # without recompute, the layout Megatron-Bridge's fp8 recipe runs on 1,024 H100; in fp8 its saved GEMM inputs
    # take one byte and it needs about 71 GB), and the refusal of a larger one (pp 4) names the bytes
    d = run(ctx, model=["llama3_405b"] * 2, chip=["nvidia_h100_sxm"] * 2, n_chips=[1024] * 2, tp=[8] * 2,
            pp=[8, 4], cp=[2, 2], interleave=[8, 1], micro_batch=[1, 1], global_batch=[1536] * 2, seq_len=[8192] * 2,
            precision=["bf16", "fp8"], recompute=["none", "none"])
    assert d["fits"] == [True, False], d["mem_per_chip_gb"]
    assert 76.0 < d["mem_per_chip_gb"][0] <= 0.95 * 85.521, d["mem_per_chip_gb"]
    assert "GB usable (95% of the chip's 85.5 GB)" in d["infeasible_reason"][1], d["infeasible_reason"][1]


def test_an_overlay_that_changes_memory_keeps_the_share_the_driver_exposes(tmp_path):
    """An overlay that gives the H100 40 GB (and no memory_visible_gb of its own) scales the measured visible bytes
    with it, as a row what-if on memory_gb does: 85.52 GB of 80 GiB becomes 42.76 GB of 40 GiB."""
    from chipsweep.schemas.catalog import load_catalog

    path = tmp_path / "o.yaml"
    path.write_text("chips:\n  - {id: nvidia_h100_sxm, memory_gb: 40}\n")
    chip = load_catalog(path).chips["nvidia_h100_sxm"]
    assert chip.memory_visible_gb == pytest.approx(85.521 / 2)
    assert chip.memory_visible_share == pytest.approx(81_559 / 81_920, rel=1e-4)


def test_the_loss_over_the_logits_pays_its_memory_traffic(ctx):
    """The loss over the logits (their cast, softmax and its gradient over the vocabulary) is memory-bound work on the
    last stage (Wijmans et al. 2024, 'Cut Your Losses in Large-Vocabulary Language Models', arXiv:2411.09009: for
    small models the logits outweigh the rest of the model). The core moves the bytes the loss keeps twice, forward
    and backward, at the element-wise kernels' rate: per micro-batch 2 x b·s x V / tp x bytes x elem_traffic /
    mem_eff / bandwidth, with 4 + 2 bytes a logit where the loss keeps an fp32 copy and 2 where it works in place.
    GPT-3 Small (125M, vocabulary 50,257 at 768 wide) on one A100 under llm-foundry's FSDP: the step time moves by
    exactly that between the two losses: about 9 % of the step with the fp32 copy, 3 % in place."""
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        model=["gpt3_125m"], chip=["nvidia_a100_sxm_80gb"], n_chips=[1], global_batch=[8], tp=[1], pp=[1],
        micro_batch=[4], interleave=[1], recompute=["none"], zero_stage=[3], seq_len=[2048],
        framework=["fsdp"]).items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(1))
    cal = ctx.cal_for(cidx, x["framework"])
    fused = run_training({**x, "fw_ce_in_place": np.ones(1)}, cal)["step_time_s"][0]
    upcast = run_training({**x, "fw_ce_in_place": np.zeros(1)}, cal)["step_time_s"][0]
    vocab = ctx.catalog.models["gpt3_125m"].vocab
    rate = np.asarray(cal["elem_traffic"]).reshape(-1)[0] / np.asarray(cal["mem_eff"]).reshape(-1)[0] / float(x["mem_bw"][0])
    per_byte = 2 * 4 * 2048 * vocab * rate  # two passes over one micro-batch's logits, per byte a logit
    assert upcast - fused == pytest.approx(2 * per_byte * 4, rel=1e-6)  # 2 micro-batches, 4 bytes more a logit
    assert 2 * per_byte * 6 / upcast > 0.05  # with the fp32 copy, over 5 % of the 125M model's step (2 % in place)
    assert 0.02 < 2 * per_byte * 2 / fused < 0.05


def test_zero3_gathers_its_root_unit_every_micro_batch_and_keeps_the_head_across_the_loss(ctx):
    """FSDP wraps each transformer block as a unit and leaves the embedding, the output head and the final norm to
    the root unit, gathered when the forward starts (nothing to hide behind) and reduce-scattered when the backward
    ends. Llama 3 8B's untied head is V·h = 0.525 B parameters more in that unit than the same widths with a tied head:
    each micro-batch gathers them (2 bytes) and reduce-scatters their gradients (4 bytes) over the 8 GPUs' NVLink.
    The head, used on both sides of the loss, stays gathered across it, at the activations' peak (FSDP's root is not
    resharded after forward, so the whole unit stays; DeepSpeed's reuse distance keeps the head): 2 bytes a parameter
    on the chip; a framework that keeps neither gathers the head again for its backward. Before, the root unit cost no
    time and the head no memory."""
    n = 3
    rows = dict(chip=["nvidia_h100_sxm"] * n, n_chips=[8] * n, global_batch=[8, 16, 24], tp=[1] * n, pp=[1] * n,
                micro_batch=[1] * n, interleave=[1] * n, recompute=["full"] * n, zero_stage=[3] * n, framework=["fsdp"] * n,
                grad_bytes=[4] * n, seq_len=[8192] * n, **{"chip.memory_gb": [1e4] * n})
    tied = run(ctx, layers=[32] * n, hidden=[4096] * n, heads=[32] * n, kv_heads=[8] * n, ffn_hidden=[14336] * n,
               vocab=[128256] * n, mlp=["swiglu"] * n, **rows)  # explicit shapes: a tied head
    untied = run(ctx, model=["llama3_8b"] * n, **rows)
    assert tied["infeasible_reason"] == untied["infeasible_reason"] == [""] * n
    head = 128256 * 4096
    extra = [u - t for u, t in zip(untied["dp_comm_s"], tied["dp_comm_s"], strict=True)]  # s per step, 1-3 micro-batches
    per_mb = extra[0]
    assert extra[1] == pytest.approx(2 * per_mb, rel=1e-9) and extra[2] == pytest.approx(3 * per_mb, rel=1e-9)
    # a ring all-gather and reduce-scatter move (n - 1) / n of the bytes; the share of NVLink's 450 GB/s that implies
    link_share = head * (2 + 4) * 7 / 8 / (per_mb * 450e9)
    assert 0.5 < link_share <= 0.95, link_share
    # the gathered head across the loss: FSDP keeps it, a framework that re-gathers it in the backward does not
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(model=["llama3_8b"], **{
        k: v[:1] for k, v in rows.items()}).items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(1))
    cal = ctx.cal_for(cidx, x["framework"])
    assert x["fw_z3_head"].tolist() == [2.0]  # FSDP keeps its whole root unit: the embedding and the head
    kept, only_head, regathered = (run_training({**x, "fw_z3_head": np.full(1, v)}, cal) for v in (2.0, 1.0, 0.0))
    root = 2 * head + 2 * 4096  # the untied embedding and head, the final norm
    assert (kept["mem_per_chip_gb"][0] - regathered["mem_per_chip_gb"][0]) * 1e9 == pytest.approx(root * 2, rel=1e-6)
    assert (only_head["mem_per_chip_gb"][0] - regathered["mem_per_chip_gb"][0]) * 1e9 == pytest.approx(head * 2, rel=1e-6)
    # ... and a framework that does not keep the head gathers it again for the backward: more exposed traffic
    assert regathered["dp_comm_s"][0] > kept["dp_comm_s"][0] == only_head["dp_comm_s"][0]
    assert not ctx.catalog.defaults["frameworks"]["maxtext"].get("zero3_keeps_head")


def test_the_optimizer_step_moves_adams_bytes_for_the_shard_a_chip_updates(ctx):
    """Mixed-precision Adam (Micikevicius et al. 2018; ZeRO sec. 3) reads a parameter's gradient, fp32 master weight
    and two moments and writes the three fp32 values and the model's 16-bit copy back: 4 + 12 + 12 + 2 = 30 bytes
    with fp32 gradients, 28 where the fp32 master is the parameter itself (FSDP's shards). Under ZeRO-1 a chip updates
    its 1/d shard only; the core once read and wrote the whole 16-bit weights and gradients on every chip, 2 x (2 + 4
    + 12/d) bytes per parameter (12.4 at d = 64, where the shard's step moves 0.47)."""
    from chipsweep.workers.memory import optimizer_step_bytes_per_param

    assert optimizer_step_bytes_per_param(2.0, 4.0) == 30.0
    assert optimizer_step_bytes_per_param(0.0, 4.0) == 28.0
    # Llama 3 8B (8.03e9 parameters) in bf16 with fp32 gradients on H100s: ZeRO-0 on 8 chips updates every parameter
    # on each, ZeRO-1 over 8 and over 64 data-parallel ranks 1/8 and 1/64 of them: the step's `optimizer_s`
    n = 3
    out = run(ctx, model=["llama3_8b"] * n, chip=["nvidia_h100_sxm"] * n, n_chips=[8, 8, 64], zero_stage=[0, 1, 1],
              global_batch=[64, 64, 512], tp=[1] * n, pp=[1] * n, micro_batch=[1] * n, recompute=["full"] * n,
              grad_bytes=[4] * n, framework=["megatron"] * n, **{"chip.memory_gb": [1e4] * n})
    assert out["infeasible_reason"] == [""] * n
    params = float(ctx.model_terms["n_params"][ctx.models.ids.index("llama3_8b")])
    opt = out["optimizer_s"]
    # the rate it implies: 30 bytes a parameter at one share of the H100's 3.35 TB/s (the fitted element-wise one)
    share = params * 30.0 / opt[0] / 3.35e12
    assert 0.5 < share <= 0.95, share
    assert opt[1] == pytest.approx(opt[0] / 8, rel=1e-9) and opt[2] == pytest.approx(opt[0] / 64, rel=1e-9)


def test_a_full_mesh_domain_gives_a_group_only_the_links_to_its_members(ctx):
    """An MI300X platform joins its 8 GPUs by a full mesh of Infinity Fabric links, 7 per GPU at 64 GB/s a direction
    (448 GB/s in all), one to each peer and no switch: a tensor-parallel pair reaches one link, 64 GB/s, a group of 4
    three, all 8 the whole 448 (comm.mesh_share). The core gave every group the whole 448, so the layout search put
    Mixtral 8x7B on 512 MI300X at tp 2 (3,499 tokens/s per chip, 0.10 s of tensor-parallel traffic a step); at its
    one link that traffic is 6.5x, and tp 8 over the whole mesh is unchanged. An H100's NVSwitch gives any group the
    whole link."""
    from chipsweep.workers.comm import mesh_share

    assert mesh_share(np.array([2.0, 4.0, 8.0]), 8.0, 1.0).tolist() == pytest.approx([1 / 7, 3 / 7, 1.0])
    assert mesh_share(2.0, 8.0, 0.0) == 1.0
    assert ctx.catalog.chips["amd_mi300x"].scale_up_full_mesh and not ctx.catalog.chips["nvidia_h100_sxm"].scale_up_full_mesh
    n = 3
    table = pa.table({k: pa.array([str(v) for v in vals]) for k, vals in dict(
        model=["mixtral_8x7b"] * n, chip=["amd_mi300x"] * n, n_chips=[512] * n, global_batch=[1024] * n, tp=[2, 4, 8],
        pp=[1] * n, ep=[1] * n, micro_batch=[1] * n, recompute=["full"] * n, tokens=[1e12] * n, interleave=[1] * n,
        zero_stage=[1] * n, precision=["bf16"] * n, framework=["megatron"] * n).items()})
    x, _, cidx = training_inputs(table, ctx, RowErrors(n))
    cal = ctx.cal_for(cidx, x["framework"])
    assert x["up_mesh"].tolist() == [1.0] * n
    mesh = run_training(x, cal)["tp_comm_s"]
    switch = run_training({**x, "up_mesh": np.zeros(n)}, cal)["tp_comm_s"]
    assert mesh[0] > 5 * switch[0] and mesh[1] > 1.5 * switch[1]  # one link of seven, three of seven
    assert mesh[2] == pytest.approx(switch[2], rel=1e-12)  # all eight: the whole mesh


def test_a_what_if_domain_beyond_the_mesh_links_is_taken_as_a_switch(ctx):
    """An MI300X's seven Infinity Fabric links join eight GPUs: a what-if `chip.scale_up_domain` of 16-64 cannot be
    that mesh (each GPU would need 15-63 links), so it is taken as a switch of the same bandwidth per GPU. Kept a mesh,
    the same 448 GB/s spread over 15-63 links made a larger domain slower: a what-if audit read Llama 3 70B at tp 16 on
    64 MI300X at 25.5 s a step with a 16-GPU domain, 39.3 s with 32 and 68.4 s with 64, against 41.0 s at the
    platform's 8 (the tensor-parallel group crossing the network)."""
    d = run(ctx, model=["llama3_70b"] * 4, chip=["amd_mi300x"] * 4, n_chips=[64] * 4, global_batch=[128] * 4,
            tp=[16] * 4, pp=[2] * 4, dp=[2] * 4, micro_batch=[1] * 4, recompute=["selective"] * 4, zero_stage=[1] * 4,
            **{"chip.scale_up_domain": [8, 16, 32, 64]})
    step = d["step_time_s"]
    assert step[1] < 0.7 * step[0]  # the tensor-parallel group inside the domain, at the full 448 GB/s
    assert step[3] <= step[2] <= step[1] * 1.001  # a larger domain is never slower


def test_offloaded_activations_must_fit_the_chips_share_of_host_memory() -> None:
    """Activation offloading parks the saved activations of `offload_layers` layers in host memory, which is finite:
    a v6e host has 1,536 GiB of DRAM for its 8 chips (Cloud TPU v6e documentation), 192 GiB each. A frontier audit
    found Llama 3 70B on 256 v6e at micro-batch 2 without recompute, 79 of 80 layers offloaded (~350 GB per chip in
    host memory), reading 1,119 tokens/s per chip, 17 % above tpu-recipes' published 960 for the chip, with nothing
    checking the host could hold it. The row is now refused with the reason naming the field; a what-if host of 400
    GiB holds it (300 does not), and at micro-batch 1 (half the activations) the real host does."""
    import warnings

    import chipsweep

    base = dict(model="llama3_70b", chip="google_tpu_v6e", n_chips=256, global_batch=1024, tokens=15e12, tp=1, pp=1,
                micro_batch=2, recompute="none", zero_stage=3, offload_layers=79)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refused, big, small, half = chipsweep.evaluate(
            [base, {**base, "chip.host_memory_gb": 400}, {**base, "chip.host_memory_gb": 300},
             {**base, "micro_batch": 1}], kind="training").to_pylist()
    assert np.isnan(refused["tokens_per_s"]) and "chip.host_memory_gb" in refused["infeasible_reason"]
    assert np.isnan(small["tokens_per_s"]) and "host memory" in small["infeasible_reason"]
    assert big["tokens_per_s"] > 0 and not big["infeasible_reason"]
    assert half["tokens_per_s"] > 0 and not half["infeasible_reason"]
    # the catalog's figure is the source's DRAM per host over its chips, in GiB as memory_gb
    assert load_catalog().chips["google_tpu_v6e"].host_memory_gb == 1536 / 8
