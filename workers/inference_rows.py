"""Inference rows on catalog chips, for `chipsweep evaluate --kind inference` and for sweep chunks.

`parse_inference` turns a table into raw arrays (catalog indices, NaN where a cell is blank) with per-row
errors; `assemble_inference` resolves catalog entries, `chip.<field>` / `cal.<name>` overrides, the serving
engine and its fitted efficiency (`serving_calibration`), and defaults into the core's inputs and calibration
(sweep workers build `raw` from decoded axes and call it too); the numpy core is `workers.inference`.
`evaluate_inference` returns the input table with the resolved workload, the outputs, the reasons and the notes.
Bad rows carry their message in `infeasible_reason`; they never stop the other rows unless `strict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.columns import FACTS
from chipsweep.schemas.vocab import (
    COMPUTE_PRECISIONS,
    COST_BASES,
    ENGINES,
    MOE_FIELDS,
    OVERRIDABLE,
    PRECISION_PEAKS,
    SHAPE_FIELDS,
    STATE_BITS,
)
from chipsweep.workers import inference
from chipsweep.workers.context import Context, measured_reach
from chipsweep.workers.parse import RowErrors, bools, chip_what_if, choices, ids, numbers, what_if_columns
from chipsweep.workers.results import cost_basis_text, refuse_infeasible, result_table, run_good_rows
from chipsweep.workers.tables import chip_link_arrays, chip_what_ifs, compact, first_rule, gather
from chipsweep.workers.workload import (
    getter,
    model_arrays,
    model_tables,
    parse_bits,
    parse_model,
    quant_overhead,
    workload_default,
)

Array = np.ndarray

# the outputs `evaluate` writes, in the lake's order
INFERENCE_OUT = tuple(c.name for c in FACTS["inference"] if c.role == "output" and c.dtype == "float32")

CAL_OVERRIDES = ("mem_bw_fraction", "compute_fraction", "attention_fraction", "layer_overhead_s", "moe_layer_overhead_s", "seq_overhead_s", "moe_fraction", "quant_layer_overhead_s",
                 "idle_fraction", "power_compute", "power_memory", "link_fraction", "dequant_round_trip",
                 "max_batch", "max_tokens")
# the engine's own limits a row may set as its server would (vLLM --max-num-seqs / --max-num-batched-tokens,
# TensorRT-LLM --max_batch_size / --max_num_tokens): whole numbers >= 1
CAL_COUNTS = ("max_batch", "max_tokens")
CAL_UNBOUNDED = ("layer_overhead_s", "moe_layer_overhead_s", "quant_layer_overhead_s", "seq_overhead_s", "power_compute", "power_memory")  # seconds or weights: >= 0, no upper limit
CAL_SWITCHES = ("dequant_round_trip",)  # 0 (off) to 1 (on); the fractions of a peak are > 0 and <= 1
EFFICIENCY_KEYS = ("mem_bw_fraction", "compute_fraction", "attention_fraction", "layer_overhead_s", "moe_layer_overhead_s",
                   "seq_overhead_s", "moe_fraction", "quant_layer_overhead_s", "link_fraction")  # per engine and chip
POWER_KEYS = ("idle_fraction", "power_compute", "power_memory")  # fitted per chip
# per-engine settings of asic.yaml serving (scheduler limits, memory reserve, kernels, the quantiser's 16-bit head)
ENGINE_LIMITS = ("max_batch", "max_tokens", "ubatch", "mem_usable", "kv_reserve", "fused_attention", "head_16bit",
                 "weight_format_overhead_4bit", "weight_format_overhead_8bit",
                 "custom_all_reduce_bytes",
                 "async_scheduling", "whole_heads")

# chip fields the inference path reads, for the low-confidence notes (bit i = field i)
NOTED_FIELDS = (
    "peak_tflops_fp16", "peak_tflops_bf16", "peak_tflops_fp8", "peak_tflops_fp4", "peak_tops_int8",
    "neural_engine_tops", "memory_gb", "sram_mb", "memory_bandwidth_gb_s", "tdp_w", "purchase_usd", "scale_up_gb_s",
)
_F = {f: 1 << i for i, f in enumerate(NOTED_FIELDS)}
# compute precision -> the chip fields that give its peak, first published wins
# precision variants of the per-chip tables: the five named precisions, then "by weight bits" for 4, 8, 16
N_VARIANTS = len(COMPUTE_PRECISIONS) + 3

# the input an infeasible row's refusal names (--strict): what would change the outcome
INFERENCE_REFUSAL_FIELDS = {
    inference.R_INPUT: "model", inference.R_NO_PEAK: "chip", inference.R_PRECISION: "compute_precision",
    inference.R_NO_BW: "chip", inference.R_NO_MEM: "chip", inference.R_MEMORY: "batch", inference.R_NOFIT: "n_chips",
    inference.R_LAYOUT: "ep", inference.R_DENSE_EP: "ep", inference.R_HEADS: "n_chips", inference.R_ENGINE: "engine",
    inference.R_DENSE_DPA: "dp_attention", inference.R_EP_DPA: "ep", inference.R_POOL: "prefill_instances",
    inference.R_SPLIT: "disaggregated",
}
# the most instances of either pool an xPyD row names (the prompt pool's queue is computed over its servers)
MAX_INSTANCES = 64
# inference notes (informational)
# chip classes sold into servers (`_chip_static` hosted): datacenter, custom training, wafer-scale, SRAM-only
HOSTED_CLASS_PREFIXES = ("datacenter", "custom_training", "wafer_scale", "sram_only")
N_ANE = 1
N_WEIGHT_ONLY = 2
N_NO_TDP = 4
N_LINK_FALLBACK = 8
N_SRAM_AUTO = 16
N_LOW_CHIP = 32
N_NO_PRICE = 64
N_WAFER = 128
N_EXTRAPOLATED = 256
N_NO_COST = 512
N_DISAGG = 1024
N_OWNED_NO_TDP = 2048
N_ABOVE_MAX_BATCH = 4096
N_BEYOND_CONTEXT = 8192
N_RENTAL_NO_PRICE = 16384
N_OWNED_NO_PRICE = 32768
N_NO_UNIT_PRICE = 65536
N_QUEUED = 131072
N_POOL_IGNORED = 262144
INFERENCE_NOTES = {
    N_LOW_CHIP: "chip catalog confidence is low",
    N_ANE: "compute peak = Apple Neural Engine TOPS (precision unstated; the GPU peak is not in the catalog)",
    N_WEIGHT_ONLY: "4/8-bit weights, 16-bit matrix multiplies (weight-only quantisation); set compute_precision int8 or "
    "fp8 for W8A8",
    N_NO_TDP: "energy and power not computed: tdp_w not published (add a chip.tdp_w column)",
    N_NO_PRICE: "unit cost not computed: purchase_usd not published (add a chip.purchase_usd column); "
    "usd_per_million_tokens is at the chip's rental price",
    N_LINK_FALLBACK: "no published link between the row's chips: tensor-parallel all-reduce at the scale-out link's "
    "rate, or PCIe 4.0 x16 where that is blank too (defaults.fallback_link_gb_s; give chip.scale_up_gb_s or "
    "chip.scale_out_gbit_s)",
    N_SRAM_AUTO: "SRAM-only chip: n_chips = the fewest chips whose SRAM holds the model",
    N_WAFER: "wafer-scale system: the roofline treats it as one chip; the latency of its layer pipeline at small "
    "batch is not modelled (optimistic)",
    N_EXTRAPOLATED: "no published run fitted this engine on this chip or its class: efficiency extrapolated (see calibrated_on)",
    N_NO_COST: "cost per token not computed: no rental price and no purchase price published (give chip.usd_per_hour or "
    "chip.purchase_usd)",
    N_DISAGG: "disaggregated: prefill_instances prompt instances of n_chips chips serve decode_instances decode "
    "instances (xPyD; blank prefill_instances: the fewest that keep up, blank decode_instances: 1); each decode "
    "instance's share of the pool counts in the per-chip rates, the cost per token, the power and the unit cost, and "
    "ttft_s waits in the pool's queue (M/D/c, Poisson arrivals)",
    N_OWNED_NO_TDP: "cost per token not computed: without a rental price it is the purchase spread over its life plus "
    "the electricity, and tdp_w is not published (give chip.tdp_w or chip.usd_per_hour)",
    N_ABOVE_MAX_BATCH: "concurrency above the engine's default limit on running requests (asic.yaml serving.max_batch: "
    "vLLM --max-num-seqs, TensorRT-LLM --max_batch_size, per attention rank): answered as an engine set to run them "
    "all; at its default the rest would wait in its queue (cal.max_batch sets the limit)",
    N_BEYOND_CONTEXT: "prompt_len + gen_len beyond the model's context (the catalog's seq_len): answered as a variant "
    "trained at that length (RoPE scaling, a long-context release), which this model id is not",
    N_RENTAL_NO_PRICE: "cost per token not computed: cost_basis rental, and the chip has no rental price (give "
    "chip.usd_per_hour)",
    N_OWNED_NO_PRICE: "cost per token not computed: cost_basis owned, and owning the chip has no published price (give "
    "chip.purchase_usd, or chip.server_usd for a chip sold into servers) or no tdp_w for the power it is charged",
    N_NO_UNIT_PRICE: "unit cost not computed: purchase_usd not published (add a chip.purchase_usd column)",
    N_QUEUED: "concurrency above the row's cal.max_batch (per attention rank): that many requests run at once and the "
    "rest wait in the engine's queue; their wait is in ttft_s, and throughput, tokens/s per user, energy and cost are "
    "the running requests'",
    N_POOL_IGNORED: "prefill_instances / decode_instances apply to a disaggregated row's pools: ignored on this "
    "colocated row (disaggregated false)",
}
# the chip-level cost notes a row's asked cost_basis replaces with its own (N_RENTAL_NO_PRICE, N_OWNED_NO_PRICE)
N_COST_DEFAULT = N_NO_PRICE | N_NO_COST | N_OWNED_NO_TDP


# ------------------------------------------------------------------------------------------------
# serving calibration: engine defaults, scheduler limits, fitted efficiency and power per (engine, chip)
# ------------------------------------------------------------------------------------------------
def _value(entry: Any) -> float:
    return float(entry["value"]) if isinstance(entry, Mapping) else float(entry)


def compute_roots(catalog: Any, chip_ids: Sequence[str]) -> list[str | None]:
    """Per chip, the chip whose compute it shares (catalog `same_compute_as`: the H200 and H800 the H100's die, clocks
    and power, the A100 40GB the 80GB's, the B200 the GB200's die at a lower power limit), itself for a chip others
    name, None for a chip of a compute of its own."""
    named = {c.same_compute_as for c in catalog.chips.values() if c.same_compute_as}
    out: list[str | None] = []
    for cid in chip_ids:
        twin = catalog.chips[cid].same_compute_as
        out.append(twin or (cid if cid in named else None))
    return out


def _level(applies_to: str, cid: str, cls: str, vendor: str, compute: str | None = None) -> int:
    """How specific a set is for a chip: 6 its id, 5 the chips of its compute ('compute:nvidia_h100_sxm': one die
    and its kernels, memory and clocks aside), 4 its vendor's chips of its class ('vendor:AMD/datacenter_training':
    one software stack on one kind of chip), 3 its class, 2 its vendor (the engine's backend: CUDA, Metal...), 1
    every chip, 0 not this chip."""
    if applies_to == cid:
        return 6
    if compute is not None and applies_to == f"compute:{compute}":
        return 5
    if applies_to == f"vendor:{vendor}/{cls}":
        return 4
    if applies_to == cls:
        return 3
    if applies_to == f"vendor:{vendor}":
        return 2
    return 1 if applies_to in ("*", "", None) else 0


def set_priority(engine_of_set: str, level: int, engine: str, key: str) -> int:
    """Priority of a set (its engine, its place level from `_level`) for `key` on a row of `engine`; 0: not used.
    The engine's own sets come first (most specific place first), then every-engine sets."""
    if not level or engine_of_set not in (engine, "*"):
        return 0
    return level + (10 if engine_of_set == engine else 0)


def _priority(s: Mapping[str, Any], engine: str, cid: str, cls: str, vendor: str, key: str,
              compute: str | None = None) -> int:
    """A set's priority for `key` of (engine, chip)."""
    return set_priority(str(s.get("engine", "*")), _level(str(s.get("applies_to", "*")), cid, cls, vendor, compute),
                        engine, key)


def default_engines(catalog: Any, chip_ids: Sequence[str]) -> Array:
    """Index into ENGINES of each chip's default engine (asic.yaml serving.engine_default: first matching rule)."""
    rules = catalog.asic["serving"]["engine_default"]["value"]
    out = np.zeros(len(chip_ids), dtype=np.int64)
    for i, cid in enumerate(chip_ids):
        rule = first_rule(rules, catalog.chips[cid])
        if rule is not None:
            out[i] = ENGINES.index(rule["engine"])
    return out


def dequant_round_trips(catalog: Any, chip_ids: Sequence[str]) -> Array:
    """Per (engine, chip), flat as engine x n_chips + chip: 1 where a prompt pass writes a dequantised copy of the
    weights before its GEMM (asic.yaml serving.dequant_round_trip: first matching rule)."""
    rules = catalog.asic["serving"]["dequant_round_trip"]["value"]
    chips = [catalog.chips[c] for c in chip_ids]
    return np.array([float((first_rule(rules, chip, engine) or {"value": 0})["value"])
                     for engine in ENGINES for chip in chips])


def engine_runs(catalog: Any, chip_ids: Sequence[str]) -> Array:
    """Per (engine, chip), flat as engine x n_chips + chip: 1 where the engine runs on the chip's vendor
    (asic.yaml serving.engine_vendors; an engine it does not name runs on any)."""
    vendors = catalog.asic["serving"]["engine_vendors"]["value"]
    chips = [catalog.chips[c] for c in chip_ids]
    return np.array([float(engine not in vendors or chip.vendor in vendors[engine])
                     for engine in ENGINES for chip in chips])


def serving_calibration(catalog: Any, chip_ids: Sequence[str], efficiency: Sequence[Mapping[str, Any]] | None = None,
                        power: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Per (engine, chip) the fitted constants (flat arrays indexed engine x n_chips + chip), each resolved from the
    most specific set that gives it (engine + chip id > engine + class > engine > fallback), the power constants per
    chip, the engines' scheduler limits, and `calibrated_on`: an index into `texts` per (engine, chip)."""
    serving = catalog.asic["serving"]
    eff = list(serving.get("efficiency") or []) if efficiency is None else list(efficiency)
    pw = list(serving.get("power") or []) if power is None else list(power)
    pw += list(serving.get("power_prior") or [])  # after the fitted sets: a fitted set of the same place wins
    fallback = {k: _value(v) for k, v in serving["fallback"].items()}
    nc, ne = len(chip_ids), len(ENGINES)
    classes = [catalog.chips[c].chip_class for c in chip_ids]
    vendors = [catalog.chips[c].vendor for c in chip_ids]
    roots = compute_roots(catalog, chip_ids)
    # whose GEMM measurement a chip's share of peak is, where not its own (`_chip_static` compute_reach)
    every = list(catalog.chips.values())
    reach_of = {cid: "" if catalog.chips[cid].gemm_fraction is not None
                else (f"; GEMM share of peak from {', '.join(m[1])}'s measurement"
                      if (m := measured_reach(catalog.chips[cid], every)) else
                      "; GEMM share of peak: defaults.yaml gemm_reach (no measurement of its own or a kin's)")
                for cid in chip_ids}
    out: dict[str, Any] = {k: np.full(ne * nc, fallback[k]) for k in EFFICIENCY_KEYS}
    texts: list[str] = []
    code = np.zeros(ne * nc, dtype=np.int64)
    extrapolated = np.zeros(ne * nc, dtype=bool)
    for e, engine in enumerate(ENGINES):
        sets = [s for s in eff if s.get("engine", "*") in (engine, "*")]
        for c, (cid, cls, vendor, root) in enumerate(zip(chip_ids, classes, vendors, roots, strict=True)):
            i = e * nc + c
            best: dict[str, int] = {}
            used: Mapping[str, Any] | None = None
            used_at = 0
            for s in sets:
                for key in EFFICIENCY_KEYS:
                    lvl = _priority(s, engine, cid, cls, vendor, key, root)
                    if key in s and lvl > best.get(key, 0):
                        best[key] = lvl
                        out[key][i] = _value(s[key])
                lvl = _priority(s, engine, cid, cls, vendor, "compute_fraction", root)
                if ("compute_fraction" in s or "mem_bw_fraction" in s) and lvl > used_at:
                    used, used_at = s, lvl
            text = _calibrated_text(engine, cid, cls, used, root) + reach_of[cid]
            # a set of the chip's compute fitted on this chip's runs among its twins' is the chip's own calibration
            own = used is not None and used.get("engine") == engine and (
                str(used.get("applies_to", "*")) == cid
                or (root is not None and used.get("applies_to") == f"compute:{root}"
                    and any(str(f).endswith(f":{cid}") for f in used.get("fitted_on") or [])))
            extrapolated[i] = not own
            if text not in texts:
                texts.append(text)
            code[i] = texts.index(text)
    power_out = {k: np.full(nc, fallback[k]) for k in POWER_KEYS}
    for c, (cid, cls, vendor, root) in enumerate(zip(chip_ids, classes, vendors, roots, strict=True)):
        best = {}
        for s in pw:
            lvl = _level(str(s.get("applies_to", "*")), cid, cls, vendor, root)
            for key in POWER_KEYS:
                if lvl and key in s and lvl > best.get(key, 0):
                    best[key] = lvl
                    power_out[key][c] = _value(s[key])
    limits = {name: np.array([float(serving[name]["value"].get(eng, np.nan)) for eng in ENGINES]) for name in ENGINE_LIMITS}
    return {**out, "power": power_out, "limits": limits, "calibrated_on": code, "texts": texts,
            "extrapolated": extrapolated, "default_engine": default_engines(catalog, chip_ids)}


def _calibrated_text(engine: str, cid: str, cls: str, used: Mapping[str, Any] | None, root: str | None = None) -> str:
    if used is None:
        return f"extrapolated: no published run fitted {engine} (catalog fallback constants)"
    sources = ", ".join(used.get("sources") or []) or "published runs"
    where = str(used.get("applies_to", "*"))
    who = str(used.get("engine", "*"))
    if where == cid and who == engine:
        return f"{sources} ({engine} on {cid})"
    if root is not None and where == f"compute:{root}" and who == engine:
        chips = sorted({str(f).rsplit(":", 1)[-1] for f in used.get("fitted_on") or []})
        if cid in chips:
            return f"{sources} ({engine} on {', '.join(chips)}: one compute, each its own memory)"
        return f"extrapolated from {engine} on {', '.join(chips)} (same compute: {root}'s) ({sources})"
    place = {cid: cid, cls: f"{cls} chips", "*": "all chips"}.get(where, where.replace("vendor:", "").replace("/", " ") + " chips")
    return f"extrapolated from {'every engine' if who == '*' else who} on {place} ({sources})"


def inference_calibration(ctx: Context) -> dict[str, Array]:
    """The catalog-wide inference constants of asic.yaml (links, memory reserve, cost) as arrays over chips."""
    sets: Mapping[str, Any] = ctx.catalog.asic.get("inference") or {}
    nc = len(ctx.chips.ids)
    out: dict[str, Array] = {}
    out["link_latency_s"] = np.full(nc, float(sets["default"]["link_latency_s"]["value"]))
    for key in ("usd_per_kwh", "amortization_years", "pue", "cost_of_capital", "host_power_w",
                "facility_usd_per_kw_month", "ops_usd_per_kw_month"):
        out[key] = np.full(nc, float(ctx.defaults[key]))
    return out


def _chip_static(ctx: Context) -> dict[str, Array]:
    """Per-chip arrays the inference path needs beyond ChipTable: SRAM-only flag, low-confidence field bits."""
    chips = [ctx.catalog.chips[c] for c in ctx.chips.ids]
    low = np.array([sum(_F[f] for f in c.low_confidence_fields if f in _F) for c in chips], dtype=np.int64)
    reach = float(ctx.defaults.get("gemm_reach", 1.0))
    every = list(ctx.catalog.chips.values())
    return {
        # the share of the peak the vendor's GEMM library reaches (its gemm_measured, else its twin's, its core
        # architecture's or its family's, as training extrapolates them; else defaults.yaml gemm_reach), taken for
        # every compute precision: one measurement per chip (the A100's fp16, the others' fp8). Until 2026-12-07 a
        # chip without its own took the default 0.647: the MI355X against the MI300X's measured 0.443
        "compute_reach": np.array([m[0] if (m := measured_reach(c, every)) else reach for c in chips]),
        "sram_only": np.array([1.0 if c.system_kind == "sram_only" else 0.0 for c in chips]),
        "low_fields": low,
        "low_chip": np.array([c.confidence == "low" for c in chips]),
        "wafer": np.array([c.system_kind in ("wafer_scale", "tile") for c in chips]),
        # sold into servers: owning one costs the training TCO (the server's and the network's shares, cost of
        # capital, host power, facility and operations); a device (consumer, workstation, edge, laptop, mobile)
        # is its own purchase and its electricity
        "hosted": np.array([1.0 if c.chip_class.startswith(HOSTED_CLASS_PREFIXES) else 0.0 for c in chips]),
    }


def parse_inference(table: pa.Table, ctx: Context, errors: RowErrors) -> dict[str, Array]:
    """An inference table -> raw arrays (catalog indices; NaN where blank), errors recorded."""
    raw: dict[str, Array] = {}
    parse_model(table, ctx, errors, raw)
    raw["chip_idx"] = ids(table, "chip", ctx.chips.index(), errors, "chip")
    raw["n_chips"] = numbers(table, "n_chips", errors, integer=True, minimum=1)
    raw["ep"] = numbers(table, "ep", errors, integer=True, minimum=1)
    raw["pp"] = numbers(table, "pp", errors, integer=True, minimum=1)
    raw["weight_bits"] = parse_bits(table, "weight_bits", errors)
    raw["kv_bits"] = parse_bits(table, "kv_bits", errors)
    state = choices(table, "ssm_state_bits", STATE_BITS, errors)
    raw["ssm_state_bits"] = np.where(np.isfinite(state), np.asarray([16.0, 32.0])[np.nan_to_num(state).astype(np.int64)],
                                     np.nan)
    raw["compute_precision"] = choices(table, "compute_precision", COMPUTE_PRECISIONS, errors)
    raw["engine"] = choices(table, "engine", ENGINES, errors)
    raw["batch"] = numbers(table, "batch", errors, integer=True, minimum=1)
    raw["concurrency"] = numbers(table, "concurrency", errors, integer=True, minimum=1)
    raw["disaggregated"] = bools(table, "disaggregated", errors)
    # xPyD: a disaggregated row's prompt instances for its decode instances (ignored where colocated)
    raw["prefill_instances"] = numbers(table, "prefill_instances", errors, integer=True, minimum=1, maximum=MAX_INSTANCES)
    raw["decode_instances"] = numbers(table, "decode_instances", errors, integer=True, minimum=1, maximum=MAX_INSTANCES)
    raw["dp_attention"] = bools(table, "dp_attention", errors)
    raw["ep_dedup"] = bools(table, "ep_dedup", errors)
    raw["scheduler_steps"] = numbers(table, "scheduler_steps", errors, integer=True, minimum=1)
    raw["async_scheduling"] = bools(table, "async_scheduling", errors)
    raw["prompt_len"] = numbers(table, "prompt_len", errors, integer=True, minimum=0)
    raw["gen_len"] = numbers(table, "gen_len", errors, integer=True, minimum=0)
    raw["quant_overhead"] = numbers(table, "quant_overhead", errors, minimum=0, maximum=1)
    raw["cost_basis"] = choices(table, "cost_basis", COST_BASES, errors)
    what_if_columns(table, errors, {"chip": OVERRIDABLE, "cal": CAL_OVERRIDES})
    for field in OVERRIDABLE:
        if f"chip.{field}" in table.column_names:
            raw[f"chip.{field}"] = chip_what_if(table, field, errors)
    for name in CAL_OVERRIDES:
        if f"cal.{name}" in table.column_names:
            if name in CAL_COUNTS:
                raw[f"cal.{name}"] = numbers(table, f"cal.{name}", errors, integer=True, minimum=1)
                continue
            hi = None if name in CAL_UNBOUNDED else 1
            lo = 0 if name in CAL_UNBOUNDED + CAL_SWITCHES else 1e-9
            raw[f"cal.{name}"] = numbers(table, f"cal.{name}", errors, minimum=lo, maximum=hi)
    return raw


def _peak(ccols: Mapping[str, Array], fields: tuple[str, ...]) -> tuple[Array, Array]:
    """(TFLOP/s of the first published field, its _F bit)."""
    peak = np.full(len(ccols[fields[0]]), np.nan)
    used = np.zeros(len(peak), dtype=np.int64)
    for f in fields:
        take = ~np.isfinite(peak) & np.isfinite(ccols[f])
        peak = np.where(take, ccols[f], peak)
        used = np.where(take, _F[f], used)
    return peak, used


def attention_peak(c: Mapping[str, Array], prec: Array, kv_bits: Array) -> Array:
    """FLOP/s peak of each row's attention kernels. FlashAttention and the engines' FMHA run at 16 bits whatever the
    GEMMs' precision; at an fp8 or fp4 compute precision with a KV cache of 8 bits or fewer they run in fp8
    (TensorRT-LLM's FP8 context FMHA, FlashAttention-3's FP8 path); no engine runs attention in 4 bits. A chip
    without a 16-bit peak (an integer NPU) runs it at the row's own peak."""
    fp_low = np.isin(np.nan_to_num(prec, nan=-1.0), [COMPUTE_PRECISIONS.index("fp8"), COMPUTE_PRECISIONS.index("fp4")])
    att = np.where(fp_low & (kv_bits <= 8.0) & np.isfinite(c["peak_fp8"]), c["peak_fp8"], c["peak_16"])
    return np.where(np.isfinite(att), att, c["peak_flops"])


def _chip_terms(ccols: Mapping[str, Array], static: Mapping[str, Array], variant: Array, defaults: Mapping[str, float]) -> dict[str, Array]:
    """Per-row chip quantities that do not depend on the workload beyond the compute precision (`variant`: index
    into COMPUTE_PRECISIONS, or len + 0/1/2 for "by weight bits" at 4/8/16 bits): the compute peak, missing-number
    reasons, notes and the catalog fields the row uses."""
    n = len(variant)
    p16, u16 = _peak(ccols, ("peak_tflops_fp16", "peak_tflops_bf16"))
    p8, u8 = _peak(ccols, ("peak_tops_int8", "peak_tflops_fp8"))
    low_bits = variant >= len(COMPUTE_PRECISIONS)
    low_bits &= variant < len(COMPUTE_PRECISIONS) + 2  # by weight bits, 4 or 8 bits
    # by weight bits: weight-only quantisation (4/8-bit weights, 16-bit multiplies: llama.cpp k-quants, AWQ, GPTQ);
    # a chip with only an integer peak runs 4/8-bit weights at it (W8A8)
    only8 = low_bits & ~np.isfinite(p16) & np.isfinite(p8)
    peak = np.where(only8, p8, p16)
    used = np.where(only8, u8, u16)
    notes = np.where(low_bits & np.isfinite(p16), N_WEIGHT_ONLY, 0)
    for j, prec in enumerate(COMPUTE_PRECISIONS):  # a named precision: that peak, or none
        pk, uk = _peak(ccols, PRECISION_PEAKS[prec])
        peak = np.where(variant == j, pk, peak)
        used = np.where(variant == j, uk, used)
    named = variant < len(COMPUTE_PRECISIONS)
    ane = ~named & ~np.isfinite(peak) & np.isfinite(ccols["neural_engine_tops"])
    peak = np.where(ane, ccols["neural_engine_tops"], peak)
    used = np.where(ane, _F["neural_engine_tops"], used)
    notes |= np.where(ane, N_ANE, 0)
    any_peak = np.isfinite(p16) | np.isfinite(p8) | np.isfinite(ccols["neural_engine_tops"]) | np.isfinite(ccols["peak_tflops_fp4"])
    pre = np.where(~np.isfinite(peak) & any_peak, inference.R_PRECISION, 0)
    pre |= np.where(~any_peak, inference.R_NO_PEAK, 0)
    links = chip_link_arrays(ccols, defaults)  # memory in bytes: DRAM GiB, SRAM decimal MB (tables.chip_link_arrays)
    pre |= np.where(~np.isfinite(links["mem_bw"]), inference.R_NO_BW, 0)
    pre |= np.where(~np.isfinite(links["mem_bytes"]), inference.R_NO_MEM, 0)
    notes |= np.where(~np.isfinite(ccols["tdp_w"]), N_NO_TDP, 0)
    # no purchase price: the unit cost is missing (and the cost per token is at the rental price, else N_NO_COST)
    notes |= np.where(~np.isfinite(ccols["purchase_usd"]) & np.isfinite(ccols["usd_per_hour"]), N_NO_PRICE, 0)
    # owning it has a price: the chip's purchase, or for a chip sold into servers its server's share
    owned_price = np.isfinite(ccols["purchase_usd"]) | ((static["hosted"] > 0) & np.isfinite(ccols["server_usd"]))
    notes |= np.where(~owned_price & ~np.isfinite(ccols["usd_per_hour"]), N_NO_COST, 0)
    notes |= np.where(owned_price & ~np.isfinite(ccols["usd_per_hour"]) & ~np.isfinite(ccols["tdp_w"]), N_OWNED_NO_TDP, 0)
    notes |= np.where(static["low_chip"], N_LOW_CHIP, 0)
    notes |= np.where(static["wafer"], N_WAFER, 0)
    used = used | _F["memory_bandwidth_gb_s"] | _F["tdp_w"] | _F["purchase_usd"]
    used |= np.where(np.isfinite(ccols["memory_gb"]), _F["memory_gb"], _F["sram_mb"])
    fp8, _ = _peak(ccols, ("peak_tflops_fp8",))
    return {
        "peak_flops": peak * 1e12,
        # the peaks attention runs at (its kernels' own precision, not the GEMMs'): 16-bit, or fp8
        "peak_16": np.broadcast_to(p16 * 1e12, (n,)),
        "peak_fp8": np.broadcast_to(fp8 * 1e12, (n,)),
        "used": np.broadcast_to(used, (n,)).astype(np.int64),
        "notes": np.broadcast_to(notes, (n,)).astype(np.int64),
        "pre": np.broadcast_to(pre, (n,)).astype(np.int64),
        "link_missing": links["link_missing"],  # 1: no scale-up rate for a domain of several chips; 2: no scale-out
        **{k: links[k] for k in ("mem_bytes", "mem_bw", "mem_reach", "up_bw", "up_domain", "up_torus", "up_mesh", "out_bw",
                                 "usd_per_hour")},
        "tdp_w": ccols["tdp_w"],
        "idle_w": ccols["idle_w"],
        "purchase_usd": ccols["purchase_usd"],
        "capex_usd": links["capex_usd"],  # an owned server's share per chip (tables.chip_link_arrays, as training)
    }


_CHIP_TABLES: dict[tuple[int, int, int], tuple[Context, Any, Any, dict[str, Any]]] = {}


def chip_tables(ctx: Context, efficiency: Sequence[Mapping[str, Any]] | None = None,
                power: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Per-catalog chip tables (`tables.compact`), computed once per Context and calibration: the chip terms by
    precision variant (flattened as (variant, chip)), the static chip arrays, the serving calibration by
    (engine, chip) and the catalog-wide constants."""
    key = (id(ctx), id(efficiency), id(power))
    hit = _CHIP_TABLES.get(key)
    if hit is not None and hit[0] is ctx and hit[1] is efficiency and hit[2] is power:
        return hit[3]
    nc = len(ctx.chips.ids)
    static = _chip_static(ctx)
    variants = [_chip_terms(ctx.chips.cols, static, np.full(nc, v), ctx.defaults) for v in range(N_VARIANTS)]
    serving = serving_calibration(ctx.catalog, ctx.chips.ids, efficiency, power)
    t = {
        "static": compact(static),
        "chips": compact({k: np.concatenate([c[k] for c in variants]) for k in variants[0]}),
        "cal": compact({**inference_calibration(ctx), **serving["power"], "default_engine": serving["default_engine"]}),
        "eff": compact({**{k: serving[k] for k in EFFICIENCY_KEYS}, "calibrated_on": serving["calibrated_on"],
                        "extrapolated": serving["extrapolated"],
                        "dequant_round_trip": dequant_round_trips(ctx.catalog, ctx.chips.ids),
                        "engine_runs": engine_runs(ctx.catalog, ctx.chips.ids)}),
        "limits": serving["limits"],
        "texts": serving["texts"],
    }
    if len(_CHIP_TABLES) > 16:
        _CHIP_TABLES.clear()
    _CHIP_TABLES[key] = (ctx, efficiency, power, t)
    return t


def _catalog_rows(raw: Mapping[str, Any], n: int) -> bool:
    """True when every row names catalog entries and no row gives shapes or what-ifs of its own."""
    for key, v in raw.items():
        per_row = key in (*SHAPE_FIELDS, *MOE_FIELDS, "params_b", "mlp") or key.startswith(("chip.", "cal."))
        if per_row and np.isfinite(np.asarray(v, dtype=np.float64)).any():
            return False
    chip = raw.get("chip_idx")
    return bool(n and (np.asarray(raw["model_idx"]) >= 0).all() and chip is not None and (np.asarray(chip) >= 0).all())


def assemble_inference(
    raw: Mapping[str, Any], ctx: Context, errors: RowErrors | None = None,
    efficiency: Sequence[Mapping[str, Any]] | None = None, power: Sequence[Mapping[str, Any]] | None = None,
    dtype: type | None = None,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Raw arrays -> (core inputs, calibration per row). Extra keys in the inputs (`chip_idx`, `note_mask`,
    `low_mask`, `engine`, `compute_precision`, `calibrated_on`) are for the table writer; the core ignores them.
    Rows that name catalog models and chips with no shapes or what-ifs of their own (every sweep without
    overrides) gather from per-catalog tables. `efficiency` / `power` replace the catalog's fitted serving sets
    (the validation's leave-one-source-out fits). `dtype` np.float32 (a sweep's core dtype) gathers the catalog
    columns in float32, so the core casts only the row's own columns (`tables.gather`)."""
    n = len(raw["model_idx"])
    get = getter(raw, n)
    catalog_rows = errors is None and _catalog_rows(raw, n)
    chip_idx = np.asarray(raw.get("chip_idx", np.full(n, -1)), dtype=np.int64)
    safe = np.maximum(chip_idx, 0)
    if catalog_rows:
        model_idx = np.asarray(raw["model_idx"], dtype=np.int64)
        m = gather(model_tables(ctx)["models"], model_idx, dtype)
    else:
        m = model_arrays(raw, ctx, n)
    if errors is not None:
        no_model = ~m["has_model"] & ~errors.bad
        if no_model.any():
            errors.add_message(np.nonzero(no_model)[0], "field 'model' is blank: give a catalog model id, "
                               "or layers, hidden, heads and vocab (optional params_b, kv_heads, ffn_hidden, mlp)",
                               field="model")
        no_chip = (chip_idx < 0) & ~errors.bad
        if no_chip.any():
            errors.add_message(np.nonzero(no_chip)[0], "field 'chip' is blank: give a catalog chip id", field="chip")

    # ---- workload defaults ----------------------------------------------------------------------
    # blank weight_bits: the compute precision's where one is given (fp8 / int8 matrix multiplies read 8-bit weights,
    # fp4 4-bit ones), else the workload default
    prec = get("compute_precision")
    prec_bits = np.asarray([COMPUTE_BITS[p] for p in COMPUTE_PRECISIONS], dtype=np.float64)
    wb = get("weight_bits")
    wb = np.where(np.isfinite(wb), wb, np.where(np.isfinite(prec), prec_bits[np.nan_to_num(prec).astype(np.intp)],
                                                workload_default(ctx, "weight_bits")))
    kvb = get("kv_bits")
    kvb = np.where(np.isfinite(kvb), kvb, workload_default(ctx, "kv_bits"))
    prompt = get("prompt_len")
    prompt = np.where(np.isfinite(prompt), prompt, workload_default(ctx, "prompt_len"))
    gen = get("gen_len")
    gen = np.where(np.isfinite(gen), gen, workload_default(ctx, "gen_len"))
    variant = np.where(np.isfinite(prec), prec,
                       len(COMPUTE_PRECISIONS) + (wb >= 8).astype(np.float64) + (wb >= 16)).astype(np.intp)

    # ---- the chip: catalog tables, or per-row resolution with chip.<field> what-ifs -----------------
    tables = chip_tables(ctx, efficiency, power)
    nc = len(ctx.chips.ids)
    static = gather(tables["static"], safe, dtype)
    overridden = np.zeros(n, dtype=np.int64)
    if catalog_rows:
        c = gather(tables["chips"], variant * nc + safe, dtype)
    else:
        ccols = {k: v[safe] for k, v in ctx.chips.cols.items()}
        for field, rows in chip_what_ifs(ccols, raw, get).items():
            if field in _F:
                overridden |= np.where(rows, _F[field], 0)
        c = _chip_terms(ccols, static, variant, ctx.defaults)
    cal = gather(tables["cal"], safe, dtype)
    engine = get("engine")
    engine = np.where(np.isfinite(engine), engine, cal.pop("default_engine")).astype(np.intp)
    eff = gather(tables["eff"], engine * nc + safe, dtype)
    cal.update({k: eff[k] for k in (*EFFICIENCY_KEYS, "dequant_round_trip", "engine_runs")})
    for name in ENGINE_LIMITS:  # the engine's
        cal[name] = np.asarray(tables["limits"][name], dtype=dtype or np.float64)[engine]  # one value per engine
    for name in CAL_OVERRIDES:
        if f"cal.{name}" in raw:
            over = get(f"cal.{name}")
            cal[name] = np.where(np.isfinite(over), over, cal[name])
    if "cal.max_batch" in raw:  # a row that sets the engine's limit on running requests queues what is above it
        over = get("cal.max_batch")
        cal["queue_at"] = np.where(np.isfinite(over), over, np.inf).astype(np.asarray(cal["max_batch"]).dtype)

    n_chips = get("n_chips")
    ep = get("ep")
    ep = np.where(np.isfinite(ep), ep, 1.0)
    pp = get("pp")
    pp = np.where(np.isfinite(pp), pp, 1.0)
    auto = ~np.isfinite(n_chips) & (static["sram_only"] > 0)
    multi = (n_chips > 1) | auto
    # a link the row's chips talk over is a stand-in: a stage's all-reduces ride the scale-up link where the stage
    # fits one domain, the hand-offs between stages where the whole instance does, else the scale-out network
    missing = np.asarray(c["link_missing"], dtype=np.int64)
    tp = n_chips / pp

    def stand_in_for(used: Array, inside: Array) -> Array:
        return used & ((inside & (missing & 1 > 0)) | (~inside & (missing & 2 > 0)))

    stand_in = (stand_in_for(tp > 1, tp <= c["up_domain"]) | stand_in_for(pp > 1, n_chips <= c["up_domain"])
                | (auto & (missing > 0)))
    notes = c["notes"] | (multi & stand_in) * N_LINK_FALLBACK | auto * N_SRAM_AUTO
    notes = notes | np.where(eff["extrapolated"] > 0, N_EXTRAPOLATED, 0)
    split = np.nan_to_num(get("disaggregated")) > 0
    notes = notes | np.where(split, N_DISAGG, 0)
    pools = np.isfinite(get("prefill_instances")) | np.isfinite(get("decode_instances"))
    notes = notes | np.where(~split & pools, N_POOL_IGNORED, 0)
    # a given concurrency above the engine's scheduler limit (one scheduler per chip with data-parallel attention)
    ranks = np.where(np.nan_to_num(get("dp_attention")) > 0, np.where(np.isfinite(n_chips), n_chips, 1.0), 1.0)
    above = get("concurrency") > cal["max_batch"] * ranks
    queued = np.isfinite(np.asarray(cal.get("queue_at", np.inf), dtype=np.float64))
    notes = notes | np.where(above & ~queued, N_ABOVE_MAX_BATCH, 0) | np.where(above & queued, N_QUEUED, 0)
    length = get("prompt_len") + np.nan_to_num(get("gen_len"))
    notes = notes | np.where((m["context"] > 0) & (length > m["context"]), N_BEYOND_CONTEXT, 0)
    # the cost basis a row asks for (blank: the chips' rental price where they have one, else what owning them costs):
    # owned sets the rental price aside, rental leaves a chip without one uncosted; its own notes replace the chip's
    basis = get("cost_basis")
    owned_ok = ((np.isfinite(c["purchase_usd"]) | ((static["hosted"] > 0) & np.isfinite(c["capex_usd"])))
                & np.isfinite(c["tdp_w"]))
    notes = np.where(basis == 1, notes & ~N_COST_DEFAULT, notes)  # owned asked: the rental price set aside
    notes = notes | np.where((basis == 1) & ~np.isfinite(c["purchase_usd"]), N_NO_UNIT_PRICE, 0)
    notes = np.where(basis == 0, notes & ~(N_NO_COST | N_OWNED_NO_TDP), notes)  # rental asked: no owned cost
    notes = notes | np.where((basis == 0) & ~np.isfinite(c["usd_per_hour"]), N_RENTAL_NO_PRICE, 0)
    notes = notes | np.where((basis == 1) & ~owned_ok, N_OWNED_NO_PRICE, 0)
    used = c["used"] | multi * _F["scale_up_gb_s"]
    if errors is not None:
        _row_errors(errors, raw, ctx, m, c, prec, ep, pp, n_chips, chip_idx, engine, cal, np.nan_to_num(get("dp_attention")))
    x: dict[str, Array] = {
        **{k: v for k, v in m.items() if k != "has_model"},
        "n_chips": n_chips,
        "pp": pp,
        "ep": ep,
        "dp_attention": np.nan_to_num(get("dp_attention")),
        "ep_dedup": np.nan_to_num(get("ep_dedup")),  # blank: a plain all-to-all
        "disaggregated": np.nan_to_num(get("disaggregated")),
        "prefill_instances": get("prefill_instances"),  # blank: the fewest that keep up
        "decode_instances": get("decode_instances"),  # blank: 1
        "scheduler_steps": np.where(np.isfinite(get("scheduler_steps")), get("scheduler_steps"), 1.0),
        # the row's, else the engine's default (asic.yaml serving.async_scheduling)
        "async_scheduling": np.where(np.isfinite(get("async_scheduling")), get("async_scheduling"), cal["async_scheduling"]),
        "weight_bits": wb,
        "kv_bits": kvb,
        # a state-space layer's recurrent state: the model's 16-bit dtype unless the run keeps it in fp32 (vLLM's
        # --mamba-ssm-cache-dtype auto | float32)
        "ssm_state_bits": np.where(np.isfinite(get("ssm_state_bits")), get("ssm_state_bits"), 16.0),
        "batch": get("batch"),
        "concurrency": get("concurrency"),
        "prompt_len": prompt,
        "gen_len": gen,
        "quant_overhead": quant_overhead(get("quant_overhead"), wb, ctx,
                                         nvfp4=np.nan_to_num(prec, nan=-1.0) == COMPUTE_PRECISIONS.index("fp4"),
                                         engine_format=(cal["weight_format_overhead_4bit"],
                                                        cal["weight_format_overhead_8bit"])),
        "act_bytes": np.full(n, float(ctx.defaults["act_bytes"])),
        "low_compute": np.where(np.isfinite(prec), prec_bits[np.nan_to_num(prec).astype(np.intp)] <= 8.0, False).astype(np.float64),
        "att_peak_flops": attention_peak(c, prec, kvb),
        **{k: c[k] for k in ("peak_flops", "mem_bytes", "mem_bw", "mem_reach", "up_bw", "up_domain", "up_torus", "up_mesh", "out_bw", "tdp_w",
                             "idle_w", "purchase_usd", "capex_usd")},
        "usd_per_hour": np.where(basis == 1, np.nan, c["usd_per_hour"]),  # owned asked: the rental price set aside
        "rental_only": (basis == 0).astype(np.float64),  # rental asked: no owned cost in its place
        "sram_only": static["sram_only"],
        "hosted": static["hosted"],
        "compute_reach": static["compute_reach"],
        "pre_mask": c["pre"] | inference.rule_bits(
            n_chips, pp, m["heads"], m["kv_share"], m["w_expert"], np.nan_to_num(get("dp_attention")),
            cal["whole_heads"], cal["engine_runs"], auto),
        "chip_idx": chip_idx,
        "note_mask": notes,
        "low_mask": static["low_fields"] & used & ~overridden,
        "engine": engine.astype(np.float64),
        "compute_precision": np.where(np.isfinite(prec), prec, np.nan),
        "calibrated_on": eff["calibrated_on"],
    }
    return x, cal


def _row_errors(errors: RowErrors, raw: Mapping[str, Any], ctx: Context, m: Mapping[str, Array], c: Mapping[str, Array],
                prec: Array, ep: Array, pp: Array, n_chips: Array, chip_idx: Array, engine: Array,
                cal: Mapping[str, Array], dp_attention: Array) -> None:
    """Bad combinations of good cells, each named by row, field, value and what is allowed: a compute precision
    the chip has no peak for, an engine that does not run on the chip, expert parallelism or data-parallel attention
    on a dense model, ep not dividing the chips, tensor parallelism that splits a head (ep need not divide the routed
    experts: engines place redundant copies, SGLang's --ep-num-redundant-experts)."""
    ok = ~errors.bad & (chip_idx >= 0)
    vendors = ctx.catalog.asic["serving"]["engine_vendors"]["value"]
    for i in np.nonzero(ok & (np.asarray(cal["engine_runs"]) <= 0))[0].tolist():
        chip = ctx.catalog.chips[ctx.chips.ids[int(chip_idx[i])]]
        allowed = [e for e in ENGINES if e not in vendors or chip.vendor in vendors[e]]
        errors.add([i], "engine", [ENGINES[int(engine[i])]], f"{ENGINES[int(engine[i])]} runs on "
                   f"{' and '.join(vendors[ENGINES[int(engine[i])]])} chips only, not {chip.id} ({chip.vendor}); "
                   f"allowed: {', '.join(allowed)}")
    dense_dpa = ok & (dp_attention > 0) & ~(m["is_moe"] > 0)
    if dense_dpa.any():
        errors.add(np.nonzero(dense_dpa)[0], "dp_attention", ["true"] * int(dense_dpa.sum()),
                   "data-parallel attention runs beside expert-parallel experts and needs a mixture-of-experts model "
                   "(this model is dense); allowed: false")
    no_peak = ok & np.isfinite(prec) & ((c["pre"] & inference.R_PRECISION) != 0)
    for i in np.nonzero(no_peak)[0].tolist():
        chip = ctx.chips.ids[int(chip_idx[i])]
        have = [p for p in COMPUTE_PRECISIONS if any(np.isfinite(ctx.chips.cols[f][chip_idx[i]]) for f in PRECISION_PEAKS[p])]
        errors.add([i], "compute_precision", [COMPUTE_PRECISIONS[int(prec[i])]],
                   f"chip {chip} publishes no {COMPUTE_PRECISIONS[int(prec[i])]} peak; allowed: {', '.join(have) or 'none'}"
                   f" (or a chip.{PRECISION_PEAKS[COMPUTE_PRECISIONS[int(prec[i])]][0]} column)")
    t_stage = np.where(np.isfinite(n_chips), n_chips, 1.0) / pp
    short = ok & (dp_attention > 0) & (m["is_moe"] > 0) & (ep > 1) & (ep != t_stage)
    for i in np.nonzero(short)[0].tolist():
        errors.add([i], "ep", [int(ep[i])], f"dp_attention with expert parallelism needs ep = n_chips / pp = "
                   f"{t_stage[i]:g}: each chip's tokens reach the experts by all-to-all over the ep group, which must "
                   f"span the data-parallel attention ranks (SGLang's --enable-dp-attention with DeepEP runs ep-size = "
                   f"tp-size); allowed: 1, {t_stage[i]:g} (or dp_attention false)")
    dense = ok & (ep > 1) & ~(m["is_moe"] > 0)
    if dense.any():
        rows = np.nonzero(dense)[0]
        errors.add(rows, "ep", [int(ep[i]) for i in rows], "expert parallelism needs a mixture-of-experts model "
                   "(this model is dense); allowed: 1")
    t = np.where(np.isfinite(n_chips), n_chips, 1.0)
    split = ok & (ep > 1) & (m["is_moe"] > 0) & (np.mod(t, ep) != 0)
    for i in np.nonzero(split)[0].tolist():
        divisors = [d for d in range(1, int(t[i]) + 1) if int(t[i]) % d == 0]
        errors.add([i], "ep", [int(ep[i])], f"ep must divide n_chips = {int(t[i])}; allowed: {', '.join(map(str, divisors))}")
    tp = t / pp
    kvh = m["kv_share"]
    split_head = (np.mod(m["heads"], tp) != 0) | np.where(tp >= kvh, np.mod(tp, kvh) != 0, np.mod(kvh, tp) != 0)
    split = ok & (np.asarray(cal["whole_heads"]) > 0) & (tp > 1) & ~(dp_attention > 0) & (np.mod(t, pp) == 0) & split_head
    for i in np.nonzero(split)[0].tolist():
        h, k = int(m["heads"][i]), int(kvh[i])
        fits = [d * int(pp[i]) for d in range(1, h + 1) if h % d == 0 and (d % k == 0 if d >= k else k % d == 0)]
        errors.add([i], "n_chips", [int(t[i])], f"{ENGINES[int(engine[i])]} gives each chip whole attention heads: tp = "
                   f"n_chips / pp = {int(tp[i])} must divide the {h} query heads, and the {k} KV heads divide tp or tp "
                   f"divide them; allowed: {', '.join(map(str, fits))}")
    split = ok & (pp > 1) & ((np.mod(t, pp) != 0) | (pp > m["layers"]))
    for i in np.nonzero(split)[0].tolist():
        divisors = [d for d in range(1, int(t[i]) + 1) if int(t[i]) % d == 0 and d <= m["layers"][i]]
        errors.add([i], "pp", [int(pp[i])], f"pp (layer-split stages) must divide n_chips = {int(t[i])} and not exceed "
                   f"the {int(m['layers'][i])} layers; allowed: {', '.join(map(str, divisors))}")


def _put(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    """`table` with `column` as `name`: in place of a given column of that name (an input the row asked for, as
    cost_basis), else appended."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


# bits of the weights a blank weight_bits takes from a given compute precision
COMPUTE_BITS = {"fp16": 16.0, "bf16": 16.0, "fp8": 8.0, "fp4": 4.0, "int8": 8.0}


def _inference_notes(ctx: Context, x: Mapping[str, Array]) -> Array:
    chip_idx = np.asarray(x["chip_idx"], dtype=np.int64)
    key = np.stack([chip_idx, np.asarray(x["note_mask"], np.int64), np.asarray(x["low_mask"], np.int64)], axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    texts = []
    for chip, note, low in uniq.tolist():
        parts = [msg for bit, msg in INFERENCE_NOTES.items() if note & bit]
        if note & N_LOW_CHIP and chip >= 0:
            parts[0] = f"{parts[0]} ({ctx.chips.ids[chip]})"
        fields = [f for f in NOTED_FIELDS if low & _F[f]]
        if fields:
            parts.append("low-confidence catalog value: " + ", ".join(fields) + " (see `chipsweep catalog show`)")
        texts.append("; ".join(parts))
    return np.asarray(texts, dtype=object)[inv.reshape(-1)]


def calibrated_text(ctx: Context, codes: Array, efficiency: Any = None, power: Any = None) -> Array:
    """The `calibrated_on` text of each row from its code."""
    texts = np.asarray(chip_tables(ctx, efficiency, power)["texts"], dtype=object)
    return texts[np.asarray(codes, dtype=np.int64)]


def search_ep(x: Mapping[str, Array], cal: Mapping[str, Any], rows: Array) -> Array:
    """`x["ep"]` with each of `rows` (a mixture-of-experts model, ep left blank, more than one chip) at the expert
    parallelism that serves the most output tokens/s: every ep that divides its chips (1 included) evaluated, the
    fastest feasible kept (1 where none is feasible), as a blank layout cell is searched everywhere else."""
    ep = np.array(x["ep"], dtype=np.float64, copy=True)
    idx = np.nonzero(rows)[0]
    cand_row, cand_ep = [], []
    for i in idx.tolist():
        t = int(x["n_chips"][i])
        for d in range(1, t + 1):
            if t % d == 0:
                cand_row.append(i)
                cand_ep.append(float(d))
    take = np.asarray(cand_row, dtype=np.int64)
    xs = {k: (np.asarray(v)[take] if np.ndim(v) else v) for k, v in x.items()}
    xs["ep"] = np.asarray(cand_ep)
    res = inference.evaluate(xs, {k: (np.asarray(v)[take] if np.ndim(v) else v) for k, v in cal.items()})
    score = np.where(np.asarray(res["reason_mask"]) == 0, np.nan_to_num(res["output_tokens_per_s"], nan=-1.0), -1.0)
    for i in idx.tolist():
        mine = np.nonzero(take == i)[0]
        best = mine[int(np.argmax(score[mine]))]
        ep[i] = cand_ep[best] if score[best] > 0 else 1.0
    return ep


def evaluate_inference(table: pa.Table, ctx: Context, *, strict: bool = False,
                       efficiency: Sequence[Mapping[str, Any]] | None = None,
                       power: Sequence[Mapping[str, Any]] | None = None,
                       explain: bool = False) -> tuple[pa.Table, RowErrors]:
    """The rows of `table` as serving configurations: inputs, resolved choices, the CONTRACT.md outputs, and with
    `explain` the parts TPOT and TTFT are made of (`inference.EXPLAIN_OUT`, after the outputs)."""
    errors = RowErrors(table.num_rows)
    raw = parse_inference(table, ctx, errors)
    x, cal = assemble_inference(raw, ctx, errors, efficiency, power)
    if strict and errors:
        raise errors.error()
    n = table.num_rows
    searched = ~errors.bad & ~np.isfinite(raw["ep"]) & (x["w_expert"] > 0) & (np.nan_to_num(x["n_chips"]) > 1)
    if searched.any():
        x["ep"] = search_ep(x, cal, searched)
    out = run_good_rows(errors, lambda rows: inference.evaluate(
        {k: v[rows] for k, v in x.items()}, {k: (v[rows] if np.ndim(v) else v) for k, v in cal.items()},
        explain=explain))
    mask = np.array(out.get("reason_mask", np.zeros(n, dtype=np.int64)), dtype=np.int64)
    mem_bits = inference.R_MEMORY | inference.R_NOFIT
    # a concurrency the memory cannot hold is a bad cell (row, field, value, the range that fits)
    too_many = ((mask & inference.R_MEMORY) != 0) & ((mask & inference.R_NOFIT) == 0) & np.isfinite(x["concurrency"])
    for i in np.nonzero(too_many)[0].tolist():
        errors.add([i], "concurrency", [int(x["concurrency"][i])], _concurrency_reason(i, x, out, cal))
    mask = np.where(too_many, mask & ~mem_bits, mask)
    # a prompt pool too small for its decode instances' prompts is a bad cell too (the fewest that keep up)
    short_pool = ((mask & inference.R_POOL) != 0) & np.isfinite(x["prefill_instances"])
    for i in np.nonzero(short_pool)[0].tolist():
        errors.add([i], "prefill_instances", [int(x["prefill_instances"][i])], _pool_reason(i, x, out))
    mask = np.where(short_pool, mask & ~inference.R_POOL, mask)
    # ... and a disaggregated row without prompts or outputs (nothing to move to a pool of its own)
    no_split = (mask & inference.R_SPLIT) != 0
    for i in np.nonzero(no_split)[0].tolist():
        errors.add([i], "disaggregated", ["true"],
                   f"allowed: false where prompt_len or gen_len is 0 (this row's {x['prompt_len'][i]:.0f} and "
                   f"{x['gen_len'][i]:.0f}: no prefill to move to a pool of its own)")
    mask = np.where(no_split, mask & ~inference.R_SPLIT, mask)
    if strict and errors:
        raise errors.error()
    reason = inference.reason_text(mask & ~mem_bits)
    reason = ctx.with_quoted(reason, (mask & (inference.R_NO_BW | inference.R_NO_MEM)) != 0,
                             np.asarray(raw.get("chip_idx", np.full(n, -1)), dtype=np.int64))
    for i in np.nonzero((mask & mem_bits) != 0)[0].tolist():
        reason[i] = "; ".join(r for r in (reason[i], _memory_reason(i, x, out, int(mask[i]))) if r)
    refuse_infeasible(strict, mask, reason, INFERENCE_REFUSAL_FIELDS, x)
    bad = errors.bad
    reason = np.where(bad, errors.text(), reason)
    notes = np.where(bad, "", _inference_notes(ctx, x))
    resolved = {
        "n_chips": out.get("n_chips", x["n_chips"]),
        "pp": x["pp"],
        "ep": x["ep"],
        "weight_bits": x["weight_bits"],
        "kv_bits": x["kv_bits"],
        "ssm_state_bits": x["ssm_state_bits"],
        "compute_precision": x["compute_precision"],
        "engine": x["engine"],
        "batch": out.get("batch", x["batch"]),
        "concurrency": out.get("concurrency", x["concurrency"]),
        "disaggregated": x["disaggregated"],
        "prefill_instances": out.get("prefill_instances", x["prefill_instances"]),
        "decode_instances": out.get("decode_instances", x["decode_instances"]),
        "dp_attention": x["dp_attention"],
        "ep_dedup": x["ep_dedup"],
        "scheduler_steps": x["scheduler_steps"],
        "async_scheduling": x["async_scheduling"],
        "prompt_len": x["prompt_len"],
        "gen_len": x["gen_len"],
    }
    text = {"compute_precision": COMPUTE_PRECISIONS, "engine": ENGINES}
    names = INFERENCE_OUT + (inference.EXPLAIN_OUT if explain else ())
    result = result_table(table, resolved, names, out, bad, reason, notes, text,
                          flags=("disaggregated", "dp_attention", "async_scheduling", "ep_dedup"))
    calibrated = np.where(bad, None, calibrated_text(ctx, x["calibrated_on"], efficiency, power))
    result = _put(result, "calibrated_on", pa.array(calibrated.tolist(), type=pa.string()))
    code = inference.cost_basis(x["usd_per_hour"], out.get("usd_per_million_tokens", np.full(n, np.nan)))
    result = _put(result, "cost_basis", cost_basis_text(code, bad))  # replaces the given cost_basis, as training's
    # a concurrency the memory cannot hold is refused, but its bytes are known: the row says how many and that it
    # does not fit, as the sweep's lake row does (fits false, mem_gb), not blanks
    over = too_many & np.isfinite(np.asarray(out.get("mem_gb", np.full(n, np.nan)), dtype=np.float64))
    if over.any():
        mem = np.where(over, out["mem_gb"], result.column("mem_gb").to_numpy(zero_copy_only=False))
        fits = [False if over[i] else v for i, v in enumerate(result.column("fits").to_pylist())]
        result = result.set_column(result.schema.get_field_index("mem_gb"), "mem_gb", pa.array(mem, type=pa.float64()))
        result = result.set_column(result.schema.get_field_index("fits"), "fits", pa.array(fits, type=pa.bool_()))
    return result, errors


def _concurrency_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array], cal: Mapping[str, Any]) -> str:
    """Why a row's concurrency does not fit, and the range that does; where the row's tensor parallelism keeps a
    copy of each request's KV cache on every chip (fewer KV heads than chips, or latent attention's one latent), that
    attention data parallelism would not."""
    fit = int(max(out["concurrency_fit"][i], 0))
    reserve = float(np.atleast_1d(inference.cal_at(cal, "kv_reserve", np.array([i])))[0])  # share of g reserved
    kv = "prompt_len + gen_len" if reserve == 1 else f"prompt_len + {reserve:g} x gen_len"
    allowed = ("1" if fit == 1 else f"1 to {fit}") if fit >= 1 else "none (weights and activations alone fill the memory: raise n_chips or lower weight_bits)"
    text = (f"does not fit in memory ({out['mem_gb'][i]:.2f} GB per chip > {out['mem_limit_gb'][i]:.2f} GB usable on each "
            f"of {int(out['n_chips'][i])} chip(s), KV cache of {kv} tokens per request); "
            f"allowed: {allowed} at this model, chips and lengths")
    tp = float(out["n_chips"][i]) / max(float(x["pp"][i]) if np.isfinite(x["pp"][i]) else 1.0, 1.0)
    share = float(x["kv_share"][i])
    if not x["dp_attention"][i] > 0 and tp > share and x["w_expert"][i] > 0:  # data-parallel attention: MoE only
        kept = "one KV head or latent" if share == 1 else f"{share:g} KV heads"
        text += (f"; or set dp_attention true: the model keeps {kept} per layer, so tensor parallelism over {tp:g} "
                 f"chips holds each request's KV cache {tp / share:g}x over, where attention data parallelism keeps "
                 "each chip's own requests' only")
    return text


def _pool_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array]) -> str:
    """What a given prompt pool too small for its decode instances' prompts needs."""
    given = int(x["prefill_instances"][i])
    demand = out["pool_busy"][i] * given  # prompt instances' worth of passes
    need = np.floor(demand) + 1.0
    why = (f"the prompts of {out['decode_instances'][i]:.0f} decode instance(s) keep {demand:.2f} prompt instances "
           f"busy, so {given} never catch up")
    if not np.isfinite(x["concurrency"][i]) and not np.isfinite(x["batch"][i]):  # (a given batch sets it)
        why += " with one request each (a blank concurrency is the most whose prompts the pool takes within a pass)"
    if need > MAX_INSTANCES:
        return (f"allowed: an integer from 1 to {MAX_INSTANCES}, and these prompts need at least {need:.0f}: leave it "
                f"blank (the fewest that keep up) or serve fewer decode_instances; {why}")
    return f"allowed: at least {need:.0f} (or blank: the fewest whose queue keeps a prompt's wait within its pass): {why}"


def _memory_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array], mask: int) -> str:
    t = int(out["n_chips"][i])
    limit = out["mem_limit_gb"][i]
    if mask & inference.R_NOFIT:
        one = x["params"][i] * x["weight_bits"][i] / 8.0 * (1.0 + x["quant_overhead"][i]) / 1e9 / t
        return (f"does not fit in memory at any batch: {out['mem_gb'][i]:.2f} GB per chip at batch 1 "
                f"(weights {one:.2f} GB) > {limit:.2f} GB usable on each of {t} chip(s); raise n_chips, lower weight_bits")
    return (f"does not fit in memory at batch {int(out['batch'][i])}: {out['mem_gb'][i]:.2f} GB per chip > "
            f"{limit:.2f} GB usable on each of {t} chip(s); leave batch blank for the largest that fits")
