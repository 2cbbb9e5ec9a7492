"""What each axis (or fixed setting) of a sweep accepts, per kind, and the key workers read it under.

An axis is a catalog reference (chips, models, clusters; given as ids or as a filter on entry fields),
an integer or a number within bounds, a choice from a vocabulary (schemas/vocab.py) or a boolean.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from chipsweep.schemas.vocab import (
    ARCHS,
    ASIC_PRECISIONS,
    BITS,
    CHIP_INTEGER_RANGE,
    COMPUTE_PRECISIONS,
    COST_BASES,
    DRAM_TYPES,
    ENGINES,
    FRAMEWORKS,
    MLP_TYPES,
    MODEL_NUMERIC,
    MOE_FIELDS,
    OVERRIDABLE,
    PP_SCHEDULES,
    PRECISIONS,
    RECOMPUTE,
    SHAPE_FIELDS,
    STATE_BITS,
    YIELD_MODELS,
)


@dataclass(frozen=True)
class AxisDef:
    """What values one axis (or fixed setting) accepts and the key the worker reads it under."""

    kind: Literal["ref", "int", "num", "choice", "bool"]
    key: str  # key in the worker's raw arrays
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str, ...] = ()  # choices; for refs: the catalog table ("chips", "models", "clusters")
    numeric_choice: bool = False  # choice values written as numbers (weight_bits: 4 | 8 | 16)

    def allowed(self) -> str:
        if self.kind == "ref":
            what = self.options[0][:-1]
            return f"catalog {what} ids (`chipsweep catalog list --kind {self.options[0]}`), or a filter on {what} fields"
        if self.kind == "choice":
            return "one of " + ", ".join(self.options)
        if self.kind == "bool":
            return "true or false"
        noun = "integers" if self.kind == "int" else "numbers"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {fmt_number(self.minimum)} to {fmt_number(self.maximum)}"
        if self.minimum is not None:
            return f"{noun} >= {fmt_number(self.minimum)}"
        return noun


def fmt_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _ints(key: str, lo: float | None = 1, hi: float | None = None) -> AxisDef:
    return AxisDef("int", key, lo, hi)


def _nums(key: str, lo: float | None = 0, hi: float | None = None) -> AxisDef:
    return AxisDef("num", key, lo, hi)


_SHAPES = {k: _ints(k) for k in SHAPE_FIELDS}
_OVERRIDES = {f"chip.{f}": _ints(f"chip.{f}", *CHIP_INTEGER_RANGE[f]) if f in CHIP_INTEGER_RANGE else _nums(f"chip.{f}")
              for f in OVERRIDABLE}

# the inference workload: the same axes for catalog chips (inference) and hypothetical designs (asic)
_EDGE_WORKLOAD: dict[str, AxisDef] = {
    "weight_bits": AxisDef("choice", "weight_bits", options=BITS, numeric_choice=True),
    "kv_bits": AxisDef("choice", "kv_bits", options=BITS, numeric_choice=True),
    "batch": _ints("batch"),
    "prompt_len": _ints("prompt_len", 0),
    "gen_len": _ints("gen_len", 0),
    "quant_overhead": _nums("quant_overhead", 0, 1),
    "params_b": _nums("params_b", 1e-9),
    "mlp": AxisDef("choice", "mlp", options=MLP_TYPES),
}


AXES: dict[str, dict[str, AxisDef]] = {
    "training": {
        "model": AxisDef("ref", "model_idx", options=("models",)),
        "chip": AxisDef("ref", "chip_idx", options=("chips",)),
        "cluster": AxisDef("ref", "cluster_idx", options=("clusters",)),
        "n_chips": _ints("n_chips"),
        "global_batch": _ints("global_batch"),
        "tokens": _nums("tokens", 1),
        "tp": _ints("tp"),
        "pp": _ints("pp"),
        "dp": _ints("dp"),
        "micro_batch": _ints("micro_batch"),
        "interleave": _ints("interleave", 1, 64),
        "recompute": AxisDef("choice", "recompute", options=RECOMPUTE),
        "pp_schedule": AxisDef("choice", "pp_schedule", options=PP_SCHEDULES),
        "zero_stage": _ints("zero_stage", 0, 3),
        "precision": AxisDef("choice", "precision", options=PRECISIONS),
        "sequence_parallel": AxisDef("bool", "sequence_parallel"),
        "flash_attention": AxisDef("bool", "flash_attention"),
        "framework": AxisDef("choice", "framework", options=FRAMEWORKS),
        "cost_basis": AxisDef("choice", "cost_basis", options=COST_BASES),  # owned: the cluster's TCO
        "grad_bytes": _nums("grad_bytes", 1, 4),
        "mlp": AxisDef("choice", "mlp", options=MLP_TYPES),
        # mixture of experts (issue 13): expert parallelism, the architecture as a what-if, routing
        "ep": _ints("ep"),
        "cp": _ints("cp"),
        "offload_layers": _ints("offload_layers", 0),
        "vocab_tiles": _ints("vocab_tiles", 1),
        "mtp_layers": _ints("mtp_layers", 0, 8),
        "bf16_first_layers": _ints("bf16_first_layers", 0),
        "bf16_last_layers": _ints("bf16_last_layers", 0),
        **{f: _ints(f, 0 if f in ("moe_shared_experts", "moe_dense_layers") else 1) for f in MOE_FIELDS},
        "moe_imbalance": _nums("moe_imbalance", 1),
        "moe_a2a_overlap": _nums("moe_a2a_overlap", 0, 1),
        "moe_capacity_factor": _nums("moe_capacity_factor", 0.1, 64),
        "expert_tp": _ints("expert_tp", 1),
        **_SHAPES,
        **_OVERRIDES,
    },
    "inference": {
        "model": AxisDef("ref", "model_idx", options=("models",)),
        "chip": AxisDef("ref", "chip_idx", options=("chips",)),
        "n_chips": _ints("n_chips"),
        **_EDGE_WORKLOAD,
        # serving (workers/inference.py): continuous batching, parallelism, precision, engine
        "concurrency": _ints("concurrency"),
        "ep": _ints("ep"),
        "pp": _ints("pp"),
        "compute_precision": AxisDef("choice", "compute_precision", options=COMPUTE_PRECISIONS),
        "disaggregated": AxisDef("bool", "disaggregated"),
        "prefill_instances": _ints("prefill_instances", 1, 64),  # xPyD of a disaggregated row
        "decode_instances": _ints("decode_instances", 1, 64),
        "dp_attention": AxisDef("bool", "dp_attention"),
        "scheduler_steps": _ints("scheduler_steps"),
        "ssm_state_bits": AxisDef("choice", "ssm_state_bits", options=STATE_BITS, numeric_choice=True),
        "async_scheduling": AxisDef("bool", "async_scheduling"),
        "ep_dedup": AxisDef("bool", "ep_dedup"),
        "engine": AxisDef("choice", "engine", options=ENGINES),
        "cost_basis": AxisDef("choice", "cost_basis", options=COST_BASES),  # owned: what owning the chips costs
        **{f: _ints(f, 0 if f in ("moe_shared_experts", "moe_dense_layers") else 1) for f in MOE_FIELDS},
        **_SHAPES,
        **_OVERRIDES,
    },
    "asic": {
        "model": AxisDef("ref", "model_idx", options=("models",)),
        "node_nm": _nums("node_nm", 1, 100),
        "n_mac": _ints("n_mac"),
        "peak_tops": _nums("peak_tops", 1e-12),
        "clock_ghz": _nums("clock_ghz", 1e-6, 100),
        "sram_mb": _nums("sram_mb", 0),
        "dram": AxisDef("choice", "dram", options=DRAM_TYPES),
        "dram_bus_bits": _ints("dram_bus_bits", 0),
        "dram_mt_s": _nums("dram_mt_s", 1e-9),
        "dram_gb": _nums("dram_gb", 0),
        "precision": AxisDef("choice", "precision", options=ASIC_PRECISIONS),
        "arch": AxisDef("choice", "arch", options=ARCHS),
        "yield_model": AxisDef("choice", "yield_model", options=YIELD_MODELS),
        "d0_per_cm2": _nums("d0_per_cm2", 0),
        "tiles": _ints("tiles"),
        "spare_tiles": _ints("spare_tiles", 0),
        **_EDGE_WORKLOAD,
        **_SHAPES,
    },
}


# names users reach for that chipsweep spells otherwise (a column or axis under one of these is not read)
SYNONYMS: dict[str, dict[str, str]] = {
    "training": {
        "gpus": "n_chips", "n_gpus": "n_chips", "num_gpus": "n_chips", "gpu": "chip", "accelerator": "chip",
        "batch_size": "global_batch", "sequence_length": "seq_len", "tensor_parallel": "tp", "pipeline_parallel": "pp",
        "data_parallel": "dp", "dtype": "precision", "zero": "zero_stage", "activation_checkpointing": "recompute",
    },
    "inference": {
        "tp": "n_chips (the tensor-parallel group is the row's chips)", "tensor_parallel": "n_chips",
        "gpus": "n_chips", "n_gpus": "n_chips", "num_gpus": "n_chips", "gpu": "chip", "accelerator": "chip",
        "precision": "compute_precision, weight_bits", "dtype": "compute_precision, weight_bits",
        "quantization": "weight_bits", "weight_precision": "weight_bits (4 | 8 | 16), compute_precision",
        "wbits": "weight_bits", "kv_precision": "kv_bits", "input_len": "prompt_len", "output_len": "gen_len",
        "batch_size": "concurrency (requests in flight) or batch", "max_concurrency": "concurrency",
    },
    "asic": {"input_len": "prompt_len", "output_len": "gen_len", "process_nm": "node_nm", "macs": "n_mac",
             "dram_type": "dram", "memory": "dram", "memory_type": "dram", "bus_bits": "dram_bus_bits",
             "bus_width": "dram_bus_bits", "weight_precision": "weight_bits (4 | 8 | 16)", "wbits": "weight_bits",
             "quantization": "weight_bits", "kv_precision": "kv_bits", "clock": "clock_ghz", "frequency_ghz": "clock_ghz",
             "sram": "sram_mb", "batch_size": "batch", "node": "node_nm"},
}


def closest_ids(value: str, ids: list[str], n: int = 5) -> list[str]:
    """Catalog ids a mistyped `value` may have meant: those that extend it (nvidia_b200 -> nvidia_b200_hgx) or hold
    it, then the nearest spellings (difflib)."""
    low = value.lower()
    extend = [i for i in ids if low and (i.startswith(low) or low in i)]
    near = [i for i in difflib.get_close_matches(low, ids, n=n, cutoff=0.5) if i not in extend]
    return (extend + near)[:n]


def name_hint(kind: str, name: str, known: set[str] | None = None) -> str | None:
    """What a column or axis `name` that kind `kind` does not read may have meant: a known synonym, the inputs of
    this kind it nearly spells (`known`, else the kind's axes), or the kind it is an input of. None when nothing
    comes close (a pass-through column such as `case_id`)."""
    names = set(AXES.get(kind, {})) | (known or set())
    if name in SYNONYMS.get(kind, {}):
        return f"did you mean {SYNONYMS[kind][name]}?"
    if name in MODEL_NUMERIC:
        return "it is a field of a catalog model entry, read from the catalog, not from a row: a model overlay changes it"
    close = [c for c in difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.7) if c != name]
    if close:
        return f"did you mean {', '.join(close)}?"
    other = [k for k, axes in AXES.items() if k != kind and name in axes]
    if other:
        return f"it is an input of kind {' and '.join(other)}"
    return None
