"""Re-pricing (issue 15): a change that only moves prices, electricity, carbon intensity or PUE gives
stored training rows their new economics without running the physics again, and the result is the
same as a full re-evaluation under the new catalog, for every field `PRICE_FIELDS` lists. Pure
compute (no Ray): the chunk evaluator on real catalogs and overlays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from chipsweep.schemas.catalog import CatalogError, load_catalog
from chipsweep.schemas.spec import parse_spec
from chipsweep.schemas.sweep import Sweep, resolve
from chipsweep.workers.chunk import ChunkEvaluator
from chipsweep.workers.reprice import PRICE_FIELDS, price_only

# h100: rental price and a server price; a100: rental and purchase; gaudi3: purchase only (owned either way)
CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_40gb", "intel_gaudi3"]


def spec(store: str = "all", **axes: Any) -> dict[str, Any]:
    return {"name": "rp", "kind": "training", "store": store,
            "axes": {"chip": CHIPS, "model": ["llama3_8b", "gpt3_13b"], "n_chips": [64, 256], "tp": [1, 2],
                     "cost_basis": ["rental", "owned"], **axes},
            "fixed": {"global_batch": 512, "tokens": 1.0e11, "micro_batch": 1, "recompute": "selective"}}


def swept(overlay: Path | None, s: dict[str, Any] | None = None) -> Sweep:
    return resolve(parse_spec(s or spec()), load_catalog(str(overlay) if overlay else None, use_env=False))


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return json.loads(json.dumps(table.to_pylist(), default=str))


def assert_same(a: pa.Table, b: pa.Table) -> None:
    """Equal rows, float columns bit for bit (NaN equal to NaN): re-pricing runs the core's own economics
    (`training.run_economics`) in the core's dtype on the stored chip-hours."""
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        if pa.types.is_floating(x.type):
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=0, atol=0, equal_nan=True,
                                       err_msg=name)
        else:
            assert x.to_pylist() == y.to_pylist(), name


# every price field, moved on the chips that use it (a blank one filled in); defaults moved in an overlay
CHANGES = [
    ("chips", "usd_per_hour", "  - {id: nvidia_h100_sxm, usd_per_hour: 0.95}\n"),
    ("chips", "usd_per_hour (a chip without one gains a rental price)",
     "  - {id: intel_gaudi3, usd_per_hour: 3.1}\n"),
    ("chips", "purchase_usd", "  - {id: nvidia_a100_sxm_40gb, purchase_usd: 15000}\n"),
    ("chips", "server_usd", "  - {id: nvidia_h100_sxm, server_usd: 45000}\n"),
    ("chips", "network_usd", "  - {id: intel_gaudi3, network_usd: 4000}\n"),
    ("chips", "power_draw_w", "  - {id: nvidia_a100_sxm_40gb, power_draw_w: 350}\n"),
    *[("defaults", name, f"{name}: {value}") for name, value in (
        ("usd_per_kwh", 0.21), ("pue", 1.45), ("co2_kg_per_kwh", 0.05), ("amortization_years", 6),
        ("cost_of_capital", 0.05), ("host_power_w", 120), ("facility_usd_per_kw_month", 250),
        ("ops_usd_per_kw_month", 90), ("power_draw_fraction", 0.7), ("host_usd", 8000), ("network_usd", 3000))],
]


@pytest.mark.parametrize("where,field,text", CHANGES, ids=[c[1].split(" ")[0] + "-" + c[0] for c in CHANGES])
def test_repriced_rows_equal_a_full_reevaluation(tmp_path: Path, where: str, field: str, text: str) -> None:
    old = swept(None)
    overlay = tmp_path / "o.yaml"
    overlay.write_text(f"{where}:\n{'  ' if where == 'defaults' else ''}{text}\n")
    new = swept(overlay)
    moved = {k for k in new.hashes if new.hashes[k] != old.hashes.get(k)}
    assert moved and all(price_only("training", k.split("/")[0], _dump(old, k), _dump(new, k)) for k in moved), moved
    ev_old, ev_new = ChunkEvaluator(old), ChunkEvaluator(new)
    stored = ev_old.evaluate(0, old.configurations)
    repriced = ev_new.reprice(stored, 0, old.configurations)
    fresh = ev_new.evaluate(0, old.configurations)
    assert_same(repriced, fresh)
    # the change reached the rows: some economic column moved, no physics column did
    economic = {"energy_mwh", "cost_usd", "co2_t", "capex_usd", "opex_usd", "cost_basis"}
    changed = {c for c in stored.column_names if rows(stored.select([c])) != rows(repriced.select([c]))}
    assert changed and changed <= economic, changed


def test_a_searched_layout_and_a_feasible_store_reprice_the_same_rows(tmp_path: Path) -> None:
    s = spec("feasible")
    s["axes"].pop("tp")  # tp and pp searched by the worker
    overlay = tmp_path / "o.yaml"
    overlay.write_text("chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 4.2}\ndefaults:\n  pue: 1.3\n")
    old, new = swept(None, s), swept(overlay, s)
    stored = ChunkEvaluator(old).evaluate(0, old.configurations)
    assert stored.num_rows > 0
    assert_same(ChunkEvaluator(new).reprice(stored, 0, old.configurations),
                ChunkEvaluator(new).evaluate(0, old.configurations))


def test_a_frontier_store_is_evaluated_not_repriced(tmp_path: Path) -> None:
    """Rows a frontier store dropped under the old prices can be on the frontier under new ones."""
    overlay = tmp_path / "o.yaml"
    overlay.write_text("chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 0.2}\n")
    old, new = swept(None, spec("frontier")), swept(overlay, spec("frontier"))
    stored = ChunkEvaluator(old).evaluate(0, old.configurations)
    assert_same(ChunkEvaluator(new).reprice(stored, 0, old.configurations),
                ChunkEvaluator(new).evaluate(0, old.configurations))


@pytest.mark.parametrize("text", [
    "chips:\n  - {id: nvidia_h100_sxm, memory_gb: 40}\n",  # physics
    "chips:\n  - {id: nvidia_h100_sxm, tdp_w: 500}\n",  # also the core's power model
    "chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 1.0, scale_up_gb_s: 300}\n",  # a price and physics
])
def test_a_change_that_moves_physics_is_not_price_only(tmp_path: Path, text: str) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text(text)
    old, new = swept(None), swept(overlay)
    for kind in ("training", "inference"):
        assert not price_only(kind, "chips", _dump(old, "chips/nvidia_h100_sxm"), _dump(new, "chips/nvidia_h100_sxm"))


def test_every_price_field_is_a_catalog_field() -> None:
    from chipsweep.schemas.catalog import Chip

    chip_fields = {f.alias or n for n, f in Chip.model_fields.items()}
    for fields in PRICE_FIELDS.values():
        assert fields["chips"] <= chip_fields
        assert fields["defaults"] <= set(load_catalog(use_env=False).defaults["defaults"])


def test_overlay_defaults_are_checked(tmp_path: Path) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text("defaults:\n  usd_per_kwhh: 0.2\n")
    with pytest.raises(CatalogError, match="usd_per_kwhh.*allowed: .*usd_per_kwh"):
        load_catalog(str(overlay), use_env=False)
    overlay.write_text("defaults:\n  pue: -1\n")
    with pytest.raises(CatalogError, match="pue.*-1.*finite number >= 1"):
        load_catalog(str(overlay), use_env=False)
    # physical ranges: a PUE below 1 (energy halved), more than the chip's memory, a purchase spread over no years
    for text, allowed in (("pue: 0.5", ">= 1"), ("mem_usable: 1.5", "> 0 and <= 1"), ("amortization_years: 0", "> 0")):
        overlay.write_text(f"defaults:\n  {text}\n")
        with pytest.raises(CatalogError, match=f"{text.split(':')[0]}.*allowed: a finite number {allowed}"):
            load_catalog(str(overlay), use_env=False)
    overlay.write_text("defaults:\n  pue: 1.3\n")
    cat = load_catalog(str(overlay), use_env=False)
    assert cat.defaults["defaults"]["pue"]["value"] == 1.3
    assert load_catalog(use_env=False).defaults["defaults"]["pue"]["value"] == 1.1  # the built-in is untouched


def _dump(sweep: Sweep, key: str) -> dict[str, Any] | None:
    kind, _, ident = key.partition("/")
    if kind == "defaults":
        return sweep.catalog.defaults
    entry = getattr(sweep.catalog, kind).get(ident)
    return None if entry is None else entry.model_dump(mode="json", by_alias=True)


def test_history_names_the_default_that_moved(tmp_path: Path) -> None:
    from chipsweep.service.rerun import field_changes

    overlay = tmp_path / "o.yaml"
    overlay.write_text("defaults:\n  usd_per_kwh: 0.12\n")
    old, new = load_catalog(use_env=False), load_catalog(str(overlay), use_env=False)
    assert field_changes(old, new, ["defaults/all"]) == [
        {"entry": "defaults/all", "field": "usd_per_kwh", "old": 0.08, "new": 0.12}]


# serving: a rental chip, a chip with a rental price and a purchase price, an edge chip bought outright
SERVING_CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_40gb", "nvidia_rtx_4090"]


def serving_spec(store: str = "all") -> dict[str, Any]:
    return {"name": "rps", "kind": "inference", "store": store,
            "axes": {"chip": SERVING_CHIPS, "model": ["llama3_8b", "llama3_70b"], "n_chips": [1, 2], "concurrency": [1, 16, 64],
                     "disaggregated": [False, True]},
            "fixed": {"prompt_len": 1024, "gen_len": 256, "weight_bits": 8, "kv_bits": 8}}


SERVING_CHANGES = [
    "chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 0.95}\n",
    "chips:\n  - {id: nvidia_rtx_4090, purchase_usd: 2500}\n",
    "chips:\n  - {id: nvidia_a100_sxm_40gb, purchase_usd: 12000}\n",
    "defaults:\n  usd_per_kwh: 0.2\n",
    "defaults:\n  pue: 1.5\n",
    "defaults:\n  amortization_years: 3\n",
]


@pytest.mark.parametrize("text", SERVING_CHANGES)
def test_repriced_serving_rows_equal_a_full_reevaluation(tmp_path: Path, text: str) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text(text)
    old, new = swept(None, serving_spec()), swept(overlay, serving_spec())
    moved = {k for k in new.hashes if new.hashes[k] != old.hashes.get(k)}
    assert moved and all(price_only("inference", k.split("/")[0], _dump(old, k), _dump(new, k)) for k in moved)
    stored = ChunkEvaluator(old).evaluate(0, old.configurations)
    repriced = ChunkEvaluator(new).reprice(stored, 0, old.configurations)
    fresh = ChunkEvaluator(new).evaluate(0, old.configurations)
    # rows refused for memory (Llama 3 70B on one 24 GB card) keep the unit cost of their chips
    assert 0 < sum(r != "" for r in fresh.column("infeasible_reason").to_pylist()) < fresh.num_rows
    # the stored float32 rate, chips and power feed the same formula the core runs on its float64 values
    for name in fresh.column_names:
        x, y = repriced.column(name), fresh.column(name)
        if pa.types.is_floating(x.type):
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=1e-6, equal_nan=True, err_msg=name)
        else:
            assert x.to_pylist() == y.to_pylist(), name
    changed = {c for c in stored.column_names if rows(stored.select([c])) != rows(repriced.select([c]))}
    assert changed and changed <= {"usd_per_million_tokens", "unit_cost_usd"}, changed


def test_a_purchase_price_that_appears_reevaluates_serving_rows(tmp_path: Path) -> None:
    """An inference row notes a chip without a purchase price; the note changes with its presence."""
    cat = load_catalog(use_env=False)
    blank = next(c for c, e in cat.chips.items() if e.purchase_usd is None and e.memory_gb)
    overlay = tmp_path / "o.yaml"
    overlay.write_text(f"chips:\n  - {{id: {blank}, purchase_usd: 5000}}\n")
    new = load_catalog(str(overlay), use_env=False)
    old_d, new_d = (c.chips[blank].model_dump(mode="json", by_alias=True) for c in (cat, new))
    assert price_only("training", "chips", old_d, new_d) and not price_only("inference", "chips", old_d, new_d)


def test_the_worker_reprices_from_the_base_part_and_evaluates_when_it_is_gone(tmp_path: Path) -> None:
    """The actor's path (plain class, no Ray): a re-priced chunk reads the base version's part; if a `gc`
    removed it, the chunk is evaluated instead, and the rows are the same either way."""
    from chipsweep.lake import Lake
    from chipsweep.service.actor import ChunkWorker

    overlay = tmp_path / "o.yaml"
    overlay.write_text("chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 0.8}\n")
    old, new = swept(None), swept(overlay)
    lake = Lake(str(tmp_path / "lake"))
    n = old.configurations
    lake.write_part(ChunkEvaluator(old).evaluate(0, n), "training", "rp", 1, 0)
    worker = ChunkWorker()

    def job(version: int) -> dict[str, Any]:
        return {"kind": "training", "name": "rp", "version": version, "lake": lake.uri, "sweep": new.record()}

    done = worker.run(job(2), 0, 0, n, repriced_from=1)
    assert (done["rows"], done["skipped"]) == (n, False)
    gone = worker.run(job(3), 0, 0, n, repriced_from=7)  # no version 7: evaluated
    assert gone["rows"] == n
    import pyarrow.parquet as pq

    v2, v3 = (pq.read_table(lake.part_path("training", "rp", v, 0)) for v in (2, 3))
    assert_same(v2, v3)
    assert_same(v2, ChunkEvaluator(new).evaluate(0, n))


def test_history_names_the_asic_constant_or_framework_feature_that_moved() -> None:
    import copy

    from chipsweep.service.rerun import field_changes

    old = load_catalog(use_env=False)
    new = copy.copy(old)
    new.asic = copy.deepcopy(old.asic)
    new.asic["asic"]["mac_energy_int8_pj"]["value"][7] = 0.2
    assert field_changes(old, new, ["asic/asic"]) == [
        {"entry": "asic/asic", "field": "mac_energy_int8_pj.7", "old": 0.18, "new": 0.2}]
    # a fitted serving set is a list: history names the one constant that moved, not the whole table (it printed
    # the old and new JSON of every set, 100,535 characters on one line)
    new = copy.copy(old)
    new.asic = copy.deepcopy(old.asic)
    eff = new.asic["serving"]["efficiency"]
    eff[3]["mem_bw_fraction"] = 0.5
    (change,) = field_changes(old, new, ["asic/serving"])
    assert change == {"entry": "asic/serving", "field": "efficiency[3].mem_bw_fraction",
                      "old": old.asic["serving"]["efficiency"][3]["mem_bw_fraction"], "new": 0.5}
    new = copy.copy(old)
    new.defaults = copy.deepcopy(old.defaults)
    new.defaults["frameworks"]["fsdp"]["flash"] = 0
    assert field_changes(old, new, ["defaults/all"]) == [
        {"entry": "defaults/all", "field": "frameworks.fsdp.flash", "old": 1, "new": 0}]


def test_a_zero_cost_of_capital_spreads_the_purchase_in_straight_line(tmp_path: Path) -> None:
    """cost_of_capital 0 (a straight-line assumption) divided by zero in the capital recovery factor (a traceback on
    every row, rental ones too); now the purchase is spread evenly: 1 / years of it a year, and at 10 % a year the
    factor is r / (1 - (1 + r)^-n), which is above it."""
    from chipsweep.workers.training import capital_recovery

    assert capital_recovery(0.0, 4.0) == 0.25
    assert capital_recovery(0.1, 4.0) == pytest.approx(0.1 / (1 - 1.1 ** -4))
    assert np.allclose(capital_recovery(np.array([0.0, 0.1]), np.array([4.0, 4.0])), [0.25, 0.1 / (1 - 1.1 ** -4)])
    overlay = tmp_path / "o.yaml"
    overlay.write_text("defaults:\n  cost_of_capital: 0\n")
    import chipsweep
    row = {"model": "llama3_70b", "chip": "nvidia_h100_sxm", "n_chips": 512, "global_batch": 1024, "tokens": 2e12,
           "cost_basis": "owned"}
    straight = chipsweep.evaluate([row], catalog=load_catalog(str(overlay), use_env=False)).to_pylist()[0]
    financed = chipsweep.evaluate([row], catalog=load_catalog(use_env=False)).to_pylist()[0]
    assert 0 < straight["capex_usd"] < financed["capex_usd"]
    assert straight["opex_usd"] == pytest.approx(financed["opex_usd"])
