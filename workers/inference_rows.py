"""Inference rows on catalog chips, for `chipsweep evaluate --kind inference` and for sweep chunks.

`parse_inference` turns a table into raw arrays (catalog indices, NaN where a cell is blank) with per-row
errors; `assemble_inference` resolves catalog entries, `chip.<field>` / `cal.<name>` overrides and defaults
into the core's inputs and calibration (sweep workers build `raw` from decoded axes and call it too); the
numpy core is `workers.inference`. `evaluate_inference` returns the input table with the resolved workload,
the outputs, the reasons and the notes. Bad rows carry their message in `infeasible_reason`; they never stop
the other rows unless `strict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.columns import FACTS
from chipsweep.schemas.vocab import OVERRIDABLE, SHAPE_FIELDS
from chipsweep.workers import inference
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors, ids, numbers
from chipsweep.workers.results import refuse_infeasible, result_table, run_good_rows
from chipsweep.workers.tables import chip_link_arrays, compact, gather
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

CAL_OVERRIDES = ("mem_bw_fraction", "compute_fraction", "idle_fraction", "link_fraction")

# chip fields the inference path reads, for the low-confidence notes (bit i = field i)
NOTED_FIELDS = (
    "peak_tflops_fp16", "peak_tflops_bf16", "peak_tflops_fp8", "peak_tops_int8", "neural_engine_tops",
    "memory_gb", "sram_mb", "memory_bandwidth_gb_s", "tdp_w", "purchase_usd", "scale_up_gb_s",
)
_F = {f: 1 << i for i, f in enumerate(NOTED_FIELDS)}

# inference notes (informational)
N_ANE = 1
N_WEIGHT_ONLY = 2
N_NO_TDP = 4
N_LINK_FALLBACK = 8
N_SRAM_AUTO = 16
N_LOW_CHIP = 32
N_NO_PRICE = 64
N_WAFER = 128
INFERENCE_NOTES = {
    N_LOW_CHIP: "chip catalog confidence is low",
    N_ANE: "compute peak = Apple Neural Engine TOPS (precision unstated; the GPU peak is not in the catalog)",
    N_WEIGHT_ONLY: "no INT8/FP8 peak published: 4/8-bit weights run at the 16-bit peak (weight-only quantisation)",
    N_NO_TDP: "energy not computed: tdp_w not published (add a chip.tdp_w column)",
    N_NO_PRICE: "unit cost not computed: purchase_usd not published (add a chip.purchase_usd column)",
    N_LINK_FALLBACK: "no published scale-up link: tensor-parallel all-reduce over PCIe 4.0 x16 (defaults.fallback_link_gb_s)",
    N_SRAM_AUTO: "SRAM-only chip: n_chips = the fewest chips whose SRAM holds the model",
    N_WAFER: "wafer-scale system: the roofline treats it as one chip; the latency of its layer pipeline at small "
    "batch is not modelled (optimistic)",
}


def _set_applies(catalog: Any, chip_ids: list[str], targets: list[str], level: str) -> Array:
    classes = [catalog.chips[c].chip_class for c in chip_ids]
    if level == "class":
        return np.array([cl in targets for cl in classes])
    return np.array([cid in targets for cid in chip_ids])


def inference_calibration(ctx: Context) -> dict[str, Array]:
    """Each inference calibration constant of asic.yaml as an array over chips (default < class < id)."""
    sets: Mapping[str, Any] = ctx.catalog.asic.get("inference") or {}
    ids_ = ctx.chips.ids
    out: dict[str, Array] = {}
    for key, const in (sets.get("default") or {}).items():
        if isinstance(const, dict) and "value" in const:
            out[key] = np.full(len(ids_), float(const["value"]))
    for level in ("class", "id"):
        for name, cset in sets.items():
            if name == "default" or not isinstance(cset, dict):
                continue
            rows = _set_applies(ctx.catalog, ids_, list(cset.get("applies_to") or []), level)
            for key, const in cset.items():
                if isinstance(const, dict) and "value" in const:
                    out.setdefault(key, np.full(len(ids_), np.nan))[rows] = float(const["value"])
    out["mem_usable"] = np.full(len(ids_), float(ctx.defaults["mem_usable"]))
    return out


def _chip_static(ctx: Context) -> dict[str, Array]:
    """Per-chip arrays the inference path needs beyond ChipTable: SRAM-only flag, low-confidence field bits."""
    chips = [ctx.catalog.chips[c] for c in ctx.chips.ids]
    low = np.array([sum(_F[f] for f in c.low_confidence_fields if f in _F) for c in chips], dtype=np.int64)
    return {
        "sram_only": np.array([1.0 if c.system_kind == "sram_only" else 0.0 for c in chips]),
        "low_fields": low,
        "low_chip": np.array([c.confidence == "low" for c in chips]),
        "wafer": np.array([c.system_kind in ("wafer_scale", "tile") for c in chips]),
    }


def parse_inference(table: pa.Table, ctx: Context, errors: RowErrors) -> dict[str, Array]:
    """An inference table -> raw arrays (catalog indices; NaN where blank), errors recorded."""
    raw: dict[str, Array] = {}
    parse_model(table, ctx, errors, raw)
    raw["chip_idx"] = ids(table, "chip", ctx.chips.index(), errors, "chip")
    raw["n_chips"] = numbers(table, "n_chips", errors, integer=True, minimum=1)
    raw["weight_bits"] = parse_bits(table, "weight_bits", errors)
    raw["kv_bits"] = parse_bits(table, "kv_bits", errors)
    raw["batch"] = numbers(table, "batch", errors, integer=True, minimum=1)
    raw["prompt_len"] = numbers(table, "prompt_len", errors, integer=True, minimum=0)
    raw["gen_len"] = numbers(table, "gen_len", errors, integer=True, minimum=0)
    raw["quant_overhead"] = numbers(table, "quant_overhead", errors, minimum=0, maximum=1)
    for field in OVERRIDABLE:
        if f"chip.{field}" in table.column_names:
            raw[f"chip.{field}"] = numbers(table, f"chip.{field}", errors, minimum=0)
    for name in CAL_OVERRIDES:
        if f"cal.{name}" in table.column_names:
            raw[f"cal.{name}"] = numbers(table, f"cal.{name}", errors, minimum=1e-9, maximum=1)
    return raw


def _chip_terms(ccols: Mapping[str, Array], static: Mapping[str, Array], wb: Array, defaults: Mapping[str, float]) -> dict[str, Array]:
    """Per-row chip quantities that do not depend on the workload beyond the weight precision: the compute
    peak (activations at >= 8 bits), missing-number reasons, notes and the catalog fields the row uses."""
    p16 = np.fmax(ccols["peak_tflops_fp16"], ccols["peak_tflops_bf16"])  # TFLOP/s, NaN if neither
    int8, fp8 = ccols["peak_tops_int8"], ccols["peak_tflops_fp8"]
    p8 = np.where(np.isfinite(int8), int8, fp8)
    low_bits = wb <= 8
    peak = np.where(low_bits & np.isfinite(p8), p8, p16)  # W8A8 / W4A8 where published, else 16-bit
    used = np.where(low_bits & np.isfinite(int8), _F["peak_tops_int8"],
                    np.where(low_bits & np.isfinite(fp8), _F["peak_tflops_fp8"],
                             np.where(np.isfinite(ccols["peak_tflops_fp16"]), _F["peak_tflops_fp16"], _F["peak_tflops_bf16"])))
    notes = np.where(low_bits & ~np.isfinite(p8) & np.isfinite(p16), N_WEIGHT_ONLY, 0)
    ane = ~np.isfinite(peak) & np.isfinite(ccols["neural_engine_tops"])
    peak = np.where(ane, ccols["neural_engine_tops"], peak)
    used = np.where(ane, _F["neural_engine_tops"], used)
    notes |= np.where(ane, N_ANE, 0)
    any_peak = np.isfinite(p16) | np.isfinite(p8) | np.isfinite(ccols["neural_engine_tops"])
    pre = np.where(~np.isfinite(peak) & any_peak, inference.R_PRECISION, 0)
    pre |= np.where(~any_peak, inference.R_NO_PEAK, 0)
    links = chip_link_arrays(ccols, defaults)
    pre |= np.where(~np.isfinite(links["mem_bw"]), inference.R_NO_BW, 0)
    pre |= np.where(~np.isfinite(links["mem_bytes"]), inference.R_NO_MEM, 0)
    notes |= np.where(~np.isfinite(ccols["tdp_w"]), N_NO_TDP, 0)
    notes |= np.where(~np.isfinite(ccols["purchase_usd"]), N_NO_PRICE, 0)
    notes |= np.where(static["low_chip"], N_LOW_CHIP, 0)
    notes |= np.where(static["wafer"], N_WAFER, 0)
    used |= _F["memory_bandwidth_gb_s"] | _F["tdp_w"] | _F["purchase_usd"]
    used |= np.where(np.isfinite(ccols["memory_gb"]), _F["memory_gb"], _F["sram_mb"])
    return {
        "peak_flops": peak * 1e12,
        "used": used.astype(np.int64),
        "notes": notes.astype(np.int64),
        "pre": pre.astype(np.int64),
        "no_scale_up": (~np.isfinite(ccols["scale_up_gb_s"])).astype(np.float64),
        **{k: links[k] for k in ("mem_bytes", "mem_bw", "up_bw", "up_domain", "out_bw")},
        "tdp_w": ccols["tdp_w"],
        "idle_w": ccols["idle_w"],
        "purchase_usd": ccols["purchase_usd"],
    }


_CHIP_TABLES: dict[int, tuple[Context, dict[str, Any]]] = {}


def _chip_tables(ctx: Context) -> dict[str, Any]:
    """Per-catalog chip tables (`tables.compact`), computed once per Context: the chip terms by weight precision
    (flattened as (bits index, chip)), the static chip arrays and the inference calibration."""
    hit = _CHIP_TABLES.get(id(ctx))
    if hit is not None and hit[0] is ctx:
        return hit[1]
    nc = len(ctx.chips.ids)
    static = _chip_static(ctx)
    by_bits = [_chip_terms(ctx.chips.cols, static, np.full(nc, b), ctx.defaults) for b in (4.0, 8.0, 16.0)]
    t = {
        "static": compact(static),
        "chips": compact({k: np.concatenate([c[k] for c in by_bits]) for k in by_bits[0]}),
        "cal": compact(inference_calibration(ctx)),
    }
    if len(_CHIP_TABLES) > 8:
        _CHIP_TABLES.clear()
    _CHIP_TABLES[id(ctx)] = (ctx, t)
    return t


def _catalog_rows(raw: Mapping[str, Any], n: int) -> bool:
    """True when every row names catalog entries and no row gives shapes or what-ifs of its own."""
    for key, v in raw.items():
        per_row = key in (*SHAPE_FIELDS, "params_b", "mlp") or key.startswith(("chip.", "cal."))
        if per_row and np.isfinite(np.asarray(v, dtype=np.float64)).any():
            return False
    chip = raw.get("chip_idx")
    return bool(n and (np.asarray(raw["model_idx"]) >= 0).all() and chip is not None and (np.asarray(chip) >= 0).all())


def assemble_inference(
    raw: Mapping[str, Any], ctx: Context, errors: RowErrors | None = None
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Raw arrays -> (core inputs, calibration per row). Extra keys in the inputs (`chip_idx`, `note_mask`,
    `low_mask`) are for the table writer; the core ignores them. Rows that name catalog models and chips
    with no shapes or what-ifs of their own (every sweep without overrides) gather from per-catalog tables."""
    n = len(raw["model_idx"])
    get = getter(raw, n)
    catalog_rows = errors is None and _catalog_rows(raw, n)
    chip_idx = np.asarray(raw.get("chip_idx", np.full(n, -1)), dtype=np.int64)
    safe = np.maximum(chip_idx, 0)
    if catalog_rows:
        model_idx = np.asarray(raw["model_idx"], dtype=np.int64)
        m = gather(model_tables(ctx)["models"], model_idx)
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
    wb = get("weight_bits")
    wb = np.where(np.isfinite(wb), wb, workload_default(ctx, "weight_bits"))
    kvb = get("kv_bits")
    kvb = np.where(np.isfinite(kvb), kvb, workload_default(ctx, "kv_bits"))
    prompt = get("prompt_len")
    prompt = np.where(np.isfinite(prompt), prompt, workload_default(ctx, "prompt_len"))
    gen = get("gen_len")
    gen = np.where(np.isfinite(gen), gen, workload_default(ctx, "gen_len"))

    # ---- the chip: catalog tables, or per-row resolution with chip.<field> what-ifs -----------------
    tables = _chip_tables(ctx)
    static = gather(tables["static"], safe)
    overridden = np.zeros(n, dtype=np.int64)
    if catalog_rows:
        flat = ((wb >= 8).astype(np.intp) + (wb >= 16)) * len(ctx.chips.ids) + safe  # (bits index, chip)
        c = gather(tables["chips"], flat)
    else:
        ccols = {k: v[safe] for k, v in ctx.chips.cols.items()}
        for field in OVERRIDABLE:
            if f"chip.{field}" in raw:
                over = get(f"chip.{field}")
                ccols[field] = np.where(np.isfinite(over), over, ccols[field])
                if field in _F:
                    overridden |= np.where(np.isfinite(over), _F[field], 0)
        c = _chip_terms(ccols, static, wb, ctx.defaults)
    n_chips = get("n_chips")
    auto = ~np.isfinite(n_chips) & (static["sram_only"] > 0)
    multi = (n_chips > 1) | auto
    notes = c["notes"] | (multi & (c["no_scale_up"] > 0)) * N_LINK_FALLBACK | auto * N_SRAM_AUTO
    used = c["used"] | multi * _F["scale_up_gb_s"]
    x: dict[str, Array] = {
        **{k: v for k, v in m.items() if k != "has_model"},
        "n_chips": n_chips,
        "weight_bits": wb,
        "kv_bits": kvb,
        "batch": get("batch"),
        "prompt_len": prompt,
        "gen_len": gen,
        "quant_overhead": quant_overhead(get("quant_overhead"), wb, ctx),
        "act_bytes": np.full(n, float(ctx.defaults["act_bytes"])),
        **{k: c[k] for k in ("peak_flops", "mem_bytes", "mem_bw", "up_bw", "up_domain", "out_bw", "tdp_w", "idle_w",
                             "purchase_usd")},
        "sram_only": static["sram_only"],
        "pre_mask": c["pre"],
        "chip_idx": chip_idx,
        "note_mask": notes,
        "low_mask": static["low_fields"] & used & ~overridden,
    }
    cal = gather(tables["cal"], safe)
    for name in CAL_OVERRIDES:
        if f"cal.{name}" in raw:
            over = get(f"cal.{name}")
            cal[name] = np.where(np.isfinite(over), over, cal[name])
    return x, cal


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


def evaluate_inference(table: pa.Table, ctx: Context, *, strict: bool = False) -> tuple[pa.Table, RowErrors]:
    errors = RowErrors(table.num_rows)
    raw = parse_inference(table, ctx, errors)
    x, cal = assemble_inference(raw, ctx, errors)
    if strict and errors:
        raise errors.error()
    n = table.num_rows
    out = run_good_rows(errors, lambda rows: inference.evaluate(
        {k: v[rows] for k, v in x.items()}, {k: (v[rows] if np.ndim(v) else v) for k, v in cal.items()}))
    mask = out.get("reason_mask", np.zeros(n, dtype=np.int64))
    mem_bits = inference.R_MEMORY | inference.R_NOFIT
    reason = inference.reason_text(mask & ~mem_bits)
    for i in np.nonzero((mask & mem_bits) != 0)[0].tolist():
        reason[i] = "; ".join(r for r in (reason[i], _memory_reason(i, x, out, int(mask[i]))) if r)
    refuse_infeasible(strict, mask, reason)
    bad = errors.bad
    reason = np.where(bad, errors.text(), reason)
    notes = np.where(bad, "", _inference_notes(ctx, x))
    resolved = {
        "n_chips": out.get("n_chips", x["n_chips"]),
        "weight_bits": x["weight_bits"],
        "kv_bits": x["kv_bits"],
        "batch": out.get("batch", x["batch"]),
        "prompt_len": x["prompt_len"],
        "gen_len": x["gen_len"],
    }
    return result_table(table, resolved, INFERENCE_OUT, out, bad, reason, notes), errors


def _memory_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array], mask: int) -> str:
    t = int(out["n_chips"][i])
    limit = out["mem_limit_gb"][i]
    if mask & inference.R_NOFIT:
        one = x["params"][i] * x["weight_bits"][i] / 8.0 * (1.0 + x["quant_overhead"][i]) / 1e9 / t
        return (f"does not fit in memory at any batch: {out['mem_gb'][i]:.2f} GB per chip at batch 1 "
                f"(weights {one:.2f} GB) > {limit:.2f} GB usable on each of {t} chip(s); raise n_chips, lower weight_bits")
    return (f"does not fit in memory at batch {int(out['batch'][i])}: {out['mem_gb'][i]:.2f} GB per chip > "
            f"{limit:.2f} GB usable on each of {t} chip(s); leave batch blank for the largest that fits")


