"""A chunk of a sweep -> lake rows: the Arrow schema, mixed-radix decoding, the same resolve path as
`evaluate`, store modes (feasible, frontier) and the Pareto filter against brute force."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.columns import arrow_schema
from chipsweep.schemas.spec import parse_spec
from chipsweep.schemas.sweep import resolve
from chipsweep.workers.chunk import ChunkEvaluator, nondominated
from chipsweep.workers.context import Context
from chipsweep.workers.space import decode_range
from chipsweep.workers.training_rows import evaluate_training
from tests.conftest import training_spec


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog(use_env=False)


def evaluator(catalog, spec: dict) -> ChunkEvaluator:  # type: ignore[no-untyped-def,type-arg]
    return ChunkEvaluator(resolve(parse_spec(spec), catalog))


def rows_equal(a: pa.Table, b: pa.Table) -> bool:
    """Tables equal value by value (NaN equal to NaN; dictionaries compared by their strings)."""
    if a.num_rows != b.num_rows or a.schema.names != b.schema.names:
        return False
    for name in a.schema.names:
        x, y = a.column(name), b.column(name)
        if pa.types.is_dictionary(x.type):
            x, y = x.cast(pa.string()), y.cast(pa.string())
        if pa.types.is_floating(x.type):
            xa, ya = x.to_numpy(), y.to_numpy()
            if not np.array_equal(xa, ya, equal_nan=True):
                return False
        elif not x.equals(y):
            return False
    return True


def test_rows_have_exactly_the_lake_schema(catalog) -> None:  # type: ignore[no-untyped-def]
    ev = evaluator(catalog, training_spec())
    table = ev.evaluate(0, 5000)
    assert table.schema.equals(arrow_schema("training"), check_metadata=True)
    assert table.num_rows == 5000
    assert table.column("idx").to_pylist() == list(range(5000))
    assert table.schema.field("mfu").type == pa.float32() and table.schema.field("chip_id").type == pa.int16()
    assert pa.types.is_dictionary(table.schema.field("infeasible_reason").type)
    empty = ev.evaluate(7, 7)
    assert empty.num_rows == 0 and empty.schema.equals(arrow_schema("training"))


def test_each_row_decodes_to_its_axis_values_last_axis_fastest(catalog) -> None:  # type: ignore[no-untyped-def]
    ev = evaluator(catalog, training_spec())
    sweep = ev.sweep
    start, stop = 3000, 4000
    table = ev.evaluate(start, stop).to_pydict()
    axes = sweep.axes_json()
    decoded = decode_range(start, stop, sweep.sizes)
    ids = {"model": sorted(catalog.models), "chip": sorted(catalog.chips)}
    for axis, ix in zip(sweep.axes, decoded, strict=True):
        want = [axes[axis.name][i] for i in ix.tolist()]
        column = {"model": "model_id", "chip": "chip_id"}.get(axis.name, axis.name)
        have = table[column]
        if axis.name in ids:
            have = [ids[axis.name][i] for i in have]
        assert have == want, axis.name
    # last axis fastest: consecutive rows differ in recompute first
    assert table["recompute"][:2] == ["selective", "full"]


def test_rows_match_the_evaluate_path(catalog) -> None:  # type: ignore[no-untyped-def]
    """A sweep row and the same configuration through `chipsweep evaluate` agree (one resolve path)."""
    ev = evaluator(catalog, training_spec())
    rows = ev.evaluate(0, ev.sweep.configurations).filter(pc.field("fits")).slice(0, 40).to_pylist()
    assert rows
    models, chips = sorted(catalog.models), sorted(catalog.chips)
    table = pa.table({
        "model": [models[r["model_id"]] for r in rows], "chip": [chips[r["chip_id"]] for r in rows],
        **{k: [str(r[k]) for r in rows] for k in ("n_chips", "global_batch", "tp", "pp", "micro_batch", "interleave",
                                                   "recompute", "zero_stage", "precision")},
        "tokens": [str(r["tokens"]) for r in rows],
    })
    out, errors = evaluate_training(table, Context.build(catalog))
    assert not errors
    for r, step, cost, dp in zip(rows, out.column("step_time_s").to_pylist(), out.column("cost_usd").to_pylist(),
                                 out.column("dp").to_pylist(), strict=True):
        assert r["step_time_s"] == pytest.approx(step, rel=1e-6)
        assert r["dp"] == dp
        if cost == cost:
            assert r["cost_usd"] == pytest.approx(cost, rel=1e-6)


def test_store_feasible_keeps_exactly_the_feasible_rows(catalog) -> None:  # type: ignore[no-untyped-def]
    all_rows = evaluator(catalog, training_spec()).evaluate(0, 6912)
    ev = evaluator(catalog, training_spec(store="feasible"))
    feasible = ev.evaluate(0, 6912)
    ok = pc.and_(all_rows.column("fits"), pc.equal(all_rows.column("infeasible_reason").cast(pa.string()), ""))
    want = all_rows.filter(ok)
    assert 0 < feasible.num_rows < all_rows.num_rows
    assert rows_equal(feasible, want)
    # the layout pre-filter only skips rows the core marks infeasible: same rows without it
    ev.prefilter = False
    assert rows_equal(ev.evaluate(0, 6912), feasible)


def test_prefilter_turns_itself_off_if_the_core_disagrees(catalog, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import chipsweep.workers.chunk as chunk

    ev = evaluator(catalog, training_spec(store="feasible"))
    want = ev.evaluate(0, 6912)
    ev2 = evaluator(catalog, training_spec(store="feasible"))
    real = chunk.layout_infeasible
    monkeypatch.setattr(chunk, "layout_infeasible", lambda raw, ctx, n: ~real(raw, ctx, n))  # a wrong pre-filter
    assert rows_equal(ev2.evaluate(0, 6912), want)
    assert ev2.prefilter is False


def test_explicit_model_shapes_without_a_catalog_model(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = {"name": "shapes", "kind": "training", "store": "feasible",
            "axes": {"chip": ["nvidia_h100_sxm"], "n_chips": [64, 128], "tp": [1, 2, 4], "pp": [1, 2]},
            "fixed": {"layers": 32, "hidden": 4096, "heads": 32, "vocab": 32000, "seq_len": 4096, "global_batch": 512,
                      "micro_batch": 1, "interleave": 1, "recompute": "selective", "zero_stage": 1}}
    table = evaluator(catalog, spec).evaluate(0, 12)
    assert table.num_rows > 0 and set(table.column("model_id").to_pylist()) == {-1}


def test_layout_search_fills_blank_layout_axes(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = {"name": "search", "kind": "training", "store": "feasible",
            "axes": {"model": ["llama3_8b", "llama2_70b"], "chip": ["nvidia_h100_sxm"], "n_chips": [64, 256]},
            "fixed": {"global_batch": 512}}
    table = evaluator(catalog, spec).evaluate(0, 4)
    assert table.num_rows == 4
    assert all(v is not None for v in table.column("tp").to_pylist() + table.column("pp").to_pylist())
    assert all(r == "" for r in table.column("infeasible_reason").cast(pa.string()).to_pylist())


# ---- the Pareto filter ----------------------------------------------------------------------------
def brute_nondominated(group: np.ndarray, objs: np.ndarray) -> np.ndarray:
    n = len(objs)
    keep = np.ones(n, dtype=bool)
    finite = np.isfinite(objs).all(axis=1)
    for i in range(n):
        if not finite[i]:
            continue
        same = (group == group[i]) & finite
        le = (objs[same] <= objs[i]).all(axis=1)
        lt = (objs[same] < objs[i]).any(axis=1)
        keep[i] = not (le & lt).any()
    return keep


@pytest.mark.parametrize("k", [1, 2, 3])
def test_nondominated_matches_brute_force_with_ties_and_nans(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 3000
    objs = rng.integers(0, 25, size=(n, k)).astype(np.float64)  # many ties and exact duplicates
    objs[rng.random(n) < 0.02, 0] = np.nan
    group = rng.integers(0, 4, size=n)
    assert np.array_equal(nondominated(group, objs), brute_nondominated(group, objs))


def global_frontier(table: pa.Table, objectives: list[tuple[str, bool]], group_by: tuple[str, ...]) -> set[int]:
    data = table.to_pydict()
    ok = np.asarray(data["fits"], dtype=bool) & (np.asarray([r == "" for r in data["infeasible_reason"]]))
    raw = np.stack([np.asarray(data[c], dtype=np.float64) * (-1.0 if mx else 1.0) for c, mx in objectives], axis=1)
    ok &= np.isfinite(raw).all(axis=1)  # rows without a value take no part (as queries/frontier.py)
    idx = np.asarray(data["idx"])[ok]
    objs = raw[ok]
    group = np.zeros(len(idx), dtype=np.int64)
    for g in group_by:
        group = group * 1000 + np.asarray(data[g])[ok]
    return set(idx[brute_nondominated(group, objs)].tolist())


@pytest.mark.parametrize("objectives", [None, ["time_to_train_days", "cost_usd", "energy_mwh"], ["mfu", "cost_usd"]])
def test_frontier_store_leaves_the_global_frontier_unchanged(catalog, objectives) -> None:  # type: ignore[no-untyped-def]
    """Chunks that drop rows dominated inside their (model, chip) group lose no row of the global
    frontier, per (model, chip) or per model across chips."""
    extra = {} if objectives is None else {"objectives": objectives}
    full = evaluator(catalog, training_spec(**extra))
    front = evaluator(catalog, training_spec(store="frontier", **extra))
    n = full.sweep.configurations
    bounds = list(range(0, n, 1700)) + [n]  # chunks that cut across groups
    all_rows = pa.concat_tables([full.evaluate(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    kept = pa.concat_tables([front.evaluate(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]).combine_chunks()
    assert kept.num_rows < all_rows.filter(pc.field("fits")).num_rows
    objs = full.sweep.objectives
    for group_by in (("model_id", "chip_id"), ("model_id",)):
        want = global_frontier(all_rows, objs, group_by)
        assert want and global_frontier(kept, objs, group_by) == want


def test_edge_kinds_produce_their_schemas(catalog) -> None:  # type: ignore[no-untyped-def]
    inf = evaluator(catalog, {"name": "e", "kind": "inference", "axes": {
        "model": ["llama3_8b", "qwen2_1.5b"], "chip": {"system_kind": "edge"}, "weight_bits": [4, 8, 16],
        "batch": [1, 4]}})
    t = inf.evaluate(0, inf.sweep.configurations)
    assert t.schema.equals(arrow_schema("inference")) and t.num_rows == inf.sweep.configurations
    assert pc.sum(pc.cast(t.column("fits"), pa.int64())).as_py() > 0
    asic = evaluator(catalog, {"name": "a", "kind": "asic", "store": "feasible", "axes": {
        "model": ["llama3_8b"], "node_nm": [5, 7], "n_mac": [2048, 8192], "sram_mb": [16, 64],
        "dram": ["lpddr5x", "hbm3"], "dram_bus_bits": [64, 1024]}})
    t = asic.evaluate(0, asic.sweep.configurations)
    assert t.schema.equals(arrow_schema("asic")) and 0 < t.num_rows <= 32
    assert set(t.column("dram").cast(pa.string()).to_pylist()) <= {"lpddr5x", "hbm3"}


def test_a_dense_models_ep_rows_in_a_mixed_sweep_say_it_is_dense(catalog) -> None:  # type: ignore[no-untyped-def]
    """In a sweep of a dense and a mixture-of-experts model over ep, the dense model's ep > 1 rows name that cause
    alone (they said 'ep and pp must divide n_chips ..., and ep needs a mixture-of-experts model', one reason for
    two faults); the MoE model's ep that does not divide the chips names the division."""
    spec = {"name": "mixed-ep", "kind": "inference", "store": "all",
            "axes": {"model": ["llama3_8b", "qwen3_30b_a3b"], "chip": ["nvidia_h100_sxm"], "n_chips": [4], "ep": [1, 3, 4]}}
    ev = evaluator(catalog, spec)
    rows = ev.evaluate(0, ev.sweep.configurations).to_pylist()
    assert len(rows) == 6
    reasons = {(r["model_id"], r["ep"]): str(r["infeasible_reason"] or "") for r in rows}
    model = next(a for a in ev.sweep.axes if a.name == "model")
    dense, moe = (int(model.codes[model.values.index(m)]) for m in ("llama3_8b", "qwen3_30b_a3b"))
    assert reasons[(dense, 1)] == "" and reasons[(moe, 1)] == "" and reasons[(moe, 4)] == ""
    for ep in (3, 4):
        assert reasons[(dense, ep)] == "ep > 1 needs a mixture-of-experts model (this model is dense): allowed ep 1"
    assert reasons[(moe, 3)] == "ep and pp must divide n_chips, and pp be at most the layers"
