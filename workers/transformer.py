"""Parameter and FLOP counts of a dense decoder-only transformer, vectorised over configurations.

Sources:
- Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM" (SC21, arXiv:2104.04473), eq. 2 (parameters) and eq. 3 (FLOPs per iteration).
- Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
  (arXiv:2205.05198), sec. 6: hardware FLOPs with selective recompute, 72BsLh^2(1 + s/3h + V/12hL).
- Chowdhery et al. 2022, "PaLM" (arXiv:2204.02311), appendix B: model FLOPs 6N + 12·L·a·d_h·s per token.
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

    @property
    def q_dim(self) -> Array:
        return self.heads * self.head_dim  # a * d_h, = h for most models (PaLM: 12288 vs h = 18432)

    @property
    def kv_dim(self) -> Array:
        return self.kv_heads * self.head_dim


def layer_matrix_params(m: Shapes) -> Array:
    """Weights of one layer's matrix multiplies (attention Q, K, V, O and the MLP), parameters."""
    attn = 2.0 * m.hidden * m.q_dim + 2.0 * m.hidden * m.kv_dim  # Q and O, then K and V shrunk by GQA
    mlp = m.n_proj * m.hidden * m.ffn  # 2*h*f (GELU) or 3*h*f (SwiGLU)
    return attn + mlp


def layer_params(m: Shapes) -> Array:
    """All parameters of one layer: matrices plus two norms (~4h, with biases for GELU models)."""
    return layer_matrix_params(m) + 4.0 * m.hidden


def total_params(m: Shapes) -> Array:
    """Parameters of the whole model (Narayanan eq. 2 generalised to GQA, SwiGLU, untied embeddings)."""
    embed = m.vocab * m.hidden * (2.0 - m.tied)  # input (+ output when untied) embeddings
    pos = m.learned_pos * m.seq * m.hidden  # learned positions (GPT-3, OPT); none with RoPE/ALiBi
    return m.layers * layer_params(m) + embed + pos + 2.0 * m.hidden


def fwd_flops_per_seq(m: Shapes) -> tuple[Array, Array, Array]:
    """Forward FLOPs for one sequence: (matrix multiplies per layer, attention scores per layer, logits).

    Megatron's convention counts the full s^2 attention (no causal halving): 4·s^2·a·d_h per layer.
    """
    s = m.seq
    mm = 2.0 * s * layer_matrix_params(m)  # FLOPs per layer: 2 * tokens * weights
    att = 4.0 * s * s * m.q_dim  # FLOPs per layer: QK^T and attention x V
    logits = 2.0 * s * m.hidden * m.vocab  # FLOPs: output projection
    return mm, att, logits


def model_flops_per_seq(m: Shapes) -> Array:
    """Model FLOPs (forward + backward, no recompute) per sequence; Narayanan eq. 3 without recompute."""
    mm, att, logits = fwd_flops_per_seq(m)
    return 3.0 * (m.layers * (mm + att) + logits)


def recompute_flops_per_seq(m: Shapes, recompute: Array) -> Array:
    """Extra hardware FLOPs per sequence for recompute 0 = none, 1 = selective, 2 = full.

    Full re-runs each layer's forward (Narayanan eq. 3, 96 vs 72); selective re-runs the attention
    core, counted as Korthikanti sec. 6 does (72BsLh^2 * s/6h = 3 x the forward score FLOPs).
    """
    mm, att, _ = fwd_flops_per_seq(m)
    full = m.layers * (mm + att)
    selective = m.layers * 3.0 * att
    return np.where(recompute == 2, full, np.where(recompute == 1, selective, 0.0))
