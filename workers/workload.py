"""The workload of an edge row, shared by the inference and edge-ASIC kinds: the LLM it runs (a catalog id
and/or explicit shapes, parameter counts), weight / KV-cache bits, the quantisation-scale overhead and the
workload defaults of `schemas/catalog/asic.yaml`.

Sources: Kaplan et al. 2020 (arXiv:2001.08361) sec. 2.1 parameter counts (workers/transformer.py);
asic-notes.md section 6 (reference set) for the quantisation-scale overhead per weight precision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.vocab import BITS, MLP_TYPES, MOE_FIELDS, SHAPE_FIELDS
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors, choices, ids, numbers
from chipsweep.workers.tables import compact, model_columns, model_shape_arrays
from chipsweep.workers.transformer import Shapes, attention_params, total_params

Array = np.ndarray

# the model arrays the inference core reads (`model_arrays` also gives `has_model`)
MODEL_KEYS = ("has_model", "layers", "hidden", "q_dim", "kv_dim", "kv_heads", "ffn", "n_proj", "vocab", "params",
              "params_read", "w_dense", "w_expert", "moe_experts", "moe_topk", "moe_layers", "is_moe", "att_dim", "att_dim_prefill",
              "kv_elems", "kv_layers", "kv_share", "heads", "vocab_params", "att_window", "window_share",
              "ssm_state_elems", "ssm_conv_elems", "moe_groups", "moe_topk_groups", "w_attention", "w_replicated",
              "context", "moe_width")


def parse_model(table: pa.Table, ctx: Context, errors: RowErrors, raw: dict[str, Array]) -> None:
    """The model columns of an edge table into `raw`: catalog index, params_b, explicit shapes, mlp."""
    raw["model_idx"] = ids(table, "model", ctx.models.index(), errors, "model")
    raw["params_b"] = numbers(table, "params_b", errors, minimum=1e-9, allowed="allowed: a number > 0 (billions of parameters)")
    for field in SHAPE_FIELDS:
        raw[field] = numbers(table, field, errors, integer=True, minimum=1)
    raw["mlp"] = choices(table, "mlp", MLP_TYPES, errors)
    for field in MOE_FIELDS:  # explicit MoE architecture (blank: the catalog model's, or dense)
        raw[field] = numbers(table, field, errors, integer=True, minimum=0 if field in ("moe_shared_experts", "moe_dense_layers") else 1)


def parse_bits(table: pa.Table, name: str, errors: RowErrors) -> Array:
    """A 4 | 8 | 16 column as bits (NaN where blank)."""
    idx = choices(table, name, BITS, errors)
    return np.where(np.isfinite(idx), np.asarray([4.0, 8.0, 16.0])[np.nan_to_num(idx).astype(np.int64)], np.nan)


def getter(raw: Mapping[str, Any], n: int) -> Callable[[str], Array]:
    """`get(key)`: the raw column as float64 of length n, NaN where the key is absent."""
    nan = np.full(n, np.nan)

    def get(key: str) -> Array:
        v = raw.get(key)
        return nan if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))

    return get


def model_arrays(raw: Mapping[str, Any], ctx: Context, n: int) -> dict[str, Array]:
    """Model shapes, parameter counts and whether the row has a model at all."""
    get = getter(raw, n)
    model_idx = np.asarray(raw.get("model_idx", np.full(n, -1)), dtype=np.int64)
    mcols = model_columns(ctx.models, model_idx, get, {"seq_len": 0.0})
    s = model_shape_arrays(mcols)
    shapes = Shapes(s["layers"], s["hidden"], s["heads"], s["kv_heads"], s["head_dim"], s["ffn"], s["vocab"],
                    s["seq"], s["n_proj"], s["learned_pos"], s["tied"])
    L, h = s["layers"], s["hidden"]
    for field in MOE_FIELDS:  # explicit MoE cells take precedence over the catalog model's
        value = get(field)
        mcols[field] = np.where(np.isfinite(value), value, mcols.get(field, np.full(n, np.nan)))
    # ---- mixture of experts: routed experts of moe_ffn_hidden (one projection set each) in every layer but the
    # moe_dense_layers (Fedus et al. 2022, Switch Transformer sec. 2; DeepSeek-V3 report sec. 2.1)
    E, k = mcols["moe_experts"], mcols["moe_topk"]
    moe = (E > 1) & (k >= 1)  # NaN compares False: dense
    E = np.where(moe, E, 1.0)  # experts per MoE layer (1: dense)
    k = np.where(moe, np.minimum(k, E), 1.0)  # experts per token
    f_e = np.where(np.isfinite(mcols["moe_ffn_hidden"]), mcols["moe_ffn_hidden"], s["ffn"])  # hidden of one expert
    shared = np.nan_to_num(mcols["moe_shared_experts"])  # always-active experts per MoE layer
    # layers with experts: the MLP layers but the dense ones (a hybrid's MoE blocks: catalog mlp_layers)
    mlp_l = np.where(np.isfinite(mcols["mlp_layers"]), mcols["mlp_layers"], L)
    moe_layers = np.where(moe, mlp_l - np.nan_to_num(mcols["moe_dense_layers"]), 0.0)
    # parameters of one routed expert (on a latent MoE's latent width: Megatron-Core moe_latent_size)
    one_expert = s["n_proj"] * np.where(s["moe_latent"] > 0, s["moe_latent"], h) * f_e
    w_expert = moe_layers * E * one_expert  # parameters of the routed experts
    # counted: dense layers' MLP of ffn, MoE layers' routed and shared experts plus the router (h x E)
    dense_count = total_params(shapes)
    moe_count = dense_count + moe_layers * (E * one_expert + shared * s["n_proj"] * h * f_e + h * E
                                            - s["n_proj"] * h * s["ffn"])
    counted = np.where(moe, moe_count, dense_count)
    # a published size stands where the transformer count does not apply: MoE models, multi-head latent attention,
    # hybrid models whose layers are not all attention (Mamba, convolutions)
    published = mcols["params_b"] * 1e9
    # a MoE model's active size fixes the parameters every token uses (attention, shared experts, embeddings):
    # the rest of a published total is rounded (Kimi K2's "1.04T" with 32.6B active), the active size is not
    # (an untied input embedding the published active count leaves out, gpt-oss's, is a parameter besides)
    active = mcols["active_params_b"] * 1e9 + (1.0 - mcols.get("active_embed", 1.0)) * (1.0 - s["tied"]) * s["vocab"] * h
    published = np.where(moe & np.isfinite(active), active + w_expert * (1.0 - k / E), published)
    nonstandard = moe | np.isfinite(mcols["kv_cache_dim"]) | np.isfinite(mcols["attention_layers"])
    given_params = get("params_b") * 1e9
    params = np.where(np.isfinite(given_params), given_params,
                      np.where(nonstandard & np.isfinite(published), published, counted))  # parameters
    has = np.isfinite(s["layers"]) & np.isfinite(s["hidden"]) & np.isfinite(s["heads"]) & np.isfinite(s["vocab"])
    # decode reads every weight but the input embedding table (indexed, not multiplied) when untied
    read_all = params - (1.0 - s["tied"]) * s["vocab"] * h  # parameters a forward pass may touch
    w_dense = read_all - w_expert  # parameters every token uses (attention, dense MLPs, shared experts, head)
    q_dim = s["heads"] * s["head_dim"]
    kv_dim = s["kv_heads"] * s["head_dim"]
    mla = np.isfinite(mcols["kv_cache_dim"])
    kv_layers = np.where(np.isfinite(mcols["attention_layers"]), mcols["attention_layers"], L)
    # state-space (Mamba-2) layers: a sequence keeps, per layer, the SSM state (heads x head_dim x state_dim) and the
    # convolution's last kernel - 1 inputs of x, B and C (heads x head_dim + 2 x groups x state_dim channels)
    # (Dao & Gu 2024, Mamba-2 sec. 7; vLLM's mamba state shapes)
    ssm_l = np.nan_to_num(mcols["ssm_layers"])
    d_inner = mcols["ssm_heads"] * mcols["ssm_head_dim"]
    ssm_state = np.nan_to_num(ssm_l * d_inner * mcols["ssm_state_dim"])  # elements per sequence, all layers
    ssm_conv = np.nan_to_num(ssm_l * (d_inner + 2.0 * mcols["ssm_groups"] * mcols["ssm_state_dim"])
                             * (mcols["ssm_conv_kernel"] - 1.0))  # elements per sequence, all layers
    return {
        "has_model": has,
        "context": s["seq"],  # tokens: the catalog model's sequence length (0 where unknown); notes only
        "layers": L,
        "hidden": h,
        "kv_heads": s["kv_heads"],
        "q_dim": q_dim,
        "kv_dim": kv_dim,
        "ffn": s["ffn"],
        "n_proj": s["n_proj"],
        "vocab": s["vocab"],
        "params": params,
        "vocab_params": (2.0 - s["tied"]) * s["vocab"] * h,  # the input embedding and the output head (one when tied)
        "params_read": w_dense + w_expert * k / E,  # parameters one token uses (all of them on a dense model)
        "w_dense": w_dense,
        "w_expert": w_expert,
        # the attention projections' parameters, every attention layer (latent attention's own shapes where it has
        # them)
        "w_attention": kv_layers * attention_params(replace(
            shapes, mla_q_rank=np.nan_to_num(mcols["mla_q_rank"]), mla_kv_rank=np.nan_to_num(mcols["mla_kv_rank"]),
            mla_rope=np.nan_to_num(mcols["mla_rope_dim"]))),
        # what data-parallel attention keeps whole on every chip: every weight a token uses but the routed experts
        # and the output head (attention, dense MLPs, shared experts, routers, norms), the layers it runs
        # data-parallel without an all-reduce (SGLang's --enable-dp-attention with --moe-dense-tp-size 1)
        "w_replicated": np.maximum(w_dense - s["vocab"] * h, 0.0),
        "moe_experts": E,
        "moe_topk": k,
        "moe_layers": moe_layers,
        # the width of a token the expert all-to-all carries: a latent MoE's latent (Megatron-Core moe_latent_size),
        # else the hidden size
        "moe_width": np.where(s["moe_latent"] > 0, s["moe_latent"], h),
        "is_moe": moe.astype(np.float64),
        # attention FLOPs per token and context token are 4 x att_dim per attention layer; latent attention with
        # absorbed projections scores every head against the cached latent (DeepSeek-V2 report sec. 2.1.3)
        "att_dim": np.where(mla, s["heads"] * mcols["kv_cache_dim"], q_dim),
        # ... while a prompt's pass expands the latent into per-head keys and values first and runs ordinary
        # attention over them (vLLM's and SGLang's MLA prefill, DeepSeek-V2 sec. 2.1.3: absorption is for decoding):
        # q·k over head_dim + rope, a·v over head_dim, the training core's width (transformer.Shapes.att_dim)
        "att_dim_prefill": np.where(mla, q_dim + 0.5 * s["heads"] * np.nan_to_num(mcols["mla_rope_dim"]), q_dim),
        "kv_elems": np.where(mla, mcols["kv_cache_dim"], 2.0 * kv_dim),  # elements cached per token and layer
        "kv_layers": kv_layers,
        # sliding-window attention: the window (tokens; inf without one) and the share of the KV layers using it
        "att_window": np.where(s["sliding_window"] > 0, s["sliding_window"], np.inf),
        "window_share": np.where(s["sliding_window"] > 0, s["sliding_window_layers"] / kv_layers, 0.0),
        # how many chips can split the KV cache under tensor parallelism: the KV heads, one for a shared latent
        "kv_share": np.where(mla, 1.0, s["kv_heads"]),
        "heads": s["heads"],
        "ssm_state_elems": ssm_state,
        "ssm_conv_elems": ssm_conv,
        # group-limited routing (DeepSeek-V3 sec. 2.1.2): expert groups, groups per token (0: no limit)
        "moe_groups": s["moe_groups"],
        "moe_topk_groups": s["moe_topk_groups"],
    }


def has_own_model(raw: Mapping[str, Any]) -> bool:
    """True when some row gives model shapes, params_b or mlp of its own (not only a catalog id)."""
    return any(key in raw and np.isfinite(np.asarray(raw[key], dtype=np.float64)).any()
               for key in (*SHAPE_FIELDS, *MOE_FIELDS, "params_b", "mlp"))


_MODEL_TABLES: dict[int, tuple[Context, dict[str, Any]]] = {}


def model_tables(ctx: Context) -> dict[str, Any]:
    """Per-catalog model arrays (`tables.compact`), computed once per Context: `models` (the inference core's
    keys) and `models_and_blank` (every key, with a no-model row after the catalog models, read by index -1)."""
    hit = _MODEL_TABLES.get(id(ctx))
    if hit is not None and hit[0] is ctx:
        return hit[1]
    nm = len(ctx.models.ids)
    models = model_arrays({"model_idx": np.arange(nm)}, ctx, nm)
    blank = model_arrays({"model_idx": np.array([-1])}, ctx, 1)
    t = {
        "models": compact({k: models[k] for k in MODEL_KEYS}),
        "models_and_blank": compact({k: np.concatenate([v, blank[k]]) for k, v in models.items()}),
    }
    if len(_MODEL_TABLES) > 8:
        _MODEL_TABLES.clear()
    _MODEL_TABLES[id(ctx)] = (ctx, t)
    return t


def workload_default(ctx: Context, name: str) -> float:
    """A workload default of asic.yaml (weight_bits, kv_bits, prompt_len, gen_len)."""
    return float(ctx.catalog.asic["workload_defaults"][name]["value"])


def quant_overhead(given: Array, bits: Array, ctx: Context, nvfp4: Array | None = None,
                   engine_format: tuple[Array, Array] | None = None) -> Array:
    """The row's quantisation-scale overhead (fraction of weight bytes), else asic.yaml's for its weight bits (for
    4-bit weights computed in fp4, `nvfp4`, the NVFP4 format's; for an engine with a file format of its own,
    `engine_format` (its 4-bit and 8-bit overheads, NaN where it has none: asic.yaml serving
    weight_format_overhead_*), that format's)."""
    table = ctx.catalog.asic["asic"]["quant_overhead"]["value"]
    default = np.select([bits <= 4, bits <= 8], [float(table[4]), float(table[8])], float(table[16]))
    if engine_format is not None:
        own = np.select([bits <= 4, bits <= 8], [engine_format[0], engine_format[1]], np.nan)
        default = np.where(np.isfinite(own), own, default)
    if nvfp4 is not None:
        fp4 = float(ctx.catalog.asic["asic"]["quant_overhead_nvfp4"]["value"])
        default = np.where(nvfp4 & (bits <= 4), fp4, default)
    return np.where(np.isfinite(given), given, default)
