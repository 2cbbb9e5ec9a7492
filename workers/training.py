"""Training step time, throughput, utilisation and memory for millions of configurations at once.

Sources (formulas cite them line by line):
- Narayanan et al. 2021 (SC21, arXiv:2104.04473): 3D parallelism, sec. 2.2 pipeline bubble
  (p-1)/m for 1F1B and (p-1)/(v·m) interleaved, sec. 3.3 tensor-parallel all-reduces (2 forward,
  2 backward per layer), sec. 4.1 scatter/gather of pipeline sends across nodes.
- Korthikanti et al. 2022 (arXiv:2205.05198): sequence parallelism (reduce-scatter + all-gather of the
  same volume as the all-reduce), selective recompute, activation sizes.
- Rajbhandari et al. 2020 (ZeRO): stage-3 parameter all-gather forward and backward.
- Calculon (Isaev et al., SC'23): compute efficiency as a function of the operation size per chip;
  element-wise work bound by memory bandwidth, not matrix peak.
- Cerebras "Wafer-Scale Cluster" white paper / Hot Chips 2022: weight streaming from MemoryX,
  activations on the wafer, pure data parallelism over SwarmX.
- Tesla Hot Chips 2022 "Dojo System": SRAM-only dies, HBM behind interface processors.

The function `evaluate` takes a dict of equal-length float64 arrays (keys in `INPUT_KEYS`) and returns
a dict of arrays. Integer codes: recompute 0 none / 1 selective / 2 full; system 0 accelerator with its
own memory / 1 weight-streaming system (wafer-scale, Dojo tile).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from chipsweep.workers import comm
from chipsweep.workers.bits import flag
from chipsweep.workers.memory import (
    GIB,
    activation_bytes_first_stage,
    activation_bytes_per_layer,
    model_state_bytes_per_param,
    params_first_stage,
)
from chipsweep.workers.transformer import Shapes, layer_matrix_params, layer_params, total_params

Array = np.ndarray

# Bits of the infeasibility mask; `REASONS` gives the text users read.
R_LAYOUT = 1  # n_chips not divisible by tp*pp
R_LAYERS = 2  # layers not divisible by pp*interleave
R_HEADS = 4  # heads not divisible by tp
R_BATCH = 8  # global batch not divisible by dp*micro_batch
R_MEMORY = 16  # does not fit memory
R_PRECISION = 32  # chip has no peak for the precision
R_INTERLEAVE = 64  # interleaving needs pp > 1 and micro-batches a multiple of pp
R_STREAMING = 128  # weight-streaming systems run pure data parallelism (tp = pp = 1)
R_INPUT = 256  # missing or non-positive input
R_NOPEAK = 512  # peak FLOP/s not published
R_CHIPDATA = 1024  # chip memory size or bandwidth not published
R_STREAMDATA = 2048  # weight-streaming system without a published external-memory bandwidth
R_ZEROPP = 4096  # ZeRO-2/3 with pipeline parallelism

REASONS: dict[int, str] = {
    R_INPUT: "missing or non-positive input",
    R_PRECISION: "chip has no peak for this precision",
    R_NOPEAK: "chip peak FLOP/s not published (set chip.peak_tflops_<precision>)",
    R_CHIPDATA: "chip memory_gb or memory_bandwidth_gb_s not published (set chip.memory_gb / chip.memory_bandwidth_gb_s)",
    R_STREAMDATA: "external memory bandwidth not published (set chip.external_memory_gb_s)",
    R_ZEROPP: "zero_stage 2 or 3 cannot be combined with pp > 1 (gradients must stay whole across micro-batches)",
    R_LAYOUT: "n_chips not divisible by tp*pp",
    R_LAYERS: "layers not divisible by pp*interleave",
    R_HEADS: "heads not divisible by tp",
    R_BATCH: "global_batch not divisible by dp*micro_batch",
    R_INTERLEAVE: "interleave > 1 needs pp > 1, micro-batches a multiple of pp and framework megatron",
    R_STREAMING: "weight-streaming system: tp and pp must be 1 (data parallel only)",
    R_MEMORY: "does not fit in memory",
}

INPUT_KEYS = (
    # model shapes
    "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab", "seq", "n_proj", "learned_pos", "tied",
    # chip (per chip, for the row's precision)
    "peak_flops", "mem_bytes", "mem_bw", "up_bw", "up_domain", "out_bw", "tdp_w", "usd_per_hour",
    "purchase_usd", "streaming", "ext_mem_bytes", "ext_bw", "peak_published",
    # layout and workload
    "n_chips", "tp", "pp", "micro_batch", "interleave", "recompute", "zero_stage", "global_batch",
    "tokens", "seq_parallel", "flash", "weight_bytes", "grad_bytes", "act_bytes",
    # optional shortcuts (NaN when absent): sustained FLOP/s per chip and total FLOPs of the run
    "sustained_flops", "total_flops", "up_latency", "framework", "mode", "lora_params",
)
# megatron: Megatron-LM's schedules (interleaving, scatter/gather sends); deepspeed: DeepSpeed's pipeline
# engine (plain 1F1B, blocking sends split over the tp ranks, fp16 gradients); deepspeed_2021: the same
# engine as MT-NLG and Narayanan's ZeRO-3 baselines ran it (full-tensor sends at ds2021_p2p_eff of the
# link, fitted on one MT-NLG run; data-parallel/ZeRO collectives at ds2021_dp_eff, solved on one ZeRO-3 run)
MODEL_TERMS = ("p_matrix", "p_layer", "n_params", "q_dim")  # per-model quantities `assemble` may supply
CORE_KEYS = (*INPUT_KEYS, *MODEL_TERMS)

CAL_KEYS = (
    "mm_eff_max",  # achievable fraction of peak for large matrix multiplies
    "mm_half_dim",  # the narrow GEMM dimension at which efficiency is half of mm_eff_max
    "mem_eff",  # achievable fraction of memory bandwidth for element-wise kernels
    "elem_traffic",  # bytes moved by element-wise kernels per byte of stored activations
    "layer_overhead_s",  # fixed seconds per layer pass (kernel launches, synchronisation)
    "up_eff",  # achievable fraction of scale-up bandwidth in collectives
    "out_eff",  # achievable fraction of scale-out bandwidth in collectives
    "up_latency_s",
    "out_latency_s",
    "dp_overlap",  # fraction of the pipeline time data-parallel traffic can hide behind
    "ds_p2p_eff",  # fraction of the link DeepSpeed's pipeline send/receive reaches
    "ds2021_p2p_eff",  # ... for the 2021 engine MT-NLG used (full-tensor sends)
    "ds2021_dp_eff",  # fraction of the links the 2021 engine's data-parallel / ZeRO collectives reached
    "mem_usable",  # fraction of chip memory a framework can use
    "pue",
    "power_fraction",  # average chip power as a fraction of TDP
    "co2_kg_per_kwh",
    "usd_per_kwh",
    "amortization_years",
)


def shapes_of(x: Mapping[str, Array]) -> Shapes:
    return Shapes(
        layers=x["layers"], hidden=x["hidden"], heads=x["heads"], kv_heads=x["kv_heads"], head_dim=x["head_dim"],
        ffn=x["ffn"], vocab=x["vocab"], seq=x["seq"], n_proj=x["n_proj"], learned_pos=x["learned_pos"], tied=x["tied"],
    )


def total_params_of(x: Mapping[str, Array]) -> Array:
    return total_params(shapes_of(x))


def _pick(on: Array, yes: Array | float, no: Array | float) -> Array:
    """`yes` where the 0/1 array `on` is 1, else `no`, for finite values: two cheap passes where np.where
    costs 2-3x a multiply (and returns float64 for two Python scalars, widening a float32 block)."""
    return no + on * (yes - no)


def _eff(narrow: Array, cal: Mapping[str, Array]) -> Array:
    """Achievable fraction of peak for a matrix multiply whose narrowest dimension is `narrow`."""
    return cal["mm_eff_max"] * narrow / (narrow + cal["mm_half_dim"])


def model_terms(m: Shapes) -> dict[str, Array]:
    """Per-model quantities of the core; `assemble` computes them once per catalog model and gathers them."""
    return {"p_matrix": layer_matrix_params(m), "p_layer": layer_params(m), "n_params": total_params(m), "q_dim": m.q_dim}


def _indivisible(num: Array, den: Array) -> Array:
    """num is not a multiple of den (integer-valued floats); False where either is NaN (undecided)."""
    q = num / den
    return np.floor(q + 1e-6) < q


def layout_mask(
    layers: Array, heads: Array, n: Array, tp: Array, pp: Array, interleave: Array, micro_batch: Array,
    global_batch: Array, deepspeed: Array | bool = False, zero_stage: Array | float = 0.0,
) -> Array:
    """Reason bits of the layout's integer rules (R_LAYOUT, R_LAYERS, R_HEADS, R_BATCH, R_INTERLEAVE,
    R_ZEROPP). A NaN field (not decided yet, e.g. left to the layout search) flags nothing, so sweep
    workers can skip rows that fail before evaluating them."""
    tp_pp = tp * pp
    dp = np.maximum(np.floor(n / tp_pp + 1e-9), 1.0)  # data-parallel replicas
    mb_exact = global_batch / (dp * micro_batch)  # micro-batches per pipeline per step
    return _layout_bits(layers, heads, n, tp, pp, interleave, tp_pp, dp, mb_exact, np.round(mb_exact), deepspeed, zero_stage)


def _layout_bits(
    layers: Array, heads: Array, n: Array, tp: Array, pp: Array, interleave: Array, tp_pp: Array, dp: Array,
    mb_exact: Array, m_int: Array, deepspeed: Array | bool, zero_stage: Array | float,
) -> Array:
    checks = (
        (np.abs(dp * tp_pp - n) > 0.5, R_LAYOUT),
        (_indivisible(layers, pp * interleave), R_LAYERS),
        (_indivisible(heads, tp), R_HEADS),
        ((np.abs(m_int - mb_exact) > 1e-6) | (mb_exact < 1.0 - 1e-9), R_BATCH),
        ((interleave > 1) & ((pp <= 1) | _indivisible(m_int, pp) | deepspeed), R_INTERLEAVE),
        # DeepSpeed docs: ZeRO-2/3 are incompatible with pipeline parallelism (Megatron's distributed
        # optimizer is ZeRO-1)
        ((zero_stage >= 2) & (pp > 1), R_ZEROPP),
    )
    mask = np.zeros(np.shape(mb_exact), dtype=np.int32)
    for cond, bit in checks:
        flag(mask, cond, bit)
    return mask


def _uniform(cal: Mapping[str, Array]) -> dict[str, Array]:
    """Calibration arrays that hold one value become scalars (most sweeps use one calibration set)."""
    out: dict[str, Array] = {}
    for k, v in cal.items():
        arr = np.asarray(v)
        # a Python float keeps float32 inputs in float32 (NumPy's weak scalar promotion)
        out[k] = float(arr.flat[0]) if arr.ndim == 0 or (arr.size and arr.min() == arr.max()) else arr
    return out


BLOCK = 16384  # configurations per block: a block's temporaries stay in the core's cache


def evaluate(
    x: Mapping[str, Array], cal: Mapping[str, Array], block: int = BLOCK, dtype: type | None = None
) -> dict[str, Array]:
    """Evaluate every configuration in `x` (arrays of equal length; float32 or float64).

    No Python loop over configurations: the arrays go through the formulas in blocks of `block`
    configurations (a chunk of a million is 61 blocks of ~320 numpy operations each), which keeps the
    temporaries in cache and is ~1.5-2x faster than whole-array passes. `dtype` (e.g. np.float32, what
    sweeps use: ~1.7x faster, and the lake stores float32) casts float inputs block by block; outputs
    come in that dtype. Without it the inputs' own dtype is kept.
    """
    cal = _uniform(cal)
    n = len(x["layers"])
    x = {k: x[k] for k in CORE_KEYS if k in x}  # a sweep's x carries more (echo columns): cast only these

    def part_of(v: Array, sl: slice) -> Array:
        if not (isinstance(v, np.ndarray) and v.ndim):
            return v
        v = v[sl]
        return v.astype(dtype) if dtype is not None and v.dtype.kind == "f" and v.dtype != dtype else v

    if n <= block:
        whole = slice(None)
        return _evaluate_block({k: part_of(v, whole) for k, v in x.items()}, {k: part_of(v, whole) for k, v in cal.items()})
    out: dict[str, Array] = {}
    for start in range(0, n, block):
        stop = min(start + block, n)
        sl = slice(start, stop)
        part = _evaluate_block({k: part_of(v, sl) for k, v in x.items()}, {k: part_of(v, sl) for k, v in cal.items()})
        if not out:
            out = {k: np.empty(n, dtype=v.dtype) for k, v in part.items()}
        for k, v in part.items():
            out[k][start:stop] = v
    return out


def _evaluate_block(x: Mapping[str, Array], cal: Mapping[str, Array]) -> dict[str, Array]:
    # Written for speed as well as reading: a block is ~300 element-wise passes over ~16K rows, so a
    # selection between two finite values is a blend on a 0/1 array (`num`), not np.where (2-3x the cost
    # of a multiply, and float64 output for scalar choices), and every pass keeps the block's dtype.
    m = shapes_of(x)
    terms = {k: x[k] for k in MODEL_TERMS if k in x} or model_terms(m)
    L, h, a, s, V = m.layers, m.hidden, m.heads, m.seq, m.vocab
    n, t, p = x["n_chips"], x["tp"], x["pp"]
    b, v, rc, zero = x["micro_batch"], x["interleave"], x["recompute"], x["zero_stage"]
    B = x["global_batch"]
    dtype = np.asarray(n).dtype

    def num(cond: Array) -> Array:
        return np.asarray(cond).astype(dtype)  # 1.0 where true, 0.0 where false

    streaming = x["streaming"] > 0
    any_streaming = bool(streaming.any())
    deepspeed = x["framework"] >= 1
    ds2021 = x["framework"] == 2  # full-tensor pipeline sends
    peak = x["peak_flops"]
    full = rc == 2
    full_f = num(full)
    N = terms["n_params"]  # parameters
    # LoRA (Hu et al. 2021): frozen weights get no weight gradients or optimizer state; only the adapters train
    lora = x["mode"] == 2
    any_lora = bool(lora.any())
    trainable = np.where(lora, x["lora_params"], N) if any_lora else N  # parameters with gradients and Adam state
    wb, gb = x["weight_bytes"], x["grad_bytes"]

    # ---- layout validity (masked, never looped) -------------------------------------------------
    tp_pp = t * p
    dp = np.maximum(np.floor(n / tp_pp + 1e-9), 1.0)  # data-parallel replicas
    mb_exact = B / (dp * b)  # micro-batches per pipeline per step
    m_int = np.round(mb_exact)  # m
    mask = _layout_bits(L, a, n, t, p, v, tp_pp, dp, mb_exact, m_int, deepspeed, zero)
    no_peak = ~np.isfinite(peak)
    # a non-positive or NaN count fails `> 0` (np.minimum carries NaN through)
    smallest = np.minimum(np.minimum(np.minimum(n, B), np.minimum(b, t)), np.minimum(np.minimum(p, v), L))
    checks = [
        (~(smallest > 0), R_INPUT),
        (no_peak & (x["peak_published"] > 0), R_PRECISION),
        (no_peak & (x["peak_published"] <= 0), R_NOPEAK),
    ]
    if any_streaming:
        checks += [
            (streaming & (tp_pp > 1), R_STREAMING),
            # an accelerator needs its memory size and bandwidth; a weight-streaming system its external link
            (~np.isfinite(x["mem_bytes"]) | (~streaming & ~np.isfinite(x["mem_bw"])), R_CHIPDATA),
            (streaming & ~np.isfinite(x["ext_bw"]), R_STREAMDATA),
        ]
    else:
        checks.append((~(np.isfinite(x["mem_bytes"]) & np.isfinite(x["mem_bw"])), R_CHIPDATA))
    for cond, bit in checks:
        flag(mask, cond, bit)
    mb_count = np.maximum(m_int, 1.0)

    # ---- FLOPs per step (whole job) -------------------------------------------------------------
    mm = 2.0 * s * terms["p_matrix"]  # FLOPs per sequence per layer, matrix multiplies (forward)
    att = 4.0 * s * s * terms["q_dim"]  # FLOPs per sequence per layer, QK^T and attention x V (full s^2)
    logits = 2.0 * s * h * V  # FLOPs per sequence, output projection (forward)
    # forward + 2x backward (eq. 3); with LoRA the frozen matrices skip their weight gradients, so their
    # backward is 1x forward (activation gradients only): ~4N instead of 6N FLOPs per token (Hu et al. 2021)
    mm_passes = 3.0 - num(lora) if any_lora else 3.0
    per_seq = L * (mm_passes * mm + 3.0 * att) + mm_passes * logits  # model FLOPs per sequence
    if any_lora:
        per_seq = per_seq + 6.0 * s * x["lora_params"] * num(lora)  # adapters, forward + backward
    model_flops = per_seq * B  # FLOPs per step
    # recompute: full re-runs each layer's forward (mm + att); selective the attention core, counted as
    # 3x its forward FLOPs (Korthikanti sec. 6 hardware FLOPs)
    selective_f = num(rc == 1)
    recompute_flops = L * (full_f * mm + (3.0 * selective_f + full_f) * att) * B
    hw_flops = model_flops + recompute_flops  # FLOPs per step
    tokens_step = B * s  # tokens per step

    # ---- one micro-batch through one layer on one chip -----------------------------------------
    # compute time = FLOPs x b / t / (peak x eff); 1/eff(d) = (1 + half_dim / d) / mm_eff_max (`_eff`)
    passes = 3.0 + full_f  # forward, backward (2x), recomputed forward
    mm_time_passes = mm_passes + full_f  # matrix multiplies: LoRA skips the weight-gradient GEMMs
    bs = b * s  # tokens per micro-batch
    half, inv_max = cal["mm_half_dim"], 1.0 / cal["mm_eff_max"]
    s_per_flop = b / (t * peak) * inv_max  # s per FLOP of one sequence's work, at full GEMM efficiency
    narrow_mm = np.minimum(np.minimum(bs, h), np.minimum(terms["q_dim"], x["ffn"]) / t)  # narrowest GEMM dim
    t_mm = mm * mm_time_passes * s_per_flop * (1.0 + half / narrow_mm)  # s
    att_passes = 3.0 + num(rc >= 1)
    t_att = att * att_passes * s_per_flop * (1.0 + half / np.minimum(s, m.head_dim))  # s
    per_layer = activation_bytes_per_layer(m, b, t, x["seq_parallel"], x["flash"])  # bytes: none, selective, full
    act_none = per_layer[0]
    # norms, softmax, dropout (memory-bound) plus a fixed cost per layer pass
    t_elem_over = passes * (act_none * (cal["elem_traffic"] / cal["mem_eff"]) / x["mem_bw"] + cal["layer_overhead_s"])
    # tensor parallel: 2 all-reduces forward, 2 backward, 2 more when the forward is recomputed;
    # ranks are ordered [pp][dp][tp] (Megatron): tp groups are consecutive, dp groups stride tp
    up_bw, out_bw = x["up_bw"] * cal["up_eff"], x["out_bw"] * cal["out_eff"]  # bytes/s
    up_lat = np.where(np.isfinite(x["up_latency"]), x["up_latency"], cal["up_latency_s"])  # s per message
    out_lat, dom = cal["out_latency_s"], x["up_domain"]
    msg = bs * h * x["act_bytes"]  # bytes of one layer output for a micro-batch
    tp_group = comm.Group(t, 1.0, dom, up_bw, out_bw, up_lat, out_lat)
    tp_allreduce = tp_group.allreduce(msg)
    t_tp = (2.0 * passes - 2.0) * tp_allreduce  # s: 4 or 6 all-reduces per layer
    t_layer = t_mm + t_att + t_elem_over + t_tp  # s per layer per micro-batch, one chip

    # ---- pipeline ------------------------------------------------------------------------------
    pp_cross = n > dom  # some stage boundary leaves the scale-up domain
    # Megatron splits cross-node sends over the t ranks (scatter/gather, Narayanan sec. 4.1) and overlaps
    # each send with the matching receive; DeepSpeed's pipeline engine splits them too (PipelineEngine
    # is_pipe_partitioned / is_grad_partitioned) but runs SendActivation/RecvActivation/SendGrad/RecvGrad
    # as separate blocking steps (DeepSpeed PipeSchedule); the 2021 engine of MT-NLG sent whole tensors
    ds_f, ds2021_f = num(deepspeed), num(ds2021)
    ds_eff = _pick(ds2021_f, cal["ds2021_p2p_eff"], cal["ds_p2p_eff"])
    pp_bw = np.where(pp_cross, out_bw, up_bw) * _pick(ds_f, ds_eff, 1.0)  # bytes/s
    pp_lat = np.where(pp_cross, out_lat, up_lat)  # s
    split_f = num(pp_cross) * (1.0 - ds2021_f)  # the send is split over the tp ranks
    pp_msg = msg / _pick(split_f, t, 1.0)  # bytes per send
    two_v = 2.0 * v
    sends = _pick(ds_f, 4.0, two_v)  # transfers on the critical path per micro-batch
    recvs = _pick(ds_f, 2.0, two_v)  # receives per micro-batch: activations forward, gradients back
    # the receiving stage re-assembles a split tensor with an all-gather over its tp ranks (scale-up link)
    regather = split_f * (0.5 * tp_allreduce)  # s per receive
    t_pp = np.where(p > 1, sends * (pp_msg / pp_bw + pp_lat) + recvs * regather, 0.0)  # s per micro-batch
    t_logit = logits * mm_passes * s_per_flop * (1.0 + half / np.minimum(bs, h))  # s, on the last stage
    t_stage = L / p * t_layer + t_logit + t_pp  # s per micro-batch on the slowest stage
    t_pipe = (mb_count + (p - 1.0) / v) * t_stage  # s: m micro-batches plus the bubble (sec. 2.2)

    # ---- data parallel and optimizer -----------------------------------------------------------
    dp_group = comm.Group(dp, t, dom, up_bw, out_bw, up_lat, out_lat)
    trainable_chip = trainable / tp_pp  # trainable parameters per chip
    # gradients all-reduced, or reduce-scattered (half an all-reduce) with ZeRO-2/3; ZeRO-3 also
    # all-gathers the weights twice (forward and backward: one all-reduce's volume)
    half_grad, gather = 1.0 - 0.5 * num(zero >= 2), num(zero >= 3)  # all-reduces' worth of each
    dp_bytes = trainable_chip * gb * half_grad + gather * (N / tp_pp * wb)
    dp_per_byte = dp_group.per_byte * _pick(ds2021_f, 1.0 / cal["ds2021_dp_eff"], 1.0)  # s per byte
    t_dp = dp_bytes * dp_per_byte + (half_grad + gather) * dp_group.latency  # s
    t_dp_exposed = np.maximum(t_dp - cal["dp_overlap"] * t_pipe, 0.0)  # s not hidden
    state_bpp = model_state_bytes_per_param(zero, dp, wb, gb)  # bytes/param
    t_opt = 2.0 * trainable_chip * state_bpp / (x["mem_bw"] * cal["mem_eff"])  # s: read + write Adam state
    step = t_pipe + t_dp_exposed + t_opt  # s per step

    # ---- weight-streaming systems (Cerebras MemoryX, Dojo tile with HBM behind the edge) --------
    if any_streaming:
        # compute stays on the chip; weights stream in forward and backward, gradients stream back
        stream_s = 3.0 * N * wb / x["ext_bw"]  # s per step on the external link
        compute_s = hw_flops / dp / (peak * _eff(np.minimum(bs, h), cal))  # s per step, whole model per system
        step = np.where(streaming, np.maximum(compute_s, stream_s), step)

    # ---- memory per chip ------------------------------------------------------------------------
    stage_params = params_first_stage(m, t, p, terms["p_layer"])  # parameters on a first-stage chip
    states = stage_params * state_bpp  # bytes: weights, gradients, optimizer
    if any_lora:  # LoRA keeps the frozen weights only, and the adapters' full state
        states = np.where(lora, stage_params * wb + trainable_chip * state_bpp, states)
    acts = activation_bytes_first_stage(per_layer, L, p, v, rc)  # bytes
    logit_buf = num(p <= 1) * (bs * V / t * x["act_bytes"])  # bytes: logits on the last stage
    mem = states + acts + logit_buf
    mem_limit = x["mem_bytes"] * cal["mem_usable"]
    fits = mem <= mem_limit
    if any_streaming:
        stream_states = N * wb + trainable * (gb + 12.0)  # bytes in the external tier
        fits = np.where(streaming, (acts <= mem_limit) & (stream_states <= x["ext_mem_bytes"]), fits)
        mem = np.where(streaming, acts, mem)
        mem_states = np.where(streaming, np.nan, states / GIB)
        mem_external = np.where(streaming, stream_states * 1e-9, np.nan)
    else:
        mem_states = states / GIB
        mem_external = np.full_like(mem, np.nan)
    flag(mask, ~fits & (mem_limit >= 0), R_MEMORY)  # not where the limit is unknown (NaN): R_CHIPDATA says so

    # ---- shortcuts: a sustained rate or total FLOPs given by the user (e.g. Lambda's GPT-3 estimate) --
    sustained = x["sustained_flops"]
    use_sustained = np.isfinite(sustained) & (sustained > 0)
    if use_sustained.any():
        step = np.where(use_sustained, hw_flops / (n * np.where(use_sustained, sustained, 1.0)), step)

    # infeasible rows carry NaN, not a made-up number; every output below derives from `step`
    step = np.where(mask != 0, np.nan, step)

    # ---- throughput, utilisation ----------------------------------------------------------------
    per_chip_s = 1e-12 / (step * n)  # 1e-12 / chip-seconds per step
    tokens_per_s = tokens_step / step
    model_tflops = model_flops * per_chip_s  # TFLOP/s per chip
    hw_tflops = hw_flops * per_chip_s
    peak_t = peak * 1e-12  # TFLOP/s
    mfu = model_tflops / peak_t
    hfu = hw_tflops / peak_t

    # ---- the whole run --------------------------------------------------------------------------
    given_flops = np.isfinite(x["total_flops"])
    total_flops = np.where(given_flops, x["total_flops"], per_seq / s * x["tokens"])  # FLOPs
    run_s = x["tokens"] / tokens_per_s  # s
    if use_sustained.any():
        sustained_run = np.where(mask != 0, np.nan, total_flops / (n * np.where(use_sustained, sustained, 1.0)))  # s
        run_s = np.where(use_sustained & given_flops, sustained_run, run_s)
    chip_hours = run_s * n / 3600.0
    energy_mwh = chip_hours * x["tdp_w"] * (cal["power_fraction"] * cal["pue"] * 1e-6)  # MWh
    life_h = cal["amortization_years"] * 8766.0  # hours of service over which a purchase is spread
    owned = chip_hours * x["purchase_usd"] / life_h + energy_mwh * (1000.0 * cal["usd_per_kwh"])  # USD
    rented = np.isfinite(x["usd_per_hour"])  # cost basis: a rental price, else the purchase price (owned)
    cost = np.where(rented, chip_hours * x["usd_per_hour"], owned)  # USD
    co2_t = energy_mwh * cal["co2_kg_per_kwh"]  # t CO2 (MWh x kg/kWh = t)

    outputs = {
        "step_time_s": step,
        "tokens_per_s": tokens_per_s,
        "model_tflops_per_chip": model_tflops,
        "hardware_tflops_per_chip": hw_tflops,
        "mfu": mfu,
        "hfu": hfu,
        "time_to_train_days": run_s / 86400.0,
        "chip_hours": chip_hours,
        "energy_mwh": energy_mwh,
        "cost_usd": cost,
        "co2_t": co2_t,
    }
    return {
        "dp": dp,
        **outputs,
        "mem_per_chip_gb": mem * 1e-9,
        "mem_states_gib": mem_states,
        "mem_activations_gib": acts / GIB,
        "mem_external_gb": mem_external,
        "fits": fits,
        "params": N,
        "total_flops": total_flops,
        "cost_owned": ~rented,
        "reason_mask": mask,
    }


def reason_text(mask: Array) -> np.ndarray:
    """Readable reasons for each mask value ('' when feasible); computed once per distinct mask."""
    uniq, inv = np.unique(mask, return_inverse=True)
    texts = []
    for u in uniq.tolist():
        texts.append("; ".join(msg for bit, msg in REASONS.items() if u & bit))
    return np.asarray(texts, dtype=object)[inv]
