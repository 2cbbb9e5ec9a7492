"""Small but real result lakes for tests (and the large one of benchmarks/bench_frontier.py).

Everything is written by the lake's own writer (`chipsweep.lake.Lake`, the one sweeps commit through):
hive-partitioned fact files with exactly `schemas.columns.arrow_schema(kind)`, and the chips / models /
sweeps dimension files beside them. Two sources of rows:

- `random_*` tables: arbitrary objective values drawn from small sets (so ties are common), with NaN,
  infinities, rows that do not fit and rows with an infeasible reason -- for property tests;
- `training_grid`: a mixed-radix sweep space (model x chip x n_chips x layout) decoded from flat
  indices and priced with a simple throughput model -- realistic frontiers, any size, in chunks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from chipsweep.lake import Lake
from chipsweep.schemas.columns import DIM_CHIPS, DIM_MODELS, arrow_schema, dim_sweeps_row

# (id, name, vendor, class, peak bf16 TFLOP/s, memory GB, HBM GB/s, TDP W, USD/hour, purchase USD)
CHIPS: list[tuple[str, str, str, str, float, float, float, float, float, float]] = [
    ("nvidia_v100_sxm2_32gb", "NVIDIA V100 SXM2 32GB", "nvidia", "datacenter_training", 125, 32, 900, 300, 1.5, 10000),
    ("nvidia_a100_sxm_80gb", "NVIDIA A100 SXM 80GB", "nvidia", "datacenter_training", 312, 80, 2039, 400, 1.9, 15000),
    ("nvidia_h100_sxm", "NVIDIA H100 SXM", "nvidia", "datacenter_training", 989, 80, 3350, 700, 2.5, 30000),
    ("nvidia_h200_sxm", "NVIDIA H200 SXM", "nvidia", "datacenter_training", 989, 141, 4800, 700, 3.2, 35000),
    ("amd_mi300x", "AMD Instinct MI300X", "amd", "datacenter_training", 1307, 192, 5300, 750, 2.8, 20000),
    ("google_tpu_v4", "Google TPU v4", "google", "datacenter_training", 275, 32, 1200, 192, 1.4, float("nan")),
    ("intel_gaudi2", "Intel Gaudi 2", "intel", "datacenter_training", 432, 96, 2450, 600, 1.3, 9000),
    ("nvidia_jetson_agx_orin_64gb", "NVIDIA Jetson AGX Orin 64GB", "nvidia", "edge_inference", 138, 64, 205, 60, float("nan"), 1999),
    ("hailo_10h", "Hailo-10H", "hailo", "edge_inference", 20, 8, 34, 5, float("nan"), 100),
    ("google_edge_tpu", "Google Edge TPU", "google", "edge_inference", 2, 0.008, 8, 2, float("nan"), 60),
]
# (id, name, family, params_b, layers, hidden, heads)
MODELS: list[tuple[str, str, str, float, int, int, int]] = [
    ("llama2_7b", "Llama 2 7B", "llama2", 6.7, 32, 4096, 32),
    ("llama2_70b", "Llama 2 70B", "llama2", 69.0, 80, 8192, 64),
    ("gpt3_175b", "GPT-3 175B", "gpt3", 175.0, 96, 12288, 96),
    ("llama3_405b", "Llama 3 405B", "llama3", 405.0, 126, 16384, 128),
    ("llama3_8b", "Llama 3 8B", "llama3", 8.0, 32, 4096, 32),
    ("mistral_7b", "Mistral 7B", "mistral", 7.2, 32, 4096, 32),
    ("gpt3_13b", "GPT-3 13B", "gpt3", 13.0, 40, 5120, 40),
    ("megatron_1t", "Megatron 1T", "megatron", 1008.0, 128, 25600, 160),
]


@functools.cache
def provenance() -> tuple[str, ...]:
    """Each CHIPS entry's `calibrated_on` as the real core writes it for a Megatron training row (the grid's
    framework): the sources that fitted the chip's constants, or what they are extrapolated from, so a grid's
    frontier says which of its points rest on extrapolated efficiency as a real sweep's does."""
    from chipsweep.schemas.catalog import load_catalog
    from chipsweep.schemas.vocab import FRAMEWORKS
    from chipsweep.workers.context import Context

    ctx = Context.build(load_catalog(use_env=False))
    at, fw = ctx.chips.index(), FRAMEWORKS.index("megatron")
    return tuple(str(ctx.calibrated_on[fw, at[c[0]]]) if c[0] in at else "extrapolated (not a catalog chip)"
                 for c in CHIPS)


def chips_dim(ids: Sequence[str] | None = None) -> pa.Table:
    """Chip dimension rows; chip_id is the position in `ids` (default: every chip of CHIPS, in order)."""
    from chipsweep.schemas.catalog import SYSTEM_CLASSES, load_catalog

    by_id = {c[0]: c for c in CHIPS}
    rows = [by_id[i] for i in ids] if ids is not None else list(CHIPS)
    catalog = load_catalog(use_env=False).chips
    # what a price buys, as the lake writes it (Chip.cost_scope; a chip outside the catalog by its class)
    scopes = [catalog[r[0]].cost_scope if r[0] in catalog else "system" if r[3] in SYSTEM_CLASSES else "accelerator"
              for r in rows]
    return pa.table({
        "chip_id": list(range(len(rows))), "chip": [r[0] for r in rows], "name": [r[1] for r in rows],
        "vendor": [r[2] for r in rows], "class": [r[3] for r in rows], "confidence": ["high"] * len(rows),
        "peak_tflops_bf16": [r[4] for r in rows], "peak_tflops_fp16": [r[4] for r in rows],
        "peak_tops_int8": [2 * r[4] for r in rows], "memory_gb": [r[5] for r in rows],
        "memory_bandwidth_gb_s": [r[6] for r in rows], "tdp_w": [r[7] for r in rows],
        "usd_per_hour": [r[8] for r in rows], "purchase_usd": [r[9] for r in rows], "purchase_scope": scopes,
        "price_date": [catalog[r[0]].price_date if r[0] in catalog else None for r in rows],
    }, schema=DIM_CHIPS)


def models_dim(ids: Sequence[str] | None = None) -> pa.Table:
    """Model dimension rows; model_id is the position in `ids` (default: every model of MODELS, in order)."""
    by_id = {m[0]: m for m in MODELS}
    rows = [by_id[i] for i in ids] if ids is not None else list(MODELS)
    return pa.table({
        "model_id": list(range(len(rows))), "model": [r[0] for r in rows], "name": [r[1] for r in rows],
        "family": [r[2] for r in rows], "params_b": [r[3] for r in rows], "layers": [r[4] for r in rows],
        "hidden": [r[5] for r in rows], "heads": [r[6] for r in rows],
    }, schema=DIM_MODELS)


def write_version(
    lake: str, kind: str, sweep: str, version: int, facts: pa.Table | Sequence[pa.Table], *,
    chips: pa.Table | None = None, models: pa.Table | None = None, state: str = "done",
    spec: dict[str, object] | None = None, parts: int = 1,
) -> None:
    """Write one sweep version through the lake's writer: fact parts (the table split into `parts`, or
    one part per table given) and its three dimension files."""
    store = Lake(lake)
    tables = [facts] if isinstance(facts, pa.Table) else list(facts)
    if len(tables) == 1 and parts > 1:
        t = tables[0]
        step = max(1, -(-t.num_rows // parts))
        tables = [t.slice(i, step) for i in range(0, t.num_rows, step)] or [t]
    total = 0
    for i, t in enumerate(tables):
        store.write_part(t.cast(arrow_schema(kind)), kind, sweep, version, i)
        total += t.num_rows
    store.write_dim("chips", sweep, version, chips if chips is not None else chips_dim())
    store.write_dim("models", sweep, version, models if models is not None else models_dim())
    store.write_dim("sweeps", sweep, version, dim_sweeps_row(
        kind, json.dumps(spec or {"name": sweep, "kind": kind}), json.dumps({}), total, state))


# ---------------------------------------------------------------------------------------------
# random tables with ties, NaN and infeasible rows (property tests)
# ---------------------------------------------------------------------------------------------
def _values(rng: np.random.Generator, n: int, distinct: int, nan_frac: float, scale: float) -> np.ndarray:
    """Objective values from `distinct` levels (ties), some NaN / inf, positive, log-spread."""
    levels = scale * np.exp(rng.uniform(-3, 3, size=max(distinct, 1)))
    out = levels[rng.integers(0, len(levels), size=n)].astype(np.float32)
    bad = rng.random(n) < nan_frac
    out[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), size=int(bad.sum()))
    return out


def _reasons(rng: np.random.Generator, n: int, frac: float) -> tuple[np.ndarray, list[str]]:
    fits = rng.random(n) >= frac
    reason = np.where(rng.random(n) < frac, "layout: tp*pp does not divide n_chips", "")
    reason = np.where(~fits, "memory: 91.0 GB > 80 GB", reason)
    return fits, reason.tolist()


def random_training(
    rng: np.random.Generator, n: int, *, distinct: int = 20, nan_frac: float = 0.05,
    infeasible_frac: float = 0.1, n_models: int = 2, n_chips: int = 4, idx_offset: int = 0,
) -> pa.Table:
    cols: dict[str, object] = {name: None for name in arrow_schema("training").names}
    fits, reason = _reasons(rng, n, infeasible_frac)
    tp = rng.choice([1, 2, 4, 8], size=n)
    pp = rng.choice([1, 2, 4], size=n)
    n_chips_col = rng.choice([8, 16, 32, 64], size=n)
    cols.update({
        "idx": np.arange(idx_offset, idx_offset + n, dtype=np.int64),
        "model_id": rng.integers(0, n_models, size=n), "chip_id": rng.integers(0, n_chips, size=n),
        "n_chips": n_chips_col, "global_batch": np.full(n, 512), "seq_len": np.full(n, 2048),
        "tokens": np.full(n, 1e12), "precision": ["bf16"] * n, "tp": tp, "pp": pp,
        "dp": np.maximum(n_chips_col // (tp * pp), 1), "micro_batch": rng.choice([1, 2, 4], size=n),
        "interleave": np.ones(n), "recompute": rng.choice(["none", "selective", "full"], size=n).tolist(),
        "zero_stage": rng.integers(0, 4, size=n),
        "time_to_train_days": _values(rng, n, distinct, nan_frac, 30.0),
        "cost_usd": _values(rng, n, distinct, nan_frac, 1e6),
        "energy_mwh": _values(rng, n, distinct, nan_frac, 100.0),
        "tokens_per_s": _values(rng, n, distinct, nan_frac, 1e5),
        "mfu": _values(rng, n, distinct, nan_frac, 0.3),
        "cost_basis": rng.choice(["rental", "owned"], size=n).tolist(),
        "fits": fits, "infeasible_reason": reason,
    })
    for name in ("step_time_s", "model_tflops_per_chip", "hardware_tflops_per_chip", "hfu", "mem_per_chip_gb",
                 "chip_hours", "co2_t"):
        cols[name] = rng.random(n).astype(np.float32)
    # issue 12 columns (at the end of the schema)
    cols.update({
        "framework": ["megatron"] * n, "capex_usd": np.full(n, np.nan), "opex_usd": np.full(n, np.nan),
        "global_batch_run": np.full(n, 512), "idle_chips": np.zeros(n), "first_stage_layers": np.ones(n),
        "last_stage_layers": np.ones(n), "batch_handling": ["exact"] * n,
        "calibrated_on": ["extrapolated from nvidia_gpu"] * n,
    })
    # issue 13 columns (mixture of experts, context parallelism): a dense model
    cols.update({"ep": np.ones(n), "moe_experts": np.zeros(n), "moe_topk": np.zeros(n), "moe_ffn_hidden": np.zeros(n),
                 "moe_shared_experts": np.zeros(n), "moe_dense_layers": np.zeros(n), "cp": np.ones(n)})
    # where a step goes (s per step)
    for name in ("bubble_s", "tp_comm_s", "dp_comm_s", "moe_a2a_s", "optimizer_s"):
        cols[name] = rng.random(n).astype(np.float32)
    cols["offload_layers"] = np.zeros(n)  # no activation offloading
    cols["mtp_layers"] = np.zeros(n)  # no multi-token prediction
    cols["bf16_first_layers"] = cols["bf16_last_layers"] = np.zeros(n)  # every layer at the row's precision
    cols["pp_schedule"] = ["1f1b"] * n
    # the MoE settings (a dense model: no expert split, force-balanced, no overlap, dropless)
    cols.update({"expert_tp": np.ones(n), "moe_imbalance": np.ones(n), "moe_a2a_overlap": np.zeros(n),
                 "moe_capacity_factor": np.full(n, np.nan)})
    return _to_table("training", cols)


def random_inference(
    rng: np.random.Generator, n: int, *, distinct: int = 20, nan_frac: float = 0.05,
    infeasible_frac: float = 0.1, n_models: int = 2, n_chips: int = 4,
) -> pa.Table:
    cols: dict[str, object] = {name: None for name in arrow_schema("inference").names}
    fits, reason = _reasons(rng, n, infeasible_frac)
    cols.update({
        "idx": np.arange(n, dtype=np.int64), "model_id": rng.integers(0, n_models, size=n),
        "chip_id": rng.integers(0, n_chips, size=n), "n_chips": rng.choice([1, 2, 4], size=n),
        "weight_bits": rng.choice([4, 8, 16], size=n), "kv_bits": np.full(n, 16), "batch": rng.choice([1, 8], size=n),
        "prompt_len": np.full(n, 512), "gen_len": np.full(n, 128),
        "decode_tokens_per_s": _values(rng, n, distinct, nan_frac, 30.0),
        "energy_per_token_j": _values(rng, n, distinct, nan_frac, 0.5),
        "unit_cost_usd": _values(rng, n, distinct, nan_frac, 500.0),
        "fits": fits, "infeasible_reason": reason,
    })
    for name in ("ttft_s", "prefill_tokens_per_s", "throughput_tokens_per_s", "mem_gb"):
        cols[name] = rng.random(n).astype(np.float32)
    # the serving columns (issue 14)
    cols.update({
        "compute_precision": ["bf16"] * n, "ep": np.ones(n), "pp": np.ones(n), "concurrency": cols["batch"],
        "disaggregated": np.zeros(n, dtype=bool), "dp_attention": np.zeros(n, dtype=bool),
        "engine": ["tensorrt_llm"] * n, "calibrated_on": ["extrapolated from all chips (default set)"] * n,
        "scheduler_steps": np.ones(n), "ssm_state_bits": np.full(n, 16.0), "async_scheduling": np.zeros(n, dtype=bool),
        "ep_dedup": np.zeros(n, dtype=bool), "cost_basis": ["rental"] * n,
        "prefill_instances": [None] * n, "decode_instances": [None] * n,  # colocated: no prompt pool
        "prefill_pool_busy": [None] * n,
    })
    for name in ("output_tokens_per_s", "output_tokens_per_s_per_chip", "tokens_per_s_per_user", "tpot_s",
                 "usd_per_million_tokens", "power_w"):
        cols[name] = rng.random(n).astype(np.float32)
    return _to_table("inference", cols)


def random_asic(
    rng: np.random.Generator, n: int, *, distinct: int = 20, nan_frac: float = 0.05,
    infeasible_frac: float = 0.1, n_models: int = 2,
) -> pa.Table:
    cols: dict[str, object] = {name: None for name in arrow_schema("asic").names}
    fits, reason = _reasons(rng, n, infeasible_frac)
    cols.update({
        "idx": np.arange(n, dtype=np.int64), "model_id": rng.integers(0, n_models, size=n),
        "node_nm": rng.choice([3, 5, 7, 16], size=n), "n_mac": rng.choice([1024, 4096, 16384], size=n),
        "clock_ghz": rng.choice([0.8, 1.0, 1.5], size=n), "sram_mb": rng.choice([8.0, 32.0, 64.0], size=n),
        "dram": rng.choice(["lpddr5", "lpddr5x", "hbm3"], size=n).tolist(), "dram_bus_bits": np.full(n, 64),
        "precision": ["int8"] * n, "weight_bits": rng.choice([4, 8], size=n), "batch": np.ones(n),
        "prompt_len": np.full(n, 512), "gen_len": np.full(n, 128),
        "decode_tokens_per_s": _values(rng, n, distinct, nan_frac, 30.0),
        "energy_per_token_j": _values(rng, n, distinct, nan_frac, 0.5),
        "unit_cost_usd": _values(rng, n, distinct, nan_frac, 50.0),
        "fits": fits, "infeasible_reason": reason,
        "dram_mt_s": np.full(n, 8533.0), "dram_gb": rng.random(n) * 8, "kv_bits": np.full(n, 16),
        "arch": ["npu"] * n, "yield_model": ["negative_binomial"] * n, "d0_per_cm2": np.full(n, 0.1),
        "tiles": np.ones(n), "spare_tiles": np.zeros(n), "notes": [""] * n,
    })
    for name in ("die_area_mm2", "dies_per_wafer", "yield", "peak_tops", "power_w", "tops_per_w", "ttft_s",
                 "decode_energy_per_token_j"):
        cols[name] = rng.random(n).astype(np.float32)
    return _to_table("asic", cols)


def with_columns(t: pa.Table, **cols: object) -> pa.Table:
    """`t` with the named columns replaced by these values, cast to the facts' types (dictionary columns encoded)."""
    for name, values in cols.items():
        field = t.schema.field(name)
        if pa.types.is_dictionary(field.type):
            array = pa.array(list(values), type=pa.string()).dictionary_encode().cast(field.type)  # type: ignore[call-overload]
        else:
            array = pa.array(np.asarray(values)).cast(field.type, safe=False)
        t = t.set_column(t.schema.get_field_index(name), field, array)
    return t


def _to_table(kind: str, cols: dict[str, object]) -> pa.Table:
    schema = arrow_schema(kind)
    arrays = []
    for f in schema:
        v = cols.get(f.name)
        if v is None and f.name == "what_if":  # no setting without a column of its own
            v = [""] * len(np.asarray(cols["idx"]))
        if pa.types.is_dictionary(f.type):
            arrays.append(pa.array(v, type=pa.string()).dictionary_encode().cast(f.type))
        else:
            arrays.append(pa.array(np.asarray(v)).cast(f.type, safe=False))
    return pa.Table.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------------------------
# a realistic training sweep space, decoded from flat indices (any size, in chunks)
# ---------------------------------------------------------------------------------------------
RECOMPUTE = ("none", "selective", "full")
REASONS = ("", "layout: tp*pp must divide n_chips and dp*micro_batch the global batch", "memory: does not fit")
PRECISION = ("bf16", "fp8")


@dataclass
class TrainingGrid:
    """Axes of a training sweep (the last axis varies fastest), and its size."""

    models: list[str] = field(default_factory=lambda: [m[0] for m in MODELS])
    chips: list[str] = field(default_factory=lambda: [c[0] for c in CHIPS if c[3] == "datacenter_training"])
    n_chips: list[int] = field(default_factory=lambda: [2 ** k for k in range(3, 16)])
    global_batch: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096])
    tp: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    pp: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    micro_batch: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    recompute: list[int] = field(default_factory=lambda: [0, 1, 2])
    zero_stage: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    interleave: list[int] = field(default_factory=lambda: [1, 2])
    precision: list[int] = field(default_factory=lambda: [0, 1])

    AXES = ("models", "chips", "n_chips", "global_batch", "tp", "pp", "micro_batch", "recompute", "zero_stage",
            "interleave", "precision")

    @property
    def sizes(self) -> list[int]:
        return [len(getattr(self, a)) for a in self.AXES]

    @property
    def size(self) -> int:
        return int(np.prod(self.sizes, dtype=np.int64))


def _strides(sizes: Sequence[int]) -> list[int]:
    out = [1] * len(sizes)
    for j in range(len(sizes) - 2, -1, -1):
        out[j] = out[j + 1] * int(sizes[j + 1])
    return out


def _jitter(idx: np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random factor in [0.97, 1.03] per configuration (splitmix64 of idx)."""
    z = idx.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return 0.97 + 0.06 * (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _coarse(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 with only `bits` mantissa bits kept (secondary columns compress; objectives stay exact)."""
    v = x.astype(np.float32)
    mask = np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)
    return (v.view(np.uint32) & mask).view(np.float32)


def training_grid(grid: TrainingGrid, start: int, stop: int, *, compact: bool = False) -> pa.Table:
    """Rows `start..stop` of the grid's sweep space, priced by a simple throughput model
    (6·N·D FLOPs; efficiency falls with tensor/pipeline/data parallel size; memory from ZeRO and
    recomputation). Invalid layouts carry a reason and NaN outputs, like the real core."""
    idx = np.arange(start, stop, dtype=np.int64)
    axes = {a: (idx // st) % n for a, st, n in zip(grid.AXES, _strides(grid.sizes), grid.sizes, strict=True)}
    take = {a: np.asarray(getattr(grid, a))[axes[a]] for a in grid.AXES}
    model_pos = {m[0]: i for i, m in enumerate(MODELS)}
    chip_pos = {c[0]: i for i, c in enumerate(CHIPS)}
    m_rows = np.array([model_pos[m] for m in grid.models])[axes["models"]]
    c_rows = np.array([chip_pos[c] for c in grid.chips])[axes["chips"]]
    params = np.array([m[3] for m in MODELS])[m_rows] * 1e9  # parameters
    peak = np.array([c[4] for c in CHIPS])[c_rows] * 1e12  # FLOP/s per chip
    mem_cap = np.array([c[5] for c in CHIPS])[c_rows]  # GB per chip
    tdp = np.array([c[7] for c in CHIPS])[c_rows]  # W
    usd_h = np.array([c[8] for c in CHIPS])[c_rows]  # USD per chip-hour
    n = take["n_chips"].astype(np.float64)
    tp, pp = take["tp"].astype(np.float64), take["pp"].astype(np.float64)
    mb, gb = take["micro_batch"].astype(np.float64), take["global_batch"].astype(np.float64)
    rec, zero = take["recompute"], take["zero_stage"]
    inter, prec = take["interleave"].astype(np.float64), take["precision"]
    valid = (n % (tp * pp) == 0)
    dp = np.where(valid, n // np.maximum(tp * pp, 1), 0)
    valid &= (dp > 0) & (gb % np.maximum(dp * mb, 1) == 0)
    micro = gb / np.maximum(dp * mb, 1)  # micro-batches per step
    tokens = 1e12
    seq = 2048.0
    bubble = (pp - 1) / inter / np.maximum(micro, 1)  # pipeline bubble fraction (Narayanan et al. 2021)
    eff = (0.55 * (1 - 0.035 * np.log2(tp)) / (1 + bubble) * (1 - 0.015 * np.log2(np.maximum(dp, 1)))
           * (0.92 + 0.03 * np.log2(mb)) * (1 - 0.02 * (zero >= 2)) * _jitter(idx))
    hw = np.array([1.0, 1.04, 4.0 / 3.0])[rec]  # recomputation FLOPs factor
    speed = np.where(prec == 1, 1.6, 1.0)  # fp8 matmuls
    flops = 6.0 * params * tokens  # model FLOPs of the run
    seconds = flops * hw / (n * peak * speed * eff)
    days = seconds / 86400.0
    weights = params * np.where(zero >= 1, 4.0 + 12.0 / np.maximum(dp, 1), 16.0) / (tp * pp) / 1e9  # GB
    acts = mb * seq * (np.array([MODELS[i][5] for i in range(len(MODELS))])[m_rows]) * 34 / tp / 1e9 \
        * np.array([1.0, 0.4, 0.08])[rec] * (np.array([MODELS[i][4] for i in range(len(MODELS))])[m_rows] / pp)
    mem = weights + acts
    fits = mem <= mem_cap
    reason = np.where(~valid, 1, np.where(~fits, 2, 0))  # codes into REASONS
    nan = np.float64("nan")
    days = np.where(valid, days, nan)
    chip_hours = days * 24 * n
    out = {
        "idx": idx, "model_id": m_rows.astype(np.int16), "chip_id": c_rows.astype(np.int16),
        "n_chips": take["n_chips"], "global_batch": take["global_batch"], "seq_len": np.full(len(idx), 2048),
        "tokens": np.full(len(idx), tokens), "precision": (prec, PRECISION),
        "tp": take["tp"], "pp": take["pp"], "dp": dp, "micro_batch": take["micro_batch"],
        "interleave": take["interleave"], "recompute": (rec, RECOMPUTE), "zero_stage": zero,
        "step_time_s": seconds / (tokens / (gb * seq)), "tokens_per_s": tokens / seconds,
        "model_tflops_per_chip": flops / seconds / n / 1e12, "hardware_tflops_per_chip": flops * hw / seconds / n / 1e12,
        "mfu": flops / seconds / n / peak, "hfu": flops * hw / seconds / n / peak, "mem_per_chip_gb": mem,
        "fits": fits & valid, "time_to_train_days": days, "chip_hours": chip_hours,
        "energy_mwh": chip_hours * tdp * 1.2 / 1e6, "cost_usd": chip_hours * usd_h,
        "co2_t": chip_hours * tdp * 1.2 / 1e6 * 0.4, "cost_basis": (np.zeros(len(idx), dtype=np.int32), ("rental", "owned")),
        "infeasible_reason": (reason, REASONS),
        # issue 12 columns (at the end of the schema): a rental, exact-batch, Megatron lake
        "framework": (np.zeros(len(idx), dtype=np.int32), ("megatron",)),
        "capex_usd": np.full(len(idx), np.nan), "opex_usd": np.full(len(idx), np.nan),
        "global_batch_run": np.full(len(idx), 1024), "idle_chips": np.zeros(len(idx)),
        "first_stage_layers": np.ones(len(idx)), "last_stage_layers": np.ones(len(idx)),
        "batch_handling": (np.zeros(len(idx), dtype=np.int32), ("exact",)),
        "calibrated_on": (c_rows.astype(np.int32), provenance()),
        # issue 13 columns: dense models, no expert or context parallelism
        "ep": np.ones(len(idx)), "moe_experts": np.zeros(len(idx)), "moe_topk": np.zeros(len(idx)),
        "moe_ffn_hidden": np.zeros(len(idx)), "moe_shared_experts": np.zeros(len(idx)),
        "moe_dense_layers": np.zeros(len(idx)), "cp": np.ones(len(idx)),
        # where a step goes: a share of the step each (dense models: no all-to-all)
        "bubble_s": 0.1 * seconds / (tokens / (gb * seq)), "tp_comm_s": 0.05 * seconds / (tokens / (gb * seq)),
        "dp_comm_s": 0.02 * seconds / (tokens / (gb * seq)), "moe_a2a_s": np.zeros(len(idx)),
        "optimizer_s": 0.01 * seconds / (tokens / (gb * seq)),
        "offload_layers": np.zeros(len(idx)),  # no activation offloading
        "mtp_layers": np.zeros(len(idx)),  # no multi-token prediction
        "bf16_first_layers": np.zeros(len(idx)), "bf16_last_layers": np.zeros(len(idx)),  # all at the row's precision
        "pp_schedule": (np.zeros(len(idx), dtype=np.int32), ("1f1b", "dualpipe")),
        "what_if": (np.zeros(len(idx), dtype=np.int32), ("",)),  # no setting without a column of its own
        "expert_tp": np.ones(len(idx)), "moe_imbalance": np.ones(len(idx)), "moe_a2a_overlap": np.zeros(len(idx)),
        "moe_capacity_factor": np.full(len(idx), np.nan),
    }
    for name in ("step_time_s", "tokens_per_s", "model_tflops_per_chip", "hardware_tflops_per_chip", "mfu", "hfu",
                 "chip_hours", "co2_t"):
        out[name] = np.where(valid, out[name], nan)
        if compact:
            out[name] = _coarse(out[name], 7)
    if compact:
        out["mem_per_chip_gb"] = _coarse(out["mem_per_chip_gb"], 7)
    schema = arrow_schema("training")
    arrays = []
    for f in schema:
        v = out[f.name]
        if pa.types.is_dictionary(f.type):
            codes, words = v
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)),
                                                         pa.array(list(words), type=pa.string())))
        else:
            arrays.append(pa.array(np.asarray(v)).cast(f.type, safe=False))
    return pa.Table.from_arrays(arrays, schema=schema)


def training_grid_chunks(grid: TrainingGrid, rows: int, chunk: int, *, compact: bool = False) -> Iterator[pa.Table]:
    for start in range(0, rows, chunk):
        yield training_grid(grid, start, min(start + chunk, rows), compact=compact)
