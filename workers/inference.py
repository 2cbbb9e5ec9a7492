"""LLM inference on catalog chips: prefill, decode, memory, energy per token, for millions of rows at once.

Sources (formulas cite them line by line):
- Pope et al. 2022, "Efficiently Scaling Transformer Inference" (arXiv:2211.05102) sec. 2: a decode step
  reads every weight once for the whole batch plus each sequence's KV cache; the larger of memory and
  compute time rules; prefill is compute-bound except at tiny prompts.
- Williams, Waterman & Patterson 2009, "Roofline" (CACM 52(4)): time = max(FLOPs / peak, bytes / bandwidth).
- Kaplan et al. 2020 (arXiv:2001.08361) sec. 2.1: forward FLOPs per token 2N + attention over the context;
  Narayanan et al. 2021 (arXiv:2104.04473): attention scores and values 4·s·h per token and layer (QK^T and
  A·V), so causal prefill of p tokens costs 2·L·p^2·h (training-notes.md "Inference (roofline)").
- Shoeybi et al. 2019 (Megatron-LM, arXiv:1909.08053) sec. 3: tensor-parallel inference all-reduces the
  layer output twice per layer (after attention and after the MLP); ring all-reduce times in workers/comm.py
  (Patarasuk & Yuan 2009).
- asic-notes.md sections 5-6 (reference set): achievable fractions u_m (memory) and u_c (compute),
  quantisation-scale overhead on weight bytes; GQA shrinks the KV cache by heads / kv_heads.
- Energy: power = idle + (TDP - idle) x the busy share of a step (Luccioni et al. 2022 and Touvron et al.
  2023 estimate energy from TDP; the idle share is a catalog assumption).

`evaluate(x, cal)` takes a dict of equal-length float64 arrays (keys in `INPUT_KEYS`) and the calibration
`cal` (arrays or scalars, keys in `CAL_KEYS`), and returns a dict of arrays. No loop over rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from workers import comm

Array = np.ndarray

WEIGHT_BITS = (4.0, 8.0, 16.0)
KV_BITS = (4.0, 8.0, 16.0)

# Bits of the infeasibility mask.
R_INPUT = 1  # missing or non-positive input
R_NO_PEAK = 2  # the chip publishes no compute peak at all
R_PRECISION = 4  # no peak for the precision the weights need (16-bit on an INT8-only chip)
R_NO_BW = 8  # memory bandwidth not published
R_NO_MEM = 16  # memory capacity not published
R_MEMORY = 32  # does not fit at the requested batch
R_NOFIT = 64  # does not fit at any batch (weights alone, or weights + one sequence)

REASONS: dict[int, str] = {
    R_INPUT: "missing or non-positive input",
    R_NO_PEAK: "chip publishes no compute peak: add a chip.peak_tflops_fp16 (or chip.peak_tops_int8) column",
    R_PRECISION: "chip publishes no 16-bit peak, so it cannot run weight_bits=16: use weight_bits 8 or 4, "
    "or add a chip.peak_tflops_fp16 column",
    R_NO_BW: "chip memory bandwidth not published: add a chip.memory_bandwidth_gb_s column",
    R_NO_MEM: "chip memory capacity not published: add a chip.memory_gb column",
    R_MEMORY: "does not fit in memory at this batch",
    R_NOFIT: "does not fit in memory at any batch",
}

INPUT_KEYS = (
    # model
    "layers", "hidden", "q_dim", "kv_dim", "kv_heads", "ffn", "n_proj", "vocab", "params", "params_read",
    # workload (n_chips, batch: NaN = choose)
    "n_chips", "weight_bits", "kv_bits", "batch", "prompt_len", "gen_len", "quant_overhead", "act_bytes",
    # chip, per chip (peak for the row's compute precision, FLOP/s)
    "peak_flops", "mem_bytes", "mem_bw", "up_bw", "up_domain", "out_bw", "tdp_w", "idle_w", "purchase_usd",
    "sram_only",
    # infeasibility found while assembling (bits above)
    "pre_mask",
)
CAL_KEYS = ("mem_bw_fraction", "compute_fraction", "idle_fraction", "link_fraction", "link_latency_s", "mem_usable")


def evaluate(x: Mapping[str, Array], cal: Mapping[str, Any]) -> dict[str, Array]:
    """Evaluate every row of `x`. Rows with reason bits keep NaN performance outputs."""
    L, h = x["layers"], x["hidden"]
    u_m, u_c = cal["mem_bw_fraction"], cal["compute_fraction"]
    mask = np.asarray(x["pre_mask"], dtype=np.int64).copy()
    p, g = x["prompt_len"], x["gen_len"]  # tokens
    act_b = x["act_bytes"]  # bytes per activation element

    # ---- bytes of the model and of one sequence (Pope et al. sec. 2) -------------------------------
    wbytes = x["weight_bits"] / 8.0 * (1.0 + x["quant_overhead"])  # bytes per weight, scales included
    w_all = x["params"] * wbytes  # bytes: every weight
    w_read = x["params_read"] * wbytes  # bytes read per step: the input embedding table is only indexed
    kv_tok = 2.0 * L * x["kv_dim"] * x["kv_bits"] / 8.0  # bytes of K and V per context token per sequence
    c_max = p + g  # tokens of context at the end of generation
    c_avg = p + g / 2.0  # mean context while generating
    rows = np.maximum(p, 1.0)  # token positions one prefill pass holds
    act_rep = rows * 2.0 * h * act_b  # bytes per sequence: layer input/output, replicated across chips
    act_split = (rows * (x["n_proj"] - 1.0) * x["ffn"] + x["vocab"]) * act_b  # bytes per sequence, split over chips
    usable = x["mem_bytes"] * cal["mem_usable"]  # bytes per chip a runtime can use

    # ---- chips: the row's, else the fewest SRAM-only chips that hold the model, else 1 ---------------
    b1 = np.where(np.isfinite(x["batch"]), x["batch"], 1.0)
    kvh = x["kv_heads"]
    room = usable - b1 * act_rep  # bytes per chip left after replicated activations
    t_split = np.ceil((w_all + b1 * (kv_tok * c_max + act_split)) / room)  # chips, KV split over them (t <= kv_heads)
    room_rep = usable - b1 * (act_rep + kv_tok * c_max / kvh)  # bytes per chip once each holds one KV head
    t_rep = np.ceil((w_all + b1 * act_split) / room_rep)  # chips, KV heads replicated (t > kv_heads)
    t_min = np.where(t_split <= kvh, t_split, np.where(room_rep > 0, np.maximum(t_rep, kvh + 1.0), np.nan))
    t_auto = np.where(x["sram_only"] > 0, np.where(room > 0, np.maximum(t_min, 1.0), 1.0), 1.0)
    t = np.where(np.isfinite(x["n_chips"]), x["n_chips"], np.where(np.isfinite(t_auto), t_auto, 1.0))  # TP chips

    # ---- memory per chip and the batch -------------------------------------------------------------
    kv_chip = kv_tok * np.maximum(1.0 / t, 1.0 / x["kv_heads"])  # bytes/token/seq on one chip (KV heads replicate past t > kv_heads)
    per_seq = kv_chip * c_max + act_rep + act_split / t  # bytes per sequence on one chip
    w_chip = w_all / t  # bytes of weights on one chip
    b_max = np.floor((usable - w_chip) / per_seq)  # largest batch that fits
    batch_blank = ~np.isfinite(x["batch"])
    B = np.where(batch_blank, np.maximum(b_max, 1.0), x["batch"])  # sequences
    mem = w_chip + B * per_seq  # bytes per chip
    fits = mem <= usable
    known = np.isfinite(usable) & np.isfinite(mem)  # capacity published (else R_NO_MEM from assembly)
    mask |= np.where(known & ~fits & batch_blank, R_NOFIT, 0)
    mask |= np.where(known & ~fits & ~batch_blank, R_MEMORY, 0)
    bad_in = ~(np.isfinite(t) & (t >= 1) & np.isfinite(L) & (L > 0) & np.isfinite(x["params"]) & (x["params"] > 0))
    mask |= np.where(bad_in, R_INPUT, 0)

    # ---- tensor-parallel all-reduce on the scale-up link (Megatron sec. 3) -------------------------
    link_bw = comm.group_link(t, x["up_domain"], x["up_bw"] * cal["link_fraction"], x["out_bw"] * cal["link_fraction"])
    lat = cal["link_latency_s"]

    # ---- decode: one step makes one token for each of B sequences -----------------------------------
    bytes_step = w_read / t + B * kv_chip * c_avg  # bytes read per chip per step
    flops_step = B * (2.0 * x["params_read"] + 4.0 * L * c_avg * x["q_dim"]) / t  # FLOPs per chip per step
    t_mem = bytes_step / (x["mem_bw"] * u_m)  # s
    t_comp = flops_step / (x["peak_flops"] * u_c)  # s
    t_ar = 2.0 * L * comm.allreduce_s(B * h * act_b, t, link_bw, lat)  # s: 2 all-reduces per layer
    t_busy = np.maximum(t_mem, t_comp)  # s, roofline
    t_step = t_busy + t_ar  # s per decode step

    # ---- prefill: B prompts of p tokens in one pass --------------------------------------------------
    flops_pre = B * (2.0 * x["params_read"] * p + 2.0 * L * p * p * x["q_dim"]) / t  # FLOPs per chip (causal)
    bytes_pre = w_read / t + B * kv_chip * p  # bytes per chip: weights once, KV written
    t_pre = np.maximum(flops_pre / (x["peak_flops"] * u_c), bytes_pre / (x["mem_bw"] * u_m))  # s
    t_pre = t_pre + 2.0 * L * comm.allreduce_s(B * p * h * act_b, t, link_bw, lat)  # s
    prefill = p > 0

    # ---- energy: idle + dynamic share of TDP while busy ----------------------------------------------
    idle = np.where(np.isfinite(x["idle_w"]), x["idle_w"], cal["idle_fraction"] * x["tdp_w"])  # W per chip
    power = idle + (x["tdp_w"] - idle) * t_busy / t_step  # W per chip, average over a step
    energy_tok = power * t * t_step / B  # J per generated token (all chips of the replica)

    bad = mask != 0
    nan = np.nan
    return {
        "n_chips": t,
        "batch": B,
        "ttft_s": np.where(bad, nan, np.where(prefill, t_pre, 0.0)),
        "prefill_tokens_per_s": np.where(bad | ~prefill, nan, p / t_pre),
        "decode_tokens_per_s": np.where(bad, nan, 1.0 / t_step),
        "throughput_tokens_per_s": np.where(bad, nan, B / t_step),
        "energy_per_token_j": np.where(bad, nan, energy_tok),
        "mem_gb": mem / 1e9,
        "mem_limit_gb": usable / 1e9,
        "unit_cost_usd": x["purchase_usd"] * t,
        "fits": fits,
        "decode_compute_bound": t_comp > t_mem,
        "bytes_per_step": bytes_step,
        "reason_mask": mask,
    }


def reason_text(mask: Array) -> np.ndarray:
    """Readable reasons for each mask value ('' when feasible); computed once per distinct mask."""
    uniq, inv = np.unique(np.asarray(mask, dtype=np.int64), return_inverse=True)
    texts = ["; ".join(msg for bit, msg in REASONS.items() if u & bit) for u in uniq.tolist()]
    return np.asarray(texts, dtype=object)[inv.reshape(-1)]


def assemble_inference(raw: dict[str, Array], ctx: Any, errors: Any = None) -> tuple[dict[str, Array], dict[str, Array]]:
    """Raw sweep/evaluate arrays -> (core inputs, calibration). The catalog glue lives in
    `workers.edge_rows`; this name is here so a sweep worker finds core and assembly in one module."""
    from workers.edge_rows import assemble_inference as _assemble

    return _assemble(raw, ctx, errors)
