"""Training rows for `chipsweep evaluate --kind training` and for sweep chunks.

`parse_training` turns a table into raw arrays (catalog indices, NaN where a cell is blank, choices as
indices into the vocabularies) with per-row errors; `assemble_training` resolves catalog entries, clusters,
`chip.<field>` what-ifs and defaults into the core's inputs (sweep workers build `raw` from decoded axes and
call it too); `search_training` runs the core (`workers.training`) through the layout search for blank
layout cells; `evaluate_training` returns the input table with the resolved layout and the outputs
appended. Bad rows carry their message in `infeasible_reason`; they never stop the other rows unless `strict`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa

from chipsweep.schemas.columns import FACTS
from chipsweep.schemas.vocab import (
    BATCH_HANDLING,
    COST_BASES,
    FRAMEWORKS,
    LORA_TARGETS,
    MLP_TYPES,
    MODES,
    MOE_FIELDS,
    OVERRIDABLE,
    PP_SCHEDULES,
    PRECISION_FIELD,
    PRECISIONS,
    RECOMPUTE,
    SHAPE_FIELDS,
)
from chipsweep.workers import layout, training
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors, bools, chip_what_if, choices, ids, numbers, what_if_columns
from chipsweep.workers.results import cost_basis_text, keep_given
from chipsweep.workers.tables import (
    PRECISION_WEIGHT_BYTES,
    chip_link_arrays,
    chip_what_ifs,
    default_precision,
    model_columns,
    model_shape_arrays,
    peak_for_precision,
    training_seq,
)
from chipsweep.workers.training import FW_KEYS

Array = np.ndarray

# the outputs `evaluate` writes after the resolved layout, in the lake's order (cost_basis and the reason
# are written after them)
TRAINING_OUT = tuple(c.name for c in FACTS["training"] if c.role == "output" and c.dtype != "category")
# category outputs written after them, in this order
TRAINING_TEXT_OUT = ("cost_basis", "infeasible_reason", "framework", "batch_handling", "calibrated_on")


def lora_parameters(shapes: dict[str, Array], rank: Array, targets: Array) -> Array:
    """Trainable LoRA parameters: r x (d_in + d_out) per adapted matrix per layer (Hu et al. 2021 sec. 4.1).
    targets 0 = W_q, W_v; 1 = W_q, W_k, W_v, W_o; 2 = those and every MLP projection."""
    h, q = shapes["hidden"], shapes["heads"] * shapes["head_dim"]
    kv = shapes["kv_heads"] * shapes["head_dim"]
    qv = (h + q) + (h + kv)  # W_q: h -> q, W_v: h -> kv
    qkvo = qv + (h + kv) + (q + h)
    mlp = shapes["n_proj"] * (h + shapes["ffn"])
    per_layer = np.where(targets == 0, qv, np.where(targets == 1, qkvo, qkvo + mlp))
    return shapes["layers"] * rank * per_layer


def _peak_16(peaks: Array, peak: Array) -> Array:
    """The 16-bit peak (bf16, else fp16) attention and element-wise kernels run at, else the row's own peak;
    `peaks` is (precision, row)."""
    bf16, fp16 = peaks[PRECISIONS.index("bf16")], peaks[PRECISIONS.index("fp16")]
    return np.where(np.isfinite(bf16), bf16, np.where(np.isfinite(fp16), fp16, peak))


def _or_default(values: Array, default: float) -> Array:
    return np.where(np.isfinite(values), values, default)


# the row/catalog MoE columns -> the core's keys
MOE_CORE = {"moe_experts": "moe_experts", "moe_topk": "moe_topk", "moe_ffn_hidden": "moe_ffn",
            "moe_shared_experts": "moe_shared", "moe_dense_layers": "moe_dense_layers"}


def _moe_inputs(get, ctx: Context, model_idx: Array, layers: Array, n: int,  # type: ignore[no-untyped-def]
                errors: RowErrors | None = None, gather: bool = True) -> dict[str, Array]:
    """The core's MoE keys: the catalog model's MoE columns with explicit cells taking precedence (a what-if on a
    MoE model, or a custom MoE given by shapes without a model id); dense rows get moe_experts = 0, ep = 1.
    With `errors`, MoE cells on a dense catalog model, an incomplete MoE, and an ep that does not divide the
    experts are row errors naming the field, the value and what is allowed."""
    known = model_idx >= 0
    safe = np.maximum(model_idx, 0)
    given = {f: get(f) for f in MOE_FIELDS}
    if gather and errors is None and known.all() and not any(np.isfinite(v).any() for v in given.values()):
        # the catalog's models as they are (every sweep without MoE what-ifs): per-model columns, gathered once
        per_model = _moe_inputs(lambda f: np.full(len(ctx.models.ids), np.nan), ctx,
                                np.arange(len(ctx.models.ids)), ctx.model_shapes["layers"], len(ctx.models.ids),
                                gather=False)
        out = {k: per_model[k][safe] for k in MOE_CORE.values()}
        ep = get("ep")
        out["ep"] = _or_default(ep, 1.0)
        out["moe_imbalance"] = _or_default(get("moe_imbalance"), ctx.defaults["moe_imbalance"])
        out["a2a_overlap"] = _or_default(get("moe_a2a_overlap"), ctx.defaults["moe_a2a_overlap"])
        out["moe_capacity"] = get("moe_capacity_factor")
        out["etp_in"] = get("expert_tp")
        return out
    cat = {f: np.where(known, ctx.models.cols[f][safe], np.nan) for f in MOE_FIELDS}
    vals = {f: np.where(np.isfinite(given[f]), given[f], cat[f]) for f in MOE_FIELDS}
    E = vals["moe_experts"]
    moe = np.isfinite(E) & (E >= 1)
    ep = get("ep")
    if errors is not None:
        dense_model = known & ~np.isfinite(cat["moe_experts"])
        ids = np.asarray(ctx.models.ids, dtype=object)
        moe_ids = ", ".join(i for i, e in zip(ctx.models.ids, ctx.models.cols["moe_experts"], strict=True) if np.isfinite(e))
        for f in MOE_FIELDS:
            bad = dense_model & np.isfinite(given[f]) & ~errors.bad
            if bad.any():
                rows = np.nonzero(bad)[0]
                errors.add(rows, f, [int(v) for v in given[f][rows]],
                           f"model {ids[safe[rows[0]]]!r} is dense; allowed: blank, a MoE model id ({moe_ids}), "
                           "or explicit shapes without a model id")
        for f in ("moe_topk", "moe_ffn_hidden"):
            bad = moe & ~np.isfinite(vals[f]) & ~errors.bad
            if bad.any():
                errors.add(np.nonzero(bad)[0], f, [""] * int(bad.sum()),
                           "allowed: an integer >= 1; a MoE gives moe_experts, moe_topk and moe_ffn_hidden together")
        over = moe & (vals["moe_topk"] > E) & ~errors.bad
        if over.any():
            rows = np.nonzero(over)[0]
            errors.add(rows, "moe_topk", [int(v) for v in vals["moe_topk"][rows]],
                       "allowed: an integer from 1 to moe_experts (" + ", ".join(str(int(v)) for v in np.unique(E[rows])) + ")")
        deep = moe & (np.nan_to_num(vals["moe_dense_layers"]) >= layers) & ~errors.bad
        if deep.any():
            rows = np.nonzero(deep)[0]
            errors.add(rows, "moe_dense_layers", [int(v) for v in vals["moe_dense_layers"][rows]],
                       "allowed: fewer than the model's layers")
        ep_dense = ~moe & np.isfinite(ep) & (ep > 1) & ~errors.bad
        if ep_dense.any():
            rows = np.nonzero(ep_dense)[0]
            errors.add(rows, "ep", [int(v) for v in ep[rows]], "allowed: 1 or blank (the model is dense: no experts to shard)")
        ep_split = moe & np.isfinite(ep) & (np.mod(E, np.where(np.isfinite(ep), ep, 1.0)) != 0) & ~errors.bad
        if ep_split.any():
            rows = np.nonzero(ep_split)[0]
            for r in rows.tolist():
                divisors = [d for d in range(1, int(E[r]) + 1) if int(E[r]) % d == 0]
                errors.add([r], "ep", [int(ep[r])],
                           f"allowed: a divisor of moe_experts = {int(E[r])} ({', '.join(map(str, divisors))})")
    out = {MOE_CORE[f]: np.where(moe, np.nan_to_num(vals[f]), 0.0) for f in MOE_FIELDS}
    out["moe_topk"] = np.where(moe, np.minimum(np.nan_to_num(vals["moe_topk"], nan=1.0), np.where(moe, E, 1.0)), 0.0)
    out["ep"] = np.where(np.isfinite(ep), ep, 1.0)
    out["moe_imbalance"] = _or_default(get("moe_imbalance"), ctx.defaults["moe_imbalance"])
    out["a2a_overlap"] = _or_default(get("moe_a2a_overlap"), ctx.defaults["moe_a2a_overlap"])
    out["moe_capacity"] = get("moe_capacity_factor")
    out["etp_in"] = get("expert_tp")
    return out


def _cp_column(cp: Array, seq: Array, errors: RowErrors | None) -> Array:
    """Context-parallel size per row (blank: 1); with `errors`, a cp that does not divide seq_len is a row error."""
    cp = _or_default(cp, 1.0)
    if errors is not None:
        bad = np.isfinite(seq) & (np.mod(seq, cp) != 0) & ~errors.bad
        for r in np.nonzero(bad)[0].tolist():
            divisors = [d for d in (1, 2, 4, 8, 16, 32, 64) if int(seq[r]) % d == 0]
            errors.add([r], "cp", [int(cp[r])], f"allowed: a divisor of seq_len = {int(seq[r])} "
                       f"(each context-parallel rank holds seq_len/cp tokens), e.g. {', '.join(map(str, divisors))}")
    return cp


def _workload_defaults(get, ctx: Context, precision: Array, n: int, chip_idx: Array) -> dict[str, Array]:  # type: ignore[no-untyped-def]
    """Row fields that follow the framework and the precision when a row leaves them blank: the framework's
    features (defaults.yaml `frameworks`), sequence parallelism where the framework has it, FlashAttention
    where it is its default, its gradient bytes; 4-byte activations in fp32 (Korthikanti Table 2 is 16-bit);
    fp8 matrix multiplies; the cost basis asked for; the pipeline layout and ZeRO group given. A blank framework
    is the chip vendor's software (defaults.yaml `framework_default`: MaxText on TPUs, NeuronX on Trainium)."""
    framework = _or_default(get("framework"), ctx.chip_default_framework[np.maximum(chip_idx, 0)])
    fw = ctx.features_for(framework)
    prec = precision.astype(np.int64)
    act = np.where(prec == PRECISIONS.index("fp32"), 4.0, ctx.defaults["act_bytes"])
    out: dict[str, Array] = {k: fw[k] for k in FW_KEYS}
    # NVFP4 runs without the tensor-parallel communication overlap: Megatron-Bridge's performance configs turn it off
    # for nvfp4 on every Blackwell GPU (scripts/performance/configs/llama/llama3_llm_pretrain.py and
    # llama31_llm_pretrain.py: `tp_comm_overlap = False if precision == "nvfp4"`; the scripts give no reason)
    out["fw_tp_overlap"] = np.where(prec == PRECISIONS.index("nvfp4"), 0.0, out["fw_tp_overlap"])
    out.update({
        "framework": framework,
        "seq_parallel": _or_default(get("sequence_parallel"), fw["fw_sp"]),
        "flash": _or_default(get("flash_attention"), _or_default(fw["flash"], 0.0)),
        "grad_bytes": _or_default(get("grad_bytes"), _or_default(fw["grad_bytes"], ctx.defaults["grad_bytes"])),
        "act_bytes": act,
        # the matrix multiplies run in 8 or 4 bits (fp8, mxfp8, nvfp4: 1; int8, AQT's integer GEMMs: 2) at the fitted
        # low-precision GEMM efficiency; attention and element-wise kernels stay 16-bit (Transformer Engine recipes)
        "low_precision": np.where(prec == PRECISIONS.index("int8"), 2.0, (prec >= PRECISIONS.index("fp8")).astype(np.float64)),
        # bytes per element of a saved GEMM input: Transformer Engine's fp8 layers keep the low-precision copy they
        # cast for the GEMM (its wgrad reads it), with MXFP8's 8-bit scale per 32 elements and NVFP4's per 16
        "gemm_in_bytes": np.select([prec == PRECISIONS.index("fp8"), prec == PRECISIONS.index("mxfp8"),
                                    prec == PRECISIONS.index("nvfp4")], [1.0, 1.0 + 1.0 / 32.0, 0.5 + 1.0 / 16.0], act),
        # the cost basis asked for: 1 owned, 0 rental, NaN none (the chip's rental price, else its owned TCO)
        "owned": np.where(np.isfinite(get("cost_basis")), get("cost_basis") == COST_BASES.index("owned"), np.nan),
        "first_layers": get("first_stage_layers"),
        "last_layers": get("last_stage_layers"),
        "zero_group": get("zero_group"),
        "vocab_tiles": _or_default(get("vocab_tiles"), 1.0),
    })
    return out


def _layer_fields(get) -> dict[str, Array]:  # type: ignore[no-untyped-def]
    """Optional per-row layer fields: the first and last layers a low-precision row keeps in 16 bits (blank: none;
    training.HP_KEYS) and the pipeline schedule (blank: 1F1B; training.PIPE_KEYS)."""
    return {**{k: _or_default(get(k), 0.0) for k in training.HP_KEYS}, "pp_schedule": _or_default(get("pp_schedule"), 0.0)}


def parse_training(table: pa.Table, ctx: Context, errors: RowErrors) -> dict[str, Array]:
    """A training table -> raw arrays (catalog indices, NaN where a cell is blank), errors recorded."""
    raw: dict[str, Array] = {
        "model_idx": ids(table, "model", ctx.models.index(), errors, "model"),
        "chip_idx": ids(table, "chip", ctx.chips.index(), errors, "chip"),
        "cluster_idx": ids(table, "cluster", {c: i for i, c in enumerate(sorted(ctx.catalog.clusters))}, errors, "cluster"),
    }
    for field in SHAPE_FIELDS:
        raw[field] = numbers(table, field, errors, integer=True, minimum=1)
    raw["mlp"] = choices(table, "mlp", MLP_TYPES, errors)
    what_if_columns(table, errors, {"chip": OVERRIDABLE})
    for field in OVERRIDABLE:
        if f"chip.{field}" in table.column_names:
            raw[f"chip.{field}"] = chip_what_if(table, field, errors)
    raw["n_chips"] = numbers(table, "n_chips", errors, integer=True, minimum=1)
    raw["global_batch"] = numbers(table, "global_batch", errors, integer=True, minimum=1, required=True)
    raw["tokens"] = numbers(table, "tokens", errors, minimum=1)
    for key, hi in (("tp", None), ("pp", None), ("dp", None), ("micro_batch", None), ("interleave", 64)):
        raw[key] = numbers(table, key, errors, integer=True, minimum=1, maximum=hi)
    raw["recompute"] = choices(table, "recompute", RECOMPUTE, errors)
    raw["pp_schedule"] = choices(table, "pp_schedule", PP_SCHEDULES, errors)
    raw["zero_stage"] = numbers(table, "zero_stage", errors, integer=True, minimum=0, maximum=3, allowed="allowed: 0, 1, 2 or 3")
    raw["precision"] = choices(table, "precision", PRECISIONS, errors)
    raw["sequence_parallel"] = bools(table, "sequence_parallel", errors)
    raw["flash_attention"] = bools(table, "flash_attention", errors)
    raw["framework"] = choices(table, "framework", FRAMEWORKS, errors)
    raw["mode"] = choices(table, "mode", MODES, errors)
    raw["lora_rank"] = numbers(table, "lora_rank", errors, integer=True, minimum=1)
    raw["lora_targets"] = choices(table, "lora_targets", LORA_TARGETS, errors)
    raw["grad_bytes"] = numbers(table, "grad_bytes", errors, minimum=1, maximum=4, allowed="allowed: 2 (fp16/bf16 gradients) or 4 (fp32)")
    raw["first_stage_layers"] = numbers(table, "first_stage_layers", errors, integer=True, minimum=0)
    raw["last_stage_layers"] = numbers(table, "last_stage_layers", errors, integer=True, minimum=0)
    raw["zero_group"] = numbers(table, "zero_group", errors, integer=True, minimum=1)
    raw["vocab_tiles"] = numbers(table, "vocab_tiles", errors, integer=True, minimum=1)
    raw["cost_basis"] = choices(table, "cost_basis", COST_BASES, errors)
    raw["dropout"] = bools(table, "dropout", errors)
    raw["sustained_tflops"] = numbers(table, "sustained_tflops", errors, minimum=0)
    raw["total_flops"] = numbers(table, "total_flops", errors, minimum=0)
    for field in MOE_FIELDS:  # explicit MoE architecture (blank: the catalog model's, or dense)
        raw[field] = numbers(table, field, errors, integer=True, minimum=0 if field in ("moe_shared_experts", "moe_dense_layers") else 1)
    raw["ep"] = numbers(table, "ep", errors, integer=True, minimum=1)
    raw["cp"] = numbers(table, "cp", errors, integer=True, minimum=1)
    raw["offload_layers"] = numbers(table, "offload_layers", errors, integer=True, minimum=0)
    raw["mtp_layers"] = numbers(table, "mtp_layers", errors, integer=True, minimum=0, maximum=8,
                                allowed="allowed: an integer from 0 to 8 (multi-token prediction modules; blank: the "
                                        "model's, 0 without)")
    for end in ("first", "last"):
        raw[f"bf16_{end}_layers"] = numbers(
            table, f"bf16_{end}_layers", errors, integer=True, minimum=0,
            allowed=f"allowed: an integer >= 0 (the {end} layers of an fp8/mxfp8/nvfp4 run whose matrix multiplies stay "
                    "in 16 bits; blank: 0)")
    raw["moe_imbalance"] = numbers(table, "moe_imbalance", errors, minimum=1,
                                   allowed="allowed: a number >= 1 (the busiest expert's tokens over the mean)")
    raw["moe_a2a_overlap"] = numbers(table, "moe_a2a_overlap", errors, minimum=0, maximum=1,
                                     allowed="allowed: a number from 0 to 1 (fraction of a layer's compute the all-to-all can hide behind)")
    raw["expert_tp"] = numbers(table, "expert_tp", errors, integer=True, minimum=1,
                               allowed="allowed: blank (tp where ep divides dp, else 1: Megatron-Core's placement), 1 "
                                       "or the row's tp")
    raw["moe_capacity_factor"] = numbers(table, "moe_capacity_factor", errors, minimum=0.1, maximum=64,
                                         allowed="allowed: blank (dropless) or a number from 0.1 to 64 (each expert's "
                                                 "token buffer over its mean load; tokens beyond it are dropped)")
    return raw


def assemble_training(
    raw: dict[str, Array], ctx: Context, errors: RowErrors | None = None
) -> tuple[dict[str, Array], dict[str, Array], Array]:
    """Raw arrays -> (core inputs, blank masks of the searchable layout fields, chip index per row).

    Used by `evaluate` (after parsing a table) and by sweep workers (which build `raw` from decoded
    axes), so both paths resolve catalog entries, overrides and defaults the same way. Rows that name
    catalog models and chips with no per-row shapes, clusters or chip overrides (every sweep without
    what-ifs) take a gather-only path over per-catalog tables computed once in `Context`.
    """
    if errors is None and _catalog_only(raw):
        return _assemble_catalog_rows(raw, ctx)
    return _assemble_general(raw, ctx, errors)


def _catalog_only(raw: dict[str, Array]) -> bool:
    for key, v in raw.items():
        per_row = key in (*SHAPE_FIELDS, *MOE_FIELDS, "mlp", "dropout") or key.startswith("chip.")
        if per_row and np.isfinite(np.asarray(v, dtype=np.float64)).any():
            return False
    cluster = raw.get("cluster_idx")
    if cluster is not None and (np.asarray(cluster) >= 0).any():
        return False
    return bool((np.asarray(raw["model_idx"]) >= 0).all() and (np.asarray(raw["chip_idx"]) >= 0).all())


def _assemble_catalog_rows(raw: dict[str, Array], ctx: Context) -> tuple[dict[str, Array], dict[str, Array], Array]:
    n = len(raw["model_idx"])
    nan = np.broadcast_to(np.float64(np.nan), (n,))

    def get(key: str) -> Array:
        v = raw.get(key)
        return nan if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))

    model_idx = np.asarray(raw["model_idx"], dtype=np.int64)
    chip_idx = np.asarray(raw["chip_idx"], dtype=np.int64)
    # the shape keys only some models use (hybrid blocks, MTP modules, a latent MoE) are gathered where a model of the
    # chunk uses them: the core reads their absence as none (a gather of a million rows costs a few ms a key)
    present = np.zeros(len(ctx.models.ids), dtype=bool)
    present[model_idx] = True
    unused = set()
    if not (ctx.model_hybrid & present).any():
        unused.update(training.HYBRID_KEYS)
    if not (ctx.model_shapes["moe_latent"][present] > 0).any():
        unused.add("moe_latent")
    if not (ctx.model_shapes["mtp_layers"][present] > 0).any():
        unused.add("mtp_layers")
    x: dict[str, Array] = {k: v[model_idx] for k, v in ctx.model_shapes.items() if k not in unused}
    if "mtp_layers" not in x:
        x["mtp_layers"] = np.zeros(n)
    x.update({k: v[model_idx] for k, v in ctx.model_terms.items()})
    x.update({k: v[chip_idx] for k, v in ctx.chip_links.items()})
    precision = _or_default(get("precision"), ctx.chip_default_precision[chip_idx])
    prec_i = precision.astype(np.int64)
    x["peak_flops"] = ctx.chip_peaks.ravel()[prec_i * ctx.chip_peaks.shape[1] + chip_idx]
    x["peak_16"] = _peak_16(ctx.chip_peaks[:, chip_idx], x["peak_flops"])
    x["peak_published"] = np.isfinite(ctx.chip_peaks).any(axis=0)[chip_idx].astype(np.float64)
    mode = _or_default(get("mode"), 0.0)
    lora = (mode == 2).any()
    x.update(_workload_defaults(get, ctx, precision, n, chip_idx))
    x.update(_moe_inputs(get, ctx, model_idx, x["layers"], n))
    x["cp"] = _or_default(get("cp"), 1.0)
    x["cp_blank"] = (~np.isfinite(get("cp"))).astype(np.float64)
    x["mtp_layers"] = _or_default(get("mtp_layers"), x["mtp_layers"])  # the row's MTP modules, else the model's
    x.update(_layer_fields(get))
    x["offload_layers"] = _or_default(get("offload_layers"), 0.0)
    x["offload_blank"] = (~np.isfinite(get("offload_layers"))).astype(np.float64)
    x.update({
        "n_chips": _or_default(get("n_chips"), get("tp") * get("pp") * get("dp")),
        "global_batch": get("global_batch"),
        "tokens": _or_default(get("tokens"), ctx.model_tokens[model_idx]),
        "weight_bytes": np.asarray([PRECISION_WEIGHT_BYTES[p] for p in PRECISIONS])[prec_i],
        "sustained_flops": get("sustained_tflops") * 1e12,
        "total_flops": get("total_flops"),
        "precision": precision,
        "dp_req": get("dp"),
        "up_latency": nan,
        "mode": mode,
        "lora_params": lora_parameters(x, _or_default(get("lora_rank"), ctx.defaults["lora_rank"]),
                                       _or_default(get("lora_targets"), 0.0)) if lora else np.zeros(n),
    })
    blank = _searched(get, x)
    stream = x["streaming"] > 0
    if stream.any():
        for key in ("tp", "pp", "interleave"):
            x[key] = np.where(stream & blank[key], 1.0, x[key])
            blank[key] = blank[key] & ~stream
    return x, blank, chip_idx


def _assemble_general(
    raw: dict[str, Array], ctx: Context, errors: RowErrors | None = None
) -> tuple[dict[str, Array], dict[str, Array], Array]:
    n = len(raw["model_idx"])
    nan = np.full(n, np.nan)

    def get(key: str) -> Array:
        v = raw.get(key)
        return nan if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))

    cat = ctx.catalog
    # --- model: a catalog id, explicit shapes, or both (explicit cells win) -----------------------
    model_idx = np.asarray(raw["model_idx"], dtype=np.int64)
    mcols = model_columns(ctx.models, model_idx, get)
    missing_shape = ~np.isfinite(mcols["layers"]) | ~np.isfinite(mcols["hidden"]) | ~np.isfinite(mcols["heads"])
    missing_shape |= ~np.isfinite(mcols["vocab"]) | ~np.isfinite(mcols["seq_len"])
    if errors is not None:
        no_model = missing_shape & (model_idx < 0) & ~errors.bad
        if no_model.any():
            errors.add_message(
                np.nonzero(no_model)[0],
                "field 'model' is blank: give a catalog model id, or layers, hidden, heads, vocab and seq_len",
                field="model",
            )
    shapes = model_shape_arrays(mcols)
    explicit = any(np.isfinite(get(f)).any() for f in (*SHAPE_FIELDS, "mlp"))

    # --- chip (or a cluster preset that names one) ---------------------------------------------
    cluster_ids = sorted(cat.clusters)
    cluster_idx = np.asarray(raw.get("cluster_idx", np.full(n, -1)), dtype=np.int64)
    chip_idx = np.asarray(raw["chip_idx"], dtype=np.int64).copy()
    chip_index = ctx.chips.index()
    cluster_vals = {
        k: np.full(n, np.nan) for k in ("scale_out_gbit_s", "scale_up_gb_s", "scale_up_domain", "scale_up_latency_s", "n_chips")
    }
    for j in np.unique(cluster_idx[cluster_idx >= 0]).tolist():
        rows = cluster_idx == j
        cl = cat.clusters[cluster_ids[j]]
        if errors is not None:  # a preset is built of its own chip (more chips than it has: several of it, noted)
            other = rows & (chip_idx >= 0) & (cl.chip in chip_index) & (chip_idx != chip_index.get(cl.chip or "", -1))
            if other.any():
                errors.add(np.nonzero(other)[0], "chip", [ctx.chips.ids[c] for c in chip_idx[other].tolist()],
                           f"cluster {cluster_ids[j]} is built of {cl.chip}; allowed: {cl.chip} or blank")
        if cl.chip in chip_index:
            chip_idx = np.where(rows & (chip_idx < 0), chip_index[cl.chip], chip_idx)
        for key in cluster_vals:
            value = getattr(cl, key)
            if value is not None:
                cluster_vals[key][rows] = value
    if errors is not None:
        no_chip = (chip_idx < 0) & ~errors.bad
        if no_chip.any():
            errors.add_message(np.nonzero(no_chip)[0], "field 'chip' is blank: give a catalog chip id (or a cluster)",
                               field="chip")
    safe_chip = np.maximum(chip_idx, 0)
    ccols = {k: v[safe_chip] for k, v in ctx.chips.cols.items()}
    for key in ("scale_out_gbit_s", "scale_up_gb_s", "scale_up_domain"):
        ccols[key] = np.where(np.isfinite(cluster_vals[key]), cluster_vals[key], ccols[key])
    chip_what_ifs(ccols, raw, get)

    # --- workload and layout -------------------------------------------------------------------
    n_chips = get("n_chips")
    n_chips = np.where(np.isfinite(n_chips), n_chips, cluster_vals["n_chips"])
    n_chips = np.where(np.isfinite(n_chips), n_chips, get("tp") * get("pp") * get("dp"))  # implied by a full layout
    if errors is not None:
        no_n = ~np.isfinite(n_chips) & ~errors.bad
        if no_n.any():
            errors.add_message(np.nonzero(no_n)[0], "field 'n_chips' is blank: give n_chips (an integer >= 1) or tp, pp and dp",
                               field="n_chips")
    seq_given = get("seq_len")
    shapes["seq"] = np.where(np.isfinite(seq_given), seq_given, training_seq(shapes["seq"], mcols["train_seq_len"]))

    precision = get("precision")
    given_precision = np.isfinite(precision)
    precision = np.where(given_precision, precision, default_precision(ccols))
    peak, published = peak_for_precision(ccols, precision)
    peaks16 = np.stack([peak_for_precision(ccols, np.full(n, float(i)))[0] for i in range(len(PRECISIONS))])
    if errors is not None:  # a precision the chip's tensor cores have no rate for (fp8 on an A100): a row error
        block = given_precision & ~np.isfinite(peak) & (chip_idx >= 0) & ~errors.bad
        for r in np.nonzero(block)[0].tolist():
            ok = ", ".join(p for i, p in enumerate(PRECISIONS) if np.isfinite(peaks16[i, r]))
            field = PRECISION_FIELD[PRECISIONS[int(precision[r])]]
            errors.add([r], "precision", [PRECISIONS[int(precision[r])]],
                       f"allowed on chip '{ctx.chips.ids[chip_idx[r]]}': {ok} (it publishes no {field})")
    weight_bytes = np.asarray([PRECISION_WEIGHT_BYTES[p] for p in PRECISIONS])[precision.astype(np.int64)]

    # tokens: the row's, else the model's published count, else Chinchilla's 20 per parameter
    tokens = get("tokens")
    model_tokens = mcols["training_tokens_b"] * 1e9
    chinchilla = ctx.defaults["tokens_per_param"] * training.total_params_of(shapes)
    tokens = np.where(np.isfinite(tokens), tokens, np.where(np.isfinite(model_tokens), model_tokens, chinchilla))

    links = chip_link_arrays(ccols, ctx.defaults)
    # per-model core terms: gathered from the catalog models, or computed from the row's own shapes (with the
    # catalog model's latent attention, which no row column overrides)
    terms = (training.model_terms(training.shapes_of(shapes)) if explicit
             else {k: v[np.maximum(model_idx, 0)] for k, v in ctx.model_terms.items()})
    x: dict[str, Array] = {
        **terms,
        **shapes,
        **links,
        "peak_flops": peak,
        "peak_16": _peak_16(peaks16, peak),
        "peak_published": published,
        "n_chips": n_chips,
        "global_batch": get("global_batch"),
        "tokens": tokens,
        "weight_bytes": weight_bytes,
        # Megatron all-reduces fp32 gradients, DeepSpeed's fp16 optimizer the fp16 ones (defaults.yaml frameworks)
        **_workload_defaults(get, ctx, precision, n, safe_chip),
        **_moe_inputs(get, ctx, model_idx, shapes["layers"], n, errors),
        "cp": _cp_column(get("cp"), shapes["seq"], errors),
        "cp_blank": (~np.isfinite(get("cp"))).astype(np.float64),  # searched on long sequences (`_context_parallel`)
        "mtp_layers": _or_default(get("mtp_layers"), shapes["mtp_layers"]),  # the row's MTP modules, else the model's
        **_layer_fields(get),
        "offload_layers": _or_default(get("offload_layers"), 0.0),
        "offload_blank": (~np.isfinite(get("offload_layers"))).astype(np.float64),
        "sustained_flops": get("sustained_tflops") * 1e12,
        "total_flops": get("total_flops"),
        "precision": precision,
        "dp_req": get("dp"),
        "up_latency": cluster_vals["scale_up_latency_s"],
        "cluster_chips": cluster_vals["n_chips"],  # the preset's own size (NaN: none); notes only
        "mode": _or_default(get("mode"), 0.0),
        "lora_params": lora_parameters({**shapes}, _or_default(get("lora_rank"), ctx.defaults["lora_rank"]),
                                       _or_default(get("lora_targets"), 0.0)),
    }
    blank = _searched(get, x)
    # a weight-streaming system runs data parallel only: its tp/pp are not searched
    stream = links["streaming"] > 0
    for key in ("tp", "pp", "interleave"):
        x[key] = np.where(stream & blank[key], 1.0, x[key])
        blank[key] = blank[key] & ~stream
    return x, blank, chip_idx


def training_inputs(table: pa.Table, ctx: Context, errors: RowErrors) -> tuple[dict[str, Array], dict[str, Array], Array]:
    """Parse a training table -> (core inputs, blank masks of searchable layout fields, chip index)."""
    return assemble_training(parse_training(table, ctx, errors), ctx, errors)


def run_training(x: dict[str, Array], cal: dict[str, Array], dtype: type | None = None) -> dict[str, Array]:
    """The core (in `dtype`, see `training.evaluate`) plus the constraint a row's explicit dp puts on the layout."""
    out = training.evaluate(x, cal, dtype=dtype)
    dp_req = x.get("dp_req")
    if dp_req is not None:
        clash = np.isfinite(dp_req) & (np.abs(out["dp"] - dp_req) > 0.5)
        if clash.any():
            out["reason_mask"] = out["reason_mask"] | np.where(clash, training.R_DP, 0)
            for k in TRAINING_OUT:  # a layout that cannot run has no time, cost or energy
                if k in out and k not in ("mem_per_chip_gb", "fits") and np.asarray(out[k]).dtype.kind == "f":
                    out[k] = np.where(clash, np.nan, out[k])
    return out


def _searched(get, x: dict[str, Array]) -> dict[str, Array]:  # type: ignore[no-untyped-def]
    """The layout fields of each row (into `x`) and which of them the row leaves blank for the layout search:
    expert parallelism only on mixture-of-experts rows, a dense row's blank ep being 1."""
    blank = {}
    for key in layout.SEARCHED:
        vals = np.array(get(key), dtype=np.float64, copy=True)
        blank[key] = ~np.isfinite(vals)
        x[key] = vals
    moe = np.nan_to_num(np.asarray(x["moe_experts"], dtype=np.float64)) > 0
    x["ep"] = np.where(blank["ep"] & ~moe, 1.0, x["ep"])
    blank["ep"] = blank["ep"] & moe
    return blank


def search_training(
    x: dict[str, Array], blank: dict[str, Array], ctx: Context, chip_idx: Array, dtype: type | None = None
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Layout search for rows of one kind of chip set; calibration travels with each candidate."""
    inputs = dict(x)
    shared: dict[str, Array | float] = {}
    for k, v in ctx.cal_for(chip_idx, x.get("framework")).items():
        if isinstance(v, np.ndarray):
            inputs["cal:" + k] = v  # per-chip values travel with each candidate
        else:
            shared[k] = v

    def run(cand: dict[str, Array]) -> dict[str, Array]:
        cal = {**shared, **{k[4:]: v for k, v in cand.items() if k.startswith("cal:")}}
        return run_training(cand, cal, dtype)

    res_x, res_out = layout.search(inputs, blank, run)
    _context_parallel(inputs, blank, run, res_x, res_out)
    _offload_when_nothing_fits(inputs, blank, run, res_x, res_out)
    return {k: v for k, v in res_x.items() if not k.startswith("cal:")}, res_out


CP_FROM_SEQ = 16_384  # tokens per sequence from which a blank cp is searched (below it: 1)
CP_CANDIDATES = (2, 4, 8, 16, 32)  # context-parallel sizes tried beside 1


def _context_parallel(inputs: dict[str, Array], blank: dict[str, Array],
                      run: Callable[[dict[str, Array]], dict[str, Array]],
                      res_x: dict[str, Array], res_out: dict[str, Array]) -> None:
    """A row that leaves cp blank with a sequence of CP_FROM_SEQ tokens or more is searched again at each cp of
    CP_CANDIDATES (the rest of its blank layout searched at each), and the fastest feasible layout replaces the one
    found at cp 1, in place: context parallelism splits each sequence's activations and attention over cp chips
    (Megatron-Core's ring attention), which long sequences need (the published runs that use it: 8K-64K tokens). A
    shorter sequence keeps cp 1 unless given: six searches for every row would cost every search six times."""
    if "cp_blank" not in inputs or "reason_mask" not in res_out:
        return
    rows = np.nonzero((np.asarray(inputs["cp_blank"]) > 0) & (np.asarray(inputs["seq"]) >= CP_FROM_SEQ))[0]
    if not len(rows):
        return
    sub, sub_blank = {k: v[rows] for k, v in inputs.items()}, {k: v[rows] for k, v in blank.items()}
    best = layout.time_per_token({k: v[rows] for k, v in res_out.items()})
    for cp in CP_CANDIDATES:
        rx, ro = layout.search({**sub, "cp": np.full(len(rows), float(cp))}, sub_blank, run)
        score = layout.time_per_token(ro)
        faster = score < best
        if not faster.any():
            continue
        best = np.where(faster, score, best)
        for k, v in rx.items():
            res_x[k][rows[faster]] = v[faster]
        for k, v in ro.items():
            res_out[k][rows[faster]] = v[faster]


MAXTEXT = float(FRAMEWORKS.index("maxtext"))


def all_but_one_offloaded(layers: Array, pp: Array) -> Array:
    """`offload_layers` with every layer of a stage in host memory but the one whose copy is in flight."""
    return np.maximum(np.floor(layers / np.maximum(pp, 1.0)) - 1.0, 0.0)


def _offload_could_fit(x: Mapping[str, Array], reason_mask: Array) -> Array:
    """Rows refused for memory alone that leave `offload_layers` blank on a chip with a published host link."""
    blank = x.get("offload_blank")
    if blank is None:
        return np.zeros(len(reason_mask), dtype=bool)
    return (np.asarray(blank) > 0) & (np.asarray(reason_mask) == training.R_MEMORY) & np.isfinite(x["host_bw"])


def offload_wanted(x: Mapping[str, Array], reason_mask: Array) -> Array:
    """Rows the search offloads for: refused for memory alone, `offload_layers` left blank, on a chip with a published
    host link, under MaxText, whose TPU recipes offload the decoder layer input where nothing else fits (tpu-recipes'
    Llama 3.1, Mistral and Mixtral runs on v6e). GPU frameworks offload only where a row asks (Megatron-Core's
    `--cpu-offloading-num-layers` is in one family of published presets, which state it): the host memory behind a
    GPU node's PCIe links is shared by its eight GPUs, a contention the core does not model, so an offloading GPU
    layout found by the search alone would sit on frontiers where the model is most optimistic."""
    return _offload_could_fit(x, reason_mask) & (np.asarray(x["framework"]) == MAXTEXT)


def _offload_when_nothing_fits(inputs: dict[str, Array], blank: dict[str, Array],
                               run: Callable[[dict[str, Array]], dict[str, Array]],
                               res_x: dict[str, Array], res_out: dict[str, Array]) -> None:
    """A row `offload_wanted` names is searched again with its saved activations in host memory, every layer of a
    stage but the one in flight (`offload_layers` = its layers / pp - 1): what MaxText's `decoder_layer_input=offload`
    remat policies run where nothing else fits (the copies' cost over the host link is the core's). A layout that fits
    that way replaces the refused one, in place."""
    if "reason_mask" not in res_out:
        return
    retry = np.nonzero(offload_wanted(inputs, res_out["reason_mask"]))[0]
    if not len(retry):
        return

    def run_offloaded(cand: dict[str, Array]) -> dict[str, Array]:
        return run({**cand, "offload_layers": all_but_one_offloaded(cand["layers"], cand["pp"])})

    sub_x, sub_out = layout.search({k: v[retry] for k, v in inputs.items()}, {k: v[retry] for k, v in blank.items()},
                                   run_offloaded)
    fits = sub_out["reason_mask"] == 0
    rows, picked = retry[fits], np.nonzero(fits)[0]
    sub_x["offload_layers"] = all_but_one_offloaded(sub_x["layers"], sub_x["pp"])
    for k, v in sub_x.items():
        res_x[k][rows] = v[picked]
    for k, v in sub_out.items():
        res_out[k][rows] = v[picked]


def evaluate_training(table: pa.Table, ctx: Context, *, strict: bool = False) -> tuple[pa.Table, RowErrors]:
    errors = RowErrors(table.num_rows)
    x, blank, chip_idx = training_inputs(table, ctx, errors)
    # strict refuses the file once, naming every bad row: the layouts of the rows that parsed are checked first
    ok = ~errors.bad
    n = table.num_rows
    resolved = {k: v.copy() for k, v in x.items()}
    outputs: dict[str, Array] = {}
    if ok.any():
        rows = np.nonzero(ok)[0]
        res_x, res_out = search_training({k: v[rows] for k, v in x.items()}, {k: v[rows] for k, v in blank.items()}, ctx, chip_idx[rows])
        for k, v in res_x.items():
            resolved[k][rows] = v
        for k, v in res_out.items():
            outputs.setdefault(k, np.full(n, np.nan if v.dtype.kind == "f" else 0, dtype=v.dtype))[rows] = v
    _layout_errors(errors, resolved, blank, outputs, ok)
    if strict and errors:
        raise errors.error()
    fw = np.nan_to_num(resolved["framework"], nan=0.0).astype(np.int64)
    provenance = ctx.calibrated_on[fw, np.maximum(chip_idx, 0)]
    hints = _ep_hints(resolved, outputs, ctx, chip_idx, ok)
    for r, text in _offload_hints(resolved, outputs, ctx, chip_idx, ok).items():
        hints[r] = f"{hints[r]}; {text}" if r in hints else text
    usable = np.broadcast_to(ctx.cal_for(chip_idx, fw)["mem_usable"], (n,))  # fraction of memory a framework uses
    return _training_table(table, resolved, outputs, errors, ctx, chip_idx, provenance, hints, usable), errors


def _divisors(n: float) -> list[int]:
    return [d for d in range(1, int(n) + 1) if int(n) % d == 0] if np.isfinite(n) and n >= 1 else []


def _layout_errors(errors: RowErrors, x: Mapping[str, Array], blank: Mapping[str, Array], out: Mapping[str, Array],
                   ok: Array) -> None:
    """A layout the row gives (not left to the search) that breaks one of the core's integer rules is a bad cell,
    named by row, field, value and what is allowed, as `evaluate` reports every other bad input; the rows the search
    filled keep their reason (no layout fits)."""
    mask = out.get("reason_mask")
    if mask is None:
        return
    mask = np.asarray(mask, dtype=np.int64)

    def given(key: str) -> Array:
        return ok & ~np.asarray(blank.get(key, np.zeros(len(ok), dtype=bool)))

    n = x["n_chips"]
    tp, pp = np.nan_to_num(x["tp"], nan=1.0), np.nan_to_num(x["pp"], nan=1.0)  # a blank the search left undecided: 1
    for r in np.nonzero(given("tp") & ((mask & training.R_HEADS) != 0))[0].tolist():
        heads, what = int(x["heads"][r]), f"{int(x['heads'][r])} attention heads"
        if "ssm_layers" in x and x["ssm_layers"][r] > 0:  # Megatron-Core's MambaMixer splits its heads and groups too
            heads = math.gcd(heads, int(x["ssm_heads"][r]), int(x["ssm_groups"][r]))
            what += f", its {int(x['ssm_heads'][r])} Mamba heads and {int(x['ssm_groups'][r])} groups"
        fits = [d for d in _divisors(heads) if int(n[r]) % d == 0]
        errors.add([r], "tp", [int(tp[r])], f"tp must divide the model's {what} and "
                   f"n_chips = {int(n[r])}; allowed: {', '.join(map(str, fits))}")
    split = (mask & training.R_LAYOUT) != 0
    for r in np.nonzero((given("tp") | given("pp")) & split)[0].tolist():
        field = "pp" if bool(given("pp")[r]) and not (bool(given("tp")[r]) and int(n[r]) % int(tp[r])) else "tp"
        other = int(tp[r] if field == "pp" else pp[r])
        fits = [d for d in _divisors(n[r] / other) if float(n[r]) / other == int(n[r] / other)]
        errors.add([r], field, [int((pp if field == "pp" else tp)[r])], f"tp x pp must divide n_chips = {int(n[r])}; allowed with "
                   f"{'tp' if field == 'pp' else 'pp'} = {other}: {', '.join(map(str, fits)) or 'none'}")
    dp_req = x.get("dp_req")
    if dp_req is not None:
        for r in np.nonzero(ok & ((mask & training.R_DP) != 0))[0].tolist():
            per = int(tp[r] * pp[r] * (x["cp"][r] if np.isfinite(x["cp"][r]) else 1.0))
            errors.add([r], "dp", [int(dp_req[r])], f"tp x pp x cp x dp must equal n_chips = {int(n[r])}; allowed: "
                       f"{int(n[r]) // per if per and int(n[r]) % per == 0 else 'none at this tp, pp and cp'} "
                       "(or blank)")
    for r in np.nonzero(given("zero_stage") & ((mask & training.R_ZEROPP) != 0))[0].tolist():
        errors.add([r], "zero_stage", [int(x["zero_stage"][r])], f"ZeRO-2/3 keep no whole gradients across a pipeline's "
                   f"micro-batches (DeepSpeed refuses them with pp > 1); allowed with pp = {int(pp[r])}: 0, 1")
    for r in np.nonzero(given("interleave") & ((mask & training.R_INTERLEAVE) != 0))[0].tolist():
        errors.add([r], "interleave", [int(x["interleave"][r])], training.REASONS[training.R_INTERLEAVE]
                   + f" (pp = {int(pp[r])}); allowed: 1")
    for r in np.nonzero(given("pp") & ((mask & training.R_LAYERS) != 0) & ~split)[0].tolist():
        fits = [d for d in _divisors(n[r]) if d <= x["layers"][r] + 2]
        errors.add([r], "pp", [int(pp[r])], training.REASONS[training.R_LAYERS]
                   + f" ({int(x['layers'][r])} layers); allowed: pp dividing the layers (of {', '.join(map(str, fits))})")
    for r in np.nonzero(given("micro_batch") & ((mask & training.R_BATCH) != 0))[0].tolist():
        errors.add([r], "micro_batch", [int(x["micro_batch"][r])],
                   f"allowed: 1 to global_batch = {int(x['global_batch'][r])}")
    # int8 training under a framework without it (MaxText's AQT alone has it): the precision is the cell, not some
    # feature of the framework's
    int8 = ok & ((mask & training.R_FRAMEWORK) != 0) & (x["low_precision"] > 1.5) & (x["fw_int8"] < 0.5)
    for r in np.nonzero(int8)[0].tolist():
        errors.add([r], "precision", ["int8"], "int8 training (integer GEMMs, AQT) is in framework maxtext alone; "
                   "allowed: fp32, fp16, bf16, fp8 (or mxfp8, nvfp4 where the chip has them) under this framework, "
                   "or framework maxtext")


def _offload_hints(x: dict[str, Array], out: dict[str, Array], ctx: Context, chip_idx: Array,
                   ok: Array) -> dict[int, str]:
    """For rows refused for memory alone that leave `offload_layers` blank on a chip with a published host link (the
    search offloads by itself only under MaxText, `offload_wanted`): whether every layer of a stage but the one in
    flight in host memory would fit, found by running the core again with only that changed, and at what speed."""
    mask = out.get("reason_mask")
    if mask is None:
        return {}
    # MaxText rows were searched with the offload already (`offload_wanted`): what still fails does not fit with it
    rows = np.nonzero(ok & _offload_could_fit(x, mask) & (np.asarray(x["framework"]) != MAXTEXT))[0]
    if not len(rows):
        return {}
    one = {k: np.asarray(v)[rows] for k, v in x.items() if np.ndim(v)}
    one["offload_layers"] = all_but_one_offloaded(one["layers"], one["pp"])
    res = training.evaluate(one, ctx.cal_for(chip_idx[rows], np.nan_to_num(one["framework"], nan=0.0)))
    hints: dict[int, str] = {}
    for j, r in enumerate(rows.tolist()):
        if bool(res["fits"][j]) and int(res["reason_mask"][j]) == 0:
            hints[r] = (f"fits with offload_layers = {int(one['offload_layers'][j])} (activations in host memory over "
                        f"the {one['host_bw'][j] / 1e9:.0f} GB/s host link: {res['tokens_per_s'][j]:,.0f} tokens/s)")
    return hints


def _ep_hints(x: dict[str, Array], out: dict[str, Array], ctx: Context, chip_idx: Array, ok: Array) -> dict[int, str]:
    """For MoE rows refused for memory: the smallest ep (a divisor of the experts that divides tp x dp) at which the row
    fits, found by running the core again with only ep changed; or that no ep fits."""
    mask = out.get("reason_mask")
    if mask is None:
        return {}
    rows = np.nonzero(ok & ((mask & training.R_MEMORY) != 0) & (np.nan_to_num(x["moe_experts"]) > 0))[0]
    hints: dict[int, str] = {}
    for r in rows.tolist():
        E, ep, dp = int(x["moe_experts"][r]), int(x["ep"][r]), int(out["dp"][r]) * int(x["tp"][r])
        cands = [d for d in range(ep + 1, E + 1) if E % d == 0 and dp % d == 0]
        if not cands:
            hints[r] = f"no larger ep fits the layout (ep must divide moe_experts = {E} and tp x dp = {dp})"
            continue
        one = {k: np.repeat(np.asarray(v)[r:r + 1], len(cands)) for k, v in x.items() if np.ndim(v)}
        one["ep"] = np.asarray(cands, dtype=np.float64)
        fw = np.nan_to_num(one["framework"], nan=0.0)
        res = training.evaluate(one, ctx.cal_for(np.full(len(cands), chip_idx[r]), fw))
        fits = np.nonzero(np.asarray(res["fits"], dtype=bool))[0]
        hints[r] = (f"needs ep >= {cands[int(fits[0])]} (allowed: divisors of moe_experts = {E} that divide tp x dp = {dp})"
                    if len(fits) else f"no ep up to {cands[-1]} fits: the non-expert weights and activations alone do not")
    return hints


def _training_table(table: pa.Table, x: dict[str, Array], out: dict[str, Array], errors: RowErrors, ctx: Context,
                    chip_idx: Array, provenance: np.ndarray | None = None,
                    hints: dict[int, str] | None = None, usable: Array | None = None) -> pa.Table:
    n = table.num_rows
    cols: dict[str, pa.Array] = {}
    for name in table.column_names:
        cols[name] = table.column(name)
    bad = errors.bad
    mask = out.get("reason_mask", np.zeros(n, dtype=np.int64))
    reason = training.reason_text(mask)
    mem = out.get("mem_per_chip_gb", np.full(n, np.nan))
    limit = x["mem_bytes"] / 1e9
    mem_rows = (mask & training.R_MEMORY) != 0
    ext = out.get("mem_external_gb", np.full(n, np.nan))
    ext_limit = x["ext_mem_bytes"] / 1e9
    for i in np.nonzero(mem_rows)[0].tolist():
        if np.isfinite(ext[i]):  # weight-streaming system: states in the external tier, activations on chip
            detail = (f"does not fit in memory: {ext[i]:.1f} GB of weights+optimizer state in the external tier "
                      f"(limit {ext_limit[i]:.1f} GB), {mem[i]:.1f} GB of activations on chip (limit {limit[i]:.1f} GB)")
        else:
            # the chip's bytes: what the driver exposes (memory_visible_gb), else memory_gb read as GiB
            detail = f"does not fit in memory: {mem[i]:.1f} GB per chip > {limit[i]:.1f} GB"
            if usable is not None and usable[i] < 1.0:  # the limit is the share a framework can use
                detail = (f"does not fit in memory: {mem[i]:.1f} GB per chip > {limit[i] * usable[i]:.1f} GB usable "
                          f"({usable[i]:.0%} of the chip's {limit[i]:.1f} GB)")
            if hints and i in hints:  # MoE: the expert parallelism that would fit; host offload that would
                detail += (f" at ep = {int(x['ep'][i])}; " if np.nan_to_num(x["moe_experts"][i]) > 0 else "; ") + hints[i]
        reason[i] = reason[i].replace("does not fit in memory", detail)
    reason = ctx.with_quoted(reason, (mask & training.R_CHIPDATA) != 0, chip_idx)  # what the sources quote
    reason = np.where(bad, errors.text(), reason)
    chips = np.asarray(ctx.chips.ids, dtype=object)[np.maximum(chip_idx, 0)]

    def ints(a: Array) -> pa.Array:
        return pa.array(np.where(bad | ~np.isfinite(a), None, a).tolist(), type=pa.int64())

    if "cluster" in table.column_names:  # a cluster preset names the chip and the count
        cols["chip"] = pa.array(np.where(bad, None, chips).tolist(), type=pa.string())
        cols["n_chips"] = ints(x["n_chips"])
    dp = out.get("dp", np.full(n, np.nan))
    cols["seq_len"] = ints(x["seq"])  # as run: the row's, else the model's pre-training sequence (train_seq_len)
    cols["tp"] = ints(x["tp"])
    cols["pp"] = ints(x["pp"])
    cols["dp"] = ints(dp)
    cols["micro_batch"] = ints(x["micro_batch"])
    cols["interleave"] = ints(x["interleave"])
    rec = np.asarray(RECOMPUTE, dtype=object)[np.nan_to_num(x["recompute"], nan=0).astype(np.int64)]
    cols["recompute"] = pa.array(np.where(bad | ~np.isfinite(x["recompute"]), None, rec).tolist(), type=pa.string())
    sched = np.asarray(PP_SCHEDULES, dtype=object)[np.nan_to_num(x["pp_schedule"], nan=0).astype(np.int64)]
    cols["pp_schedule"] = pa.array(sched.tolist(), type=pa.string())
    cols["expert_tp"] = ints(np.asarray(out.get("expert_tp", np.ones(n)), dtype=np.float64))

    def floats(a: Array) -> pa.Array:
        return pa.array(np.where(bad | ~np.isfinite(a), None, a).tolist(), type=pa.float64())

    cols["moe_imbalance"] = floats(x["moe_imbalance"])
    cols["moe_a2a_overlap"] = floats(x["a2a_overlap"])
    cols["moe_capacity_factor"] = floats(x["moe_capacity"] if x.get("moe_capacity") is not None else np.full(n, np.nan))
    cols["zero_stage"] = ints(x["zero_stage"])
    cols["ep"] = ints(x["ep"])
    cols["cp"] = ints(x["cp"])
    cols["offload_layers"] = ints(x["offload_layers"])
    cols["mtp_layers"] = ints(x["mtp_layers"])
    cols["bf16_first_layers"] = ints(x["bf16_first_layers"])
    cols["bf16_last_layers"] = ints(x["bf16_last_layers"])
    prec = np.asarray(PRECISIONS, dtype=object)[np.nan_to_num(x["precision"], nan=0).astype(np.int64)]
    cols["precision"] = pa.array(np.where(bad, None, prec).tolist(), type=pa.string())
    # the workload the time, cost and energy are for: a blank `tokens` is the model's published training tokens
    # (else 20 per parameter), as the lake stores it
    cols["tokens"] = pa.array(np.where(bad, np.nan, np.asarray(x["tokens"], dtype=np.float64)), type=pa.float64())
    for name in TRAINING_OUT:
        v = out.get(name, np.full(n, np.nan))
        if name == "fits":
            cols[name] = pa.array(np.where(bad, None, v.astype(bool)).tolist(), type=pa.bool_())
        else:
            cols[name] = pa.array(np.where(bad, np.nan, v.astype(np.float64)), type=pa.float64())
    cols["cost_basis"] = cost_basis_text(out.get("cost_owned", np.zeros(n)), bad)
    cols["infeasible_reason"] = pa.array(reason.tolist(), type=pa.string())
    fw = np.asarray(FRAMEWORKS, dtype=object)[np.nan_to_num(x["framework"], nan=0).astype(np.int64)]
    cols["framework"] = pa.array(np.where(bad, None, fw).tolist(), type=pa.string())
    how = np.asarray(BATCH_HANDLING, dtype=object)[np.nan_to_num(out.get("batch_handling", np.zeros(n)), nan=0).astype(np.int64)]
    cols["batch_handling"] = pa.array(np.where(bad | (mask != 0), None, how).tolist(), type=pa.string())
    prov = provenance
    cols["calibrated_on"] = pa.array([None if bad[i] or prov is None else str(prov[i]) for i in range(n)], type=pa.string())
    cols["notes"] = pa.array(training_notes(x, out, ~bad & (mask == 0)).tolist(), type=pa.string())
    keep_given(table, cols, bad)
    return pa.table(cols)


# what a feasible row computed from a stand-in, or could not compute, because the chip's sources leave a field blank
TRAINING_NOTES = (
    "no published scale-up link: the collectives inside its domain run at its scale-out link's rate, or PCIe 4.0 x16 "
    "where that is blank too (defaults.fallback_link_gb_s; give chip.scale_up_gb_s)",
    "no published scale-out link: the collectives between domains run at PCIe 4.0 x16 (defaults.fallback_link_gb_s; "
    "give chip.scale_out_gbit_s)",
    "cost not computed: no rental price and no purchase price published (give chip.usd_per_hour or chip.purchase_usd)",
    "energy not computed: tdp_w not published (give chip.tdp_w)",
    "cost not computed: cost_basis rental, and the chip has no rental price (give chip.usd_per_hour)",
    "cost not computed: cost_basis owned, and the chip has no purchase price (give chip.purchase_usd or "
    "chip.server_usd)",
    "cost not computed: cost_basis owned prices the electricity at the chip's power, and tdp_w is not published "
    "(give chip.tdp_w)",
    "n_chips above the cluster preset's own size: several of it (racks, pods, slices), joined by its scale-out network",
)


def training_notes(x: Mapping[str, Array], out: Mapping[str, Array], feasible: Array) -> np.ndarray:
    """Per row, the `notes` text: '' or TRAINING_NOTES joined by '; ', for the feasible rows whose answer leans on
    a stand-in for a field the chip's sources leave blank (a link the layout uses) or lacks an output for want of
    one (cost, energy)."""
    n = len(feasible)
    missing = np.broadcast_to(np.asarray(x.get("link_missing", np.zeros(n)), dtype=np.int64), (n,))
    chips = np.asarray(x["n_chips"], dtype=np.float64)
    domain = np.broadcast_to(np.asarray(x["up_domain"], dtype=np.float64), (n,))
    nan = np.full(n, np.nan)
    no_cost = ~np.isfinite(np.asarray(out.get("cost_usd", nan), dtype=np.float64))
    basis = np.broadcast_to(np.asarray(out.get("cost_owned", nan), dtype=np.float64), (n,))  # 0 rental, 1 owned, NaN none
    priced = np.isfinite(np.asarray(out.get("capex_usd", nan), dtype=np.float64))  # owned: the purchase is known
    flags = np.stack([
        ((missing & 1) != 0) & (chips > 1),
        ((missing & 2) != 0) & (chips > domain),
        no_cost & ~np.isfinite(basis),
        ~np.isfinite(np.asarray(out.get("energy_mwh", nan), dtype=np.float64)),
        no_cost & (basis == 0),
        no_cost & (basis == 1) & ~priced,
        no_cost & (basis == 1) & priced,
        chips > np.broadcast_to(np.asarray(x.get("cluster_chips", nan), dtype=np.float64), (n,)),
    ], axis=1) & np.asarray(feasible, dtype=bool)[:, None]
    codes = flags @ (1 << np.arange(len(TRAINING_NOTES)))
    texts = {int(c): "; ".join(t for i, t in enumerate(TRAINING_NOTES) if c >> i & 1) for c in np.unique(codes)}
    return np.asarray([texts[int(c)] for c in codes], dtype=object)
