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
- Dao & Gu 2024, "Transformers are SSMs" (Mamba-2, arXiv:2405.21060) sec. 6-7: a Mamba-2 layer projects h to
  z, x (heads x head_dim = d_in each), B, C (groups x state each) and dt (one per head), runs a causal
  convolution over x, B, C, the SSD scan, a gated norm and projects d_in back to h; the chunked SSD algorithm
  (chunks of Q tokens) costs per token 2QNG (C.B^T within a chunk), 2QPH (those scores times x), 2NPH (chunk
  states) and 2NPH (states to outputs) FLOPs.
- Megatron-Core hybrid models (MambaModel, `hybrid_override_pattern`: M state-space, * attention, - MLP,
  E MoE): every layer is one block with its own pre-norm, so a hybrid model's L layers hold attention, MLP and
  state-space blocks in the counts its pattern gives. Per-layer quantities below are the mean over the L layers
  (as the MoE layers are), the way a hybrid's stages and FLOPs add up.

All arrays broadcast; integers arrive as float64 so products of large sizes never overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray
# tokens per SSD chunk (Q): the Mamba-2 module's default chunk_size (state-spaces/mamba mamba_ssm/modules/mamba2.py)
SSD_CHUNK = 256.0


def hybrid_rows(layers: Array, att_layers: Array, mlp_layers: Array, ssm_layers: Array) -> Array:
    """Per row: True where a model's layers are not all attention + MLP (state-space blocks, or attention or MLP
    blocks in only some layers)."""
    return (np.asarray(ssm_layers) > 0) | (att_layers != layers) | (mlp_layers != layers)


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
    # hybrid models (None: every layer an attention block and an MLP block): attention blocks, MLP (or MoE) blocks
    # and Mamba-2 blocks among the L layers, and the Mamba-2 shapes (heads H, head width P, state N, B/C groups G,
    # convolution taps K)
    att_layers: Array | None = None
    mlp_layers: Array | None = None
    ssm_layers: Array | None = None
    ssm_heads: Array | None = None
    ssm_head_dim: Array | None = None
    ssm_state: Array | None = None
    ssm_groups: Array | None = None
    ssm_conv: Array | None = None

    @property
    def hybrid(self) -> bool:
        """True when some row's layers are not all attention + MLP (a hybrid state-space model)."""
        if self.att_layers is None or self.mlp_layers is None or self.ssm_layers is None:
            return False
        return bool(hybrid_rows(self.layers, self.att_layers, self.mlp_layers, self.ssm_layers).any())

    def shares(self) -> tuple[Array | float, Array | float, Array | float]:
        """Attention, MLP and state-space blocks per layer (1, 1, 0 for a transformer)."""
        if not self.hybrid:
            return 1.0, 1.0, 0.0
        assert self.mlp_layers is not None and self.ssm_layers is not None and self.att_layers is not None
        return self.att_layers / self.layers, self.mlp_layers / self.layers, self.ssm_layers / self.layers

    @property
    def ssm_inner(self) -> Array | float:
        """d_in = H x P, the width of a Mamba-2 block's x and z (0 without state-space blocks)."""
        if self.ssm_heads is None or self.ssm_head_dim is None:
            return 0.0
        return self.ssm_heads * self.ssm_head_dim

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


def _ssm(m: Shapes) -> tuple[Array, Array, Array, Array, Array] | None:
    """A hybrid's Mamba-2 shapes (heads H, d_in = H x P, state N, groups G, convolution taps K); None without."""
    if (not m.hybrid or m.ssm_heads is None or m.ssm_head_dim is None or m.ssm_state is None or m.ssm_groups is None
            or m.ssm_conv is None):
        return None
    return m.ssm_heads, m.ssm_heads * m.ssm_head_dim, m.ssm_state, m.ssm_groups, m.ssm_conv


def ssm_matrix_params(m: Shapes) -> Array | float:
    """Weights of one Mamba-2 block's projections (Dao & Gu 2024 sec. 7): in h -> z, x (d_in each), B, C (G x N
    each) and dt (H); out d_in -> h. 0 without state-space blocks."""
    ssm = _ssm(m)
    if ssm is None:
        return 0.0
    heads, d_in, n, g, _ = ssm
    return m.hidden * (2.0 * d_in + 2.0 * g * n + heads) + d_in * m.hidden


def ssm_other_params(m: Shapes) -> Array | float:
    """A Mamba-2 block's parameters outside its projections: the depthwise convolution over x, B, C (K taps and a
    bias per channel), A, D and the dt bias per head, and the gated norm's d_in weights."""
    ssm = _ssm(m)
    if ssm is None:
        return 0.0
    heads, d_in, n, g, k = ssm
    return (d_in + 2.0 * g * n) * (k + 1.0) + 3.0 * heads + d_in


def ssm_scan_flops_per_token(m: Shapes, chunk: float = SSD_CHUNK) -> Array | float:
    """Forward FLOPs per token of one Mamba-2 block's SSD scan and convolution (Dao & Gu 2024 sec. 6-7): within a
    chunk of Q tokens C.B^T per group (2QNG) and the scores times x per head (2QPH); the chunk states and the
    states to the outputs (2NPH each); the depthwise convolution (2K per channel of x, B, C). 0 without them."""
    ssm = _ssm(m)
    if ssm is None:
        return 0.0
    _, hp, n, g, k = ssm
    return 2.0 * chunk * (n * g + hp) + 4.0 * n * hp + 2.0 * k * (hp + 2.0 * g * n)


def layer_matrix_params(m: Shapes) -> Array:
    """Weights of one layer's matrix multiplies (attention projections and the MLP; a hybrid's mean over its
    attention, MLP and state-space blocks), parameters."""
    mlp = m.n_proj * m.hidden * m.ffn  # 2*h*f (GELU) or 3*h*f (SwiGLU)
    if not m.hybrid:
        return attention_params(m) + mlp
    att, mlps, ssm = m.shares()
    return att * attention_params(m) + mlps * mlp + ssm * ssm_matrix_params(m)


def layer_params(m: Shapes) -> Array:
    """All parameters of one layer: matrices plus a norm per block (two for a transformer layer: ~4h, with biases
    for GELU models) and a state-space block's convolution, per-head scalars and gated norm."""
    if not m.hybrid:
        return layer_matrix_params(m) + 4.0 * m.hidden
    att, mlps, ssm = m.shares()
    return layer_matrix_params(m) + 2.0 * m.hidden * (att + mlps + ssm) + ssm * ssm_other_params(m)


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
    att_share, _, ssm_share = m.shares()
    # FLOPs per layer: 2 * tokens * weights, and a hybrid's state-space scans (their mean over the layers)
    mm = 2.0 * s * layer_matrix_params(m) + s * ssm_share * ssm_scan_flops_per_token(m)
    att = 4.0 * s * s * m.att_dim * (0.5 if causal else 1.0) * att_share  # FLOPs per layer: QK^T and attention x V
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
