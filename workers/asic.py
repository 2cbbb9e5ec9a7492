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
- The normal approximation (continuity-corrected) of a binomial with many spares (Feller, vol. 1, ch. VII).

`evaluate(x, k)` takes equal-length float64 arrays `x` (keys in `INPUT_KEYS`; choices as indices into the
vocabularies of `schemas/vocab.py`) and the constants `k` of `constants()`; it returns a dict of arrays. No
loop over designs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from chipsweep.schemas.catalog import Catalog
from chipsweep.schemas.vocab import ARCHS, ASIC_PRECISIONS, DRAM_TYPES
from chipsweep.workers.bits import flag

Array = np.ndarray

PRECISION_BITS = (4.0, 8.0, 16.0)
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
R_DRAM_CAP = 256  # the DRAM the workload needs is more than the bus's interfaces hold

REASONS: dict[int, str] = {
    R_INPUT: "missing or non-positive design input",
    R_NODE: "node_nm outside the sourced constant tables (3-16 nm)",
    R_PRECISION: "the design precision cannot run the workload's weight_bits",
    R_RETICLE: "die larger than the reticle (858 mm^2) without redundancy: declare spare_tiles and tiles",
    R_WAFER: "redundant design larger than a wafer-scale die (46,225 mm^2)",
    R_TILES: "spare_tiles needs tiles (active tiles, an integer >= 1)",
    R_NOFIT: "the model does not fit the memory system at any batch",
    R_MEMORY: "the model does not fit the memory system at this batch",
    R_DRAM_CAP: "the DRAM the workload needs is more than the bus's interfaces hold (asic.yaml "
    "dram_max_gb_per_interface): widen dram_bus_bits",
}

# Bits of the notes mask (informational, the row stays feasible).
N_NODE_INTERP = 1
N_HBM = 2
N_WAFER_SCALE = 4
N_BINOM_NORMAL = 8
N_GPU = 16
N_NO_DRAM_BW = 32
N_FAST_CLOCK = 64
N_NO_WORKLOAD = 128
CLOCK_MEASURED_GHZ = 1.5  # the top of the clocks the energy and area tables' silicon ran at (asic-notes sec. 8)

NOTES: dict[int, str] = {
    N_NODE_INTERP: "node between table nodes: energy, area, SRAM density, wafer price and D0 interpolated (linearly in the node)",
    N_HBM: "HBM: PHY area and package extrapolated from LPDDR/high-performance-package numbers (no HBM values in the reference set); $/GB from TrendForce's HBM-to-DDR5 price ratio, low confidence",
    N_WAFER_SCALE: "wafer-scale path: one die per wafer, binomial tile yield with spares x NB yield of the rest",
    N_BINOM_NORMAL: "more than 64 spare tiles: binomial tile yield by the normal approximation",
    N_GPU: "arch gpu: full-load power x gpu_power_factor (fitted on A100/H100 TDP)",
    N_NO_DRAM_BW: "no DRAM: weights and KV cache held in on-chip SRAM, SRAM bandwidth not modelled",
    N_FAST_CLOCK: "clock above the 0.5-1.5 GHz the energy and area tables were measured at: energy per MAC and MAC "
                  "area are a ~1 GHz design's (a faster clock needs a higher voltage, not charged): TOPS/W, J/token "
                  "and die area optimistic",
    N_NO_WORKLOAD: "no workload (no model, or its shapes incomplete): the design alone (area, yield, unit cost, peak, power); speed, energy "
                   "per token and fits need a model",
}

INPUT_KEYS = (
    # design
    "node_nm", "n_mac", "clock_ghz", "sram_mb", "dram", "dram_bus_bits", "dram_mt_s", "dram_gb", "precision",
    "arch", "yield_model", "d0_per_cm2", "spare_tiles", "tiles",
    # workload (NaN where the row has no model)
    "has_model", "layers", "hidden", "q_dim", "kv_dim", "ffn", "n_proj", "vocab", "params", "params_read", "w_dense",
    "w_expert", "moe_topk", "moe_experts",
    "weight_bits", "kv_bits", "batch", "prompt_len", "gen_len", "quant_overhead", "act_bytes",
    # infeasibility found while assembling (bits above)
    "pre_mask",
)

EXACT_SPARES = 64  # spare counts up to this are summed exactly; above, the normal approximation


NODE_TABLES = Catalog.ASIC_NODE_TABLES


def constants(asic: Mapping[str, Any]) -> dict[str, Any]:
    """`catalog.asic['asic']` (value/source/status entries) -> the plain numbers `evaluate` uses. Per-node
    tables become one (table, segment) array of intercepts and slopes over the nodes all tables share."""

    def v(name: str) -> Any:
        return asic[name]["value"]

    tables = [{float(n): float(val) for n, val in v(name).items()} for name in NODE_TABLES]
    nodes = sorted(set.intersection(*(set(t) for t in tables)))
    k: dict[str, Any] = {"table_nodes": np.array(nodes), "node_min": nodes[0], "node_max": nodes[-1]}
    lo, hi = np.array(nodes[:-1]), np.array(nodes[1:])
    vals = np.array([[t[n] for n in nodes] for t in tables])  # (table, node)
    slope = (vals[:, 1:] - vals[:, :-1]) / (hi - lo)  # per nm, (table, segment)
    k["node_c0"], k["node_c1"] = vals[:, :-1] - slope * lo, slope  # value = c0 + c1 * node on each segment
    k["mac_energy_ratio"] = np.array([float(v("mac_energy_ratio")[p]) for p in ASIC_PRECISIONS])
    k["mac_area_ratio"] = np.array([float(v("mac_area_ratio")[p]) for p in ASIC_PRECISIONS])
    dram_e, dram_r = v("dram_energy_pj_per_bit"), v("dram_rate_mt_s")
    k["dram_pj_bit"] = np.array([float(dram_e.get(d, 0.0)) for d in DRAM_TYPES])
    k["dram_mt_s"] = np.array([float(dram_r.get(d, 0.0)) for d in DRAM_TYPES])
    # GB per bus bit: the least capacity a type's interface comes in over its width (0: no floor)
    floor, width = v("dram_min_gb_per_interface"), v("dram_interface_bits")
    k["dram_min_gb_per_bit"] = np.array([float(floor.get(d, 0.0)) / float(width.get(d, 1)) for d in DRAM_TYPES])
    k["dram_width"] = np.array([float(width.get(d, 1)) for d in DRAM_TYPES])  # bits of one interface
    # ... and the most (inf: no ceiling published for the type)
    most = v("dram_max_gb_per_interface")
    k["dram_max_gb_per_bit"] = np.array([float(most[d]) / float(width.get(d, 1)) if d in most else np.inf
                                         for d in DRAM_TYPES])
    price = v("dram_usd_per_gb")  # per DRAM type (one number: every type at it)
    k["dram_usd_per_gb"] = np.array([
        float(price if not isinstance(price, Mapping) else price.get(d, 0.0)) for d in DRAM_TYPES])
    pkg = v("package_usd")
    k["package_usd"] = np.array([
        float(pkg["none"] if d == "none" else pkg["hbm"] if d.startswith("hbm") else pkg["lpddr"]) for d in DRAM_TYPES
    ])
    q = v("quant_overhead")
    k["quant_overhead"] = {int(b): float(val) for b, val in q.items()}
    for name in ("sram_energy_pj_per_bit", "leakage_fraction", "misc_power_density_ratio", "gpu_power_factor",
                 "sram_realized_density_factor", "dram_phy_area_mm2_per_x32", "misc_area_mm2", "reticle_mm2",
                 "wafer_scale_max_mm2", "wafer_diameter_mm", "edge_exclusion_mm", "scribe_mm", "yield_alpha",
                 "wafer_yield", "test_usd", "final_test_yield", "compute_fraction",
                 "mem_bw_fraction", "clock_ghz_default"):
        k[name] = float(v(name))
    # um^2 per int8 MAC at the node the misc block's area is stated for: its gates, whatever the design's node
    ref = float(v("misc_reference_node_nm"))
    k["misc_ref_mac_area_um2"] = float(node_values(np.array([ref]), k)[NODE_TABLES.index("mac_area_int8_um2")][0])
    return k


def node_values(node: Array, k: Mapping[str, Any]) -> list[Array]:
    """Every per-node table at each row's node, linear between neighbouring table nodes (one array per table)."""
    c0, c1 = k["node_c0"], k["node_c1"]
    if node.size and node.min() == node.max():  # one node in the block: constants, broadcast
        seg0 = int(np.searchsorted(k["table_nodes"][1:-1], node[0], side="left"))
        return [np.full(node.shape, c0[t, seg0] + c1[t, seg0] * node[0]) for t in range(c0.shape[0])]
    seg = np.zeros(node.shape, dtype=np.intp)  # segment between table nodes
    for b in k["table_nodes"][1:-1]:  # a loop over the few table nodes, not over rows
        seg += node > b
    return [c0[t].take(seg) + c1[t].take(seg) * node for t in range(c0.shape[0])]


# ---------------------------------------------------------------------------------------------------
# wafer, yield (each usable on its own: the asic-notes checks call them directly)
# ---------------------------------------------------------------------------------------------------
def dies_per_wafer(area_mm2: Array, k: Mapping[str, Any]) -> Array:
    """Gross dies per wafer, rounded to the nearest die (H&P ch. 1; asic-notes section 2)."""
    d = k["wafer_diameter_mm"] - 2.0 * k["edge_exclusion_mm"]  # mm, usable diameter
    side = np.sqrt(area_mm2) + k["scribe_mm"]  # mm per die site, scribe included; S = side^2
    # DPW = pi (d/2)^2 / S - pi d / sqrt(2 S): the wafer area term minus the edge loss
    return np.round(np.pi * (d / 2.0) ** 2 / (side * side) - np.pi * d / np.sqrt(2.0) / side)


def defect_yield(area_mm2: Array, d0_per_cm2: Array, model: Array, alpha: float) -> Array:
    """Fraction of dies without a killer defect; model is an index into YIELD_MODELS (asic-notes section 3)."""
    base = area_mm2 * d0_per_cm2 * (0.01 / alpha) + 1.0  # 1 + A*D0/alpha (A in cm^2)
    if float(alpha).is_integer() and 1 <= alpha <= 8:  # integer power: multiplications, not pow()
        acc = base.copy()
        for _ in range(int(alpha) - 1):
            acc *= base
        y = 1.0 / acc  # negative binomial (Stapper; H&P)
    else:
        y = base ** (-alpha)  # negative binomial (Stapper; H&P)
    other = model != 0
    if other.any():
        r = np.nonzero(other)[0]
        ad = np.maximum(area_mm2[r] * d0_per_cm2[r] / 100.0, 1e-300)  # expected killer defects per die
        poisson = np.exp(-ad)  # Poisson
        murphy = (-np.expm1(-ad) / ad) ** 2  # Murphy 1964
        seeds = np.exp(-np.sqrt(ad))  # Seeds 1967
        y[r] = np.choose(model[r].astype(np.intp) - 1, [poisson, murphy, seeds])
    return y


_erf = np.frompyfunc(math.erf, 1, 1)  # exact erf; only rows with more than EXACT_SPARES spares reach it


def binomial_cdf(k_max: Array, n: Array, p: Array) -> Array:
    """P[X <= k_max] for X ~ Binomial(n, p): exact up to EXACT_SPARES, normal approximation with continuity
    correction above (there n*p is large, where it is accurate). Loops over the spare count, not the rows."""
    k_max, n, p = np.broadcast_arrays(np.asarray(k_max, float), np.asarray(n, float), np.asarray(p, float))
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    exact = k_max <= EXACT_SPARES
    out = np.empty(k_max.shape)
    if exact.any():
        kk, nn, pp = k_max[exact], n[exact], p[exact]
        pmf = np.exp(nn * np.log1p(-pp))  # P[X = 0] (underflows to 0 only where P[X <= 64] is negligible)
        odds = pp / (1.0 - pp)
        cdf = pmf.copy()
        same = kk.min() == kk.max()
        for j in range(int(kk.max())):  # a loop over the spare count, not the rows: P[X=j+1] = P[X=j] (n-j)/(j+1) p/(1-p)
            pmf *= (nn - j) * odds / (j + 1.0)
            cdf += pmf if same else pmf * (kk > j)
        out[exact] = np.minimum(cdf, 1.0)
    if (~exact).any():
        kk, nn, pp = k_max[~exact], n[~exact], p[~exact]
        z = (kk + 0.5 - nn * pp) / np.sqrt(nn * pp * (1.0 - pp))  # standard normal score, continuity-corrected
        out[~exact] = 0.5 * (1.0 + _erf(z / np.sqrt(2.0)).astype(np.float64))  # standard normal CDF
    return out


# ---------------------------------------------------------------------------------------------------
# the design, then the workload
# ---------------------------------------------------------------------------------------------------
def evaluate(x: Mapping[str, Array], k: Mapping[str, Any]) -> dict[str, Array]:
    """Evaluate every design in `x` (equal-length arrays, choices already resolved to indices) with the
    constants `k`. No Python loop over rows."""
    with np.errstate(all="ignore"):  # NaN/inf mark blank or infeasible rows; they are masked, not warned about
        return _evaluate(x, k)


def _nan_where(values: Array, bad: Array | None) -> Array:
    """`values` with NaN where `bad` (no pass at all when no row is bad)."""
    return values if bad is None or not bad.any() else np.where(bad, np.nan, values)


def _evaluate(x: Mapping[str, Array], k: Mapping[str, Any]) -> dict[str, Array]:
    node = x["node_nm"]
    n_mac, f = x["n_mac"], x["clock_ghz"] * 1e9  # MACs, Hz
    prec = x["precision"].astype(np.intp)
    dram = x["dram"].astype(np.intp)
    has_dram = dram != _NONE
    bus = x["dram_bus_bits"] * has_dram  # bits
    mask = np.asarray(x["pre_mask"], dtype=np.int64).copy()

    in_table = (node >= k["node_min"] - 1e-9) & (node <= k["node_max"] + 1e-9)
    flag(mask, ~in_table, R_NODE)
    notes = (in_table & ~np.isin(node, k["table_nodes"])) * N_NODE_INTERP
    flag(notes, x["clock_ghz"] > CLOCK_MEASURED_GHZ + 1e-9, N_FAST_CLOCK)
    e_int8, a_int8, rho, wafer_usd, d0 = node_values(node, k)  # per-node constants (rows outside are masked)
    flag(mask, ~((n_mac > 0) & (f > 0)), R_INPUT)  # NaN compares False: blank or bad is flagged

    # ---- area (asic-notes section 1) --------------------------------------------------------------
    area_mac = n_mac * a_int8 * (k["mac_area_ratio"] * 1e-6)[prec]  # mm^2: MACs x um^2 per MAC (buffers, control)
    area_sram = x["sram_mb"] * (8.0 / k["sram_realized_density_factor"]) / rho  # mm^2: A = 8*MB / (rho*eta)
    area_phy = np.ceil(bus / 32.0) * k["dram_phy_area_mm2_per_x32"]  # mm^2: one PHY per x32 port
    area_misc = k["misc_area_mm2"]  # mm^2: control CPU, NoC, IO, pads
    spares = x["spare_tiles"]  # spare tiles (0: no redundancy)
    redundant = spares > 0
    r = np.nonzero(redundant)[0]
    area_tiled = area_mac + area_sram  # mm^2: the MAC array and SRAM (split into tiles when redundant)
    tiles = x["tiles"]
    if r.size:
        flag(mask, redundant & ~(tiles >= 1), R_TILES)
        tiles = np.fmax(tiles, 1.0)  # active tiles (1 where blank)
        area_tiled[r] *= 1.0 + spares[r] / tiles[r]  # mm^2: spare tiles built in
    area = area_tiled + area_phy + area_misc  # mm^2 per die
    flag(notes, (dram == _HBM[0]) | (dram == _HBM[1]), N_HBM)

    # ---- dies per wafer and yield (sections 2-3) --------------------------------------------------
    over = area > k["reticle_mm2"]
    flag(mask, over & ~redundant, R_RETICLE)
    dpw = dies_per_wafer(area, k)  # dies per wafer
    if (x["d0_per_cm2"] >= 0).any():
        d0 = np.where(x["d0_per_cm2"] >= 0, x["d0_per_cm2"], d0)  # killer defects per cm^2
    area_nb = area  # mm^2 under the negative-binomial (or chosen) model
    if r.size:
        wafer_scale = over[r]
        mask[r] |= (wafer_scale & (area[r] > k["wafer_scale_max_mm2"])) * R_WAFER
        notes[r] |= wafer_scale * N_WAFER_SCALE | (spares[r] > EXACT_SPARES) * N_BINOM_NORMAL
        dpw[r] = np.where(wafer_scale, 1.0, dpw[r])  # a wafer-scale die is the whole wafer
        area_nb = area.copy()
        area_nb[r] = area_phy[r] + area_misc  # only the non-redundant area; tiles below
    y_rest = defect_yield(area_nb, d0, x["yield_model"], k["yield_alpha"])
    if r.size:
        p_tile = -np.expm1(-area_tiled[r] / (tiles[r] + spares[r]) * d0[r] / 100.0)  # P[tile defective], Poisson
        y_rest[r] *= binomial_cdf(spares[r], tiles[r] + spares[r], p_tile)  # x P[defective tiles <= spares]
    die_yield = k["wafer_yield"] * y_rest  # fraction of gross dies that work (Y_wafer x defect yield)

    # ---- cost (section 4) -------------------------------------------------------------------------
    die_cost = wafer_usd / (dpw * die_yield)  # USD per good die
    unit_chip = (die_cost + (k["test_usd"] + k["package_usd"])[dram]) / k["final_test_yield"]  # USD packaged, tested

    # ---- peaks and full-load power (sections 5-6) -------------------------------------------------
    mac_rate = n_mac * f  # MAC/s with every MAC busy
    rate = k["dram_mt_s"][dram]  # MT/s per pin
    if (x["dram_mt_s"] > 0).any():
        rate = np.where(x["dram_mt_s"] > 0, x["dram_mt_s"], rate)
    bw_u = rate * bus * (1.25e5 * k["mem_bw_fraction"])  # bytes/s achievable: MT/s x 1e6 x bits / 8 x u_m
    e_mac = e_int8 * (k["mac_energy_ratio"] * 1e-12)[prec]  # J per MAC at the design precision
    e_dram = (k["dram_pj_bit"] * 8e-12)[dram]  # J per DRAM byte
    e_sram = k["sram_energy_pj_per_bit"] * 8e-12  # J per SRAM byte
    p_mac = mac_rate * e_mac  # W, every MAC busy
    p_dram = bw_u * e_dram  # W, DRAM streaming at its achievable rate
    # W: the misc block (control CPU, NoC, IO) is one fixed function, the gates its area holds at the reference node,
    # toggling like the array at the design's energy per operation: the array's power per gate x its gates (at
    # the design's node's own density a fixed area would hold more gates at every shrink, and a smaller node
    # would burn more, not less)
    area_mac_ref = n_mac * k["misc_ref_mac_area_um2"] * (k["mac_area_ratio"] * 1e-6)[prec]  # mm^2 of this array at the reference node
    p_misc = p_mac * (k["misc_power_density_ratio"] * area_misc) / area_mac_ref
    p_dyn = p_mac + p_dram + p_misc  # W, dynamic at full load
    p_leak = k["leakage_fraction"] * p_dyn  # W: leakage, fraction of peak dynamic
    p_full = p_dyn + p_leak  # W at full load
    gpu = x["arch"] == ARCHS.index("gpu")
    arch_k: Any = 1.0  # GPU-style datapath overhead (1 for an NPU)
    if gpu.any():
        arch_k = 1.0 + gpu * (k["gpu_power_factor"] - 1.0)
        p_full = p_full * arch_k
        flag(notes, gpu, N_GPU)
    peak_tops = 2e-12 * mac_rate  # TOP/s at the design precision (1 MAC = 2 ops)

    # ---- workload: memory (Pope et al. sec. 2; asic-notes section 6) ------------------------------
    has_model = x["has_model"] > 0
    L, p_len = x["layers"], x["prompt_len"]
    bits = np.asarray(PRECISION_BITS)[prec]
    wb = np.where(x["weight_bits"] > 0, x["weight_bits"], bits)  # bits per weight
    flag(mask, has_model & (wb > bits), R_PRECISION)
    w_byte = wb * (1.0 + x["quant_overhead"]) * 0.125  # bytes per weight, quantisation scales included
    w_all = x["params"] * w_byte  # bytes: every weight
    # bytes of weights a pass over `tokens` tokens reads: every weight a token uses (the input embedding table is only
    # indexed), and of a mixture of experts' routed experts the share the tokens touch, 1 - (1 - k/E)^T (each token
    # picks k of E; one token reads k/E of them, a batch of B decodes or a prompt many more: Fedus et al. 2022)
    log_miss = np.log1p(-np.minimum(x["moe_topk"] / x["moe_experts"], 1.0 - 1e-6))

    def weights_read(tokens: Array) -> Array:
        return (x["w_dense"] + x["w_expert"] * -np.expm1(tokens * log_miss)) * w_byte
    kv_tok = 0.25 * L * x["kv_dim"] * x["kv_bits"]  # bytes of K and V per context token per sequence: 2*L*kv*bits/8
    c_avg = p_len + 0.5 * x["gen_len"]  # mean context while generating
    act = np.maximum(p_len, 1.0)  # token positions one prefill pass holds
    act *= 2.0 * x["hidden"] + (x["n_proj"] - 1.0) * x["ffn"]
    act += x["vocab"]
    act *= x["act_bytes"]  # bytes per sequence of working activations (layer in/out, MLP, logits)
    per_seq = kv_tok * (p_len + x["gen_len"]) + act  # bytes per sequence: KV at full context + activations
    sram_b = x["sram_mb"] * 1e6  # bytes on chip
    dram_given = x["dram_gb"] >= 0
    sized = has_dram & ~dram_given  # DRAM capacity chosen to fit the workload
    given_gb = np.fmax(x["dram_gb"], 0.0) * has_dram  # GB the row fixed (0 where blank or without DRAM)
    cap = sram_b + given_gb * 1e9  # bytes when the capacity is fixed
    batch_blank = ~(x["batch"] >= 1)
    B = x["batch"]  # sequences
    if batch_blank.any():
        b_fit = np.maximum(np.floor((cap - w_all) / per_seq), 1.0)  # largest batch that fits a fixed capacity
        B = np.where(batch_blank, np.where(sized, 1.0, b_fit), B)
    need = per_seq * B + w_all  # bytes: weights + KV cache + activations
    # a sized DRAM is at most what the bus's interfaces hold (8 GB a 16-bit LPDDR5X channel, 64 GB an HBM3 stack)
    most_b = np.where(has_dram, k["dram_max_gb_per_bit"][dram] * np.nan_to_num(x["dram_bus_bits"]), np.inf) * 1e9
    over = sized & has_model & (need - sram_b > most_b)
    flag(mask, over | (dram_given & (given_gb * 1e9 > most_b * (1.0 + 1e-9))), R_DRAM_CAP)
    fits = (sized & ~over) | (need <= cap)
    short = has_model & ~fits & ~over
    flag(mask, short & batch_blank, R_NOFIT)
    flag(mask, short & ~batch_blank, R_MEMORY)
    # GB bundled: what the workload needs beyond the SRAM, but never less than the bus's stacks hold (an HBM stack
    # comes in 4 GB at least, JESD238)
    least_gb = k["dram_min_gb_per_bit"][dram] * np.nan_to_num(x["dram_bus_bits"]) * has_dram
    dram_gb = np.where(sized & has_model, np.maximum(np.maximum(need - sram_b, 0.0) * 1e-9, least_gb), given_gb)
    unit_cost = dram_gb * k["dram_usd_per_gb"][dram] + unit_chip  # USD: chip + bundled DRAM at its type's price

    # ---- workload: where the bytes come from ------------------------------------------------------
    on_chip = need <= sram_b  # the whole workload lives in SRAM
    flag(notes, has_model & ~has_dram, N_NO_DRAM_BW)
    flag(notes, ~has_model, N_NO_WORKLOAD)
    w_read = weights_read(B)  # bytes of weights one decode step of the batch reads
    w_sram = np.minimum(w_read, sram_b)  # bytes of weights resident on chip
    kv_step = kv_tok * c_avg * B  # bytes of KV cache read per decode step
    w_dram = w_read - w_sram  # bytes of weights streamed from DRAM each step
    w_read_pre = weights_read(B * np.maximum(p_len, 1.0))  # ... and by the prompts' prefill pass
    w_sram_pre = np.minimum(w_read_pre, sram_b)
    w_dram_pre = w_read_pre - w_sram_pre
    dram_step = (w_dram + kv_step) * ~on_chip  # bytes from DRAM per step
    sram_step = w_sram + kv_step * on_chip  # bytes from SRAM per step

    # ---- decode and prefill roofline (section 6) --------------------------------------------------
    ops_u = mac_rate * (2.0 * k["compute_fraction"])  # ops/s achievable (1 MAC = 2 ops)
    att = 4.0 * L * x["q_dim"]  # attention FLOPs per token per context token (QK^T and AV)
    two_n = 2.0 * x["params_read"]  # FLOPs per token of the matrix multiplies (Kaplan 2N)
    flops_step = (att * c_avg + two_n) * B  # FLOPs per decode step
    t_comp = flops_step / ops_u  # s the MAC array is busy per step
    t_step = np.fmax(t_comp, dram_step / bw_u)  # s per decode step (roofline; no DRAM: 0/0 ignored)
    flops_pre = (att * (0.5 * p_len) + two_n) * (B * p_len)  # FLOPs, causal prefill: 2NP + 2LP^2 d
    ttft = np.fmax(flops_pre / ops_u, w_dram_pre / bw_u) * (p_len > 0)  # s: the prefill pass emits the first token

    # ---- energy per token and decode power (section 5) --------------------------------------------
    e_step = flops_step * (0.5 * e_mac) + dram_step * e_dram + sram_step * e_sram  # J dynamic: MAC, DRAM, SRAM
    e_step += p_misc * t_comp + p_leak * t_step  # J: misc while the array works, leakage always
    # the prompt: the batch's prefill pass reads the streamed weights once and writes its KV cache (to DRAM unless
    # the workload lives on chip), its MACs at the array's energy, misc while the array works, leakage throughout
    kv_pre = kv_tok * p_len * B  # bytes of KV cache the prefill writes
    e_pre = (flops_pre * (0.5 * e_mac) + (w_dram_pre + kv_pre) * ~on_chip * e_dram + (w_sram_pre + kv_pre * on_chip) * e_sram
             + p_misc * (flops_pre / ops_u) + p_leak * ttft) * (p_len > 0)
    if gpu.any():
        e_step *= arch_k
        e_pre *= arch_k
    # the energy per generated token with the prompt's share, as catalog chips' serving rows count it (their speed
    # per user is the decode rate, 1 / TPOT, with TTFT apart: so is the ASIC's, decode_tokens_per_s)
    gen = x["gen_len"]
    has_gen = gen > 0
    e_tok = (e_pre + gen * e_step) / (B * gen)

    any_bad = mask.any()
    design_bad = (mask & (R_INPUT | R_NODE | R_TILES)) != 0 if any_bad else None
    fab_bad = (mask & (R_INPUT | R_NODE | R_TILES | R_RETICLE | R_WAFER)) != 0 if any_bad else None
    work_nan = np.where(has_model & (mask == 0), 1.0, np.nan)  # NaN where the workload does not run
    step_nan = work_nan / t_step
    gen_nan = np.where(has_gen, work_nan, np.nan)  # NaN where the workload generates nothing (prefill only)
    every_model = has_model.all()
    return {
        "die_area_mm2": _nan_where(area, design_bad),
        "area_mac_mm2": area_mac,
        "area_sram_mm2": area_sram,
        "area_phy_mm2": area_phy,
        "dies_per_wafer": _nan_where(dpw, fab_bad),
        "defect_yield": _nan_where(y_rest, fab_bad),
        "yield": _nan_where(die_yield, fab_bad),
        "die_cost_usd": _nan_where(die_cost, fab_bad),
        "unit_cost_usd": _nan_where(unit_cost, fab_bad),
        "dram_gb": dram_gb,
        "peak_tops": _nan_where(peak_tops, (mask & (R_INPUT | R_TILES)) != 0 if any_bad else None),
        "full_load_power_w": _nan_where(p_full, design_bad),
        "tops_per_w": _nan_where(peak_tops / p_full, design_bad),
        "power_w": e_step * step_nan * np.where(has_gen, 1.0, np.nan),
        "decode_tokens_per_s": step_nan * np.where(has_gen, 1.0, np.nan),
        "ttft_s": ttft * work_nan,
        "energy_per_token_j": e_tok * gen_nan,
        "decode_energy_per_token_j": e_step / B * gen_nan,
        "dram_mt_s": np.where(has_dram, rate, np.nan),
        "d0_per_cm2": np.broadcast_to(d0, node.shape).astype(np.float64),
        "mem_gb": need * 1e-9 if every_model else _nan_where(need * 1e-9, ~has_model),
        "batch": B if every_model else _nan_where(B, ~has_model),
        "weight_bits": wb if every_model else _nan_where(wb, ~has_model),
        "fits": fits | ~has_model,
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
