"""Every closed vocabulary of chipsweep, defined once: specs, `evaluate` columns, the numpy core and the
lake's dictionary columns all take their allowed values from here.

A vocabulary is a `Literal` type (for pydantic and mypy) and the tuple of its values (for parsing, error
messages and the core's integer codes: a value's code is its position in the tuple).
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, get_args

# ---- what a sweep is -------------------------------------------------------------------------------
Kind = Literal["training", "inference", "asic"]
KINDS: tuple[str, ...] = get_args(Kind)
StoreMode = Literal["all", "feasible", "frontier"]
STORE_MODES: tuple[str, ...] = get_args(StoreMode)


class SweepState(str, Enum):
    """Where a sweep version stands. `preparing`: a re-run putting its carried files in place (invisible
    to the dispatcher); the last three are final."""

    PREPARING = "preparing"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


# states users see (`status --json`), and the ones a sweep never leaves
SWEEP_STATES: tuple[str, ...] = tuple(s.value for s in SweepState if s is not SweepState.PREPARING)
FINAL_STATES: tuple[str, ...] = (SweepState.DONE.value, SweepState.FAILED.value, SweepState.CANCELLED.value)
IN_FLIGHT_STATES: tuple[str, ...] = (SweepState.PREPARING.value, SweepState.QUEUED.value, SweepState.RUNNING.value)
CHUNK_STATES: tuple[str, ...] = ("pending", "running", "done", "failed")

# ---- model architecture ----------------------------------------------------------------------------
Mlp = Literal["gelu", "swiglu"]  # gelu: two projections (GPT); swiglu: three (LLaMA)
MLP_TYPES: tuple[str, ...] = get_args(Mlp)
# the explicit shape columns of a model (training, inference and ASIC rows, sweep axes)
SHAPE_FIELDS: tuple[str, ...] = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab", "seq_len", "head_dim")
# the shape a training row must give when it names no catalog model
REQUIRED_SHAPE_FIELDS: tuple[str, ...] = ("layers", "hidden", "heads", "vocab", "seq_len")
MODEL_NUMERIC: tuple[str, ...] = ("params_b", *SHAPE_FIELDS, "training_tokens_b")

# ---- training --------------------------------------------------------------------------------------
Precision = Literal["fp32", "fp16", "bf16", "fp8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Recompute = Literal["none", "selective", "full"]
RECOMPUTE: tuple[str, ...] = get_args(Recompute)
Framework = Literal["megatron", "deepspeed", "deepspeed_2021"]
FRAMEWORKS: tuple[str, ...] = get_args(Framework)
CostBasis = Literal["rental", "owned"]  # the `cost_basis` column: where cost_usd comes from
COST_BASES: tuple[str, ...] = get_args(CostBasis)
Mode = Literal["pretrain", "full", "lora"]  # pre-training, full fine-tuning, LoRA fine-tuning
MODES: tuple[str, ...] = get_args(Mode)
LoraTargets = Literal["qv", "qkvo", "all"]  # adapted projections: Hu et al. 2021 sec. 7.1 adapt W_q, W_v
LORA_TARGETS: tuple[str, ...] = get_args(LoraTargets)

# ---- inference and edge ASICs ----------------------------------------------------------------------
BITS: tuple[str, ...] = ("4", "8", "16")  # weight and KV-cache bits
Dram = Literal["lpddr4x", "lpddr5", "lpddr5x", "hbm2e", "hbm3", "none"]
DRAM_TYPES: tuple[str, ...] = get_args(Dram)
AsicPrecision = Literal["int4", "int8", "fp16"]
ASIC_PRECISIONS: tuple[str, ...] = get_args(AsicPrecision)
YieldModel = Literal["negative_binomial", "poisson", "murphy", "seeds"]
YIELD_MODELS: tuple[str, ...] = get_args(YieldModel)
Arch = Literal["npu", "gpu"]
ARCHS: tuple[str, ...] = get_args(Arch)

# ---- the chip fields the core reads as numbers, and the ones a what-if override may change ---------
CHIP_NUMERIC: tuple[str, ...] = (
    "peak_tflops_fp32", "peak_tflops_tf32", "peak_tflops_fp16", "peak_tflops_bf16", "peak_tflops_fp8",
    "peak_tops_int8", "peak_tops_int4", "neural_engine_tops", "memory_gb", "memory_bandwidth_gb_s", "sram_mb",
    "external_memory_gb", "external_memory_gb_s", "scale_up_gb_s", "scale_up_domain", "scale_out_gbit_s",
    "tdp_w", "idle_w", "usd_per_hour", "purchase_usd", "die_area_mm2", "process_nm", "chips_per_system",
)
OVERRIDABLE: tuple[str, ...] = tuple(f for f in CHIP_NUMERIC if f != "process_nm")
