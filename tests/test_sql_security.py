"""`chipsweep sql` and POST /sql run one read-only statement over the lake, and nothing else.

Each refusal is checked for its message (what was refused, what is allowed) and for its effect: no
file appears, no table is created, nothing outside the lake is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import lakegen
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chipsweep.lake import connect
from chipsweep.queries.errors import QueryError
from chipsweep.queries.runner import run_saved, run_sql


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("sec")
    lake = str(root / "lake")
    rng = np.random.default_rng(3)
    lakegen.write_version(lake, "training", "s", 1, lakegen.random_training(rng, 50))
    # a secret beside the lake, and a Parquet file just outside it whose name shares the lake's prefix
    (root / "secret.csv").write_text("user,password\nroot,hunter2\n")
    pq.write_table(pa.table({"x": [1]}), root / "lake2.parquet")
    os.makedirs(root / "lake-other", exist_ok=True)
    pq.write_table(pa.table({"x": [1]}), root / "lake-other" / "part-0.parquet")
    return lake


def refused(lake: str, sql: str, *words: str) -> QueryError:
    with pytest.raises(QueryError) as err:
        run_sql(sql, lake=lake)
    text = str(err.value).lower()
    for w in words:
        assert w.lower() in text, (sql, str(err.value))
    assert err.value.field == "sql"
    return err.value


def test_a_select_over_the_views_works(lake: str) -> None:
    t = run_sql("SELECT count(*) AS n FROM training WHERE sweep = 's'", lake=lake)
    assert t.to_pylist() == [{"n": 50}]
    t = run_sql("WITH x AS (SELECT * FROM latest_training) SELECT count(*) AS n FROM x;", lake=lake)
    assert t["n"].to_pylist() == [50]
    # reading the lake's own files by path is allowed
    files = run_sql("SELECT count(*) AS n FROM read_parquet('" + lake + "/kind=training/*/*/*.parquet')", lake=lake)
    assert files["n"].to_pylist() == [50]


@pytest.mark.parametrize("sql", [
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TEMP TABLE t AS SELECT 1",
    "INSERT INTO training SELECT * FROM training",
    "UPDATE training SET cost_usd = 0",
    "DELETE FROM training",
    "DROP VIEW training",
    "ALTER VIEW training RENAME TO t2",
    "CREATE MACRO m(x) AS x + 1",
])
def test_writes_are_refused(lake: str, sql: str) -> None:
    err = refused(lake, sql, "not allowed", "allowed: one select or with statement")
    assert err.allowed == ["SELECT", "WITH"]
    assert run_sql("SELECT count(*) AS n FROM training", lake=lake)["n"].to_pylist() == [50]


def test_copy_is_refused_and_writes_nothing(lake: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    refused(lake, f"COPY (SELECT * FROM training) TO '{out}'", "copy is not allowed")
    refused(lake, f"COPY training TO '{out}' (FORMAT parquet)", "copy is not allowed")
    refused(lake, f"EXPORT DATABASE '{tmp_path / 'dump'}'", "not allowed")
    assert not out.exists() and not (tmp_path / "dump").exists()


def test_attach_install_load_are_refused(lake: str, tmp_path: Path) -> None:
    refused(lake, f"ATTACH '{tmp_path / 'x.duckdb'}' AS x", "attach is not allowed")
    refused(lake, "DETACH lake", "not allowed")
    refused(lake, "INSTALL httpfs", "install / load is not allowed")
    refused(lake, "LOAD httpfs", "install / load is not allowed")
    refused(lake, "FORCE INSTALL sqlite", "install / load is not allowed")
    assert not (tmp_path / "x.duckdb").exists()


def test_settings_cannot_be_changed(lake: str) -> None:
    refused(lake, "SET enable_external_access = true", "set is not allowed")
    refused(lake, "PRAGMA enable_profiling", "pragma is not allowed")
    refused(lake, "RESET allowed_directories", "not allowed")
    refused(lake, "CALL pragma_version()", "not allowed")


@pytest.mark.parametrize("reader", [
    "read_csv('{root}/secret.csv')",
    "read_csv_auto('{root}/secret.csv')",
    "read_text('{root}/secret.csv')",
    "read_text('/etc/passwd')",
    "read_parquet('{root}/lake2.parquet')",
    "read_parquet('{root}/lake-other/part-0.parquet')",
    "read_csv('{lake}/../secret.csv')",
    "read_csv('{lake}/kind=training/../../secret.csv')",
    "glob('/*')",
    "glob('{root}/*')",
    "read_json('/proc/self/environ')",
])
def test_reads_outside_the_lake_are_refused(lake: str, reader: str) -> None:
    root = str(Path(lake).parent)
    err = refused(lake, "SELECT * FROM " + reader.format(root=root, lake=lake), "outside the lake is not allowed")
    assert "hunter2" not in str(err)


def test_extensions_are_not_autoloaded(lake: str, tmp_path: Path) -> None:
    with pytest.raises(QueryError):
        run_sql(f"SELECT * FROM sqlite_scan('{tmp_path / 'x.db'}', 't')", lake=lake)
    with pytest.raises(QueryError):
        run_sql("SELECT * FROM read_csv('https://example.com/x.csv')", lake=lake)


def test_statements_hidden_in_functions_are_refused(lake: str, tmp_path: Path) -> None:
    out = tmp_path / "q.csv"
    with pytest.raises(QueryError):
        run_sql(f"SELECT * FROM query('COPY (SELECT 1) TO ''{out}''')", lake=lake)
    with pytest.raises(QueryError):
        run_sql("SELECT * FROM query('CREATE TABLE t AS SELECT 1')", lake=lake)
    assert not out.exists()


@pytest.mark.parametrize("sql", [
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP VIEW training",
    "SELECT 1;\nCOPY (SELECT 1) TO '/tmp/x.csv'",
])
def test_multiple_statements_are_refused(lake: str, sql: str) -> None:
    err = refused(lake, sql, "statements given", "exactly one")
    assert err.allowed == "one statement"


def test_empty_and_malformed_sql_are_refused_clearly(lake: str) -> None:
    refused(lake, "   ", "empty")
    refused(lake, "SELEC 1", "syntax error")
    refused(lake, "SELECT * FROM no_such_view", "no_such_view")


def test_saved_queries_run_with_the_same_rules(lake: str) -> None:
    with pytest.raises(QueryError) as err:
        run_saved("pareto_training", {"model": "llama2_70b'; COPY training TO '/tmp/x.csv'; --"}, lake=lake)
    assert err.value.field == "model"
    with connect(lake) as con:
        with pytest.raises(Exception, match="read-only|not allowed|Permission|locked"):
            con.execute("CREATE TABLE t AS SELECT 1")
        with pytest.raises(Exception, match="locked"):
            con.execute("SET enable_external_access = true")


def test_a_slow_query_is_stopped_by_its_time_limit(lake: str) -> None:
    with pytest.raises(QueryError) as err:
        run_sql("SELECT count(*) FROM range(100000000000) a", lake=lake, timeout_s=0.3)
    assert err.value.field == "timeout_s"
