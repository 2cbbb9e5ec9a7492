"""Training memory per chip: model states by ZeRO stage, activations from the architecture, per pipeline stage.

Sources:
- Rajbhandari et al. 2020, "ZeRO" (arXiv:1910.02054) sec. 3 and 5: mixed-precision Adam keeps 2 (weights)
  + 2 (gradients) + 12 (fp32 master, momentum, variance) bytes per parameter; stages 1/2/3 shard the
  optimizer state, then the gradients, then the weights over the d data-parallel ranks.
- Megatron-LM accumulates gradients in fp32 (4 bytes), which gives 18 bytes/parameter; Korthikanti et al.
  2022 Figure 1 (parameters+gradients+optimizer per GPU) matches 18 bytes exactly.
- Korthikanti et al. 2022 (arXiv:2205.05198) sec. 4.1 and Table 2: activation bytes per layer for GPT-3
  (f = 4h, multi-head attention, dropout, 16-bit): attention 11·sbh + 5·a·s²·b, MLP 19·sbh, norms 4·sbh =
  s·b·h·(34 + 5·a·s/h); with tensor parallelism s·b·h·(10 + 24/t + 5·a·s/(h·t)); sequence parallelism
  divides the 10 by t too; selective recompute drops the 5·a·s/h score term; full recompute keeps the
  2·s·b·h layer input. `activation_bytes_per_layer` rebuilds those terms tensor by tensor from the
  architecture (ffn width f, GELU or gated MLP, GQA/MQA kv width, dropout present or not, element size),
  so it equals Table 2 for GPT-3 and follows Llama-style models where their terms differ.
- Dao 2023, FlashAttention-2 (arXiv:2307.08691) sec. 3.1: the score matrix is never stored; the forward
  keeps the output and the fp32 log-sum-exp per row (4 bytes per head per token).
- Korthikanti sec. 4.2.3: with 1F1B the first stage holds min(p, m) micro-batches in flight; interleaving
  multiplies its activations by 1 + (p-1)/(p·v). The last stage holds one micro-batch and the logits.
- Megatron-LM keeps the word embedding on the first stage and a copy for the output layer on the last
  stage when p > 1 (tied or not; `setup_embeddings_and_output_layer`); an untied head (Llama) is a second
  V·h matrix even at p = 1. Cross-entropy runs on fp32 logits: Megatron's vocab-parallel cross entropy (fused
  or not, megatron/core/tensor_parallel/cross_entropy.py `calculate_logits_max`) upcasts with .float() and saves
  the softmax in that fp32 tensor for the backward; PyTorch holds the 16-bit logits beside it at the cast.
"""

from __future__ import annotations

import numpy as np

from chipsweep.workers.transformer import SSD_CHUNK, Shapes, layer_params

Array = np.ndarray
GIB = 2.0**30


def optimizer_step_bytes_per_param(weight_bytes: Array | float, grad_bytes: Array | float) -> Array | float:
    """Bytes the optimizer step moves per parameter it updates (Adam, mixed precision: Micikevicius et al. 2018,
    arXiv:1710.03740; ZeRO sec. 3): it reads the gradient, the fp32 master weight and both moments, writes the master
    and the moments back and writes the model's copy of the weight (`weight_bytes`; 0 where the fp32 master is the
    parameter itself, FSDP's sharded parameters). Under ZeRO-1 and above a chip updates only its shard."""
    return grad_bytes + 12.0 + 12.0 + weight_bytes


def model_state_bytes_per_param(zero_stage: Array, dp: Array, weight_bytes: Array, grad_bytes: Array) -> Array:
    """Bytes per parameter held on one chip for weights, gradients and Adam state (ZeRO sec. 5):
    stage 1 shards the optimizer state over the d replicas, stage 2 the gradients too, stage 3 the weights."""
    opt = 12.0  # fp32 master weights + momentum + variance, bytes per parameter
    inv_dp = 1.0 / dp
    dtype = np.result_type(dp)

    def share(on: Array) -> Array:  # 1/d where the stage shards the term, else 1 (a blend: exact in float32 too)
        f = on.astype(dtype)
        return f * inv_dp + (1.0 - f)

    return (
        weight_bytes * share(zero_stage >= 3)
        + grad_bytes * share(zero_stage >= 2)
        + opt * share(zero_stage >= 1)
    )


def params_first_stage(m: Shapes, tp: Array, pp: Array, per_layer: Array | None = None) -> Array:
    """Parameters on one chip of the first pipeline stage with an even split: its layers' share plus the
    (vocab-parallel) embedding shard, and the untied output head too when the model has one stage."""
    p_layer = layer_params(m) if per_layer is None else per_layer
    return stage_params(m.layers / pp, p_layer, m, tp, pp, first=True)


def stage_params(layers: Array, p_layer: Array, m: Shapes, tp: Array, pp: Array, *, first: bool) -> Array:
    """Parameters on one chip of the first (`first`) or last pipeline stage holding `layers` layers."""
    dtype = np.result_type(layers)
    one_stage = (pp <= 1).astype(dtype)
    embed = m.vocab * m.hidden  # parameters of one V x h matrix
    if first:
        # input embedding (+ learned positions); with one stage the head is here too, a second matrix if untied
        extra = embed + m.learned_pos * m.seq * m.hidden + one_stage * (1.0 - m.tied) * embed
    else:
        # the output layer: Megatron keeps a copy of the (tied) embedding on the last stage
        extra = embed * (1.0 - one_stage) + one_stage * (embed * (2.0 - m.tied) + m.learned_pos * m.seq * m.hidden)
    return (layers * p_layer + extra) / tp


def activation_bytes_per_layer(
    m: Shapes, micro_batch: Array, tp: Array, seq_parallel: Array, flash: Array, act_bytes: Array | float = 2.0,
    dropout: Array | float = 1.0, gemm_in_bytes: Array | float | None = None,
) -> tuple[Array, Array, Array]:
    """Bytes of activations one layer keeps for backward, for one micro-batch on one chip, with recompute
    (none, selective, full). Korthikanti 2022 sec. 4.1 term by term (comments give Table 2's GPT-3 share).
    `gemm_in_bytes`: bytes per element of a saved matrix-multiply input (the attention and MLP inputs, the output
    projection's and the second MLP matrix's inputs), `act_bytes` where not given. Transformer Engine's fp8 layers
    save the fp8 copy they cast for the GEMM (1 byte, plus an 8-bit scale per 32 under MXFP8), not the 16-bit one."""
    s, b, h, a, e = m.seq, micro_batch, m.hidden, m.heads, act_bytes
    g = e if gemm_in_bytes is None else gemm_in_bytes
    sb = s * b  # tokens of the micro-batch
    q, kv, f = m.q_dim, m.kv_dim, m.ffn
    sp = seq_parallel > 0
    shard = np.where(sp, tp, 1.0)  # sequence parallelism shards the norms and dropouts too
    # outside the tensor-parallel regions: two norm inputs (4 sbh), the attention and MLP inputs (2 + 2 sbh, GEMM
    # inputs), two dropout masks of one byte (2 sbh)
    outside = sb * h * (2.0 * e + 2.0 * g + 2.0 * dropout)
    # inside (split over t): Q, K, V (2+2+2 sbh), the output projection's input (2 sbh, a GEMM input), the MLP's
    # activation input and output (8 + 8 sbh for GELU at f = 4h; gated: gate, up and their product; the last one
    # the second matrix's input)
    n_act = m.n_proj  # tensors of width f kept by the MLP: 2 (GELU) or 3 (SwiGLU)
    att_share, mlp_share, ssm_share = m.shares()
    if m.hybrid:
        # a hybrid layer is one block with one norm and one input (Megatron-Core's hybrid pattern): the mean over the
        # layers of the blocks' own terms; a Mamba-2 block (Dao & Gu 2024 sec. 7) keeps its input projection's output
        # (z, x, B, C, dt), the convolution's output (x, B, C), the scan's output and the out-projection's input (a
        # GEMM input, d_in each), and the fp32 state of every chunk of SSD_CHUNK tokens (H x P x N)
        assert m.ssm_groups is not None and m.ssm_state is not None and m.ssm_heads is not None
        blocks = 0.5 * (att_share + mlp_share + ssm_share)  # of a transformer layer's two
        outside = outside * blocks
        d_in, bc = m.ssm_inner, 2.0 * m.ssm_groups * m.ssm_state
        ssm = sb * (e * (2.0 * d_in + bc + m.ssm_heads + d_in + bc + d_in) + g * d_in
                    + 4.0 * d_in * m.ssm_state / SSD_CHUNK)
        inside = (sb * (att_share * (e * (q + 2.0 * kv) + g * q) + mlp_share * (e * (n_act - 1.0) * f + g * f))
                  + ssm_share * ssm)
    else:
        inside = sb * (e * (q + 2.0 * kv + (n_act - 1.0) * f) + g * (q + f))
    inside_sel = inside
    mla = m.mla
    if mla is not None:
        # latent attention (DeepSeek-V2/V3): queries and keys of a·(d_h + d_R), values and the output projection's
        # input of a·d_h, and the latents the up-projections read (query rank, key-value rank, RoPE key; GEMM
        # inputs). Selective recompute re-runs the up-projections in the backward (DeepSeek-V3 sec. 3.2.3;
        # Megatron-Core 'mla_up_proj'): only the output projection's input and the latents stay
        assert m.mla_q_rank is not None and m.mla_kv_rank is not None and m.mla_rope is not None
        a, d, r = m.heads, m.head_dim, m.mla_rope
        latents = m.mla_q_rank + m.mla_kv_rank + r
        inside = inside + mla * sb * (e * (2.0 * a * (d + r) + a * d - q - 2.0 * kv) + g * (a * d + latents - q))
        inside_sel = inside - mla * e * sb * (2.0 * a * (d + r) + a * d)
    # the score matrix: softmax output, dropout mask and output (5·a·s²·b); FlashAttention keeps the fp32
    # log-sum-exp per head and token instead
    scores = att_share * ((1.0 - flash) * (a * s * sb * (e + dropout * (1.0 + e))) + flash * (4.0 * a * sb))
    selective = outside / shard + inside_sel / tp  # = 34·sbh/t for GPT-3 with sequence parallelism
    none = outside / shard + (inside + scores) / tp
    full = e * sb * h / shard  # only the layer input is kept
    return none, selective, full


def in_flight_factor(pp: Array, interleave: Array, micro_batches: Array, rank: Array | float = 0.0) -> Array:
    """Micro-batches whose activations pipeline rank `rank` (0: the first stage) holds at its peak, in units of
    its whole stage's activations for one micro-batch. 1F1B (PipeDream-Flush): the pp - rank - 1 warm-up forwards
    and the one in flight, at most the step's micro-batches. Interleaved 1F1B with v model chunks per rank
    (Megatron-Core schedules.forward_backward_pipelining_with_interleaving): 2 (pp - rank - 1) + (v - 1) pp warm-up
    chunk forwards and one in flight, at most the m v chunks of the step, each chunk 1/v of the stage; on the first
    stage pp (1 + (pp - 1) / (pp v)) (Korthikanti et al. 2022 sec. 4.2.3), on the last ((v - 1) pp + 1) / v."""
    dtype = np.result_type(pp)
    plain = np.minimum(pp - rank, micro_batches)
    v = np.maximum(interleave, 1.0)
    chunks = np.minimum(2.0 * (pp - rank - 1.0) + (v - 1.0) * pp + 1.0, micro_batches * v) / v
    return np.where(interleave > 1, chunks, plain).astype(dtype, copy=False)


def kept_per_layer(per_layer: tuple[Array, Array, Array], recompute: Array) -> Array:
    """Bytes one layer keeps for its backward under each row's recompute (0 none, 1 selective, 2 full)."""
    none, selective, full = per_layer
    return np.where(recompute == 2, full, np.where(recompute == 1, selective, none))


def activation_bytes_stage(
    per_layer: tuple[Array, Array, Array], layers: Array, in_flight: Array, recompute: Array
) -> Array:
    """Activation bytes on one chip of a stage with `layers` layers and `in_flight` micro-batches held."""
    none = per_layer[0]
    kept = kept_per_layer(per_layer, recompute)  # bytes per layer
    dtype = np.result_type(layers)
    # full recompute re-materialises one layer at a time during backward: add its working set
    return kept * layers * in_flight + (recompute == 2).astype(dtype) * none


def activation_bytes_first_stage(
    per_layer: tuple[Array, Array, Array], layers: Array, pp: Array, interleave: Array, recompute: Array,
    micro_batches: Array | None = None,
) -> Array:
    """Activation bytes on a chip of the first stage of an even split, 1F1B (interleaved) schedule."""
    m = pp if micro_batches is None else micro_batches
    return activation_bytes_stage(per_layer, layers / pp, in_flight_factor(pp, interleave, m), recompute)
