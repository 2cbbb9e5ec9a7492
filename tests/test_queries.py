"""The lake's views, the saved queries (against numpy on the same rows) and the `query` / `sql` commands."""

from __future__ import annotations

import json
from pathlib import Path

import lakegen
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from chipsweep.lake import (
    Lake,
    LakeError,
    connect,
    dim_file,
    fact_file,
    is_uri,
    lake_root,
    normalise_root,
    scan,
)
from chipsweep.lake.layout import temporary_name
from chipsweep.queries.errors import QueryError
from chipsweep.queries.output import to_csv, to_json, to_text
from chipsweep.queries.runner import run_saved, run_sql, unplaced_chips
from chipsweep.queries.saved import list_saved, saved_queries
from chipsweep.schemas.columns import DIM_SWEEPS, arrow_schema, dim_sweeps_row
from chipsweep.service.cli import main

GRID = lakegen.TrainingGrid(models=["llama2_7b", "llama2_70b"], n_chips=[8, 64, 512], global_batch=[512, 2048],
                            pp=[1, 2, 4], micro_batch=[1, 2], zero_stage=[0, 1], interleave=[1])


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    lake = str(tmp_path_factory.mktemp("q") / "lake")
    table = lakegen.training_grid(GRID, 0, GRID.size)
    lakegen.write_version(lake, "training", "grid", 1, table, parts=2)
    lakegen.write_version(lake, "training", "grid", 2, table, parts=3)
    lakegen.write_version(lake, "training", "grid", 3, table.slice(0, 10), state="running")  # in progress
    rng = np.random.default_rng(5)
    lakegen.write_version(lake, "inference", "edge", 1, lakegen.random_inference(rng, 200))
    lakegen.write_version(lake, "asic", "designs", 1, lakegen.random_asic(rng, 200))
    return lake


@pytest.fixture(scope="module")
def grid() -> pa.Table:
    return lakegen.training_grid(GRID, 0, GRID.size)


def _np(t: pa.Table, col: str) -> np.ndarray:
    return np.asarray(t[col].to_numpy(zero_copy_only=False))


def _feasible(t: pa.Table) -> np.ndarray:
    reason = np.array([r or "" for r in t["infeasible_reason"].to_pylist()])
    return _np(t, "fits") & (reason == "")


# ---------------------------------------------------------------------------------------------
# the lake
# ---------------------------------------------------------------------------------------------
def test_lake_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHIPSWEEP_LAKE", raising=False)
    monkeypatch.delenv("CHIPSWEEP_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert lake_root() == str(tmp_path / ".chipsweep" / "lake")
    monkeypatch.setenv("CHIPSWEEP_HOME", str(tmp_path / "home"))
    assert lake_root() == str(tmp_path / "home" / "lake")
    monkeypatch.setenv("CHIPSWEEP_LAKE", "s3://bucket/results/")
    assert lake_root() == "s3://bucket/results"
    monkeypatch.setenv("CHIPSWEEP_LAKE", "rel/lake")
    assert lake_root() == str(tmp_path / "rel" / "lake")


def test_layout_paths_are_the_documented_ones() -> None:
    assert fact_file("/l", "training", "gpt3", 2, 7) == "/l/kind=training/sweep=gpt3/version=2/part-00007.parquet"
    assert dim_file("s3://b/l", "models", "gpt3", 2) == "s3://b/l/dims/models/sweep=gpt3/version=2/part-0.parquet"
    with pytest.raises(LakeError, match="kind 'train' is not one of training, inference, asic"):
        fact_file("/l", "train", "gpt3", 1, 0)
    with pytest.raises(LakeError, match="sweep '../x'"):
        dim_file("/l", "chips", "../x", 1)


def test_dimension_writer_casts_to_the_schema(tmp_path: Path) -> None:
    row = dim_sweeps_row("training", "{}", '{"nvidia_h100_sxm": "ab12"}', 1000, "done")
    path = Lake(str(tmp_path)).write_dim("sweeps", "s", 1, row)
    assert pq.read_table(path).schema == DIM_SWEEPS
    assert not list(tmp_path.rglob(".*.tmp"))
    with pytest.raises(LakeError, match="lacks column"):
        Lake(str(tmp_path)).write_dim("chips", "s", 1, pa.table({"chip_id": [0]}))
    with pytest.raises(ValueError, match="kind 'x' is not one of"):
        dim_sweeps_row("x", "{}", "{}", 0, "done")


def test_views_expose_facts_with_hive_columns_and_latest_versions(lake: str, grid: pa.Table) -> None:
    t = run_sql("SELECT sweep, version, count(*) AS n FROM training GROUP BY ALL ORDER BY ALL", lake=lake)
    assert t.to_pylist() == [{"sweep": "grid", "version": v, "n": n} for v, n in ((1, grid.num_rows),
                                                                                  (2, grid.num_rows), (3, 10))]
    # version 3 is still running: the latest finished version is 2
    latest = run_sql("SELECT DISTINCT sweep, version FROM latest_training", lake=lake)
    assert latest.to_pylist() == [{"sweep": "grid", "version": 2}]
    cols = run_sql("SELECT * FROM latest_training LIMIT 1", lake=lake).column_names
    assert cols == arrow_schema("training").names + ["kind", "sweep", "version"]
    sweeps = {r["sweep"]: r for r in run_sql("SELECT * FROM sweeps", lake=lake).to_pylist()}
    assert sweeps["grid"]["latest_version"] == 2 and sweeps["grid"]["newest_state"] == "running"
    assert sweeps["edge"]["kind"] == "inference" and sweeps["designs"]["kind"] == "asic"
    versions = run_sql("SELECT version, state, parts, latest FROM versions WHERE sweep = 'grid' ORDER BY 1", lake=lake)
    assert versions.to_pylist() == [{"version": 1, "state": "done", "parts": 2, "latest": False},
                                    {"version": 2, "state": "done", "parts": 3, "latest": True},
                                    {"version": 3, "state": "running", "parts": 1, "latest": False}]
    assert run_sql("SELECT count(*) AS n FROM chips WHERE sweep = 'grid'", lake=lake)["n"][0].as_py() == 3 * 10
    assert run_sql("SELECT training_layout(64, 8, 4, 2, 1, 2, 'full', 1) AS l", lake=lake)["l"][0].as_py() == \
        "64 chips, tp8 pp4 dp2 mb1 v2 full recompute zero1"
    # a layout whose activations wait in host memory says so (the search offloads where nothing else fits)
    assert run_sql("SELECT training_layout(64, 1, 1, 64, 2, 1, 'full', 3, offload_layers := 79) AS l",
                   lake=lake)["l"][0].as_py() == "64 chips, tp1 pp1 dp64 mb2 full recompute zero3 offload79"
    # expert and context parallelism are part of the layout where they split the work (an MoE run's ep8 was
    # printed as plain tp8 pp1, so two frontier rows read as the same layout)
    assert run_sql("SELECT training_layout(4096, 8, 1, 512, 4, 1, 'none', 2, ep := 8, cp := 2) AS l",
                   lake=lake)["l"][0].as_py() == "4096 chips, tp8 pp1 ep8 cp2 dp512 mb4 zero2"
    assert run_sql("SELECT training_layout(64, 8, 1, 8, 1, 1, 'none', 0, ep := 1, cp := NULL) AS l",
                   lake=lake)["l"][0].as_py() == "64 chips, tp8 pp1 dp8 mb1"


def test_an_empty_or_missing_lake_has_empty_typed_views(tmp_path: Path) -> None:
    for name in ("training", "latest_inference", "asic", "chips", "models", "versions", "sweeps"):
        t = run_sql(f"SELECT * FROM {name}", lake=str(tmp_path / "nothing"))
        assert t.num_rows == 0
    t = run_sql("SELECT * FROM latest_training", lake=str(tmp_path / "nothing"))
    assert t.schema.field("cost_usd").type == pa.float32() and t.schema.field("version").type == pa.int64()
    with pytest.raises(QueryError, match="not in the lake; allowed: \\(the lake is empty\\)"):
        run_saved("pareto_training", {"model": "llama2_70b"}, lake=str(tmp_path / "nothing"))


def test_unfinished_files_are_not_read(lake: str, tmp_path: Path) -> None:
    own = str(tmp_path / "lake")
    lakegen.write_version(own, "training", "s", 1, lakegen.random_training(np.random.default_rng(1), 20))
    partial = Path(fact_file(own, "training", "s", 1, 1))
    partial = partial.with_name(temporary_name(partial.name))  # a commit in progress
    partial.write_bytes(b"PAR1 not yet")
    assert scan(own).facts == {("training", "s", 1): 1}
    assert run_sql("SELECT count(*) AS n FROM training", lake=own)["n"][0].as_py() == 20


def test_uri_roots_are_kept_as_uris() -> None:
    assert normalise_root("s3://bucket/lake/") == "s3://bucket/lake"
    assert normalise_root("file:///tmp/lake") == "/tmp/lake"
    assert is_uri("gs://b/x") and not is_uri("/tmp/x")


# ---------------------------------------------------------------------------------------------
# saved queries
# ---------------------------------------------------------------------------------------------
def test_every_saved_query_says_what_it_answers() -> None:
    queries = saved_queries()
    for name in ("pareto_training", "pareto_edge", "cheapest_within_deadline", "frontier_diff", "best_layout",
                 "chip_leaderboard"):
        assert name in queries and len(queries[name].answers) > 40
    listed = {q["name"]: q for q in list_saved()}
    params = {p["name"]: p for p in listed["pareto_training"]["params"]}  # type: ignore[union-attr]
    assert not params["model"]["required"] and params["objectives"]["default"] == "time_to_train_days,cost_usd"
    days = {p["name"]: p for p in listed["cheapest_within_deadline"]["params"]}["days"]  # type: ignore[union-attr]
    assert days["required"] and days["type"] == "positive"
    assert "energy_mwh" in params["objectives"]["allowed"]  # type: ignore[operator]


def _names(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    models = np.array([m[0] for m in lakegen.MODELS])[_np(t, "model_id")]
    chips = np.array([c[0] for c in lakegen.CHIPS])[_np(t, "chip_id")]
    return models, chips


def test_cheapest_within_deadline_is_the_cheapest_per_chip(lake: str, grid: pa.Table) -> None:
    got = run_saved("cheapest_within_deadline", {"model": "llama2_70b", "days": 60}, lake=lake)
    models, chips = _names(grid)
    ok = _feasible(grid) & (models == "llama2_70b") & (_np(grid, "time_to_train_days") <= 60)
    cost = _np(grid, "cost_usd")
    want = {c: float(cost[ok & (chips == c)].min()) for c in set(chips[ok])}
    assert {r["chip"]: r["cost_usd"] for r in got.to_pylist()} == want
    assert all(r["time_to_train_days"] <= 60 for r in got.to_pylist())
    assert got["cost_usd"].to_pylist() == sorted(got["cost_usd"].to_pylist())


def test_best_layout_is_the_fastest_per_chip_at_that_size(lake: str, grid: pa.Table) -> None:
    models, chips = _names(grid)
    ok = _feasible(grid) & (models == "llama2_7b") & (_np(grid, "n_chips") == 64)
    for objective, sense in (("time_to_train_days", 1), ("tokens_per_s", -1)):
        got = run_saved("best_layout", {"model": "llama2_7b", "n_chips": "64", "objective": objective}, lake=lake)
        v = _np(grid, objective) * sense
        want = {c: float(v[ok & (chips == c)].min()) * sense for c in set(chips[ok])}
        assert {r["chip"]: r[objective] for r in got.to_pylist()} == pytest.approx(want)
        assert all(r["n_chips"] == 64 for r in got.to_pylist())


def test_chip_leaderboard_has_the_best_of_each_objective(lake: str, grid: pa.Table) -> None:
    got = run_saved("chip_leaderboard", {}, lake=lake)
    models, chips = _names(grid)
    ok = _feasible(grid)
    for r in got.to_pylist():
        rows = ok & (models == r["model"]) & (chips == r["chip"])
        assert r["best_time_to_train_days"] == pytest.approx(_np(grid, "time_to_train_days")[rows].min())
        assert r["best_cost_usd"] == pytest.approx(_np(grid, "cost_usd")[rows].min())
        assert r["best_energy_mwh"] == pytest.approx(_np(grid, "energy_mwh")[rows].min())
        assert r["feasible_configurations"] == rows.sum()
        assert r["fastest_layout"].endswith(("zero1", "mb1", "mb2", "recompute"))
    assert {(r["model"], r["chip"]) for r in got.to_pylist()} == set(zip(models[ok], chips[ok], strict=True))
    one = run_saved("chip_leaderboard", {"model": "llama2_7b"}, lake=lake)
    assert set(one["model"].to_pylist()) == {"llama2_7b"}


def test_frontier_diff_of_identical_versions_is_empty(lake: str) -> None:
    assert run_saved("frontier_diff", {"sweep": "grid", "from_version": 1, "to_version": 2}, lake=lake).num_rows == 0


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"model": "gpt9"}, "model", "'gpt9' is not in the lake; allowed: gpt3_13b, gpt3_175b, llama2_70b"),
    ({"model": "llama2_7b", "colour": "red"}, "colour", "'colour' is unknown; allowed: model, sweep, version, cost_basis, chips, precision, calibration, max_days, max_cost_usd, objectives"),
    ({"model": "llama2_7b", "objectives": "cost_usd"}, "objectives", "names 1 objective(s); allowed: 2 or 3"),
    ({"model": "llama2_7b", "objectives": "a,b,c,d"}, "objectives", "'a' is not an objective here; allowed: "),
    ({"model": "llama2_7b", "objectives": "cost_usd:up,mfu"}, "objectives", "allowed: min, max"),
    ({"model": "llama2_7b", "sweep": "nope"}, "sweep", "'nope' is not in the lake; allowed: designs, edge, grid"),
])
def test_bad_parameters_name_the_field_value_and_allowed(lake: str, params: dict, field: str, words: str) -> None:
    with pytest.raises(QueryError) as err:
        run_saved("pareto_training", params, lake=lake)
    assert err.value.field == field and words in str(err.value)


def test_chips_and_precision_are_checked_against_the_lake_and_the_vocabulary(lake: str, grid: pa.Table) -> None:
    """`chips=nvidia_h100_sxm, amd_mi300x` (a space after the comma) silently dropped the second chip, and a mistyped id
    or precision answered 0 rows with exit 0."""
    from tests.lakegen import chips_dim

    ids = chips_dim()["chip"].to_pylist()
    a, b = ids[0], ids[1]
    spaced = run_saved("pareto_training", {"model": "llama2_70b", "chips": f"{a}, {b}"}, lake=lake, frontier=False)
    tight = run_saved("pareto_training", {"model": "llama2_70b", "chips": f"{a},{b}"}, lake=lake, frontier=False)
    assert sorted(spaced["idx"].to_pylist()) == sorted(tight["idx"].to_pylist())
    assert set(spaced["chip"].to_pylist()) == {a, b}
    with pytest.raises(QueryError) as err:
        run_saved("pareto_training", {"model": "llama2_70b", "chips": f"{a},{a[:-2]}"}, lake=lake)
    assert err.value.field == "chips" and f"'{a[:-2]}'" in str(err.value) and f"did you mean {a}" in str(err.value)
    with pytest.raises(QueryError, match="'bf17' is not allowed; allowed: fp32, fp16, bf16, fp8, mxfp8, nvfp4"):
        run_saved("pareto_training", {"model": "llama2_70b", "precision": "bf17"}, lake=lake)


def test_an_owned_cost_without_power_asks_for_the_power_not_a_price(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A TPU v5p given a purchase price but no TDP has its capex, and no owned cost (the electricity needs its power):
    the left-off note and the row's notes asked for a purchase price it already had."""
    from chipsweep.queries.runner import unplaced_chips
    from chipsweep.schemas.catalog import load_catalog
    from tests.conftest import evaluated_lake

    overlay = tmp_path / "o.yaml"
    overlay.write_text("chips:\n  - id: google_tpu_v5p\n    purchase_usd: 20000\n")
    spec = {"name": "tpu", "kind": "training", "store": "all", "axes": {
        "model": ["llama2_70b"], "chip": ["google_tpu_v5p", "nvidia_h100_sxm"], "n_chips": [256]},
        "fixed": {"global_batch": 1024, "tokens": 2e12, "cost_basis": "owned"}}
    root = str(tmp_path / "lake")
    evaluated_lake(spec, tmp_path / "lake", load_catalog(str(overlay), use_env=False))
    (item,) = unplaced_chips("pareto_training", {"model": "llama2_70b"}, lake=root)
    assert item["chip"] == "google_tpu_v5p" and item["catalog_lacks"] == ["power"]
    import chipsweep

    (row,) = chipsweep.evaluate([{"model": "llama2_70b", "chip": "google_tpu_v5p", "n_chips": 256, "global_batch": 1024,
                                  "tokens": 2e12, "cost_basis": "owned", "chip.purchase_usd": 20000}],
                                kind="training").to_pylist()
    assert row["capex_usd"] > 0 and row["cost_usd"] != row["cost_usd"]  # NaN: no electricity without a power
    assert "no purchase price" not in row["notes"] and "prices the electricity at the chip's power" in row["notes"]


def test_typed_parameters_are_checked(lake: str) -> None:
    with pytest.raises(QueryError, match="parameter 'days' is required") as err:
        run_saved("cheapest_within_deadline", {"model": "llama2_7b"}, lake=lake)
    assert err.value.field == "days"
    with pytest.raises(QueryError, match="'soon' is not a finite number > 0") as err:
        run_saved("cheapest_within_deadline", {"model": "llama2_7b", "days": "soon"}, lake=lake)
    assert err.value.as_dict()["allowed"] == "a finite number > 0"
    # a deadline, a budget or an SLO of zero or below answered 0 rows, as if nothing could make it
    for query, param in (("cheapest_within_deadline", "days"), ("pareto_training", "max_days"),
                         ("pareto_training", "max_cost_usd")):
        with pytest.raises(QueryError, match=f"parameter {param}: '-5' is not a finite number > 0") as err:
            run_saved(query, {"model": "llama2_7b", param: -5}, lake=lake)
        assert err.value.field == param
    with pytest.raises(QueryError, match="'6.5' is not an integer"):
        run_saved("best_layout", {"model": "llama2_7b", "n_chips": "6.5"}, lake=lake)
    with pytest.raises(QueryError, match="allowed: time_to_train_days, cost_usd"):
        run_saved("best_layout", {"model": "llama2_7b", "n_chips": 8, "objective": "speed"}, lake=lake)
    with pytest.raises(QueryError, match="sweep 'grid' has no version 9; allowed: 1, 2, 3"):
        run_saved("frontier_diff", {"sweep": "grid", "from_version": 1, "to_version": 9}, lake=lake)
    with pytest.raises(QueryError, match="'nope' is not a saved query; allowed: best_layout"):
        run_saved("nope", {}, lake=lake)
    # a frontier of one version of a sweep: the version must be the sweep's, and a version needs its sweep
    with pytest.raises(QueryError, match="sweep 'grid' has no version 7; allowed: 1, 2, 3") as err:
        run_saved("pareto_training", {"model": "llama2_70b", "sweep": "grid", "version": 7}, lake=lake)
    assert err.value.field == "version"
    with pytest.raises(QueryError, match="parameter version: a version of which sweep\\? allowed: with sweep set"):
        run_saved("pareto_training", {"model": "llama2_70b", "version": 1}, lake=lake)


# ---------------------------------------------------------------------------------------------
# output and commands
# ---------------------------------------------------------------------------------------------
def test_output_formats_round_trip(lake: str) -> None:
    t = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake)
    text = to_text(t)
    assert text.splitlines()[0].split()[:3] == ["model", "chip", "chip_name"]
    assert f"({t.num_rows} rows; frontier of min time_to_train_days, min cost_usd" in text
    rows = json.loads(to_json(t))
    assert [r["idx"] for r in rows] == t["idx"].to_pylist()
    assert to_csv(t).splitlines()[0].startswith('"model","chip"')
    assert json.loads(to_json(pa.table({"x": [float("nan"), 1.0]}))) == [{"x": None}, {"x": 1.0}]


def test_query_command_formats(lake: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "pareto_training", "-p", "model=llama2_70b", "--format", "json", "--lake", lake]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["model"] for r in rows} == {"llama2_70b"}
    assert main(["query", "best_layout", "-p", "model=llama2_70b", "-p", "n_chips=64", "--format", "csv",
                 "--lake", lake]) == 0
    csv_out = capsys.readouterr().out
    assert csv_out.startswith('"model","chip"') and csv_out.endswith("\n") and not csv_out.endswith("\n\n")
    assert main(["query", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "pareto_edge  [plot]" in listing and "--param days=<positive>  (required)" in listing


def test_query_command_errors_exit_2_with_the_message(lake: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "pareto_training", "-p", "model", "--lake", lake]) == 2
    assert "is not key=value" in capsys.readouterr().err
    assert main(["query", "pareto_training", "-p", "model=gpt9", "--lake", lake]) == 2
    assert "allowed: gpt3_13b, gpt3_175b, llama2_70b" in capsys.readouterr().err
    assert main(["query", "--lake", lake]) == 2


def test_sql_command(lake: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT sweep, latest_version FROM sweeps ORDER BY 1", "--format", "json",
                 "--lake", lake]) == 0
    assert json.loads(capsys.readouterr().out)[0] == {"sweep": "designs", "latest_version": 1}
    assert main(["sql", "DROP VIEW training", "--lake", lake]) == 2
    assert "DROP statements are not allowed" in capsys.readouterr().err
    assert main(["sql", "SELECT * FROM range(10)", "--max-rows", "3", "--format", "csv", "--lake", lake]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[1:] == ["0", "1", "2"]
    assert "the first 3 rows (--max-rows); the query returns more" in err  # a cut answer says so (it did not)
    assert main(["sql", "SELECT * FROM range(3)", "--max-rows", "3", "--lake", lake]) == 0
    assert "--max-rows" not in capsys.readouterr().err  # exactly that many: nothing was cut
    # a column named twice (a self-join's a.x, b.x) crashed the table printer (IndexError) and lost one in JSON
    assert main(["sql", "SELECT 1 AS x, 2 AS x", "--lake", lake]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["x", "x_2"]
    assert main(["sql", "SELECT 1 AS x, 2 AS x", "--format", "json", "--lake", lake]) == 0
    assert json.loads(capsys.readouterr().out) == [{"x": 1, "x_2": 2}]


def test_connection_is_read_only_even_for_our_own_code(lake: str) -> None:
    with connect(lake) as con, pytest.raises(Exception, match="read-only"):
        con.execute("CREATE TABLE x AS SELECT 1")


def test_pareto_training_compares_costs_on_one_basis_when_asked(tmp_path: Path) -> None:
    """Rental prices and owned-cluster TCO are different things: `cost_basis` keeps them apart, and the
    default frontier is one per basis."""
    own = str(tmp_path / "lake")
    table = lakegen.random_training(np.random.default_rng(3), 400, nan_frac=0.0, infeasible_frac=0.0, n_models=1)
    lakegen.write_version(own, "training", "s", 1, table)
    model = run_sql("SELECT model FROM models WHERE model_id = 0", lake=own)["model"][0].as_py()
    both = run_saved("pareto_training", {"model": model}, lake=own)
    rental = run_saved("pareto_training", {"model": model, "cost_basis": "rental"}, lake=own)
    owned = run_saved("pareto_training", {"model": model, "cost_basis": "owned"}, lake=own)
    assert set(rental["cost_basis"].to_pylist()) == {"rental"} and set(owned["cost_basis"].to_pylist()) == {"owned"}
    assert set(both["cost_basis"].to_pylist()) <= {"rental", "owned"}
    # a row no configuration dominates is not dominated within its own basis either
    for basis, single in (("rental", rental), ("owned", owned)):
        mixed = {i for i, b in zip(both["idx"].to_pylist(), both["cost_basis"].to_pylist(), strict=True) if b == basis}
        assert mixed <= set(single["idx"].to_pylist())
    # the default frontier never mixes bases: each basis is its own frontier (issue 12)
    assert both.num_rows == rental.num_rows + owned.num_rows
    # where no objective is a cost the basis splits nothing: time against energy is one frontier over every row,
    # the same as a brute-force frontier that ignores the basis
    objs = "time_to_train_days,energy_mwh"
    one = run_saved("pareto_training", {"model": model, "objectives": objs}, lake=own)
    rows = run_sql(f"SELECT idx, time_to_train_days AS t, energy_mwh AS e FROM latest_training t JOIN models m USING "
                   f"(sweep, version, model_id) WHERE m.model = '{model}'", lake=own).to_pylist()
    brute = {r["idx"] for r in rows if not any(o["t"] <= r["t"] and o["e"] <= r["e"] and (o["t"], o["e"]) != (r["t"], r["e"])
                                               for o in rows)}
    assert set(one["idx"].to_pylist()) == brute and len(brute) >= 1
    assert len(set(one["cost_basis"].to_pylist())) >= 1


def test_a_deadline_or_a_budget_keeps_the_frontier_inside_it(tmp_path: Path) -> None:
    """`max_days` and `max_cost_usd` filter before the frontier is drawn: the rows left are the frontier of the
    configurations inside the deadline (budget), so every row kept is inside it, the frontier rows that were
    inside it stay, and the slowest (costliest) end is gone."""
    own = str(tmp_path / "lake")
    rng = np.random.default_rng(5)
    table = lakegen.random_training(rng, 600, nan_frac=0.0, infeasible_frac=0.0, n_models=1)
    # time and cost that trade off (a faster cluster costs more), so the frontier has many rows
    days = table["time_to_train_days"].to_numpy(zero_copy_only=False).astype(np.float64)
    cost = 1e8 / np.maximum(days, 1e-3) * rng.uniform(1.0, 1.5, len(days))
    table = table.set_column(table.schema.get_field_index("cost_usd"), "cost_usd",
                             pa.array(cost.astype(np.float32)).cast(table.schema.field("cost_usd").type))
    table = table.set_column(table.schema.get_field_index("cost_basis"), "cost_basis",
                             pa.array(["rental"] * table.num_rows).dictionary_encode()
                             .cast(table.schema.field("cost_basis").type))
    lakegen.write_version(own, "training", "s", 1, table)
    model = run_sql("SELECT model FROM models WHERE model_id = 0", lake=own)["model"][0].as_py()
    full = run_saved("pareto_training", {"model": model, "cost_basis": "rental"}, lake=own).to_pylist()
    assert len(full) >= 3
    for param, col in (("max_days", "time_to_train_days"), ("max_cost_usd", "cost_usd")):
        values = sorted(r[col] for r in full)
        limit = values[len(values) // 2]
        held = run_saved("pareto_training", {"model": model, "cost_basis": "rental", param: limit},
                         lake=own).to_pylist()
        assert held and all(r[col] <= limit for r in held), param
        assert {r["idx"] for r in full if r[col] <= limit} <= {r["idx"] for r in held}, param
        assert values[-1] > limit


def test_nan_in_a_float_column_is_seen_as_nan_whatever_the_parquet_statistics_say(tmp_path: Path) -> None:
    """Arrow leaves NaN out of a float column's Parquet min/max; read without `can_have_nan`, DuckDB takes those
    bounds as proof that no NaN is there and folds isnan() to false (duckdb/duckdb #25521). The lake's views read
    with it: an inference row whose unit cost is NaN (its chip priced only in the chips table) is priced from the
    chip's purchase price by pareto_edge, and `isnan` counts every NaN written."""
    rng = np.random.default_rng(3)
    chips = lakegen.chips_dim(["nvidia_a100_sxm_80gb", "nvidia_h100_sxm", "google_tpu_v4", "amd_mi300x"])
    inf = lakegen.random_inference(rng, 40, distinct=40)
    cost = inf["unit_cost_usd"].to_numpy(zero_copy_only=False).copy()
    cost[np.isinf(cost)] = 1000.0  # finite bounds: the ones that hide NaN from the reader
    cost[::4] = np.nan  # every fourth row: no unit cost in the facts
    inf = inf.set_column(inf.schema.get_field_index("unit_cost_usd"), "unit_cost_usd", pa.array(cost.astype(np.float32)))
    lake = str(tmp_path / "lake")
    lakegen.write_version(lake, "inference", "edge", 1, inf, chips=chips)
    stats = pq.ParquetFile(next((tmp_path / "lake" / "kind=inference").rglob("*.parquet"))).metadata.row_group(0)
    col = [stats.column(i) for i in range(stats.num_columns) if stats.column(i).path_in_schema == "unit_cost_usd"][0]
    assert col.statistics.has_min_max and np.isfinite(col.statistics.max)  # bounds that leave the NaNs out
    n_nan = run_sql("SELECT count(*) AS n FROM latest_inference WHERE isnan(unit_cost_usd)", lake=lake)["n"][0].as_py()
    assert n_nan == int(np.isnan(cost).sum()) >= 10
    table = run_saved("pareto_edge", {"objectives": "decode_tokens_per_s:max,unit_cost_usd"}, lake=lake)
    got = table.to_pylist()
    assert got and all(np.isfinite(r["unit_cost_usd"]) for r in got)
    # the frontier's decode_tokens_per_s is a catalog chip's tokens/s per user, not the lake's static-batch column of
    # that name: the table says so under the rows (user test: the lake row read 11.9 where the frontier ranked 3.6)
    from chipsweep.queries.output import to_text

    assert "note: decode_tokens_per_s is per sequence at the row's operating point" in to_text(table)
    assert "tokens_per_s_per_user" in to_text(table).splitlines()[-1]
    # the rows the frontier is taken from: every one the facts leave unpriced is priced from the chips table
    got = run_saved("pareto_edge", {"objectives": "decode_tokens_per_s:max,unit_cost_usd"}, lake=lake,
                    frontier=False).to_pylist()
    purchase = dict(zip(chips["chip"].to_pylist(), chips["purchase_usd"].to_pylist(), strict=True))
    unpriced = {i for i, c in zip(inf["idx"].to_pylist(), cost, strict=True) if np.isnan(c)}
    priced = [r for r in got if r["idx"] in unpriced and np.isfinite(purchase[r["chip"]])]  # priced from the chips
    assert priced
    for r in priced:
        assert r["unit_cost_usd"] == pytest.approx(purchase[r["chip"]] * r["n_chips"], rel=1e-6)


def test_a_null_unit_cost_is_priced_from_the_chips_table_as_a_nan_one_is(tmp_path: Path) -> None:
    """Lakes written since 2026-12-06 store an output the core could not compute as NULL (`fact_array`), older ones
    as NaN: pareto_edge prices both from the chip's purchase price."""
    rng = np.random.default_rng(3)
    chips = lakegen.chips_dim(["nvidia_a100_sxm_80gb", "nvidia_h100_sxm", "google_tpu_v4", "amd_mi300x"])
    inf = lakegen.random_inference(rng, 40, distinct=40)
    cost = inf["unit_cost_usd"].to_numpy(zero_copy_only=False).copy()
    cost[np.isinf(cost)] = 1000.0
    cost[::4] = np.nan
    inf = inf.set_column(inf.schema.get_field_index("unit_cost_usd"), "unit_cost_usd",
                         pa.array(cost.astype(np.float32), mask=np.isnan(cost)))
    lake = str(tmp_path / "lake")
    lakegen.write_version(lake, "inference", "edge", 1, inf, chips=chips)
    n_null = run_sql("SELECT count(*) AS n FROM latest_inference WHERE unit_cost_usd IS NULL", lake=lake)["n"][0].as_py()
    assert n_null == int(np.isnan(cost).sum()) >= 10
    got = run_saved("pareto_edge", {"objectives": "decode_tokens_per_s:max,unit_cost_usd"}, lake=lake,
                    frontier=False).to_pylist()
    purchase = dict(zip(chips["chip"].to_pylist(), chips["purchase_usd"].to_pylist(), strict=True))
    unpriced = {i for i, c in zip(inf["idx"].to_pylist(), cost, strict=True) if np.isnan(c)}
    priced = [r for r in got if r["idx"] in unpriced and np.isfinite(purchase[r["chip"]])]
    assert priced
    for r in priced:
        assert r["unit_cost_usd"] == pytest.approx(purchase[r["chip"]] * r["n_chips"], rel=1e-6)


def test_outputs_the_model_could_not_compute_are_null_in_the_lake_and_sql_aggregates_skip_them(tmp_path: Path) -> None:
    """A sweep row on a chip the catalog gives no price (the GB200) has no cost: the lake stores NULL there, not NaN,
    so `max`, `avg` and `count` over the cost column read the priced rows only (DuckDB lets a stored NaN win `max`
    and spread through `avg`), and the row keeps its time."""
    from chipsweep.schemas.catalog import load_catalog
    from tests.conftest import evaluated_lake

    spec = {"name": "nul", "kind": "training", "axes": {
        "model": ["llama2_7b"], "chip": ["nvidia_h100_sxm", "nvidia_gb200_per_gpu"], "n_chips": [64, 128]},
        "fixed": {"global_batch": 1024, "tokens": 2e12, "cost_basis": "rental"}}
    table = evaluated_lake(spec, tmp_path / "lake", load_catalog(use_env=False))
    assert table.column("cost_usd").null_count > 0 and not pc.any(pc.is_nan(table.column("cost_usd"))).as_py()
    lake = str(tmp_path / "lake")
    rows = {r["chip"]: r for r in run_sql(
        "SELECT chip, count(*) AS n, count(cost_usd) AS priced, max(cost_usd) AS top, avg(cost_usd) AS mean, "
        "min(time_to_train_days) AS days FROM latest_training JOIN chips USING (chip_id, sweep, version) GROUP BY ALL",
        lake=lake).to_pylist()}
    gb, h = rows["nvidia_gb200_per_gpu"], rows["nvidia_h100_sxm"]
    assert gb["n"] > 0 and gb["priced"] == 0 and gb["top"] is None and gb["mean"] is None and gb["days"] > 0
    assert h["priced"] == h["n"] > 0 and np.isfinite(h["top"]) and np.isfinite(h["mean"])
    (whole,) = run_sql("SELECT max(cost_usd) AS top FROM latest_training", lake=lake).to_pylist()
    assert whole["top"] == pytest.approx(h["top"])


def _owned_and_unpriced(grid: pa.Table) -> pa.Table:
    """The grid with its second chip owned (a TCO basis of its own) and its third without any price (cost NaN)."""
    chip = _np(grid, "chip_id")
    basis = np.where(chip == 1, "owned", "rental")
    cost = np.where(chip == 2, np.nan, _np(grid, "cost_usd")).astype(np.float32)
    t = grid.set_column(grid.schema.get_field_index("cost_basis"), "cost_basis", pa.array(basis.tolist()))
    return t.set_column(t.schema.get_field_index("cost_usd"), "cost_usd", pa.array(cost))


def test_a_result_of_several_frontiers_lists_each_as_one_block_and_says_so(tmp_path: Path, grid: pa.Table) -> None:
    """Rental prices and owned TCO are separate frontiers of one table: their rows come as two blocks (rental
    first), and the footer says how many frontiers there are and how the rows split, not 'frontier of' one."""
    lake = str(tmp_path / "lake")
    lakegen.write_version(lake, "training", "mixed", 1, _owned_and_unpriced(grid))
    t = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake)
    bases = t["cost_basis"].to_pylist()
    n_rental, n_owned = bases.count("rental"), bases.count("owned")
    assert n_rental and n_owned and bases == ["rental"] * n_rental + ["owned"] * n_owned
    assert (f"({t.num_rows} rows; 2 frontiers of min time_to_train_days, min cost_usd, one per cost_basis "
            f"(rows each: rental: {n_rental}; owned: {n_owned})") in to_text(t)


def test_a_frontier_names_the_chips_it_cannot_place_for_want_of_a_price(
        tmp_path: Path, grid: pa.Table, capsys: pytest.CaptureFixture[str]) -> None:
    """A chip whose every row lacks a cost (no price in the catalog) is absent from the time-cost frontier however
    fast it is; the query says which chip, what the catalog lacks and its best time, and the leaderboard keeps its
    time with a blank cost."""
    lake = str(tmp_path / "lake")
    t = _owned_and_unpriced(grid)
    lakegen.write_version(lake, "training", "mixed", 1, t)
    name = run_sql("SELECT chip FROM chips WHERE chip_id = 2", lake=lake)["chip"][0].as_py()
    models = np.array([m[0] for m in lakegen.MODELS])[_np(t, "model_id")]
    rows = t.filter(pa.array(_feasible(t) & (_np(t, "chip_id") == 2) & (models == "llama2_70b")))
    best = float(np.min(_np(rows, "time_to_train_days")))
    got = unplaced_chips("pareto_training", {"model": "llama2_70b"}, lake=lake)
    assert [(u["chip"], u["missing"], u["catalog_lacks"], u["rows"]) for u in got] == \
        [(name, ["cost_usd"], ["price"], rows.num_rows)]
    assert got[0]["best"]["time_to_train_days"] == pytest.approx(best, rel=1e-6)
    assert name not in run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake)["chip"].to_pylist()
    assert main(["query", "pareto_training", "-p", "model=llama2_70b", "--lake", lake]) == 0
    out = capsys.readouterr().out
    assert "left off, every row lacking an objective (the catalog has no price for the chip" in out
    # (the answer holds a rental and an owned frontier: the note names the one the chip is left off)
    assert f"{name} (rental; no price; best time_to_train_days {best:.4g})" in out
    board = {r["chip"]: r for r in run_saved("chip_leaderboard", {"model": "llama2_70b"}, lake=lake).to_pylist()}
    assert board[name]["best_time_to_train_days"] == pytest.approx(best, rel=1e-6)
    assert board[name]["best_cost_usd"] is None and board[name]["cheapest_layout"] is None
    # machine formats stay the rows alone
    assert main(["query", "pareto_training", "-p", "model=llama2_70b", "--format", "csv", "--lake", lake]) == 0
    assert "left off" not in capsys.readouterr().out


def test_the_cheapest_and_best_layout_queries_name_the_chips_they_drop_for_want_of_a_price(
        tmp_path: Path, grid: pa.Table, capsys: pytest.CaptureFixture[str]) -> None:
    """cheapest_within_deadline keeps each chip's cheapest row within the deadline, and best_layout each chip's best
    by the objective: a chip without a price had no cheapest and vanished from both without a word, however fast.
    Both now name it under the table with its fastest time, and the rows stay the priced chips' alone."""
    lake = str(tmp_path / "lake")
    t = _owned_and_unpriced(grid)
    lakegen.write_version(lake, "training", "mixed", 1, t)
    name = run_sql("SELECT chip FROM chips WHERE chip_id = 2", lake=lake)["chip"][0].as_py()
    models = np.array([m[0] for m in lakegen.MODELS])[_np(t, "model_id")]
    mine = _feasible(t) & (_np(t, "chip_id") == 2) & (models == "llama2_70b")
    within = mine & (_np(t, "time_to_train_days") <= 60)
    assert within.any()
    params = {"model": "llama2_70b", "days": 60}
    assert name not in run_saved("cheapest_within_deadline", params, lake=lake)["chip"].to_pylist()
    (u,) = unplaced_chips("cheapest_within_deadline", params, lake=lake)
    assert (u["chip"], u["missing"], u["catalog_lacks"], u["rows"]) == (name, ["cost_usd"], ["price"], int(within.sum()))
    assert u["best"]["time_to_train_days"] == pytest.approx(float(np.min(_np(t, "time_to_train_days")[within])), rel=1e-6)
    assert main(["query", "cheapest_within_deadline", "-p", "model=llama2_70b", "-p", "days=60", "--lake", lake]) == 0
    out = capsys.readouterr().out
    assert f"{name} (no price; best time_to_train_days" in out and "set usd_per_hour or purchase_usd" in out
    # best_layout by cost at one size: the same chip, its fastest layout there; by time it is ranked as any other
    size = int(_np(t, "n_chips")[mine][0])
    at_size = mine & (_np(t, "n_chips") == size)
    by_cost = {"model": "llama2_70b", "n_chips": size, "objective": "cost_usd"}
    (u,) = unplaced_chips("best_layout", by_cost, lake=lake)
    assert (u["chip"], u["catalog_lacks"], u["rows"]) == (name, ["price"], int(at_size.sum()))
    assert u["best"]["time_to_train_days"] == pytest.approx(float(np.min(_np(t, "time_to_train_days")[at_size])), rel=1e-6)
    assert unplaced_chips("best_layout", dict(by_cost, objective="time_to_train_days"), lake=lake) == []
    assert name in run_saved("best_layout", dict(by_cost, objective="time_to_train_days"), lake=lake)["chip"].to_pylist()


def test_the_ranking_queries_list_the_chips_they_leave_off_fastest_first(tmp_path: Path, grid: pa.Table) -> None:
    """cheapest_within_deadline and best_layout sort their rows differently, and their left-off lists followed
    each query's order: the same chips came in different orders. Both now list them fastest first."""
    lake = str(tmp_path / "lake")
    chip = _np(grid, "chip_id")
    cost = np.where(chip != 1, np.nan, _np(grid, "cost_usd")).astype(np.float32)  # one chip priced, the rest not
    lakegen.write_version(lake, "training", "two-unpriced", 1,
                          grid.set_column(grid.schema.get_field_index("cost_usd"), "cost_usd", pa.array(cost)))
    models = np.array([m[0] for m in lakegen.MODELS])[_np(grid, "model_id")]
    mine = _feasible(grid) & (chip != 1) & (models == "llama2_70b")
    names = run_sql("SELECT chip_id, chip FROM chips", lake=lake).to_pydict()
    name = dict(zip(names["chip_id"], names["chip"], strict=True))

    def fastest(size: int) -> dict[str, float]:
        at = mine & (_np(grid, "n_chips") == size)
        return {name[int(c)]: float(np.min(_np(grid, "time_to_train_days")[at & (chip == c)])) for c in np.unique(chip[at])}

    # a size whose chips' names and speeds disagree: best_layout's own order (score, cost, chip) is by name there
    size = next(int(s) for s in np.unique(_np(grid, "n_chips")[mine])
                if sorted(fastest(int(s))) != sorted(fastest(int(s)), key=fastest(int(s)).get))
    left = [unplaced_chips("cheapest_within_deadline", {"model": "llama2_70b", "days": 10_000}, lake=lake),
            unplaced_chips("best_layout", {"model": "llama2_70b", "n_chips": size, "objective": "cost_usd"},
                           lake=lake)]
    for chips in left:
        assert len(chips) >= 2
        times = [c["best"]["time_to_train_days"] for c in chips]
        assert times == sorted(times), chips


def test_a_configuration_in_two_sweeps_is_one_frontier_point(tmp_path: Path, grid: pa.Table) -> None:
    """Two sweeps whose grids overlap put the same configurations in the lake twice; each frontier showed every
    shared point twice (one row per sweep). A point is shown once, from the first sweep by name; two configurations
    of one sweep that tie stay two rows."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    lakegen.write_version(one, "training", "b-first", 1, grid)
    for sweep in ("b-first", "a-overlap"):
        lakegen.write_version(two, "training", sweep, 1, grid)
    alone = run_saved("pareto_training", {"model": "llama2_70b"}, lake=one).to_pylist()
    both = run_saved("pareto_training", {"model": "llama2_70b"}, lake=two).to_pylist()
    assert alone and len(both) == len(alone)
    assert {r["sweep"] for r in both} == {"a-overlap"}
    assert [(r["chip"], r["layout"], r["time_to_train_days"]) for r in both] == \
        [(r["chip"], r["layout"], r["time_to_train_days"]) for r in alone]
    rng = np.random.default_rng(5)
    inf = lakegen.random_inference(rng, 60, distinct=60)
    chips = lakegen.chips_dim(["nvidia_a100_sxm_80gb", "nvidia_h100_sxm", "google_tpu_v4", "amd_mi300x"])
    edge_one, edge_two = str(tmp_path / "edge-one"), str(tmp_path / "edge-two")
    lakegen.write_version(edge_one, "inference", "e", 1, inf, chips=chips)
    for sweep in ("e", "f"):
        lakegen.write_version(edge_two, "inference", sweep, 1, inf, chips=chips)
    alone = run_saved("pareto_edge", {}, lake=edge_one).num_rows
    assert alone and run_saved("pareto_edge", {}, lake=edge_two).num_rows == alone
    alone = run_saved("pareto_serving", {}, lake=edge_one).num_rows
    assert alone and run_saved("pareto_serving", {}, lake=edge_two).num_rows == alone


def test_training_queries_rank_each_workload_on_its_own(tmp_path: Path, grid: pa.Table) -> None:
    """Two sweeps of one model over the same chips, one training 1T tokens and one 0.1T (a tenth of the time and the
    cost): every training query mixed them, so the 0.1T sweep's rows were 'the fastest way' and 'the cheapest way'
    to train, and the frontier ran from one job to the other. Each workload (tokens, seq_len) is now its own frontier
    and ranking, and the rows say which."""
    lake = str(tmp_path / "lake")
    lakegen.write_version(lake, "training", "full", 1, grid)
    tenth = grid
    for col in ("tokens", "time_to_train_days", "cost_usd", "energy_mwh"):
        v = pc.multiply(grid[col], pa.scalar(0.1, grid.schema.field(col).type))
        tenth = tenth.set_column(tenth.schema.get_field_index(col), col, v)
    lakegen.write_version(lake, "training", "short", 1, tenth)
    alone = run_saved("pareto_training", {"model": "llama2_70b", "sweep": "full"}, lake=lake).to_pylist()
    front = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake).to_pylist()
    assert {r["tokens"] for r in front} == {1e12, 1e11}
    assert [r["layout"] for r in front if r["tokens"] == 1e12] == [r["layout"] for r in alone]
    assert len(front) == 2 * len(alone)  # the same points, a tenth of the time and cost: its own frontier
    for name, params in (("cheapest_within_deadline", {"model": "llama2_70b", "days": 10_000}),
                         ("best_layout", {"model": "llama2_70b", "n_chips": 64})):
        rows = run_saved(name, params, lake=lake).to_pylist()
        per = {(r["chip"], r["tokens"]) for r in rows}
        assert len(per) == len(rows) and {t for _, t in per} == {1e12, 1e11}
        full = {r["chip"]: r["time_to_train_days"] for r in rows if r["tokens"] == 1e12}
        short = {r["chip"]: r["time_to_train_days"] for r in rows if r["tokens"] == 1e11}
        assert full.keys() == short.keys() and all(short[c] == pytest.approx(0.1 * full[c], rel=1e-5) for c in full)
    board = run_saved("chip_leaderboard", {"model": "llama2_70b"}, lake=lake).to_pylist()
    assert {(r["chip"], r["tokens"]) for r in board} == {(r["chip"], t) for r in board for t in (1e12, 1e11)}


def test_a_deadline_that_leaves_no_row_says_how_close_the_lake_came(lake: str, grid: pa.Table,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """pareto_training with max_days below every configuration printed '(0 rows ...)' and nothing else: the table
    now says, per limit, the best the limited column reaches without it (the fastest time to train here)."""
    models = np.array([m[0] for m in lakegen.MODELS])[_np(grid, "model_id")]
    mine = _feasible(grid) & (models == "llama2_70b") & np.isfinite(_np(grid, "cost_usd"))
    fastest = float(np.min(_np(grid, "time_to_train_days")[mine]))
    tight = round(fastest / 2, 3)
    assert main(["query", "pareto_training", "-p", "model=llama2_70b", "-p", f"max_days={tight}", "--lake", lake]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("no row meets"))
    assert line.startswith(f"no row meets max_days = {tight}: the best time_to_train_days without it is ")
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(fastest, rel=1e-2)
    # a limit that leaves rows says nothing
    assert main(["query", "pareto_training", "-p", "model=llama2_70b", "-p", f"max_days={fastest * 2}", "--lake",
                 lake]) == 0
    assert "no row meets" not in capsys.readouterr().out
    # a JSON or CSV answer keeps stdout the data ('[]'), the note going to stderr (it said nothing at all)
    assert main(["query", "pareto_training", "-p", "model=llama2_70b", "-p", f"max_days={tight}", "--format", "json",
                 "--lake", lake]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "[]" and line in captured.err


def test_columns_prints_what_each_lake_column_means(capsys) -> None:  # type: ignore[no-untyped-def]
    """`chipsweep columns KIND` prints the fact columns with type, unit and description (schemas/columns.py), so a SQL
    user can tell the static-batch decode_tokens_per_s from the serving point's tokens_per_s_per_user (user test: no
    CLI or SQL command showed them). JSON gives every column once."""
    import json

    from chipsweep.schemas.columns import FACTS
    from chipsweep.service.cli import main as cli

    assert cli(["columns", "inference"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("tokens_per_s_per_user "))
    doc = next(c.doc for c in FACTS["inference"] if c.name == "tokens_per_s_per_user")
    assert doc in line and "float32" in line
    assert cli(["columns", "training", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["column"] for r in rows] == [c.name for c in FACTS["training"]]
    assert all(r["description"] for r in rows)


def test_json_rows_give_a_float32_column_its_own_digits() -> None:
    """The lake stores outputs as float32; JSON (CLI --format json, HTTP POST /sql) gave the widened double,
    3653.449951171875 for 3653.45 (user test). Each value now reads as its shortest float32 text; NaN stays null and
    float64 columns keep every digit."""
    from chipsweep.queries.runner import table_records

    t = pa.table({"a": pa.array([3653.45, np.nan, 1.5e13], type=pa.float32()),
                  "b": pa.array([3653.449951171875, 0.1, 2.0], type=pa.float64())})
    rows = table_records(t)
    assert [r["a"] for r in rows] == [3653.45, None, 1.5e13]
    assert rows[0]["b"] == 3653.449951171875 and rows[1]["b"] == 0.1



def test_ranking_queries_never_set_a_rental_cost_against_an_owned_one(tmp_path: Path) -> None:
    """A training sweep with a cost_basis axis costs each layout twice: at the chips' rental price and at the owned
    cluster's TCO. On rental prices the A100 is the cheaper chip ($5,500 against the H100's $6,000), owned the H100
    ($5,000 against $7,000). Ranked across bases the H100 came first at its owned $5,000 and the A100 second at its
    rental $5,500: no basis says that. Each basis is now ranked on its own (as pareto_training keeps each its own
    frontier), or the one `cost_basis` names."""
    lake = str(tmp_path / "bases")
    t = lakegen.random_training(np.random.default_rng(1), 4, infeasible_frac=0.0, nan_frac=0.0, n_models=1)
    t = lakegen.with_columns(t, idx=[0, 1, 2, 3], chip_id=[1, 1, 0, 0], n_chips=[64] * 4, fits=[True] * 4, infeasible_reason=[""] * 4,
              cost_basis=["rental", "owned", "rental", "owned"], time_to_train_days=[2.0, 2.0, 3.0, 3.0],
              cost_usd=[6000.0, 5000.0, 5500.0, 7000.0])
    lakegen.write_version(lake, "training", "s", 1, t, chips=lakegen.chips_dim(["nvidia_a100_sxm_80gb", "nvidia_h100_sxm"]),
                          models=lakegen.models_dim(["llama2_70b"]))
    a100, h100 = "nvidia_a100_sxm_80gb", "nvidia_h100_sxm"
    by_basis = [("rental", a100, 5500.0), ("rental", h100, 6000.0), ("owned", h100, 5000.0), ("owned", a100, 7000.0)]
    cheapest = run_saved("cheapest_within_deadline", {"model": "llama2_70b", "days": 5}, lake=lake)
    assert list(zip(cheapest["cost_basis"].to_pylist(), cheapest["chip"].to_pylist(), cheapest["cost_usd"].to_pylist(),
                    strict=True)) == by_basis
    best = run_saved("best_layout", {"model": "llama2_70b", "n_chips": 64, "objective": "cost_usd"}, lake=lake)
    assert list(zip(best["cost_basis"].to_pylist(), best["chip"].to_pylist(), best["cost_usd"].to_pylist(),
                    strict=True)) == by_basis
    owned = run_saved("cheapest_within_deadline", {"model": "llama2_70b", "days": 5, "cost_basis": "owned"}, lake=lake)
    assert owned["chip"].to_pylist() == [h100, a100] and set(owned["cost_basis"].to_pylist()) == {"owned"}
    # the fastest layout does not depend on the basis: one row per chip, each basis's cost shown beside it
    fastest = run_saved("best_layout", {"model": "llama2_70b", "n_chips": 64}, lake=lake)
    assert fastest["chip"].to_pylist() == [h100, a100]
    board = run_saved("chip_leaderboard", {"model": "llama2_70b"}, lake=lake)
    rows = {(r["chip"], r["cost_basis"]): r["best_cost_usd"] for r in board.to_pylist()}
    assert rows == {(h100, "rental"): 6000.0, (h100, "owned"): 5000.0, (a100, "rental"): 5500.0, (a100, "owned"): 7000.0}


def test_pareto_serving_compares_costs_on_one_basis_and_throughput_on_every_chip(tmp_path: Path) -> None:
    """Serving rows are costed at the chips' rental price, else at what owning them costs (`cost_basis`). Row 0
    (rented, $2 per million tokens) and row 1 (owned, $1) serve alike: with the cost per million tokens an objective,
    each basis is its own frontier and both stay (across bases the owned row would hide the rented one); without it
    one frontier spans every chip, and the faster row 2 (no price: no basis) dominates both."""
    lake = str(tmp_path / "serving")
    t = lakegen.random_inference(np.random.default_rng(2), 3, infeasible_frac=0.0, nan_frac=0.0, n_models=1)
    t = lakegen.with_columns(t, idx=[0, 1, 2], model_id=[0, 0, 0], chip_id=[1, 3, 0], fits=[True] * 3, infeasible_reason=[""] * 3,
              output_tokens_per_s_per_chip=[100.0, 100.0, 200.0], tokens_per_s_per_user=[10.0, 10.0, 20.0],
              usd_per_million_tokens=[2.0, 1.0, np.nan], cost_basis=["rental", "owned", None])
    lakegen.write_version(lake, "inference", "s", 1, t, chips=lakegen.chips_dim(["nvidia_a100_sxm_80gb", "nvidia_h100_sxm",
                                                                                 "google_tpu_v4", "amd_mi300x"]),
                          models=lakegen.models_dim(["llama2_70b"]))
    costed = "output_tokens_per_s_per_chip:max,tokens_per_s_per_user:max,usd_per_million_tokens"
    got = run_saved("pareto_serving", {"model": "llama2_70b", "objectives": costed}, lake=lake)
    assert sorted(zip(got["idx"].to_pylist(), got["cost_basis"].to_pylist(), strict=True)) == [(0, "rental"), (1, "owned")]
    rented = run_saved("pareto_serving", {"model": "llama2_70b", "objectives": costed, "cost_basis": "rental"}, lake=lake)
    assert rented["idx"].to_pylist() == [0]
    assert run_saved("pareto_serving", {"model": "llama2_70b"}, lake=lake)["idx"].to_pylist() == [2]


def test_an_edge_frontier_never_sets_one_cost_scope_against_another(tmp_path: Path) -> None:
    """A unit cost is the price of different things: an ASIC's manufacturing cost (die and DRAM, no board, no design),
    an accelerator's price (it needs a host computer), a whole system's (a developer kit). The demo's edge frontier set
    a $24 die beside a $3,999 desktop, so no priced device could stay on it. Where unit cost is an objective each scope
    is its own frontier; without one, one frontier over every row; `cost_scope` picks one. A lake written before the
    chips table said what a price buys reads the scope by the chip's class."""
    rng = np.random.default_rng(7)
    chips = lakegen.chips_dim(["nvidia_jetson_agx_orin_64gb", "hailo_10h"])
    scope_at = chips.schema.get_field_index("purchase_scope")
    chips = chips.set_column(scope_at, "purchase_scope", pa.array(["system", "accelerator"]))
    inf = lakegen.random_inference(rng, 2, nan_frac=0.0, infeasible_frac=0.0)
    inf = lakegen.with_columns(inf, model_id=[0, 0], chip_id=[0, 1], n_chips=[1, 1], tokens_per_s_per_user=[20.0, 10.0],
                               energy_per_token_j=[1.0, 0.5], unit_cost_usd=[1999.0, 100.0], fits=[True, True],
                               infeasible_reason=["", ""])
    asic = lakegen.random_asic(rng, 1, nan_frac=0.0, infeasible_frac=0.0)
    asic = lakegen.with_columns(asic, model_id=[0], decode_tokens_per_s=[30.0], energy_per_token_j=[0.1],
                                unit_cost_usd=[20.0], fits=[True], infeasible_reason=[""])
    lake = str(tmp_path / "lake")
    models = lakegen.models_dim(["llama2_7b", "llama2_70b"])
    lakegen.write_version(lake, "inference", "devices", 1, inf, chips=chips, models=models)
    lakegen.write_version(lake, "asic", "designs", 1, asic, models=models)

    def frontier(**params: str) -> dict[str, str]:
        rows = run_saved("pareto_edge", {"model": "llama2_7b", **params}, lake=lake).to_pylist()
        return {r["chip"] if r["source"] == "inference" else "asic": r["cost_scope"] for r in rows}

    # the design beats both devices on speed, energy and cost, yet each device leads its own scope
    assert frontier() == {"asic": "manufacturing", "nvidia_jetson_agx_orin_64gb": "system", "hailo_10h": "accelerator"}
    assert frontier(cost_scope="system") == {"nvidia_jetson_agx_orin_64gb": "system"}
    assert frontier(cost_scope="manufacturing") == {"asic": "manufacturing"}
    # speed against energy: no cost compared, one frontier, which the design holds alone
    assert frontier(objectives="decode_tokens_per_s:max,energy_per_token_j") == {"asic": "manufacturing"}
    with pytest.raises(QueryError, match="cost_scope"):
        run_saved("pareto_edge", {"cost_scope": "card"}, lake=lake)
    # a lake written before 2026-12-07 (its chips table has no purchase_scope: NULL when read): the scope by class,
    # both accelerators (edge_inference), one frontier of the two (the Jetson faster, the Hailo cheaper and frugal)
    old = str(tmp_path / "old")
    lakegen.write_version(old, "inference", "devices", 1, inf, models=models,
                          chips=chips.set_column(scope_at, "purchase_scope", pa.array([None, None], pa.string())))
    rows = run_saved("pareto_edge", {"model": "llama2_7b"}, lake=old).to_pylist()
    assert [(r["chip"], r["cost_scope"]) for r in rows] == [("nvidia_jetson_agx_orin_64gb", "accelerator"),
                                                             ("hailo_10h", "accelerator")]
    # frontier_diff: a catalog that comes to price the Jetson as a system takes it off the accelerators' frontier,
    # where the Hailo dominated it, onto the systems', where it stands alone: the diff says it entered, as a system
    slower = lakegen.with_columns(inf, tokens_per_s_per_user=[5.0, 10.0])  # the Jetson dominated by the Hailo
    accel = chips.set_column(scope_at, "purchase_scope", pa.array(["accelerator", "accelerator"]))
    lakegen.write_version(lake, "inference", "moved", 1, slower, chips=accel, models=models)
    lakegen.write_version(lake, "inference", "moved", 2, slower, chips=chips, models=models)
    diff = run_saved("frontier_diff", {"sweep": "moved", "from_version": 1, "to_version": 2}, lake=lake).to_pylist()
    assert [(r["change"], r["chip"], r["cost_scope"]) for r in diff] == [("entered", "nvidia_jetson_agx_orin_64gb", "system")]


def test_a_saved_querys_choice_of_precision_or_engine_is_every_value_a_row_can_carry() -> None:
    """A query parameter's choices are written in its SQL header; the values rows carry live in the schemas and the
    serving core. Each precision a training row takes (int8, MaxText's AQT training, was once missing: a user could
    sweep it and not filter the frontier by it) and each engine a serving row takes is a choice, and nothing else."""
    from typing import get_args

    from chipsweep.queries.saved import saved_queries
    from chipsweep.schemas.vocab import Precision
    from chipsweep.workers.inference_rows import ENGINES

    expected = {"precision": list(get_args(Precision)), "engine": list(ENGINES)}
    seen = []
    for name, query in saved_queries().items():
        for p in query.params:
            if p.name in expected and p.choices is not None:
                assert sorted(p.choices) == sorted(expected[p.name]), (name, p.name, p.choices)
                seen.append((name, p.name))
    assert ("pareto_training", "precision") in seen and ("pareto_serving", "engine") in seen, seen


def test_a_frontier_of_an_older_version_reads_that_versions_rows(lake: str) -> None:
    """pareto_training's `version` (with `sweep`) draws the frontier of that version; the default stays the sweep's
    latest finished version (grid@2 here: version 3 is still running and holds only 10 rows)."""
    latest = run_saved("pareto_training", {"model": "llama2_70b", "sweep": "grid"}, lake=lake, frontier=False)
    v2 = run_saved("pareto_training", {"model": "llama2_70b", "sweep": "grid", "version": 2}, lake=lake, frontier=False)
    v3 = run_saved("pareto_training", {"model": "llama2_70b", "sweep": "grid", "version": 3}, lake=lake, frontier=False)

    def key(t: pa.Table) -> list[tuple[object, ...]]:
        return sorted(zip(t["layout"].to_pylist(), t["chip"].to_pylist(), t["time_to_train_days"].to_pylist(), strict=True))

    assert set(latest["version"].to_pylist()) == {2} and set(v2["version"].to_pylist()) == {2} and key(latest) == key(v2)
    assert set(v3["version"].to_pylist()) <= {3} and v3.num_rows < v2.num_rows


def test_a_chip_left_off_one_cost_basis_frontier_is_named_with_that_basis(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep over cost_basis rental and owned: the B200 stands on the rental frontier and has no purchase price
    for the owned one. The footer listed 'nvidia_b200_hgx (no price; ...)' under a table whose first row is a rental
    B200; it names the basis the chip is left off now."""
    from tests.conftest import evaluated_lake

    spec = {"name": "bases", "kind": "training", "store": "all", "axes": {
        "model": ["llama3_8b"], "chip": ["nvidia_h100_sxm", "nvidia_b200_hgx"], "n_chips": [64, 256],
        "cost_basis": ["rental", "owned"]}, "fixed": {"global_batch": 512, "tokens": 1e11}}
    lake = str(tmp_path / "lake")
    evaluated_lake(spec, tmp_path / "lake")
    front = run_saved("pareto_training", {"model": "llama3_8b"}, lake=lake).to_pylist()
    assert any(r["chip"] == "nvidia_b200_hgx" and r["cost_basis"] == "rental" for r in front)
    assert not any(r["chip"] == "nvidia_b200_hgx" and r["cost_basis"] == "owned" for r in front)
    assert main(["query", "pareto_training", "-p", "model=llama3_8b", "--lake", lake]) == 0
    note = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("left off"))
    assert "nvidia_b200_hgx (owned; no price;" in note
