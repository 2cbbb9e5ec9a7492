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

from workers.transformer import Shapes, layer_params

Array = np.ndarray
GIB = 2.0**30


def model_state_bytes_per_param(zero_stage: Array, dp: Array, weight_bytes: Array, grad_bytes: Array) -> Array:
    """Bytes per parameter held on one chip for weights, gradients and Adam state (ZeRO sec. 5)."""
    opt = 12.0  # fp32 master weights + momentum + variance, bytes per parameter
    return np.select(
        [zero_stage <= 0, zero_stage == 1, zero_stage == 2],
        [
            weight_bytes + grad_bytes + opt,  # replicated
            weight_bytes + grad_bytes + opt / dp,  # optimizer sharded (Megatron distributed optimizer)
            weight_bytes + (grad_bytes + opt) / dp,  # + gradients sharded
        ],
        (weight_bytes + grad_bytes + opt) / dp,  # ZeRO-3: everything sharded
    )


def params_first_stage(m: Shapes, tp: Array, pp: Array) -> Array:
    """Parameters on one chip of the first pipeline stage: its layers' share plus the embedding shard."""
    layers_per_stage = m.layers / pp
    embed = m.vocab * m.hidden / tp  # vocab-parallel embedding lives on stage 0
    return layers_per_stage * layer_params(m) / tp + embed


def activation_bytes_per_layer(
    m: Shapes, micro_batch: Array, tp: Array, recompute: Array, seq_parallel: Array, flash: Array
) -> Array:
    """Bytes of activations one layer keeps for backward, for one micro-batch on one chip (16-bit)."""
    s, b, h, a = m.seq, micro_batch, m.hidden, m.heads
    sbh = s * b * h
    scores = (1.0 - flash) * 5.0 * a * s / h  # softmax output, dropout mask and output (Table 2)
    no_sp = sbh * (10.0 + 24.0 / tp + scores / tp)  # tensor parallel only: norms and dropouts replicated
    with_sp = sbh * (34.0 + scores) / tp  # sequence parallelism shards those too
    none = np.where(seq_parallel > 0, with_sp, no_sp)
    selective = np.where(seq_parallel > 0, sbh * 34.0 / tp, sbh * (10.0 + 24.0 / tp))
    full = 2.0 * sbh / np.where(seq_parallel > 0, tp, 1.0)  # only the layer input is kept
    return np.where(recompute == 2, full, np.where(recompute == 1, selective, none))


def activation_bytes_first_stage(
    m: Shapes,
    micro_batch: Array,
    tp: Array,
    pp: Array,
    interleave: Array,
    recompute: Array,
    seq_parallel: Array,
    flash: Array,
) -> Array:
    """Activation bytes on a chip of the first stage with the 1F1B (interleaved) schedule."""
    per_layer = activation_bytes_per_layer(m, micro_batch, tp, recompute, seq_parallel, flash)
    # 1F1B: p micro-batches x L/p layers = L layers held; interleaving adds (p-1)/(p*v) (sec. 4.2.3)
    in_flight = m.layers * np.where(interleave > 1, 1.0 + (pp - 1.0) / (pp * interleave), 1.0)
    # full recompute re-materialises one layer at a time during backward: add its working set
    working = np.where(
        recompute == 2, activation_bytes_per_layer(m, micro_batch, tp, np.zeros_like(recompute), seq_parallel, flash), 0.0
    )
    return per_layer * in_flight + working
