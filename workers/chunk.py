"""One chunk of a sweep, `(sweep, version, start, stop)`, turned into one Arrow table of lake rows.

Pure compute: no I/O, no Ray. The flat indices `start..stop` are decoded block by block (mixed radix,
last axis fastest) into axis codes, assembled with the catalog exactly as `chipsweep evaluate` does
(`assemble_training`, `assemble_inference`, `assemble_asic`), run through the vectorised core, cast to the kind's Arrow schema
(`schemas.columns.arrow_schema`) and filtered by the sweep's store mode:

- `all`: every configuration;
- `feasible`: rows that fit and have no infeasible reason;
- `frontier`: feasible rows not dominated inside their (model, chip) group on the sweep's objectives.
  A row dominated inside a chunk is dominated in the whole sweep, so the global frontier is unchanged.
  Rows with a non-finite objective (a chip without a price has no cost) are on no frontier, as in
  `queries/frontier.py`, and are not stored either.

Blocks of `BLOCK` rows keep every temporary array in the CPU cache (about 4x faster than one
million-row pass) and bound the worker's memory whatever the chunk size.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.columns import FACTS, arrow_schema, fact_array
from chipsweep.schemas.sweep import Sweep
from chipsweep.schemas.vocab import (
    ARCHS,
    ASIC_PRECISIONS,
    BATCH_HANDLING,
    COMPUTE_PRECISIONS,
    COST_BASES,
    DRAM_TYPES,
    ENGINES,
    FRAMEWORKS,
    PP_SCHEDULES,
    PRECISIONS,
    RECOMPUTE,
    YIELD_MODELS,
)
from chipsweep.workers import asic, inference, layout, training
from chipsweep.workers.asic_rows import assemble_asic
from chipsweep.workers.context import Context
from chipsweep.workers.inference_rows import assemble_inference, chip_tables
from chipsweep.workers.reprice import can_reprice, reprice
from chipsweep.workers.space import decode
from chipsweep.workers.training_rows import assemble_training, offload_wanted, run_training, search_training

Array = np.ndarray

BLOCK = 65_536  # rows per numpy pass: fits the working set of the core in L2/L3
SEARCH_CANDIDATES = 262_144  # rows x layout candidates per call of the layout search
FRONTIER_PAIRWISE_MAX = 20_000  # distinct points per group compared pairwise; above it, keep them all
PREFILTER_SAMPLE = 256  # pre-filtered rows per chunk re-checked by the core
# the training and inference cores run in float32 in sweeps: the lake stores float32 outputs, results agree with
# float64 to 1e-5 relative (tests/test_training_core.py, tests/test_inference.py; above 100 sequences a floor to
# whole sequences may move by one or two in a few rows per 1,000) and the cores are ~1.2-1.7x faster
# (benchmarks/out/training_core.json, edge_core.json; README "Speed", docs/speed.md)
CORE_DTYPE = np.float32


class _PrefilterMismatch(Exception):
    """The core found a row feasible that the layout pre-filter would have dropped."""


@dataclass
class Columns:
    """Lake columns of a block as numpy arrays, with a null mask for the columns that may lack a value."""

    data: dict[str, Array]
    nulls: dict[str, Array] = field(default_factory=dict)  # column -> True where null
    reason_mask: Array | None = None  # the core's reason bits (text built once per distinct value)

    def take(self, rows: Array) -> Columns:
        return Columns(
            {k: v[rows] for k, v in self.data.items()},
            {k: v[rows] for k, v in self.nulls.items()},
            None if self.reason_mask is None else self.reason_mask[rows],
        )

    def __len__(self) -> int:
        return len(self.data["idx"])


# ------------------------------------------------------------------------------------------------
# the chunk evaluator
# ------------------------------------------------------------------------------------------------
class ChunkEvaluator:
    """Evaluates chunks of one resolved sweep (build once per sweep version, call per chunk)."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.kind = sweep.kind
        self.ctx = Context.build(sweep.catalog)
        self.sizes = sweep.sizes
        self.schema = arrow_schema(self.kind)
        self.extra_dictionaries: dict[str, tuple[str, ...]] = {}  # dictionaries a block builder fixes (calibrated_on)
        self._block_fn: Callable[[Array, dict[str, Array]], tuple[Columns, Array]] = _BLOCKS[self.kind](self)
        self.objectives = sweep.objectives
        # skip rows the core is certain to mark infeasible (feasible/frontier stores only)
        self.prefilter = self.kind == "training"
        # the settings a sweep varies or fixes that have no column of their own: one `what_if` string per
        # combination of those axes' values (a dictionary column), so rows that differ only in them stay apart
        self._what_if_axes: list[int] = []
        if "what_if" in self.schema.names:
            stored = set(self.schema.names) | {"model", "chip", "cluster"}
            self._what_if_axes = [i for i, a in enumerate(sweep.axes) if a.name not in stored]
            fixed = [f"{k}={_shown(v)}" for k, v in sorted(sweep.spec.fixed.items()) if k not in stored]
            combos = itertools.product(*[[f"{sweep.axes[i].name}={_shown(v)}" for v in sweep.axes[i].values]
                                         for i in self._what_if_axes])
            self.extra_dictionaries["what_if"] = tuple("; ".join([*fixed, *c]) for c in combos)
        self._dictionaries = {k: pa.array(v, pa.string())
                              for k, v in {**_dictionaries(self.kind), **self.extra_dictionaries}.items()}
        self._reason_text = _REASON_TEXT[self.kind]

    def raw_block(self, start: int, stop: int) -> dict[str, Array]:
        """Axis and fixed codes of configurations start..stop, keyed as the worker's raw arrays."""
        return self.raw_rows(np.arange(start, stop, dtype=np.int64))

    def raw_rows(self, idx: Array) -> dict[str, Array]:
        """Axis and fixed codes of the configurations with flat indices `idx`."""
        n = len(idx)
        raw: dict[str, Array] = {}
        for axis, ix in zip(self.sweep.axes, decode(idx, self.sizes), strict=True):
            raw[axis.key] = axis.codes[ix]
        for key, code in self.sweep.fixed.items():
            raw[key] = np.full(n, code, dtype=np.int64 if key.endswith("_idx") else np.float64)
        return raw

    def evaluate(self, start: int, stop: int) -> pa.Table:
        """The lake rows of configurations start..stop, filtered by the store mode."""
        try:
            return self._evaluate(start, stop, prefilter=self.prefilter)
        except _PrefilterMismatch:
            self.prefilter = False  # the core's rules moved: evaluate everything from now on
            return self._evaluate(start, stop, prefilter=False)

    def reprice(self, stored: pa.Table, start: int, stop: int) -> pa.Table:
        """Rows of configurations start..stop another version of the sweep committed, re-priced under this
        version's catalog (`workers/reprice.py`); evaluated afresh where this version cannot be re-priced."""
        if not can_reprice(self.kind, self.sweep.spec.store):
            return self.evaluate(start, stop)
        return reprice(self.kind, stored, self.raw_rows(stored.column("idx").to_numpy()), self.ctx)

    def _evaluate(self, start: int, stop: int, *, prefilter: bool) -> pa.Table:
        store = self.sweep.spec.store
        checked = False
        batches: list[pa.RecordBatch] = []
        for b0 in range(start, max(stop, start + 1), BLOCK):
            b1 = min(b0 + BLOCK, stop)
            idx = np.arange(b0, b1, dtype=np.int64)
            raw = self.raw_block(b0, b1)
            if prefilter and store != "all" and len(idx):
                drop = layout_infeasible(raw, self.ctx, len(idx))
                if drop.any():
                    if not checked:
                        self._check_prefilter(idx, raw, drop)
                        checked = True
                    keep = np.nonzero(~drop)[0]
                    idx = idx[keep]
                    raw = {k: v[keep] for k, v in raw.items()}
            cols, feasible = self._block_fn(idx, raw)
            if "what_if" in self.schema.names:
                cols.data["what_if"] = self.what_if_codes(idx)
            if store != "all":
                cols = cols.take(np.nonzero(feasible)[0])
            if store == "frontier" and len(cols):
                cols = cols.take(np.nonzero(self.frontier_keep(cols.data))[0])  # prune early: bounded memory
            batches.append(self.to_arrow(cols))
        table = pa.Table.from_batches(batches, schema=self.schema).unify_dictionaries()
        if store == "frontier" and table.num_rows:
            data = {name: table.column(name).to_numpy() for name in self._frontier_columns()}
            table = table.filter(pa.array(self.frontier_keep(data)))
        return table.combine_chunks()

    def what_if_codes(self, idx: Array) -> Array:
        """Each configuration's index into the `what_if` dictionary: the mixed-radix number of its values on the
        axes without a column of their own (0 where there are none)."""
        code = np.zeros(len(idx), dtype=np.int64)
        if self._what_if_axes:
            digits = decode(idx, self.sizes)
            for i in self._what_if_axes:
                code = code * self.sizes[i] + digits[i]
        return code

    def _check_prefilter(self, idx: Array, raw: dict[str, Array], drop: Array) -> None:
        """Run a sample of the rows the pre-filter drops through the core: all must be infeasible."""
        rows = np.nonzero(drop)[0]
        sample = rows[:: max(1, len(rows) // PREFILTER_SAMPLE)][:PREFILTER_SAMPLE]
        _, feasible = self._block_fn(idx[sample], {k: v[sample] for k, v in raw.items()})
        if feasible.any():
            raise _PrefilterMismatch()

    def _frontier_columns(self) -> list[str]:
        return ([c for c in ("model_id", "chip_id", "cost_basis", "what_if") if c in self.schema.names]
                + [n for n, _ in self.objectives])

    def frontier_keep(self, data: Mapping[str, Array]) -> Array:
        """Rows not dominated inside their (model, chip) group, compared at the stored precision."""
        n = len(data[self.objectives[0][0]])
        # costs on different bases never dominate each other, nor does one what-if another's rows: a group per
        # distinct (model, chip, cost basis, what-if)
        keys = [_codes(data[c]) for c in ("model_id", "chip_id", "cost_basis", "what_if") if c in data]
        group = (np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
                 if keys and n else np.zeros(n, dtype=np.int64))
        objs = np.stack([
            np.asarray(data[name], dtype=np.float32).astype(np.float64) * (-1.0 if maximise else 1.0)
            for name, maximise in self.objectives
        ], axis=1)
        # a row with a NaN or infinite objective is on no frontier (queries/frontier.py): not stored
        return nondominated(group, objs) & np.isfinite(objs).all(axis=1)

    def to_arrow(self, cols: Columns) -> pa.RecordBatch:
        arrays: list[pa.Array] = []
        for f in self.schema:
            name = f.name
            if name == "infeasible_reason":
                arrays.append(self._reason_array(cols))
                continue
            values = cols.data[name]
            mask = cols.nulls.get(name)
            mask = mask if mask is not None and mask.any() else None
            if pa.types.is_dictionary(f.type):
                indices = pa.array(np.asarray(values, dtype=np.int32), type=pa.int32(), mask=mask)
                arrays.append(pa.DictionaryArray.from_arrays(indices, self._dictionaries[name]))
                continue
            arrays.append(fact_array(values, f.type, mask))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _reason_array(self, cols: Columns) -> pa.DictionaryArray:
        """Infeasible reasons, dictionary-encoded: one string per distinct reason mask in the block."""
        assert cols.reason_mask is not None
        uniq, inv = np.unique(cols.reason_mask, return_inverse=True)
        texts = np.asarray(self._reason_text(uniq), dtype=object).tolist()
        indices = pa.array(inv.astype(np.int32).reshape(-1), pa.int32())
        return pa.DictionaryArray.from_arrays(indices, pa.array(texts, pa.string()))


def _shown(value: Any) -> str:
    """A setting as the what_if column writes it: numbers without a trailing .0, the rest as given."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _codes(values: Array) -> Array:
    """Integer codes of a column read back from Arrow (a dictionary column comes back as its strings)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "OUS":
        _, inv = np.unique(arr.astype(str), return_inverse=True)
        return inv.astype(np.int64)
    return arr.astype(np.int64)


def _float_outputs(kind: str) -> tuple[str, ...]:
    """The kind's float32 output columns of the lake, in schema order: copied from the core's outputs."""
    return tuple(c.name for c in FACTS[kind] if c.role == "output" and c.dtype == "float32")


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
_TRAINING_FLOAT_OUT = _float_outputs("training")
# integer outputs (null where infeasible)
_TRAINING_INT_OUT = tuple(c.name for c in FACTS["training"] if c.role == "output" and c.dtype.startswith("int"))


def _training_blocks(ev: ChunkEvaluator) -> Callable[[Array, dict[str, Array]], tuple[Columns, Array]]:
    ctx = ev.ctx
    # calibrated_on: one dictionary entry per distinct (framework, chip) provenance text
    prov_text, prov_code = np.unique(ctx.calibrated_on.astype(str), return_inverse=True)
    prov_code = prov_code.reshape(ctx.calibrated_on.shape).astype(np.int32)
    ev.extra_dictionaries["calibrated_on"] = tuple(prov_text.tolist())

    def block(idx: Array, raw: dict[str, Array]) -> tuple[Columns, Array]:
        n = len(idx)
        raw.setdefault("model_idx", np.full(n, -1, dtype=np.int64))
        raw.setdefault("chip_idx", np.full(n, -1, dtype=np.int64))
        x, blank, chip_idx = assemble_training(raw, ctx)
        safe_chip = np.maximum(chip_idx, 0)
        fw = np.nan_to_num(np.asarray(x["framework"], dtype=np.float64), nan=0.0).astype(np.int64)
        if n and any(b.any() for b in blank.values()):
            x, out = _search(x, blank, ctx, chip_idx)
        else:
            out = run_training(x, ctx.cal_for(safe_chip, fw), CORE_DTYPE)
            # a fixed layout that fits only with its activations in host memory gets them there, as the search does
            need = np.nonzero(offload_wanted(x, out["reason_mask"]))[0]
            if len(need):
                rx, ro = _search({k: v[need] for k, v in x.items()}, {k: v[need] for k, v in blank.items()}, ctx,
                                 chip_idx[need])
                for d, part in ((x, rx), (out, ro)):
                    for k, v in part.items():
                        d[k] = np.array(d[k], copy=True)  # inputs may be shared, read-only catalog gathers
                        d[k][need] = v
        mask = np.asarray(out["reason_mask"], dtype=np.int64)
        data: dict[str, Array] = {
            "idx": idx,
            "model_id": np.asarray(raw["model_idx"]),
            "chip_id": chip_idx,
            "n_chips": x["n_chips"],
            "global_batch": x["global_batch"],
            "seq_len": x["seq"],
            "tokens": x["tokens"],
            "precision": x["precision"],
            "tp": x["tp"],
            "pp": x["pp"],
            "dp": out["dp"],
            "micro_batch": x["micro_batch"],
            "interleave": x["interleave"],
            "recompute": x["recompute"],
            "zero_stage": x["zero_stage"],
            "fits": np.asarray(out["fits"], dtype=bool),
            "cost_basis": np.nan_to_num(np.asarray(out["cost_owned"], dtype=np.float64)).astype(np.int32),  # COST_BASES
            "framework": fw.astype(np.int32),  # index into FRAMEWORKS
            "batch_handling": np.nan_to_num(np.asarray(out["batch_handling"], dtype=np.float64)).astype(np.int32),
            "calibrated_on": prov_code[fw, safe_chip],
            "ep": x["ep"],
            "moe_experts": x["moe_experts"],
            "moe_topk": x["moe_topk"],
            "moe_ffn_hidden": x["moe_ffn"],
            "moe_shared_experts": x["moe_shared"],
            "moe_dense_layers": x["moe_dense_layers"],
            "cp": x["cp"],
            "offload_layers": x["offload_layers"],
            "mtp_layers": x["mtp_layers"],
            "bf16_first_layers": x["bf16_first_layers"],
            "bf16_last_layers": x["bf16_last_layers"],
            "pp_schedule": x["pp_schedule"],
            "expert_tp": np.asarray(out["expert_tp"], dtype=np.float64),
            "moe_imbalance": x["moe_imbalance"],
            "moe_a2a_overlap": x["a2a_overlap"],
            "moe_capacity_factor": x["moe_capacity"],
        }
        for name in _TRAINING_FLOAT_OUT:
            data[name] = out[name]
        for name in _TRAINING_INT_OUT:
            data[name] = np.asarray(out[name], dtype=np.float64)
        # no cost basis where the row asks for none and the chip has no price of either kind
        nulls: dict[str, Array] = {"batch_handling": mask != 0, "cost_basis": ~np.isfinite(out["cost_owned"])}
        for name in ("n_chips", "global_batch", "seq_len", "tp", "pp", "dp", "micro_batch", "interleave",
                     "recompute", "zero_stage", "precision", "ep", *_TRAINING_INT_OUT):
            bad = ~np.isfinite(data[name])
            if bad.any():
                nulls[name] = bad
                data[name] = np.where(bad, 0, data[name])
            else:
                nulls[name] = np.zeros(n, dtype=bool)
        return Columns(data, nulls, reason_mask=mask), mask == 0

    return block


def layout_infeasible(raw: Mapping[str, Array], ctx: Context, n_rows: int) -> Array:
    """Rows whose given layout breaks an integer divisibility rule of the core (`training.R_LAYOUT`,
    `R_LAYERS`, `R_HEADS`, `R_BATCH`, `R_INTERLEAVE`), so the core would mark them infeasible.

    Only fields given by the sweep take part (a blank field is searched, so nothing is decided); a
    store that keeps feasible rows only skips these rows instead of evaluating them. Each chunk
    re-checks a sample of them with the core (`ChunkEvaluator._check_prefilter`).
    """
    nan = np.full(n_rows, np.nan)

    def get(key: str) -> Array:
        v = raw.get(key)
        return nan if v is None else np.asarray(v, dtype=np.float64)

    model = np.asarray(raw.get("model_idx", np.full(n_rows, -1)), dtype=np.int64)
    has_model = model >= 0
    safe = np.maximum(model, 0)

    def shape(key: str) -> Array:
        given = get(key)
        from_model = np.where(has_model, ctx.models.cols[key][safe], np.nan) if key in ctx.models.cols else nan
        return np.where(np.isfinite(given), given, from_model)

    L, a = shape("layers"), shape("heads")  # layers, attention heads
    fw = ctx.features_for(get("framework"))
    with np.errstate(invalid="ignore", divide="ignore"):
        cp = get("cp")
        n_replica = get("n_chips") / np.where(np.isfinite(cp), cp, 1.0)  # context parallelism: n = tp·pp·cp·dp
        mask = training.layout_mask(L, a, n_replica, get("tp"), get("pp"), get("interleave"), get("micro_batch"),
                                    get("global_batch"), False, get("zero_stage"), fw["fw_uneven"],
                                    fw["fw_interleave"])
    return mask != 0


def _search(x: dict[str, Array], blank: dict[str, Array], ctx: Context, chip_idx: Array) -> tuple[dict[str, Array], dict[str, Array]]:
    """The layout search over blank layout fields, in slices so rows x candidates stays bounded."""
    cand = 1
    for key, b in blank.items():
        if b.any():
            cand *= len(layout.CANDIDATES[key])
    step = max(1, SEARCH_CANDIDATES // cand)
    n = len(chip_idx)
    xs: list[dict[str, Array]] = []
    outs: list[dict[str, Array]] = []
    for s in range(0, n, step):
        sl = slice(s, min(s + step, n))
        rx, ro = search_training({k: v[sl] for k, v in x.items()}, {k: v[sl] for k, v in blank.items()}, ctx, chip_idx[sl],
                                 CORE_DTYPE)
        xs.append(rx)
        outs.append(ro)
    return ({k: np.concatenate([p[k] for p in xs]) for k in xs[0]},
            {k: np.concatenate([p[k] for p in outs]) for k in outs[0]})


# ------------------------------------------------------------------------------------------------
# inference and ASIC
# ------------------------------------------------------------------------------------------------
_INFERENCE_FLOAT_OUT = _float_outputs("inference")
_ASIC_FLOAT_OUT = _float_outputs("asic")


def _nulls(data: dict[str, Array], names: tuple[str, ...], n: int) -> dict[str, Array]:
    """Integer columns: NaN becomes null (and 0 underneath, so the cast is defined)."""
    nulls: dict[str, Array] = {}
    for name in names:
        v = np.asarray(data[name], dtype=np.float64)
        bad = ~np.isfinite(v)
        nulls[name] = bad
        data[name] = np.where(bad, 0.0, v) if bad.any() else v
    return nulls


def _inference_blocks(ev: ChunkEvaluator) -> Callable[[Array, dict[str, Array]], tuple[Columns, Array]]:
    ctx = ev.ctx
    # calibrated_on: one dictionary entry per distinct (engine, chip) provenance text of the serving calibration
    ev.extra_dictionaries["calibrated_on"] = tuple(chip_tables(ctx)["texts"])

    def block(idx: Array, raw: dict[str, Array]) -> tuple[Columns, Array]:
        n = len(idx)
        raw.setdefault("model_idx", np.full(n, -1, dtype=np.int64))
        raw.setdefault("chip_idx", np.full(n, -1, dtype=np.int64))
        x, cal = assemble_inference(raw, ctx, dtype=CORE_DTYPE)
        out = inference.evaluate(x, cal, dtype=CORE_DTYPE)
        mask = np.asarray(out["reason_mask"], dtype=np.int64)
        basis = inference.cost_basis(x["usd_per_hour"], out["usd_per_million_tokens"])  # 0 rental, 1 owned, NaN none
        data: dict[str, Array] = {
            "idx": idx,
            "model_id": np.asarray(raw["model_idx"]),
            "chip_id": np.asarray(raw["chip_idx"]),
            "n_chips": out["n_chips"],
            "weight_bits": x["weight_bits"],
            "kv_bits": x["kv_bits"],
            "batch": out["batch"],
            "prompt_len": x["prompt_len"],
            "gen_len": x["gen_len"],
            "fits": np.asarray(out["fits"], dtype=bool),
            "compute_precision": x["compute_precision"],
            "ep": x["ep"],
            "pp": x["pp"],
            "concurrency": out["concurrency"],
            "disaggregated": np.asarray(x["disaggregated"], dtype=np.float64) > 0,
            "prefill_instances": out["prefill_instances"],
            "decode_instances": out["decode_instances"],
            "dp_attention": np.asarray(x["dp_attention"], dtype=np.float64) > 0,
            "scheduler_steps": x["scheduler_steps"],
            "ssm_state_bits": x["ssm_state_bits"],
            "async_scheduling": np.asarray(x["async_scheduling"], dtype=np.float64) > 0,
            "ep_dedup": np.asarray(x["ep_dedup"], dtype=np.float64) > 0,
            "engine": np.asarray(x["engine"], dtype=np.int32),  # index into ENGINES
            "calibrated_on": np.asarray(x["calibrated_on"], dtype=np.int32),
            "cost_basis": np.nan_to_num(basis).astype(np.int32),  # COST_BASES
            **{name: out[name] for name in _INFERENCE_FLOAT_OUT},
        }
        nulls = _nulls(data, ("n_chips", "weight_bits", "kv_bits", "batch", "prompt_len", "gen_len", "compute_precision",
                              "ep", "pp", "concurrency", "scheduler_steps", "ssm_state_bits", "prefill_instances",
                              "decode_instances"), n)
        nulls["cost_basis"] = ~np.isfinite(basis)  # no cost, no basis
        return Columns(data, nulls, reason_mask=mask), mask == 0

    return block


def _asic_blocks(ev: ChunkEvaluator) -> Callable[[Array, dict[str, Array]], tuple[Columns, Array]]:
    ctx = ev.ctx

    def block(idx: Array, raw: dict[str, Array]) -> tuple[Columns, Array]:
        n = len(idx)
        raw.setdefault("model_idx", np.full(n, -1, dtype=np.int64))
        x, constants = assemble_asic(raw, ctx)
        out = asic.evaluate(x, constants)
        mask = np.asarray(out["reason_mask"], dtype=np.int64)
        data: dict[str, Array] = {
            "idx": idx,
            "model_id": np.asarray(raw["model_idx"]),
            "node_nm": x["node_nm"],
            "n_mac": x["n_mac"],
            "clock_ghz": x["clock_ghz"],
            "sram_mb": x["sram_mb"],
            "dram": x["dram"],
            "dram_bus_bits": x["dram_bus_bits"],
            "precision": x["precision"],
            "weight_bits": out["weight_bits"],
            "batch": out["batch"],
            "prompt_len": x["prompt_len"],
            "gen_len": x["gen_len"],
            "fits": np.asarray(out["fits"], dtype=bool),
            "dram_mt_s": out["dram_mt_s"],
            "kv_bits": x["kv_bits"],
            "arch": x["arch"],
            "yield_model": x["yield_model"],
            "d0_per_cm2": out["d0_per_cm2"],
            "tiles": x["tiles"],
            "spare_tiles": x["spare_tiles"],
            "notes": np.asarray(out["note_mask"], dtype=np.int64),  # the caveats' text is the dictionary entry of the mask
            **{name: out[name] for name in _ASIC_FLOAT_OUT},
        }
        nulls = _nulls(data, ("node_nm", "n_mac", "dram", "dram_bus_bits", "precision", "weight_bits", "batch",
                              "prompt_len", "gen_len", "kv_bits", "tiles", "spare_tiles"), n)
        return Columns(data, nulls, reason_mask=mask), mask == 0

    return block


_BLOCKS: dict[str, Callable[[ChunkEvaluator], Callable[[Array, dict[str, Array]], tuple[Columns, Array]]]] = {
    "training": _training_blocks,
    "inference": _inference_blocks,
    "asic": _asic_blocks,
}


def _dictionaries(kind: str) -> dict[str, tuple[str, ...]]:
    if kind == "training":
        return {"precision": PRECISIONS, "recompute": RECOMPUTE, "cost_basis": COST_BASES, "framework": FRAMEWORKS,
                "batch_handling": BATCH_HANDLING, "pp_schedule": PP_SCHEDULES}
    if kind == "asic":
        return {"dram": DRAM_TYPES, "precision": ASIC_PRECISIONS, "arch": ARCHS, "yield_model": YIELD_MODELS,
                "notes": ASIC_NOTE_TEXTS}
    if kind == "inference":
        return {"compute_precision": COMPUTE_PRECISIONS, "engine": ENGINES, "cost_basis": COST_BASES}
    return {}


# every combination of the ASIC core's note bits, by mask value: the lake's `notes` dictionary
ASIC_NOTE_TEXTS = tuple(str(t) for t in asic.note_text(np.arange(2 * max(asic.NOTES))))

_REASON_TEXT: dict[str, Callable[[Array], Array]] = {
    "training": training.reason_text,
    "inference": inference.reason_text,
    "asic": asic.reason_text,
}


# ------------------------------------------------------------------------------------------------
# Pareto dominance inside groups (numpy; loops only over groups, never over rows)
# ------------------------------------------------------------------------------------------------
def nondominated(group: Array, objs: Array) -> Array:
    """True for rows no other row of the same group dominates (all objectives minimised).

    A row is dominated when another row is <= on every objective and < on at least one; identical
    rows do not dominate each other. Rows with a non-finite objective are kept and dominate nothing.
    """
    n, k = objs.shape
    keep = np.ones(n, dtype=bool)
    finite = np.isfinite(objs).all(axis=1)
    rows = np.nonzero(finite)[0]
    if len(rows) == 0:
        return keep
    # distinct (group, objectives) points; dominance is decided per distinct point
    pts = np.column_stack([group[rows].astype(np.float64), objs[rows]])
    order = np.lexsort(pts.T[::-1])
    sp = pts[order]
    new = np.ones(len(sp), dtype=bool)
    new[1:] = (sp[1:] != sp[:-1]).any(axis=1)
    point_of = np.cumsum(new) - 1  # sorted row -> distinct point
    upts = sp[new]
    dominated_pt = np.zeros(len(upts), dtype=bool)
    bounds = np.nonzero(np.r_[True, upts[1:, 0] != upts[:-1, 0], True])[0]
    for g0, g1 in zip(bounds[:-1], bounds[1:], strict=True):
        dominated_pt[g0:g1] = _dominated_points(upts[g0:g1, 1:])
    dominated_sorted = dominated_pt[point_of]
    dominated = np.zeros(len(rows), dtype=bool)
    dominated[order] = dominated_sorted
    keep[rows[dominated]] = False
    return keep


def _dominated_points(p: Array) -> Array:
    """Distinct points sorted lexicographically; True where another point dominates."""
    m, k = p.shape
    if m <= 1:
        return np.zeros(m, dtype=bool)
    if k == 1:
        out = np.ones(m, dtype=bool)
        out[0] = False  # distinct and sorted: only the first is not beaten
        return out
    if k == 2:
        # sorted by o1 then o2: a point is dominated iff an earlier (distinct) point has o2 <= its o2
        prev_min = np.minimum.accumulate(np.r_[np.inf, p[:-1, 1]])
        return prev_min <= p[:, 1]
    # three or more: in lexicographic order a point can only be dominated by an earlier one, and by
    # transitivity by an earlier *non-dominated* one; so sweep blocks of points against the frontier
    # found so far (small) and against their own block. A loop over blocks, vectorised inside.
    dominated = np.zeros(m, dtype=bool)
    front = p[:0]
    step = 256
    for s0 in range(0, m, step):
        block = p[s0:s0 + step]
        # the block's own earlier points (distinct points: <= everywhere, and not the point itself)
        beaten = (_leq(block, block) & ~np.eye(len(block), dtype=bool)).any(axis=0)
        for c0 in range(0, len(front), 4096):  # the frontier so far
            beaten |= _leq(front[c0:c0 + 4096], block).any(axis=0)
        dominated[s0:s0 + step] = beaten
        front = np.concatenate([front, block[~beaten]])
        if len(front) > FRONTIER_PAIRWISE_MAX:
            break  # an unusually wide frontier: keep the rest (keeping extra rows never changes it)
    return dominated


def _leq(a: Array, b: Array) -> Array:
    """(len(a), len(b)) booleans: a[i] <= b[j] in every objective."""
    out = a[:, None, 0] <= b[None, :, 0]
    for j in range(1, a.shape[1]):
        out &= a[:, None, j] <= b[None, :, j]
    return out
