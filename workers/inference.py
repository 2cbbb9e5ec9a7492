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

Array = np.ndarray

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
    with np.errstate(all="ignore"):  # NaN/inf mark blank or infeasible rows; they are masked, not warned about
        return _evaluate(x, cal)


def _evaluate(x: Mapping[str, Array], cal: Mapping[str, Any]) -> dict[str, Array]:
    L, h = x["layers"], x["hidden"]
    mask = np.asarray(x["pre_mask"], dtype=np.int64).copy()
    p, g = x["prompt_len"], x["gen_len"]  # tokens
    act_b = x["act_bytes"]  # bytes per activation element

    # ---- bytes of the model and of one sequence (Pope et al. sec. 2) -------------------------------
    w_byte = x["weight_bits"] * (1.0 + x["quant_overhead"]) / 8.0  # bytes per weight, quantisation scales included
    w_all = x["params"] * w_byte  # bytes: every weight
    w_read = x["params_read"] * w_byte  # bytes read per step: the input embedding table is only indexed
    kv_tok = 0.25 * L * x["kv_dim"] * x["kv_bits"]  # bytes of K and V per context token per sequence: 2*L*kv*bits/8
    c_max = p + g  # tokens of context at the end of generation
    c_avg = p + 0.5 * g  # mean context while generating
    rows = np.maximum(p, 1.0)  # token positions one prefill pass holds
    act_rep = rows * h * (2.0 * act_b)  # bytes per sequence: layer input and output, replicated on every chip
    act_split = (rows * (x["n_proj"] - 1.0) * x["ffn"] + x["vocab"]) * act_b  # bytes per sequence, split over chips
    usable = x["mem_bytes"] * cal["mem_usable"]  # bytes per chip a runtime can use
    kvh = x["kv_heads"]

    # ---- chips: the row's, else the fewest SRAM-only chips that hold the model, else 1 ---------------
    t = x["n_chips"]
    blank_t = np.isnan(t)
    if blank_t.any():
        t = np.where(blank_t, 1.0, t)  # tensor-parallel chips
        auto = np.nonzero(blank_t & (x["sram_only"] > 0))[0]
        if auto.size:
            b1 = np.where(x["batch"][auto] >= 1, x["batch"][auto], 1.0)
            kv_all = kv_tok[auto] * c_max[auto]  # bytes of KV per sequence, all heads
            room = usable[auto] - b1 * act_rep[auto]  # bytes per chip after replicated activations
            t_split = np.ceil((w_all[auto] + b1 * (kv_all + act_split[auto])) / room)  # KV split (t <= kv_heads)
            room_rep = room - b1 * kv_all / kvh[auto]  # bytes per chip once each holds one whole KV head
            t_rep = np.maximum(np.ceil((w_all[auto] + b1 * act_split[auto]) / room_rep), kvh[auto] + 1.0)
            t_min = np.where(t_split <= kvh[auto], t_split, np.where(room_rep > 0, t_rep, np.nan))
            t[auto] = np.where((room > 0) & (t_min >= 1), t_min, 1.0)

    # ---- memory per chip and the batch -------------------------------------------------------------
    inv_t = 1.0 / t
    kv_chip = kv_tok * np.maximum(inv_t, 1.0 / kvh)  # bytes/token/seq on one chip (KV heads replicate past kv_heads)
    per_seq = kv_chip * c_max + act_rep + act_split * inv_t  # bytes per sequence on one chip
    w_chip = w_all * inv_t  # bytes of weights on one chip
    batch_blank = ~(x["batch"] >= 1)
    B = x["batch"]
    if batch_blank.any():
        b_max = np.floor((usable - w_chip) / per_seq)  # largest batch that fits
        B = np.where(batch_blank, np.maximum(b_max, 1.0), B)  # sequences
    mem = w_chip + B * per_seq  # bytes per chip
    fits = mem <= usable
    short = ~fits & (usable >= 0) & (mem >= 0)  # a published capacity that is too small (else R_NO_MEM)
    mask |= (short & batch_blank) * R_NOFIT | (short & ~batch_blank) * R_MEMORY
    mask |= ~((t >= 1) & (L > 0) & (x["params"] > 0)) * R_INPUT  # NaN compares False

    # ---- decode: one step makes one token for each of B sequences -----------------------------------
    inv_bw = 1.0 / (x["mem_bw"] * cal["mem_bw_fraction"])  # s per byte at the achievable bandwidth
    inv_flops = 1.0 / (x["peak_flops"] * cal["compute_fraction"])  # s per FLOP at the achievable rate
    att = 4.0 * L * x["q_dim"]  # attention FLOPs per token per context token (QK^T and AV)
    t_mem = (w_read + B * kv_chip * c_avg * t) * inv_t * inv_bw  # s: weights + each sequence's KV, per chip
    t_comp = B * (2.0 * x["params_read"] + att * c_avg) * inv_t * inv_flops  # s: 2N + attention FLOPs, per chip
    t_busy = np.maximum(t_mem, t_comp)  # s, roofline

    # ---- prefill: B prompts of p tokens in one pass --------------------------------------------------
    t_pre = np.maximum(B * p * (2.0 * x["params_read"] + 0.5 * att * p) * inv_t * inv_flops,  # s: 2NP + 2LP^2 d, causal
                       (w_read * inv_t + B * kv_chip * p) * inv_bw)  # s: weights once, KV written

    # ---- tensor-parallel all-reduces on the scale-up link (Megatron sec. 3; ring, Patarasuk & Yuan) ---
    t_step = t_busy  # s per decode step
    multi = np.nonzero(t > 1)[0]
    if multi.size:
        tm = t[multi]
        link = np.where(tm <= x["up_domain"][multi], x["up_bw"][multi], x["out_bw"][multi]) * cal_at(cal, "link_fraction", multi)
        per_byte = 2.0 * (tm - 1.0) / tm / link  # s per all-reduced byte (ring: 2(t-1)/t of the message)
        lat = 2.0 * np.ceil(np.log2(tm)) * cal_at(cal, "link_latency_s", multi)  # s per all-reduce
        msg = B[multi] * h[multi] * act_b[multi]  # bytes: one token's layer output for the batch
        t_step = t_step.copy()
        t_step[multi] += 2.0 * L[multi] * (msg * per_byte + lat)  # s: 2 all-reduces per layer
        t_pre = t_pre.copy()
        t_pre[multi] += 2.0 * L[multi] * (msg * p[multi] * per_byte + lat)  # s: the prompt's activations

    # ---- energy: idle + dynamic share of TDP while busy ----------------------------------------------
    tdp = x["tdp_w"]
    idle = cal["idle_fraction"] * tdp  # W per chip
    if np.isfinite(x["idle_w"]).any():
        idle = np.where(np.isfinite(x["idle_w"]), x["idle_w"], idle)
    power = idle + (tdp - idle) * (t_busy / t_step)  # W per chip, averaged over a step
    energy_tok = power * t * t_step / B  # J per generated token (all chips of the replica)

    ok = np.where(mask == 0, 1.0, np.nan)  # NaN where infeasible
    prefill = p > 0
    return {
        "n_chips": t,
        "batch": B,
        "ttft_s": t_pre * prefill * ok,
        "prefill_tokens_per_s": np.where(prefill, p / t_pre, np.nan) * ok,
        "decode_tokens_per_s": ok / t_step,
        "throughput_tokens_per_s": B * ok / t_step,
        "energy_per_token_j": energy_tok * ok,
        "mem_gb": mem * 1e-9,
        "mem_limit_gb": usable * 1e-9,
        "unit_cost_usd": x["purchase_usd"] * t,
        "fits": fits,
        "decode_compute_bound": t_comp > t_mem,
        "reason_mask": mask,
    }


def cal_at(cal: Mapping[str, Any], key: str, rows: Array) -> Any:
    """A calibration value for the given rows (cal values are per-row arrays or scalars)."""
    v = cal[key]
    return v[rows] if np.ndim(v) else v


def reason_text(mask: Array) -> np.ndarray:
    """Readable reasons for each mask value ('' when feasible); computed once per distinct mask."""
    uniq, inv = np.unique(np.asarray(mask, dtype=np.int64), return_inverse=True)
    texts = ["; ".join(msg for bit, msg in REASONS.items() if u & bit) for u in uniq.tolist()]
    return np.asarray(texts, dtype=object)[inv.reshape(-1)]
