"""Catalog entries as numpy column tables, so rows gather chip and model fields by integer id.

The evaluation core never sees pydantic objects: a chip is an index into `ChipTable` arrays and a
model an index into `ModelTable` arrays. Integer ids are positions in sorted-id order and are written
to the lake's dimension tables with every sweep version. Per-catalog columns derived from them are kept
`compact` and read back for a block of rows with one `gather`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chipsweep.schemas.catalog import MEASURED_OF, Catalog, Chip, Model
from chipsweep.schemas.vocab import (
    CHIP_NUMERIC,
    MLA_FIELDS,
    MODEL_NUMERIC,
    OVERRIDABLE,
    PRECISION_FIELD,
    PRECISIONS,
    ROUTING_FIELDS,
    SHAPE_FIELDS,
    SSM_FIELDS,
    WINDOW_FIELDS,
)
from chipsweep.workers.memory import GIB

Array = np.ndarray

# bytes of a weight / activation element in each training precision (fp8 training keeps 16-bit master
# weights and activations; only the matrix multiplies run in fp8 -- NVIDIA Transformer Engine docs)
PRECISION_WEIGHT_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 2.0, "mxfp8": 2.0, "nvfp4": 2.0, "int8": 2.0}
STREAMING_KINDS = ("wafer_scale", "tile")


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


# chip families whose collective library (NCCL, RCCL) runs all-gather and reduce-scatter only as rings of n - 1
# steps (NVIDIA/nccl src/graph/tuning.cc; comm.Group.ring_latency); XLA on TPU, Neuron and HCCL are not modelled so
RING_FAMILIES = ("nvidia_gpu", "amd_gpu")


@dataclass
class ChipTable:
    ids: list[str]
    cols: dict[str, Array]

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ChipTable:
        ids = sorted(catalog.chips)
        chips: list[Chip] = [catalog.chips[i] for i in ids]
        cols = {f: np.array([_num(getattr(c, f)) for c in chips], dtype=np.float64) for f in CHIP_NUMERIC}
        cols["streaming"] = np.array(
            [1.0 if c.system_kind in STREAMING_KINDS and c.external_memory_gb else 0.0 for c in chips]
        )
        cols["scale_up_reduction"] = np.array([1.0 if c.scale_up_reduction else 0.0 for c in chips])
        cols["scale_up_full_mesh"] = np.array([1.0 if c.scale_up_full_mesh else 0.0 for c in chips])
        # the peers a full-mesh chip's links reach (its catalog domain - 1): a what-if domain beyond them is no mesh
        cols["mesh_peers"] = np.array([float(c.scale_up_domain - 1) if c.scale_up_full_mesh and c.scale_up_domain
                                       else 0.0 for c in chips])
        cols["async_mma"] = np.array([1.0 if c.async_mma else 0.0 for c in chips])
        cols["ring_collectives"] = np.array([1.0 if c.training_family in RING_FAMILIES else 0.0 for c in chips])
        # 1 where the purchase price buys a complete system (a DGX Spark, a Jetson kit, a CS-3): its host is in it
        cols["system_price"] = np.array([1.0 if c.cost_scope == "system" else 0.0 for c in chips])
        return cls(ids, cols)

    def index(self) -> dict[str, int]:
        return {cid: i for i, cid in enumerate(self.ids)}


@dataclass
class ModelTable:
    ids: list[str]
    cols: dict[str, Array]

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ModelTable:
        ids = sorted(catalog.models)
        models: list[Model] = [catalog.models[i] for i in ids]
        cols = {f: np.array([_num(getattr(mo, f)) for mo in models], dtype=np.float64) for f in MODEL_NUMERIC}
        cols["n_proj"] = np.array([3.0 if mo.mlp == "swiglu" else 2.0 for mo in models])
        cols["learned_pos"] = np.array([1.0 if mo.position == "learned" else 0.0 for mo in models])
        cols["tied"] = np.array([1.0 if mo.tied_embeddings else 0.0 for mo in models])
        cols["active_embed"] = np.array([1.0 if mo.active_params_embedding else 0.0 for mo in models])
        cols["dropout"] = np.array([np.nan if mo.dropout is None else float(mo.dropout) for mo in models])
        return cls(ids, cols)

    def index(self) -> dict[str, int]:
        return {mid: i for i, mid in enumerate(self.ids)}


def model_columns(models: ModelTable, model_idx: Array, given: Callable[[str], Array],
                  defaults: Mapping[str, float] | None = None) -> dict[str, Array]:
    """Each row's model columns: the catalog model's (`model_idx` < 0: none), with explicit shape cells
    (`given(field)`, NaN where blank) taking precedence and `mlp` (0 gelu, 1 swiglu) setting the
    projections; still-blank architecture fields take their defaults (learned positions off, tied
    embeddings, two MLP projections)."""
    mcols = {k: np.where(model_idx >= 0, v[np.maximum(model_idx, 0)], np.nan) for k, v in models.cols.items()}
    for field in SHAPE_FIELDS:
        value = given(field)
        mcols[field] = np.where(np.isfinite(value), value, mcols[field])
    mlp = given("mlp")
    mcols["n_proj"] = np.where(np.isfinite(mlp), 2.0 + mlp, mcols["n_proj"])
    for field, default in {"n_proj": 2.0, "learned_pos": 0.0, "tied": 1.0, **(defaults or {})}.items():
        mcols[field] = np.where(np.isfinite(mcols[field]), mcols[field], default)
    drop = given("dropout")
    mcols["dropout"] = np.where(np.isfinite(drop), drop, mcols.get("dropout", np.full(len(model_idx), np.nan)))
    # no word on dropout: GPT-2/3-era models with learned positions trained with it, RoPE/ALiBi ones without
    mcols["dropout"] = np.where(np.isfinite(mcols["dropout"]), mcols["dropout"], mcols["learned_pos"])
    return mcols


def training_seq(seq: Array, train_seq: Array) -> Array:
    """The sequence a training row runs at when it gives none: the one most of the model's published pre-training ran
    at (catalog `train_seq_len`, where shorter than the context), else the model's context (`seq_len`)."""
    return np.where(np.isfinite(train_seq), train_seq, seq)


def model_shape_arrays(cols: Mapping[str, Array]) -> dict[str, Array]:
    """Model columns (catalog names) -> the core's shape keys, filling defaults (kv = heads, f = 4h, d_h = h/a)."""
    heads = cols["heads"]
    hidden = cols["hidden"]
    kv = np.where(np.isfinite(cols["kv_heads"]), cols["kv_heads"], heads)
    head_dim = np.where(np.isfinite(cols["head_dim"]), cols["head_dim"], hidden / heads)
    ffn = np.where(np.isfinite(cols["ffn_hidden"]), cols["ffn_hidden"], 4.0 * hidden)
    return {
        "layers": cols["layers"],
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv,
        "head_dim": head_dim,
        "ffn": ffn,
        "vocab": cols["vocab"],
        "seq": cols["seq_len"],
        "n_proj": cols["n_proj"],
        "learned_pos": cols["learned_pos"],
        "tied": cols["tied"],
        # no word on dropout: GPT-2/3-era models (learned positions) trained with it, RoPE/ALiBi ones without
        "dropout": np.where(np.isfinite(cols["dropout"]), cols["dropout"], cols["learned_pos"])
        if "dropout" in cols else cols["learned_pos"],
        # multi-head latent attention ranks (0: standard attention); group-limited routing (0: none); sliding-window
        # attention's window and windowed layers (0: none)
        **{k: np.nan_to_num(cols[k], nan=0.0) if k in cols else np.zeros_like(hidden)
           for k in (*MLA_FIELDS, *ROUTING_FIELDS, *WINDOW_FIELDS, *SSM_FIELDS[1:])},
        # a hybrid model's attention and MLP (or MoE) blocks (every layer where the model does not say) and Mamba-2
        # blocks (none)
        "att_layers": _or_layers(cols.get("attention_layers"), cols["layers"]),
        "mlp_layers": _or_layers(cols.get("mlp_layers"), cols["layers"]),
        "ssm_layers": np.nan_to_num(cols["ssm_layers"], nan=0.0) if "ssm_layers" in cols else np.zeros_like(hidden),
        # multi-token prediction modules trained beside the model (none where the model does not say)
        "mtp_layers": np.nan_to_num(cols["mtp_layers"], nan=0.0) if "mtp_layers" in cols else np.zeros_like(hidden),
        # latent MoE: the routed experts' width (0: the hidden size)
        "moe_latent": np.nan_to_num(cols["moe_latent_dim"], nan=0.0) if "moe_latent_dim" in cols else np.zeros_like(hidden),
    }


def _or_layers(count: Array | None, layers: Array) -> Array:
    return layers if count is None else np.where(np.isfinite(count), count, layers)


def first_rule(rules: Sequence[Mapping[str, Any]], chip: Chip, engine: str | None = None) -> Mapping[str, Any] | None:
    """The first of a catalog's per-chip default rules (asic.yaml serving.engine_default, defaults.yaml
    framework_default, ...) whose vendor, chip classes and (when given) engine match; None when none does."""
    for rule in rules:
        classes = rule.get("class")
        if "vendor" in rule and rule["vendor"] != chip.vendor:
            continue
        if classes is not None and chip.chip_class not in classes:
            continue
        if engine is not None and rule.get("engine", engine) != engine:
            continue
        return rule
    return None


def default_precision(chip_cols: Mapping[str, Array]) -> Array:
    """Index into PRECISIONS: bf16 where the chip has it, else fp16, else fp32, else fp8."""
    has = {p: np.isfinite(chip_cols[PRECISION_FIELD[p]]) for p in PRECISIONS}
    return np.select(
        [has["bf16"], has["fp16"], has["fp32"], has["fp8"]],
        [PRECISIONS.index("bf16"), PRECISIONS.index("fp16"), PRECISIONS.index("fp32"), PRECISIONS.index("fp8")],
        PRECISIONS.index("bf16"),
    )


def chip_what_ifs(ccols: dict[str, Array], raw: Mapping[str, Any], get: Callable[[str], Array]) -> dict[str, Array]:
    """Apply the rows' `chip.<field>` what-ifs (OVERRIDABLE) over the catalog's chip columns, in place, the measured
    counterparts following (`measured_follows`); returns, per field a row overrides, which rows gave it."""
    base = dict(ccols)
    given: dict[str, Array] = {}
    for field in OVERRIDABLE:
        if f"chip.{field}" in raw:
            over = get(f"chip.{field}")
            given[field] = np.isfinite(over)
            ccols[field] = np.where(given[field], over, ccols[field])
    measured_follows(ccols, base, given)
    return given


def measured_follows(ccols: dict[str, Array], base: Mapping[str, Array], given: Mapping[str, Array]) -> None:
    """Row what-ifs on a published figure (`given[field]`: the row overrides it) scale its measured counterpart by
    the same ratio where the row leaves that one alone (schemas.catalog.MEASURED_OF, the rule spec overrides and
    catalog overlays follow): the model reads the measured bandwidth, so chip.memory_bandwidth_gb_s alone changed
    nothing."""
    for published, measured in MEASURED_OF.items():
        if published not in given:
            continue
        mine = given[published] & ~given.get(measured, np.zeros_like(given[published]))
        scaled = base[measured] * ccols[published] / base[published]
        ccols[measured] = np.where(mine & np.isfinite(scaled), scaled, ccols[measured])


def peak_for_precision(chip_cols: Mapping[str, Array], precision: Array) -> tuple[Array, Array]:
    """(peak FLOP/s for each row's precision code, whether the chip publishes any training peak)."""
    stack = np.stack([chip_cols[PRECISION_FIELD[p]] for p in PRECISIONS])  # (4, n) TFLOP/s
    prec = np.clip(precision.astype(np.int64), 0, len(PRECISIONS) - 1)
    peak = np.take_along_axis(stack, prec[None, :], axis=0)[0] * 1e12
    published = np.isfinite(stack).any(axis=0).astype(np.float64)
    return peak, published


def chip_link_arrays(chip_cols: Mapping[str, Array], defaults: Mapping[str, float]) -> dict[str, Array]:
    """Chip columns -> the core's memory and link keys in bytes and bytes/s."""
    # memory_gb read as GiB (HBM stacks are sized in GiB), times the share of it the driver exposes where
    # measured (Chip.memory_visible_share: an "80 GB" H100 shows 85.5 GB, a "192 GB" B200 192.3 GB) or, for on-die
    # SRAM given as memory_gb, its decimal share (Cerebras's 44 GB are 44e9 bytes); sram_mb alone in decimal MB.
    # The training and serving memory models both read these bytes
    dram = chip_cols["memory_gb"] * GIB * np.where(np.isfinite(chip_cols["memory_visible_share"]),
                                                     chip_cols["memory_visible_share"], 1.0)
    mem_bytes = np.where(np.isfinite(chip_cols["memory_gb"]), dram, chip_cols["sram_mb"] * 1e6)
    up = chip_cols["scale_up_gb_s"] * 1e9
    out = chip_cols["scale_out_gbit_s"] * 1e9 / 8.0
    # a chip with no published scale-up link talks over its scale-out NIC (or PCIe: defaults)
    domain = np.where(np.isfinite(chip_cols["scale_up_domain"]), chip_cols["scale_up_domain"], 1.0)
    # which links the chip's sources leave blank (rows say so in `notes`): 1 a scale-up link of a domain of
    # several chips, 2 the scale-out link
    missing = np.where(~np.isfinite(up) & (domain > 1), 1.0, 0.0) + np.where(np.isfinite(out), 0.0, 2.0)
    out = np.where(np.isfinite(out), out, defaults["fallback_link_gb_s"] * 1e9)
    up = np.where(np.isfinite(up), up, out)
    # the share of a host the chip's owned cost carries (its purchase and its power): none where the price buys a whole
    # system, whose draw (tdp_w, power_draw_w) is the whole computer's
    host_share = 1.0 - chip_cols.get("system_price", np.zeros_like(domain))
    return {
        "mem_bytes": mem_bytes,
        "mem_bw": chip_cols["memory_bandwidth_gb_s"] * 1e9,
        # the share of that peak the memory system delivers (measured STREAM-like best, else defaults.yaml)
        "mem_reach": np.where(np.isfinite(chip_cols["memory_bandwidth_measured_gb_s"]),
                              np.minimum(chip_cols["memory_bandwidth_measured_gb_s"] / chip_cols["memory_bandwidth_gb_s"], 1.0),
                              defaults.get("memory_reach", 1.0)),
        "up_bw": up,
        "up_domain": domain,
        "link_missing": missing,
        "up_reduce": chip_cols.get("scale_up_reduction", np.zeros_like(domain)),
        # dimensions of a torus scale-up domain (0: a switch), which bounds its all-to-alls (comm.torus_all_to_all)
        "up_torus": np.nan_to_num(chip_cols.get("scale_up_torus_dims", np.zeros_like(domain)), nan=0.0),
        # 1 where the scale-up domain is a full mesh of point-to-point links (comm.mesh_share), 0 for a switch
        # (only where the mesh's rate is published: a stand-in link is no sum of mesh links)
        # and only as far as its links reach: a what-if domain larger than the mesh (`chip.scale_up_domain` 64 on an
        # 8-GPU Infinity Fabric platform) cannot be one, and is taken as a switch of the same bandwidth per chip
        "up_mesh": np.nan_to_num(chip_cols.get("scale_up_full_mesh", np.zeros_like(domain)), nan=0.0) * (domain > 1)
        * np.isfinite(chip_cols["scale_up_gb_s"])
        * (domain - 1.0 <= np.nan_to_num(chip_cols.get("mesh_peers", np.zeros_like(domain)), nan=0.0)),
        "async_mma": chip_cols.get("async_mma", np.zeros_like(domain)),
        "ring": chip_cols.get("ring_collectives", np.zeros_like(domain)),
        "out_bw": out,
        "host_bw": chip_cols["host_link_gb_s"] * 1e9,  # bytes/s, one direction (NaN: not published)
        "host_mem": chip_cols["host_memory_gb"] * GIB,  # bytes of host memory per chip (NaN: not published)
        "tdp_w": chip_cols["tdp_w"],
        "usd_per_hour": chip_cols["usd_per_hour"],
        "purchase_usd": chip_cols["purchase_usd"],
        "streaming": chip_cols["streaming"],
        "ext_mem_bytes": chip_cols["external_memory_gb"] * 1e9,
        "ext_bw": chip_cols["external_memory_gb_s"] * 1e9,
        # owned-cluster TCO per accelerator: measured draw (else TDP x the measured fraction), and the purchase:
        # the server's share (else the chip's price plus a host share, none where the price buys a whole system)
        # plus the network's share
        "power_w": np.where(np.isfinite(chip_cols["power_draw_w"]), chip_cols["power_draw_w"],
                            chip_cols["tdp_w"] * defaults.get("power_draw_fraction", 1.0)),
        "host_share": host_share,
        "capex_usd": np.where(np.isfinite(chip_cols["server_usd"]), chip_cols["server_usd"],
                              chip_cols["purchase_usd"] + defaults.get("host_usd", 0.0) * host_share)
        + np.where(np.isfinite(chip_cols["network_usd"]), chip_cols["network_usd"], defaults.get("network_usd", 0.0)),
    }


def compact(cols: Mapping[str, Array]) -> dict[str, Any]:
    """Per-catalog columns prepared for `gather`: columns whose every entry is the same are kept as 0-d
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
    floats = [i for i, k in enumerate(varying) if kinds[k] == np.float64]
    others = [i for i, k in enumerate(varying) if kinds[k] != np.float64]
    # for sweeps that evaluate in float32 (`gather(..., dtype=np.float32)`): the float columns in float32, the others
    # (integer bit masks, indices) as they are
    return {"const": const, "names": varying, "dtypes": kinds, "stack": stack, "floats": floats, "others": others,
            "stack32": stack[floats].astype(np.float32), "stack_others": stack[others]}


def gather(table: Mapping[str, Any], idx: Array, dtype: type | None = None) -> dict[str, Array]:
    """Rows `idx` of a `compact` table: one take over the stacked columns, broadcast views for constants. With
    `dtype` np.float32 the float columns come in float32, taken from the table's float32 copy (a sweep's core runs in
    float32: no float64 gather and cast per block); the other columns keep their own dtype."""
    n = len(idx)
    narrow = dtype is not None and np.dtype(dtype) == np.float32
    out = {k: np.broadcast_to(v.astype(np.float32) if narrow and v.dtype == np.float64 else v, (n,))
           for k, v in table["const"].items()}
    names = table["names"]
    if not names:
        return out
    if narrow:
        for i, row in zip(table["floats"], np.take(table["stack32"], idx, axis=1), strict=True):
            out[names[i]] = row
        for i, row in zip(table["others"], np.take(table["stack_others"], idx, axis=1), strict=True):
            out[names[i]] = row.astype(table["dtypes"][names[i]])
        return out
    rows = np.take(table["stack"], idx, axis=1)  # (column, row), each row of the result contiguous
    for name, row in zip(names, rows, strict=True):
        kind = table["dtypes"][name]
        out[name] = row if kind == np.float64 else row.astype(kind)
    return out
