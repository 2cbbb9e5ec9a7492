"""Explicit inference and edge-ASIC configurations in, results out (`chipsweep evaluate --kind inference|asic`).

Each kind is split like training: `parse_<kind>` turns a table into raw arrays (catalog indices, NaN where a
cell is blank, choices as indices into the exported tuples) with per-row errors; `assemble_<kind>` resolves
catalog entries, `chip.<field>` / `cal.<name>` overrides and defaults into the core's inputs (sweep workers
build `raw` from decoded axes and call it too); the numpy cores are `workers.inference` and `workers.asic`.
Bad rows carry their message in `infeasible_reason`; they never stop the other rows unless `strict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.vocab import (
    ARCHS,
    ASIC_PRECISIONS,
    BITS,
    DRAM_TYPES,
    MLP_TYPES,
    OVERRIDABLE,
    SHAPE_FIELDS,
    YIELD_MODELS,
)
from chipsweep.workers import asic, inference
from chipsweep.workers.evaluate import Context, EvaluateError
from chipsweep.workers.parse import RowErrors, choices, ids, numbers
from chipsweep.workers.tables import chip_link_arrays, model_shape_arrays
from chipsweep.workers.transformer import Shapes, total_params

Array = np.ndarray

__all__ = [
    "ARCHS", "ASIC_PRECISIONS", "DRAM_TYPES", "MLP_TYPES", "YIELD_MODELS", "assemble_asic", "assemble_inference",
    "evaluate_asic", "evaluate_inference", "parse_asic", "parse_inference",
]

MODEL_FIELDS = SHAPE_FIELDS
CAL_OVERRIDES = ("mem_bw_fraction", "compute_fraction", "idle_fraction", "link_fraction")
_MODEL_KEYS = ("has_model", "layers", "hidden", "q_dim", "kv_dim", "kv_heads", "ffn", "n_proj", "vocab", "params",
               "params_read")

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
# asic notes added by the glue (the core's own start at bit 0)
N_MAC_FROM_TOPS = 1 << 10


# ---------------------------------------------------------------------------------------------------
# catalog-derived tables
# ---------------------------------------------------------------------------------------------------
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


def fitted_case_ids(catalog: Any) -> set[str]:
    """Validation case ids any edge constant in asic.yaml was fitted on."""
    out: set[str] = set()
    for section in ("inference", "asic"):
        for item in (catalog.asic.get(section) or {}).values():
            if not isinstance(item, dict):
                continue
            consts = [item] if "value" in item else [c for c in item.values() if isinstance(c, dict)]
            for c in consts:
                out.update(str(v) for v in c.get("fitted_on") or [])
    return out


def _workload_default(ctx: Context, name: str) -> float:
    return float(ctx.catalog.asic["workload_defaults"][name]["value"])


def _chip_static(ctx: Context) -> dict[str, Array]:
    """Per-chip arrays the edge kinds need beyond ChipTable: SRAM-only flag, low-confidence field bits."""
    chips = [ctx.catalog.chips[c] for c in ctx.chips.ids]
    low = np.array([sum(_F[f] for f in c.low_confidence_fields if f in _F) for c in chips], dtype=np.int64)
    return {
        "sram_only": np.array([1.0 if c.system_kind == "sram_only" else 0.0 for c in chips]),
        "low_fields": low,
        "low_chip": np.array([c.confidence == "low" for c in chips]),
        "wafer": np.array([c.system_kind in ("wafer_scale", "tile") for c in chips]),
    }


# ---------------------------------------------------------------------------------------------------
# the model (catalog id and/or explicit shapes), shared by both kinds
# ---------------------------------------------------------------------------------------------------
def _parse_model(table: pa.Table, ctx: Context, errors: RowErrors, raw: dict[str, Array]) -> None:
    raw["model_idx"] = ids(table, "model", ctx.models.index(), errors, "model")
    raw["params_b"] = numbers(table, "params_b", errors, minimum=1e-9, allowed="allowed: a number > 0 (billions of parameters)")
    for field in MODEL_FIELDS:
        raw[field] = numbers(table, field, errors, integer=True, minimum=1)
    raw["mlp"] = choices(table, "mlp", MLP_TYPES, errors)


def _getter(raw: Mapping[str, Any], n: int):  # type: ignore[no-untyped-def]
    nan = np.full(n, np.nan)

    def get(key: str) -> Array:
        v = raw.get(key)
        return nan if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))

    return get


def _model_arrays(raw: Mapping[str, Any], ctx: Context, n: int) -> dict[str, Array]:
    """Model shapes, parameter counts and whether the row has a model at all."""
    get = _getter(raw, n)
    model_idx = np.asarray(raw.get("model_idx", np.full(n, -1)), dtype=np.int64)
    mcols = {k: np.where(model_idx >= 0, v[np.maximum(model_idx, 0)], np.nan) for k, v in ctx.models.cols.items()}
    for field in MODEL_FIELDS:
        given = get(field)
        mcols[field] = np.where(np.isfinite(given), given, mcols[field])
    mlp = get("mlp")
    mcols["n_proj"] = np.where(np.isfinite(mlp), 2.0 + mlp, mcols["n_proj"])
    for field, default in (("n_proj", 2.0), ("learned_pos", 0.0), ("tied", 1.0), ("seq_len", 0.0)):
        mcols[field] = np.where(np.isfinite(mcols[field]), mcols[field], default)
    s = model_shape_arrays(mcols)
    shapes = Shapes(s["layers"], s["hidden"], s["heads"], s["kv_heads"], s["head_dim"], s["ffn"], s["vocab"],
                    s["seq"], s["n_proj"], s["learned_pos"], s["tied"])
    given_params = get("params_b") * 1e9
    params = np.where(np.isfinite(given_params), given_params, total_params(shapes))  # parameters
    has = np.isfinite(s["layers"]) & np.isfinite(s["hidden"]) & np.isfinite(s["heads"]) & np.isfinite(s["vocab"])
    return {
        "has_model": has,
        "layers": s["layers"],
        "hidden": s["hidden"],
        "kv_heads": s["kv_heads"],
        "q_dim": s["heads"] * s["head_dim"],
        "kv_dim": s["kv_heads"] * s["head_dim"],
        "ffn": s["ffn"],
        "n_proj": s["n_proj"],
        "vocab": s["vocab"],
        "params": params,
        # decode reads every weight but the input embedding table (indexed, not multiplied) when untied
        "params_read": params - (1.0 - s["tied"]) * s["vocab"] * s["hidden"],
    }


def _bits(table: pa.Table, name: str, errors: RowErrors) -> Array:
    idx = choices(table, name, BITS, errors)
    return np.where(np.isfinite(idx), np.asarray([4.0, 8.0, 16.0])[np.nan_to_num(idx).astype(np.int64)], np.nan)


def _quant_overhead(given: Array, bits: Array, ctx: Context) -> Array:
    table = ctx.catalog.asic["asic"]["quant_overhead"]["value"]
    default = np.select([bits <= 4, bits <= 8], [float(table[4]), float(table[8])], float(table[16]))
    return np.where(np.isfinite(given), given, default)


# ---------------------------------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------------------------------
def parse_inference(table: pa.Table, ctx: Context, errors: RowErrors) -> dict[str, Array]:
    """An inference table -> raw arrays (catalog indices; NaN where blank), errors recorded."""
    raw: dict[str, Array] = {}
    _parse_model(table, ctx, errors, raw)
    raw["chip_idx"] = ids(table, "chip", ctx.chips.index(), errors, "chip")
    raw["n_chips"] = numbers(table, "n_chips", errors, integer=True, minimum=1)
    raw["weight_bits"] = _bits(table, "weight_bits", errors)
    raw["kv_bits"] = _bits(table, "kv_bits", errors)
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


_TABLES: dict[int, tuple[Context, dict[str, Any]]] = {}


def _compact(cols: Mapping[str, Array]) -> dict[str, Any]:
    """Per-catalog columns prepared for `_gather`: columns whose every entry is the same are kept as 0-d
    arrays (broadcast, no per-row copy); the others are stacked into one float array (one take for all)."""
    const, varying, kinds = {}, [], {}
    for k, v in cols.items():
        v = np.asarray(v)
        if v.size > 0 and (np.all(v == v.flat[0]) or (v.dtype.kind == "f" and np.isnan(v).all())):
            const[k] = np.asarray(v.flat[0])
        else:
            varying.append(k)
            kinds[k] = v.dtype
    stack = np.stack([np.asarray(cols[k], dtype=np.float64) for k in varying]) if varying else np.zeros((0, 0))
    return {"const": const, "names": varying, "dtypes": kinds, "stack": stack}


def _gather(table: Mapping[str, Any], idx: Array) -> dict[str, Array]:
    """Rows `idx` of a `_compact` table: one take over the stacked columns, broadcast views for constants."""
    n = len(idx)
    out = {k: np.broadcast_to(v, (n,)) for k, v in table["const"].items()}
    if table["names"]:
        rows = np.take(table["stack"], idx, axis=1)  # (column, row), each row of the result contiguous
        for name, row in zip(table["names"], rows, strict=True):
            dtype = table["dtypes"][name]
            out[name] = row if dtype == np.float64 else row.astype(dtype)
    return out


def _tables(ctx: Context) -> dict[str, Any]:
    """Per-catalog edge tables (models, chips by weight precision, calibration), computed once per Context."""
    hit = _TABLES.get(id(ctx))
    if hit is not None and hit[0] is ctx:
        return hit[1]
    nm, nc = len(ctx.models.ids), len(ctx.chips.ids)
    models = _model_arrays({"model_idx": np.arange(nm)}, ctx, nm)
    blank = _model_arrays({"model_idx": np.array([-1])}, ctx, 1)
    static = _chip_static(ctx)
    by_bits = [_chip_terms(ctx.chips.cols, static, np.full(nc, b), ctx.defaults) for b in (4.0, 8.0, 16.0)]
    t = {
        "models": _compact({k: models[k] for k in _MODEL_KEYS}),
        "models_and_blank": _compact({k: np.concatenate([v, blank[k]]) for k, v in models.items()}),
        "static": static,
        "static_c": _compact(static),
        # (bits index, chip) flattened
        "chips": _compact({k: np.concatenate([c[k] for c in by_bits]) for k in by_bits[0]}),
        "cal": inference_calibration(ctx),
        "cal_c": _compact(inference_calibration(ctx)),
    }
    if len(_TABLES) > 8:
        _TABLES.clear()
    _TABLES[id(ctx)] = (ctx, t)
    return t


def _catalog_rows(raw: Mapping[str, Any], n: int) -> bool:
    """True when every row names catalog entries and no row gives shapes or what-ifs of its own."""
    for key, v in raw.items():
        per_row = key in (*MODEL_FIELDS, "params_b", "mlp") or key.startswith(("chip.", "cal."))
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
    get = _getter(raw, n)
    tables = _tables(ctx)
    catalog_rows = errors is None and _catalog_rows(raw, n)
    chip_idx = np.asarray(raw.get("chip_idx", np.full(n, -1)), dtype=np.int64)
    safe = np.maximum(chip_idx, 0)
    if catalog_rows:
        model_idx = np.asarray(raw["model_idx"], dtype=np.int64)
        m = _gather(tables["models"], model_idx)
    else:
        m = _model_arrays(raw, ctx, n)
    if errors is not None:
        no_model = ~m["has_model"] & ~errors.bad
        if no_model.any():
            errors.add_message(np.nonzero(no_model)[0], "field 'model' is blank: give a catalog model id, "
                               "or layers, hidden, heads and vocab (optional params_b, kv_heads, ffn_hidden, mlp)")
        no_chip = (chip_idx < 0) & ~errors.bad
        if no_chip.any():
            errors.add_message(np.nonzero(no_chip)[0], "field 'chip' is blank: give a catalog chip id")

    # ---- workload defaults ----------------------------------------------------------------------
    wb = get("weight_bits")
    wb = np.where(np.isfinite(wb), wb, _workload_default(ctx, "weight_bits"))
    kvb = get("kv_bits")
    kvb = np.where(np.isfinite(kvb), kvb, _workload_default(ctx, "kv_bits"))
    prompt = get("prompt_len")
    prompt = np.where(np.isfinite(prompt), prompt, _workload_default(ctx, "prompt_len"))
    gen = get("gen_len")
    gen = np.where(np.isfinite(gen), gen, _workload_default(ctx, "gen_len"))

    # ---- the chip: catalog tables, or per-row resolution with chip.<field> what-ifs -----------------
    static = _gather(tables["static_c"], safe)
    overridden = np.zeros(n, dtype=np.int64)
    if catalog_rows:
        flat = ((wb >= 8).astype(np.intp) + (wb >= 16)) * len(ctx.chips.ids) + safe  # (bits index, chip)
        c = _gather(tables["chips"], flat)
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
        "quant_overhead": _quant_overhead(get("quant_overhead"), wb, ctx),
        "act_bytes": np.full(n, float(ctx.defaults["act_bytes"])),
        **{k: c[k] for k in ("peak_flops", "mem_bytes", "mem_bw", "up_bw", "up_domain", "out_bw", "tdp_w", "idle_w",
                             "purchase_usd")},
        "sram_only": static["sram_only"],
        "pre_mask": c["pre"],
        "chip_idx": chip_idx,
        "note_mask": notes,
        "low_mask": static["low_fields"] & used & ~overridden,
    }
    cal = _gather(tables["cal_c"], safe)
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


def _run_good_rows(errors: RowErrors, run: Callable[[Array], Mapping[str, Array]]) -> dict[str, Array]:
    """Run a core on the rows that parsed; outputs of the other rows stay NaN (0 for integers)."""
    n = errors.n
    out: dict[str, Array] = {}
    ok = ~errors.bad
    if ok.any():
        rows = np.nonzero(ok)[0]
        for key, v in run(rows).items():
            out.setdefault(key, np.full(n, np.nan if v.dtype.kind == "f" else 0, dtype=v.dtype))[rows] = v
    return out


def _refuse_if_strict(strict: bool, mask: Array, reason: Array) -> None:
    """--strict: the first infeasible rows, with their reasons, refuse the whole file."""
    if strict and (mask != 0).any():
        first = np.nonzero(mask != 0)[0][:20]
        raise EvaluateError("\n".join(f"row {i + 1}: {reason[i]}" for i in first))


INFERENCE_OUT = (
    "ttft_s", "prefill_tokens_per_s", "decode_tokens_per_s", "throughput_tokens_per_s", "energy_per_token_j",
    "mem_gb", "unit_cost_usd",
)


def evaluate_inference(table: pa.Table, ctx: Context, *, strict: bool = False) -> tuple[pa.Table, RowErrors]:
    errors = RowErrors(table.num_rows)
    raw = parse_inference(table, ctx, errors)
    x, cal = assemble_inference(raw, ctx, errors)
    if strict and errors:
        raise EvaluateError("\n".join(errors.messages()[:20]))
    n = table.num_rows
    out = _run_good_rows(errors, lambda rows: inference.evaluate(
        {k: v[rows] for k, v in x.items()}, {k: (v[rows] if np.ndim(v) else v) for k, v in cal.items()}))
    mask = out.get("reason_mask", np.zeros(n, dtype=np.int64))
    mem_bits = inference.R_MEMORY | inference.R_NOFIT
    reason = inference.reason_text(mask & ~mem_bits)
    for i in np.nonzero((mask & mem_bits) != 0)[0].tolist():
        reason[i] = "; ".join(r for r in (reason[i], _memory_reason(i, x, out, int(mask[i]))) if r)
    _refuse_if_strict(strict, mask, reason)
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
    return _table(table, resolved, INFERENCE_OUT, out, bad, reason, notes), errors


def _memory_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array], mask: int) -> str:
    t = int(out["n_chips"][i])
    limit = out["mem_limit_gb"][i]
    if mask & inference.R_NOFIT:
        one = x["params"][i] * x["weight_bits"][i] / 8.0 * (1.0 + x["quant_overhead"][i]) / 1e9 / t
        return (f"does not fit in memory at any batch: {out['mem_gb'][i]:.2f} GB per chip at batch 1 "
                f"(weights {one:.2f} GB) > {limit:.2f} GB usable on each of {t} chip(s); raise n_chips, lower weight_bits")
    return (f"does not fit in memory at batch {int(out['batch'][i])}: {out['mem_gb'][i]:.2f} GB per chip > "
            f"{limit:.2f} GB usable on each of {t} chip(s); leave batch blank for the largest that fits")


def _table(
    table: pa.Table, resolved: Mapping[str, Array], out_names: tuple[str, ...], out: Mapping[str, Array],
    bad: Array, reason: Array, notes: Array, text: Mapping[str, tuple[str, ...]] | None = None,
) -> pa.Table:
    n = table.num_rows
    cols: dict[str, Any] = {name: table.column(name) for name in table.column_names}
    for name, v in resolved.items():
        v = np.asarray(v, dtype=np.float64)
        if text and name in text:
            labels = np.asarray(text[name], dtype=object)[np.clip(np.nan_to_num(v), 0, len(text[name]) - 1).astype(np.int64)]
            cols[name] = pa.array(np.where(bad | ~np.isfinite(v), None, labels).tolist(), type=pa.string())
        elif np.all(~np.isfinite(v) | (np.abs(v - np.round(v)) < 1e-9)):
            cols[name] = pa.array(np.where(bad | ~np.isfinite(v), None, v).tolist(), type=pa.int64())
        else:
            cols[name] = pa.array(np.where(bad, np.nan, v), type=pa.float64())
    for name in out_names:
        v = np.asarray(out.get(name, np.full(n, np.nan)), dtype=np.float64)
        cols[name] = pa.array(np.where(bad, np.nan, v), type=pa.float64())
    fits = np.asarray(out.get("fits", np.zeros(n, dtype=bool)))
    has_model = np.asarray(out.get("has_model", np.ones(n, dtype=bool)), dtype=bool)
    cols["fits"] = pa.array(np.where(bad | ~has_model, None, fits.astype(bool)).tolist(), type=pa.bool_())
    cols["infeasible_reason"] = pa.array(np.asarray(reason, dtype=object).tolist(), type=pa.string())
    cols["notes"] = pa.array(np.asarray(notes, dtype=object).tolist(), type=pa.string())
    return pa.table(cols)


# ---------------------------------------------------------------------------------------------------
# asic
# ---------------------------------------------------------------------------------------------------
_K_CACHE: dict[int, tuple[Any, dict[str, Any]]] = {}


def asic_constants(ctx: Context) -> dict[str, Any]:
    """The ASIC core's constants from the catalog (computed once per catalog constants dict)."""
    src = ctx.catalog.asic["asic"]
    hit = _K_CACHE.get(id(src))
    if hit is None or hit[0] is not src:
        hit = (src, asic.constants(src))
        _K_CACHE[id(src)] = hit
    return hit[1]


def parse_asic(table: pa.Table, ctx: Context, errors: RowErrors) -> dict[str, Array]:
    """An ASIC table -> raw arrays (choices as indices into DRAM_TYPES, ASIC_PRECISIONS, ARCHS, YIELD_MODELS)."""
    raw: dict[str, Array] = {}
    _parse_model(table, ctx, errors, raw)
    raw["node_nm"] = numbers(table, "node_nm", errors, minimum=1e-9, required=True, allowed="allowed: a process node in nm, 3 to 16")
    raw["n_mac"] = numbers(table, "n_mac", errors, integer=True, minimum=1)
    raw["peak_tops"] = numbers(table, "peak_tops", errors, minimum=1e-12)
    raw["clock_ghz"] = numbers(table, "clock_ghz", errors, minimum=1e-6, maximum=100)
    raw["sram_mb"] = numbers(table, "sram_mb", errors, minimum=0)
    raw["dram"] = choices(table, "dram", DRAM_TYPES, errors)
    raw["dram_bus_bits"] = numbers(table, "dram_bus_bits", errors, integer=True, minimum=0)
    raw["dram_mt_s"] = numbers(table, "dram_mt_s", errors, minimum=1e-9)
    raw["dram_gb"] = numbers(table, "dram_gb", errors, minimum=0)
    raw["precision"] = choices(table, "precision", ASIC_PRECISIONS, errors)
    raw["arch"] = choices(table, "arch", ARCHS, errors)
    raw["yield_model"] = choices(table, "yield_model", YIELD_MODELS, errors)
    raw["d0_per_cm2"] = numbers(table, "d0_per_cm2", errors, minimum=0)
    raw["spare_tiles"] = numbers(table, "spare_tiles", errors, integer=True, minimum=0)
    raw["tiles"] = numbers(table, "tiles", errors, integer=True, minimum=1)
    raw["weight_bits"] = _bits(table, "weight_bits", errors)
    raw["kv_bits"] = _bits(table, "kv_bits", errors)
    raw["batch"] = numbers(table, "batch", errors, integer=True, minimum=1)
    raw["prompt_len"] = numbers(table, "prompt_len", errors, integer=True, minimum=0)
    raw["gen_len"] = numbers(table, "gen_len", errors, integer=True, minimum=0)
    raw["quant_overhead"] = numbers(table, "quant_overhead", errors, minimum=0, maximum=1)
    both_blank = ~np.isfinite(raw["n_mac"]) & ~np.isfinite(raw["peak_tops"]) & ~errors.bad
    if both_blank.any():
        errors.add_message(np.nonzero(both_blank)[0], "fields 'n_mac' and 'peak_tops' are blank: give the MAC "
                           "count, or the peak TOPS at the design precision (then n_mac = TOPS / (2 x clock))")
    dram = raw["dram"]
    no_bus = np.isfinite(dram) & (dram != DRAM_TYPES.index("none")) & ~np.isfinite(raw["dram_bus_bits"]) & ~errors.bad
    if no_bus.any():
        errors.add(np.nonzero(no_bus)[0], "dram_bus_bits", ["" for _ in range(int(no_bus.sum()))],
                   "required with a DRAM type: the bus width in bits (64 = four x16 LPDDR channels, 1024 per HBM stack)")
    no_tiles = np.nan_to_num(raw["spare_tiles"]) > 0
    no_tiles &= ~np.isfinite(raw["tiles"]) & ~errors.bad
    if no_tiles.any():
        errors.add(np.nonzero(no_tiles)[0], "tiles", ["" for _ in range(int(no_tiles.sum()))],
                   "required with spare_tiles: the number of active tiles the MAC array and SRAM are split into")
    return raw


def assemble_asic(
    raw: Mapping[str, Any], ctx: Context, errors: RowErrors | None = None
) -> tuple[dict[str, Array], dict[str, Any]]:
    """Raw arrays -> (core inputs, constants)."""
    n = len(raw["model_idx"])
    get = _getter(raw, n)
    k = asic_constants(ctx)
    if errors is None and not any(key in raw and np.isfinite(np.asarray(raw[key], dtype=np.float64)).any()
                                  for key in (*MODEL_FIELDS, "params_b", "mlp")):
        models = _tables(ctx)["models_and_blank"]  # catalog models, then the no-model row (index -1 reads it)
        model_idx = np.asarray(raw["model_idx"], dtype=np.intp)
        rows = np.where(model_idx >= 0, model_idx, len(ctx.models.ids))
        m = _gather(models, rows)
    else:
        m = _model_arrays(raw, ctx, n)
    clock = get("clock_ghz")
    clock = np.where(np.isfinite(clock), clock, k["clock_ghz_default"])
    prec = get("precision")
    prec = np.where(np.isfinite(prec), prec, ASIC_PRECISIONS.index("int8"))
    n_mac = get("n_mac")
    from_tops = ~np.isfinite(n_mac) & np.isfinite(get("peak_tops"))
    n_mac = np.where(from_tops, get("peak_tops") * 1e12 / (2.0 * clock * 1e9), n_mac)  # MACs = TOPS / (2 x clock)
    dram = get("dram")
    dram = np.where(np.isfinite(dram), dram, DRAM_TYPES.index("none"))
    bus = get("dram_bus_bits")
    bus = np.where(dram == DRAM_TYPES.index("none"), 0.0, bus)
    wb = get("weight_bits")
    wb = np.where(np.isfinite(wb), wb, np.asarray(asic.PRECISION_BITS)[prec.astype(np.int64)])
    kvb = get("kv_bits")
    kvb = np.where(np.isfinite(kvb), kvb, _workload_default(ctx, "kv_bits"))
    prompt = get("prompt_len")
    prompt = np.where(np.isfinite(prompt), prompt, _workload_default(ctx, "prompt_len"))
    gen = get("gen_len")
    gen = np.where(np.isfinite(gen), gen, _workload_default(ctx, "gen_len"))
    sram = get("sram_mb")
    x: dict[str, Array] = {
        "node_nm": get("node_nm"),
        "n_mac": n_mac,
        "clock_ghz": clock,
        "sram_mb": np.where(np.isfinite(sram), sram, 0.0),
        "dram": dram,
        "dram_bus_bits": bus,
        "dram_mt_s": get("dram_mt_s"),
        "dram_gb": get("dram_gb"),
        "precision": prec,
        "arch": np.nan_to_num(get("arch"), nan=0.0),
        "yield_model": np.nan_to_num(get("yield_model"), nan=0.0),
        "d0_per_cm2": get("d0_per_cm2"),
        "spare_tiles": np.nan_to_num(get("spare_tiles"), nan=0.0),
        "tiles": get("tiles"),
        "has_model": m["has_model"].astype(np.float64),
        **{key: m[key] for key in ("layers", "hidden", "q_dim", "kv_dim", "ffn", "n_proj", "vocab", "params", "params_read")},
        "weight_bits": wb,
        "kv_bits": kvb,
        "batch": get("batch"),
        "prompt_len": prompt,
        "gen_len": gen,
        "quant_overhead": _quant_overhead(get("quant_overhead"), wb, ctx),
        "act_bytes": np.full(n, float(ctx.defaults["act_bytes"])),
        "pre_mask": np.zeros(n, dtype=np.int64),
        "glue_notes": np.where(from_tops, N_MAC_FROM_TOPS, 0),
    }
    return x, k


ASIC_OUT = (
    "die_area_mm2", "dies_per_wafer", "yield", "defect_yield", "die_cost_usd", "unit_cost_usd", "peak_tops",
    "full_load_power_w", "power_w", "tops_per_w", "decode_tokens_per_s", "ttft_s", "energy_per_token_j",
    "mem_gb", "dram_gb",
)


def evaluate_asic(table: pa.Table, ctx: Context, *, strict: bool = False) -> tuple[pa.Table, RowErrors]:
    errors = RowErrors(table.num_rows)
    raw = parse_asic(table, ctx, errors)
    x, k = assemble_asic(raw, ctx, errors)
    if strict and errors:
        raise EvaluateError("\n".join(errors.messages()[:20]))
    n = table.num_rows
    out = _run_good_rows(errors, lambda rows: asic.evaluate({key: v[rows] for key, v in x.items()}, k))
    mask = out.get("reason_mask", np.zeros(n, dtype=np.int64))
    reason = asic.reason_text(mask)
    for i in np.nonzero(mask != 0)[0].tolist():
        reason[i] = _asic_reason(i, x, out, int(mask[i]), k)
    _refuse_if_strict(strict, mask, reason)
    bad = errors.bad
    reason = np.where(bad, errors.text(), reason)
    note_mask = np.asarray(out.get("note_mask", np.zeros(n, dtype=np.int64)), dtype=np.int64)
    notes = asic.note_text(note_mask)
    glue = np.asarray(x["glue_notes"], dtype=np.int64) != 0
    notes = np.where(glue, [("n_mac = peak_tops / (2 x clock_ghz)" + ("; " + t if t else "")) for t in notes], notes)
    notes = np.where(bad, "", notes)
    out["has_model"] = np.asarray(x["has_model"]) > 0
    resolved = {
        "node_nm": x["node_nm"], "n_mac": x["n_mac"], "clock_ghz": x["clock_ghz"], "sram_mb": x["sram_mb"],
        "dram": x["dram"], "dram_bus_bits": x["dram_bus_bits"], "precision": x["precision"], "arch": x["arch"],
        "yield_model": x["yield_model"], "weight_bits": out.get("weight_bits", x["weight_bits"]),
        "batch": out.get("batch", x["batch"]), "prompt_len": x["prompt_len"], "gen_len": x["gen_len"],
    }
    text = {"dram": DRAM_TYPES, "precision": ASIC_PRECISIONS, "arch": ARCHS, "yield_model": YIELD_MODELS}
    return _table(table, resolved, ASIC_OUT, out, bad, reason, notes, text), errors


def _asic_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array], mask: int, k: Mapping[str, Any]) -> str:
    parts = []
    if mask & asic.R_INPUT:
        parts.append(asic.REASONS[asic.R_INPUT])
    if mask & asic.R_NODE:
        parts.append(f"node_nm={x['node_nm'][i]:g} is outside the sourced constant tables "
                     f"({k['node_min']:g}-{k['node_max']:g} nm): no energy, area, wafer price or D0 for it")
    if mask & asic.R_TILES:
        parts.append(asic.REASONS[asic.R_TILES])
    if mask & asic.R_PRECISION:
        prec = ASIC_PRECISIONS[int(x["precision"][i])]
        parts.append(f"precision {prec} cannot run weight_bits={int(out['weight_bits'][i])} "
                     f"(allowed: weight_bits <= {int(asic.PRECISION_BITS[int(x['precision'][i])])}; or a wider precision)")
    if mask & asic.R_RETICLE:
        parts.append(f"die area {out['die_area_mm2'][i]:.0f} mm^2 exceeds the reticle limit {k['reticle_mm2']:g} mm^2 "
                     "(26 x 33 mm) and the design declares no redundancy: add spare_tiles and tiles "
                     "(wafer-scale path) or shrink it")
    if mask & asic.R_WAFER:
        parts.append(f"die area {out['die_area_mm2'][i]:.0f} mm^2 exceeds a wafer-scale die ({k['wafer_scale_max_mm2']:g} mm^2)")
    if mask & (asic.R_MEMORY | asic.R_NOFIT):
        cap = x["sram_mb"][i] / 1e3 + (0.0 if not np.isfinite(x["dram_gb"][i]) else x["dram_gb"][i])
        at = "any batch" if mask & asic.R_NOFIT else f"batch {int(out['batch'][i])}"
        parts.append(f"the model does not fit at {at}: {out['mem_gb'][i]:.2f} GB needed > {cap:.3f} GB "
                     f"(SRAM {x['sram_mb'][i]:g} MB + DRAM {np.nan_to_num(x['dram_gb'][i]):g} GB)")
    return "; ".join(parts)
