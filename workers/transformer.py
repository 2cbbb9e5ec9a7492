"""Parameter and FLOP counts of a dense decoder-only transformer, vectorised over configurations.

Sources:
- Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM" (SC21, arXiv:2104.04473), eq. 2 (parameters) and eq. 3 (FLOPs per iteration).
- Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
  (arXiv:2205.05198), sec. 5: selective recompute re-runs the attention core (QK^T, softmax, x V) once.
- Chowdhery et al. 2022, "PaLM" (arXiv:2204.02311), appendix B: model FLOPs 6N + 12·L·a·d_h·s per token
  (full s^2 attention).
- Dao 2023, FlashAttention-2 (arXiv:2307.08691) sec. 3: a causal mask skips the blocks above the diagonal
  (half the score FLOPs); the backward pass costs 2.5x the forward (it recomputes the scores).

Convention here: model FLOPs (MFU) count the attention a causal decoder needs, s^2/2 per head (the useful
work, as inference does); hardware FLOPs (HFU) add the recomputed passes at the same count. Published
figures that count the full s^2 (Narayanan eq. 3, PaLM, llm-foundry, MaxText before mid-2025) are
converted by the validation cases with their own formula (`megatron_flops_per_iteration`), never mixed in.
- Hu et al. 2021, "LoRA" (arXiv:2106.09685): frozen weights need no weight gradients.

All arrays broadcast; integers arrive as float64 so products of large sizes never overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Shapes:
    """Per-configuration model shapes (float64 arrays, broadcastable)."""

    layers: Array  # L
    hidden: Array  # h
    heads: Array  # a
    kv_heads: Array  # a_kv (GQA / multi-query)
    head_dim: Array  # d_h
    ffn: Array  # f
    vocab: Array  # V
    seq: Array  # s
    n_proj: Array  # MLP projections: 2 (GELU) or 3 (SwiGLU)
    learned_pos: Array  # 1 if learned positional embeddings (s*h parameters)
    tied: Array  # 1 if input and output embeddings are shared
    # multi-head latent attention (0 or None: standard attention): query rank (0: no query bottleneck), key-value
    # latent rank, decoupled RoPE key width
    mla_q_rank: Array | None = None
    mla_kv_rank: Array | None = None
    mla_rope: Array | None = None

    @property
    def q_dim(self) -> Array:
        return self.heads * self.head_dim  # a * d_h, = h for most models (PaLM: 12288 vs h = 18432)

    @property
    def kv_dim(self) -> Array:
        return self.kv_heads * self.head_dim

    @property
    def mla(self) -> Array | None:
        """1 where the attention is latent (MLA), else 0; None when no row has it."""
        if self.mla_kv_rank is None or not bool((np.asarray(self.mla_kv_rank) > 0).any()):
            return None
        rank = np.asarray(self.mla_kv_rank)
        return (rank > 0).astype(rank.dtype if rank.dtype.kind == "f" else np.float64)  # the block's float type

    @property
    def att_dim(self) -> Array:
        """Width of the attention core per token, (QK^T width + AV width) / 2 summed over heads: a * d_h for
        standard attention; a * (2 d_h + d_rope) / 2 for MLA, whose query-key heads carry the RoPE part too."""
        mla = self.mla
        if mla is None:
            return self.q_dim
        assert self.mla_rope is not None
        return self.q_dim + mla * 0.5 * self.heads * self.mla_rope


def attention_params(m: Shapes) -> Array:
    """Weights of one layer's attention projections. Standard (GQA/MQA): Q and O of a*d_h, K and V of a_kv*d_h.
    MLA (DeepSeek-V2 arXiv:2405.04434 sec. 2.1.2-2.1.3, DeepSeek-V3 arXiv:2412.19437 sec. 2.1.1): queries
    h -> d'_c -> a(d_h + d_R) (or h -> a(d_h + d_R) without a query bottleneck), one latent h -> d_c plus the
    shared RoPE key h -> d_R, keys and values d_c -> a*d_h each, output a*d_h -> h."""
    standard = 2.0 * m.hidden * m.q_dim + 2.0 * m.hidden * m.kv_dim  # Q and O, then K and V shrunk by GQA
    mla = m.mla
    if mla is None:
        return standard
    assert m.mla_q_rank is not None and m.mla_kv_rank is not None and m.mla_rope is not None
    h, a, d, rope, qr, kvr = m.hidden, m.heads, m.head_dim, m.mla_rope, m.mla_q_rank, m.mla_kv_rank
    qk = a * (d + rope)  # query width: every head's key part and RoPE part
    q = np.where(qr > 0, h * qr + qr * qk, h * qk)
    latent = h * (kvr + rope) + kvr * 2.0 * a * d  # down to the latent and the RoPE key, up to keys and values
    return mla * (q + latent + a * d * h) + (1.0 - mla) * standard


def mla_up_params(m: Shapes) -> Array:
    """Weights of a latent-attention layer's up-projections (latent -> queries, latent -> keys and values; the
    query projection from h where there is no query bottleneck): what selective recompute re-runs in the backward
    instead of keeping the queries, keys and values (DeepSeek-V3 arXiv:2412.19437 sec. 3.2.3, 'Recomputation of
    RMSNorm and MLA Up-Projection'; Megatron-Core recompute_modules 'mla_up_proj'). 0 for standard attention."""
    mla = m.mla
    if mla is None:
        return 0.0 * m.hidden
    assert m.mla_q_rank is not None and m.mla_kv_rank is not None and m.mla_rope is not None
    a, d, qr, kvr = m.heads, m.head_dim, m.mla_q_rank, m.mla_kv_rank
    qk = a * (d + m.mla_rope)
    return mla * (np.where(qr > 0, qr, m.hidden) * qk + kvr * 2.0 * a * d)


def layer_matrix_params(m: Shapes) -> Array:
    """Weights of one layer's matrix multiplies (attention projections and the MLP), parameters."""
    mlp = m.n_proj * m.hidden * m.ffn  # 2*h*f (GELU) or 3*h*f (SwiGLU)
    return attention_params(m) + mlp


def layer_params(m: Shapes) -> Array:
    """All parameters of one layer: matrices plus two norms (~4h, with biases for GELU models)."""
    return layer_matrix_params(m) + 4.0 * m.hidden


def total_params(m: Shapes) -> Array:
    """Parameters of the whole model (Narayanan eq. 2 generalised to GQA, SwiGLU, untied embeddings)."""
    embed = m.vocab * m.hidden * (2.0 - m.tied)  # input (+ output when untied) embeddings
    pos = m.learned_pos * m.seq * m.hidden  # learned positions (GPT-3, OPT); none with RoPE/ALiBi
    return m.layers * layer_params(m) + embed + pos + 2.0 * m.hidden


def fwd_flops_per_seq(m: Shapes, causal: bool = True) -> tuple[Array, Array, Array]:
    """Forward FLOPs for one sequence: (matrix multiplies per layer, attention scores per layer, logits).

    Attention QK^T and attention x V: 4·s^2·a·d_h per layer for the full matrix, half of it causal.
    """
    s = m.seq
    mm = 2.0 * s * layer_matrix_params(m)  # FLOPs per layer: 2 * tokens * weights
    att = 4.0 * s * s * m.att_dim * (0.5 if causal else 1.0)  # FLOPs per layer: QK^T and attention x V
    logits = 2.0 * s * m.hidden * m.vocab  # FLOPs: output projection
    return mm, att, logits


def model_flops_per_seq(m: Shapes, causal: bool = True) -> Array:
    """Model FLOPs (forward + backward, no recompute) per sequence; with causal=False, Narayanan eq. 3
    without recompute (72BsLh^2(1 + s/6h + V/12hL) per batch)."""
    mm, att, logits = fwd_flops_per_seq(m, causal)
    return 3.0 * (m.layers * (mm + att) + logits)


def recompute_flops_per_seq(m: Shapes, recompute: Array, causal: bool = True) -> Array:
    """Extra hardware FLOPs per sequence for recompute 0 = none, 1 = selective, 2 = full.

    Full re-runs each layer's forward (Narayanan eq. 3: 96 vs 72 with causal=False); selective re-runs
    the attention core's forward once (Korthikanti sec. 5), the pass the time model charges too.
    """
    mm, att, _ = fwd_flops_per_seq(m, causal)
    full = m.layers * (mm + att)
    selective = m.layers * att
    return np.where(recompute == 2, full, np.where(recompute == 1, selective, 0.0))


def megatron_flops_per_iteration(m: Shapes, batch: Array, recompute_full: bool) -> Array:
    """Narayanan et al. 2021 eq. 3, the FLOPs its "achieved TFLOP/s" divides by (full s^2 attention):
    96·B·s·L·h²·(1 + s/6h + V/16Lh) with full recompute, 72·B·s·L·h²·(1 + s/6h + V/12Lh) without."""
    per_seq = model_flops_per_seq(m, causal=False)
    if recompute_full:
        per_seq = per_seq + recompute_flops_per_seq(m, np.asarray(2.0), causal=False)
    return per_seq * batch
