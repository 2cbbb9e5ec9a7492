"""The spec catalog: chips, models, cluster presets and calibration constants.

Every number lives in `schemas/catalog/*.yaml` with its source beside it; this module is the one
definition of what an entry looks like (pydantic), how the built-in catalog and a user overlay
(`CHIPSWEEP_CATALOG`) combine, and the content hash of every entry that re-runs key on.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chipsweep.schemas.errors import ChipsweepError, pydantic_message
from chipsweep.schemas.spec import strict_yaml_load
from chipsweep.schemas.vocab import CHIP_NUMERIC, FRAMEWORKS, SSM_FIELDS, Mlp

CATALOG_DIR = Path(__file__).parent / "catalog"

Confidence = Literal["high", "medium", "low"]


class CatalogError(ChipsweepError):
    """A catalog file or overlay that cannot be used; the message names the file, entry and field."""


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    url: str | None = None


class _Entry(BaseModel):
    """Fields every catalog entry has: an id, where its numbers come from, how far to trust them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    name: str
    sources: list[Source] = Field(min_length=1)
    confidence: Confidence = "medium"
    # fields whose value is weak (single source, recalled, conflicting): shown to users in notes
    low_confidence_fields: list[str] = Field(default_factory=list)
    # field -> how the value was derived from sourced numbers (e.g. "half of 600 GB/s bidirectional")
    derived: dict[str, str] = Field(default_factory=dict)
    notes: str = ""

    @model_validator(mode="after")
    def _named_fields_exist(self) -> _Entry:
        known = set(type(self).model_fields)
        for name in [*self.low_confidence_fields, *self.derived]:
            if name not in known:
                raise ValueError(f"'{name}' named in low_confidence_fields/derived is not a field of {type(self).__name__}")
        return self


SystemKind = Literal["gpu", "tpu", "npu", "wafer_scale", "tile", "edge", "sram_only"]
# what a purchase price buys: an accelerator that runs inside a host computer (a card, an SXM or OAM module, an M.2 or
# USB stick, a HAT), or a complete system that runs on its own (a desktop, a developer kit, a Mac, a CS-3)
PurchaseScope = Literal["accelerator", "system"]
# chip classes whose members are complete computers: a price without a `purchase_scope` buys a system there
SYSTEM_CLASSES = frozenset({"desktop_soc", "laptop_soc", "mobile_soc", "wafer_scale_training"})
GemmPrecision = Literal["fp16", "bf16", "fp8"]


class NarrowGemm(BaseModel):
    """The same benchmark's throughput on a skinny shape (m x n x k, one side a few hundred wide), at the same
    precision: how fast the library's rate falls with a GEMM's narrowest side."""

    model_config = ConfigDict(extra="forbid")
    m: int = Field(gt=0)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    tflops: float = Field(gt=0)


class GemmMeasurement(BaseModel):
    """The best dense matrix-multiply throughput the vendor's GEMM library reached on the chip in a published
    microbenchmark (large square matrices, random data): what the tensor cores deliver in practice at `precision`,
    against the published peak. Chips measured by one source with one method are comparable."""

    model_config = ConfigDict(extra="forbid")
    precision: GemmPrecision
    tflops: float = Field(gt=0)
    source: str
    url: str | None = None
    narrow: NarrowGemm | None = None  # the same run's skinny shape, where the source has one


class Chip(_Entry):
    """One accelerator. Peaks are DENSE; bandwidths in GB/s except `scale_out_gbit_s` (Gb/s)."""

    vendor: str
    chip_class: str = Field(alias="class")
    system_kind: SystemKind = "gpu"
    year: int | None = None
    process_node: str | None = None
    process_nm: float | None = None  # numeric node for the ASIC energy/area tables
    # dense peaks, TFLOP/s (TOP/s for integers), per chip
    peak_tflops_fp32: float | None = None
    peak_tflops_tf32: float | None = None
    peak_tflops_fp16: float | None = None
    peak_tflops_bf16: float | None = None
    peak_tflops_fp8: float | None = None
    peak_tflops_fp4: float | None = None  # NVFP4 / MXFP4 tensor cores (Blackwell)
    peak_tops_int8: float | None = None
    peak_tops_int4: float | None = None
    neural_engine_tops: float | None = None  # Apple: precision unstated, kept apart from int8
    # memory the chip streams weights and activations from (HBM, LPDDR, or on-chip SRAM for SRAM-only parts)
    memory_gb: float | None = None
    # the capacity the driver exposes, decimal GB (nvidia-smi's total): an "80 GB" H100 shows 81,559 MiB (85.5 GB),
    # a "192 GB" B200 183,359 MiB (192.3 GB). Blank: memory_gb read as GiB, as HBM stacks are sized
    memory_visible_gb: float | None = None
    memory_bandwidth_gb_s: float | None = None
    # the best a STREAM-like kernel reached on the chip in a published microbenchmark: the share of the peak its
    # memory system delivers in practice (the serving core's `mem_bw_fraction` is a share of this; chips without a
    # measurement take defaults.yaml `memory_reach`)
    memory_bandwidth_measured_gb_s: float | None = None
    memory_type: str | None = None
    sram_mb: float | None = None
    # a slower tier behind the chip (Cerebras MemoryX, Dojo interface processors' HBM)
    external_memory_gb: float | None = None
    external_memory_gb_s: float | None = None
    # scale-up link (NVLink, ICI, Infinity Fabric): ONE direction, per chip
    scale_up_gb_s: float | None = None
    scale_up_domain: int | None = None  # chips reachable over the scale-up link (8 in a DGX)
    scale_up_name: str | None = None
    scale_up_reduction: bool = False  # in-network reduction on the scale-up switch (NVLink SHARP)
    # the scale-up domain is a full mesh (one link from each chip to each other chip, no switch: AMD's 8-GPU Infinity
    # Fabric platforms): scale_up_gb_s is the sum over a chip's links, and a group of g of the domain's chips reaches
    # (g - 1) / (domain - 1) of it (comm.mesh_share)
    scale_up_full_mesh: bool = False
    # the scale-up domain is a torus of this many dimensions (TPU ICI: 2 on v5e/v6e, 3 on v4/v5p/TPU7x; the
    # NeuronLink of Trainium and Trainium2: 2), not a switch: an all-to-all there is bounded by the torus's bisection
    # (comm.torus_all_to_all); blank or 0: a switch (NVSwitch, UB) or links that join every pair of chips directly
    scale_up_torus_dims: int | None = Field(default=None, ge=0, le=3)
    # the tensor cores reach their full rate only through asynchronous MMA instructions (NVIDIA Hopper wgmma,
    # datacenter Blackwell tcgen05): kernels written for Ampere's synchronous mma (FlashAttention-2) run below it
    async_mma: bool = False
    # scale-out network per chip, Gb/s (bits)
    scale_out_gbit_s: float | None = None
    # the link to the host's memory (PCIe, NVLink-C2C): ONE direction, per chip, GB/s; what activation offloading
    # (training `offload_layers`) copies over
    host_link_gb_s: float | None = None
    # the host memory (DRAM) one chip's share of its host holds, GiB like memory_gb (a host's DIMMs over its chips):
    # what activation offloading may fill; None where no source states it (then not checked)
    host_memory_gb: float | None = Field(default=None, gt=0)
    tdp_w: float | None = None
    idle_w: float | None = None
    usd_per_hour: float | None = None
    price_date: str | None = None  # when `usd_per_hour` was quoted (YYYY or YYYY-MM), beside its source
    purchase_usd: float | None = None
    # what purchase_usd buys (PurchaseScope); blank: a system in SYSTEM_CLASSES, else an accelerator. An edge frontier
    # that compares unit costs never sets one scope's price against another's (queries/sql/pareto_edge.sql)
    purchase_scope: PurchaseScope | None = None
    # owned-cluster TCO per accelerator (training): average draw while training, and the accelerator's share
    # of its server and of the cluster network; blank = the defaults.yaml `tco` values
    power_draw_w: float | None = None
    server_usd: float | None = None
    network_usd: float | None = None
    # the calibration family the chip's training constants fall back to when it has no published runs
    # (blank: vendor and system kind, e.g. nvidia_gpu)
    family: str | None = None
    # the catalog chip whose compute this one is: the same die and enabled units, so the same kernels; it differs in
    # memory or links (A100 SXM 40GB -> 80GB, H800 / H200 SXM -> H100 SXM) or in its power limit and so its clock,
    # its compute peaks one ratio apart (B200 HGX at 1,000 W -> GB200 at 1,200 W). Its efficiencies are shares of its
    # own peaks, that chip's: one constant fitted on both chips' runs, and where this chip has none,
    # `calibrated_on` says "extrapolated from <chip> (same compute)" instead of the family mean
    same_compute_as: str | None = None
    # a measured GEMM throughput (GemmMeasurement): a chip without published training runs takes the matrix
    # efficiency of the chips with runs scaled by the ratio of their measured fractions of peak
    # (workers/context.py), `calibrated_on: extrapolated from <chips> by measured <precision> GEMM throughput`
    gemm_measured: GemmMeasurement | None = None
    # NVIDIA's CUDA compute capability 'X.Y' (developer.nvidia.com/cuda-gpus). 'Devices with the same major revision
    # number are of the same core architecture' (CUDA C++ Programming Guide): a chip without runs, twin or GEMM
    # measurement takes the matrix efficiency of the fitted chips of its major revision (B300 the B200's and GB200's)
    # before its family's mean, `calibrated_on: extrapolated from <chips> (same core architecture, compute
    # capability X.x)`
    compute_capability: str | None = None
    die_area_mm2: float | None = None
    transistors_billion: float | None = None
    chips_per_system: int = 1  # dies that make one catalog "chip" (25 for a Dojo tile)
    # published values that conflict, for a field left blank because no source settles it (the Ascend 910B's memory
    # bandwidth: 400, 768, 1,200 and 1,600 GB/s on different pages). Never used on its own: a row picks a value
    # (`chip.<field>`), and `chipsweep validate` answers the chip's published runs at both ends of the range
    quoted: dict[str, list[float]] = Field(default_factory=dict)

    @property
    def cost_scope(self) -> str:
        """What the chip's purchase price buys: `purchase_scope`, or by class where the catalog leaves it blank."""
        if self.purchase_scope is not None:
            return self.purchase_scope
        return "system" if self.chip_class in SYSTEM_CLASSES else "accelerator"

    @model_validator(mode="after")
    def _quoted_fields_are_blank_numbers(self) -> Chip:
        for name, values in self.quoted.items():
            if name not in CHIP_NUMERIC:
                raise ValueError(f"quoted: '{name}' is not a numeric chip field (allowed: {', '.join(CHIP_NUMERIC)})")
            if getattr(self, name) is not None:
                raise ValueError(f"quoted: '{name}' has a value ({getattr(self, name)}); quote only fields left blank")
            if not values or any(v <= 0 for v in values):
                raise ValueError(f"quoted: '{name}' = {values}; allowed: one or more positive numbers")
        return self

    @field_validator("compute_capability")
    @classmethod
    def _capability_is_major_dot_minor(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d{1,2}\.\d", v):
            raise ValueError(f"'{v}' is not a compute capability; allowed: 'major.minor' as NVIDIA lists it, e.g. '9.0'")
        return v

    @property
    def core_architecture(self) -> str | None:
        """The CUDA major revision ('10' for the B200 and B300), None without a compute capability."""
        return None if self.compute_capability is None else self.compute_capability.split(".")[0]

    @model_validator(mode="after")
    def _measured_bandwidth_within_peak(self) -> Chip:
        m, peak = self.memory_bandwidth_measured_gb_s, self.memory_bandwidth_gb_s
        if m is not None and (peak is None or m > peak):
            raise ValueError(f"memory_bandwidth_measured_gb_s: {m:g} is above the published memory_bandwidth_gb_s "
                             f"{peak}; allowed: a measured value up to the published peak")
        return self

    @property
    def memory_is_sram(self) -> bool:
        """Whether memory_gb is on-die SRAM (memory_type says so): Cerebras's 44 GB is 900,000 cores x 48 KB and Groq's
        230 MB is 220 MiB, decimal figures both, where an HBM stack's "80 GB" is 80 GiB."""
        return self.memory_gb is not None and "sram" in (self.memory_type or "").lower()

    @property
    def memory_capacity_gb(self) -> float | None:
        """memory_gb in decimal GB: read as GiB (HBM and DRAM are sized in GiB), or as given for SRAM."""
        if self.memory_gb is None:
            return None
        return self.memory_gb if self.memory_is_sram else self.memory_gb * 2.0**30 / 1e9

    @property
    def memory_visible_share(self) -> float | None:
        """The share of memory_gb read as GiB that is there to use (memory_visible_gb over it): a what-if that changes
        memory_gb keeps it, so a larger H100 exposes the same share. SRAM without a visible figure: its decimal
        capacity's share (1e9 / 2^30), so the bytes are memory_gb x 1e9."""
        v = self.memory_visible_gb
        if v is None and self.memory_is_sram:
            v = self.memory_capacity_gb
        return None if v is None or not self.memory_gb else v / (self.memory_gb * 2.0**30 / 1e9)

    @model_validator(mode="after")
    def _visible_memory_within_capacity(self) -> Chip:
        v, cap = self.memory_visible_gb, self.memory_capacity_gb
        if v is not None and (cap is None or v > cap + 1e-9):
            shown = "blank" if cap is None else f"{self.memory_gb} GiB ({cap:.2f} GB)"
            raise ValueError(f"memory_visible_gb: {v:g} is above memory_gb {shown}; allowed: what the driver exposes, "
                             f"up to the published capacity")
        return self

    @model_validator(mode="after")
    def _gemm_within_peak(self) -> Chip:
        g = self.gemm_measured
        if g is not None:
            peak = self.gemm_peak
            if peak is None:
                raise ValueError(f"gemm_measured.precision: '{g.precision}' has no published peak on this chip; "
                                 f"allowed: a precision whose peak_tflops_{g.precision} is given")
            if g.tflops > peak:
                raise ValueError(f"gemm_measured.tflops: {g.tflops:g} is above the published {g.precision} peak "
                                 f"{peak:g}; allowed: a measured value up to the peak")
            if g.narrow is not None and g.narrow.tflops >= g.tflops:
                raise ValueError(f"gemm_measured.narrow.tflops: {g.narrow.tflops:g} is not below the large-matrix "
                                 f"{g.tflops:g}; allowed: a skinny shape's rate, below the best one")
        return self

    @property
    def gemm_half_width(self) -> float | None:
        """The narrowest GEMM side (elements) at which the measured library runs at half its large-matrix rate, read
        off the skinny shape as the core's `d / (d + half)` law (training.py `_eff`): d (best / narrow - 1)."""
        g = self.gemm_measured
        if g is None or g.narrow is None:
            return None
        return min(g.narrow.m, g.narrow.n, g.narrow.k) * (g.tflops / g.narrow.tflops - 1.0)

    @property
    def gemm_peak(self) -> float | None:
        """The published dense peak (TFLOP/s) at the precision of `gemm_measured`."""
        g = self.gemm_measured
        return None if g is None else getattr(self, f"peak_tflops_{g.precision}")

    @property
    def gemm_fraction(self) -> float | None:
        """Measured GEMM throughput / published peak at its precision (None without a measurement)."""
        peak = self.gemm_peak
        return None if peak is None or self.gemm_measured is None else self.gemm_measured.tflops / peak

    @field_validator(
        "peak_tflops_fp32", "peak_tflops_tf32", "peak_tflops_fp16", "peak_tflops_bf16", "peak_tflops_fp8",
        "peak_tflops_fp4", "peak_tops_int8", "peak_tops_int4", "memory_gb", "memory_bandwidth_gb_s", "scale_up_gb_s",
        "scale_out_gbit_s", "tdp_w", "usd_per_hour", "purchase_usd", "sram_mb", "power_draw_w", "server_usd",
        "network_usd", "memory_bandwidth_measured_gb_s", "memory_visible_gb", "host_link_gb_s",
    )
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError(f"must be >= 0, got {v}")
        return v

    @property
    def training_family(self) -> str:
        """The calibration family: `family`, else vendor and system kind (e.g. nvidia_gpu, google_tpu)."""
        if self.family:
            return self.family
        vendor = "".join(ch if ch.isalnum() else "_" for ch in self.vendor.lower()).strip("_")
        return f"{vendor}_{self.system_kind}"

    @property
    def calibration_chip(self) -> str:
        """The chip whose fitted matrix efficiency this one uses: `same_compute_as`, else itself."""
        return self.same_compute_as or self.id


class Model(_Entry):
    """A decoder-only transformer, dense or mixture-of-experts. `params_b` is the published size; the core counts
    its own for dense models and splits a MoE model's published total into routed experts and the rest."""

    family: str
    params_b: float = Field(gt=0)
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int | None = None  # None: multi-head (= heads)
    head_dim: int | None = None  # None: hidden / heads
    ffn_hidden: int | None = None  # None: 4 * hidden
    vocab: int = Field(gt=0)
    seq_len: int = Field(gt=0)  # the model's context (serving's limit; training's sequence unless train_seq_len)
    # the sequence length most of the published pre-training ran at, where it is shorter than the context (Qwen3:
    # 4,096 for 35 of 36T tokens, then a long-context stage at 32,768): a training row without seq_len runs at it
    train_seq_len: int | None = Field(default=None, gt=0)
    mlp: Mlp = "gelu"
    position: Literal["learned", "rope", "alibi"] = "learned"
    tied_embeddings: bool = True
    # dropout layers in training (None: as GPT-2/3-era models with learned positions had, not RoPE/ALiBi ones)
    dropout: bool | None = None
    training_tokens_b: float | None = None
    # mixture of experts (None on a dense model): routed experts per MoE layer, experts each token uses,
    # the hidden size of one expert, always-active shared experts per MoE layer (each of moe_ffn_hidden),
    # and the layers that keep a dense MLP of ffn_hidden instead of experts
    active_params_b: float | None = Field(default=None, gt=0)  # published parameters used per token
    # whether that published count holds the input embedding table (false: OpenAI's gpt-oss model card counts the
    # output head and not the embedding, whose rows a token only indexes)
    active_params_embedding: bool = True
    moe_experts: int | None = Field(default=None, gt=1)
    moe_topk: int | None = Field(default=None, gt=0)
    moe_ffn_hidden: int | None = Field(default=None, gt=0)
    moe_shared_experts: int | None = Field(default=None, ge=0)
    moe_dense_layers: int | None = Field(default=None, ge=0)
    # KV cache: elements cached per token and attention layer when it is not 2 x kv_heads x head_dim (multi-head
    # latent attention caches one latent of kv_lora_rank + qk_rope_head_dim), and the layers that keep a KV
    # cache when not every layer attends (hybrid convolution / state-space models)
    kv_cache_dim: int | None = Field(default=None, gt=0)
    attention_layers: int | None = Field(default=None, gt=0)
    # the layers with an MLP (or MoE) block when not every layer has one: a Megatron-Core hybrid pattern's '-' and 'E'
    # layers (Nemotron-H: every layer is one block, attention, Mamba-2 or MLP), so attention_layers + ssm_layers +
    # mlp_layers = layers
    mlp_layers: int | None = Field(default=None, gt=0)
    # multi-token prediction modules trained beside the model (DeepSeek-V3 sec. 2.2: each a projection, one layer and
    # the shared output head, predicting one more token ahead; Megatron-Core --mtp-num-layers); None: none
    mtp_layers: int | None = Field(default=None, ge=0, le=8)
    # latent MoE (Megatron-Core moe_latent_size): the routed experts work on a moe_latent_dim-wide projection of the
    # hidden state (h -> latent before the dispatch, latent -> h after the combine); None: on h
    moe_latent_dim: int | None = Field(default=None, gt=0)
    # multi-head latent attention (DeepSeek-V2/V3, Kimi K2): queries through a rank-mla_q_rank bottleneck (None:
    # a full h -> heads x (head_dim + rope) projection), keys and values from one rank-mla_kv_rank latent, plus a
    # decoupled RoPE key of mla_rope_dim per token shared by the heads; head_dim is the value (and non-RoPE key) head
    mla_q_rank: int | None = Field(default=None, gt=0)
    mla_kv_rank: int | None = Field(default=None, gt=0)
    mla_rope_dim: int | None = Field(default=None, gt=0)
    # group-limited routing (DeepSeek-V3 sec. 2.1.2 node-limited routing): the routed experts form moe_groups equal
    # groups and a token's top-k experts come from at most moe_topk_groups of them (None: no limit)
    moe_groups: int | None = Field(default=None, gt=0)
    moe_topk_groups: int | None = Field(default=None, gt=0)
    # sliding-window attention (Mistral 7B, Gemma 2/3, gpt-oss): sliding_window_layers of the attention layers
    # attend to (and keep the KV cache of) only the last sliding_window tokens; the others see the whole context
    sliding_window: int | None = Field(default=None, gt=0)
    sliding_window_layers: int | None = Field(default=None, gt=0)
    # state-space layers of a hybrid model (Mamba-2, Dao & Gu 2024): ssm_layers of them, each with ssm_heads heads of
    # ssm_head_dim channels and a state of ssm_state_dim per channel, ssm_groups B/C groups and a causal convolution of
    # ssm_conv_kernel taps; a sequence keeps a fixed-size state per layer instead of a KV cache
    ssm_layers: int | None = Field(default=None, gt=0)
    ssm_heads: int | None = Field(default=None, gt=0)
    ssm_head_dim: int | None = Field(default=None, gt=0)
    ssm_state_dim: int | None = Field(default=None, gt=0)
    ssm_groups: int | None = Field(default=None, gt=0)
    ssm_conv_kernel: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _shapes(self) -> Model:
        kv = self.kv_heads or self.heads
        if self.heads % kv:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({kv})")
        moe = (self.moe_experts, self.moe_topk, self.moe_ffn_hidden)
        if any(v is not None for v in moe) and any(v is None for v in moe):
            raise ValueError("a MoE model gives moe_experts, moe_topk and moe_ffn_hidden together")
        if self.moe_experts is not None and self.moe_topk is not None and self.moe_topk > self.moe_experts:
            raise ValueError(f"moe_topk ({self.moe_topk}) must not exceed moe_experts ({self.moe_experts})")
        if self.train_seq_len is not None and self.train_seq_len > self.seq_len:
            raise ValueError(f"train_seq_len ({self.train_seq_len}) must not exceed seq_len ({self.seq_len}), the "
                             "model's context; allowed: a pre-training sequence up to the context, or blank")
        if (self.moe_dense_layers or 0) >= self.layers:
            raise ValueError(f"moe_dense_layers ({self.moe_dense_layers}) must be fewer than layers ({self.layers})")
        if (self.mla_kv_rank is None) != (self.mla_rope_dim is None) or (self.mla_q_rank and not self.mla_kv_rank):
            raise ValueError("multi-head latent attention gives mla_kv_rank and mla_rope_dim together (mla_q_rank "
                             "optional)")
        if (self.moe_groups is None) != (self.moe_topk_groups is None) or (
                self.moe_groups and (not self.moe_experts or self.moe_experts % self.moe_groups
                                     or (self.moe_topk_groups or 0) > self.moe_groups)):
            raise ValueError("group-limited routing gives moe_groups (dividing moe_experts) and moe_topk_groups (at "
                             "most moe_groups) together")
        if self.attention_layers is not None and self.attention_layers > self.layers:
            raise ValueError(f"attention_layers ({self.attention_layers}) must not exceed layers ({self.layers})")
        if (self.sliding_window is None) != (self.sliding_window_layers is None):
            raise ValueError("sliding-window attention gives sliding_window and sliding_window_layers together")
        if self.sliding_window_layers is not None and self.sliding_window_layers > (self.attention_layers or self.layers):
            raise ValueError(f"sliding_window_layers ({self.sliding_window_layers}) must not exceed the attention "
                             f"layers ({self.attention_layers or self.layers})")
        ssm = {f: getattr(self, f) for f in SSM_FIELDS}
        if any(v is not None for v in ssm.values()) and any(v is None for v in ssm.values()):
            raise ValueError(f"state-space layers give {', '.join(SSM_FIELDS)} together (missing: "
                             f"{', '.join(f for f, v in ssm.items() if v is None)})")
        if self.moe_latent_dim is not None and self.moe_experts is None:
            raise ValueError("moe_latent_dim is a mixture-of-experts field: give moe_experts, moe_topk and "
                             "moe_ffn_hidden too")
        if self.mlp_layers is not None and self.mlp_layers > self.layers:
            raise ValueError(f"mlp_layers ({self.mlp_layers}) must not exceed layers ({self.layers})")
        if self.moe_experts is not None and (self.moe_dense_layers or 0) >= (self.mlp_layers or self.layers):
            raise ValueError(f"moe_dense_layers ({self.moe_dense_layers}) must be fewer than the MLP layers "
                             f"({self.mlp_layers or self.layers})")
        if self.ssm_layers is not None and self.ssm_layers + (self.attention_layers or 0) > self.layers:
            raise ValueError(f"ssm_layers ({self.ssm_layers}) plus attention_layers ({self.attention_layers or 0}) must "
                             f"not exceed layers ({self.layers})")
        return self


class Cluster(_Entry):
    """A published system: which chip, how many, how they are wired."""

    chip: str | None = None
    n_chips: int | None = None
    chips_per_node: int | None = None
    scale_out_gbit_s: float | None = None  # per chip
    scale_up_gb_s: float | None = None  # per chip, one direction (overrides the chip's when set)
    scale_up_domain: int | None = None  # chips per scale-up domain (overrides the chip's when set)
    scale_up_latency_s: float | None = None  # per message on the scale-up link (overrides calibration)
    cpu_cores: int | None = None
    pue: float | None = None


class CalibrationConstant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float
    unit: str = ""
    # validation case ids, or whole validation sources (tests/validation groups), the value was fitted on
    fitted_on: list[str] = Field(default_factory=list)
    source: str
    notes: str = ""
    # whether chips without runs of another core architecture may take this chip's value (context.py
    # `extrapolate_matrix`: by GEMM ratio, family or all-chip mean): false for a matrix efficiency none of the chip's
    # runs ran their matrix multiplies at (the GB200's 16-bit one, which only the attention and output layer of its
    # fp8 runs set), which fits the chip's runs, and its architecture's twins', but tells nothing of other GEMMs
    lends: bool = True


class CalibrationSet(BaseModel):
    """Calibrated constants for the chips it names (ids, classes or calibration families; empty = every
    chip) run by the frameworks it names (empty = every framework). The most specific set wins: id over
    class over family over the default, and a framework-specific set over a framework-generic one."""

    model_config = ConfigDict(extra="forbid")
    applies_to: list[str] = Field(default_factory=list)  # chip ids, classes or families; empty = default
    frameworks: list[str] = Field(default_factory=list)  # FRAMEWORKS values; empty = any
    constants: dict[str, CalibrationConstant]


ENTRY_TYPES: dict[str, type[_Entry]] = {"chips": Chip, "models": Model, "clusters": Cluster}


def content_hash(obj: Any) -> str:
    """A stable 16-hex-digit hash of an entry's content (key order and float formatting independent)."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json", by_alias=True)
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Catalog:
    chips: dict[str, Chip]
    models: dict[str, Model]
    clusters: dict[str, Cluster]
    calibration: dict[str, CalibrationSet]
    asic: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    overlay_path: str | None = None

    def hashes(self) -> dict[str, str]:
        """`kind/id` -> content hash, for every entry a sweep may depend on."""
        out: dict[str, str] = {}
        for kind in ("chips", "models", "clusters"):
            for key, entry in getattr(self, kind).items():
                out[f"{kind}/{key}"] = content_hash(entry)
        for key, cal in self.calibration.items():
            out[f"calibration/{key}"] = content_hash(cal)
        for section, data in (self.asic or {}).items():  # asic.yaml per section: each sweep kind reads its own
            out[f"asic/{section}"] = content_hash(data)
        if self.defaults:
            out["defaults/all"] = content_hash(self.defaults)
        return out

    def snapshot(self) -> dict[str, Any]:
        """The catalog as JSON data, carried with a sweep version (`from_snapshot` rebuilds it exactly)."""
        return {
            "chips": [c.model_dump(mode="json", by_alias=True) for c in self.chips.values()],
            "models": [m.model_dump(mode="json", by_alias=True) for m in self.models.values()],
            "clusters": [c.model_dump(mode="json", by_alias=True) for c in self.clusters.values()],
            "calibration": {k: v.model_dump(mode="json") for k, v in self.calibration.items()},
            # YAML keeps what JSON would not (integer keys such as the quantisation table's 4, 8, 16)
            "asic_yaml": yaml.safe_dump(self.asic, sort_keys=True),
            "defaults_yaml": yaml.safe_dump(self.defaults, sort_keys=True),
            "overlay_path": self.overlay_path,
        }

    @classmethod
    def from_snapshot(cls, snap: Mapping[str, Any]) -> Catalog:
        return cls(
            chips={c["id"]: Chip.model_validate(c) for c in snap["chips"]},
            models={m["id"]: Model.model_validate(m) for m in snap["models"]},
            clusters={c["id"]: Cluster.model_validate(c) for c in snap["clusters"]},
            calibration={k: CalibrationSet.model_validate(v) for k, v in snap["calibration"].items()},
            asic=dict(trusted_yaml(snap.get("asic_yaml") or "") or {}),
            defaults=dict(trusted_yaml(snap.get("defaults_yaml") or "") or {}),
            overlay_path=snap.get("overlay_path"),
        )

    def chip(self, chip_id: str) -> Chip:
        try:
            return self.chips[chip_id]
        except KeyError:
            raise KeyError(_unknown("chip", chip_id, self.chips)) from None

    def model(self, model_id: str) -> Model:
        try:
            return self.models[model_id]
        except KeyError:
            raise KeyError(_unknown("model", model_id, self.models)) from None

    # the per-node tables of asic.yaml; a design's node must lie within the nodes they all cover
    ASIC_NODE_TABLES = ("mac_energy_int8_pj", "mac_area_int8_um2", "sram_macro_density_mb_per_mm2", "wafer_price_usd",
                        "defect_density_per_cm2")

    def asic_nodes(self) -> list[float]:
        """The process nodes (nm) every per-node table of asic.yaml gives a value for, ascending."""
        tables = [{float(n) for n in self.asic["asic"][name]["value"]} for name in self.ASIC_NODE_TABLES]
        return sorted(set.intersection(*tables))

    def dram_interface_bits(self) -> dict[str, int]:
        """DRAM type -> the width its bus comes in multiples of (an LPDDR channel, an HBM stack), asic.yaml."""
        return {str(k): int(v) for k, v in self.asic["asic"]["dram_interface_bits"]["value"].items()}

    def filter_chips(self, **criteria: Any) -> list[str]:
        """Chip ids whose fields equal the criteria (`class` may be a list); sorted."""
        out = []
        for cid, chip in self.chips.items():
            data = chip.model_dump(by_alias=True)
            ok = True
            for key, want in criteria.items():
                have = data.get(key)
                if isinstance(want, list | tuple | set):
                    ok = ok and have in want
                else:
                    ok = ok and have == want
            if ok:
                out.append(cid)
        return sorted(out)


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = [n for n in names if value.split("_")[0] in n][:8]
    hint = f"; similar: {', '.join(close)}" if close else ""
    return f"unknown {what} id '{value}'{hint} (see `chipsweep catalog list`)"


# the built-in catalog and the snapshots this code wrote are the project's own YAML: parsed by libyaml where PyYAML
# was built with it (chips.yaml in 0.04 s against 0.32 s; the same SafeConstructor builds the same values), by
# PyYAML's Python parser otherwise. A user's overlay and specs keep StrictLoader (spec.py), whose guards run in Python
_FAST_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def trusted_yaml(text: str) -> Any:
    """`yaml.safe_load` of the project's own YAML, through libyaml where available."""
    return yaml.load(text, Loader=_FAST_SAFE_LOADER)


def _read_yaml(path: Path, *, strict: bool = False) -> Any:
    """`strict` (a user's overlay): no aliases, no duplicate keys, bounded nesting (spec.StrictLoader)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return strict_yaml_load(text) if strict else trusted_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"{where}: invalid YAML: {problem}") from exc


def _line_of(path: Path, entry_id: str) -> str:
    """`path:line` of the entry with this id, for error messages."""
    try:
        for no, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip().lstrip("-").strip()
            if stripped.startswith("id:") and stripped.split(":", 1)[1].strip().strip("'\"") == entry_id:
                return f"{path}:{no}"
    except OSError:
        pass
    return str(path)


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(entry)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        parts.append(f"field '{loc}' = {shown}: {pydantic_message(err)}")
    return "; ".join(parts)


def _parse_entries(kind: str, raw: Any, path: Path) -> dict[str, _Entry]:
    cls = ENTRY_TYPES[kind]
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise CatalogError(f"{path}: '{kind}' must be a list of entries with an 'id', got {type(raw).__name__}")
    out: dict[str, _Entry] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "id" not in item:
            raise CatalogError(f"{path}: {kind}[{i}] must be a mapping with an 'id'")
        try:
            entry = cls.model_validate(item)
        except ValidationError as exc:
            raise CatalogError(f"{_line_of(path, str(item['id']))}: {kind} '{item['id']}': {_format_validation(exc)}") from exc
        if entry.id in out:
            raise CatalogError(f"{_line_of(path, entry.id)}: duplicate {kind} id '{entry.id}'")
        out[entry.id] = entry
    return out


def _apply_overlay(catalog: Catalog, path: Path) -> None:
    raw = _read_yaml(path, strict=True)
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: an overlay is a mapping with top-level chips:, models:, clusters:")
    unknown = set(raw) - {"chips", "models", "clusters", "defaults"}
    if unknown:
        raise CatalogError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: chips, models, clusters, defaults")
    if raw.get("defaults") is not None:
        catalog.defaults = _overlay_defaults(catalog.defaults, raw["defaults"], path)
    for kind in ("chips", "models", "clusters"):
        items = raw.get(kind) or []
        if not isinstance(items, list):
            raise CatalogError(f"{path}: '{kind}' must be a list of entries with an 'id'")
        table: dict[str, Any] = getattr(catalog, kind)
        cls = ENTRY_TYPES[kind]
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item:
                raise CatalogError(f"{path}: {kind}[{i}] must be a mapping with an 'id'")
            key = str(item["id"])
            if key in table:
                base = table[key].model_dump(by_alias=True)
                share = table[key].memory_visible_share if kind == "chips" else None
                base = keep_measured_share(base, item) if kind == "chips" else {**base, **item}
                new_mem = item.get("memory_gb")
                if share and "memory_visible_gb" not in item and isinstance(new_mem, (int, float)):
                    # a new capacity keeps the share of it the driver exposes, as a row what-if on memory_gb does
                    base["memory_visible_gb"] = share * new_mem * 2.0**30 / 1e9
                if "sources" not in item:
                    base["sources"] = [*base["sources"], {"title": f"user overlay {path.name}", "url": None}]
                merged = base
            else:
                merged = dict(item)
                merged.setdefault("sources", [{"title": f"user overlay {path.name}", "url": None}])
                merged.setdefault("name", key)
            try:
                table[key] = cls.model_validate(merged)
            except ValidationError as exc:
                near = difflib.get_close_matches(key, list(table), n=3, cutoff=0.8) if key not in table else []
                hint = (f" ('{key}' is not in the catalog, so the entry is a new {kind[:-1]} and needs every required "
                        f"field; did you mean {' or '.join(near)}?)") if near else ""
                raise CatalogError(f"{_line_of(path, key)}: {kind} '{key}': {_format_validation(exc)}{hint}") from exc


# a published figure and the measured one of the same thing: a what-if on the published figure alone scales the
# measured one by the same ratio (the share the measurement reaches stays), else the model, which reads the measured
# figure, would not see the what-if at all (an H100 at 4,800 GB/s served exactly as at 3,350)
MEASURED_OF = {"memory_bandwidth_gb_s": "memory_bandwidth_measured_gb_s"}


def keep_measured_share(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A chip's fields (`base`) with `update` applied, a changed published figure carrying its measured one along."""
    out = {**base, **update}
    for published, measured in MEASURED_OF.items():
        new, old, seen = update.get(published), base.get(published), base.get(measured)
        if measured not in update and isinstance(new, (int, float)) and old and seen:
            out[measured] = seen * new / old
    return out


def load_catalog(overlay: str | os.PathLike[str] | None = None, *, use_env: bool = True) -> Catalog:
    """The built-in catalog, plus the overlay (argument, else `CHIPSWEEP_CATALOG`)."""
    if overlay is None and use_env:
        overlay = os.environ.get("CHIPSWEEP_CATALOG") or None
    key = str(Path(overlay).resolve()) if overlay else ""
    mtime = Path(overlay).stat().st_mtime_ns if overlay and Path(overlay).exists() else 0
    return _load_cached(key, mtime)


# the physical range of the defaults an overlay may set, where it is narrower than a finite number >= 0: (low, high,
# low excluded). A PUE counts the facility's overhead over the IT load (>= 1, The Green Grid); shares of a chip's
# memory, power or peak cannot pass the whole; a purchase spreads over a positive number of years; at least one
# byte per gradient or activation element, the busiest expert at least the mean
DEFAULT_RANGES: dict[str, tuple[float, float, bool]] = {
    "pue": (1.0, math.inf, False),
    "mem_usable": (0.0, 1.0, True),
    "memory_reach": (0.0, 1.0, True),
    "gemm_reach": (0.0, 1.0, True),
    "power_draw_fraction": (0.0, 1.0, True),
    "moe_a2a_overlap": (0.0, 1.0, False),
    "moe_imbalance": (1.0, math.inf, False),
    "amortization_years": (0.0, math.inf, True),
    "grad_bytes": (1.0, 8.0, False),
    "act_bytes": (1.0, 8.0, False),
    "fallback_link_gb_s": (0.0, math.inf, True),
    "tokens_per_param": (0.0, math.inf, True),
    "lora_rank": (1.0, math.inf, False),
}


def _overlay_defaults(defaults: dict[str, Any], items: Any, path: Path) -> dict[str, Any]:
    """defaults.yaml with an overlay's `defaults: {name: number}` (electricity price, PUE, carbon intensity,
    ...) in place of the built-in values; only names defaults.yaml has, finite numbers >= 0 (within
    `DEFAULT_RANGES` where a name has a narrower physical range)."""
    known = dict(defaults.get("defaults") or {})
    if not isinstance(items, dict):
        raise CatalogError(f"{path}: 'defaults' must be a mapping of name: number")
    for name, value in items.items():
        if name not in known:
            raise CatalogError(f"{_line_of(path, str(name))}: defaults '{name}' is unknown; allowed: "
                               f"{', '.join(sorted(known))}")
        low, high, low_open = DEFAULT_RANGES.get(str(name), (0.0, math.inf, False))
        if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                or value < low or (low_open and value == low) or value > high):
            allowed = f"{'> ' if low_open else '>= '}{low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
            raise CatalogError(f"{_line_of(path, str(name))}: defaults '{name}': {value!r} is not allowed; "
                               f"allowed: a finite number {allowed}")
        entry = dict(known[name]) if isinstance(known[name], dict) else {"value": known[name]}
        entry.update({"value": value, "source": f"user overlay {path.name}"})
        known[name] = entry
    return {**defaults, "defaults": known}


@lru_cache(maxsize=8)
def _load_cached(overlay: str, _mtime: int) -> Catalog:
    builtin = _load_builtin()
    cat = Catalog(
        chips=dict(builtin.chips),
        models=dict(builtin.models),
        clusters=dict(builtin.clusters),
        calibration=builtin.calibration,
        asic=builtin.asic,
        defaults=builtin.defaults,
    )
    if overlay:
        _apply_overlay(cat, Path(overlay))
        cat.overlay_path = overlay
    problems = same_compute_problems(cat.chips)
    if problems:
        raise CatalogError(f"{overlay or CATALOG_DIR / 'chips.yaml'}: " + "; ".join(problems))
    return cat


def same_compute_problems(chips: dict[str, Chip], numbers: bool = False) -> list[str]:
    """`same_compute_as` must name another catalog chip without one of its own (loading refuses anything else);
    with `numbers` (`chipsweep catalog validate`), the two chips' compute peaks must also stand in one ratio where
    both give them (the same die at another clock; the power limit that sets the clock may differ), so a constant
    that is a share of peak means the same kernels on both (an overlay may change one chip's numbers without
    breaking the other's load)."""
    problems = []
    for cid, chip in chips.items():
        twin = chip.same_compute_as
        if twin is None:
            continue
        other = chips.get(twin)
        if other is None or twin == cid:
            problems.append(f"chips '{cid}': same_compute_as '{twin}' is not allowed; allowed: the id of another "
                            "catalog chip")
        elif other.same_compute_as is not None:
            problems.append(f"chips '{cid}': same_compute_as '{twin}' names a chip that itself has same_compute_as "
                            f"'{other.same_compute_as}'; allowed: a chip without one")
        elif numbers:
            first: tuple[str, float, float] | None = None  # the first peak both give: the clock ratio the rest keep
            for name in ("peak_tflops_fp16", "peak_tflops_bf16", "peak_tflops_fp8", "peak_tflops_fp4"):
                a, b = getattr(chip, name), getattr(other, name)
                if a is None or b is None or b <= 0:
                    continue
                if first is None:
                    first = (name, a, b)
                elif abs(a / b / (first[1] / first[2]) - 1) > 0.005:
                    problems.append(f"chips '{cid}': same_compute_as '{twin}', but {name} is {a:g} against {b:g} "
                                    f"where {first[0]} is {first[1]:g} against {first[2]:g}; allowed: compute peaks "
                                    "in one ratio to the other chip's (the same die at another clock)")
    return problems


@lru_cache(maxsize=1)
def _load_builtin() -> Catalog:
    chips: dict[str, Any] = {}
    models: dict[str, Any] = {}
    clusters: dict[str, Any] = {}
    for kind, table in (("chips", chips), ("models", models), ("clusters", clusters)):
        path = CATALOG_DIR / f"{kind}.yaml"
        if path.exists():
            raw = _read_yaml(path) or {}
            table.update(_parse_entries(kind, raw.get(kind), path))
    calibration: dict[str, CalibrationSet] = {}
    cal_path = CATALOG_DIR / "calibration.yaml"
    if cal_path.exists():
        raw = _read_yaml(cal_path) or {}
        for key, item in (raw.get("calibration") or {}).items():
            try:
                calibration[key] = CalibrationSet.model_validate(item)
            except ValidationError as exc:
                raise CatalogError(f"{cal_path}: calibration '{key}': {_format_validation(exc)}") from exc
    asic_path = CATALOG_DIR / "asic.yaml"
    asic = (_read_yaml(asic_path) or {}) if asic_path.exists() else {}
    defaults_path = CATALOG_DIR / "defaults.yaml"
    defaults = (_read_yaml(defaults_path) or {}) if defaults_path.exists() else {}
    return Catalog(chips, models, clusters, calibration, asic, defaults)  # type: ignore[arg-type]


def validate_catalog(overlay: str | None = None) -> list[str]:
    """Problems found in the catalog (empty when it is sound): loads it and checks cross-references."""
    problems: list[str] = []
    try:
        cat = load_catalog(overlay)
    except CatalogError as exc:
        return [str(exc)]
    for cid, cl in cat.clusters.items():
        if cl.chip and cl.chip not in cat.chips:
            problems.append(f"clusters '{cid}': chip '{cl.chip}' is not in the catalog")
    for cid, chip in cat.chips.items():
        if chip.confidence == "low" and not chip.notes:
            problems.append(f"chips '{cid}': confidence low but no notes saying why")
    problems += same_compute_problems(cat.chips, numbers=True)
    families = {c.training_family for c in cat.chips.values()}
    for key, cal in cat.calibration.items():
        for target in cal.applies_to:
            if target not in cat.chips and target not in families and not any(
                c.chip_class == target for c in cat.chips.values()
            ):
                problems.append(f"calibration '{key}': applies_to '{target}' is neither a chip id, a class nor a family")
        for fw in cal.frameworks:
            if fw not in FRAMEWORKS:
                problems.append(f"calibration '{key}': framework '{fw}' is not one of {', '.join(FRAMEWORKS)}")
    return problems
