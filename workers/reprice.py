"""Re-pricing: stored rows given the economics of a new catalog, without running the physics again.

A run's step time, throughput and memory do not depend on what the chips cost, what electricity costs,
the grid's carbon intensity or the data centre's PUE; only its energy, cost and emissions do, and those
follow from its chip-hours (`training.run_economics`). So when every field a re-run finds changed is one
of `PRICE_FIELDS`, the chunks of the entries it touched are re-priced: their committed rows are read
back, the economic columns are recomputed with the new catalog from the stored chip-hours (training) or the
stored output rate, chips and power of each serving instance (`inference.serving_economics`), and the
rest of each row is kept as it was (`tests/test_reprice.py` checks the result against a full re-evaluation
for every field listed here).

Training and serving (inference, edge) rows are re-priced when every configuration is stored (`all`,
`feasible`). A `frontier` store kept the rows that were not dominated under the old prices, so a new price
can bring back rows it dropped: it re-evaluates, as ASIC sweeps do (their unit cost comes from the ASIC
constants, a global input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.columns import fact_array
from chipsweep.schemas.vocab import COST_BASES
from chipsweep.workers.context import Context
from chipsweep.workers.inference import ECONOMIC_OUTPUTS as SERVING_OUTPUTS
from chipsweep.workers.inference import serving_economics
from chipsweep.workers.inference_rows import assemble_inference
from chipsweep.workers.training import ECONOMIC_INPUTS, ECONOMIC_OUTPUTS, run_economics, uniform_calibration
from chipsweep.workers.training_rows import assemble_training

Array = np.ndarray

# the catalog fields that enter only the economics of a row, per sweep kind: training (tables.chip_link_arrays
# builds `power_w` and `capex_usd` from them; `training.ECONOMIC_CAL` reads the defaults) and serving
# (`inference.serving_economics`); `sources` and `price_date` are provenance
PRICE_FIELDS: dict[str, dict[str, frozenset[str]]] = {
    "training": {
        "chips": frozenset({"usd_per_hour", "price_date", "purchase_usd", "server_usd", "network_usd", "power_draw_w",
                            "sources"}),
        "defaults": frozenset({"pue", "co2_kg_per_kwh", "usd_per_kwh", "amortization_years", "cost_of_capital",
                               "host_power_w", "facility_usd_per_kw_month", "ops_usd_per_kw_month",
                               "power_draw_fraction", "host_usd", "network_usd"}),
    },
    "inference": {
        "chips": frozenset({"usd_per_hour", "price_date", "purchase_usd", "server_usd", "network_usd", "sources"}),
        "defaults": frozenset({"pue", "usd_per_kwh", "amortization_years", "cost_of_capital", "host_power_w",
                               "facility_usd_per_kw_month", "ops_usd_per_kw_month", "host_usd", "network_usd"}),
    },
}
# fields whose presence a row notes (an inference row says "unit cost not computed: purchase_usd not published", or
# that it has no price at all): a price that appears or goes re-evaluates; one that moves re-prices
NOTED: dict[str, frozenset[str]] = {"inference": frozenset({"purchase_usd", "usd_per_hour", "server_usd"})}
REPRICED_STORES = ("all", "feasible")


def can_reprice(kind: str, store: str) -> bool:
    """Whether a version of this kind and store mode can be re-priced (else price changes re-evaluate)."""
    return kind in PRICE_FIELDS and store in REPRICED_STORES


def moved_fields(entry_kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> set[str] | None:
    """The fields of one catalog entry that differ between `old` and `new` (model_dump form; for defaults
    the whole defaults.yaml mapping, compared key by key in its `defaults` section); None when the entry
    appeared or went, or a part outside those fields moved."""
    if old is None or new is None:
        return None
    if entry_kind == "defaults":
        if {k: v for k, v in old.items() if k != "defaults"} != {k: v for k, v in new.items() if k != "defaults"}:
            return None
        old, new = old.get("defaults") or {}, new.get("defaults") or {}
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def price_only(kind: str, entry_kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether a changed catalog entry moved only fields that re-price rows of a `kind` sweep (`PRICE_FIELDS`)."""
    allowed = PRICE_FIELDS.get(kind, {}).get(entry_kind)
    moved = moved_fields(entry_kind, old, new)
    if allowed is None or moved is None or not moved <= allowed:
        return False
    assert old is not None and new is not None
    return all((old.get(f) is None) == (new.get(f) is None) for f in moved & NOTED.get(kind, frozenset()))


def reprice(kind: str, table: pa.Table, raw: dict[str, Array], ctx: Context) -> pa.Table:
    """`table` (committed rows of a `kind` sweep) with its economic columns recomputed under `ctx`'s catalog."""
    for key in ("model_idx", "chip_idx"):  # rows given by shapes or a cluster carry no catalog index
        raw.setdefault(key, np.full(table.num_rows, -1, dtype=np.int64))
    return {"training": reprice_training, "inference": reprice_inference}[kind](table, raw, ctx)


def reprice_training(table: pa.Table, raw: dict[str, Array], ctx: Context) -> pa.Table:
    """`table` (committed training rows) with energy, cost, emissions and cost basis recomputed from its
    stored chip-hours under `ctx`'s catalog. `raw`: the rows' decoded axis codes, as the worker built
    them to evaluate the rows, so what each row asked for (its chip, cost basis, framework, what-if
    overrides) is read exactly as before."""
    x, _, chip_idx = assemble_training(raw, ctx)
    fw = np.nan_to_num(np.asarray(x["framework"], dtype=np.float64), nan=0.0).astype(np.int64)
    cal = ctx.cal_for(np.maximum(chip_idx, 0), fw)
    # the core's dtype: the same arithmetic on the same float32 chip-hours gives the same stored value
    chip_hours = table.column("chip_hours").to_numpy(zero_copy_only=False).astype(np.float32)
    money = run_economics(chip_hours, {k: np.asarray(x[k], dtype=np.float32) for k in ECONOMIC_INPUTS},
                          {k: v if np.ndim(v) == 0 else np.asarray(v, dtype=np.float32)
                           for k, v in uniform_calibration(cal).items()})
    for name in ECONOMIC_OUTPUTS:
        column = "cost_basis" if name == "cost_owned" else name
        i = table.schema.get_field_index(column)
        field = table.schema.field(i)
        if column == "cost_basis":  # as the chunk writer stores it: codes into COST_BASES
            code = np.asarray(money[name], dtype=np.float64)  # 0 rental, 1 owned, NaN none
            codes = pa.array(np.nan_to_num(code).astype(np.int32), mask=~np.isfinite(code))
            array: pa.Array = pa.DictionaryArray.from_arrays(codes, pa.array(COST_BASES, pa.string())).cast(field.type)
        else:
            array = fact_array(money[name], field.type)
        table = table.set_column(i, field, array)
    return table


def reprice_inference(table: pa.Table, raw: dict[str, Array], ctx: Context) -> pa.Table:
    """`table` (committed serving rows) with cost per million tokens and unit cost recomputed from the stored
    output rate, chips and power of each instance (`inference.serving_economics`, as the core calls it)."""
    x, cal = assemble_inference(raw, ctx)

    def col(name: str) -> Array:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    out_tps, n_chips = col("output_tokens_per_s"), col("n_chips")
    chips = out_tps / col("output_tokens_per_s_per_chip")  # the instance's chips, its prompt pool's share included
    chips = np.where(np.isfinite(chips), chips, n_chips)  # (a refused row: its own chips, as the core prices them)
    money = serving_economics(out_tps, chips, col("power_w"), n_chips, x, cal)
    for name in SERVING_OUTPUTS:
        i = table.schema.get_field_index(name)
        field = table.schema.field(i)
        table = table.set_column(i, field, fact_array(money[name], field.type))
    return table
