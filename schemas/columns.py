"""The one definition of every result table: columns, types, units and docs.

The Arrow schema of the lake's fact tables, the `evaluate` output column order and the docs all derive
from these lists. Facts are narrow: integer ids for chip and model (resolved through the dimension
tables written beside them), float32 where 7 significant digits are plenty, dictionary-encoded strings.
Hive partition columns (`kind`, `sweep`, `version`) are not stored inside the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from chipsweep.schemas import vocab

Role = Literal["key", "input", "output"]
Better = Literal["min", "max"]
_NUMERIC = ("int64", "int32", "int16", "int8", "float32", "float64")

_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "category": pa.dictionary(pa.int32(), pa.string()),
    "string": pa.string(),
}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a key of _TYPES
    unit: str
    doc: str
    role: Role
    better: Better = "min"  # as an objective: which way is better (numeric outputs)

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.dtype]

    @property
    def is_objective(self) -> bool:
        """A numeric output a frontier may rank by."""
        return self.role == "output" and self.dtype in _NUMERIC


def _c(name: str, dtype: str, unit: str, doc: str, role: Role, *, better: Better = "min") -> Column:
    return Column(name, dtype, unit, doc, role, better)


KEY = [
    _c("idx", "int64", "", "flat configuration index in the sweep space (unique per sweep version)", "key"),
]

TRAINING: list[Column] = [
    *KEY,
    _c("model_id", "int16", "", "model (dimension table `models`)", "input"),
    _c("chip_id", "int16", "", "chip (dimension table `chips`)", "input"),
    _c("n_chips", "int32", "chips", "chips in the job", "input"),
    _c("global_batch", "int32", "sequences", "global batch per step", "input"),
    _c("seq_len", "int32", "tokens", "sequence length", "input"),
    _c("tokens", "float64", "tokens", "training tokens of the run", "input"),
    _c("precision", "category", "", "fp32 | fp16 | bf16 | fp8 | mxfp8 | nvfp4 | int8", "input"),
    _c("tp", "int16", "", "tensor-parallel size", "input"),
    _c("pp", "int16", "", "pipeline-parallel size", "input"),
    _c("dp", "int32", "", "data-parallel size", "input"),
    _c("micro_batch", "int16", "sequences", "micro-batch size", "input"),
    _c("interleave", "int8", "", "virtual pipeline stages per chip", "input"),
    _c("recompute", "category", "", "none | selective | full", "input"),
    _c("zero_stage", "int8", "", "ZeRO stage 0-3", "input"),
    _c("step_time_s", "float32", "s", "time per optimizer step", "output"),
    _c("tokens_per_s", "float32", "tokens/s", "training throughput of the whole job", "output", better="max"),
    _c("model_tflops_per_chip", "float32", "TFLOP/s", "model FLOPs (no recompute) per chip per second", "output", better="max"),
    _c("hardware_tflops_per_chip", "float32", "TFLOP/s", "hardware FLOPs (with recompute) per chip per second", "output", better="max"),
    _c("mfu", "float32", "fraction", "model FLOPs utilisation", "output", better="max"),
    _c("hfu", "float32", "fraction", "hardware FLOPs utilisation", "output", better="max"),
    _c("mem_per_chip_gb", "float32", "GB", "memory per chip (the fullest pipeline stage: the first, a middle or the "
       "last)", "output"),
    _c("fits", "bool", "", "the configuration fits in memory (memory only: a row that fits can still break another "
       "rule, which infeasible_reason names; feasible rows have fits and an empty infeasible_reason)", "output"),
    _c("time_to_train_days", "float32", "days", "wall-clock time for `tokens`", "output"),
    _c("chip_hours", "float32", "chip-hours", "chip-hours of the run", "output"),
    _c("energy_mwh", "float32", "MWh", "energy of the run at the facility: (each chip's draw + its host's share, "
       "defaults.yaml host_power_w, none for a whole system) x PUE x chip-hours", "output"),
    _c("cost_usd", "float32", "USD", "rental cost, or purchase amortised plus energy", "output"),
    _c("co2_t", "float32", "t CO2eq", "emissions at the grid intensity of the catalog defaults", "output"),
    _c("cost_basis", "category", "", "rental | owned: cost_usd from a rental price, or the owned cluster's TCO (capex_usd + opex_usd)", "output"),
    _c("infeasible_reason", "category", "", "empty when feasible", "output"),
    # added 2026-12 (issue 12): at the end, so lakes written before read them as NULL
    _c("framework", "category", "", "software generation: megatron | deepspeed | ... (schemas/vocab.py FRAMEWORKS)", "input"),
    _c("capex_usd", "float32", "USD", "owned: purchase of chips, servers and network spread over the amortisation years at the cost of capital", "output"),
    _c("opex_usd", "float32", "USD", "owned: energy at measured draw x PUE, facility and operations per kW", "output"),
    _c("global_batch_run", "int32", "sequences", "global batch actually run (the nearest valid one at or below global_batch)", "output"),
    _c("idle_chips", "int32", "chips", "chips of n_chips left without work by the layout or the batch", "output"),
    _c("first_stage_layers", "int16", "layers", "layers on the first pipeline stage (per chip, all virtual stages)", "output"),
    _c("last_stage_layers", "int16", "layers", "layers on the last pipeline stage", "output"),
    _c("batch_handling", "category", "", "exact | nearest_batch | idle_chips: how a batch the chips do not divide ran", "output"),
    _c("calibrated_on", "category", "", "published sources that fitted this chip's constants, or 'extrapolated from <family>'", "output"),
    # added 2026-12 (issue 13): mixture of experts, at the end so lakes written before read them as NULL
    _c("ep", "int16", "", "expert-parallel size (resolved; divides dp and moe_experts; 1 on a dense model)", "input"),
    _c("moe_experts", "int16", "", "routed experts per MoE layer (0 on a dense model)", "input"),
    _c("moe_topk", "int16", "", "routed experts per token (0 on a dense model)", "input"),
    _c("moe_ffn_hidden", "int32", "", "hidden size of one expert", "input"),
    _c("moe_shared_experts", "int16", "", "always-active shared experts per MoE layer", "input"),
    _c("moe_dense_layers", "int16", "layers", "leading dense (non-MoE) layers", "input"),
    _c("cp", "int16", "", "context-parallel size (resolved; divides seq_len; each rank holds seq_len/cp tokens; blank: searched where a "
       "sequence has 16K tokens or more, else 1)", "input"),
    # added 2026-12: where a step goes, at the end so lakes written before read them as NULL
    _c("bubble_s", "float32", "s", "pipeline bubble per step ((pp - 1) / interleave stage times, slowest stage)", "output"),
    _c("tp_comm_s", "float32", "s", "tensor-parallel communication per step that the GEMMs do not hide (slowest stage)", "output"),
    _c("dp_comm_s", "float32", "s", "data-parallel / ZeRO / FSDP communication per step that compute does not hide", "output"),
    _c("moe_a2a_s", "float32", "s", "expert-parallel all-to-all per step that compute does not hide (slowest stage)", "output"),
    # added 2026-12: activation offloading, at the end so lakes written before read it as NULL
    _c("offload_layers", "int16", "layers", "layers per pipeline stage whose saved activations wait in host memory "
       "between forward and backward (0: none)", "input"),
    # added 2026-12-06: multi-token prediction, at the end so lakes written before read it as NULL
    _c("mtp_layers", "int16", "modules", "multi-token prediction modules trained beside the model (DeepSeek-V3 sec. "
       "2.2: a projection, one layer and the output head each, on the last pipeline stage; 0: none)", "input"),
    # added 2026-12-06: 16-bit layers of a low-precision run, at the end so lakes written before read them as NULL
    _c("bf16_first_layers", "int16", "layers", "first layers whose matrix multiplies stay in 16 bits in an fp8, mxfp8 "
       "or nvfp4 run (Megatron-Core num_layers_at_start_in_bf16; 0: none)", "input"),
    _c("bf16_last_layers", "int16", "layers", "last layers whose matrix multiplies stay in 16 bits in an fp8, mxfp8 "
       "or nvfp4 run (Megatron-Core num_layers_at_end_in_bf16; Nemotron 3 Super's NVFP4 recipe: 14; 0: none)", "input"),
    # added 2026-12-06: the pipeline schedule, at the end so lakes written before read it as NULL
    _c("pp_schedule", "category", "", "1f1b | dualpipe (DeepSeek-V3's bidirectional pipeline)", "input"),
    # added 2026-12-06: the MoE settings a sweep may vary, at the end so lakes written before read them as NULL
    _c("expert_tp", "int16", "", "chips one expert is split over (resolved: Megatron-Core's --expert-tensor-parallel-"
       "size, 1 or tp; 1 on a dense model)", "input"),
    _c("moe_imbalance", "float32", "", "the busiest expert's tokens over the mean (1: force-balanced)", "input"),
    _c("moe_a2a_overlap", "float32", "", "share of a layer's compute the expert all-to-all may run behind (0-1)", "input"),
    _c("moe_capacity_factor", "float32", "", "each expert's token buffer over its mean load (NULL: dropless)", "input"),
    # added 2026-12-06: what a sweep set that has no column of its own, at the end so lakes written before read NULL
    _c("what_if", "category", "", "the sweep's axis and fixed settings without a column of their own (a model's "
       "shapes, framework switches, chip.* overrides) as 'name=value; ...', '' where none", "input"),
    # added 2026-12-07: where a step goes, the optimizer's part, at the end so lakes written before read it as NULL
    _c("optimizer_s", "float32", "s", "optimizer step per training step (Adam over the parameters one chip updates: "
       "its shard under ZeRO-1 and above)", "output"),
]

INFERENCE: list[Column] = [
    *KEY,
    _c("model_id", "int16", "", "model (dimension table `models`)", "input"),
    _c("chip_id", "int16", "", "chip (dimension table `chips`)", "input"),
    _c("n_chips", "int16", "chips", "tensor-parallel chips serving one replica", "input"),
    _c("weight_bits", "int8", "bits", "weight precision 4 | 8 | 16", "input"),
    _c("kv_bits", "int8", "bits", "KV-cache precision", "input"),
    _c("batch", "int32", "sequences", "sequences of the static batch (blank: the largest that fits, or the "
       "concurrency where that fits)", "input"),
    _c("prompt_len", "int32", "tokens", "prompt length", "input"),
    _c("gen_len", "int32", "tokens", "generated tokens", "input"),
    _c("ttft_s", "float32", "s", "time to first token at the serving point (concurrency: a prompt waits for the "
       "iteration in flight, then runs beside the other requests' decodes)", "output"),
    _c("prefill_tokens_per_s", "float32", "tokens/s", "prompt tokens per second per sequence of the static batch "
       "(batch: its prompts in one pass)", "output", better="max"),
    _c("decode_tokens_per_s", "float32", "tokens/s", "generated tokens per second per sequence of the static batch "
       "(batch); tokens_per_s_per_user is the serving point's", "output", better="max"),
    _c("throughput_tokens_per_s", "float32", "tokens/s", "generated tokens per second, all sequences of the static "
       "batch", "output", better="max"),
    _c("energy_per_token_j", "float32", "J", "energy per generated token at the serving point (concurrency), "
       "prompts included: the chips' own draw as ML.ENERGY and MLPerf measure it (no host share, no PUE; an owned "
       "serving cost pays both)", "output"),
    _c("mem_gb", "float32", "GB", "memory per chip: weights + KV cache + activations", "output"),
    _c("unit_cost_usd", "float32", "USD", "purchase price of the chips serving one replica, as the catalog quotes it (an accelerator's or a whole system's: the chips table's purchase_scope; unknown: NULL in the lake, NaN in `evaluate`'s table)", "output"),
    _c("fits", "bool", "", "fits in memory (memory only: a row that fits can still break another rule, which "
       "infeasible_reason names; feasible rows have fits and an empty infeasible_reason)", "output"),
    _c("infeasible_reason", "category", "", "empty when feasible", "output"),
    # serving (continuous batching; added 2026-12 at the end so lakes written before still read)
    _c("compute_precision", "category", "", "fp16 | bf16 | fp8 | fp4 | int8: the precision the matrix multiplies run in", "input"),
    _c("ep", "int16", "", "expert-parallel size (divides n_chips; 1 on a dense model)", "input"),
    _c("pp", "int16", "", "pipeline (layer-split) stages; n_chips / pp chips tensor-parallel in each", "input"),
    _c("concurrency", "int32", "sequences", "requests in flight per instance (continuous batching)", "input"),
    _c("disaggregated", "bool", "", "prefill on a separate pool of chips (sized to the prompt rate)", "input"),
    _c("dp_attention", "bool", "", "attention data-parallel over the chips (each keeps its own sequences' KV cache)", "input"),
    _c("engine", "category", "", "serving engine whose fitted efficiency applies", "input"),
    _c("output_tokens_per_s", "float32", "tokens/s", "steady-state output tokens per second of the instance, prefill interleaved", "output", better="max"),
    _c("output_tokens_per_s_per_chip", "float32", "tokens/s", "output tokens per second per chip (prompt pool included when disaggregated)", "output", better="max"),
    _c("tokens_per_s_per_user", "float32", "tokens/s", "output tokens per second each request sees (1 / TPOT)", "output", better="max"),
    _c("tpot_s", "float32", "s", "time per output token at this concurrency", "output"),
    _c("usd_per_million_tokens", "float32", "USD", "rental (else owned: purchase amortised + electricity) cost per million output tokens", "output"),
    _c("power_w", "float32", "W", "average power of the instance: every chip serving it together (2 H100 at 587 W each read 1,174)", "output"),
    _c("calibrated_on", "category", "", "published sources that fitted this engine and chip's efficiency, or 'extrapolated from ...'", "output"),
    # added 2026-12-02 at the end so lakes written before still read
    _c("scheduler_steps", "int16", "", "forward passes per scheduler call (vLLM --num-scheduler-steps): the host's per-sequence work is paid once per this many", "input"),
    # added 2026-12-03 at the end so lakes written before still read
    _c("ssm_state_bits", "int8", "bits", "precision of a state-space (Mamba) layer's recurrent state per sequence: 16 | 32 (vLLM --mamba-ssm-cache-dtype)", "input"),
    _c("async_scheduling", "bool", "", "the engine schedules the next iteration while the chips run this one (vLLM --async-scheduling): the host's per-sequence work overlaps the step", "input"),
    # added 2026-12-04 at the end so lakes written before still read
    _c("ep_dedup", "bool", "", "hierarchical expert dispatch (DeepEP): a token crosses the network once per remote scale-up domain holding one of its experts, not once per expert", "input"),
    # added 2026-12-06: what a sweep set that has no column of its own, at the end so lakes written before read NULL
    _c("what_if", "category", "", "the sweep's axis and fixed settings without a column of their own (a model's "
       "shapes, params_b, quant_overhead, chip.* overrides) as 'name=value; ...', '' where none", "input"),
    # added 2026-12-07 at the end so lakes written before read NULL
    _c("cost_basis", "category", "", "rental | owned: usd_per_million_tokens from the chips' rental price, or what "
       "owning them costs (NULL: no cost); pareto_serving never compares the two", "output"),
    # added 2026-12-07 (a thirty-fourth session) at the end so lakes written before read NULL
    _c("prefill_instances", "int32", "", "disaggregated: prompt instances (of n_chips chips each) serving "
       "decode_instances decode instances, xPyD (blank: the fewest that keep up; NULL colocated)", "input"),
    _c("decode_instances", "int16", "", "disaggregated: decode instances sharing the prompt pool (blank: 1; NULL "
       "colocated)", "input"),
    _c("prefill_pool_busy", "float32", "", "disaggregated: share of the time the prompt pool's chips run passes "
       "(its load over its instances; the queue's wait in ttft_s grows as it nears 1); NULL colocated", "output"),
]

ASIC: list[Column] = [
    *KEY,
    _c("model_id", "int16", "", "workload model (dimension table `models`)", "input"),
    _c("node_nm", "float32", "nm", "process node (between table nodes: interpolated)", "input"),
    _c("n_mac", "int32", "MACs", "multiply-accumulate units", "input"),
    _c("clock_ghz", "float32", "GHz", "clock", "input"),
    _c("sram_mb", "float32", "MB", "on-chip SRAM", "input"),
    _c("dram", "category", "", "lpddr4x | lpddr5 | lpddr5x | hbm2e | hbm3", "input"),
    _c("dram_bus_bits", "int16", "bits", "DRAM bus width", "input"),
    _c("precision", "category", "", "int4 | int8 | fp16", "input"),
    _c("weight_bits", "int8", "bits", "weight precision of the workload", "input"),
    _c("batch", "int32", "sequences", "concurrent sequences", "input"),
    _c("prompt_len", "int32", "tokens", "prompt length", "input"),
    _c("gen_len", "int32", "tokens", "generated tokens", "input"),
    _c("die_area_mm2", "float32", "mm^2", "die area", "output"),
    _c("dies_per_wafer", "float32", "dies", "gross dies per 300 mm wafer", "output", better="max"),
    _c("yield", "float32", "fraction", "die yield", "output", better="max"),
    _c("unit_cost_usd", "float32", "USD", "packaged, tested unit cost (+ DRAM)", "output"),
    _c("peak_tops", "float32", "TOP/s", "peak at the design precision", "output", better="max"),
    _c("power_w", "float32", "W", "power while decoding", "output"),
    _c("tops_per_w", "float32", "TOP/s/W", "peak TOPS per watt at full load", "output", better="max"),
    _c("decode_tokens_per_s", "float32", "tokens/s", "generated tokens per second per sequence", "output", better="max"),
    _c("ttft_s", "float32", "s", "time to first token", "output"),
    _c("energy_per_token_j", "float32", "J", "energy per generated token, the prompt's prefill included (as inference rows count it)", "output"),
    _c("fits", "bool", "", "the model fits the memory system (memory only: a design that fits can still break "
       "another rule, such as the reticle, which infeasible_reason names; feasible rows have fits and an empty "
       "infeasible_reason)", "output"),
    _c("infeasible_reason", "category", "", "empty when feasible", "output"),
    # added 2026-12-05 at the end so lakes written before still read: every design axis a spec may sweep, and the
    # serving point pareto_edge compares with catalog chips
    _c("dram_mt_s", "float32", "MT/s", "DRAM transfer rate per pin (the type's default where blank)", "input"),
    _c("dram_gb", "float32", "GB", "DRAM bundled with the chip (given, or sized to the workload where blank)", "output"),
    _c("kv_bits", "int8", "bits", "KV-cache precision of the workload", "input"),
    _c("arch", "category", "", "npu | gpu (datapath style)", "input"),
    _c("yield_model", "category", "", "negative_binomial | murphy | seeds | poisson", "input"),
    _c("d0_per_cm2", "float32", "defects/cm^2", "killer defect density (the node's where blank)", "input"),
    _c("tiles", "int32", "tiles", "active tiles of a redundant (spare-tile) design", "input"),
    _c("spare_tiles", "int32", "tiles", "spare tiles (0: no redundancy)", "input"),
    _c("decode_energy_per_token_j", "float32", "J", "energy per generated token of the decode steps alone", "output"),
    _c("notes", "category", "", "caveats of the design's numbers: a node between table nodes (interpolated), HBM priced from LPDDR numbers, on-chip SRAM bandwidth not modelled, ...", "output"),
]

FACTS: dict[str, list[Column]] = {"training": TRAINING, "inference": INFERENCE, "asic": ASIC}
KINDS = tuple(FACTS)
assert KINDS == vocab.KINDS, "a fact table per kind of sweep"
PARTITIONS = ("kind", "sweep", "version")  # hive partition keys, in path order


def arrow_schema(kind: str) -> pa.Schema:
    """The Arrow schema of one kind's fact files (without the hive partition columns)."""
    cols = FACTS[kind]
    return pa.schema([pa.field(c.name, c.arrow_type, metadata={"unit": c.unit, "doc": c.doc}) for c in cols])


def fact_array(values: Any, type_: pa.DataType, mask: Any = None) -> pa.Array:
    """One fact column as the lake stores it: `values` (numpy) cast to the column's type, null where `mask` says and,
    in a float column, where the core left NaN (an output it could not compute: no price, no TDP). SQL then skips
    them as it skips any unknown (`max`, `avg`, `count(col)`), where a stored NaN would win `max` and spread through
    `avg` in DuckDB."""
    arr = np.asarray(values)
    if pa.types.is_floating(type_) and arr.size and np.isnan(arr.min()):  # min propagates NaN: one pass, no copy
        nan = np.isnan(arr)
        mask = nan if mask is None else (np.asarray(mask) | nan)
    return pa.array(arr.astype(type_.to_pandas_dtype(), copy=False), type=type_, mask=mask)


def columns(kind: str, role: Role | None = None) -> list[str]:
    return [c.name for c in FACTS[kind] if role is None or c.role == role]


def objective_columns(kind: str) -> list[str]:
    """The output columns a sweep or a frontier of this kind may rank by (numeric outputs)."""
    return [c.name for c in FACTS[kind] if c.is_objective]


# objectives better when larger (throughput-like); every other objective is better when smaller
MAXIMISE: frozenset[str] = frozenset(c.name for cols in FACTS.values() for c in cols if c.is_objective and c.better == "max")
# each kind's frontier when a spec names none
DEFAULT_OBJECTIVES: dict[str, tuple[str, ...]] = {
    "training": ("time_to_train_days", "cost_usd"),
    "inference": ("decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd"),
    "asic": ("decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd"),
}


# Dimension tables, written once per sweep version beside its facts:
#   <lake>/dims/chips/sweep=<s>/version=<v>/part-0.parquet   (chip_id, chip, name, vendor, class, ...)
#   <lake>/dims/models/sweep=<s>/version=<v>/part-0.parquet  (model_id, model, name, params_b, ...)
#   <lake>/dims/sweeps/sweep=<s>/version=<v>/part-0.parquet  (one row: kind, spec json, hashes json, ...)
DIM_CHIPS = pa.schema([
    ("chip_id", pa.int16()), ("chip", pa.string()), ("name", pa.string()), ("vendor", pa.string()),
    ("class", pa.string()), ("confidence", pa.string()), ("peak_tflops_bf16", pa.float64()),
    ("peak_tflops_fp16", pa.float64()), ("peak_tops_int8", pa.float64()), ("memory_gb", pa.float64()),
    ("memory_bandwidth_gb_s", pa.float64()), ("tdp_w", pa.float64()), ("usd_per_hour", pa.float64()),
    ("purchase_usd", pa.float64()),
    # what purchase_usd buys: accelerator (runs in a host computer) or system (runs on its own); Chip.cost_scope
    ("purchase_scope", pa.string()),
    ("price_date", pa.string()),  # when usd_per_hour was quoted (YYYY or YYYY-MM), as the catalog says
])
DIM_MODELS = pa.schema([
    ("model_id", pa.int16()), ("model", pa.string()), ("name", pa.string()), ("family", pa.string()),
    ("params_b", pa.float64()), ("layers", pa.int32()), ("hidden", pa.int32()), ("heads", pa.int32()),
])
# One row per sweep version (the hive columns `sweep`, `version` come from the path). `state` is one of
# queued | running | done | failed | cancelled; `hashes_json` maps catalog spec id -> content hash used.
DIM_SWEEPS = pa.schema([
    ("kind", pa.string()), ("spec_json", pa.string()), ("hashes_json", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")), ("configurations", pa.int64()), ("state", pa.string()),
])


def dim_sweeps_row(
    kind: str, spec_json: str, hashes_json: str, configurations: int, state: str, created_at: object = None,
) -> pa.Table:
    """The one-row `dims/sweeps` table of a sweep version (created_at: a datetime, default now)."""
    import datetime as _dt

    if kind not in KINDS:
        raise ValueError(f"kind '{kind}' is not one of {', '.join(KINDS)}")
    when = created_at if created_at is not None else _dt.datetime.now(_dt.timezone.utc)
    return pa.table({
        "kind": [kind], "spec_json": [spec_json], "hashes_json": [hashes_json], "created_at": [when],
        "configurations": [int(configurations)], "state": [state],
    }, schema=DIM_SWEEPS)
