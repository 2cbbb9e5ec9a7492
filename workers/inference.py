"""LLM serving on catalog chips: continuous batching in steady state (prefill interleaved with decode), the
KV-cache limit on concurrency, tensor / expert / data-parallel attention, prefill-decode disaggregation,
power by utilisation and cost per token, for millions of rows at once.

Sources (formulas cite them line by line):
- Pope et al. 2022, "Efficiently Scaling Transformer Inference" (arXiv:2211.05102) sec. 2: a decode step reads
  every weight once for the whole batch plus each sequence's KV cache; the larger of memory and compute time
  rules; prefill is compute-bound except at tiny prompts.
- Williams, Waterman & Patterson 2009, "Roofline" (CACM 52(4)): time = max(FLOPs / peak, bytes / bandwidth).
- Kaplan et al. 2020 (arXiv:2001.08361) sec. 2.1: forward FLOPs per token 2N + attention over the context;
  attention scores and values 4 x d x context per token and layer, half of p^2 for a causal prompt
  (training-notes.md "Inference (roofline)").
- Yu et al. 2022, "Orca" (OSDI '22) and Kwon et al. 2023, "vLLM / PagedAttention" (SOSP '23): iteration-level
  (continuous) batching; KV cache allocated per token, so C sequences hold C x (p + g/2) tokens on average.
  Agrawal et al. 2024, "Sarathi-Serve" (OSDI '24): chunked prefills ride in the decode iterations; in steady
  state every request needs p prefill tokens per g decode steps, so an iteration of C decodes carries C x p / g
  prompt tokens (the instance's output rate), and a user's TPOT is the iteration with the other C - 1 users' share
  (its own prompt is in its TTFT). A new prompt runs in chunks, each one pass beside the C - 1 running decodes.
- Zhong et al. 2024, "DistServe" (OSDI '24) and Patel et al. 2024, "Splitwise" (ISCA '24): disaggregated
  prefill and decode pools; decode iterations carry no prompts, the prompt pool runs one prompt per pass and the
  KV cache moves over the network once per request. The pools are whole instances, x prompt instances for y decode
  instances (xPyD, as SGLang and NVIDIA Dynamo deploy them); DistServe sec. 3.1 models a prompt instance as an
  M/D/1 queue (Poisson arrivals, a deterministic pass: TTFT = D + R D^2 / (2 (1 - R D)) at R prompts/s and a pass
  of D s): a prompt waits in the pool's queue before its pass.
- Kleinrock 1975, "Queueing Systems" vol. 1 sec. 3.5: the M/M/c wait, Erlang's C formula over c servers; the
  Allen-Cunneen approximation (Allen 1990, "Probability, Statistics, and Queueing Theory"): a G/G/c queue waits
  (c_a^2 + c_s^2) / 2 times the M/M/c wait, half of it for Poisson arrivals at a deterministic service (c_a^2 = 1,
  c_s^2 = 0; exact at c = 1, DistServe's M/D/1 above), raised for c > 1 by Cosmetatos' correction (Cosmetatos
  1976, "Some approximate equilibrium results for the multi-server queue (M/G/r)", Oper. Res. Q. 27(3)): within
  2-7 % of a simulated M/D/c queue at 60-95 % load (tests/test_serving.py).
- Dao et al. 2022, "FlashAttention" (NeurIPS) sec. 3: without a fused kernel, attention writes the score matrix
  (heads x query x context) to memory and reads it back for the softmax and for x V, about three passes of fp32
  scores; a fused kernel keeps it on chip. Engines that run unfused attention (llama.cpp before its -fa default)
  pay that traffic on the memory roofline.
- ggml-org/llama.cpp PR #3412 (2023): llama.cpp's CUDA backend multiplies quantised weights by a prompt by first
  dequantising them into an fp16 buffer and then calling cuBLAS, a kernel that reads the stored weights and writes
  the copy once per micro-batch, before the GEMM (asic.yaml serving.dequant_round_trip says which engines do so).
- Fedus et al. 2022, "Switch Transformers" (JMLR 23) sec. 2 and DeepSeek-AI 2024, "DeepSeek-V3" (arXiv:2412.19437)
  sec. 3.4: a token uses k of E experts; T tokens routed uniformly touch E x (1 - (1 - k/E)^T) distinct experts
  per layer (the expected number of occupied bins), so a small batch reads only those experts' weights; expert
  parallelism sends each token's hidden state to its experts and back (two all-to-alls per MoE layer).
- DeepSeek-AI 2024, "DeepSeek-V2" (arXiv:2405.04434) sec. 2.1: multi-head latent attention caches one latent per
  token shared by every head (tensor parallelism replicates it, data-parallel attention does not).
- Dao & Gu 2024, "Transformers are SSMs" (Mamba-2, ICML) sec. 7: a state-space layer keeps, per sequence, a
  state of heads x head_dim x state_dim (plus its short convolution's last kernel - 1 inputs) in place of a KV
  cache; each decode step reads and rewrites it (the selective state update), a cost per sequence that does not grow
  with the context. Hybrid models (Nemotron-H) keep a KV cache in their few attention layers only.
- Shoeybi et al. 2019 (Megatron-LM, arXiv:1909.08053) sec. 3: tensor-parallel inference all-reduces the layer
  output twice per layer; ring all-reduce 2 (t - 1) / t of the message (Patarasuk & Yuan 2009), at the link's
  achieved share (fitted per engine and chip) and 2 ceil(log2 t) latency steps, or one step for an engine's own
  one-shot kernel inside a scale-up domain of 2-8 chips (vLLM's CustomAllreduce, custom_all_reduce.py). Pipeline (layer
  split) stages hold L / pp layers each and run one after the other for a token (llama.cpp and ExLlama split
  layers over GPUs this way; no overlap is modelled), handing one hidden state per token to the next stage.
- Power: idle + (TDP - idle) x (a x compute utilisation + b x memory utilisation), capped at TDP - the linear
  utilisation model of Kansal et al. 2010 (Joulemeter, SoCC) and Patel et al. 2024 (Splitwise sec. 3, GPU power
  at prompt vs token phases); idle share, a and b fitted on measured power (ML.ENERGY, Jetson power modes), from a
  per-class prior where one is sourced (asic.yaml serving.power_prior).
- vLLM blog, 2024-09-05, "vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction" (Performance
  Diagnosis): for Llama 3 8B on one H100, vLLM's API server and scheduler took most of the execution time and the GPU
  waited on them. The host's work grows with the running sequences (scheduling, sampling, output processing), so an
  iteration of C sequences pays C x a fitted host time per sequence, per engine (0 where the host keeps ahead).
- Achieved shares of what the chip's memory delivers (u_m; `mem_reach`: a measured STREAM-like bandwidth over the
  peak) and of what its GEMM library delivers (u_c; `compute_reach`: a measured GEMM rate over the peak), and a
  fixed time per layer and iteration (kernel launches, synchronisation, sampling; one more per mixture-of-experts
  layer: router, top-k, permutation, grouped GEMMs) are fitted per engine and chip
  on published runs (schemas/catalog/asic.yaml `serving`, workers/validation/serving.py); multi-step scheduling
  (`scheduler_steps`) pays the host's per-sequence time once per that many iterations, and asynchronous scheduling
  (vLLM V1 `--async-scheduling`: the scheduler prepares the next iteration while the chips run this one,
  `async_scheduling`) waits only for the longer of the host's and the chips' time.

`evaluate(x, cal)` takes a dict of equal-length float64 arrays (keys in `INPUT_KEYS`) and the calibration
`cal` (arrays or scalars, keys in `CAL_KEYS`), and returns a dict of arrays. No loop over rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from chipsweep.workers.bits import indivisible
from chipsweep.workers.blocks import by_blocks
from chipsweep.workers.comm import expert_copies, mesh_share, torus_all_to_all
from chipsweep.workers.training import HOURS_PER_YEAR, owned_rates

Array = np.ndarray

# Bits of the infeasibility mask.
R_INPUT = 1  # missing or non-positive input
R_NO_PEAK = 2  # the chip publishes no compute peak at all
R_PRECISION = 4  # no peak for the precision the row computes in
R_NO_BW = 8  # memory bandwidth not published
R_NO_MEM = 16  # memory capacity not published
R_MEMORY = 32  # does not fit at the requested batch / concurrency
R_NOFIT = 64  # does not fit at any batch (weights alone, or weights + one sequence)
R_LAYOUT = 128  # ep or pp does not divide n_chips, or more stages than layers
R_DENSE_EP = 256  # ep > 1 on a dense model (no experts to spread)
R_HEADS = 512  # tensor parallelism that splits an attention head (engines that shard whole heads)
R_ENGINE = 1024  # the engine does not run on the chip's vendor (asic.yaml serving.engine_vendors)
R_DENSE_DPA = 2048  # data-parallel attention on a dense model
R_EP_DPA = 4096  # data-parallel attention beside an expert-parallel group other than the chips of a stage
R_POOL = 8192  # a disaggregated prompt pool of too few instances for its decode instances' prompts
R_SPLIT = 16384  # disaggregated without prompts or without outputs: nothing to split

REASONS: dict[int, str] = {
    R_INPUT: "missing or non-positive input",
    R_NO_PEAK: "chip publishes no compute peak: add a chip.peak_tflops_fp16 (or chip.peak_tops_int8) column",
    R_PRECISION: "chip publishes no peak for this compute precision: pick another compute_precision (or weight_bits), "
    "or add the chip.peak_* column",
    R_NO_BW: "chip memory bandwidth not published: add a chip.memory_bandwidth_gb_s column",
    R_NO_MEM: "chip memory capacity not published: add a chip.memory_gb column",
    R_MEMORY: "does not fit in memory at this batch / concurrency",
    R_NOFIT: "does not fit in memory at any batch",
    R_LAYOUT: "ep and pp must divide n_chips, and pp be at most the layers",
    R_DENSE_EP: "ep > 1 needs a mixture-of-experts model (this model is dense): allowed ep 1",
    R_HEADS: "tp (n_chips / pp) must divide the query heads, and the KV heads divide tp or tp divide them: the "
    "engine shards whole heads",
    R_ENGINE: "the engine does not run on this chip's vendor (asic.yaml serving.engine_vendors): pick another engine",
    R_DENSE_DPA: "dp_attention needs a mixture-of-experts model (attention data-parallel beside expert-parallel "
    "experts; this model is dense): allowed false",
    R_EP_DPA: "dp_attention with expert parallelism needs ep = n_chips / pp: each chip's tokens reach the experts by "
    "all-to-all over the ep group, which must span the data-parallel attention ranks (SGLang's --enable-dp-attention "
    "with DeepEP runs ep-size = tp-size): allowed ep 1 or n_chips / pp",
    R_POOL: "the disaggregated prompt pool cannot keep up: prefill_instances prompt instances are busy all the time "
    "with the prompts of decode_instances decode instances, and its queue grows without bound: allowed more "
    "prefill_instances (or blank: the fewest that keep up)",
    R_SPLIT: "disaggregated needs prompt_len >= 1 and gen_len >= 1: a row without prompts or without outputs has no "
    "prefill to move to a pool of its own: allowed false",
}

INPUT_KEYS = (
    # model (workers/workload.py MODEL_KEYS)
    "layers", "hidden", "q_dim", "kv_dim", "kv_heads", "ffn", "n_proj", "vocab", "params", "params_read",
    "w_dense", "w_expert", "moe_experts", "moe_topk", "moe_layers", "att_dim", "att_dim_prefill", "kv_elems", "kv_layers", "kv_share",
    "heads", "vocab_params", "att_window", "window_share", "ssm_state_elems", "ssm_conv_elems", "moe_groups",
    "moe_topk_groups", "w_replicated", "moe_width",
    # workload (n_chips, batch, concurrency: NaN = choose)
    "n_chips", "pp", "ep", "ep_dedup", "dp_attention", "disaggregated", "prefill_instances", "decode_instances", "scheduler_steps", "async_scheduling", "weight_bits", "kv_bits", "ssm_state_bits", "batch", "low_compute",
    "concurrency", "prompt_len",
    "gen_len", "quant_overhead", "act_bytes",
    # chip, per chip (peak for the row's compute precision, FLOP/s)
    "peak_flops", "att_peak_flops", "compute_reach", "mem_bytes", "mem_bw", "mem_reach", "up_bw", "up_domain", "out_bw", "tdp_w", "idle_w", "purchase_usd",
    "usd_per_hour", "capex_usd", "hosted", "sram_only",
    # infeasibility found while assembling (bits above)
    "pre_mask",
)
# dimensions of a torus scale-up domain (tables.chip_link_arrays; 0: a switch); 1 where a row asked for its rental
# cost (cost_basis rental) and has no owned cost in place of a missing price; 1 on a full-mesh scale-up domain
OPTIONAL_KEYS = ("up_torus", "rental_only", "up_mesh")
OPTIONAL_CAL_KEYS = ("queue_at",)
CAL_KEYS = ("mem_bw_fraction", "compute_fraction", "attention_fraction", "layer_overhead_s", "moe_layer_overhead_s", "seq_overhead_s", "moe_fraction", "quant_layer_overhead_s",
            "fused_attention", "head_16bit", "custom_all_reduce_bytes",
            "dequant_round_trip", "link_fraction",
            "link_latency_s", "mem_usable", "idle_fraction", "power_compute", "power_memory", "max_batch", "max_tokens",
            "ubatch", "kv_reserve", "usd_per_kwh", "amortization_years", "pue", "cost_of_capital", "host_power_w",
            "facility_usd_per_kw_month", "ops_usd_per_kw_month")


BLOCK = 65_536  # rows per block: a sweep's chunk in one (the fixed cost of ~700 numpy calls spread over more rows
# outweighs the temporaries leaving the cache: 2.80 -> 2.97 M feasible rows/s from 16,384 rows, docs/speed.md)


# the parts `evaluate(..., explain=True)` adds: where one iteration's time (TPOT) and one prompt's first token (TTFT)
# go. The TPOT parts sum to tpot_s and the TTFT parts to ttft_s
TPOT_PARTS = ("tpot_gemm_s", "tpot_experts_s", "tpot_attention_s", "tpot_fixed_s", "tpot_comm_s", "tpot_host_s")
TTFT_PARTS = ("ttft_compute_s", "ttft_fixed_s", "ttft_comm_s", "ttft_queue_s")
EXPLAIN_OUT = TPOT_PARTS + TTFT_PARTS


def evaluate(x: Mapping[str, Array], cal: Mapping[str, Any], block: int = BLOCK,
             dtype: type | None = None, explain: bool = False) -> dict[str, Array]:
    """Evaluate every row of `x`, in blocks of `block` rows. Rows with reason bits keep NaN performance outputs.
    `dtype` (np.float32 in sweeps, whose lake stores float32) casts float inputs block by block; without it the
    inputs' own dtype (float64 from `assemble_inference`) is kept. With `explain` the outputs add `EXPLAIN_OUT`."""
    n = len(x["layers"])
    # the rows' x carries more (indices, note bits): slice and cast only these, and the torus dimensions of the chips'
    # scale-up domains where any is a torus (optional: 0, a switch, without it)
    x = {k: x[k] for k in (*INPUT_KEYS, *(k for k in OPTIONAL_KEYS if k in x and bool(np.any(x[k]))))}
    # ... and the running-request limit above which a row's concurrency queues, where a row sets one (cal.max_batch)
    cal = {k: cal[k] for k in (*CAL_KEYS, *(k for k in OPTIONAL_CAL_KEYS if k in cal))}
    core = partial(_evaluate, explain=True) if explain else _evaluate
    with np.errstate(all="ignore"):  # NaN/inf mark blank or infeasible rows; they are masked, not warned about
        return by_blocks(core, x, cal, n, block, dtype)


def prompt_pool(given: Array, demand: Array, ranks: Array, t_pass: Array) -> tuple[Array, Array]:
    """A disaggregated prompt pool: its instances (`given`, else the fewest whole instances at which a prompt waits in
    the queue no longer than its own pass: TTFT at most twice the pass plus the KV cache's move, chipsweep's
    provisioning rule where a row names none) and the mean wait of a prompt in its queue (s; inf where the pool cannot keep up). `demand`: the instances' worth of passes the pool's decode instances ask for; each
    instance runs `ranks` prompts a pass of `t_pass` s, each rank a server of an M/D/c queue (Poisson arrivals, one
    pass each) at load a = demand x ranks: its wait is half the M/M/c wait C(c, a) D / (c - a) (Allen-Cunneen) with
    Cosmetatos' correction, C Erlang's C formula c B / (c - a (1 - B)) from Erlang's B (`erlang_b`). A blank pool
    tries the fewest whole instances above the load, then one more where the wait exceeds the pass."""
    # (in float64 whatever the block's dtype: the wait's 1 / (c - a) near a full pool magnifies float32's rounding)
    f64 = partial(np.asarray, dtype=np.float64)
    s, r = f64(t_pass), f64(np.broadcast_to(ranks, demand.shape))
    a = f64(demand) * r
    blank = ~(given >= 1)
    c = np.where(blank, (np.floor(a / r) + 1.0) * r, f64(given) * r)  # servers tried first
    w = np.full(a.shape, np.inf)  # a given pool at or below its load never catches up (or a blank input)
    todo: Any = slice(None) if bool((c > a).all()) else np.nonzero(c > a)[0]  # (every row, without a copy, mostly)
    cc, aa, rr = c[todo], a[todo], r[todo]
    b = erlang_b(cc, aa)
    while True:
        rho = aa / cc
        fix = 1.0 + (1.0 - rho) * (cc - 1.0) * (np.sqrt(4.0 + 5.0 * cc) - 2.0) / (16.0 * np.maximum(rho, 1e-30) * cc)
        w[todo] = queued = 0.5 * cc * b / (cc - aa * (1.0 - b)) * fix * s[todo] / (cc - aa)
        c[todo] = cc
        more = np.nonzero(blank[todo] & (queued > s[todo]))[0]  # one instance more (the wait falls as the pool grows)
        if not more.size:
            break
        # ... B carried up the instance's r servers from where it stands
        todo, cc, aa, rr, b = np.arange(len(c))[todo][more], cc[more], aa[more], rr[more], b[more]
        for j in range(1, int(rr.max()) + 1):
            b = np.where(j <= rr, aa * b / (cc + j + aa * b), b)
        cc = cc + rr
    return np.where(np.isfinite(c), c / r, 1.0), w


def erlang_b(servers: Array, offered: Array) -> Array:
    """Erlang's B formula at integer `servers` c and `offered` load a > 0, by its recursion B(k) = a B(k-1) / (k +
    a B(k-1)) (Kleinrock 1975 sec. 3.5). The recursion forgets where it starts by a factor k / a a step below the load
    (e^-18 over 6 sqrt(a) steps), so each row starts 6 sqrt(a) + 6 servers below its load at the overload limit
    B = 1 - k / a (B(0) = 1 where that is below 0), and B is 0 where the servers exceed the load by more than that (a
    normal tail beyond 6 sigma): a few dozen steps for pools of thousands of servers. The rows walk together, sorted by
    the steps each needs, so a step updates a prefix of them (views, no copies)."""
    # one or two servers in closed form (most prompt pools): B(1) = a / (1 + a), B(2) = (a^2 / 2) / (1 + a + a^2 / 2);
    # the rest walk
    half_a2 = 0.5 * offered * offered
    closed = np.where(servers <= 1.0, offered / (1.0 + offered), half_a2 / (1.0 + offered + half_a2))
    more = np.nonzero(servers > 2.0)[0]
    if more.size:
        closed[more] = _erlang_walk(servers[more], offered[more])
    return closed


def _erlang_walk(servers: Array, offered: Array) -> Array:
    """`erlang_b` by the recursion (see there)."""
    spread = 6.0 * np.sqrt(offered) + 6.0
    k0 = np.maximum(np.floor(offered - spread), 0.0)
    walk = servers - offered <= spread
    steps = np.where(walk, servers - k0, 0.0).astype(np.int64)
    order = np.argsort(-steps, kind="stable")
    a, k, st = offered[order], k0[order], steps[order]
    b = np.where(k > 0, 1.0 - k / np.maximum(a, 1e-300), 1.0)
    reach = np.searchsorted(-st, -np.arange(1, int(st[0]) + 1 if st.size else 1), side="right")  # rows walking step j
    for j, m in enumerate(reach.tolist(), start=1):
        am, bm = a[:m], b[:m]
        b[:m] = am * bm / (k[:m] + j + am * bm)
    out = np.empty_like(b)
    out[order] = b
    return np.where(walk, out, 0.0)


def _touched(tokens: Array, log_miss: Array) -> Array:
    """Fraction of a layer's routed experts that `tokens` tokens touch: 1 - (1 - k/E)^T, with log_miss = log(1 - k/E)
    (about 1 on a dense model, whose routed-expert bytes are zero anyway)."""
    return -np.expm1(tokens * log_miss)


def rule_bits(n_chips: Array, pp: Array, heads: Array, kv_share: Array, w_expert: Array, dp_attention: Array,
              whole_heads: Array, engine_runs: Array, auto_chips: Array) -> Array:
    """Reason bits of the rules a row's inputs break before any rate is computed (the assembler's `pre_mask`): data-
    parallel attention on a dense model; tensor parallelism that splits a head under an engine that shards whole
    heads (vLLM's rule: tp divides the query heads, the KV heads divide tp or tp them, each then replicated; a latent,
    kv_share 1, is replicated everywhere), except where the compiler spreads an SRAM-only model (`auto_chips`); an
    engine off the chip's vendor."""
    dp_att = dp_attention > 0
    mask = ((dp_att & (w_expert <= 0)) * R_DENSE_DPA).astype(np.int64)
    tp = np.where(np.isfinite(n_chips), n_chips, 1.0) / pp
    split_head = indivisible(heads, tp) | np.where(tp >= kv_share, indivisible(tp, kv_share), indivisible(kv_share, tp))
    mask |= ((whole_heads > 0) & (tp > 1) & ~dp_att & ~(auto_chips > 0) & split_head) * R_HEADS
    mask |= (engine_runs <= 0) * R_ENGINE
    return mask


def _evaluate(x: Mapping[str, Array], cal: Mapping[str, Any], explain: bool = False,
              split_refused: bool = True) -> dict[str, Array]:
    """The core over one block: memory and the rules first, then the rates of the rows nothing refused. Where a
    quarter or more of the block is refused by then (a sweep's chips too small for its models), the rest are
    evaluated alone (`split_refused`) and the refused keep what the first part found (`_refused_outputs`): row by row
    the same values either way."""
    L, h = x["layers"], x["hidden"]
    mask = np.asarray(x["pre_mask"], dtype=np.int64).copy()
    p, g = x["prompt_len"], x["gen_len"]  # tokens
    act_b = x["act_bytes"]  # bytes per activation element
    kv_l = x["kv_layers"]  # layers that keep a KV cache

    # ---- bytes of the model and of one sequence (Pope et al. sec. 2) -------------------------------
    w_byte = x["weight_bits"] * (1.0 + x["quant_overhead"]) * 0.125  # bytes per weight, quantisation scales included
    # engines whose quantisers leave the embedding and the output head at 16 bits (asic.yaml serving.head_16bit)
    head_extra = cal["head_16bit"] * np.maximum(2.0 - w_byte, 0.0)  # bytes per embedding / head weight beyond w_byte
    w_all = x["params"] * w_byte + x["vocab_params"] * head_extra  # bytes: every weight
    # bytes read by every forward pass (attention, dense MLPs, shared experts, the head; the embedding is only indexed)
    w_dense = x["w_dense"] * w_byte + x["vocab"] * h * head_extra
    w_exp = x["w_expert"] * w_byte  # bytes of the routed experts
    # log(1 - k/E): a token misses an expert (k = E clamped to a miss of 1e-6, which float32 still holds)
    log_miss = np.log1p(-np.minimum(x["moe_topk"] / x["moe_experts"], 1.0 - 1e-6))
    kv_tok = kv_l * x["kv_elems"] * x["kv_bits"] * 0.125  # bytes of KV cache per context token per sequence
    # a hybrid model's state-space layers keep a fixed-size state per sequence, whatever its context: the SSM state
    # (at ssm_state_bits) and the convolution's last inputs (at the activation precision); a decode step reads and
    # writes both (Mamba-2's selective state update), like a KV cache that never grows
    stateful = bool(np.any(x["ssm_state_elems"] > 0))  # only blocks holding hybrid models pay the state's passes
    state_seq = x["ssm_state_elems"] * x["ssm_state_bits"] * 0.125 + x["ssm_conv_elems"] * act_b if stateful else 0.0  # bytes per sequence
    c_max = p + g  # tokens of context at the end of generation
    c_avg = p + 0.5 * g  # mean context while generating
    # sliding-window attention (Mistral 7B sec. 2, Gemma 2/3, gpt-oss): a share `wf` of the KV layers keeps and reads
    # only the last `w` tokens. ctx(c): the KV tokens per layer, averaged over the layers, at context c; half_p: the
    # causal (query, context) pairs per prompt token, p/2 less the band's excluded triangle (p - w)^2 / 2p
    w_win, wf = x["att_window"], x["window_share"]
    windowed = bool(np.any(wf > 0))

    def ctx(c: Array) -> Array:
        return c - wf * np.maximum(c - w_win, 0.0) if windowed else c

    half_p = 0.5 * p - 0.5 * wf * np.maximum(p - w_win, 0.0) ** 2 / np.maximum(p, 1.0) if windowed else 0.5 * p
    c_max_kv, c_avg_kv = ctx(c_max), ctx(c_avg)
    rows = np.maximum(p, 1.0)  # token positions one prefill pass holds
    act_rep = rows * h * (2.0 * act_b)  # bytes per sequence: layer input and output, replicated on every chip
    act_split = (rows * (x["n_proj"] - 1.0) * x["ffn"] + x["vocab"]) * act_b  # bytes per sequence, split over chips
    usable = x["mem_bytes"] * cal["mem_usable"]  # bytes per chip a runtime can use

    # ---- chips: the row's, else the fewest SRAM-only chips that hold the model, else 1 ---------------
    t = x["n_chips"]
    blank_t = np.isnan(t)
    if blank_t.any():
        t = np.where(blank_t, 1.0, t)  # chips serving one replica
        auto = np.nonzero(blank_t & (x["sram_only"] > 0))[0]
        if auto.size:
            kvh = x["kv_share"][auto]
            b1 = np.where(x["batch"][auto] >= 1, x["batch"][auto], 1.0)
            kv_all = kv_tok[auto] * c_max_kv[auto]  # bytes of KV per sequence, all heads
            room = usable[auto] - b1 * act_rep[auto]  # bytes per chip after replicated activations
            t_split = np.ceil((w_all[auto] + b1 * (kv_all + act_split[auto])) / room)  # KV split (t <= kv heads)
            room_rep = room - b1 * kv_all / kvh  # bytes per chip once each holds one whole KV head
            t_rep = np.maximum(np.ceil((w_all[auto] + b1 * act_split[auto]) / room_rep), kvh + 1.0)
            t_min = np.where(t_split <= kvh, t_split, np.where(room_rep > 0, t_rep, np.nan))
            t[auto] = np.where((room > 0) & (t_min >= 1), t_min, 1.0)
    ep, pp = x["ep"], x["pp"]  # expert-parallel size, pipeline stages
    mask |= ((ep > 1) & (x["w_expert"] <= 0)) * R_DENSE_EP
    mask |= ((ep > 1) & (x["w_expert"] > 0) & indivisible(t, ep)) * R_LAYOUT
    mask |= ((pp > 1) & (indivisible(t, pp) | (pp > L))) * R_LAYOUT
    tp = t / pp  # tensor-parallel chips of one stage
    dp_att = x["dp_attention"] > 0  # attention data-parallel: each chip keeps whole KV of its own sequences
    # ... whose tokens reach the experts by all-to-all over the ep group, which must then span the stage's chips
    mask |= (dp_att & (ep > 1) & (x["w_expert"] > 0) & (ep != tp)) * R_EP_DPA

    # ---- memory per chip, the static batch and the serving concurrency -------------------------------
    inv_t = 1.0 / t
    kv_chip = kv_tok / pp * np.where(dp_att, 1.0 / tp, np.maximum(1.0 / tp, 1.0 / x["kv_share"]))  # bytes/token/seq, per chip
    state_chip = state_seq * inv_t if stateful else 0.0  # bytes per sequence per chip: the state-space heads split over tp, layers over pp
    # data-parallel attention (SGLang --enable-dp-attention, --moe-dense-tp-size 1): every chip runs the attention
    # and the dense layers of its own sequences, so it keeps their weights of its stage whole instead of a 1/tp share
    # (the routed experts and the head stay split): bytes per weight of them, times the chips' extra share
    att_rep = np.where(dp_att, 1.0 / pp - inv_t, 0.0) * x["w_replicated"]  # extra weights per chip
    w_chip = w_all * inv_t + att_rep * w_byte  # bytes of weights on one chip
    room = usable - w_chip  # bytes per chip left for sequences
    # activations live only for the tokens of one pass, which an engine caps at max_tokens (chunked prefill)
    a_tok = (2.0 * h + (x["n_proj"] - 1.0) * x["ffn"] / tp) * act_b  # bytes per token in flight, per chip
    logit = x["vocab"] * act_b  # bytes per sequence: its logits
    M = cal["max_tokens"]  # tokens one pass carries at most
    B = x["batch"]
    C = x["concurrency"]
    batch_blank = ~(B >= 1)
    conc_blank = ~(C >= 1)
    per_seq = kv_chip * c_max_kv + logit  # bytes per sequence of the static batch, per chip
    if stateful:
        per_seq = per_seq + state_chip
    b_fit = np.floor((room - a_tok * np.minimum(rows * np.floor((room - a_tok * rows) / per_seq), M)) / per_seq)
    # the KV cache a running request holds or has reserved: p + g/2 on average with on-demand paging, p + g when the
    # scheduler guarantees every admitted request its whole output (asic.yaml serving.kv_reserve)
    c_kv = p + cal["kv_reserve"] * g  # tokens of KV per running request
    per_req = kv_chip * ctx(c_kv) + logit  # bytes per chip per running request
    if stateful:
        per_req = per_req + state_chip
    r_tok = 1.0 + p / np.maximum(g, 1.0)  # tokens one iteration carries per running request
    c_lin = room / (per_req + a_tok * r_tok)  # requests that fit while an iteration carries under max_tokens
    c_fit = np.floor(np.where(c_lin * r_tok <= M, c_lin, (room - a_tok * M) / per_req))  # most requests that fit
    # the engine's scheduler limits, per attention rank (data-parallel attention runs one scheduler per chip)
    schedulers = np.where(dp_att, tp, 1.0)  # per instance: one per attention rank of a stage
    cap = np.minimum(cal["max_batch"], M / (1.0 + p / np.maximum(g, 1.0))) * schedulers
    # sequences (static batch): a blank batch is the largest that fits, or the concurrency where that fits (a static
    # batch of 1,166 sequences reported beside a refusal of 1,164 for memory)
    B = np.where(batch_blank, np.where(conc_blank, np.maximum(b_fit, 1.0), np.minimum(C, np.maximum(b_fit, 1.0))), B)
    C = np.where(conc_blank, np.where(batch_blank, np.maximum(np.minimum(c_fit, np.floor(cap)), 1.0), B), C)
    # a row that sets the engine's limit on running requests (cal.max_batch, vLLM --max-num-seqs) below its
    # concurrency: that many run, the rest wait in the engine's queue (their wait joins TTFT below)
    waiting = 0.0
    queue_at = cal.get("queue_at")
    if queue_at is not None:
        running = np.floor(queue_at) * schedulers  # requests the limit lets run, per instance
        waiting = np.where(~conc_blank, np.maximum(C - running, 0.0), 0.0)
        C = C - waiting
    mem = w_chip + B * per_seq + a_tok * np.minimum(B * rows, M)  # bytes per chip, static batch

    def serving_memory(c: Array) -> tuple[Array, dict[str, Array]]:
        """Bytes per chip serving `c` running requests (an iteration carries c r_tok tokens, at most max_tokens), and
        the outputs they set: the requests in flight (the running and the queued) and the GB per chip that must fit."""
        need = w_chip + c * per_req + a_tok * np.minimum(c * r_tok, M)
        return need, {"concurrency": c + waiting, "mem_gb": np.where(batch_blank, need, np.maximum(mem, need)) * 1e-9}

    mem_serve, serving_shown = serving_memory(C)  # bytes per chip, serving
    # a static batch must fit only where the row asked for one; serving always
    fits = ((mem <= usable) | batch_blank) & (mem_serve <= usable)
    short = ~fits & (usable >= 0) & (mem >= 0)  # a published capacity that is too small (else R_NO_MEM)
    mask |= (short & batch_blank & conc_blank) * R_NOFIT | (short & ~(batch_blank & conc_blank)) * R_MEMORY
    mask |= ~((t >= 1) & (L > 0) & (x["params"] > 0)) * R_INPUT  # NaN compares False
    disagg, split = x["disaggregated"] > 0, (g >= 1) & (p >= 1)  # a prompt pool: rows with prompts and outputs
    mask |= (disagg & ~split) * R_SPLIT  # no prompts to move or no outputs to decode
    refused = {  # what a row refused so far shows (its rates NaN): the chips, batch and memory found above
        "n_chips": t, "batch": B, **serving_shown, "mem_limit_gb": usable * 1e-9, "fits": fits, "batch_fit": b_fit, "concurrency_fit": c_fit, "reason_mask": mask,
        "unit_cost_usd": x["purchase_usd"] * t,  # the chips of one replica (a prompt pool only where one is sized)
        # xPyD as given where disaggregated (a blank x is chosen only where the row runs)
        "prefill_instances": np.where(disagg & split & (x["prefill_instances"] >= 1), x["prefill_instances"], np.nan),
        "decode_instances": np.where(disagg & split, np.fmax(x["decode_instances"], 1.0), np.nan),
    }
    if split_refused:
        live = np.nonzero(mask == 0)[0]
        if live.size <= 0.75 * mask.size:  # the refused rows skip the rates (their gathers cost less than the passes)
            return _refused_outputs(refused, live, _evaluate(
                *({k: v[live] if np.ndim(v) else v for k, v in d.items()} for d in (x, cal)), explain, False))

    # ---- rates ------------------------------------------------------------------------------------------
    bw = x["mem_bw"] * x["mem_reach"] * cal["mem_bw_fraction"]  # bytes/s achieved per chip (a share of what it delivers)
    # FLOP/s achieved per chip in the matrix multiplies: a share of what the vendor's GEMM library delivers
    flops = x["peak_flops"] * x["compute_reach"] * cal["compute_fraction"]
    # FLOP/s achieved per chip in attention (FlashAttention or not), at its kernels' precision (16-bit or fp8)
    att_flops = x["att_peak_flops"] * cal["attention_fraction"]
    ubatch = cal["ubatch"]  # tokens of one prompt micro-batch
    # s per forward pass: launches, synchronisation, sampling; a mixture-of-experts layer runs more kernels (router
    # GEMM, top-k, the tokens' permutation and un-permutation, the grouped GEMMs), a fixed time of its own per pass
    t_layer = L * (cal["layer_overhead_s"] + x["low_compute"] * cal["quant_layer_overhead_s"]) + x["moe_layers"] * cal["moe_layer_overhead_s"]
    att = 4.0 * kv_l * x["att_dim"]  # attention FLOPs per token per context token (QK^T and AV), all layers
    # unfused attention: fp32 scores written once and read twice (softmax, x V) per head, query and context token
    score_b = (1.0 - cal["fused_attention"]) * 12.0 * kv_l * x["heads"] / tp  # bytes per token per context token
    unfused = bool(np.any(score_b > 0))  # only blocks holding unfused-attention rows count the scores' bytes
    score_chip = score_b / pp if unfused else 0.0  # bytes per chip and (query, context) token pair: its stage's layers
    # prompt passes of some engines dequantise weights stored below the compute precision into a copy in memory
    dq = (cal["dequant_round_trip"] > 0) & (x["weight_bits"] < 8.0 * act_b)
    any_dq = bool(np.any(dq))
    two_n = 2.0 * x["params_read"]  # FLOPs per token of the matrix multiplies (Kaplan 2N, active experts only)
    two_n_d = 2.0 * x["w_dense"]  # of which the dense weights' (attention, dense MLPs, shared experts, head)
    two_n_e = two_n - two_n_d  # and the routed experts' (0 on a dense model)
    # routed-expert GEMMs (grouped GEMMs of a few tokens per expert) reach their own share of the dense rooflines
    bw_e = bw * cal["moe_fraction"]  # bytes/s
    flops_e = flops * cal["moe_fraction"]  # FLOP/s

    # tensor-parallel all-reduces on the scale-up link (Megatron sec. 3; ring, Patarasuk & Yuan), expert all-to-alls.
    # Engines place a stage's tensor-parallel chips in one scale-up domain and spread pipeline stages over domains:
    # a stage that fits in one runs its all-reduces on the scale-up link even where the instance spans several
    # (Llama 3 405B at tp 8 x pp 2 on two H100 nodes: NVLink inside each, the network between); a hand-off to the
    # next stage crosses the network unless the whole instance fits in one domain
    mesh = x.get("up_mesh", 0.0)  # 1 on a full-mesh domain (comm.mesh_share)

    def link_of(inside: Array, members: Any) -> Array:
        """bytes/s of a chip's traffic to `members` chips of its group: the scale-up link (on a full mesh, the links
        to them) where the group is `inside` one domain, else the scale-out NIC; at the engine's link share."""
        return np.where(inside, x["up_bw"] * mesh_share(members, x["up_domain"], mesh), x["out_bw"]) * cal["link_fraction"]

    tp_inside = tp <= x["up_domain"]
    link = link_of(tp_inside, tp)  # bytes/s
    ar_byte = np.where(tp > 1, 2.0 * (tp - 1.0) / tp / link, 0.0)  # s per all-reduced byte (ring over a stage)
    hop_link = link_of(t <= x["up_domain"], 2.0)  # bytes/s of a hand-off to the next stage: one link of a full mesh
    # expert all-to-alls: a token's copies to the peers inside the scale-up domain ride its link, the rest the NICs,
    # both at once; a hierarchical dispatch (`ep_dedup`, DeepEP) crosses the network once per remote domain holding
    # one of the token's experts (comm.expert_copies, the training core's count)
    a2a_copy = 0.0 * ep  # s per byte of a token's hidden state in one all-to-all (0 without expert parallelism)
    a2a_rows = (ep > 1) & dp_att  # experts reached by all-to-all: beside data-parallel attention only
    moe_rows = np.nonzero(a2a_rows)[0]
    if moe_rows.size:  # only the expert-parallel rows pay the count

        def at(v: Any) -> Any:
            return v[moe_rows] if np.ndim(v) else v

        e_r, dom = ep[moe_rows], at(x["up_domain"])
        dom = np.where(np.isfinite(dom), dom, 1.0)  # chips per scale-up domain (1: none published)
        g_ep = np.where(t[moe_rows] <= dom, e_r, np.maximum(np.minimum(dom, e_r), 1.0))  # ep members inside one domain
        up_copies, out_copies = expert_copies(e_r, g_ep, at(x["moe_topk"]), at(x["ep_dedup"]), at(x["moe_groups"]),
                                              at(x["moe_topk_groups"]))
        frac = at(cal["link_fraction"])
        # bytes/s per chip (on a full mesh, the links to the domain's ep members)
        up_link = at(x["up_bw"]) * frac * (mesh_share(g_ep, dom, at(mesh)) if np.ndim(mesh) else 1.0)
        out_link = at(x["out_bw"]) * frac
        if "up_torus" in x:  # a torus domain: the copies inside it cross its bisection (comm.torus_all_to_all)
            up_copies = up_copies * torus_all_to_all(g_ep, at(x["up_torus"]))
        a2a_copy[moe_rows] = np.maximum(up_copies / up_link, out_copies / out_link)
    lat = np.where(tp > 1, np.ceil(np.log2(tp)) * cal["link_latency_s"], 0.0)  # s per collective step
    # all-reduces per pass: each layer's attention output and its MLP's. Under tensor-parallel attention every chip
    # holds every token, so an MoE layer's experts, whole on ep chips or split over t/ep, each add their share of
    # every token's output and an all-reduce sums them, as a dense MLP's (vLLM's FusedMoE reduce_results,
    # TensorRT-LLM's MoE then all-reduce): expert parallelism moves weights, not tokens. Beside data-parallel
    # attention a chip holds only its own requests' tokens: they reach the experts by all-to-all (DeepEP), and the
    # dense layers run data-parallel too (SGLang's large-scale EP deployment: --moe-dense-tp-size 1), no all-reduce
    # and without expert parallelism there the experts split over every chip need every chip's tokens: an all-gather
    # before them and a reduce-scatter after, an all-reduce's volume (SGLang's DP attention beside TP MoE)
    ar_layers = np.where(dp_att, np.where(ep > 1, 0.0, x["moe_layers"]), 2.0 * L)
    msg_tok = h * act_b  # bytes of one token's hidden state
    # s per running sequence and iteration on the host; vLLM's multi-step scheduling (--num-scheduler-steps n) runs
    # the scheduler and input preparation once for n forward passes (vLLM v0.6.0 blog, 2024-09-05)
    host_s = cal["seq_overhead_s"] / x["scheduler_steps"]
    any_host = bool(np.any(np.asarray(host_s) > 0))
    async_sched = x["async_scheduling"] > 0
    any_async = bool(async_sched.any())
    hop = np.where(pp > 1, 1.0 / hop_link, 0.0)  # s per byte handed to the next stage

    # s per forward pass of `tokens` tokens, comm_0 + comm_1 x tokens: all-reduces of the layer outputs, all-to-alls
    # to the experts, hand-offs between pipeline stages (each a latency per message and a time per byte)
    a2a_layers = np.where(a2a_rows, 2.0 * x["moe_layers"], 0.0)
    comm_0 = ar_layers * 2.0 * lat + (a2a_layers + pp - 1.0) * cal["link_latency_s"]  # s
    # (the all-to-alls carry a latent MoE's tokens at its latent width)
    comm_1 = msg_tok * (ar_layers * ar_byte + (pp - 1.0) * hop)  # s/token
    # s per token a chip sends to the experts and takes back, every stage's MoE layers in turn: each chip of a stage
    # sends its own tokens (its even share, tokens / tp, or the busiest rank's where attention is data-parallel)
    a2a_tok = x["moe_width"] * act_b * a2a_layers * a2a_copy
    # an engine's own all-reduce inside a scale-up domain of 2-8 chips (vLLM's CustomAllreduce; asic.yaml
    # serving.custom_all_reduce_bytes): one barrier and one read of every peer's buffer, for messages below the
    # engine's limit; NCCL's 2 x ceil(log2 tp) steps beyond it
    one_shot = (cal["custom_all_reduce_bytes"] > 0) & (tp > 1) & (tp <= 8) & tp_inside
    any_one_shot = bool(np.any(one_shot))
    comm_0_one = comm_0 - ar_layers * (2.0 * lat - cal["link_latency_s"]) if any_one_shot else comm_0  # s: one step each

    any_a2a = bool(moe_rows.size)

    def comm(tokens: Array, sent: Any = None) -> Array:
        """s of a pass's collectives over `tokens` tokens, of which the busiest chip of a stage sends `sent` to the
        experts (default: an even share, tokens / tp)."""
        fixed = np.where(one_shot & (tokens * msg_tok < cal["custom_all_reduce_bytes"]), comm_0_one, comm_0) \
            if any_one_shot else comm_0
        if not any_a2a:
            return fixed + comm_1 * tokens
        return fixed + comm_1 * tokens + a2a_tok * (tokens / tp if sent is None else sent)

    # per chip, what one iteration's work costs on each roofline (the weight GEMMs and the attention kernels run one
    # after the other in every layer, each on its own roofline)
    w_d = w_dense * inv_t + att_rep * w_byte  # bytes per chip: dense weights (data-parallel attention's whole)
    w_e_all = w_exp * inv_t  # bytes per chip: every routed expert
    kv_seq = kv_chip * c_avg_kv  # bytes per chip a decoding sequence reads from the KV cache
    if stateful:
        kv_seq = kv_seq + 2.0 * state_chip  # ... and reads and rewrites of its state
    mm_tok_d = two_n_d * inv_t  # FLOPs per chip and token of the dense matrix multiplies
    mm_tok_e = two_n_e * inv_t  # FLOPs per chip and token of the routed experts
    at_pair = att * inv_t  # FLOPs per chip and (query, context) token pair of attention scores and values
    s_w_d, s_w_e = w_d / bw, w_e_all / bw_e  # s: the dense weights, every routed expert, read once
    s_mm_d, s_mm_e = mm_tok_d / flops, mm_tok_e / flops_e  # s per token through the dense weights, the experts
    s_kv, s_sc = kv_seq / bw, score_b / pp / bw  # s per decoding sequence (KV), per token pair (unfused scores)
    s_at = at_pair / att_flops  # s per token pair of attention
    # a prompt's pair costs its own attention width (latent attention runs expanded there) over the decode's
    pre_att = np.where(x["att_dim"] > 0, x["att_dim_prefill"] / np.maximum(x["att_dim"], 1e-30), 1.0)

    any_dpa = bool(np.any(dp_att))

    def iteration_parts(seqs: Array, pre_tokens: Array, prompts: Any = None) -> tuple[Array, ...]:
        """One iteration of `seqs` decodes plus `pre_tokens` prompt tokens, part by part: s per stage of the dense
        weights' GEMMs, the routed experts' and the attention kernels (each the larger of its memory and compute
        time), s of collectives, s of the host's work; tokens through the weights, (query, context) token pairs,
        share of the routed experts touched. `prompts`: how many prompts' chunks the prompt tokens are, each on a rank
        of its own where attention is data-parallel (None: prompts spread like the decodes)."""
        tok = seqs + pre_tokens
        dec_pairs = seqs * c_avg_kv
        pre_pairs = pre_tokens * half_p * pre_att  # in decode-attention pairs
        pairs = dec_pairs + pre_pairs
        touched = _touched(tok, log_miss)
        # data-parallel attention: a sequence's attention and dense layers run on its own rank, and the ranks meet at
        # every MoE layer's all-to-all, so the busiest sets the pace: ceil(seqs / tp) decodes (a stage's tp ranks)
        # and a prompt's whole chunk (ceil(prompts / tp) of them), that rank's work over a chip's even share (1 where
        # attention is split)
        rank_seqs, rank_tok, rank_pairs, sent = seqs, tok, pairs, None
        if any_dpa:
            f_dec = busiest_rank(seqs)  # (a rank holds each request it decodes, as each prompt it prefills)
            f_pre = f_dec if prompts is None else busiest_rank(prompts)
            rank_seqs = seqs * f_dec
            rank_tok = rank_seqs + pre_tokens * f_pre  # the busiest rank's tokens, x tp
            rank_pairs = dec_pairs * f_dec + pre_pairs * f_pre
            sent = rank_tok / tp
        dense = np.maximum(s_w_d, rank_tok * s_mm_d)
        experts = np.maximum(s_w_e * touched, tok * s_mm_e)
        attention = np.maximum(rank_seqs * s_kv + rank_pairs * s_sc, rank_pairs * s_at)
        host = seqs * host_s if any_host else 0.0  # s: the engine's host work per running sequence (vLLM blog)
        return dense, experts, attention, comm(tok, sent), host, tok, pairs, touched

    def on_chips(dense: Array, experts: Array, attention: Array, talk: Array) -> Array:
        """s on the chips of one iteration: the stages in turn, the fixed time per pass, the collectives."""
        return pp * (dense + experts + attention) + t_layer + talk

    def with_host(gpu: Array, host: Any) -> Array:
        """s of one iteration with the host's work: after the chips', or, for an engine that schedules the next
        iteration while the chips run this one (vLLM --async-scheduling), the longer of the two."""
        if not any_host:
            return gpu
        if not any_async:
            return gpu + host
        return np.where(async_sched, np.maximum(gpu, host), gpu + host)

    def iteration(seqs: Array, pre_tokens: Array, prompts: Any = None) -> tuple[Array, Array, Array, Array]:
        """(s, tokens through the weights, (query, context) token pairs, share of the routed experts touched) of
        one iteration: `seqs` decodes plus `pre_tokens` prompt tokens (`iteration_parts`)."""
        dense, experts, attention, talk, host, tok, pairs, touched = iteration_parts(seqs, pre_tokens, prompts)
        return with_host(on_chips(dense, experts, attention, talk), host), tok, pairs, touched

    def step(seqs: Array, pre_tokens: Array, prompts: Any = None) -> Array:
        """s of one iteration: `seqs` decodes plus `pre_tokens` prompt tokens (`iteration_parts`)."""
        return iteration(seqs, pre_tokens, prompts)[0]

    def timed_work(seqs: Array, pre_tokens: Array, prompts: Any = None) -> tuple[Array, Array, Array]:
        """(s, FLOPs, bytes) per chip of one iteration: the matrix multiplies and attention; the weights the
        tokens touch and the KV cache the decodes read (the power model's utilisations: the chips' mean work)."""
        s_it, tok, pairs, touched = iteration(seqs, pre_tokens, prompts)
        byt = w_d + w_e_all * touched + seqs * kv_seq
        if unfused:
            byt = byt + pairs * score_chip
        return s_it, tok * (mm_tok_d + mm_tok_e) + pairs * at_pair, byt

    def prompt(tokens: Array, prompts: Array | None = None) -> Array:
        """s to prefill `tokens` prompt tokens (`prompt_parts` summed)."""
        work, fixed, talk = prompt_parts(tokens, prompts)
        return work + fixed + talk

    def busiest_rank(prompts: Array | None) -> Any:
        """Beside data-parallel attention a prompt runs its attention and dense layers on its own rank: `prompts`
        prompts over a stage's tp ranks leave the busiest with ceil(prompts / tp) of them, that many times one chip's
        even share of their work each (tp for one prompt alone; 1 where they spread evenly or attention is split)."""
        if prompts is None or not any_dpa:
            return 1.0
        n = np.maximum(prompts, 1.0)
        return np.where(dp_att, np.ceil(n / tp - 1e-6) * tp / n, 1.0)

    def prompt_parts(tokens: Array, prompts: Array | None = None, work: bool = False) -> tuple[Array, ...]:
        """s to prefill `tokens` prompt tokens (weights once per micro-batch, KV written, causal attention), as the
        kernels' work, the fixed time per pass and the collectives; layer-split stages overlap the micro-batches of
        each engine batch of max_tokens (k of them over pp stages: (k + pp - 1) / (k pp) of the serial time;
        llama.cpp pipelines the ubatches of one n_batch, batches run in turn). `prompts`: how many prompts the
        tokens are, where attention is data-parallel (`busiest_rank`; None: many, spread evenly over the ranks).
        With `work`, also the FLOPs and bytes per chip of those kernels (the power model's utilisations)."""
        on_rank = busiest_rank(prompts)  # the busiest rank's share of the attention and dense layers' work (and KV)
        # tokens of the busiest scheduler: the instance's, or, where attention is data-parallel, the busiest rank's
        # (each rank schedules its own requests under its own max_tokens, as the running-request cap counts them)
        sched = np.where(dp_att, tokens * on_rank / tp, tokens) if any_dpa else tokens
        k = np.ceil(np.minimum(sched, M) / ubatch)  # micro-batches of one engine batch: stages overlap them
        passes = np.ceil(np.maximum(sched, 1.0) / M)  # engine batches of max_tokens, in turn: each reads the
        # weights once per micro-batch and pays the fixed time per layer
        reads = k * passes  # micro-batches in all
        touched = _touched(np.minimum(tokens, ubatch), log_miss)  # share of the routed experts one micro-batch uses
        # weights the GEMMs read per chip and micro-batch: the stored ones, or the dequantised copy an engine writes
        w_st_d, w_st_e = w_d, w_e_all * touched  # bytes per chip as stored
        w_gemm_d, w_gemm_e = w_st_d, w_st_e
        if any_dq:
            w_gemm_d = np.where(dq, (x["w_dense"] * inv_t + att_rep) * act_b, w_gemm_d)
            w_gemm_e = np.where(dq, x["w_expert"] * act_b * touched * inv_t, w_gemm_e)
        byt = w_gemm_d * reads + tokens * kv_chip * on_rank  # bytes: dense weights per micro-batch, the KV written
        byt_e = w_gemm_e * reads  # bytes: routed experts touched
        pairs = tokens * half_p * pre_att  # (query, context) token pairs of causal attention over the prompt
        busy = (np.maximum(byt / bw, tokens * s_mm_d * on_rank)  # s, the weight GEMMs, all on one stage
                + np.maximum(byt_e / bw_e, tokens * s_mm_e)
                + np.maximum(pairs * s_sc, pairs * s_at) * on_rank)  # attention
        dq_bytes = 0.0
        if any_dq:  # the dequantising kernel before each GEMM: stored weights read, the copy written (memory-bound)
            dq_bytes = dq * reads * (w_st_d + w_gemm_d + w_st_e + w_gemm_e)
            busy = busy + dq * reads * ((w_st_d + w_gemm_d) / bw + (w_st_e + w_gemm_e) / bw_e)
        parts = (pp * busy * (k + pp - 1.0) / (k * pp), t_layer * np.minimum(k, pp) * passes,
                 comm(tokens, tokens * on_rank / tp if any_dpa else None))
        if not work:
            return parts
        flo = tokens * (mm_tok_d * on_rank + mm_tok_e) + pairs * at_pair * on_rank  # FLOPs per chip
        return (*parts, flo, byt + byt_e + pairs * score_chip * on_rank + dq_bytes)  # bytes per chip

    # ---- static batch (the edge columns): B prompts in one pass, then decode steps of B sequences ------
    t_dec = step(B, 0.0)  # s per decode step of the static batch
    t_pre_b = prompt(B * p, B)  # s: B prompts, over the ranks where attention is data-parallel

    # one prompt alone: TTFT without load; the KV written once per prompt token
    any_disagg = bool(disagg.any())
    pre1 = prompt_parts(p, np.ones_like(p), work=any_disagg)  # (with its work where a prompt pool draws power)
    t_pre1 = pre1[0] + pre1[1] + pre1[2]  # s: one prompt, on one rank where attention is data-parallel
    # prompt pool (disaggregated): instances of the same t chips prefilling prompts back to back, one prompt per
    # pass, or one per attention rank where attention is data-parallel (each rank runs its own), a prompt's TTFT
    # being its pass (a pass of more prompts would cost less per token and make each of them wait for all of it);
    # each pass costs what a colocated prefill of those tokens costs (the kernels, the fixed time per layer, the
    # all-reduces: `prompt`), not the bare compute-bound FLOPs
    t_pass = t_pre1
    ranks = np.where(dp_att, tp, 1.0)  # prompts of one pool pass
    pool_work = pre1[3:]  # FLOPs and bytes per chip of a pool pass (the power model's)
    if any_disagg and any_dpa:
        dp_pass = prompt_parts(p * ranks, ranks, work=True)
        t_pass = np.where(dp_att, dp_pass[0] + dp_pass[1] + dp_pass[2], t_pre1)
        pool_work = tuple(np.where(dp_att, a, b) for a, b in zip(dp_pass[3:], pre1[3:], strict=True))
    ranks_b = np.broadcast_to(ranks, p.shape)
    y_all = np.fmax(x["decode_instances"], 1.0)  # decode instances sharing a prompt pool (blank: 1)

    def pool_demand(seqs: Array, t_it: Array, rows: Array) -> Array:
        """Prompt instances' worth of passes the prompts of the `rows`' y decode instances keep busy, each running
        `seqs` requests at `t_it` s an iteration: its prompts per second (seqs / gen_len a step) x a pass, over the
        prompts a pass runs."""
        return (seqs * p[rows] / np.maximum(g[rows], 1.0) / t_it * t_pass[rows]
                / np.maximum(p[rows] * ranks_b[rows], 1.0) * y_all[rows])

    if any_disagg:
        # a blank concurrency (and batch) beside a given prompt pool: the most requests that fit memory and whose
        # prompts the x instances take without a wait longer than their pass (the blank pool's rule, the other way
        # round): memory's most, else a bisection below it. The pool's load grows with the requests, except where
        # attention is data-parallel: there the step grows as the busiest rank gains a request, every tp requests,
        # and the load falls back a little at each such step; it grows along the first request of each step and
        # within a step, so the search bisects over the steps, then within the last that keeps up
        fill = np.nonzero(disagg & split & conc_blank & batch_blank & (x["prefill_instances"] >= 1) & (mask == 0))[0]
        if fill.size:
            given_f, pass_f, ranks_f = x["prefill_instances"][fill], t_pass[fill], ranks_b[fill]

            def keeps_up(c_f: Array) -> Array:
                seqs = C.copy()
                seqs[fill] = c_f
                demand_f = pool_demand(c_f, step(seqs, 0.0)[fill], fill)
                return prompt_pool(given_f, demand_f, ranks_f, pass_f)[1] <= pass_f

            def most_that_keep_up(first: Any, lo: Array, hi: Array) -> Array:
                """The largest k in [lo, hi] (float64 integers) at which `first(k)` requests keep up, where they do
                at lo (else lo)."""
                for _ in range(64):  # (a bisection of float64 integers ends within 53 halvings)
                    if not bool((lo < hi).any()):
                        break
                    mid = np.floor(0.5 * (lo + hi + 1.0))
                    ok = keeps_up(first(mid))
                    lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1.0)
                return lo

            most = np.asarray(C[fill], dtype=np.float64)
            unit = np.where(dp_att, tp, 1.0)[fill] if any_dpa else np.ones_like(most)  # requests per step
            steps = np.ceil(most / unit)
            every = keeps_up(most)  # (most rows: the pool takes memory's most)
            k = most_that_keep_up(lambda j: np.minimum((j - 1.0) * unit + 1.0, most), np.where(every, steps, 1.0),
                                  steps)
            c = most_that_keep_up(lambda v: v, np.where(every, most, np.minimum((k - 1.0) * unit + 1.0, most)),
                                  np.minimum(k * unit, most))
            C = C.copy()
            C[fill] = c  # (1 where even one request's prompts wait longer: the row runs, its wait in its TTFT)
            refused.update(serving_memory(C)[1])

    # ---- serving: C sequences in steady state ----------------------------------------------------------
    has_gen = g >= 1
    pre_share = np.where(disagg | ~has_gen, 0.0, C * p / np.maximum(g, 1.0))  # prompt tokens per iteration
    # a prompt arrives whole: the scheduler fills an iteration's token budget (max_tokens) with a chunk of it beside
    # the C decodes (Sarathi-Serve sec. 4; vLLM's chunked prefill), so it costs ceil(p / k) mixed iterations of
    # k = max_tokens - C prompt tokens, compute-bound when k is large, not a few tokens riding each decode's memory
    # time. While mixed iterations are fewer than all (C ceil(p/k) < g) the time per iteration is the decode
    # iteration's plus their share of the extra a chunk costs; beyond that every iteration carries prompt tokens
    # (the prompts spread evenly over the iterations)
    # (where attention is data-parallel, the budget is the prompt's rank's, beside that rank's decodes)
    c_rank = np.where(dp_att, np.ceil(C / tp - 1e-6), C) if any_dpa else C
    k_max = np.clip(M - c_rank, 1.0, np.maximum(p, 1.0))  # prompt tokens one mixed iteration can carry
    n_chunks = np.ceil(p / k_max)  # mixed iterations per prompt
    # ... filled greedily (vLLM's and TensorRT-LLM's schedulers): full chunks, then the rest (a 2,000-token prompt in
    # a 1,984-token budget: a full chunk and one of 16 tokens, which costs little more than a decode iteration)
    k_last = np.maximum(p, 1.0) - (n_chunks - 1.0) * k_max
    w_full = (n_chunks - 1.0) / np.maximum(n_chunks, 1.0)  # full chunks' share of a prompt's mixed iterations
    multi = n_chunks > 1.0

    share = C * n_chunks / np.maximum(g, 1.0)  # prompt chunks per iteration
    # iterations that carry chunks (`busy`, per iteration) and the chunks each carries (`n_mix`): one, or where
    # attention is data-parallel, each rank its own requests' (share / tp a rank), in the same iteration where they
    # meet (ranks independent: 1 - (1 - share / tp)^tp of the iterations carry any; the busiest rank, one chunk, sets
    # their pace); every iteration carries prompt tokens once a chunk comes more often than each iteration (a rank's)
    busy, busy_user, n_mix, per_rank = share, np.maximum(C - 1.0, 0.0) * n_chunks / np.maximum(g, 1.0), 1.0, share
    if any_dpa:
        per_rank = np.where(dp_att, share / tp, share)

        def meeting(sh: Array) -> Array:
            return np.where(dp_att, -np.expm1(tp * np.log1p(-np.clip(sh / tp, 0.0, 1.0 - 1e-6))), sh)

        busy, busy_user = meeting(share), meeting(busy_user)
        n_mix = np.where(dp_att & (busy > 0), share / np.maximum(busy, 1e-30), 1.0)
    chunked = (pre_share > 0) & (per_rank < 1.0)

    def mixed(parts: Any, seqs: Array) -> list[Array]:
        """`parts(seqs, chunks, prompts)` of the mixed iterations beside `seqs` decodes (n_mix prompts' chunks in each),
        their mean: a prompt's last chunk's, and where it needs several, weighted with its full chunks'."""
        last = list(parts(seqs, n_mix * k_last, n_mix))
        if not bool(np.any(multi)):
            return last
        full = parts(seqs, n_mix * k_max, n_mix)
        return [b + w_full * (a - b) for a, b in zip(full, last, strict=True)]  # w_full 0 where one chunk does
    # s per iteration of the instance: the decode iteration where prompts come in chunks, else the evenly spread one
    pre_it = np.where(chunked, 0.0, pre_share)
    t_iter, flo_it, byt_it = timed_work(C, pre_it)
    # a user's time per output token (TPOT) sees the other C - 1 users' prompts: its own was prefilled before its
    # first token (TTFT). The instance's iteration (its output rate, power) carries all C
    t_user = t_iter
    t_d, flo_d, byt_d = t_iter, flo_it, byt_it  # a decode iteration (its power, apart from a mixed one's)
    # a mixed iteration (their mean): n_mix prompts' chunks beside the C running requests' decodes
    t_m, flo_m, byt_m = mixed(timed_work, C)
    if bool(chunked.any()):
        t_user = np.where(chunked, t_iter + busy_user * (t_m - t_iter), t_iter)
        t_iter = np.where(chunked, t_iter + busy * (t_m - t_iter), t_iter)
        flo_it = np.where(chunked, flo_it + busy * (flo_m - flo_it), flo_it)
        byt_it = np.where(chunked, byt_it + busy * (byt_m - byt_it), byt_it)
    spread = (pre_share > 0) & ~chunked  # every iteration carries prompt tokens: the others' (C - 1) p / g
    pre_user = np.where(spread, np.maximum(C - 1.0, 0.0) * p / np.maximum(g, 1.0), 0.0)
    if bool(spread.any()):
        t_user = np.where(spread, step(C, pre_user), t_user)
    # a new prompt waits for the iteration in flight to end (schedulers admit requests between iterations: half an
    # iteration on average for a request arriving at a random time, the mean residual of a fixed cycle), then runs
    # in n_chunks iterations, each one pass of its chunk beside the running decodes (chunked prefill, Sarathi-Serve
    # sec. 4: the weights read and the fixed time per layer paid once per pass): the mixed iteration above, whose C
    # decodes count the one this request replaces (one decode's time more than the C - 1 running beside it, which
    # a pass of its own cost the core 7 % of its speed); never sooner than the prompt alone
    ttft_load = np.maximum(0.5 * t_iter + n_chunks * t_m, t_pre1)
    # s: the prompt's KV cache sent from the prompt pool to the decode pool, each chip its own share over its own NIC
    # (the rank that prefilled it, where attention is data-parallel)
    kv_move = ctx(p) * kv_chip * (np.where(dp_att, tp, 1.0) if any_dpa else 1.0) / x["out_bw"]
    ttft = np.where(disagg, t_pass + kv_move, np.where(C > 1, ttft_load, t_pre1))  # s
    out_tps = C / t_iter * has_gen  # output tokens/s of the instance
    if queue_at is not None:
        # Little's law over the queue: its requests leave at the rate the running ones finish (output tokens/s over
        # the tokens each generates; prompts alone, one TTFT per running request)
        leave = np.where(has_gen, out_tps / np.maximum(g, 1.0), C / np.maximum(ttft, 1e-30))  # requests/s
        ttft = ttft + waiting / leave
    n_pre = np.zeros_like(t_iter)  # chips of the prompt pool per decode instance
    n_busy = n_pre  # ... of them busy on average (chip-s of passes per s)
    pool_in = pool_out = pool_busy = None
    if any_disagg:
        # prompt pool (xPyD): x prompt instances of the same t chips serve the prompts of y decode instances; one
        # decode instance keeps busy `demand` prompt instances' worth of passes (its prompts per second x a pass, over
        # the prompts a pass runs). Computed on the disaggregated rows only
        on = np.nonzero(disagg & split & (mask == 0))[0]  # (a row refused for memory or a rule sizes no pool)
        t_on, y = np.broadcast_to(t, p.shape)[on], y_all[on]
        demand = pool_demand(C[on], t_iter[on], on)
        n_in, wait = prompt_pool(x["prefill_instances"][on], demand, ranks_b[on], t_pass[on])
        mask[on] |= (~(demand < n_in) & np.isfinite(demand)) * R_POOL
        ttft = ttft + 0.0  # (a copy: the rows' own array)
        ttft[on] += wait
        pool_busy, n_pre, n_busy = (np.full_like(p, v) for v in (np.nan, 0.0, 0.0))
        pool_in, pool_out = (np.array(refused[k], dtype=p.dtype) for k in ("prefill_instances", "decode_instances"))
        pool_in[on], pool_out[on], pool_busy[on] = n_in, y, demand / n_in  # (busy above 1: a pool that never keeps up)
        n_pre[on], n_busy[on] = n_in * t_on / y, demand * t_on / y
    chips_total = t + n_pre

    # ---- power (linear in utilisation, capped at TDP) and energy per output token ---------------------------
    tdp = x["tdp_w"]
    idle = np.where(np.isfinite(x["idle_w"]), x["idle_w"], cal["idle_fraction"] * tdp)  # W per chip
    w_flo = cal["power_compute"] / x["peak_flops"]  # share of the dynamic range per FLOP/s (a x compute utilisation)
    w_byt = cal["power_memory"] / x["mem_bw"]  # ... per byte/s (b x memory utilisation)
    dyn = tdp - idle  # W per chip between idle and the TDP

    def load(s: Array, flo: Array, byt: Array) -> Array:
        """Share of the dynamic range over `s` seconds of `flo` FLOPs and `byt` bytes: a u_c + b u_m (u_c the
        achieved / peak compute, u_m the bytes / bandwidth), at most 1 (the TDP)."""
        return np.minimum((flo * w_flo + byt * w_byt) / s, 1.0)

    # each kind of iteration at its own draw, capped on its own (a mixed iteration's prompt chunk can reach the TDP
    # where the decode iterations around it do not), the two weighted by the time they take
    share_dyn = load(t_d, flo_d, byt_d)
    if bool(chunked.any()):
        mixed_s = busy * t_m  # s of mixed iterations per iteration
        share_dyn = np.where(chunked, ((t_iter - mixed_s) * share_dyn + mixed_s * load(t_m, flo_m, byt_m)) / t_iter,
                             share_dyn)
    p_dec = idle + dyn * share_dyn  # W per chip
    # the prompt pool at the utilisation of its passes (their kernels' FLOPs and bytes over the pass, which its fixed
    # time per layer and collectives lengthen), not at the GEMM library's full rate
    # (its chips idle between passes: the busy ones' share of the pool at that draw, the rest at idle)
    p_pool = 0.0
    if any_disagg:
        p_pool = np.where(disagg, idle * n_pre + dyn * load(t_pass, *pool_work) * n_busy, 0.0)
    power = p_dec * t + p_pool  # W, every chip serving the instance
    energy_tok = power / out_tps  # J per output token, prompts included

    money = serving_economics(out_tps, chips_total, power, t, x, cal)

    one = np.ones_like(p)  # 1.0 in the block's dtype (a where of two Python floats would widen float32 to float64)
    ok = np.where(mask == 0, one, np.nan)  # NaN where infeasible
    prefill = p > 0
    okg = ok * np.where(has_gen, one, np.nan)

    def explained() -> dict[str, Array]:
        """The TPOT and TTFT parts (`EXPLAIN_OUT`): the serving iteration's, moved by the mixed iterations' share
        where prompts come in chunks (as `tpot_s` is), and the lone prompt's; the host's time counts only where the
        chips wait on it."""

        def tpot(seqs: Array, pre: Array, prompts: Any = None) -> list[Array]:
            dense, experts, attention, talk, host, *_ = iteration_parts(seqs, pre, prompts)
            gpu = on_chips(dense, experts, attention, talk)
            return [pp * dense, pp * experts, pp * attention, t_layer, talk, with_host(gpu, host) - gpu]

        dec = tpot(C, pre_user)  # the user's iteration: the others' prompts (`t_user`)
        if bool(chunked.any()):
            dec = [np.where(chunked, d + busy_user * (m - d), d) for d, m in zip(dec, mixed(tpot, C), strict=True)]
        # s: the wait in the prompt pool's queue, the KV cache's move and the other ranks' prompts of its pool pass, or
        # what the running decodes and the iteration in flight add to the lone prompt
        queue = ttft - t_pre1
        out = {k: v * okg for k, v in zip(TPOT_PARTS, dec, strict=True)}
        out.update({k: v * ok * prefill for k, v in zip(TTFT_PARTS, (*prompt_parts(p, np.ones_like(p)), queue), strict=True)})
        return out

    parts = explained() if explain else {}
    return {
        **parts,
        **refused,
        # xPyD and the prompt pool's busy share where disaggregated, NaN colocated
        # (a given x stays as given on a refused row, a chosen one does not)
        "prefill_instances": refused["prefill_instances"] if pool_in is None else np.where(
            x["prefill_instances"] >= 1, pool_in, pool_in * ok),
        **{k: refused[k] if v is None else v for k, v in (("decode_instances", pool_out), )},
        "pool_busy": np.full_like(p, np.nan) if pool_busy is None else pool_busy,
        "prefill_pool_busy": pool_busy * ok if pool_busy is not None else np.full_like(p, np.nan),
        "ttft_s": ttft * prefill * ok,
        "prefill_tokens_per_s": np.where(prefill, p / t_pre_b, np.nan) * ok,
        "decode_tokens_per_s": okg / t_dec,  # a row that generates nothing (gen_len 0: prefill alone) decodes nothing
        "throughput_tokens_per_s": B * okg / t_dec,
        "energy_per_token_j": energy_tok * okg,
        "unit_cost_usd": np.where(mask == 0, money["unit_cost_usd"], refused["unit_cost_usd"]),  # (refused: own chips)
        "output_tokens_per_s": out_tps * okg,
        "output_tokens_per_s_per_chip": out_tps / chips_total * okg,
        "tokens_per_s_per_user": okg / t_user,
        "tpot_s": t_user * okg,
        "usd_per_million_tokens": money["usd_per_million_tokens"] * okg,
        "power_w": power * okg,
        "decode_compute_bound": (flo_it / flops > byt_it / bw) & (mask == 0),
        "reason_mask": mask,
    }


def _refused_outputs(refused: Mapping[str, Array], live: Array, rates: Mapping[str, Array]) -> dict[str, Array]:
    """A block's outputs from the `rates` of its `live` rows (evaluated alone) and what the `refused` rows show:
    their chips, batch and memory; NaN rates (False where a flag)."""
    out = {}
    for k, v in rates.items():
        whole = refused.get(k)
        if whole is None:
            whole = np.full(len(refused["reason_mask"]), False if v.dtype == bool else np.nan, dtype=v.dtype)
        else:
            whole = np.array(whole, dtype=v.dtype)  # (a copy: the refused rows' own array)
        whole[live] = v
        out[k] = whole
    return out


# the inputs the economics of serving read, beside the instance's output rate, chips and power: none changes
# how fast it serves, so a change to them alone re-prices stored rows (`workers/reprice.py`)
ECONOMIC_OUTPUTS = ("usd_per_million_tokens", "unit_cost_usd")


def serving_economics(out_tps: Array, chips_total: Array, power: Array, n_chips: Array, x: Mapping[str, Array],
                      cal: Mapping[str, Any]) -> dict[str, Array]:
    """USD per million output tokens of an instance of `chips_total` chips drawing `power` W: the rental price of
    every chip, else what owning them costs: a chip sold into servers (`hosted`) at the training TCO
    (`training.owned_rates`: the server's and the network's shares at the cost of capital, the chips' and their
    hosts' power at the PUE, facility and operations per kW; a serving chip-hour costs what a training one does),
    a device at its purchase spread over its life plus its electricity x PUE; and the unit cost (purchase price)
    of the chips one replica needs: its `n_chips` and, disaggregated, its share of the prompt pool (`chips_total`;
    a unit cost of the decode chips alone put a disaggregated row on an edge frontier at a price that buys no
    prompt pool)."""
    rented = np.isfinite(x["usd_per_hour"])
    usd_s = x["usd_per_hour"] / 3600.0 * chips_total  # USD/s
    if not bool(rented.all()):  # a block of rented chips (a sweep's chunk is one chip) skips what owning costs
        life_s = cal["amortization_years"] * HOURS_PER_YEAR * 3600.0  # s of service a purchase is spread over
        device = x["purchase_usd"] / life_s * chips_total + power * cal["pue"] * cal["usd_per_kwh"] / 3.6e6  # USD/s
        capex_h, usd_per_it_kwh = owned_rates(x["capex_usd"], cal)
        it_kw = (power + cal["host_power_w"] * chips_total) * 1e-3  # kW: the chips and their hosts' shares
        server = (capex_h * chips_total + it_kw * usd_per_it_kwh) / 3600.0  # USD/s
        owned = np.where(x["hosted"] > 0, server, device)
        if "rental_only" in x:  # a row that asked for rental has no owned cost in place of a missing price
            owned = np.where(x["rental_only"] > 0, np.nan, owned)
        usd_s = np.where(rented, usd_s, owned)
    return {"usd_per_million_tokens": usd_s / out_tps * 1e6, "unit_cost_usd": x["purchase_usd"] * chips_total}


def cost_basis(usd_per_hour: Array, usd_per_million_tokens: Array) -> Array:
    """The basis of each serving row's cost (`serving_economics`), as codes into COST_BASES: 0 rental (the chips'
    rental price), 1 owned (what owning them costs), NaN where no cost was computed. A label of the outputs, not part
    of the core's arithmetic: the rows' writers derive it."""
    owned = np.where(np.isfinite(np.asarray(usd_per_hour, dtype=np.float64)), 0.0, 1.0)
    return np.where(np.isfinite(np.asarray(usd_per_million_tokens, dtype=np.float64)), owned, np.nan)


def cal_at(cal: Mapping[str, Any], key: str, rows: Array) -> Any:
    """A calibration value for the given rows (cal values are per-row arrays or scalars)."""
    v = cal[key]
    return v[rows] if np.ndim(v) else v


def reason_text(mask: Array) -> np.ndarray:
    """Readable reasons for each mask value ('' when feasible); computed once per distinct mask."""
    uniq, inv = np.unique(np.asarray(mask, dtype=np.int64), return_inverse=True)
    texts = ["; ".join(msg for bit, msg in REASONS.items() if u & bit) for u in uniq.tolist()]
    return np.asarray(texts, dtype=object)[inv.reshape(-1)]
