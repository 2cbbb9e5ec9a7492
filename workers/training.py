"""Training step time, throughput, utilisation, memory and cost for millions of configurations at once.

Sources (formulas cite them line by line):
- Narayanan et al. 2021 (SC21, arXiv:2104.04473): 3D parallelism, sec. 2.2 pipeline bubble
  (p-1)/m for 1F1B and (p-1)/(v·m) interleaved, sec. 3.3 tensor-parallel all-reduces (2 forward,
  2 backward per layer), sec. 4.1 scatter/gather of pipeline sends across nodes.
- Korthikanti et al. 2022 (arXiv:2205.05198): sequence parallelism (reduce-scatter + all-gather of the
  same volume as the all-reduce; pipeline sends of s/t tokens), selective recompute (the attention core
  re-run once), activation sizes (workers/memory.py).
- Rajbhandari et al. 2020 (ZeRO, arXiv:1910.02054) sec. 7 and Zhao et al. 2023 (PyTorch FSDP,
  arXiv:2304.11277) sec. 3.3-3.4: ZeRO-3/FSDP all-gather each layer's weights in the forward and again in
  the backward and reduce-scatter its gradients, every micro-batch; ZeRO-2 reduce-scatters gradients every
  micro-batch; ZeRO-0/1 reduce gradients once per step. The next layer's gather is prefetched behind the
  current layer's compute (one layer ahead), so a layer's collective hides only behind one layer's compute.
- deepspeedai/DeepSpeed issue #1174 and PR #1188 (June 2021): DeepSpeed's ZeRO-3 gathered parameters tensor by
  tensor in synchronised all-gathers until PR #1188 coalesced them; NVIDIA/nccl src/graph/tuning.cc: all-gathers
  run as rings of n - 1 steps at NCCL's per-step latency (comm.Group.ring_latency).
- Megatron-Core --overlap-grad-reduce (2023): the bucketed gradient reduce overlaps the last micro-batch's
  backward; earlier Megatron reduced after the backward.
- Megatron-Core pipeline layout (--decoder-first/last-pipeline-num-layers, --account-for-embedding/loss-
  in-pipeline-split) and Dubey et al. 2024 (Llama 3, arXiv:2407.21783) sec. 3.3.2: the first and last stages
  hold fewer layers so the embedding and the output head weigh like a layer; the slowest stage sets the pace.
- Calculon (Isaev et al., SC'23): compute efficiency as a function of the operation size per chip;
  element-wise work bound by memory bandwidth, not matrix peak.
- Dao 2023 (FlashAttention-2, arXiv:2307.08691): causal blocks skipped, backward 2.5x the forward.
- Cerebras "Wafer-Scale Cluster" white paper / Hot Chips 2022: weight streaming from MemoryX,
  activations on the wafer, pure data parallelism over SwarmX.
- Tesla Hot Chips 2022 "Dojo System": SRAM-only dies, HBM behind interface processors.
- Mixture of experts: Fedus et al. 2022 (Switch Transformer, arXiv:2101.03961) sec. 2 and Lepikhin et al. 2021
  (GShard, arXiv:2006.16668): each token runs top-k of E experts, dispatched to the expert's chip and combined
  back by an all-to-all in the forward and again in the backward; Megatron-Core MoE (expert parallelism `ep`
  carved from the data-parallel ranks, expert weights split over ep and tp, the expert optimizer state sharded
  over the expert-data-parallel group dp/ep); DeepSeek-AI 2024 (DeepSeek-V3, arXiv:2412.19437) sec. 2.1 (shared
  experts, first dense layers). Model FLOPs count the active parameters (6·N_active per token plus attention),
  memory the total. The busiest expert sets the pace (`moe_imbalance`, defaults.yaml).
- Owned cost: the capital recovery factor r / (1 - (1 + r)^-n) spreads the purchase over n years at the cost
  of capital r (any engineering-economics text); power at measured draw x PUE (Touvron et al. 2023 sec. 6.3).

The function `evaluate` takes a dict of equal-length float64 arrays (keys in `INPUT_KEYS`) and returns
a dict of arrays. Integer codes: recompute 0 none / 1 selective / 2 full; system 0 accelerator with its
own memory / 1 weight-streaming system (wafer-scale, Dojo tile); framework features (`fw_*`) 0/1 from
schemas/catalog/defaults.yaml `frameworks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from chipsweep.workers import comm
from chipsweep.workers.bits import flag, indivisible
from chipsweep.workers.blocks import by_blocks
from chipsweep.workers.memory import (
    GIB,
    activation_bytes_per_layer,
    activation_bytes_stage,
    in_flight_factor,
    kept_per_layer,
    model_state_bytes_per_param,
    optimizer_step_bytes_per_param,
    stage_params,
)
from chipsweep.workers.transformer import (
    SSD_CHUNK,
    Shapes,
    hybrid_rows,
    layer_matrix_params,
    layer_params,
    mla_up_params,
    ssm_scan_flops_per_token,
    total_params,
)

Array = np.ndarray

# Bits of the infeasibility mask; `REASONS` gives the text users read.
R_LAYOUT = 1  # n_chips not divisible by tp*pp
R_LAYERS = 2  # the layers do not split over the pipeline stages
R_HEADS = 4  # heads not divisible by tp
R_BATCH = 8  # global batch smaller than one micro-batch
R_MEMORY = 16  # does not fit memory
R_PRECISION = 32  # chip has no peak for the precision
R_INTERLEAVE = 64  # interleaving needs pp > 1 and micro-batches a multiple of pp
R_STREAMING = 128  # weight-streaming systems run pure data parallelism (tp = pp = 1)
R_INPUT = 256  # missing or non-positive input
R_NOPEAK = 512  # peak FLOP/s not published
R_CHIPDATA = 1024  # chip memory size or bandwidth not published
R_STREAMDATA = 2048  # weight-streaming system without a published external-memory bandwidth
R_ZEROPP = 4096  # ZeRO-2/3 with pipeline parallelism
R_FRAMEWORK = 8192  # the framework has no such feature (selective recompute, sequence parallelism, ZeRO stage)
R_EP = 16384  # ep does not divide dp or the experts, or ep > 1 on a dense model
R_CP = 32768  # cp does not divide the sequence length
R_OFFLOAD = 65536  # offload_layers not below a pipeline stage's layers
R_HOSTLINK = 131072  # offload_layers on a chip without a published host link
R_DP = 262144  # the row's dp does not make tp x pp x dp = n_chips
R_MIXER = 524288  # layers whose mixer is neither attention nor state-space (LFM2's short convolutions)
R_DUALPIPE = 1048576  # DualPipe needs an even pp, an even number of micro-batches and no interleaving
R_ETP = 2097152  # expert_tp neither 1 nor the row's tp
R_HOSTMEM = 4194304  # the offloaded activations exceed the chip's share of host memory

REASONS: dict[int, str] = {
    R_INPUT: "missing or non-positive input",
    R_PRECISION: "chip has no peak for this precision: pick another precision or set the peak "
                 "(chip.peak_tflops_bf16, chip.peak_tflops_fp8, ...)",
    R_NOPEAK: "chip peak FLOP/s not published (set chip.peak_tflops_<precision>)",
    R_CHIPDATA: "chip memory_gb or memory_bandwidth_gb_s not published (set chip.memory_gb / chip.memory_bandwidth_gb_s)",
    R_STREAMDATA: "external memory bandwidth not published (set chip.external_memory_gb_s)",
    R_ZEROPP: "zero_stage 2 or 3 cannot be combined with pp > 1 (gradients must stay whole across micro-batches)",
    R_LAYOUT: "n_chips not divisible by tp*pp",
    R_LAYERS: "layers not divisible by pp*interleave for this framework (or first/last_stage_layers do not add up)",
    R_HEADS: "heads not divisible by tp (nor, for a state-space model, its Mamba heads or groups)",
    R_BATCH: "global_batch smaller than micro_batch",
    R_INTERLEAVE: "interleave > 1 needs pp > 1, micro-batches a multiple of pp and a framework with interleaving",
    R_STREAMING: "weight-streaming system: tp and pp must be 1 (data parallel only)",
    R_FRAMEWORK: "the framework has no such feature (selective recompute, sequence parallelism, this ZeRO stage or int8 "
                 "training)",
    R_EP: "ep must divide tp x dp (expert parallelism runs over the data-parallel and tensor-parallel ranks) and moe_experts; dense models need ep = 1",
    R_CP: "cp must divide seq_len (each context-parallel rank holds seq_len/cp tokens)",
    R_OFFLOAD: "offload_layers must be fewer than the layers of a pipeline stage (one layer's activations stay on the chip)",
    R_HOSTLINK: "offload_layers needs the chip's link to host memory (set chip.host_link_gb_s)",
    R_HOSTMEM: "the offloaded layers' activations do not fit in the chip's share of host memory (chip.host_memory_gb): "
               "offload fewer layers or recompute more",
    R_DP: "tp x pp x dp must equal n_chips (leave dp blank to take n_chips / (tp x pp))",
    R_MIXER: "the model has layers whose mixer is neither attention nor state-space (e.g. LFM2's short convolutions): "
             "not modelled in training",
    R_ETP: "expert_tp must be 1 (each expert whole on a chip) or tp (experts split as the tensor-parallel layers are)",
    R_DUALPIPE: "pp_schedule dualpipe needs an even pp (>= 2), an even number of micro-batches per step and interleave 1 "
                "(each rank holds stages r and pp-1-r, fed from both ends)",
    R_MEMORY: "does not fit in memory",
}

# FlashAttention-3 runs 1.5-2.0x faster than FlashAttention-2 on an H100, where FlashAttention-2 reaches only 35 % of
# the peak (Shah et al. 2024, arXiv:2407.08608, abstract): an FA2 attention is this much slower than a
# Hopper-native one (FA3, cuDNN fused attention) on chips with asynchronous MMA; the geometric middle of the range
FA2_ON_ASYNC_MMA = (1.5 * 2.0) ** 0.5

# framework features the core reads (0/1, or a number for fw_max_zero); see defaults.yaml `frameworks`
FW_KEYS = ("fw_sp", "fw_selective", "fw_interleave", "fw_max_zero", "fw_overlap", "fw_tp_overlap", "fw_split", "fw_ds",
           "fw_uneven", "fw_pp_inner", "fw_ep_dedup", "fw_z3_tensors", "fw_z3_live",
           "fw_z3_prefetch", "fw_fa2", "fw_moe_probs_in_act", "fw_ce_in_place", "fw_int8", "fw_master_shards",
           "fw_z3_head")
INPUT_KEYS = (
    # model shapes
    "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab", "seq", "n_proj", "learned_pos", "tied",
    "dropout",
    # chip (per chip, for the row's precision)
    "peak_flops", "peak_16", "mem_bytes", "mem_bw", "up_bw", "up_domain", "up_reduce", "up_mesh", "ring", "out_bw", "tdp_w", "usd_per_hour",
    "async_mma",
    "streaming", "ext_mem_bytes", "ext_bw", "peak_published", "power_w", "host_share", "capex_usd", "owned",
    # layout and workload
    "n_chips", "tp", "pp", "micro_batch", "interleave", "recompute", "zero_stage", "global_batch",
    "tokens", "seq_parallel", "flash", "weight_bytes", "grad_bytes", "act_bytes", "low_precision", "gemm_in_bytes",
    "first_layers", "last_layers", "zero_group",
    # optional shortcuts (NaN when absent): sustained FLOP/s per chip and total FLOPs of the run
    "sustained_flops", "total_flops", "up_latency", "framework", "mode", "lora_params",
    *FW_KEYS,
)
# mixture of experts (optional: a block without them, or with moe_experts = 0 everywhere, is dense): routed
# experts E, top-k, an expert's hidden size, shared experts, leading dense layers, expert parallelism,
# the busiest expert's load over the mean, the fraction of a layer's compute the all-to-all can hide behind, and
# group-limited routing (expert groups, groups per token; 0: no limit), and the expert capacity factor (NaN: dropless)
MOE_KEYS = ("moe_experts", "moe_topk", "moe_ffn", "moe_shared", "moe_dense_layers", "ep", "moe_imbalance",
            "a2a_overlap", "moe_groups", "moe_topk_groups", "moe_capacity", "moe_latent", "etp_in", "up_torus")
# multi-head latent attention (optional: absent or 0 everywhere, standard attention): query rank, key-value latent
# rank, RoPE key width; the parameter counts reach the core through MODEL_TERMS, these the activation memory and
# the selective recompute of the up-projections
MLA_KEYS = ("mla_q_rank", "mla_kv_rank", "mla_rope_dim")
WINDOW_KEYS = ("sliding_window", "sliding_window_layers")  # sliding-window attention (optional; 0 or absent: none)
# activation offloading (optional; absent or 0 everywhere: none): layers per stage whose saved activations wait in
# host memory between the forward and the backward, and the chip's host link (bytes/s, one direction)
OFFLOAD_KEYS = ("offload_layers", "host_bw", "host_mem")  # (and the host memory per chip, bytes; NaN: unknown)
# vocabulary tiling (optional; absent or 1: none): the output layer and loss computed in that many vocabulary chunks
# (MaxText's num_vocab_tiling), the last stage holding one chunk's logits
VOCAB_KEYS = ("vocab_tiles",)
# hybrid models (optional; absent, or attention and MLP blocks in every layer and no state-space blocks: a
# transformer): attention, MLP (or MoE) and Mamba-2 blocks among the layers, and the Mamba-2 shapes
# multi-token prediction (optional; absent or 0 everywhere: none): MTP modules trained beside the model
MTP_KEYS = ("mtp_layers",)
# 16-bit layers of a low-precision run (optional; absent or 0 everywhere: none): the first and the last layers whose
# matrix multiplies stay in 16 bits (Megatron-Core first_last_layers_bf16, num_layers_at_start_in_bf16 /
# num_layers_at_end_in_bf16)
HP_KEYS = ("bf16_first_layers", "bf16_last_layers")
# pipeline schedule (optional; absent or 0 everywhere: 1F1B): 1 DualPipe (vocab.PP_SCHEDULES)
PIPE_KEYS = ("pp_schedule",)
HYBRID_KEYS = ("att_layers", "mlp_layers", "ssm_layers", "ssm_heads", "ssm_head_dim", "ssm_state_dim", "ssm_groups",
               "ssm_conv_kernel")
INPUT_KEYS = (*INPUT_KEYS, *MOE_KEYS, *MLA_KEYS, *WINDOW_KEYS, "cp", *OFFLOAD_KEYS, *VOCAB_KEYS, *HYBRID_KEYS,
              *MTP_KEYS, *HP_KEYS, *PIPE_KEYS)  # cp: context parallelism (optional; absent: 1)
MODEL_TERMS = ("p_matrix", "p_layer", "n_params", "q_dim")  # per-model quantities `assemble` may supply
CORE_KEYS = (*INPUT_KEYS, *MODEL_TERMS)

CAL_KEYS = (
    "mm_eff_max",  # achievable fraction of the 16-bit peak for large matrix multiplies
    "mm_eff_max_fp8",  # ... of the 8-bit peak, where the matrix multiplies run in fp8
    "mm_half_dim",  # the narrow GEMM dimension at which efficiency is half of mm_eff_max
    "att_eff",  # the attention kernel's efficiency relative to a large GEMM's (FlashAttention-2: 50-73 % of peak)
    "mem_eff",  # achievable fraction of memory bandwidth for element-wise kernels
    "elem_traffic",  # bytes moved by element-wise kernels per byte of stored activations
    "layer_overhead_s",  # fixed seconds per layer pass (kernel launches, synchronisation)
    "moe_permute_eff",  # the token permute / unpermute kernels' rate over the element-wise kernels' (1: as fast)
    "up_eff",  # achievable fraction of scale-up bandwidth in collectives
    "out_eff",  # achievable fraction of scale-out bandwidth in collectives
    "up_latency_s",
    "out_latency_s",
    "overlap_eff",  # fraction of the overlap window a framework's gradient/parameter collectives hide behind
    "tp_overlap_eff",  # fraction of tensor-parallel collectives hidden behind the GEMMs (where the framework can)
    "p2p_eff",  # fraction of the link a framework's pipeline sends reach (DeepSpeed's engine < 1)
    "dp_coll_eff",  # fraction of the link a framework's data-parallel / ZeRO collectives reach (1 = NCCL's)
    "mem_usable",  # fraction of chip memory a framework can use
    "pue",
    "co2_kg_per_kwh",
    "usd_per_kwh",
    "amortization_years",
    "cost_of_capital",  # per year
    "host_power_w",  # W per accelerator for its host share
    "facility_usd_per_kw_month",
    "ops_usd_per_kw_month",
)
HOURS_PER_YEAR = 8766.0  # 365.25 days


def shapes_of(x: Mapping[str, Array]) -> Shapes:
    return Shapes(
        layers=x["layers"], hidden=x["hidden"], heads=x["heads"], kv_heads=x["kv_heads"], head_dim=x["head_dim"],
        ffn=x["ffn"], vocab=x["vocab"], seq=x["seq"], n_proj=x["n_proj"], learned_pos=x["learned_pos"], tied=x["tied"],
        mla_q_rank=x.get("mla_q_rank"), mla_kv_rank=x.get("mla_kv_rank"), mla_rope=x.get("mla_rope_dim"),
        att_layers=x.get("att_layers"), mlp_layers=x.get("mlp_layers"), ssm_layers=x.get("ssm_layers"),
        ssm_heads=x.get("ssm_heads"), ssm_head_dim=x.get("ssm_head_dim"), ssm_state=x.get("ssm_state_dim"),
        ssm_groups=x.get("ssm_groups"), ssm_conv=x.get("ssm_conv_kernel"),
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
    # q_dim: the attention core's width (FLOPs 2 s^2 q_dim per layer, causal), larger than a*d_h for MLA
    return {"p_matrix": layer_matrix_params(m), "p_layer": layer_params(m), "n_params": total_params(m),
            "q_dim": m.att_dim}


def layout_mask(
    layers: Array, heads: Array, n: Array, tp: Array, pp: Array, interleave: Array, micro_batch: Array,
    global_batch: Array, deepspeed: Array | bool = False, zero_stage: Array | float = 0.0,
    uneven: Array | float = 1.0, interleave_ok: Array | float = 1.0,
) -> Array:
    """Reason bits of the layout's integer rules (R_LAYOUT, R_LAYERS, R_HEADS, R_BATCH, R_INTERLEAVE,
    R_ZEROPP) for rows whose first/last-stage layer counts are left to the framework. A NaN field (not
    decided yet, e.g. left to the layout search) flags nothing, so sweep workers can skip rows that fail
    before evaluating them. `deepspeed` is kept for callers of the older signature (its engine runs no
    interleaving: pass interleave_ok = 0 instead)."""
    tp_pp = tp * pp
    dp = np.maximum(np.floor(n / tp_pp + 1e-9), 1.0)  # data-parallel replicas
    m_run, _, _ = _batch_run(global_batch, dp, micro_batch)
    ok = np.asarray(interleave_ok, dtype=np.float64) * (1.0 - np.asarray(deepspeed, dtype=np.float64))
    return _layout_bits(layers, heads, n, tp, pp, interleave, tp_pp, dp, global_batch, micro_batch, m_run,
                        zero_stage, uneven, ok)


def _batch_run(global_batch: Array, dp: Array, micro_batch: Array) -> tuple[Array, Array, Array]:
    """(micro-batches per step, replicas with work, how the batch ran: 0 exact, 1 the nearest valid batch at or
    below the given one, 2 idle replicas). A global batch that dp x micro_batch does not divide runs
    floor(B / (dp·b)) micro-batches (never a larger batch than asked, so never a faster step); a batch
    smaller than dp·b leaves replicas idle: floor(B / b) of them get one micro-batch."""
    mb_exact = global_batch / (dp * micro_batch)  # micro-batches per pipeline per step as given
    m_floor = np.floor(mb_exact + 1e-9)
    idle = m_floor < 1.0
    dp_run = np.maximum(np.where(idle, np.floor(global_batch / micro_batch + 1e-9), dp), 1.0)  # replicas with work
    m_run = np.maximum(m_floor, 1.0)
    how = np.where(idle, 2, np.where(np.abs(m_floor - mb_exact) > 1e-6, 1, 0)).astype(np.int8)  # BATCH_HANDLING code
    return m_run, dp_run, how


def _layout_bits(
    layers: Array, heads: Array, n: Array, tp: Array, pp: Array, interleave: Array, tp_pp: Array, dp: Array,
    global_batch: Array, micro_batch: Array, m_run: Array, zero_stage: Array | float, uneven: Array | float,
    interleave_ok: Array | float,
) -> Array:
    even_only = np.asarray(uneven) < 0.5
    checks = (
        (np.abs(dp * tp_pp - n) > 0.5, R_LAYOUT),
        # older frameworks split the layers evenly; the others need a layer (or the embedding/head) per stage
        ((even_only & indivisible(layers, pp * interleave)) | (layers + 2.0 < pp * interleave), R_LAYERS),
        (indivisible(heads, tp), R_HEADS),
        (global_batch < micro_batch - 1e-9, R_BATCH),
        ((interleave > 1) & ((pp <= 1) | indivisible(m_run, pp) | (np.asarray(interleave_ok) < 0.5)), R_INTERLEAVE),
        # DeepSpeed docs: ZeRO-2/3 are incompatible with pipeline parallelism (Megatron's distributed
        # optimizer is ZeRO-1)
        ((zero_stage >= 2) & (pp > 1), R_ZEROPP),
    )
    mask = np.zeros(np.shape(m_run), dtype=np.int32)
    for cond, bit in checks:
        flag(mask, cond, bit)
    return mask


def _split(L: Array, p: Array, v: Array, w: float | Array, first: Array, last: Array,
           w_last: float | Array | None = None) -> tuple[Array, Array, Array]:
    """Layers on a chip of the first, a middle and the last pipeline stage (Megatron-Core's pipeline layout).

    The L layers, plus w slots each for the embedding and the output head (w = 1: counted as a layer, as
    --account-for-embedding/loss-in-pipeline-split and Llama 3's one layer fewer on the first and last stage
    do; w = 0: Megatron's even split, ceil where it does not divide), fill p·v virtual stages as evenly as
    whole layers allow; `w_last` (default w) is the last stage's slots when it holds more than the head (multi-token
    prediction modules: a slot each, as Megatron-Core's pipeline layout gives them, 'm'). `first`/`last` (NaN = by
    that rule) are the row's own counts."""
    w_end = w if w_last is None else w_last
    per_virtual = np.ceil((L + w + w_end) / (p * v) - 1e-9)  # slots per virtual stage
    auto = np.maximum(v * per_virtual - w, 0.0)  # layers on the first stage by the rule
    auto_last = auto if w_last is None else np.maximum(v * per_virtual - w_end, 0.0)  # ... on the last
    given = bool(np.isfinite(first).any() or np.isfinite(last).any())
    f = np.where(np.isfinite(first), first, auto) if given else auto
    two = p <= 2.0
    l_auto = np.where(two, L - f, auto_last)
    lst = np.where(np.isfinite(last), last, l_auto) if given else l_auto
    rest = L - f - lst  # layers on the middle stages
    mid = np.where(two, 0.0, np.ceil(rest / np.maximum(p - 2.0, 1.0) - 1e-9))
    one = p <= 1.0
    return np.where(one, L, f), np.where(one, 0.0, mid), np.where(one, L, lst)


def uniform_calibration(cal: Mapping[str, Array]) -> dict[str, Array]:
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
    cal = uniform_calibration(cal)
    n = len(x["layers"])
    x = {k: x[k] for k in CORE_KEYS if k in x}  # a sweep's x carries more (echo columns): cast only these
    if "cp" in x and not bool((np.asarray(x["cp"]) > 1).any()):
        x = {k: v for k, v in x.items() if k != "cp"}  # no context parallelism in this call: no cp passes
    if "offload_layers" in x and not bool((np.asarray(x["offload_layers"]) > 0).any()):  # no offloading here
        x = {k: v for k, v in x.items() if k not in OFFLOAD_KEYS}
    if "vocab_tiles" in x and not bool((np.asarray(x["vocab_tiles"]) > 1).any()):  # whole logits everywhere
        x = {k: v for k, v in x.items() if k not in VOCAB_KEYS}
    if "mla_kv_rank" in x and not bool((np.asarray(x["mla_kv_rank"]) > 0).any()):  # no latent attention here
        x = {k: v for k, v in x.items() if k not in MLA_KEYS}
    if "sliding_window" in x and not bool((np.asarray(x["sliding_window"]) > 0).any()):  # no windowed layers here
        x = {k: v for k, v in x.items() if k not in WINDOW_KEYS}
    if "mtp_layers" in x and not bool((np.asarray(x["mtp_layers"]) > 0).any()):  # no MTP modules here
        x = {k: v for k, v in x.items() if k not in MTP_KEYS}
    if "bf16_last_layers" in x and not bool((np.nan_to_num(np.asarray(x["bf16_first_layers"]) + np.asarray(
            x["bf16_last_layers"])) * np.asarray(x["low_precision"]) > 0).any()):  # no 16-bit layers among 8-bit ones
        x = {k: v for k, v in x.items() if k not in HP_KEYS}
    if "pp_schedule" in x and not bool((np.asarray(x["pp_schedule"]) > 0).any()):  # 1F1B everywhere
        x = {k: v for k, v in x.items() if k not in PIPE_KEYS}
    if "att_layers" in x and not is_hybrid(x):  # every layer attention + MLP: no hybrid passes
        x = {k: v for k, v in x.items() if k not in HYBRID_KEYS}
    if "moe_experts" in x and not bool((np.asarray(x["moe_experts"]) > 0).any()):  # a dense chunk: no MoE passes
        dense_ep = "ep" in x and bool((np.asarray(x["ep"]) > 1).any())
        x = {k: v for k, v in x.items() if k not in MOE_KEYS or (k == "ep" and dense_ep)}
    return by_blocks(_evaluate_block, x, cal, n, block, dtype)


def is_hybrid(x: Mapping[str, Array]) -> bool:
    """True when some row's model has layers other than attention + MLP (HYBRID_KEYS)."""
    return "att_layers" in x and bool(hybrid_rows(np.asarray(x["layers"]), np.asarray(x["att_layers"]),
                                                  np.asarray(x["mlp_layers"]), np.asarray(x["ssm_layers"])).any())


@dataclass(frozen=True)
class StepInputs:
    """What the step's pipeline and data-parallel terms read, per row (arrays of the block) or for every row (a
    float): `_step_seconds` runs twice on a block, the second time only on the rows whose pipeline could sit
    inside a scale-up domain (`rows`)."""

    n_used: Array | float
    dom: Array | float
    up_bw: Array | float
    up_mesh: Array | float  # 1 where the scale-up domain is a full mesh (comm.mesh_share)
    out_bw: Array | float
    up_lat: Array | float
    out_lat: Array | float
    nvls: Array | float
    ring: Array | float
    p2p_eff: Array | float
    fw_split: Array | float
    fw_ds: Array | float
    sp_f: Array | float
    msg: Array | float
    t: Array | float
    p: Array | float
    v: Array | float
    tp_pp: Array | float
    tp_gather: Array | float
    t_stage_compute: Array | float
    L_stage: Array | float
    t_a2a: Array | float
    t_layer: Array | float
    m_run: Array | float
    dp_grad: Array | float
    zg: Array | float
    ep: Array | float
    etp: Array | float
    dense_chip: Array | float
    exp_chip: Array | float
    exp_layer_chip: Array | float
    p_layer_chip: Array | float
    root_chip: Array | float  # parameters outside the layers on one chip (ZeRO-3's root unit: embeddings, head, norm)
    head_regather: Array | float  # parameters of the output head gathered again for the backward (zero3_keeps_head 0)
    train_frac: Array | float
    gb: Array | float
    wb: Array | float
    coll: Array | float
    win_bwd: Array | float
    win_fwd: Array | float
    bwd_frac: Array | float
    z1: Array | float
    z2: Array | float
    z3: Array | float
    z01: Array | float
    n_proj: Array | float
    fw_z3_tensors: Array | float
    overlap: Array | float
    t_opt: Array | float
    bubble_stages: Array | float  # the pipeline bubble in stage times (1F1B: (p - 1) / v)
    any_moe: bool
    per_tensor_z3: bool

    def rows(self, idx: Array) -> StepInputs:
        """The inputs of the rows `idx` (of a block of `len(self.t)` rows)."""
        n = len(np.asarray(self.t))
        return replace(self, **{f.name: v[idx] for f in fields(self)
                                if isinstance(v := getattr(self, f.name), np.ndarray) and v.ndim == 1 and len(v) == n})


def zero3_exposed(fwd: Array, bwd: Array, window: Array, bwd_frac: Array | float) -> Array:
    """Seconds of a ZeRO-3 / FSDP layer's collectives that its compute does not hide, per micro-batch: the forward's
    gather behind the forward, the backward's gather and gradient reduce-scatter behind the backward (Zhao et al.
    2023, arXiv:2304.11277, sec. 3.3-3.4: backward prefetch overlaps the next gather with this layer's backward). A
    pass cannot lend the other its idle link time: the forward's gathers are done before the backward starts.
    `window` is the hideable share of the layer's whole compute, `bwd_frac` the backward's part of it."""
    return np.maximum(fwd - window * (1.0 - bwd_frac), 0.0) + np.maximum(bwd - window * bwd_frac, 0.0)


def _step_seconds(r: StepInputs, inner_f: Array | float) -> tuple[Array, Array, Array]:
    """Seconds per step with the pipeline outside (0) or inside (1) the scale-up domain, and of it the
    pipeline bubble and the data-parallel collectives left exposed."""
    (n_used, dom, up_bw, out_bw, up_lat, out_lat, nvls, ring, p2p_eff, fw_split, fw_ds, sp_f, msg, t, p, v, tp_pp,
     tp_gather, t_stage_compute, L_stage, t_a2a, t_layer, m_run, dp_grad, zg, ep, etp, dense_chip, exp_chip,
     exp_layer_chip, p_layer_chip, train_frac, gb, wb, coll, win_bwd, win_fwd, bwd_frac, z1, z2, z3, z01, n_proj,
     fw_z3_tensors, overlap, t_opt) = (
        r.n_used, r.dom, r.up_bw, r.out_bw, r.up_lat, r.out_lat, r.nvls, r.ring, r.p2p_eff, r.fw_split, r.fw_ds,
        r.sp_f, r.msg, r.t, r.p, r.v, r.tp_pp, r.tp_gather, r.t_stage_compute, r.L_stage, r.t_a2a, r.t_layer,
        r.m_run, r.dp_grad, r.zg, r.ep, r.etp, r.dense_chip, r.exp_chip, r.exp_layer_chip, r.p_layer_chip,
        r.train_frac, r.gb, r.wb, r.coll, r.win_bwd, r.win_fwd, r.bwd_frac, r.z1, r.z2, r.z3, r.z01, r.n_proj,
        r.fw_z3_tensors,
        r.overlap, r.t_opt
    )
    any_moe, per_tensor_z3 = r.any_moe, r.per_tensor_z3
    mesh = r.up_mesh
    dtype = np.asarray(t).dtype

    def num(cond: Array) -> Array:
        return np.asarray(cond).astype(dtype)  # 1.0 where true, 0.0 where false

    cross_f = num(n_used > dom) * (1.0 - inner_f)  # some stage boundary crosses the scale-out network
    # bytes/s: a send to the next stage inside a full-mesh domain rides one link (comm.mesh_share)
    pp_bw = _pick(cross_f, out_bw, up_bw * comm.mesh_share(2.0, dom, mesh)) * p2p_eff
    pp_lat = _pick(cross_f, out_lat, up_lat)  # s
    # with sequence parallelism the stage output is already split over the t ranks (s/t tokens each);
    # otherwise Megatron splits a cross-domain send over the t ranks and re-gathers it (Narayanan sec. 4.1)
    split_f = cross_f * num(fw_split > 0) * (1.0 - sp_f)
    pp_msg = msg / _pick(np.maximum(sp_f, split_f), t, 1.0)  # bytes per send
    two_v = 2.0 * v
    sends = _pick(fw_ds, 4.0, two_v)  # transfers on the critical path per micro-batch
    recvs = _pick(fw_ds, 2.0, two_v)  # receives per micro-batch: activations forward, gradients back
    regather = split_f * tp_gather  # s per receive: all-gather over the tp ranks (scale-up link)
    t_pp = num(p > 1) * (sends * (pp_msg / pp_bw + pp_lat) + recvs * regather)  # s per micro-batch
    t_stage = t_stage_compute + t_pp + L_stage * t_a2a  # s per micro-batch on the slowest stage
    t_pipe = (m_run + r.bubble_stages) * t_stage  # s: m micro-batches plus the bubble (sec. 2.2)
    # ---- data parallel and ZeRO/FSDP: sharding group (hybrid sharding when smaller than dp) ---------
    stride = _pick(inner_f, tp_pp, t)  # ranks between data-parallel members
    dp_all = comm.Group(dp_grad, stride, dom, up_bw, out_bw, up_lat, out_lat, nvls, ring, mesh)
    hybrid = not np.array_equal(zg, dp_grad)  # a sharding group smaller than data parallelism somewhere
    shard = comm.Group(zg, stride, dom, up_bw, out_bw, up_lat, out_lat, nvls, ring, mesh) if hybrid else dp_all
    if any_moe:  # the experts' group, its members ep x etp / t data-parallel strides apart (one chip, which
        # costs nothing, on a row without routed experts)
        edp_n = np.where(exp_layer_chip > 0, np.maximum(dp_grad * t / (ep * etp), 1.0), 1.0)
        edp = comm.Group(edp_n, stride * ep * etp / t, dom, up_bw, out_bw, up_lat, out_lat, nvls, ring, mesh)

        def allreduce(dense_b: Array, exp_b: Array, group: comm.Group) -> Array:
            return group.allreduce(dense_b) + edp.allreduce(exp_b)

        def allgather(dense_b: Array, exp_b: Array, group: comm.Group) -> Array:
            return group.allgather(dense_b) + edp.allgather(exp_b)
    else:
        def allreduce(dense_b: Array, exp_b: Array, group: comm.Group) -> Array:
            return group.allreduce(dense_b)

        def allgather(dense_b: Array, exp_b: Array, group: comm.Group) -> Array:
            return group.allgather(dense_b)
    # ZeRO-0: one gradient all-reduce per step, hidden behind the last micro-batch's backward where the
    # framework overlaps it; ZeRO-1 (distributed optimizer): its reduce-scatter of the gradients (their bytes)
    # behind that backward, the all-gather of the updated parameters (their bytes: Megatron-Core's
    # DistributedOptimizer gathers the model's 16-bit, or fp8, parameters, not the gradient buffer) behind the
    # next step's first forward (--overlap-param-gather); neither half is shrunk by in-network reduction
    grad_ar = allreduce(dense_chip * gb, exp_chip * gb, dp_all) * coll  # s
    rs_z1 = allgather(dense_chip * gb, exp_chip * gb, dp_all) * coll  # s: the gradients' reduce-scatter
    ag_z1 = allgather(dense_chip * wb, exp_chip * wb, dp_all) * coll  # s: the parameters' all-gather
    t_z01 = _pick(z1, np.maximum(rs_z1 - win_bwd, 0.0) + np.maximum(ag_z1 - win_fwd, 0.0),
                  np.maximum(grad_ar - win_bwd, 0.0))
    # ZeRO-2: gradients reduce-scattered every micro-batch, parameters all-gathered once per step
    rs_grad = allgather(dense_chip * gb, exp_chip * gb, shard) * coll  # s per micro-batch
    ag_par = allgather(dense_chip * wb, exp_chip * wb, shard) * coll  # s per step
    across = 0.0  # s per step: hybrid sharding's replicas all-reduce the gradient shards (none without it)
    if hybrid:
        rep = comm.Group(np.maximum(np.floor(dp_grad / zg + 1e-9), 1.0), stride * zg, dom, up_bw, out_bw, up_lat, out_lat,
                         mesh=mesh)
        across = rep.allreduce(dense_chip * gb / zg) * coll
    t_z2 = m_run * np.maximum(rs_grad - win_bwd, 0.0) + np.maximum(ag_par - win_fwd, 0.0) + across
    # ZeRO-3/FSDP: per micro-batch and layer, a gather in the forward, and a gather and the gradients'
    # reduce-scatter in the backward; the next layer's gather is prefetched behind this layer's compute, the first
    # one is not hidden. Each pass hides its own collectives: a backward whose gather and reduce-scatter outlast it
    # cannot borrow the forward's idle link time (the forward's gathers are done before the backward starts)
    dense_l = p_layer_chip - exp_layer_chip if any_moe else p_layer_chip  # a layer's parameters outside the experts
    gather_l = allgather(dense_l * wb, exp_layer_chip * wb, shard) * coll  # s per layer
    fwd_l = gather_l
    bwd_l = gather_l + allgather(dense_l * gb * train_frac, exp_layer_chip * gb * train_frac, shard) * coll
    if per_tensor_z3:
        # DeepSpeed of 2021 gathered ZeRO-3 parameters tensor by tensor, each all-gather a synchronised call
        # (deepspeedai/DeepSpeed issue #1174 and PR #1188, June 2021), and NCCL runs an all-gather only as a ring
        # of n - 1 steps (comm.RING_*): a Megatron GPT layer's fused QKV, projection and MLP matrices with their
        # biases and two LayerNorms (weight, bias) are 2 (2 + n_proj) + 4 tensors, gathered forward and backward
        tensors = 2.0 * (2.0 + n_proj) + 4.0
        lat = fw_z3_tensors * tensors * shard.ring_latency()
        fwd_l, bwd_l = fwd_l + lat, bwd_l + lat
    exposed_l = zero3_exposed(fwd_l, bwd_l, overlap * t_layer, bwd_frac)  # s per layer per micro-batch
    # the root unit (the embedding, the output head and the final norm: what FSDP's per-block wrapping leaves to the
    # root module) is gathered when the forward starts, before any compute it could hide behind; its gradients, the
    # embedding's last of all, are reduce-scattered when the backward ends, with nothing left to hide them (PyTorch
    # FSDP's root unit; DeepSpeed's and XLA's first gather and last reduction of a step alike)
    # (a framework that does not keep the head across the loss, zero3_keeps_head 0, gathers it again for the backward)
    root = (shard.allgather(r.root_chip * wb) + shard.allgather(r.root_chip * gb * train_frac)
            + shard.allgather(r.head_regather * wb)) * coll
    t_z3 = m_run * (L_stage * exposed_l + gather_l + root) + across
    t_dp = z01 * t_z01 + z2 * t_z2 + z3 * t_z3  # s per step, not hidden
    return t_pipe + t_dp + t_opt, r.bubble_stages * t_stage, t_dp  # s per step


def _evaluate_block(x: Mapping[str, Array], cal: Mapping[str, Array]) -> dict[str, Array]:
    # Written for speed as well as reading: a block is ~400 element-wise passes over ~16K rows, so a
    # selection between two finite values is a blend on a 0/1 array (`num`), not np.where (2-3x the cost
    # of a multiply, and float64 output for scalar choices), and every pass keeps the block's dtype.
    m = shapes_of(x)
    terms = {k: x[k] for k in MODEL_TERMS if k in x} or model_terms(m)
    L, h, a, s, V = m.layers, m.hidden, m.heads, m.seq, m.vocab
    # a hybrid model's attention, MLP and state-space blocks per layer (transformer.Shapes.shares: 1, 1, 0 without)
    hybrid = m.hybrid
    att_share, mlp_share, ssm_share = m.shares()
    n, t, p = x["n_chips"], x["tp"], x["pp"]
    b, v, rc, zero = x["micro_batch"], x["interleave"], x["recompute"], x["zero_stage"]
    B = x["global_batch"]
    dtype = np.asarray(n).dtype

    def num(cond: Array) -> Array:
        return np.asarray(cond).astype(dtype)  # 1.0 where true, 0.0 where false

    streaming = x["streaming"] > 0
    any_streaming = bool(streaming.any())
    peak = x["peak_flops"]
    full = rc == 2
    full_f = num(full)
    N = terms["n_params"]  # parameters
    p_matrix, p_layer_all = terms["p_matrix"], terms["p_layer"]  # parameters per layer: active matrices, all
    # context parallelism (optional; absent or 1 everywhere: none): each sequence split over cp chips
    cp_in = x.get("cp")
    any_cp = cp_in is not None and bool((cp_in > 1).any())
    cp = cp_in if any_cp else 1.0
    moe_e = x.get("moe_experts")
    any_moe = moe_e is not None and bool((moe_e > 0).any())
    if any_moe:
        # per-layer quantities averaged over the L layers: Lm = L - dense layers carry an MoE block in place of
        # the dense MLP (DeepSeek-V3 sec. 2.1: the first 3 of 61 layers are dense)
        E, k_top, f_e = moe_e, x["moe_topk"], x["moe_ffn"]  # experts, experts per token, expert hidden size
        ep = x["ep"]
        # expert capacity (GShard sec. 2.2, Switch Transformer sec. 2.2): with a capacity factor c each expert takes
        # at most c x its mean tokens in a buffer padded to that size, so the busiest expert's load is c (tokens
        # beyond it are dropped) and the all-to-all moves c-sized buffers; dropless (blank) runs at the imbalance
        cap = x.get("moe_capacity")
        load, slots = x["moe_imbalance"], 1.0  # the busiest expert's load; token slots sent per token copy
        if cap is not None and bool(np.isfinite(cap).any()):
            capped, c = num(np.isfinite(cap)), np.nan_to_num(cap)
            load, slots = _pick(capped, c, load), _pick(capped, c, 1.0)
        routed_f = num(E > 1)  # a single expert needs no router and no dispatch (its gate is 1)
        # fraction of layers that are MoE (a hybrid's MoE blocks among its MLP blocks)
        moe_frac = ((x["mlp_layers"] if hybrid else L) - x["moe_dense_layers"]) * num(E > 0) / L
        expert = m.n_proj * h * f_e  # parameters of one expert (2 or 3 projections of h x f_e)
        dense_mlp = m.n_proj * h * m.ffn  # parameters of the dense MLP it replaces
        router = h * E * routed_f  # parameters of the router (h -> E logits)
        # latent MoE (Megatron-Core moe_latent_size, Nemotron 3 Super): the routed experts work on a narrower latent
        # d_l, a shared h -> d_l projection before the dispatch and d_l -> h after the combine; the tokens cross the
        # all-to-all at d_l; the shared experts and the router stay on h
        lat_in = x.get("moe_latent")
        any_latent = lat_in is not None and bool((lat_in > 0).any())
        width = _pick(num(lat_in > 0), lat_in, h) if any_latent else h  # the routed experts' model width
        routed_expert = m.n_proj * width * f_e if any_latent else expert  # parameters of one routed expert
        latent_proj = 2.0 * h * lat_in * routed_f if any_latent else 0.0  # the down and up projections
        routed_active = moe_frac * k_top * routed_expert  # active routed-expert parameters per layer
        p_exp_layer = moe_frac * E * routed_expert  # routed-expert parameters per layer (all experts)
        d_rest = moe_frac * (x["moe_shared"] * expert + router + latent_proj - dense_mlp)  # non-routed change per layer
        p_matrix = p_matrix + d_rest + routed_active  # active matrix parameters per layer (FLOPs: 6·N_active)
        p_layer_all = p_layer_all + d_rest  # parameters per layer outside the routed experts
        N = N + L * (d_rest + p_exp_layer)  # total parameters (memory)
    # multi-token prediction (DeepSeek-V3 sec. 2.2, Megatron-Core --mtp-num-layers): D modules after the last layer,
    # each a projection M_k of [norm(h); norm(embedding of the token k ahead)] (2h -> h), one layer of the model's own
    # kind and the shared output head; Megatron-Core places them on the last pipeline stage, which then keeps the
    # embedding table too
    mtp_in = x.get("mtp_layers")
    any_mtp = mtp_in is not None and bool((mtp_in > 0).any())
    D = mtp_in if any_mtp else 0.0
    mtp_proj = 2.0 * h * h  # parameters of one module's projection M_k
    if any_mtp:
        N = N + D * (p_layer_all + mtp_proj + (p_exp_layer if any_moe else 0.0))
    # LoRA (Hu et al. 2021): frozen weights get no weight gradients or optimizer state; only the adapters train
    lora = x["mode"] == 2
    any_lora = bool(lora.any())
    trainable = np.where(lora, x["lora_params"], N) if any_lora else N  # parameters with gradients and Adam state
    wb, gb, e = x["weight_bytes"], x["grad_bytes"], x["act_bytes"]
    fw_ds = num(x["fw_ds"] > 0)
    sp_f = num(x["seq_parallel"] > 0)
    flash = x["flash"]

    # ---- layout validity and the batch actually run (masked, never looped) -------------------------
    tp_pp = t * p
    tpc = tp_pp * cp if any_cp else tp_pp  # chips of one model replica (Megatron-Core: tp x cp x pp)
    dp = np.maximum(np.floor(n / tpc + 1e-9), 1.0)  # data-parallel replicas of the layout
    m_run, dp_run, batch_how = _batch_run(B, dp, b)  # micro-batches per step, replicas with work
    B_run = m_run * dp_run * b  # sequences per step actually run
    mask = _layout_bits(L, a, n, t, p, v, tpc, dp, B, b, m_run, zero, x["fw_uneven"], x["fw_interleave"])
    # a chip of a context-parallel group holds s/cp tokens of each sequence; Megatron-Core splits the sequence in
    # 2·cp chunks and gives each rank one from each end, so causal attention work is balanced (every per-chip
    # quantity below that scales with the micro-batch uses b/cp)
    b_chip = b / cp if any_cp else b  # sequences' worth of tokens per chip per micro-batch
    no_peak = ~np.isfinite(peak)
    # a non-positive or NaN count fails `> 0` (np.minimum carries NaN through)
    smallest = np.minimum(np.minimum(np.minimum(n, B), np.minimum(b, t)), np.minimum(np.minimum(p, v), L))
    checks = [
        (~(smallest > 0), R_INPUT),
        (no_peak & (x["peak_published"] > 0), R_PRECISION),
        (no_peak & (x["peak_published"] <= 0), R_NOPEAK),
        # a technique the framework's release did not have (defaults.yaml `frameworks`)
        (((rc == 1) & (x["fw_selective"] < 0.5)) | ((sp_f > 0) & (x["fw_sp"] < 0.5)) | (zero > x["fw_max_zero"])
         | ((x["low_precision"] > 1.5) & (x["fw_int8"] < 0.5)), R_FRAMEWORK),
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
    if any_cp:
        checks.append((indivisible(s, cp), R_CP))
    # activation offloading (optional): Megatron-Core --cpu-offloading-num-layers (Transformer Engine's CPU offload
    # context) keeps the saved activations of that many of a stage's layers in host memory between the forward and
    # the backward; at least one layer's stay on the chip
    off_in = x.get("offload_layers")
    any_off = off_in is not None and bool((off_in > 0).any())
    off = off_in if any_off else 0.0
    if any_off:
        checks.append(((off > 0) & (off >= np.floor(L / p)), R_OFFLOAD))
        checks.append(((off > 0) & ~np.isfinite(x["host_bw"]), R_HOSTLINK))
    etp: Array | float = 1.0  # chips one expert is split over (1 on a dense model)
    if any_moe:
        # Megatron-Core: expert-parallel x expert-tensor-parallel ranks divide the tp x dp ranks; experts split over
        # tp too where ep divides dp (expert tensor parallel = tp), else whole on each chip (expert tensor parallel
        # 1, an ep group that spans the tp ranks: --expert-tensor-parallel-size 1)
        etp = _pick(num(indivisible(dp, ep)), 1.0, t)  # chips one expert is split over
        etp_in = x.get("etp_in")  # the row's --expert-tensor-parallel-size, where it gives one
        if etp_in is not None and bool(np.isfinite(etp_in).any()):
            given = np.isfinite(etp_in)
            checks.append((given & (etp_in != 1.0) & (etp_in != t), R_ETP))
            etp = np.where(given, etp_in, etp)
        checks.append(((ep > 1) & (E <= 0) | indivisible(dp * t, ep * etp) | ((E > 0) & indivisible(E, ep)), R_EP))
        # one model replica's share of the routed experts (gradient and optimizer traffic per tp x pp chips)
        # (LoRA's adapters train no expert: its trainable parameters hold none to drop)
        trainable = trainable - (L + D) * p_exp_layer * (1.0 - t / (ep * etp)) * (num(~lora) if any_lora else 1.0)
    elif "ep" in x:
        checks.append((x["ep"] > 1, R_EP))
    if hybrid:
        # the blocks must add up: one per layer (Megatron-Core's hybrid pattern) or a mixer per layer beside an MLP in
        # each (attention or state-space, as Jamba's layers); else some layers mix tokens in a way not modelled here
        A, M, S = x["att_layers"], x["mlp_layers"], x["ssm_layers"]
        checks.append(((np.abs(A + S - L) > 0.5) & (np.abs(A + S + M - L) > 0.5), R_MIXER))
        # Megatron-Core's MambaMixer splits its heads and B/C groups over the tensor-parallel ranks
        checks.append(((S > 0) & (indivisible(x["ssm_heads"], t) | indivisible(x["ssm_groups"], t)), R_HEADS))
    if "pp_schedule" in x:
        checks.append(((x["pp_schedule"] > 0) & ((np.mod(p, 2.0) != 0) | (np.mod(m_run, 2.0) != 0) | (v > 1)), R_DUALPIPE))
    for cond, bit in checks:
        flag(mask, cond, bit)

    # ---- FLOPs per step (whole job) -------------------------------------------------------------
    mm = 2.0 * s * p_matrix  # FLOPs per sequence per layer, matrix multiplies (forward)
    att = 2.0 * s * s * terms["q_dim"]  # FLOPs per sequence per layer, QK^T and attention x V, causal (s^2/2)
    scan = 0.0  # FLOPs per sequence per layer, a hybrid's state-space scans and convolutions (forward)
    if hybrid:  # the mean over the layers: attention in att_share of them, Mamba-2 blocks in ssm_share
        att = att * att_share
        scan = s * ssm_share * ssm_scan_flops_per_token(m)
    att_full = att  # ... over the whole causal triangle
    if "sliding_window" in x:
        # sliding-window layers (Mistral 7B sec. 2, Gemma 2/3, gpt-oss) attend to the last w tokens only: s^2/2 -
        # (s - w)^2/2 causal pairs where w < s; `att` is the layers' mean (the FLOPs counted and, with
        # FlashAttention, executed: its kernels skip the blocks outside the band)
        beyond = np.maximum(1.0 - x["sliding_window"] / s, 0.0) * num(x["sliding_window"] > 0)
        att = att * (1.0 - x["sliding_window_layers"] / (x["att_layers"] if hybrid else L) * beyond * beyond)
    logits = 2.0 * s * h * V  # FLOPs per sequence, output projection (forward)
    # forward + 2x backward (eq. 3); with LoRA the frozen matrices skip their weight gradients, so their
    # backward is 1x forward (activation gradients only): ~4N instead of 6N FLOPs per token (Hu et al. 2021)
    mm_passes = 3.0 - num(lora) if any_lora else 3.0
    per_seq = L * (mm_passes * mm + 3.0 * (att + scan)) + mm_passes * logits  # model FLOPs per sequence
    mm_proj = 2.0 * s * mtp_proj  # FLOPs per sequence of one MTP module's projection (forward)
    if any_mtp:  # each MTP module: its projection, one layer and the output head again
        per_seq = per_seq + D * (mm_passes * (mm + mm_proj + logits) + 3.0 * (att + scan))
    if any_lora:
        per_seq = per_seq + 6.0 * s * x["lora_params"] * num(lora)  # adapters, forward + backward
    model_flops = per_seq * B_run  # FLOPs per step
    # recompute: full re-runs each layer's forward (mm + att); selective the attention core's forward once
    # (Korthikanti sec. 5); the time below charges the same passes
    selective_f = num(rc == 1)
    # latent attention's selective recompute re-runs the up-projections instead of the attention core (DeepSeek-V3
    # sec. 3.2.3: 'we recompute all RMSNorm operations and MLA up-projections during back-propagation')
    mla_f = m.mla if m.mla is not None else 0.0 * s
    mm_up = 2.0 * s * mla_up_params(m)  # FLOPs per sequence per layer (0 for standard attention)
    att_rc = full_f + selective_f * (1.0 - mla_f)  # attention-core forwards re-run per layer
    recompute_flops = (L + D) * (full_f * (mm + scan) + att_rc * att + selective_f * mm_up) * B_run
    hw_flops = model_flops + recompute_flops  # FLOPs per step
    tokens_step = B_run * s  # tokens per step

    # ---- one micro-batch through one layer on one chip -----------------------------------------
    # compute time = FLOPs x b / t / (peak x eff); 1/eff(d) = (1 + half_dim / d) / mm_eff_max (`_eff`)
    passes = 3.0 + full_f  # forward, backward (2x), recomputed forward
    mm_time_passes = mm_passes + full_f  # matrix multiplies: LoRA skips the weight-gradient GEMMs
    bs = b_chip * s  # tokens per micro-batch on one chip
    half = cal["mm_half_dim"]
    low_prec = num(x["low_precision"] > 0)  # 1 where the GEMMs run below 16 bits
    eff_max = _pick(low_prec, cal["mm_eff_max_fp8"], cal["mm_eff_max"])
    s_per_flop = b_chip / (t * peak * eff_max)  # s per FLOP of one sequence's work, at full GEMM efficiency
    narrow_mm = np.minimum(np.minimum(bs, h), np.minimum(terms["q_dim"], x["ffn"]) / t)  # narrowest GEMM dim
    t_mm = (mm * mm_time_passes + selective_f * mm_up) * s_per_flop * (1.0 + half / narrow_mm)  # s
    if any_moe:
        # routed experts: grouped GEMMs over the tokens one expert receives, bs·k·ep/E per chip (the ep group's
        # tokens spread over E experts), at the busiest expert's load
        mm_routed = 2.0 * s * routed_active  # FLOPs per sequence per layer
        narrow_e = np.maximum(np.minimum(np.minimum(np.minimum(narrow_mm, width), f_e / t),
                                         bs * k_top * ep / np.maximum(E, 1.0)), 1.0)
        t_mm = t_mm + mm_routed * mm_time_passes * s_per_flop * (
            load * (1.0 + half / narrow_e) - (1.0 + half / narrow_mm))  # s
    # attention core as executed: unfused kernels compute the whole s^2 matrix (masked), FlashAttention skips the
    # causal half and recomputes the scores in its backward (2.5x the forward, FlashAttention-2 sec. 3.1);
    # selective or full recompute re-runs the forward once
    att_exec = att * (2.0 - flash)  # forward FLOPs per sequence per layer as executed
    if "sliding_window" in x:  # ... unfused, the whole matrix, the window's mask inside it
        att_exec = att * flash + 2.0 * att_full * (1.0 - flash)
    att_passes = 3.0 + 0.5 * flash + att_rc
    # attention runs in 16-bit even when the GEMMs run in fp8 (Transformer Engine), at its kernel's efficiency
    s_per_flop_att = b_chip / (t * x["peak_16"] * cal["mm_eff_max"] * cal["att_eff"])
    # FlashAttention-2 (Ampere's synchronous mma) on a chip whose tensor cores need asynchronous MMA runs slower
    # than the Hopper-native kernels the other frameworks' att_eff describes (FA2_ON_ASYNC_MMA)
    fa2 = x["fw_fa2"] * x["async_mma"]
    if bool(fa2.any()):  # only blocks holding such rows pay the pass
        s_per_flop_att = s_per_flop_att * (1.0 + (FA2_ON_ASYNC_MMA - 1.0) * fa2 * flash)
    t_att = att_exec * att_passes * s_per_flop_att * (1.0 + half / np.minimum(s, m.head_dim))  # s
    if hybrid:
        # the SSD scan's chunked matrix products (Dao & Gu 2024 sec. 6: batched GEMMs over chunks of SSD_CHUNK tokens
        # and head_dim channels) in 16 bits, at the attention kernel's efficiency: forward, backward (2x), recomputed
        t_att = t_att + scan * (3.0 + full_f) * s_per_flop_att * (
            1.0 + half / np.minimum(SSD_CHUNK, np.maximum(x["ssm_head_dim"], 1.0)))  # s
    m_act = m
    if any_moe:  # MoE layers keep the k + shared experts' MLP tensors (width f_e each) in place of the dense MLP's
        moe_of_mlp = moe_frac / np.maximum(mlp_share, 1e-9) if hybrid else moe_frac  # MoE blocks among MLP blocks
        m_act = replace(m, ffn=m.ffn + moe_of_mlp * ((k_top + x["moe_shared"]) * f_e - m.ffn))
    per_layer = activation_bytes_per_layer(m_act, b_chip, t, sp_f, flash, e, x["dropout"])  # bytes: none, selective, full
    act_none = per_layer[0]  # bytes the memory-bound kernels move, per stored byte (elem_traffic below)
    gin = x.get("gemm_in_bytes")
    if gin is not None and bool((gin != e).any()):
        # what stays in memory: Transformer Engine's fp8 layers save the fp8 copy of a GEMM input they cast
        # (linear.py: the quantized input, its row-wise data dropped, is what the backward's wgrad reads). The
        # element-wise kernels still read and write the 16-bit tensors (the casts add a write): their traffic
        # keeps the 16-bit accounting above
        per_layer = activation_bytes_per_layer(m_act, b_chip, t, sp_f, flash, e, x["dropout"], gin)
    if any_moe:
        # the dispatched token copies (the experts' fc1 input, k·h per token) and the expert outputs the combine
        # sums (k·h more): both pass through the permute / unpermute kernels. Where the combine weights the outputs
        # by the routing probabilities, their gradient needs the outputs kept; frameworks that apply the
        # probabilities inside the expert activation instead (fw_moe_probs_in_act) keep only the fc1 input
        # bytes per layer, one copy: a chip's share of the tp group's copies, all of them where its experts are
        # split over the group (etp = tp: the gathered input each slice multiplies)
        disp = routed_f * moe_frac * k_top * slots * bs * width * e / _pick(sp_f, t / etp, 1.0)
        kept = disp * (2.0 - num(x["fw_moe_probs_in_act"] > 0))
        per_layer = (per_layer[0] + kept, per_layer[1] + kept, per_layer[2])
        # the permute gathers each copy into its expert's group and the unpermute scatters it back (a sort by
        # expert and a gather: MegaBlocks, arXiv:2211.15841 sec. 5; Megatron-Core's permute kernels; MaxText's
        # megablox path on TPU): indexed reads and writes at a fraction of the rate the streaming element-wise
        # kernels reach (`moe_permute_eff`, fitted per framework on the MoE runs). Their cost grows with the
        # copies per token, not with the FLOPs: MaxText issue #1256 measures 50.4 % MFU for 8 experts top-2 and
        # 28 % for 56 experts top-14 with the same parameters, active and total
        act_none = act_none + 2.0 * disp / cal["moe_permute_eff"]
    # norms, softmax, dropout (memory-bound) plus a fixed cost per layer pass
    t_elem_over = passes * (act_none * (cal["elem_traffic"] / cal["mem_eff"]) / x["mem_bw"] + cal["layer_overhead_s"])
    # tensor parallel: 2 all-reduces forward, 2 backward, 2 more when the forward is recomputed (with sequence
    # parallelism reduce-scatter + all-gather of the same volume); ranks are ordered [pp][dp][tp] (Megatron):
    # tp groups are consecutive, dp groups stride tp; frameworks with TP overlap hide part behind the GEMMs
    up_bw, out_bw = x["up_bw"] * cal["up_eff"], x["out_bw"] * cal["out_eff"]  # bytes/s
    up_lat = np.where(np.isfinite(x["up_latency"]), x["up_latency"], cal["up_latency_s"])  # s per message
    out_lat, dom = cal["out_latency_s"], x["up_domain"]
    msg = bs * h * e  # bytes of one layer output for a micro-batch
    nvls = x["up_reduce"]  # in-network reduction on the scale-up switch
    mesh = x["up_mesh"]  # 1 on a full-mesh domain: a group reaches only its links to its members (comm.mesh_share)
    tp_group = comm.Group(t, 1.0, dom, up_bw, out_bw, up_lat, out_lat, nvls, x["ring"], mesh)
    tp_gather = tp_group.allgather(msg)  # s: an all-gather (or reduce-scatter) of one layer output
    # with sequence parallelism each all-reduce is a reduce-scatter and an all-gather, which in-network reduction
    # (NVLink SHARP) does not shrink; without it an all-reduce, which it halves
    tp_allreduce = _pick(sp_f, 2.0 * tp_gather, tp_group.allreduce(msg))
    # the overlap runs each collective beside the layer's matrix multiplies (Megatron-Core --tp-comm-overlap,
    # userbuffers): it hides a share of the communication, never more than the GEMM time it runs beside. It needs
    # sequence parallelism (its all-gathers and reduce-scatters are what it pipelines: NeMo's communication-overlap
    # guide; Megatron-LM refuses --tp-comm-overlap without --sequence-parallel) and a tensor-parallel group inside
    # one scale-up domain (userbuffers rely on CUDA multicast over NVLink: "only possible with single-node
    # tensor-parallelism", TransformerEngine issue #1071)
    tp_hidden = num(x["fw_tp_overlap"] > 0) * cal["tp_overlap_eff"] * sp_f * num(t <= dom)
    tp_all = (2.0 * passes - 2.0) * tp_allreduce  # s: 4 or 6 all-reduces per layer (two blocks)
    if hybrid:  # 2 or 3 per block
        tp_all = tp_all * 0.5 * (att_share + mlp_share + ssm_share)
    t_tp = tp_all - tp_hidden * np.minimum(tp_all, t_mm)  # s exposed
    t_compute = t_mm + t_att + t_elem_over  # s per layer per micro-batch, one chip, without communication
    t_layer = t_compute + t_tp  # s
    if any_off:
        # each offloaded layer's saved activations go to the host during its forward and come back before its
        # backward, on their own stream beside the next layer's compute (Transformer Engine's offload handler
        # double-buffers one layer): a copy longer than the forward (backward) of one layer shows; the stage's
        # `off` layers of its L/p pay it
        copy = kept_per_layer(per_layer, rc) / np.where(np.isfinite(x["host_bw"]), x["host_bw"], 1.0)  # s, one direction
        shows = np.maximum(copy - t_layer / passes, 0.0) + np.maximum(copy - t_layer * (2.0 + full_f) / passes, 0.0)
        t_layer = t_layer + np.minimum(off, L / p) / (L / p) * shows  # s
    if any_cp:
        # ring attention (Liu et al. 2023, arXiv:2310.01889; Megatron-Core context parallelism): the chip's K and V
        # pass around the cp ring, cp - 1 sends in the forward, K, V and their gradients (2x) in the backward, each
        # send overlapped with the attention block it feeds; cp members sit tp ranks apart ([pp][dp][cp][tp])
        kv_chunk = bs * 2.0 * m.kv_dim / t * e  # bytes: K and V of the chip's tokens (heads split over tp)
        cp_out = num(t * cp > dom)  # the ring leaves the scale-up domain
        ring = (cp - 1.0) * (kv_chunk / _pick(cp_out, out_bw, up_bw * comm.mesh_share(2.0, dom, mesh))
                             + _pick(cp_out, out_lat, up_lat))  # s per pass (a neighbour: one link of a mesh)
        t_kv = ring * (3.0 + num(rc >= 1))  # s per layer per micro-batch: forward, backward x2, recomputed forward
        if hybrid:
            t_kv = t_kv * att_share  # the attention layers' mean
        t_layer = t_layer + np.maximum(t_kv - t_att, 0.0)  # s: what the attention compute does not hide
    t_a2a = 0.0 * t_layer
    if any_moe:
        # expert parallelism: dispatch and combine all-to-alls forward, their gradients backward, again in a
        # recomputed forward (GShard sec. 2.2). A chip sends bs·k token copies of h elements (split over tp with
        # sequence parallelism), 1/ep of them to each peer; ep members sit etp ranks apart ([pp][dp][tp]: tp apart when experts split over tp), so
        # floor(domain/etp) of them share the scale-up domain and the rest are reached over the scale-out network
        # on the chip's own NIC, both at once (the slower one sets the time)
        tok = slots * bs * width * e / _pick(sp_f, t, 1.0)  # bytes of one copy of the chip's tokens (capacity-padded)
        g_ep = np.minimum(np.maximum(np.floor(dom / etp), 1.0), ep)  # ep members inside the scale-up domain
        beyond = num(ep > g_ep)  # some peers are beyond the domain
        # plain or hierarchical (`fw_ep_dedup`) dispatch: the copies per token each link carries (comm.expert_copies)
        up_copies, out_copies = comm.expert_copies(ep, g_ep, k_top, num(x["fw_ep_dedup"] > 0), x.get("moe_groups"),
                                                   x.get("moe_topk_groups"))
        # on a torus domain (TPU ICI) the copies inside it cross its bisection: the block of chips the group's
        # members span (g_ep of them, etp apart) sets how much slower than a switch (comm.torus_all_to_all)
        if "up_torus" in x and bool((x["up_torus"] > 0).any()):
            up_copies = up_copies * comm.torus_all_to_all(np.minimum(g_ep * etp, dom), x["up_torus"])
        up_a2a = up_bw * comm.mesh_share(g_ep, dom, mesh)  # bytes/s: a mesh's links to the domain's members
        a2a = np.maximum(tok * up_copies / up_a2a, tok * out_copies / out_bw) + num(ep > 1) * _pick(
            beyond, out_lat, up_lat)  # s per all-to-all
        # s per layer per micro-batch, exposed; kept out of t_layer: it is no window for hiding other collectives.
        # A schedule that overlaps the all-to-all with compute (Megatron-Core --overlap-moe-expert-parallel-comm:
        # one micro-batch's dispatch and combine beside another's forward/backward, MCore 0.14; DualPipe, DeepSeek-V3
        # sec. 3.2.1) hides it behind the fraction `a2a_overlap` of the layer's compute; the rest stays exposed
        # experts split over the tensor-parallel ranks (etp > 1): each rank holds a slice of every expert of its
        # chip, so the copies that arrive are all-gathered over those ranks before the experts and reduce-scattered
        # after them (Megatron-Core's all-to-all dispatcher: dispatch_postprocess / combine_preprocess over the
        # expert tensor-parallel group), the gathered size k·b·s·h, twice per all-to-all pair
        etp_gather = num(etp > 1) * sp_f * tp_group.allgather(k_top * slots * bs * width * e)  # s per gather
        a2a_all = routed_f * moe_frac * (4.0 + 2.0 * full_f) * (a2a + etp_gather)
        t_a2a = np.maximum(a2a_all - x["a2a_overlap"] * t_compute, 0.0)

    # ---- pipeline stages: the slowest one sets the pace ------------------------------------------
    # the output layer runs in 16 bits in fp8 training: Megatron-Core's output_layer is a plain
    # tensor_parallel.ColumnParallelLinear outside Transformer Engine's fp8 autocast, and a tied head is a matmul
    # against the 16-bit embedding table
    s_per_flop_head = _pick(low_prec, b_chip / (t * x["peak_16"] * cal["mm_eff_max"]), s_per_flop)
    t_head = logits * mm_passes * s_per_flop_head * (1.0 + half / np.minimum(bs, h))  # s, output layer, last stage
    # bytes: the logits the loss keeps, per micro-batch and chip. Megatron's own vocab-parallel cross entropy (fused or
    # not) upcasts them with .float() and saves its softmax in that fp32 copy for the backward, the e-byte logits
    # beside it at the cast (their e-byte gradient in the backward); so do PyTorch's log_softmax under autocast and
    # torchtitan's .float(). Where the loss works in place (ce_in_place: Transformer Engine's Triton cross entropy,
    # which Megatron-Bridge's recipes select, writes its gradient into the e-byte logits; XLA fuses MaxText's fp32
    # cast into the loss) only the e-byte logits stand
    fused = x["fw_ce_in_place"]
    logit_bytes = bs * V / t * (fused * e + (1.0 - fused) * (4.0 + e * num(e < 4.0)))
    # the loss itself (the cast, softmax and its gradient over the vocabulary) is memory-bound work on the last
    # stage: the element-wise kernels move those bytes in the forward and again in the backward. Small models with
    # large vocabularies spend much of a step there (Wijmans et al. 2024, "Cut Your Losses in Large-Vocabulary
    # Language Models", arXiv:2411.09009: for small models the loss's logits take an order of magnitude more memory
    # than the rest of the model); it was missing, and llm-foundry's 125M-760M runs read 30-50 % fast out of source
    t_head = t_head + 2.0 * logit_bytes * (cal["elem_traffic"] / cal["mem_eff"]) / x["mem_bw"]
    first_in, last_in = x["first_layers"], x["last_layers"]
    # the MTP modules on the last stage: a layer, the projection and the output head each (the split does not move
    # layers off that stage for them; Megatron-Bridge's DeepSeek-V3 H100 recipe does so by an explicit layout)
    t_mtp = 0.0
    if any_mtp:
        t_mtp = D * (t_layer + t_head + mm_proj * mm_time_passes * s_per_flop * (1.0 + half / np.minimum(bs, h)))
    # DualPipe (DeepSeek-V3 sec. 3.2.1, Table 2): a bubble of (p/2 - 1)(F&B + B - 3W) stage-chunk times against 1F1B's
    # (p - 1)(F + B); in stage times, with F one forward, B a whole backward (input and weight gradients, and the
    # recomputed forward where there is one) and W the weight-gradient half of the 2x backward, and F&B = F + B (its
    # overlap hides the all-to-all, not compute): (p/2 - 1)(2 passes - 4) / passes
    dual = num(x["pp_schedule"] > 0) if "pp_schedule" in x else None
    bubble_stages = (p - 1.0) / v
    if dual is not None:
        bubble_stages = _pick(dual, np.maximum(0.5 * p - 1.0, 0.0) * (2.0 * passes - 4.0) / passes, bubble_stages)
    # the first and last layers a low-precision run keeps in 16 bits (Megatron-Core first_last_layers_bf16; Nemotron 3
    # Super's NVFP4 recipe keeps its last 14 of 88): their matrix multiplies at the 16-bit peak and efficiency, which
    # t_mm, linear in the seconds per FLOP, gives as a ratio; they sit on the first and the last pipeline stage (with
    # interleaving, in the first and last virtual stage; beyond it, on the next chip)
    hp_in = x.get("bf16_last_layers")
    if hp_in is not None:
        hp_first = np.minimum(x["bf16_first_layers"] * low_prec, L)
        hp_last = np.minimum(hp_in * low_prec, L - hp_first)
        d16 = t_mm * (peak * eff_max / (x["peak_16"] * cal["mm_eff_max"]) - 1.0)  # s more per such layer

    def slowest_stage(f: Array, mid: Array, lst: Array) -> Array:
        """Seconds per micro-batch on the slowest rank of a split (layers on the first, a middle, the last stage);
        under DualPipe a rank runs stages r and p-1-r, each for half the micro-batches: the first and the last
        stage's mean on the end ranks, a middle stage's elsewhere."""
        t_first, t_mid, t_last = f * t_layer, mid * t_layer, lst * t_layer + t_head + t_mtp
        if hp_in is not None:
            one = num(p <= 1)  # one stage holds every layer
            on_first, on_last = np.minimum(hp_first, f / v), np.minimum(hp_last, lst / v)
            spill = np.minimum(np.maximum(hp_first - on_first, hp_last - on_last), mid)
            t_first = t_first + (1.0 - one) * on_first * d16
            t_mid = t_mid + spill * d16
            t_last = t_last + _pick(one, hp_first + hp_last, on_last) * d16
        slowest = np.maximum(np.maximum(t_first, t_mid), t_last)
        if dual is not None:
            slowest = _pick(dual, np.maximum(0.5 * (t_first + t_last), t_mid), slowest)
        return slowest

    f0, mid0, l0 = _split(L, p, v, 0.0, first_in, last_in)  # even split (ceil where it does not divide)
    stage0 = slowest_stage(f0, mid0, l0)
    uneven = x["fw_uneven"] > 0
    if bool(uneven.any()):  # embedding and head as stage weight, where the framework can: the faster split
        f1, mid1, l1 = _split(L, p, v, 1.0, first_in, last_in, 1.0 + D if any_mtp else None)
        stage1 = slowest_stage(f1, mid1, l1)
        use1 = num(uneven & (stage1 < stage0))
        f, mid, lst = _pick(use1, f1, f0), _pick(use1, mid1, mid0), _pick(use1, l1, l0)
        t_stage_compute = _pick(use1, stage1, stage0)
    else:
        f, mid, lst, t_stage_compute = f0, mid0, l0, stage0
    bad_split = (f < 0) | (lst < 0) | ((p > 2) & (L - f - lst < p - 2.0)) | ((p == 2) & (np.abs(f + lst - L) > 0.5))
    flag(mask, bad_split & (np.isfinite(first_in) | np.isfinite(last_in)), R_LAYERS)
    L_stage = np.maximum(np.maximum(f, mid), lst + D)  # layers on the slowest stage (the MTP modules' on the last)

    # pipeline sends: ranks [pp][dp][tp] put consecutive stages tp·dp ranks apart, so some stage boundary
    # crosses the scale-out network once the job spans domains; frameworks that can order the ranks
    # [dp][pp][tp] (pp_inner: Megatron-Core --use-tp-pp-dp-mapping, MaxText's mesh) may keep a pipeline that
    # fits a domain inside it, sending over the scale-up link while data parallelism crosses the network:
    # such rows take the faster of the two orders
    n_used = dp * tpc
    can_inner = (x["fw_pp_inner"] > 0) & (tpc <= dom) & (n_used > dom) & (p > 1)  # a whole replica (tp x cp x pp)
    # gradients reduce over the data-parallel and context-parallel ranks (same weights, other tokens)
    dp_grad = dp_run * cp if any_cp else dp_run
    zg = np.minimum(np.where(np.isfinite(x["zero_group"]), x["zero_group"], dp_grad), dp_grad)
    p_layer_chip = p_layer_all / t  # parameters of one layer on one chip (routed experts: their 1/ep share)
    if any_moe:
        p_layer_chip = p_layer_chip + p_exp_layer / (ep * etp)
    # fraction of a layer's parameters that get gradients: LoRA's adapters (`trainable` also drops the routed experts
    # other replicas hold, which a chip's own layer share already excludes)
    train_frac = np.where(lora, x["lora_params"] / N, 1.0) if any_lora else 1.0
    trainable_chip = trainable / tp_pp  # trainable parameters per chip
    # routed-expert parameters per chip: their gradients and weights reduce and gather over the expert-data-parallel
    # group, the (tp x dp) / (ep x etp) ranks holding the same experts ep x etp ranks apart (Megatron-Core parallel
    # folding, [pp][edp][ep][etp]), not over the data-parallel group of the dense weights
    exp_chip, exp_layer_chip, dense_chip = 0.0, 0.0, trainable_chip
    if any_moe:
        # (a single expert is the dense MLP: reduced with the dense weights; adapters train no expert)
        exp_layer_chip = routed_f * p_exp_layer / (ep * etp) * (num(~lora) if any_lora else 1.0)
        exp_chip = L * exp_layer_chip / p
        dense_chip = trainable_chip - exp_chip
    overlap = num(x["fw_overlap"] > 0) * cal["overlap_eff"]  # fraction of a window a collective hides behind
    bwd_frac = (2.0 + full_f) / passes  # backward share of a micro-batch (recompute runs in the backward)
    win_bwd = overlap * t_stage_compute * bwd_frac  # s: one micro-batch's backward on the stage
    win_fwd = overlap * t_stage_compute * (1.0 - bwd_frac)
    z2, z3 = num(zero == 2), num(zero >= 3)
    z01 = 1.0 - z2 - z3
    z1 = num(zero == 1)
    coll = 1.0 / cal["dp_coll_eff"]  # a framework's collectives slower than NCCL's (2021 DeepSpeed)
    zero_shards = _pick(num(zero >= 1), zg, 1.0)
    # ZeRO-3 under FSDP, FSDP2 and MaxText shards the fp32 parameters themselves: the shard is the optimizer's master
    # copy and the 16-bit weights exist only gathered (`gathered` below), so the weights add no bytes of their own
    # at rest (16 / d in all); DeepSpeed and Megatron-FSDP keep a 16-bit shard beside the fp32 master (18 / d)
    state_wb = np.where((x["fw_master_shards"] > 0) & (zero >= 3), 0.0, wb)  # bytes/param of the sharded weights
    state_bpp = model_state_bytes_per_param(zero, zero_shards, state_wb, gb)  # bytes/param
    updated = trainable_chip / zero_shards  # parameters this chip's optimizer step updates (its shard under ZeRO-1+)
    exp_layer_bytes = 0.0  # bytes of routed-expert weights and state per layer on one chip
    if any_moe:
        # the routed experts' optimizer state shards over the expert-data-parallel group, dp/ep ranks (Megatron-Core)
        d_exp = np.maximum(zero_shards * t / (ep * etp), 1.0)  # expert-data-parallel ranks sharding the state (ZeRO sec. 5)
        weights_exp = _pick(num(zero >= 3), state_wb / d_exp, wb)
        state_exp = weights_exp + _pick(num(zero >= 2), gb / d_exp, gb) + _pick(num(zero >= 1), 12.0 / d_exp, 12.0)
        # bytes/param: weights, gradients, Adam (fp32); LoRA's experts are frozen: their weights alone
        if any_lora:
            state_exp = np.where(lora, weights_exp, state_exp)
        exp_layer_bytes = p_exp_layer / (ep * etp) * state_exp
        updated = dense_chip / zero_shards + exp_chip / _pick(num(zero >= 1), d_exp, 1.0)
    # s: the optimizer step over the parameters this chip updates
    t_opt = updated * optimizer_step_bytes_per_param(state_wb, gb) / (x["mem_bw"] * cal["mem_eff"])

    per_tensor_z3 = bool(np.any((x["fw_z3_tensors"] > 0) & (zero >= 3)))
    # parameters outside the layers on one chip (ZeRO-3 runs without a pipeline: every one on each chip): the input
    # embedding, the output head where untied, learned positions and the final norm (transformer.total_params)
    root_chip = (V * h * (2.0 - m.tied) + m.learned_pos * s * h + 2.0 * h) / t

    r = StepInputs(n_used=n_used, dom=dom, up_bw=up_bw, up_mesh=mesh, out_bw=out_bw, up_lat=up_lat, out_lat=out_lat, nvls=nvls,
                   ring=x["ring"], p2p_eff=cal["p2p_eff"], fw_split=x["fw_split"], fw_ds=fw_ds, sp_f=sp_f, msg=msg,
                   t=t, p=p, v=v, tp_pp=tp_pp, tp_gather=tp_gather, t_stage_compute=t_stage_compute, L_stage=L_stage,
                   t_a2a=t_a2a, t_layer=t_layer, m_run=m_run, dp_grad=dp_grad, zg=zg, ep=ep if any_moe else 1.0,
                   etp=etp if any_moe else 1.0, dense_chip=dense_chip, exp_chip=exp_chip,
                   exp_layer_chip=exp_layer_chip, p_layer_chip=p_layer_chip, root_chip=root_chip,
                   head_regather=(1.0 - num(x["fw_z3_head"] > 0)) * V * h / t,
                   train_frac=train_frac, gb=gb, wb=wb,
                   coll=coll, win_bwd=win_bwd, win_fwd=win_fwd, bwd_frac=bwd_frac, z1=z1, z2=z2, z3=z3, z01=z01, n_proj=x["n_proj"],
                   fw_z3_tensors=x["fw_z3_tensors"], overlap=overlap, t_opt=t_opt, any_moe=any_moe,
                   per_tensor_z3=per_tensor_z3, bubble_stages=bubble_stages)
    step, bubble, dp_exposed = _step_seconds(r, 0.0)
    rows = np.flatnonzero(can_inner)
    if len(rows):  # the pipeline inside a domain, where it fits one: computed on those rows only
        inner = _step_seconds(r.rows(rows), 1.0)
        take = inner[0] < step[rows]  # the faster of the two orders
        for whole, part in zip((step, bubble, dp_exposed), inner, strict=True):
            whole[rows[take]] = part[take]  # fresh arrays of this block: filled in place

    # ---- weight-streaming systems (Cerebras MemoryX, Dojo tile with HBM behind the edge) --------
    if any_streaming:
        # compute stays on the chip; weights stream in, layer by layer, for the forward and again for the backward,
        # and the gradients stream back, for each micro-batch: the chip holds one micro-batch's activations (the
        # memory check below), so a step of m micro-batches streams the model m times (a whole per-system batch as
        # one micro-batch streams it once, and must then hold all of its activations)
        stream_s = 3.0 * N * wb * m_run / x["ext_bw"]  # s per step on the external link
        compute_s = hw_flops / dp / (peak * _eff(np.minimum(bs, h), cal))  # s per step, whole model per system
        step = np.where(streaming, np.maximum(compute_s, stream_s), step)

    # ---- memory per chip: the first, a middle and the last stage --------------------------------
    p_first = stage_params(f, p_layer_all, m, t, p, first=True)  # parameters on a first-stage chip (no routed experts)
    p_last = stage_params(lst + D, p_layer_all, m, t, p, first=False)
    if any_mtp:  # the MTP projections, and the embedding table the modules read (a copy beyond the first stage)
        p_last = p_last + D * mtp_proj / t + num((D > 0) & (p > 1)) * m.vocab * h / t
    p_mid = mid * p_layer_all / t
    # bytes: ZeRO-3 keeps the current and the prefetched layer whole (FSDP units); DeepSpeed releases gathered
    # parameters beyond its live limit, though never below the largest tensor, and prefetches one bucket. The output
    # head, used on both sides of the loss, stays gathered across it, at the activations' peak, where the framework
    # keeps it (`zero3_keeps_head`: FSDP's root unit and FSDP2's output unit are not resharded after forward,
    # DeepSpeed's reuse distance keeps it; XLA re-gathers it in MaxText's backward)
    live = x["fw_z3_live"]
    # parameters kept gathered: the output head (the tied table where tied), or FSDP's whole root unit (2: the input
    # embedding and the final norm too)
    head = _pick(num(x["fw_z3_head"] > 1), root_chip, num(x["fw_z3_head"] > 0) * V * h / t)
    gathered = z3 * ((2.0 * p_layer_chip + head) * wb)
    if bool((live > 0).any()):  # a DeepSpeed row: its live limit (the other rows' FSDP units stay whole)
        largest = np.maximum((m.n_proj - 1.0) * m.hidden * m.ffn, m.hidden * (m.q_dim + 2.0 * m.kv_dim)) / t  # MLP in, QKV
        held = np.minimum(2.0 * p_layer_chip, np.maximum(live, largest) + x["fw_z3_prefetch"])
        gathered = z3 * (np.where(live > 0, held, 2.0 * p_layer_chip) + head) * wb
    if any_lora:  # LoRA keeps the frozen weights only, and the adapters' full state
        lora_states = trainable_chip * state_bpp

        def states_of(params: Array) -> Array:
            return np.where(lora, params * wb + lora_states, params * state_bpp) + gathered
    else:

        def states_of(params: Array) -> Array:
            return params * state_bpp + gathered

    in_first = in_flight_factor(p, v, m_run)  # micro-batches held by the first stage

    def resident(layers: Array) -> Array:
        """Layers of a stage whose saved activations stay on the chip: the offloaded ones leave but the one whose
        copy is in flight (Transformer Engine double-buffers one layer)"""
        if not any_off:
            return layers
        gone = np.clip(off, 0.0, np.maximum(layers - 1.0, 0.0))
        return layers - gone + num(gone > 0)

    acts_first = activation_bytes_stage(per_layer, resident(f), in_first, rc)  # bytes
    if any_off and "host_mem" in x:
        # what the first stage's offloaded layers keep in host memory (it holds the most micro-batches in flight),
        # against the chip's share of its host's DRAM where a source states it (a v6e host's 1,536 GiB over 8 chips)
        # (every offloaded layer's: the one in flight is on both sides until its copy ends)
        away = kept_per_layer(per_layer, rc) * np.clip(off, 0.0, np.maximum(f - 1.0, 0.0)) * in_first  # bytes
        flag(mask, (off > 0) & (away > x["host_mem"]), R_HOSTMEM)  # NaN (unknown) compares False
    # a middle stage: the second rank, which holds the most of them; the last rank holds one micro-batch under
    # 1F1B, and under interleaving its chunks' warm-up of (v - 1) pp chunk forwards
    acts_mid = activation_bytes_stage(per_layer, resident(mid), np.maximum(in_flight_factor(p, v, m_run, 1.0), 1.0), rc)
    acts_last = activation_bytes_stage(per_layer, resident(lst) + D, in_flight_factor(p, v, m_run, p - 1.0), rc)
    # bytes: the last stage's logits held at once (`logit_bytes` above, of one vocabulary chunk where the logits are
    # computed in chunks; tpu-recipes' Llama 3.1 70B fits a v6e at 2 sequences per chip only with the loss in place)
    vt = x.get("vocab_tiles")  # optional: the logits computed in that many vocabulary chunks, one held at a time
    logit_buf = logit_bytes if vt is None else logit_bytes / np.maximum(vt, 1.0)
    mem_first = states_of(p_first) + f * exp_layer_bytes + acts_first + num(p <= 1) * logit_buf
    # each MTP module's loss keeps logits of its own beside the model's until the backward
    mem_last = states_of(p_last) + (lst + D) * exp_layer_bytes + acts_last + (1.0 + D) * logit_buf
    mem = np.maximum(np.maximum(mem_first, mem_last), num(p > 2) * (states_of(p_mid) + mid * exp_layer_bytes + acts_mid))
    if dual is not None:
        # DualPipe keeps two copies of the parameters (DeepSeek-V3 Table 2: 2x; an end rank holds the first and the
        # last stage, a middle rank two middle stages) and the activations of pp + 1 micro-batches, not pp
        in_dual = np.minimum(p, m_run) + 1.0
        end = (states_of(p_first + p_last) + (f + lst + D) * exp_layer_bytes + (1.0 + D) * logit_buf
               + activation_bytes_stage(per_layer, resident(np.maximum(f, lst + D)), in_dual, rc))
        middle = num(p > 2) * (states_of(2.0 * p_mid) + 2.0 * mid * exp_layer_bytes
                               + activation_bytes_stage(per_layer, resident(mid), in_dual, rc))
        mem = _pick(dual, np.maximum(end, middle), mem)
    acts = acts_first
    states = states_of(p_first) + f * exp_layer_bytes
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

    # infeasible rows carry NaN, not a made-up number; every output below derives from `step`. The time a row
    # refused only for memory would take is kept apart (validation compares published runs' speed with it)
    # the step is not built from the parts below for weight-streaming systems and given sustained rates
    direct = (streaming | use_sustained) if any_streaming else use_sustained
    step_if_fits = np.where((mask & ~R_MEMORY) != 0, np.nan, step)
    step = np.where(mask != 0, np.nan, step)

    # ---- throughput, utilisation (every chip of the row counts, idle ones too) --------------------
    per_chip_s = 1e-12 / (step * n)  # 1e-12 / chip-seconds per step
    tokens_per_s = tokens_step / step
    model_tflops = model_flops * per_chip_s  # TFLOP/s per chip
    hw_tflops = hw_flops * per_chip_s
    peak_t = peak * 1e-12  # TFLOP/s
    mfu = model_tflops / peak_t
    hfu = hw_tflops / peak_t

    # ---- the whole run: time, energy, cost --------------------------------------------------------
    given_flops = np.isfinite(x["total_flops"])
    total_flops = np.where(given_flops, x["total_flops"], per_seq / s * x["tokens"])  # FLOPs
    run_s = x["tokens"] / tokens_per_s  # s
    if use_sustained.any():
        sustained_run = np.where(mask != 0, np.nan, total_flops / (n * np.where(use_sustained, sustained, 1.0)))  # s
        run_s = np.where(use_sustained & given_flops, sustained_run, run_s)
    chip_hours = run_s * n / 3600.0
    money = run_economics(chip_hours, x, cal)

    no_parts = np.isnan(step) | direct  # rows whose step is not the sum of the parts below
    layer_passes = (m_run + bubble_stages) * L_stage  # layer passes of the slowest stage per step
    outputs = {
        "step_time_s": step,
        "tokens_per_s": tokens_per_s,
        "model_tflops_per_chip": model_tflops,
        "hardware_tflops_per_chip": hw_tflops,
        "mfu": mfu,
        "hfu": hfu,
        "time_to_train_days": run_s / 86400.0,
        "chip_hours": chip_hours,
        "energy_mwh": money["energy_mwh"],
        "cost_usd": money["cost_usd"],
        "co2_t": money["co2_t"],
        "capex_usd": money["capex_usd"],
        "opex_usd": money["opex_usd"],
        "global_batch_run": np.where(mask != 0, np.nan, B_run),
        "idle_chips": np.where(mask != 0, np.nan, (dp - dp_run) * tpc + (n - n_used)),
        "first_stage_layers": f,
        "last_stage_layers": lst,
        # where a step goes (s per step, on the slowest stage): the pipeline bubble, the tensor-parallel,
        # data-parallel and expert-parallel communication that compute does not hide, and the optimizer step
        "bubble_s": np.where(no_parts, np.nan, bubble),
        "tp_comm_s": np.where(no_parts, np.nan, layer_passes * t_tp),
        "dp_comm_s": np.where(no_parts, np.nan, dp_exposed),
        "moe_a2a_s": np.where(no_parts, np.nan, layer_passes * t_a2a),  # 0 for a dense block
        "optimizer_s": np.where(no_parts, np.nan, t_opt),  # the optimizer step over the chip's parameters
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
        "ep": x["ep"] if "ep" in x else np.ones_like(mem),
        "expert_tp": etp * np.ones_like(mem),
        "total_flops": total_flops,
        "cost_owned": money["cost_owned"],
        "batch_handling": batch_how,
        "step_time_if_fits_s": step_if_fits,
        "tokens_per_step": tokens_step,
        "reason_mask": mask,
    }


# the inputs the economics of a run read, beside its chip-hours: none of them changes a step's time, so a
# change to them alone re-prices stored rows (`workers/reprice.py`) instead of re-running the physics
ECONOMIC_INPUTS = ("power_w", "host_share", "capex_usd", "usd_per_hour", "owned")
ECONOMIC_CAL = ("pue", "co2_kg_per_kwh", "usd_per_kwh", "amortization_years", "cost_of_capital", "host_power_w",
                "facility_usd_per_kw_month", "ops_usd_per_kw_month")
ECONOMIC_OUTPUTS = ("energy_mwh", "cost_usd", "co2_t", "capex_usd", "opex_usd", "cost_owned")


def capital_recovery(rate: Any, years: Any) -> Any:
    """The capital recovery factor r / (1 - (1 + r)^-n): the share of a purchase paid each year over n years at a
    cost of capital r; straight-line 1 / n at r = 0. Scalars stay Python floats (a float32 core stays float32)."""
    r, n = np.asarray(rate), np.asarray(years)
    if r.size and n.size and r.min() == r.max() and n.min() == n.max():  # one value (the defaults): one power
        rate, years = float(r.flat[0]), float(n.flat[0])
        return rate / (1.0 - (1.0 + rate) ** (-years)) if rate > 0 else 1.0 / years
    return np.where(r > 0, r / np.where(r > 0, 1.0 - (1.0 + r) ** (-n), 1.0), 1.0 / n)


def owned_rates(capex_usd: Any, cal: Mapping[str, Any]) -> tuple[Any, Any]:
    """An owned cluster's rates, shared by training (`run_economics`) and serving (`inference.serving_economics`):
    USD per accelerator-hour of its purchase (`capex_usd`: the server's share, else the chip's price plus a host
    share, plus the network's share) recovered at the cost of capital over its life, and USD per kWh of IT load (the
    energy at the PUE, plus facility and operations per kW)."""
    crf = capital_recovery(cal["cost_of_capital"], cal["amortization_years"])  # per year
    per_kw_h = (cal["facility_usd_per_kw_month"] + cal["ops_usd_per_kw_month"]) * 12.0 / HOURS_PER_YEAR  # USD/kWh(IT)
    return capex_usd * crf / HOURS_PER_YEAR, cal["pue"] * cal["usd_per_kwh"] + per_kw_h


def run_economics(chip_hours: Array, x: Mapping[str, Array], cal: Mapping[str, Array]) -> dict[str, Array]:
    """Energy, cost and emissions of runs that take `chip_hours`: the rental price, or the owned cluster's
    TCO (the purchase spread over its life at the cost of capital, plus energy at measured draw x PUE,
    facility and operations per kW); `cost_owned` the basis of each row's cost (0 rental, 1 owned: asked for, or no
    rental price; NaN where the row asks for none and the chip has no price of either kind)."""
    # kW per accelerator with its host's share (none for a whole system, whose draw is the computer's), measured draw
    it_kw = (x["power_w"] + cal["host_power_w"] * x["host_share"]) * 1e-3
    energy_mwh = chip_hours * it_kw * (cal["pue"] * 1e-3)  # MWh
    capex_h, usd_per_it_kwh = owned_rates(x["capex_usd"], cal)
    capex = chip_hours * capex_h  # USD
    opex = chip_hours * it_kw * usd_per_it_kwh  # USD: energy at the PUE, facility and operations
    # cost basis: the one the row asks for (`owned` 1 owned, 0 rental); where it asks for none, the rental price, else
    # the owned TCO where the chip has a purchase price, else none (NaN: no price of either kind)
    asked = np.isfinite(x["owned"])
    priced = np.isfinite(x["usd_per_hour"])
    rented = np.where(asked, x["owned"] < 0.5, priced)
    basis = np.where(rented, 0.0, np.where(asked | np.isfinite(x["capex_usd"]), 1.0, np.nan)).astype(
        np.result_type(chip_hours), copy=False)  # the core's dtype
    return {
        "energy_mwh": energy_mwh,
        "cost_usd": np.where(rented, chip_hours * x["usd_per_hour"], capex + opex),  # USD (NaN without the price)
        "co2_t": energy_mwh * cal["co2_kg_per_kwh"],  # t CO2 (MWh x kg/kWh = t)
        "capex_usd": np.where(rented, np.nan, capex),
        # the running costs only beside the purchase they belong to: a chip without a purchase price has no owned
        # cost, and a part of one would rank it cheapest in a sum or a min over opex_usd
        "opex_usd": np.where(rented | ~np.isfinite(capex), np.nan, opex),
        "cost_owned": basis,  # index into COST_BASES, NaN: none
    }


def reason_text(mask: Array) -> np.ndarray:
    """Readable reasons for each mask value ('' when feasible); computed once per distinct mask."""
    uniq, inv = np.unique(mask, return_inverse=True)
    texts = []
    for u in uniq.tolist():
        texts.append("; ".join(msg for bit, msg in REASONS.items() if u & bit))
    return np.asarray(texts, dtype=object)[inv]
