"""Every frontier query agrees with a brute-force O(n^2) dominance check in numpy.

Random tables with many ties (values drawn from a few levels), NaN, +-inf and NULL, infeasible rows,
two and three objectives, minimised and maximised: first the SQL builder on its own (in-memory DuckDB,
any sign and scale, coarse bins that stress the prune), then the saved queries end to end on real
hive-partitioned lakes (ids resolved through each version's dimension files, latest versions only).
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import lakegen
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipsweep.queries.frontier import Objective, pareto_sql
from chipsweep.queries.runner import run_saved
from chipsweep.schemas.columns import FACTS

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LAKE_SETTINGS = settings(max_examples=10, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def brute_force(x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Rows (of finite objective vectors, all minimised) that no other row of their group dominates."""
    x = np.asarray(x, dtype=np.float64)
    groups = np.zeros(len(x), dtype=np.int64) if groups is None else np.asarray(groups)
    ok = np.isfinite(x).all(axis=1)
    keep = np.zeros(len(x), dtype=bool)
    for g in np.unique(groups[ok]):
        rows = np.flatnonzero(ok & (groups == g))
        a = x[rows]
        for start in range(0, len(rows), 1024):  # blocks of rows i, against every row j
            b = a[start:start + 1024]
            le = (a[:, None, :] <= b[None, :, :]).all(axis=-1)  # le[j, i]: row j no worse than row i everywhere
            lt = (a[:, None, :] < b[None, :, :]).any(axis=-1)  # ... and strictly better somewhere
            keep[rows[start:start + 1024]] = ~(le & lt).any(axis=0)
    return keep


def test_brute_force_itself() -> None:
    x = np.array([[1, 2], [2, 1], [2, 2], [1, 2], [np.nan, 0], [3, 0.5], [0.5, np.inf]])
    assert brute_force(x).tolist() == [True, True, False, True, False, True, False]


# ---------------------------------------------------------------------------------------------
# the builder on arbitrary tables
# ---------------------------------------------------------------------------------------------
SPECIAL = [math.nan, math.inf, -math.inf, None]


@st.composite
def frontier_case(draw: st.DrawFn, k: int) -> tuple[pa.Table, list[Objective], list[str], int, int]:
    n = draw(st.integers(0, 90))
    levels = draw(st.lists(st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
                                     st.sampled_from([0.0, 1.0, 1e-30, 3e30])), min_size=1, max_size=7))
    pool = levels * 10 + SPECIAL
    cols = {f"o{i}": draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)) for i in range(k)}
    senses = draw(st.lists(st.sampled_from(["min", "max"]), min_size=k, max_size=k))
    groups = draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    width = draw(st.sampled_from([pa.float32(), pa.float64()]))
    table = pa.table({"id": pa.array(range(n), pa.int64()), "g": pa.array(groups, pa.string()),
                      **{c: pa.array(v, pa.float64()).cast(width) for c, v in cols.items()}})
    part = draw(st.sampled_from([[], ["g"]]))
    return (table, [Objective(f"o{i}", s) for i, s in enumerate(senses)], part,  # type: ignore[arg-type]
            draw(st.sampled_from([1, 2, 64])), draw(st.sampled_from([1, 3, 128])))


def _signed(table: pa.Table, objectives: list[Objective]) -> np.ndarray:
    cols = []
    for o in objectives:
        v = pc.fill_null(table[o.column].cast(pa.float64()), math.nan).to_numpy()
        cols.append(-v if o.sense == "max" else v)
    return np.stack(cols, axis=1) if cols else np.zeros((table.num_rows, 0))


def _check_builder(case: tuple[pa.Table, list[Objective], list[str], int, int]) -> None:
    table, objectives, part, per_octave, coarse = case
    con = duckdb.connect()
    con.register("t", table)
    sql = pareto_sql("t", objectives, partition_by=part, bins_per_octave=per_octave, coarse=coarse)
    got = sorted(r[0] for r in con.execute(f"SELECT id FROM {sql}").fetchall())
    groups = None
    if part:
        groups = np.array([{"a": 0, "b": 1, None: 2}[g] for g in table["g"].to_pylist()])
    want = np.flatnonzero(brute_force(_signed(table, objectives), groups)).tolist() if table.num_rows else []
    assert got == want


@SETTINGS
@given(frontier_case(2))
def test_two_objective_builder_matches_brute_force(case: tuple) -> None:
    _check_builder(case)


@SETTINGS
@given(frontier_case(3))
def test_three_objective_builder_matches_brute_force(case: tuple) -> None:
    _check_builder(case)


def test_builder_keeps_all_copies_of_a_tied_frontier_row() -> None:
    con = duckdb.connect()
    con.register("t", pa.table({"id": [1, 2, 3, 4], "a": [1.0, 1.0, 2.0, 0.5], "b": [1.0, 1.0, 0.5, 3.0]}))
    sql = pareto_sql("t", [Objective("a"), Objective("b")])
    assert sorted(r[0] for r in con.execute(f"SELECT id FROM {sql}").fetchall()) == [1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------
# the saved queries on real lakes
# ---------------------------------------------------------------------------------------------
MODEL_ORDERS = [["llama2_7b", "llama2_70b"], ["llama2_70b", "llama2_7b"]]  # model_id differs between sweeps
CHIP_IDS = ["nvidia_a100_sxm_80gb", "nvidia_h100_sxm", "google_tpu_v4", "amd_mi300x"]


def _feasible(t: pa.Table) -> np.ndarray:
    fits = t["fits"].to_numpy(zero_copy_only=False)
    reason = np.array([r or "" for r in t["infeasible_reason"].to_pylist()])
    return fits & (reason == "")


def _model_names(t: pa.Table, order: list[str]) -> np.ndarray:
    return np.array([order[i] for i in t["model_id"].to_pylist()])


def _fresh(tmp_path: Path, name: str) -> str:
    lake = tmp_path / name
    n = 0
    while lake.exists():
        n += 1
        lake = tmp_path / f"{name}{n}"
    return str(lake)


@LAKE_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 120), distinct=st.integers(1, 12),
       objectives=st.sampled_from(["time_to_train_days,cost_usd", "tokens_per_s,cost_usd",
                                   "time_to_train_days,cost_usd,energy_mwh", "mfu,energy_mwh:min,cost_usd"]),
       one_sweep=st.booleans())
def test_pareto_training_matches_brute_force(tmp_path: Path, seed: int, n: int, distinct: int, objectives: str,
                                             one_sweep: bool) -> None:
    rng = np.random.default_rng(seed)
    lake = _fresh(tmp_path, "lake")
    chips = lakegen.chips_dim(CHIP_IDS)
    a1 = lakegen.random_training(rng, n, distinct=distinct)  # superseded by a2: must not count
    a2 = lakegen.random_training(rng, n, distinct=distinct)
    b1 = lakegen.random_training(rng, n // 2 + 1, distinct=distinct)
    b2 = lakegen.random_training(rng, 7, distinct=distinct)  # still running: not the latest
    lakegen.write_version(lake, "training", "a", 1, a1, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[0]))
    lakegen.write_version(lake, "training", "a", 2, a2, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[0]),
                          parts=3)
    lakegen.write_version(lake, "training", "b", 1, b1, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[1]))
    lakegen.write_version(lake, "training", "b", 2, b2, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[1]),
                          state="running")
    params = {"model": "llama2_70b", "objectives": objectives}
    candidates = [("a", 2, a2, MODEL_ORDERS[0])] + ([] if one_sweep else [("b", 1, b1, MODEL_ORDERS[1])])
    if one_sweep:
        params["sweep"] = "a"
    got = run_saved("pareto_training", params, lake=lake)
    objs = [Objective(c.split(":")[0], "max" if (c.startswith(("tokens_per_s", "mfu")) and ":min" not in c) else "min")
            for c in objectives.split(",")]
    keys, xs, bases = [], [], []
    for sweep, version, t, order in candidates:
        mask = _feasible(t) & (_model_names(t, order) == "llama2_70b")
        sub = t.filter(pa.array(mask))
        keys += [(sweep, version, i) for i in sub["idx"].to_pylist()]
        bases += [str(b) for b in sub["cost_basis"].to_pylist()]
        xs.append(_signed(sub, objs))
    x = np.concatenate(xs) if xs else np.zeros((0, len(objs)))
    # rental and owned costs never share a frontier (issue 12): each basis is brute-forced on its own
    basis = np.asarray(bases, dtype=object)
    want = sorted(k for b in set(bases) for k, keep in zip([k for k, kb in zip(keys, bases, strict=True) if kb == b],
                                                            brute_force(x[basis == b]), strict=True) if keep)
    assert sorted(zip(got["sweep"].to_pylist(), got["version"].to_pylist(), got["idx"].to_pylist(), strict=True)) == want
    assert set(got["model"].to_pylist()) <= {"llama2_70b"}
    assert (got.schema.metadata or {})[b"chipsweep.objectives"].decode() == ",".join(str(o) for o in objs)


@LAKE_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 100), distinct=st.integers(1, 10))
def test_pareto_edge_matches_brute_force(tmp_path: Path, seed: int, n: int, distinct: int) -> None:
    rng = np.random.default_rng(seed)
    lake = _fresh(tmp_path, "edge")
    chips = lakegen.chips_dim(CHIP_IDS)  # google_tpu_v4 has no purchase price: NaN unit costs stay out
    inf = lakegen.random_inference(rng, n, distinct=distinct)
    asic = lakegen.random_asic(rng, n, distinct=distinct)
    lakegen.write_version(lake, "inference", "phones", 1, inf, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[1]))
    lakegen.write_version(lake, "asic", "designs", 3, asic, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[0]))
    got = run_saved("pareto_edge", {"model": "llama2_7b"}, lake=lake)

    objs = [Objective("decode_tokens_per_s", "max"), Objective("energy_per_token_j"), Objective("unit_cost_usd")]
    inf_priced = _priced(inf, chips)
    scope_of_chip = np.array(chips["purchase_scope"].to_pylist(), dtype=object)
    keys, xs, scopes = [], [], []
    for source, sweep, version, t, order in (("inference", "phones", 1, inf_priced, MODEL_ORDERS[1]),
                                             ("asic", "designs", 3, asic, MODEL_ORDERS[0])):
        sub = t.filter(pa.array(_feasible(t) & (_model_names(t, order) == "llama2_7b")))
        if source == "inference":  # a catalog chip at its serving point: per-user speed beside that point's energy
            sub = sub.set_column(sub.schema.get_field_index("decode_tokens_per_s"), "decode_tokens_per_s",
                                 sub["tokens_per_s_per_user"])
        keys += [(source, sweep, version, i) for i in sub["idx"].to_pylist()]
        # what a unit cost is the price of: an ASIC's manufacturing cost, or what the chip's purchase price buys
        scopes += (["manufacturing"] * sub.num_rows if source == "asic"
                   else scope_of_chip[sub["chip_id"].to_numpy()].tolist())
        xs.append(_signed(sub, objs))
    # each cost scope is its own frontier: a die's manufacturing cost never dominates an accelerator's price
    x, scope = np.concatenate(xs), np.asarray(scopes, dtype=object)
    want = sorted(k for s in set(scopes) for k, keep in zip([k for k, ks in zip(keys, scopes, strict=True) if ks == s],
                                                             brute_force(x[scope == s]), strict=True) if keep)
    assert sorted(zip(got["source"].to_pylist(), got["sweep"].to_pylist(), got["version"].to_pylist(),
                      got["idx"].to_pylist(), strict=True)) == want
    # an ASIC design is named by its whole vector: two designs that differ only in DRAM bus width stay apart
    for r in got.to_pylist():
        if r["source"] == "asic":
            assert r["chip"].endswith(f"{r['dram']} {r['dram_bus_bits']}-bit"), r["chip"]


def _value(v: object) -> object:
    """A config cell as a key: NaN (a blank float input) is one value, as the diff's text of it is."""
    return None if isinstance(v, float) and math.isnan(v) else v


def _frontier_configs(t: pa.Table, names: np.ndarray, objs: list[Objective], config: list[str],
                      split: str | None = None) -> dict[tuple, list[int]]:
    """The brute-force frontier of each model (and of each value of `split`, a column whose values are separate
    frontiers), keyed by what a configuration is: (model, *its `config` values) -> the idx of its rows on it."""
    part = np.array(t[split].to_pylist(), dtype=object) if split else np.zeros(t.num_rows, dtype=object)
    out: dict[tuple, list[int]] = {}
    for model in sorted(set(names.tolist())):
        for value in sorted(set(part.tolist()), key=str):
            rows = np.flatnonzero(_feasible(t) & (names == model) & (part == value))
            keep = brute_force(_signed(t.take(pa.array(rows, pa.int64())), objs)) if len(rows) else []
            for r, k in zip(rows, keep, strict=True):
                if k:
                    key = (model, *(_value(t[c][int(r)].as_py()) for c in config))
                    out.setdefault(key, []).append(int(t["idx"][int(r)].as_py()))
    return out


def _diff(before: dict[tuple, list[int]], after: dict[tuple, list[int]], old: int, new: int) -> list[tuple]:
    """(change, version, idx) of the configurations that entered the frontier and those that left it."""
    return sorted([("entered", new, i) for k, v in after.items() if k not in before for i in v]
                  + [("left", old, i) for k, v in before.items() if k not in after for i in v])


def _inputs(kind: str) -> list[str]:
    """Every input column of a kind's facts but the model (the brute force keys by its name): what tells two
    configurations apart, derived from the schema so a column added there cannot be left out of the diff's match."""
    return [c.name for c in FACTS[kind] if c.role == "input" and c.name != "model_id"]


def _got(got: pa.Table) -> list[tuple]:
    return sorted(zip(got["change"].to_pylist(), got["version"].to_pylist(), got["idx"].to_pylist(), strict=True))


@LAKE_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 100), distinct=st.integers(1, 10),
       changed=st.floats(0.0, 1.0))
def test_frontier_diff_matches_brute_force(tmp_path: Path, seed: int, n: int, distinct: int, changed: float) -> None:
    rng = np.random.default_rng(seed)
    lake = _fresh(tmp_path, "diff")
    chips = lakegen.chips_dim(CHIP_IDS)
    old = lakegen.random_training(rng, n, distinct=distinct)
    # the next version: the same configurations, some re-priced (as after a price change), new ids for models
    factor = np.where(rng.random(n) < changed, rng.choice([0.5, 0.9, 1.1, 2.0], size=n), 1.0).astype(np.float32)
    new_cost = (old["cost_usd"].to_numpy(zero_copy_only=False) * factor).astype(np.float32)
    new = old.set_column(old.schema.get_field_index("cost_usd"), "cost_usd", pa.array(new_cost))
    new = new.set_column(new.schema.get_field_index("model_id"), "model_id",
                         pc.subtract(pa.scalar(1, pa.int16()), new["model_id"]))  # ids swapped with the order
    lakegen.write_version(lake, "training", "s", 1, old, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[0]))
    lakegen.write_version(lake, "training", "s", 2, new, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[1]))
    got = run_saved("frontier_diff", {"sweep": "s", "from_version": 1, "to_version": 2}, lake=lake)

    objs = [Objective("time_to_train_days"), Objective("cost_usd")]
    config_cols = [*_inputs("training"), "cost_basis", "first_stage_layers", "last_stage_layers"]

    # each model's frontier, each cost basis its own (rental prices and owned TCO never share one)
    before = _frontier_configs(old, _model_names(old, MODEL_ORDERS[0]), objs, config_cols, "cost_basis")
    after = _frontier_configs(new, _model_names(new, MODEL_ORDERS[1]), objs, config_cols, "cost_basis")
    assert _got(got) == _diff(before, after, 1, 2)


def test_empty_lake_gives_empty_frontiers(tmp_path: Path) -> None:
    lake = str(tmp_path / "none")
    rng = np.random.default_rng(0)
    # a lake with only infeasible rows of the model
    t = lakegen.random_training(rng, 30, infeasible_frac=1.0, n_models=1)
    lakegen.write_version(lake, "training", "x", 1, t, models=lakegen.models_dim(["llama2_70b"]))
    got = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake)
    assert got.num_rows == 0
    assert run_saved("pareto_training", {"model": "llama2_70b", "objectives": "time_to_train_days,cost_usd,co2_t"},
                     lake=lake).num_rows == 0


@pytest.mark.parametrize("objectives", ["time_to_train_days,cost_usd", "time_to_train_days,cost_usd,energy_mwh"])
def test_frontier_of_a_realistic_grid_matches_brute_force(tmp_path: Path, objectives: str) -> None:
    """A sweep space priced by the throughput model: long runs of near-ties along each chip's curve."""
    grid = lakegen.TrainingGrid(models=["llama2_70b"], n_chips=[8, 512], global_batch=[512], pp=[1, 2, 4, 8],
                                micro_batch=[1, 2], zero_stage=[0, 1, 3])
    table = lakegen.training_grid(grid, 0, grid.size)
    lake = str(tmp_path / "grid")
    lakegen.write_version(lake, "training", "g", 1, table, parts=4)  # the grid's ids are those of the default dims
    got = run_saved("pareto_training", {"model": "llama2_70b", "objectives": objectives}, lake=lake)
    objs = [Objective(c) for c in objectives.split(",")]
    sub = table.filter(pa.array(_feasible(table)))
    keep = brute_force(_signed(sub, objs))
    assert sorted(got["idx"].to_pylist()) == sorted(np.asarray(sub["idx"])[keep].tolist())
    assert got.num_rows > 1


def _priced(t: pa.Table, chips: pa.Table) -> pa.Table:
    """Inference rows with the unit cost the queries use: the facts' own, else purchase price x chips."""
    purchase = np.array(chips["purchase_usd"].to_pylist(), dtype=np.float64)
    unit = t["unit_cost_usd"].to_numpy(zero_copy_only=False).astype(np.float64)
    fallback = (purchase[t["chip_id"].to_numpy()] * t["n_chips"].to_numpy()).astype(np.float32)
    return t.set_column(t.schema.get_field_index("unit_cost_usd"), "unit_cost_usd",
                        pa.array(np.where(np.isnan(unit), fallback, unit).astype(np.float32)))


EDGE_CONFIG = {
    # every input that tells two designs apart, as frontier_diff.sql matches them (two rows alike in the others but
    # with different DRAM capacities are two designs: lakegen draws dram_gb per row)
    "asic": ["node_nm", "n_mac", "clock_ghz", "sram_mb", "dram", "dram_bus_bits", "precision", "weight_bits", "batch",
             "prompt_len", "gen_len", "dram_mt_s", "dram_gb", "kv_bits", "arch", "yield_model", "d0_per_cm2", "tiles",
             "spare_tiles"],
    "inference": _inputs("inference"),
}


@LAKE_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), distinct=st.integers(1, 8), changed=st.floats(0.0, 1.0),
       kind=st.sampled_from(["asic", "inference"]))
def test_frontier_diff_of_an_edge_sweep_matches_brute_force(tmp_path: Path, seed: int, n: int, distinct: int,
                                                            changed: float, kind: str) -> None:
    """Three objectives (decode speed maximised, energy and unit cost minimised) after a price change."""
    rng = np.random.default_rng(seed)
    lake = _fresh(tmp_path, "ediff")
    chips = lakegen.chips_dim(CHIP_IDS)
    old = lakegen.random_asic(rng, n, distinct=distinct) if kind == "asic" else \
        lakegen.random_inference(rng, n, distinct=distinct)
    factor = np.where(rng.random(n) < changed, rng.choice([0.5, 0.8, 1.25, 2.0], size=n), 1.0).astype(np.float32)
    cost = (old["unit_cost_usd"].to_numpy(zero_copy_only=False) * factor).astype(np.float32)
    new = old.set_column(old.schema.get_field_index("unit_cost_usd"), "unit_cost_usd", pa.array(cost))
    lakegen.write_version(lake, kind, "a", 4, old, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[0]))
    lakegen.write_version(lake, kind, "a", 7, new, chips=chips, models=lakegen.models_dim(MODEL_ORDERS[0]))
    got = run_saved("frontier_diff", {"sweep": "a", "from_version": 4, "to_version": 7}, lake=lake)

    objs = [Objective("decode_tokens_per_s", "max"), Objective("energy_per_token_j"), Objective("unit_cost_usd")]

    def frontier(t: pa.Table) -> dict[tuple, list[int]]:
        if kind == "inference":  # pareto_edge's measures: the serving point's tokens/s per user, the purchase price
            t = t.set_column(t.schema.get_field_index("decode_tokens_per_s"), "decode_tokens_per_s", t["tokens_per_s_per_user"])
            t = _priced(t, chips)
        return _frontier_configs(t, _model_names(t, MODEL_ORDERS[0]), objs, EDGE_CONFIG[kind])

    assert _got(got) == _diff(frontier(old), frontier(new), 4, 7)
    assert set(got["kind"].to_pylist()) <= {kind}


SERVING_CONFIG = [*_inputs("inference"), "cost_basis"]


@LAKE_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), changed=st.floats(0.0, 1.0), explicit=st.booleans())
def test_frontier_diff_of_a_serving_sweep_matches_brute_force(tmp_path: Path, seed: int, n: int, changed: float,
                                                              explicit: bool) -> None:
    """A serving sweep (its spec sets concurrency) moves on pareto_serving's objectives -- output tokens/s per chip
    and tokens/s per user, both maximised, each workload its own frontier -- not on the edge ones, whether the
    caller names that frontier or the recorded spec tells it."""
    rng = np.random.default_rng(seed)
    lake = _fresh(tmp_path, "sdiff")
    chips = lakegen.chips_dim(CHIP_IDS)
    old = lakegen.random_inference(rng, n)
    old = old.set_column(old.schema.get_field_index("gen_len"), "gen_len",  # two workloads: two frontiers per model
                         pa.array(rng.choice([128, 1024], size=n).astype(np.int32)))
    factor = np.where(rng.random(n) < changed, rng.choice([0.5, 0.8, 1.25, 2.0], size=n), 1.0).astype(np.float32)
    per_chip = (old["output_tokens_per_s_per_chip"].to_numpy(zero_copy_only=False) * factor).astype(np.float32)
    new = old.set_column(old.schema.get_field_index("output_tokens_per_s_per_chip"), "output_tokens_per_s_per_chip",
                         pa.array(per_chip))
    spec = {"name": "srv", "kind": "inference", "axes": {"concurrency": [1, 8]}}
    for version, t in ((1, old), (2, new)):
        lakegen.write_version(lake, "inference", "srv", version, t, chips=chips,
                              models=lakegen.models_dim(MODEL_ORDERS[0]), spec=spec)
    params = {"sweep": "srv", "from_version": 1, "to_version": 2, **({"frontier": "serving"} if explicit else {})}
    got = run_saved("frontier_diff", params, lake=lake)

    objs = [Objective("output_tokens_per_s_per_chip", "max"), Objective("tokens_per_s_per_user", "max")]

    before = _frontier_configs(old, _model_names(old, MODEL_ORDERS[0]), objs, SERVING_CONFIG, "gen_len")
    after = _frontier_configs(new, _model_names(new, MODEL_ORDERS[0]), objs, SERVING_CONFIG, "gen_len")
    assert _got(got) == _diff(before, after, 1, 2)
    assert set(got["kind"].to_pylist()) <= {"serving"}
    assert all("users" in lay or "user" in lay for lay in got["layout"].to_pylist())



@pytest.mark.parametrize(("kind", "column", "values"), [
    ("training", "pp_schedule", ["1f1b", "dualpipe"]),
    ("training", "what_if", ["flash_attention=true", "flash_attention=false"]),
    ("inference", "engine", ["llama_cpp", "mlc"]),
    ("inference", "what_if", ["params_b=7", "params_b=8"]),
])
def test_frontier_diff_tells_apart_configurations_that_differ_in_one_input(tmp_path: Path, kind: str, column: str,
                                                                           values: list[str]) -> None:
    """Two configurations alike but for one input (a pipeline schedule, a setting recorded in what_if, an engine):
    the first is the frontier in version 1, the second in version 2. The diff reports one leaving and the other
    entering; matched by a description that left that input out, the two cancelled and nothing was reported."""
    lake = _fresh(tmp_path, "twins")
    rng = np.random.default_rng(0)
    same: dict[str, object] = {"idx": [0, 1], "model_id": [0, 0], "chip_id": [1, 1], "n_chips": [8, 8],
                               "fits": [True, True], "infeasible_reason": ["", ""], column: values}
    if kind == "training":
        t = lakegen.with_columns(lakegen.random_training(rng, 2, infeasible_frac=0.0, nan_frac=0.0, n_models=1),
                 **same, cost_basis=["rental", "rental"])
        v1 = lakegen.with_columns(t, time_to_train_days=[10.0, 11.0], cost_usd=[100.0, 110.0])
        v2 = lakegen.with_columns(t, time_to_train_days=[12.0, 9.0], cost_usd=[120.0, 90.0])
    else:  # an edge sweep: decode speed at the serving point, energy, unit cost
        t = lakegen.with_columns(lakegen.random_inference(rng, 2, infeasible_frac=0.0, nan_frac=0.0, n_models=1),
                 **same, batch=[1, 1], concurrency=[1, 1], unit_cost_usd=[2000.0, 2000.0])
        v1 = lakegen.with_columns(t, tokens_per_s_per_user=[20.0, 18.0], energy_per_token_j=[1.0, 1.1])
        v2 = lakegen.with_columns(t, tokens_per_s_per_user=[18.0, 20.0], energy_per_token_j=[1.1, 1.0])
    for version, table in ((1, v1), (2, v2)):
        lakegen.write_version(lake, kind, "s", version, table, chips=lakegen.chips_dim(CHIP_IDS),
                              models=lakegen.models_dim(MODEL_ORDERS[0]))
    got = run_saved("frontier_diff", {"sweep": "s", "from_version": 1, "to_version": 2}, lake=lake)
    assert _got(got) == [("entered", 2, 1), ("left", 1, 0)]
