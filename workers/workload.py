"""The workload of an edge row, shared by the inference and edge-ASIC kinds: the LLM it runs (a catalog id
and/or explicit shapes, parameter counts), weight / KV-cache bits, the quantisation-scale overhead and the
workload defaults of `schemas/catalog/asic.yaml`.

Sources: Kaplan et al. 2020 (arXiv:2001.08361) sec. 2.1 parameter counts (workers/transformer.py);
asic-notes.md section 6 (reference set) for the quantisation-scale overhead per weight precision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.vocab import BITS, MLP_TYPES, SHAPE_FIELDS
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors, choices, ids, numbers
from chipsweep.workers.tables import compact, model_columns, model_shape_arrays
from chipsweep.workers.transformer import Shapes, total_params

Array = np.ndarray

# the model arrays the inference core reads (`model_arrays` also gives `has_model`)
MODEL_KEYS = ("has_model", "layers", "hidden", "q_dim", "kv_dim", "kv_heads", "ffn", "n_proj", "vocab", "params",
              "params_read")


def parse_model(table: pa.Table, ctx: Context, errors: RowErrors, raw: dict[str, Array]) -> None:
    """The model columns of an edge table into `raw`: catalog index, params_b, explicit shapes, mlp."""
    raw["model_idx"] = ids(table, "model", ctx.models.index(), errors, "model")
    raw["params_b"] = numbers(table, "params_b", errors, minimum=1e-9, allowed="allowed: a number > 0 (billions of parameters)")
    for field in SHAPE_FIELDS:
        raw[field] = numbers(table, field, errors, integer=True, minimum=1)
    raw["mlp"] = choices(table, "mlp", MLP_TYPES, errors)


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


def has_own_model(raw: Mapping[str, Any]) -> bool:
    """True when some row gives model shapes, params_b or mlp of its own (not only a catalog id)."""
    return any(key in raw and np.isfinite(np.asarray(raw[key], dtype=np.float64)).any()
               for key in (*SHAPE_FIELDS, "params_b", "mlp"))


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


def quant_overhead(given: Array, bits: Array, ctx: Context) -> Array:
    """The row's quantisation-scale overhead (fraction of weight bytes), else asic.yaml's for its weight bits."""
    table = ctx.catalog.asic["asic"]["quant_overhead"]["value"]
    default = np.select([bits <= 4, bits <= 8], [float(table[4]), float(table[8])], float(table[16]))
    return np.where(np.isfinite(given), given, default)
