"""A hypothetical edge-inference ASIC from first principles: area, dies per wafer, yield, cost, power,
TOPS/W, and what it does with an LLM (decode tokens/s, TTFT, energy per token), for millions of designs.

Sources (formulas cite them line by line; constants come from `schemas/catalog/asic.yaml`):
- asic-notes.md (the project's reference set): the recommended first-order model, sections 1-6.
- Hennessy & Patterson, "Computer Architecture: A Quantitative Approach", ch. 1: dies per wafer with the
  edge-loss term, die cost = wafer cost / (dies x yield), negative-binomial yield (after Stapper, IBM).
- B. Murphy, Proc. IEEE 52(12):1537, 1964 (Murphy yield); R. B. Seeds, 1967 (Seeds yield); Poisson yield.
- Cerebras, "100x Defect Tolerance: How Cerebras Solved the Yield Problem" (J. Wang, 2025): spare cores;
  the tile array yields when at most `spares` tiles are defective (binomial), the rest of the die by NB.
- A. Traidman, "The Key To Estimating Final Chip Cost", Electronic Design 2005; McFarland, "Microprocessor
  Design" (2006) p. 89: unit cost = (die + test + package) / final-test yield.
- Energy per MAC from measured NPUs (Simba, Zimmer VLSI 2019; Samsung ISSCC 2019/2021, JSSC 2023) and
  DRAM/SRAM energy per bit (asic_constants.yaml); leakage as a fraction of peak dynamic power.
- Williams, Waterman & Patterson 2009, "Roofline" (CACM 52(4)); Kaplan et al. 2020 (arXiv:2001.08361)
  sec. 2.1 forward FLOPs per token; Pope et al. 2022 (arXiv:2211.05102) sec. 2 decode bytes per step.
- Abramowitz & Stegun 7.1.26: erf, for the normal approximation of a binomial with many spares.

`evaluate(x, k)` takes equal-length float64 arrays `x` (keys in `INPUT_KEYS`; choices as indices into the
tuples below) and the constants `k` of `constants()`; it returns a dict of arrays. No loop over designs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Array = np.ndarray

DRAM_TYPES = ("lpddr4x", "lpddr5", "lpddr5x", "hbm2e", "hbm3", "none")
ASIC_PRECISIONS = ("int4", "int8", "fp16")
PRECISION_BITS = (4.0, 8.0, 16.0)
YIELD_MODELS = ("negative_binomial", "poisson", "murphy", "seeds")
ARCHS = ("npu", "gpu")
_HBM = (DRAM_TYPES.index("hbm2e"), DRAM_TYPES.index("hbm3"))
_NONE = DRAM_TYPES.index("none")

# Bits of the infeasibility mask.
R_INPUT = 1
R_NODE = 2
R_PRECISION = 4
R_RETICLE = 8
R_WAFER = 16
R_MEMORY = 32
R_NOFIT = 64
R_TILES = 128

REASONS: dict[int, str] = {
    R_INPUT: "missing or non-positive design input",
    R_NODE: "node_nm outside the sourced constant tables (3-16 nm)",
    R_PRECISION: "the design precision cannot run the workload's weight_bits",
    R_RETICLE: "die larger than the reticle (858 mm^2) without redundancy: declare spare_tiles and tiles",
    R_WAFER: "redundant design larger than a wafer-scale die (46,225 mm^2)",
    R_TILES: "spare_tiles needs tiles (active tiles, an integer >= 1)",
    R_NOFIT: "the model does not fit the memory system at any batch",
    R_MEMORY: "the model does not fit the memory system at this batch",
}

# Bits of the notes mask (informational, the row stays feasible).
N_NODE_INTERP = 1
N_HBM = 2
N_WAFER_SCALE = 4
N_BINOM_NORMAL = 8
N_GPU = 16
N_NO_DRAM_BW = 32

NOTES: dict[int, str] = {
    N_NODE_INTERP: "node between table nodes: energy, area, SRAM density, wafer price and D0 interpolated (power law in the node)",
    N_HBM: "HBM: PHY area, package and $/GB extrapolated from LPDDR/high-performance-package numbers (no HBM values in the reference set)",
    N_WAFER_SCALE: "wafer-scale path: one die per wafer, binomial tile yield with spares x NB yield of the rest",
    N_BINOM_NORMAL: "more than 64 spare tiles: binomial tile yield by the normal approximation",
    N_GPU: "arch gpu: full-load power x gpu_power_factor (fitted on A100/H100 TDP)",
    N_NO_DRAM_BW: "no DRAM: weights and KV cache held in on-chip SRAM, SRAM bandwidth not modelled",
}

INPUT_KEYS = (
    # design
    "node_nm", "n_mac", "clock_ghz", "sram_mb", "dram", "dram_bus_bits", "dram_mt_s", "dram_gb", "precision",
    "arch", "yield_model", "d0_per_cm2", "spare_tiles", "tiles",
    # workload (NaN where the row has no model)
    "has_model", "layers", "hidden", "q_dim", "kv_dim", "ffn", "n_proj", "vocab", "params", "params_read",
    "weight_bits", "kv_bits", "batch", "prompt_len", "gen_len", "quant_overhead", "act_bytes",
    # infeasibility found while assembling (bits above)
    "pre_mask",
)

EXACT_SPARES = 64  # spare counts up to this are summed exactly; above, the normal approximation


def constants(asic: Mapping[str, Any]) -> dict[str, Any]:
    """`catalog.asic['asic']` (value/source/status entries) -> the plain numbers and node grids `evaluate` uses."""

    def v(name: str) -> Any:
        return asic[name]["value"]

    def grid(name: str) -> tuple[Array, Array]:
        table = {float(n): float(val) for n, val in v(name).items()}
        nodes = np.array(sorted(table))
        return np.log(nodes), np.log(np.array([table[n] for n in nodes]))

    k: dict[str, Any] = {}
    for name in ("mac_energy_int8_pj", "mac_area_int8_um2", "sram_macro_density_mb_per_mm2", "wafer_price_usd",
                 "defect_density_per_cm2"):
        k[name] = grid(name)
    nodes = np.concatenate([np.exp(k[n][0]) for n in k])
    k["node_min"], k["node_max"] = float(nodes.min()), float(nodes.max())
    k["table_nodes"] = np.exp(k["mac_energy_int8_pj"][0])
    k["mac_energy_ratio"] = np.array([float(v("mac_energy_ratio")[p]) for p in ASIC_PRECISIONS])
    k["mac_area_ratio"] = np.array([float(v("mac_area_ratio")[p]) for p in ASIC_PRECISIONS])
    dram_e, dram_r = v("dram_energy_pj_per_bit"), v("dram_rate_mt_s")
    k["dram_pj_bit"] = np.array([float(dram_e.get(d, 0.0)) for d in DRAM_TYPES])
    k["dram_mt_s"] = np.array([float(dram_r.get(d, 0.0)) for d in DRAM_TYPES])
    pkg = v("package_usd")
    k["package_usd"] = np.array([
        float(pkg["none"] if d == "none" else pkg["hbm"] if d.startswith("hbm") else pkg["lpddr"]) for d in DRAM_TYPES
    ])
    q = v("quant_overhead")
    k["quant_overhead"] = {int(b): float(val) for b, val in q.items()}
    for name in ("sram_energy_pj_per_bit", "leakage_fraction", "misc_power_density_ratio", "gpu_power_factor",
                 "sram_realized_density_factor", "dram_phy_area_mm2_per_x32", "misc_area_mm2", "reticle_mm2",
                 "wafer_scale_max_mm2", "wafer_diameter_mm", "edge_exclusion_mm", "scribe_mm", "yield_alpha",
                 "wafer_yield", "test_usd", "final_test_yield", "dram_usd_per_gb", "compute_fraction",
                 "mem_bw_fraction", "clock_ghz_default"):
        k[name] = float(v(name))
    return k


# ---------------------------------------------------------------------------------------------------
# wafer, yield (each usable on its own: the asic-notes checks call them directly)
# ---------------------------------------------------------------------------------------------------
def dies_per_wafer(area_mm2: Array, k: Mapping[str, Any]) -> Array:
    """Gross dies per wafer, rounded to the nearest die (H&P ch. 1; asic-notes section 2)."""
    d = k["wafer_diameter_mm"] - 2.0 * k["edge_exclusion_mm"]  # mm, usable diameter
    s = (np.sqrt(area_mm2) + k["scribe_mm"]) ** 2  # mm^2 per die site, scribe included
    return np.round(np.pi * (d / 2.0) ** 2 / s - np.pi * d / np.sqrt(2.0 * s))  # dies: area term - edge loss


def defect_yield(area_mm2: Array, d0_per_cm2: Array, model: Array, alpha: float) -> Array:
    """Fraction of dies without a killer defect; model is an index into YIELD_MODELS (asic-notes section 3)."""
    ad = np.maximum(area_mm2 / 100.0 * d0_per_cm2, 1e-300)  # expected defects per die
    nb = (1.0 + ad / alpha) ** (-alpha)  # negative binomial (Stapper; H&P)
    poisson = np.exp(-ad)  # Poisson
    murphy = ((1.0 - np.exp(-ad)) / ad) ** 2  # Murphy 1964
    seeds = np.exp(-np.sqrt(ad))  # Seeds 1967
    return np.choose(np.clip(model, 0, 3).astype(np.int64), [nb, poisson, murphy, seeds])


def _erf(z: Array) -> Array:
    """erf(z), |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26)."""
    s = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def binomial_cdf(k_max: Array, n: Array, p: Array) -> Array:
    """P[X <= k_max] for X ~ Binomial(n, p): exact up to EXACT_SPARES, normal approximation with continuity
    correction above (there n*p is large, where it is accurate). Loops over the spare count, not the rows."""
    k_max, n, p = np.broadcast_arrays(np.asarray(k_max, float), np.asarray(n, float), np.asarray(p, float))
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    exact = k_max <= EXACT_SPARES
    out = np.empty(k_max.shape)
    if exact.any():
        kk, nn, pp = k_max[exact], n[exact], p[exact]
        log_pmf = nn * np.log1p(-pp)  # log P[X = 0]
        odds = np.log(pp) - np.log1p(-pp)
        cdf = np.exp(log_pmf)
        for j in range(int(kk.max())):  # P[X = j+1] = P[X = j] * (n-j)/(j+1) * p/(1-p)
            log_pmf = log_pmf + np.log(np.maximum(nn - j, 1e-300)) - np.log(j + 1.0) + odds
            cdf = cdf + np.where(kk > j, np.exp(log_pmf), 0.0)
        out[exact] = np.minimum(cdf, 1.0)
    if (~exact).any():
        kk, nn, pp = k_max[~exact], n[~exact], p[~exact]
        z = (kk + 0.5 - nn * pp) / np.sqrt(nn * pp * (1.0 - pp))  # standard normal score, continuity-corrected
        out[~exact] = 0.5 * (1.0 + _erf(z / np.sqrt(2.0)))
    return out


def _node_value(ln_node: Array, table: tuple[Array, Array]) -> Array:
    """A per-node constant at any node inside the table: a power law between neighbouring table nodes."""
    return np.exp(np.interp(ln_node, table[0], table[1]))


# ---------------------------------------------------------------------------------------------------
# the design, then the workload
# ---------------------------------------------------------------------------------------------------
def evaluate(x: Mapping[str, Array], k: Mapping[str, Any]) -> dict[str, Array]:
    """Evaluate every design in `x` (equal-length arrays) with the constants `k`. No Python loop over rows."""
    node = x["node_nm"]
    n_mac, f = x["n_mac"], x["clock_ghz"] * 1e9  # MACs, Hz
    prec = np.clip(np.nan_to_num(x["precision"], nan=1.0), 0, 2).astype(np.int64)
    dram = np.clip(np.nan_to_num(x["dram"], nan=float(_NONE)), 0, _NONE).astype(np.int64)
    has_dram = dram != _NONE
    bus = np.where(has_dram, x["dram_bus_bits"], 0.0)  # bits
    mask = np.asarray(x["pre_mask"], dtype=np.int64).copy()
    notes = np.zeros(node.shape, dtype=np.int64)

    in_table = (node >= k["node_min"] - 1e-9) & (node <= k["node_max"] + 1e-9)
    mask |= np.where(~in_table, R_NODE, 0)
    on_grid = np.isin(np.round(node, 6), np.round(k["table_nodes"], 6))
    notes |= np.where(in_table & ~on_grid, N_NODE_INTERP, 0)
    ln_node = np.log(np.clip(node, k["node_min"], k["node_max"]))
    mask |= np.where(~(np.isfinite(n_mac) & (n_mac > 0) & np.isfinite(f) & (f > 0)), R_INPUT, 0)

    # ---- area (asic-notes section 1) --------------------------------------------------------------
    a_mac = _node_value(ln_node, k["mac_area_int8_um2"]) * k["mac_area_ratio"][prec]  # um^2 per MAC
    area_mac = n_mac * a_mac * 1e-6  # mm^2: MAC array incl. local buffers and control
    rho = _node_value(ln_node, k["sram_macro_density_mb_per_mm2"])  # Mb/mm^2, HD macro peak
    area_sram = 8.0 * x["sram_mb"] / (rho * k["sram_realized_density_factor"])  # mm^2: A = 8*MB / (rho*eta)
    area_phy = np.ceil(bus / 32.0) * k["dram_phy_area_mm2_per_x32"]  # mm^2: one PHY per x32 port
    area_misc = np.full(node.shape, k["misc_area_mm2"])  # mm^2: control CPU, NoC, IO, pads
    spares = np.nan_to_num(x["spare_tiles"], nan=0.0)  # spare tiles
    tiles = x["tiles"]  # active tiles
    redundant = spares > 0
    mask |= np.where(redundant & ~(np.isfinite(tiles) & (tiles >= 1)), R_TILES, 0)
    tiles = np.where(np.isfinite(tiles) & (tiles >= 1), tiles, 1.0)
    area_tiled = (area_mac + area_sram) * np.where(redundant, (tiles + spares) / tiles, 1.0)  # mm^2, spares built in
    area = area_tiled + area_phy + area_misc  # mm^2 per die
    notes |= np.where(np.isin(dram, _HBM), N_HBM, 0)

    # ---- dies per wafer and yield (sections 2-3) --------------------------------------------------
    wafer_scale = redundant & (area > k["reticle_mm2"])
    mask |= np.where(~redundant & (area > k["reticle_mm2"]), R_RETICLE, 0)
    mask |= np.where(wafer_scale & (area > k["wafer_scale_max_mm2"]), R_WAFER, 0)
    notes |= np.where(wafer_scale, N_WAFER_SCALE, 0)
    dpw = np.where(wafer_scale, 1.0, dies_per_wafer(area, k))  # dies per wafer
    d0 = np.where(np.isfinite(x["d0_per_cm2"]), x["d0_per_cm2"], _node_value(ln_node, k["defect_density_per_cm2"]))
    ymodel = np.nan_to_num(x["yield_model"], nan=0.0)
    y_rest = defect_yield(np.where(redundant, area_phy + area_misc, area), d0, ymodel, k["yield_alpha"])  # NB etc.
    if redundant.any():
        r = np.nonzero(redundant)[0]
        p_tile = 1.0 - np.exp(-area_tiled[r] / (tiles[r] + spares[r]) / 100.0 * d0[r])  # P[tile defective], Poisson
        y_tiles = binomial_cdf(spares[r], tiles[r] + spares[r], p_tile)  # P[defective tiles <= spares]
        y_rest[r] = y_rest[r] * y_tiles
        notes[r] |= np.where(spares[r] > EXACT_SPARES, N_BINOM_NORMAL, 0)
    die_yield = k["wafer_yield"] * y_rest  # fraction of gross dies that work (Y_wafer x defect yield)

    # ---- cost (section 4) -------------------------------------------------------------------------
    wafer_usd = _node_value(ln_node, k["wafer_price_usd"])  # USD per wafer
    die_cost = wafer_usd / (dpw * die_yield)  # USD per good die
    unit_chip = (die_cost + k["test_usd"] + k["package_usd"][dram]) / k["final_test_yield"]  # USD, packaged + tested

    # ---- peaks and full-load power (sections 5-6) -------------------------------------------------
    peak_ops = 2.0 * n_mac * f  # ops/s at the design precision (1 MAC = 2 ops)
    rate = np.where(np.isfinite(x["dram_mt_s"]), x["dram_mt_s"], k["dram_mt_s"][dram])  # MT/s per pin
    bw = rate * 1e6 * bus / 8.0  # bytes/s, peak DRAM bandwidth
    e_mac = _node_value(ln_node, k["mac_energy_int8_pj"]) * k["mac_energy_ratio"][prec] * 1e-12  # J per MAC
    e_dram = k["dram_pj_bit"][dram] * 1e-12  # J per DRAM bit
    e_sram = k["sram_energy_pj_per_bit"] * 1e-12  # J per SRAM bit
    p_mac = n_mac * f * e_mac  # W, every MAC busy
    p_dram = bw * k["mem_bw_fraction"] * 8.0 * e_dram  # W, DRAM streaming at its achievable rate
    p_misc = k["misc_power_density_ratio"] * p_mac / np.maximum(area_mac, 1e-12) * area_misc  # W, misc block
    p_dyn_peak = p_mac + p_dram + p_misc  # W, dynamic at full load
    p_leak = k["leakage_fraction"] * p_dyn_peak  # W, leakage (fraction of peak dynamic)
    gpu = np.nan_to_num(x["arch"], nan=0.0) == ARCHS.index("gpu")
    arch_k = np.where(gpu, k["gpu_power_factor"], 1.0)  # GPU-style datapath overhead
    notes |= np.where(gpu, N_GPU, 0)
    p_full = (p_dyn_peak + p_leak) * arch_k  # W at full load
    tops_per_w = peak_ops / 1e12 / p_full  # TOP/s per W

    # ---- workload: memory (Pope et al. sec. 2; asic-notes section 6) ------------------------------
    has_model = np.nan_to_num(x["has_model"], nan=0.0) > 0
    L, h = x["layers"], x["hidden"]
    wb = np.where(np.isfinite(x["weight_bits"]), x["weight_bits"], np.asarray(PRECISION_BITS)[prec])  # bits
    mask |= np.where(has_model & (wb > np.asarray(PRECISION_BITS)[prec] + 1e-9), R_PRECISION, 0)
    qo = x["quant_overhead"]
    w_all = x["params"] * wb / 8.0 * (1.0 + qo)  # bytes: every weight, quantisation scales included
    w_read = x["params_read"] * wb / 8.0 * (1.0 + qo)  # bytes read per decode step (no input-embedding table)
    kv_tok = 2.0 * L * x["kv_dim"] * x["kv_bits"] / 8.0  # bytes of K and V per context token per sequence
    p_len, g_len = x["prompt_len"], x["gen_len"]
    c_max = p_len + g_len  # tokens of context at the end
    c_avg = p_len + g_len / 2.0  # mean context while generating
    act = (np.maximum(p_len, 1.0) * (2.0 * h + (x["n_proj"] - 1.0) * x["ffn"]) + x["vocab"]) * x["act_bytes"]  # bytes/seq
    per_seq = kv_tok * c_max + act  # bytes per sequence
    sram_b = x["sram_mb"] * 1e6  # bytes on chip
    dram_given = np.isfinite(x["dram_gb"])
    sized = has_dram & ~dram_given  # DRAM capacity chosen to fit the workload
    cap = sram_b + np.where(has_dram & dram_given, x["dram_gb"] * 1e9, 0.0)  # bytes when capacity is fixed
    batch_blank = ~np.isfinite(x["batch"])
    b_max = np.floor((cap - w_all) / per_seq)  # largest batch that fits a fixed capacity
    B = np.where(batch_blank, np.where(sized, 1.0, np.maximum(b_max, 1.0)), x["batch"])  # sequences
    need = w_all + B * per_seq  # bytes of weights + KV cache + activations
    fits = sized | (need <= cap)
    mask |= np.where(has_model & ~fits & batch_blank, R_NOFIT, 0)
    mask |= np.where(has_model & ~fits & ~batch_blank, R_MEMORY, 0)
    given_gb = np.where(has_dram & dram_given, x["dram_gb"], 0.0)  # GB the row fixed (0 without DRAM)
    dram_gb = np.where(sized & has_model, np.maximum(need - sram_b, 0.0) / 1e9, given_gb)  # GB bundled
    unit_cost = unit_chip + dram_gb * k["dram_usd_per_gb"]  # USD, chip + bundled DRAM

    # ---- workload: where the bytes come from ------------------------------------------------------
    all_on_chip = need <= sram_b
    notes |= np.where(has_model & ~has_dram, N_NO_DRAM_BW, 0)
    w_sram = np.where(all_on_chip, w_read, np.minimum(w_read, sram_b))  # bytes of weights resident on chip
    kv_step = B * kv_tok * c_avg  # bytes of KV cache read per decode step
    dram_step = np.where(all_on_chip, 0.0, w_read - w_sram + kv_step)  # bytes from DRAM per step
    sram_step = w_sram + np.where(all_on_chip, kv_step, 0.0)  # bytes from SRAM per step
    safe_bw = np.where(bw > 0, bw * k["mem_bw_fraction"], np.inf)  # bytes/s achievable

    # ---- decode and prefill roofline (section 6) --------------------------------------------------
    flops_step = B * (2.0 * x["params_read"] + 4.0 * L * c_avg * x["q_dim"])  # FLOPs per step (Kaplan + attention)
    t_comp = flops_step / (peak_ops * k["compute_fraction"])  # s
    t_mem = dram_step / safe_bw  # s
    t_step = np.maximum(t_comp, t_mem)  # s per decode step (roofline)
    flops_pre = B * (2.0 * x["params_read"] * p_len + 2.0 * L * p_len**2 * x["q_dim"])  # FLOPs, causal prefill
    t_pre = np.maximum(flops_pre / (peak_ops * k["compute_fraction"]), (w_read - w_sram) / safe_bw)  # s
    ttft = np.where(p_len > 0, t_pre, 0.0)  # s: the prefill pass emits the first token

    # ---- energy per token and decode power (section 5) --------------------------------------------
    e_step = (flops_step / 2.0 * e_mac + dram_step * 8.0 * e_dram + sram_step * 8.0 * e_sram) * arch_k  # J dynamic
    e_step = e_step + (p_leak + p_misc) * arch_k * t_step  # J: + leakage and misc over the step
    energy_tok = e_step / B  # J per generated token
    power = e_step / t_step  # W while decoding

    bad = mask != 0
    design_bad = (mask & (R_INPUT | R_NODE | R_TILES)) != 0
    fab_bad = design_bad | ((mask & (R_RETICLE | R_WAFER)) != 0)
    nan = np.nan
    work = has_model & ~bad
    return {
        "die_area_mm2": np.where(design_bad, nan, area),
        "area_mac_mm2": area_mac,
        "area_sram_mm2": area_sram,
        "area_phy_mm2": area_phy,
        "area_misc_mm2": area_misc,
        "dies_per_wafer": np.where(fab_bad, nan, dpw),
        "defect_yield": np.where(fab_bad, nan, y_rest),
        "yield": np.where(fab_bad, nan, die_yield),
        "die_cost_usd": np.where(fab_bad, nan, die_cost),
        "unit_cost_usd": np.where(fab_bad, nan, unit_cost),
        "dram_gb": dram_gb,
        "peak_tops": np.where((mask & (R_INPUT | R_TILES)) != 0, nan, peak_ops / 1e12),
        "full_load_power_w": np.where(design_bad, nan, p_full),
        "tops_per_w": np.where(design_bad, nan, tops_per_w),
        "power_w": np.where(work, power, nan),
        "decode_tokens_per_s": np.where(work, 1.0 / t_step, nan),
        "ttft_s": np.where(work, ttft, nan),
        "energy_per_token_j": np.where(work, energy_tok, nan),
        "mem_gb": np.where(has_model, need / 1e9, nan),
        "batch": np.where(has_model, B, nan),
        "weight_bits": np.where(has_model, wb, nan),
        "fits": np.where(has_model, fits, True),
        "reason_mask": mask,
        "note_mask": notes,
    }


def reason_text(mask: Array) -> np.ndarray:
    """Readable reasons for each mask value ('' when feasible); computed once per distinct mask."""
    uniq, inv = np.unique(np.asarray(mask, dtype=np.int64), return_inverse=True)
    texts = ["; ".join(msg for bit, msg in REASONS.items() if u & bit) for u in uniq.tolist()]
    return np.asarray(texts, dtype=object)[inv.reshape(-1)]


def note_text(mask: Array) -> np.ndarray:
    uniq, inv = np.unique(np.asarray(mask, dtype=np.int64), return_inverse=True)
    texts = ["; ".join(msg for bit, msg in NOTES.items() if u & bit) for u in uniq.tolist()]
    return np.asarray(texts, dtype=object)[inv.reshape(-1)]


def assemble_asic(raw: dict[str, Array], ctx: Any, errors: Any = None) -> tuple[dict[str, Array], dict[str, Any]]:
    """Raw sweep/evaluate arrays -> (core inputs, constants). The catalog glue lives in `workers.edge_rows`;
    this name is here so a sweep worker finds core and assembly in one module."""
    from workers.edge_rows import assemble_asic as _assemble

    return _assemble(raw, ctx, errors)
