"""Training memory per chip: model states by ZeRO stage, activations by recompute mode and schedule.

Sources:
- Rajbhandari et al. 2020, "ZeRO" (arXiv:1910.02054) sec. 3 and 5: mixed-precision Adam keeps 2 (weights)
  + 2 (gradients) + 12 (fp32 master, momentum, variance) bytes per parameter; stages 1/2/3 shard the
  optimizer state, then the gradients, then the weights over the d data-parallel ranks.
- Megatron-LM accumulates gradients in fp32 (4 bytes), which gives 18 bytes/parameter; Korthikanti et al.
  2022 Figure 1 (parameters+gradients+optimizer per GPU) matches 18 bytes exactly.
- Korthikanti et al. 2022 (arXiv:2205.05198) Table 2: activation bytes per layer
  s·b·h·(10 + 24/t + 5·a·s/(h·t)) with tensor parallelism, s·b·h·(34 + 5·a·s/h)/t with sequence
  parallelism, s·b·h·34/t with selective recompute, 2·s·b·h (layer input) with full recompute;
  sec. 4.2.3: 1F1B keeps L layers of one micro-batch in flight on the first stage, interleaving
  multiplies that by 1 + (p-1)/(p·v).
"""

from __future__ import annotations

import numpy as np

from chipsweep.workers.transformer import Shapes, layer_params

Array = np.ndarray
GIB = 2.0**30


def model_state_bytes_per_param(zero_stage: Array, dp: Array, weight_bytes: Array, grad_bytes: Array) -> Array:
    """Bytes per parameter held on one chip for weights, gradients and Adam state (ZeRO sec. 5):
    stage 1 shards the optimizer state over the d replicas, stage 2 the gradients too, stage 3 the weights."""
    opt = 12.0  # fp32 master weights + momentum + variance, bytes per parameter
    shard = 1.0 / dp - 1.0  # a sharded term is (1 + shard) of the whole
    dtype = np.result_type(dp)
    return (
        weight_bytes * (1.0 + (zero_stage >= 3).astype(dtype) * shard)
        + grad_bytes * (1.0 + (zero_stage >= 2).astype(dtype) * shard)
        + opt * (1.0 + (zero_stage >= 1).astype(dtype) * shard)
    )


def params_first_stage(m: Shapes, tp: Array, pp: Array, per_layer: Array | None = None) -> Array:
    """Parameters on one chip of the first pipeline stage: its layers' share plus the (vocab-parallel)
    embedding shard. `per_layer`: the layer's parameters when already known."""
    p_layer = layer_params(m) if per_layer is None else per_layer
    return (m.layers / pp * p_layer + m.vocab * m.hidden) / tp


def activation_bytes_per_layer(
    m: Shapes, micro_batch: Array, tp: Array, seq_parallel: Array, flash: Array
) -> tuple[Array, Array, Array]:
    """Bytes of activations one layer keeps for backward, for one micro-batch on one chip (16-bit), with
    recompute (none, selective, full)."""
    s, b, h, a = m.seq, micro_batch, m.hidden, m.heads
    sbh = s * b * h  # elements of one layer input
    scores = (1.0 - flash) * (5.0 * a * s / h)  # softmax output, dropout mask and output (Table 2)
    sp = seq_parallel > 0
    shard = np.where(sp, tp, 1.0)  # sequence parallelism shards the norms and dropouts too
    selective = sbh * ((10.0 / shard) + 24.0 / tp)  # = 34 sbh / t with sequence parallelism
    none = selective + sbh * scores / tp
    full = 2.0 * sbh / shard  # only the layer input is kept
    return none, selective, full


def activation_bytes_first_stage(
    per_layer: tuple[Array, Array, Array], layers: Array, pp: Array, interleave: Array, recompute: Array
) -> Array:
    """Activation bytes on a chip of the first stage with the 1F1B (interleaved) schedule."""
    none, selective, full = per_layer
    kept = np.where(recompute == 2, full, np.where(recompute == 1, selective, none))  # bytes per layer
    # 1F1B: p micro-batches x L/p layers = L layers held; interleaving adds (p-1)/(p*v) (sec. 4.2.3)
    dtype = np.result_type(layers)
    in_flight = layers * (1.0 + (interleave > 1).astype(dtype) * ((pp - 1.0) / (pp * interleave)))
    # full recompute re-materialises one layer at a time during backward: add its working set
    return kept * in_flight + (recompute == 2).astype(dtype) * none
