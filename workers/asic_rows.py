"""Edge-ASIC rows (a hypothetical chip design running an LLM), for `chipsweep evaluate --kind asic` and for
sweep chunks.

`parse_asic` turns a table into raw arrays (choices as indices into the vocabularies) with per-row errors;
`assemble_asic` resolves the workload's model, defaults and the MAC count into the core's inputs (sweep workers
build `raw` from decoded axes and call it too); the numpy core is `workers.asic`, its constants come from
`schemas/catalog/asic.yaml`. `evaluate_asic` returns the input table with the resolved design, the outputs, the
reasons and the notes. Bad rows carry their message in `infeasible_reason`; they never stop the other rows
unless `strict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from chipsweep.schemas.columns import FACTS
from chipsweep.schemas.vocab import ARCHS, ASIC_PRECISIONS, DRAM_TYPES, YIELD_MODELS
from chipsweep.workers import asic
from chipsweep.workers.context import Context
from chipsweep.workers.parse import RowErrors, choices, numbers, what_if_columns
from chipsweep.workers.results import refuse_infeasible, result_table, run_good_rows
from chipsweep.workers.tables import gather
from chipsweep.workers.workload import (
    getter,
    has_own_model,
    model_arrays,
    model_tables,
    parse_bits,
    parse_model,
    quant_overhead,
    workload_default,
)

Array = np.ndarray

# the outputs `evaluate` writes: the lake's float outputs, in its order, with the design's diagnostics
# (defect yield, die cost, full-load power, memory) that the lake does not store
ASIC_OUT = (
    "die_area_mm2", "dies_per_wafer", "yield", "defect_yield", "die_cost_usd", "unit_cost_usd", "peak_tops",
    "full_load_power_w", "power_w", "tops_per_w", "decode_tokens_per_s", "ttft_s", "energy_per_token_j",
    "mem_gb", "dram_gb", "decode_energy_per_token_j",
)
_LAKE_OUT = [c.name for c in FACTS["asic"] if c.role == "output" and c.dtype == "float32"]
assert [c for c in ASIC_OUT if c in _LAKE_OUT] == _LAKE_OUT, "ASIC_OUT holds the lake's outputs in its order"

# the input an infeasible design's refusal names (--strict): what would change the outcome
ASIC_REFUSAL_FIELDS = {asic.R_INPUT: "n_mac", asic.R_MEMORY: "batch", asic.R_NOFIT: "dram_gb", asic.R_DRAM_CAP: "dram_bus_bits",
                       asic.R_RETICLE: "spare_tiles", asic.R_WAFER: "n_mac", asic.R_TILES: "tiles"}

# notes added while assembling (the core's own start at bit 0)
N_MAC_FROM_TOPS = 1 << 10


_K_CACHE: dict[int, tuple[Any, dict[str, Any]]] = {}


def asic_constants(ctx: Context) -> dict[str, Any]:
    """The ASIC core's constants from the catalog (computed once per catalog constants dict)."""
    src = ctx.catalog.asic["asic"]
    hit = _K_CACHE.get(id(src))
    if hit is None or hit[0] is not src:
        hit = (src, asic.constants(src))
        _K_CACHE[id(src)] = hit
    return hit[1]


def parse_asic(table: pa.Table, ctx: Context, errors: RowErrors) -> dict[str, Array]:
    """An ASIC table -> raw arrays (choices as indices into DRAM_TYPES, ASIC_PRECISIONS, ARCHS, YIELD_MODELS)."""
    raw: dict[str, Array] = {}
    what_if_columns(table, errors, {})  # a designed chip: no catalog chip or fitted constant to override
    parse_model(table, ctx, errors, raw)
    raw["node_nm"] = numbers(table, "node_nm", errors, minimum=1e-9, required=True, allowed="allowed: a process node in nm, 3 to 16")
    raw["n_mac"] = numbers(table, "n_mac", errors, integer=True, minimum=1)
    raw["peak_tops"] = numbers(table, "peak_tops", errors, minimum=1e-12)
    clock_max = float(ctx.catalog.asic["asic"]["clock_ghz_max"]["value"])
    raw["clock_ghz"] = numbers(table, "clock_ghz", errors, minimum=1e-6, maximum=clock_max)
    raw["sram_mb"] = numbers(table, "sram_mb", errors, minimum=0)
    raw["dram"] = choices(table, "dram", DRAM_TYPES, errors)
    raw["dram_bus_bits"] = numbers(table, "dram_bus_bits", errors, integer=True, minimum=0)
    raw["dram_mt_s"] = numbers(table, "dram_mt_s", errors, minimum=1e-9)
    raw["dram_gb"] = numbers(table, "dram_gb", errors, minimum=0)
    raw["precision"] = choices(table, "precision", ASIC_PRECISIONS, errors)
    raw["arch"] = choices(table, "arch", ARCHS, errors)
    raw["yield_model"] = choices(table, "yield_model", YIELD_MODELS, errors)
    raw["d0_per_cm2"] = numbers(table, "d0_per_cm2", errors, minimum=0)
    raw["spare_tiles"] = numbers(table, "spare_tiles", errors, integer=True, minimum=0)
    raw["tiles"] = numbers(table, "tiles", errors, integer=True, minimum=1)
    raw["weight_bits"] = parse_bits(table, "weight_bits", errors)
    raw["kv_bits"] = parse_bits(table, "kv_bits", errors)
    raw["batch"] = numbers(table, "batch", errors, integer=True, minimum=1)
    raw["prompt_len"] = numbers(table, "prompt_len", errors, integer=True, minimum=0)
    raw["gen_len"] = numbers(table, "gen_len", errors, integer=True, minimum=0)
    raw["quant_overhead"] = numbers(table, "quant_overhead", errors, minimum=0, maximum=1)
    both_blank = ~np.isfinite(raw["n_mac"]) & ~np.isfinite(raw["peak_tops"]) & ~errors.bad
    if both_blank.any():
        errors.add_message(np.nonzero(both_blank)[0], "fields 'n_mac' and 'peak_tops' are blank: give the MAC "
                           "count, or the peak TOPS at the design precision (then n_mac = TOPS / (2 x clock))", field="n_mac")
    dram = raw["dram"]
    no_bus = np.isfinite(dram) & (dram != DRAM_TYPES.index("none")) & ~np.isfinite(raw["dram_bus_bits"]) & ~errors.bad
    if no_bus.any():
        errors.add(np.nonzero(no_bus)[0], "dram_bus_bits", ["" for _ in range(int(no_bus.sum()))],
                   "required with a DRAM type: the bus width in bits (64 = four x16 LPDDR channels, 1024 per HBM stack)")
    # a bus is a whole number of the type's interfaces: x16 LPDDR channels, 1024-bit HBM stacks (bus 0 with a DRAM
    # type gave a design with no memory bandwidth: 0 tokens/s at infinite energy, read as feasible)
    widths = ctx.catalog.dram_interface_bits()
    bus = raw["dram_bus_bits"]
    given = np.isfinite(dram) & (dram != DRAM_TYPES.index("none")) & np.isfinite(bus) & ~errors.bad
    for t, name in enumerate(DRAM_TYPES):
        w = widths.get(name)
        if not w:
            continue
        rows = np.nonzero(given & (dram == t) & ((bus < w) | (np.mod(bus, w) != 0)))[0]
        if rows.size:
            unit = "HBM stack" if name.startswith("hbm") else "LPDDR channel"
            errors.add(rows, "dram_bus_bits", [int(b) for b in bus[rows]],
                       f"a {name} bus is a whole number of {w}-bit {unit}s; allowed: multiples of {w} ({w}, {2 * w}, {3 * w}, ...)")
    # an HBM stack holds at least 4 GB (JESD238): a given capacity below what the bus's stacks hold is no design
    floors = ctx.catalog.asic["asic"]["dram_min_gb_per_interface"]["value"]
    cap = raw["dram_gb"]
    for t, name in enumerate(DRAM_TYPES):
        if name not in floors or name not in widths:
            continue
        least = float(floors[name]) * np.nan_to_num(bus) / widths[name]
        short = given & (dram == t) & np.isfinite(cap) & (cap < least - 1e-9) & ~errors.bad
        for b in np.unique(bus[short]):  # one message per bus width: the least it holds, in GB
            rows = np.nonzero(short & (bus == b))[0]
            stacks = int(b) // widths[name]
            errors.add(rows, "dram_gb", [float(c) for c in cap[rows]],
                       f"a {int(b)}-bit {name} bus is {stacks} stack(s) of at least {float(floors[name]):g} GB each "
                       f"(JESD238: the smallest stack, 4-high x 8 Gb); allowed: at least "
                       f"{stacks * float(floors[name]):g} GB, or blank (sized to the workload)")
    # ... and at most what its interfaces come in (asic.yaml dram_max_gb_per_interface: 8 GB a 16-bit LPDDR5X channel)
    ceilings = ctx.catalog.asic["asic"]["dram_max_gb_per_interface"]["value"]
    for t, name in enumerate(DRAM_TYPES):
        if name not in ceilings or name not in widths:
            continue
        most = float(ceilings[name]) * np.nan_to_num(bus) / widths[name]
        above = given & (dram == t) & np.isfinite(cap) & (cap > most + 1e-9) & ~errors.bad
        for b in np.unique(bus[above]):  # one message per bus width: the most it holds, in GB
            rows = np.nonzero(above & (bus == b))[0]
            unit = "HBM stack" if name.startswith("hbm") else "LPDDR channel"
            errors.add(rows, "dram_gb", [float(c) for c in cap[rows]],
                       f"a {int(b)}-bit {name} bus is {int(b) // widths[name]} {unit}(s) of at most "
                       f"{float(ceilings[name]):g} GB each (asic.yaml dram_max_gb_per_interface); allowed: at most "
                       f"{float(ceilings[name]) * int(b) / widths[name]:g} GB, or a wider dram_bus_bits")
    no_tiles = np.nan_to_num(raw["spare_tiles"]) > 0
    no_tiles &= ~np.isfinite(raw["tiles"]) & ~errors.bad
    if no_tiles.any():
        errors.add(np.nonzero(no_tiles)[0], "tiles", ["" for _ in range(int(no_tiles.sum()))],
                   "required with spare_tiles: the number of active tiles the MAC array and SRAM are split into")
    return raw


def assemble_asic(
    raw: Mapping[str, Any], ctx: Context, errors: RowErrors | None = None
) -> tuple[dict[str, Array], dict[str, Any]]:
    """Raw arrays -> (core inputs, constants)."""
    n = len(raw["model_idx"])
    get = getter(raw, n)
    k = asic_constants(ctx)
    if errors is None and not has_own_model(raw):
        models = model_tables(ctx)["models_and_blank"]  # catalog models, then the no-model row (index -1 reads it)
        model_idx = np.asarray(raw["model_idx"], dtype=np.intp)
        rows = np.where(model_idx >= 0, model_idx, len(ctx.models.ids))
        m = gather(models, rows)
    else:
        m = model_arrays(raw, ctx, n)
    clock = get("clock_ghz")
    clock = np.where(np.isfinite(clock), clock, k["clock_ghz_default"])
    prec = get("precision")
    prec = np.where(np.isfinite(prec), prec, ASIC_PRECISIONS.index("int8"))
    n_mac = get("n_mac")
    from_tops = ~np.isfinite(n_mac) & np.isfinite(get("peak_tops"))
    n_mac = np.where(from_tops, get("peak_tops") * 1e12 / (2.0 * clock * 1e9), n_mac)  # MACs = TOPS / (2 x clock)
    dram = get("dram")
    dram = np.where(np.isfinite(dram), dram, DRAM_TYPES.index("none"))
    bus = get("dram_bus_bits")
    bus = np.where(dram == DRAM_TYPES.index("none"), 0.0, bus)
    wb = get("weight_bits")
    wb = np.where(np.isfinite(wb), wb, np.asarray(asic.PRECISION_BITS)[prec.astype(np.int64)])
    kvb = get("kv_bits")
    kvb = np.where(np.isfinite(kvb), kvb, workload_default(ctx, "kv_bits"))
    prompt = get("prompt_len")
    prompt = np.where(np.isfinite(prompt), prompt, workload_default(ctx, "prompt_len"))
    gen = get("gen_len")
    gen = np.where(np.isfinite(gen), gen, workload_default(ctx, "gen_len"))
    sram = get("sram_mb")
    x: dict[str, Array] = {
        "node_nm": get("node_nm"),
        "n_mac": n_mac,
        "clock_ghz": clock,
        "sram_mb": np.where(np.isfinite(sram), sram, 0.0),
        "dram": dram,
        "dram_bus_bits": bus,
        "dram_mt_s": get("dram_mt_s"),
        "dram_gb": get("dram_gb"),
        "precision": prec,
        "arch": np.nan_to_num(get("arch"), nan=0.0),
        "yield_model": np.nan_to_num(get("yield_model"), nan=0.0),
        "d0_per_cm2": get("d0_per_cm2"),
        "spare_tiles": np.nan_to_num(get("spare_tiles"), nan=0.0),
        "tiles": get("tiles"),
        "has_model": m["has_model"].astype(np.float64),
        **{key: m[key] for key in ("layers", "hidden", "q_dim", "kv_dim", "ffn", "n_proj", "vocab", "params", "params_read",
                                   "w_dense", "w_expert", "moe_topk", "moe_experts")},
        "weight_bits": wb,
        "kv_bits": kvb,
        "batch": get("batch"),
        "prompt_len": prompt,
        "gen_len": gen,
        "quant_overhead": quant_overhead(get("quant_overhead"), wb, ctx),
        "act_bytes": np.full(n, float(ctx.defaults["act_bytes"])),
        "pre_mask": np.zeros(n, dtype=np.int64),
        "glue_notes": np.where(from_tops, N_MAC_FROM_TOPS, 0),
    }
    return x, k


def evaluate_asic(table: pa.Table, ctx: Context, *, strict: bool = False) -> tuple[pa.Table, RowErrors]:
    errors = RowErrors(table.num_rows)
    raw = parse_asic(table, ctx, errors)
    x, k = assemble_asic(raw, ctx, errors)
    if strict and errors:
        raise errors.error()
    n = table.num_rows
    out = run_good_rows(errors, lambda rows: asic.evaluate({key: v[rows] for key, v in x.items()}, k))
    mask = np.asarray(out.get("reason_mask", np.zeros(n, dtype=np.int64)), dtype=np.int64)
    # a node the constant tables do not cover, or weights wider than the design's precision, is a bad cell of the
    # row (field, value, allowed), as evaluate reports every other bad input; the rest are the design's outcome
    ok = ~errors.bad
    for i in np.nonzero(ok & ((mask & asic.R_NODE) != 0))[0].tolist():
        errors.add([i], "node_nm", [float(x["node_nm"][i])], f"outside the sourced constant tables (no energy, area, wafer "
                   f"price or D0 for it); allowed: {k['node_min']:g} to {k['node_max']:g}")
    for i in np.nonzero(ok & ((mask & asic.R_PRECISION) != 0))[0].tolist():
        prec = ASIC_PRECISIONS[int(x["precision"][i])]
        errors.add([i], "weight_bits", [int(out["weight_bits"][i])], f"an {prec} design cannot run these weights; "
                   f"allowed: {int(asic.PRECISION_BITS[int(x['precision'][i])])} or fewer (or a wider precision)")
    if strict and errors:
        raise errors.error()
    reason = asic.reason_text(mask)
    for i in np.nonzero(mask != 0)[0].tolist():
        reason[i] = _asic_reason(i, x, out, int(mask[i]), k)
    refuse_infeasible(strict, mask, reason, ASIC_REFUSAL_FIELDS, {**x, "batch": out.get("batch", x["batch"])})
    bad = errors.bad
    reason = np.where(bad, errors.text(), reason)
    note_mask = np.asarray(out.get("note_mask", np.zeros(n, dtype=np.int64)), dtype=np.int64)
    notes = asic.note_text(note_mask)
    glue = np.asarray(x["glue_notes"], dtype=np.int64) != 0
    notes = np.where(glue, [("n_mac = peak_tops / (2 x clock_ghz)" + ("; " + t if t else "")) for t in notes], notes)
    notes = np.where(bad, "", notes)
    out["has_model"] = np.asarray(x["has_model"]) > 0
    resolved = {
        "node_nm": x["node_nm"], "n_mac": x["n_mac"], "clock_ghz": x["clock_ghz"], "sram_mb": x["sram_mb"],
        "dram": x["dram"], "dram_bus_bits": x["dram_bus_bits"], "precision": x["precision"], "arch": x["arch"],
        "yield_model": x["yield_model"], "weight_bits": out.get("weight_bits", x["weight_bits"]),
        "batch": out.get("batch", x["batch"]), "prompt_len": x["prompt_len"], "gen_len": x["gen_len"],
        "dram_mt_s": out.get("dram_mt_s", x["dram_mt_s"]), "kv_bits": x["kv_bits"],
        "d0_per_cm2": out.get("d0_per_cm2", x["d0_per_cm2"]), "tiles": x["tiles"], "spare_tiles": x["spare_tiles"],
    }
    text = {"dram": DRAM_TYPES, "precision": ASIC_PRECISIONS, "arch": ARCHS, "yield_model": YIELD_MODELS}
    return result_table(table, resolved, ASIC_OUT, out, bad, reason, notes, text), errors


def _asic_reason(i: int, x: Mapping[str, Array], out: Mapping[str, Array], mask: int, k: Mapping[str, Any]) -> str:
    parts = []
    if mask & asic.R_INPUT:
        parts.append(asic.REASONS[asic.R_INPUT])
    if mask & asic.R_NODE:
        parts.append(f"node_nm={x['node_nm'][i]:g} is outside the sourced constant tables "
                     f"({k['node_min']:g}-{k['node_max']:g} nm): no energy, area, wafer price or D0 for it")
    if mask & asic.R_TILES:
        parts.append(asic.REASONS[asic.R_TILES])
    if mask & asic.R_PRECISION:
        prec = ASIC_PRECISIONS[int(x["precision"][i])]
        parts.append(f"precision {prec} cannot run weight_bits={int(out['weight_bits'][i])} "
                     f"(allowed: weight_bits <= {int(asic.PRECISION_BITS[int(x['precision'][i])])}; or a wider precision)")
    if mask & asic.R_RETICLE:
        parts.append(f"die area {out['die_area_mm2'][i]:.0f} mm^2 exceeds the reticle limit {k['reticle_mm2']:g} mm^2 "
                     "(26 x 33 mm) and the design declares no redundancy: add spare_tiles and tiles "
                     "(wafer-scale path) or shrink it")
    if mask & asic.R_WAFER:
        parts.append(f"die area {out['die_area_mm2'][i]:.0f} mm^2 exceeds a wafer-scale die ({k['wafer_scale_max_mm2']:g} mm^2)")
    if mask & asic.R_DRAM_CAP:
        name = DRAM_TYPES[int(x["dram"][i])]
        bus = int(np.nan_to_num(x["dram_bus_bits"][i]))
        most_bit = k["dram_max_gb_per_bit"][int(x["dram"][i])]
        width = int(k["dram_width"][int(x["dram"][i])])
        unit = f"{most_bit * width:g} GB per {width}-bit {'HBM stack' if name.startswith('hbm') else 'LPDDR channel'}"
        given_gb = x["dram_gb"][i]
        need_gb = given_gb if np.isfinite(given_gb) and given_gb >= 0 else out["mem_gb"][i] - x["sram_mb"][i] / 1e3
        wider = int(np.ceil(need_gb / (most_bit * width))) * width
        what = f"dram_gb {need_gb:g}:" if np.isfinite(given_gb) and given_gb >= 0 else f"the workload needs {need_gb:.1f} GB of DRAM;"
        parts.append(f"{what} a {bus}-bit {name} bus holds at most {most_bit * bus:g} GB ({unit}): allowed: "
                     f"dram_bus_bits >= {wider}, or fewer bytes (weight_bits, batch, prompt_len)")
    if mask & (asic.R_MEMORY | asic.R_NOFIT):
        cap = x["sram_mb"][i] / 1e3 + (0.0 if not np.isfinite(x["dram_gb"][i]) else x["dram_gb"][i])
        at = "any batch" if mask & asic.R_NOFIT else f"batch {int(out['batch'][i])}"
        parts.append(f"the model does not fit at {at}: {out['mem_gb'][i]:.2f} GB needed > {cap:.3f} GB "
                     f"(SRAM {x['sram_mb'][i]:g} MB + DRAM {np.nan_to_num(x['dram_gb'][i]):g} GB)")
    return "; ".join(parts)
