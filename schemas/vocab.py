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
# mixture-of-experts architecture columns (rows and catalog models; blank or absent on a dense model)
MOE_FIELDS: tuple[str, ...] = ("moe_experts", "moe_topk", "moe_ffn_hidden", "moe_shared_experts", "moe_dense_layers")
# multi-head latent attention (catalog models): query and key-value ranks, the decoupled RoPE key's width
MLA_FIELDS: tuple[str, ...] = ("mla_q_rank", "mla_kv_rank", "mla_rope_dim")
# group-limited routing (DeepSeek-V3 node-limited routing): experts in moe_groups groups, a token in moe_topk_groups
ROUTING_FIELDS: tuple[str, ...] = ("moe_groups", "moe_topk_groups")
# sliding-window attention (catalog models): the window in tokens and how many layers use it (the rest attend to
# the whole context)
WINDOW_FIELDS: tuple[str, ...] = ("sliding_window", "sliding_window_layers")
# state-space (Mamba-2) layers of hybrid models (catalog models): how many, their heads, head and state widths, the
# B/C groups and the causal convolution's kernel, as the model's config publishes them (Dao & Gu 2024, Mamba-2)
SSM_FIELDS: tuple[str, ...] = ("ssm_layers", "ssm_heads", "ssm_head_dim", "ssm_state_dim", "ssm_groups", "ssm_conv_kernel")
MODEL_NUMERIC: tuple[str, ...] = ("params_b", *SHAPE_FIELDS, "train_seq_len", "training_tokens_b", "active_params_b",
                                  *MOE_FIELDS, "kv_cache_dim", "attention_layers", "mlp_layers", "mtp_layers",
                                  "moe_latent_dim", *MLA_FIELDS, *ROUTING_FIELDS, *WINDOW_FIELDS, *SSM_FIELDS)

# ---- training --------------------------------------------------------------------------------------
# fp8: per-tensor scaled 8-bit GEMMs (Transformer Engine); mxfp8: 8-bit GEMMs with a scale per 32 elements (OCP
# Microscaling spec, Blackwell tensor cores); nvfp4: 4-bit GEMMs with a scale per 16 elements (Blackwell); int8:
# 8-bit integer GEMMs forward and backward (MaxText's AQT quantization=int8 on TPUs); added at the end so the codes
# stored in lakes keep their meaning
Precision = Literal["fp32", "fp16", "bf16", "fp8", "mxfp8", "nvfp4", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# pipeline schedule: 1f1b, Megatron's one-forward-one-backward (interleaved where interleave > 1); dualpipe,
# DeepSeek-V3's bidirectional schedule (arXiv:2412.19437 sec. 3.2.1): every rank holds two stages, r and p-1-r, fed
# micro-batches from both ends, a bubble of (p/2 - 1)(F&B + B - 3W) (Table 2) and two copies of the parameters
PpSchedule = Literal["1f1b", "dualpipe"]
PP_SCHEDULES: tuple[str, ...] = get_args(PpSchedule)
Recompute = Literal["none", "selective", "full"]
RECOMPUTE: tuple[str, ...] = get_args(Recompute)
# software generations (features and fitted efficiencies in schemas/catalog/defaults.yaml `frameworks` and
# calibration.yaml); a value's code is its position, so new ones are appended
Framework = Literal[
    "megatron", "deepspeed", "deepspeed_2021", "megatron_2020", "megatron_2022", "megatron_core_2025", "fsdp",
    "fsdp2", "maxtext", "neuronx",
]
FRAMEWORKS: tuple[str, ...] = get_args(Framework)
# how a row whose chips do not divide its global batch ran: as given, with the nearest valid batch at or below
# it, or with data-parallel replicas left idle (batch smaller than dp x micro_batch)
BatchHandling = Literal["exact", "nearest_batch", "idle_chips"]
BATCH_HANDLING: tuple[str, ...] = get_args(BatchHandling)
CostBasis = Literal["rental", "owned"]  # the `cost_basis` column: where cost_usd comes from
COST_BASES: tuple[str, ...] = get_args(CostBasis)
Mode = Literal["pretrain", "full", "lora"]  # pre-training, full fine-tuning, LoRA fine-tuning
MODES: tuple[str, ...] = get_args(Mode)
LoraTargets = Literal["qv", "qkvo", "all"]  # adapted projections: Hu et al. 2021 sec. 7.1 adapt W_q, W_v
LORA_TARGETS: tuple[str, ...] = get_args(LoraTargets)

# ---- inference and edge ASICs ----------------------------------------------------------------------
BITS: tuple[str, ...] = ("4", "8", "16")  # weight and KV-cache bits
STATE_BITS: tuple[str, ...] = ("16", "32")  # a state-space layer's recurrent state (vLLM --mamba-ssm-cache-dtype)
Dram = Literal["lpddr4x", "lpddr5", "lpddr5x", "hbm2e", "hbm3", "none"]
DRAM_TYPES: tuple[str, ...] = get_args(Dram)
AsicPrecision = Literal["int4", "int8", "fp16"]
ASIC_PRECISIONS: tuple[str, ...] = get_args(AsicPrecision)
YieldModel = Literal["negative_binomial", "poisson", "murphy", "seeds"]
YIELD_MODELS: tuple[str, ...] = get_args(YieldModel)
Arch = Literal["npu", "gpu"]
ARCHS: tuple[str, ...] = get_args(Arch)
# serving: the precision the matrix multiplies run in (picks the chip's peak), and the serving engine whose
# achieved efficiency applies (schemas/catalog/asic.yaml `serving`); llama.cpp runs Metal on Apple, CUDA elsewhere
ComputePrecision = Literal["fp16", "bf16", "fp8", "fp4", "int8"]
COMPUTE_PRECISIONS: tuple[str, ...] = get_args(ComputePrecision)
# the catalog peak each serving compute precision runs at: the first a chip publishes (16-bit: either 16-bit peak)
PRECISION_PEAKS: dict[str, tuple[str, ...]] = {
    "fp16": ("peak_tflops_fp16", "peak_tflops_bf16"),
    "bf16": ("peak_tflops_bf16", "peak_tflops_fp16"),
    "fp8": ("peak_tflops_fp8",),
    "fp4": ("peak_tflops_fp4",),
    "int8": ("peak_tops_int8",),
}
# ... and each training precision's
PRECISION_FIELD = {
    "fp32": "peak_tflops_fp32",
    "fp16": "peak_tflops_fp16",
    "bf16": "peak_tflops_bf16",
    "fp8": "peak_tflops_fp8",
    "mxfp8": "peak_tflops_fp8",  # the same tensor-core rate as fp8; the block scales are applied in the MMA
    "nvfp4": "peak_tflops_fp4",
    "int8": "peak_tops_int8",  # integer GEMMs (AQT) on the int8 units
}
# vllm_2023: vLLM before CUDA graphs (v0.1-0.2, 2023: every kernel launched from Python each step; graphs came in
# v0.2.5, Dec 2023), a different software generation from the vLLM of 2024-25 (V1 engine, CUDA graphs)
Engine = Literal["tensorrt_llm", "vllm", "sglang", "llama_cpp", "mlc", "exllama", "jetstream", "qnn", "vllm_2023"]
ENGINES: tuple[str, ...] = get_args(Engine)

# ---- the chip fields the core reads as numbers, and the ones a what-if override may change ---------
CHIP_NUMERIC: tuple[str, ...] = (
    "peak_tflops_fp32", "peak_tflops_tf32", "peak_tflops_fp16", "peak_tflops_bf16", "peak_tflops_fp8",
    "peak_tflops_fp4", "peak_tops_int8", "peak_tops_int4", "neural_engine_tops", "memory_gb", "memory_visible_share",
    "memory_bandwidth_gb_s", "memory_bandwidth_measured_gb_s", "sram_mb",
    "external_memory_gb", "external_memory_gb_s", "scale_up_gb_s", "scale_up_domain", "scale_up_torus_dims", "scale_out_gbit_s",
    "host_link_gb_s", "host_memory_gb", "tdp_w", "idle_w", "usd_per_hour", "purchase_usd", "die_area_mm2", "process_nm", "chips_per_system",
    # training TCO of an owned cluster, per accelerator (defaults in defaults.yaml `tco`)
    "power_draw_w", "server_usd", "network_usd",
)
OVERRIDABLE: tuple[str, ...] = tuple(f for f in CHIP_NUMERIC if f != "process_nm")
# chip fields that are whole numbers in a range (a what-if outside it is an error naming the range): the dimensions
# of a torus scale-up domain, 0 for a switch
CHIP_INTEGER_RANGE: dict[str, tuple[int, int]] = {"scale_up_torus_dims": (0, 3)}
# the rates and capacities a what-if must keep above zero (the core divides by them); prices, power and idle draw may be 0
CHIP_POSITIVE: frozenset[str] = frozenset(f for f in CHIP_NUMERIC if f.startswith(("peak_", "memory_", "scale_", "external_"))
                                          and f != "scale_up_torus_dims"  # 0: a switched domain
                                          ) | {"neural_engine_tops", "sram_mb", "host_link_gb_s", "host_memory_gb", "tdp_w",
                                             "chips_per_system"}
