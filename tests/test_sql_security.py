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
    assert err.allowed == ["SELECT", "WITH", "EXPLAIN"]
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
    refused(lake, "INSTALL httpfs", "install is not allowed", "no extension can be installed")
    refused(lake, "LOAD httpfs", "load is not allowed", "no extension can be installed or loaded")
    refused(lake, "FORCE INSTALL sqlite", "force install is not allowed")
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
    # each says what is allowed (a contract audit found "allowed": null on both)
    for text in ("   ", "SELEC 1"):
        with pytest.raises(QueryError) as err:
            run_sql(text, lake=lake)
        assert err.value.as_dict()["allowed"] and "SELECT" in str(err.value.as_dict()["allowed"])
    refused(lake, "SELECT * FROM no_such_view", "no_such_view")
    # what would do: the views there are (was "allowed": null)
    with pytest.raises(QueryError) as err:
        run_sql("SELECT nope FROM latest_training", lake=lake)
    assert err.value.field == "sql" and err.value.as_dict()["value"] == "SELECT nope FROM latest_training"
    assert "latest_training" in str(err.value.as_dict()["allowed"]) and "chips" in str(err.value.as_dict()["allowed"])


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


# ------------------------------------------------------------------------------------------------
# every refusal names the right statement; read-only statements that are not SELECTs run
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "named"), [
    ("IMPORT DATABASE '/tmp/x'", "import database is not allowed"),
    ("EXPORT DATABASE '/tmp/x'", "export database is not allowed"),
    ("CHECKPOINT", "checkpoint is not allowed"),
    ("FORCE CHECKPOINT", "force checkpoint is not allowed"),
    ("VACUUM", "vacuum is not allowed"),
    ("ANALYZE", "analyze is not allowed"),
    ("UPDATE EXTENSIONS", "update extensions is not allowed"),
    ("CALL pragma_version()", "call is not allowed"),
    ("USE memory", "use is not allowed"),
    ("SET VARIABLE x = 1", "set is not allowed"),
    ("PREPARE p AS SELECT 1", "prepare is not allowed"),
    ("BEGIN TRANSACTION", "begin is not allowed"),
    ("/* a comment */ CHECKPOINT", "checkpoint is not allowed"),
])
def test_a_refusal_names_the_statement_that_was_refused(lake: str, sql: str, named: str) -> None:
    refused(lake, sql, named, "allowed: one select or with statement")


def test_explain_of_a_select_runs_and_explain_of_a_write_is_refused_as_that_write(lake: str) -> None:
    plan = run_sql("EXPLAIN SELECT count(*) FROM training", lake=lake)
    assert plan.num_rows >= 1 and "explain_value" in plan.column_names
    assert run_sql("EXPLAIN ANALYZE SELECT count(*) FROM training", lake=lake).num_rows >= 1
    refused(lake, "EXPLAIN COPY (SELECT 1) TO '/tmp/explain.csv'", "copy is not allowed")
    refused(lake, "EXPLAIN ANALYZE COPY training TO '/tmp/explain.csv'", "copy is not allowed")
    assert not Path("/tmp/explain.csv").exists()


def test_a_read_only_pivot_runs_with_or_without_its_values(lake: str) -> None:
    t = run_sql("PIVOT training ON recompute USING count(*) GROUP BY sweep", lake=lake)
    assert t.num_rows == 1 and sum(t.column(c)[0].as_py() for c in t.column_names if c != "sweep") == 50
    t = run_sql("PIVOT training ON zero_stage IN (0, 1, 2, 3) USING count(*) GROUP BY sweep", lake=lake)
    assert t.num_rows == 1
    assert run_sql("SUMMARIZE training", lake=lake).num_rows > 10
    assert run_sql("DESCRIBE training", lake=lake).num_rows > 10


@pytest.mark.parametrize("sql", [
    "SELECT current_setting('allowed_directories')",
    "SELECT current_setting('temp_directory')",
    'SELECT "current_setting"(\'allowed_directories\')',
    "SELECT CURRENT_SETTING('allowed_directories')",
    "SELECT * FROM duckdb_settings()",
    "SELECT value FROM duckdb_settings() WHERE name = 'allowed_directories'",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM duckdb_temporary_files()",
    "SELECT getenv('HOME')",
    "WITH s AS (SELECT * FROM duckdb_settings()) SELECT * FROM s",
    "SELECT * FROM training WHERE sweep IN (SELECT current_setting('allowed_directories'))",
    # the views' own SQL names the lake's files: every catalog table that prints it
    "SELECT sql FROM duckdb_views() WHERE view_name = 'chips'",
    "SELECT sql FROM sqlite_master",
    "SELECT * FROM sqlite_schema",
    "SELECT * FROM information_schema.views",
    'SELECT * FROM "information_schema" . "views"',
    "SELECT definition FROM pg_catalog.pg_views",
    "SELECT view_definition FROM information_schema.views",
])
def test_functions_that_reveal_server_paths_are_refused_by_name(lake: str, sql: str) -> None:
    err = refused(lake, sql, "is not allowed", "reveals server paths or settings")
    assert str(Path(lake).parent) not in str(err) and "chipsweep-duckdb" not in str(err)


def test_the_catalog_tables_that_hold_no_paths_stay_open(lake: str) -> None:
    cols = run_sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'chips'", lake=lake)
    assert "chip" in cols["column_name"].to_pylist()
    assert run_sql("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'training'", lake=lake)["n"].to_pylist() == [1]


def test_a_stray_partition_never_breaks_a_query(lake: str, tmp_path: Path) -> None:
    import shutil

    root = Path(lake)
    part = next(root.glob("kind=training/sweep=s/version=1/part-*.parquet"))
    for stray in ("kind=training/sweep=nl\n/version=1", "kind=training/sweep=s/version=abc",
                  "kind=training/sweep=../version=1", "dims/chips/sweep=bad name/version=1"):
        (root / stray).mkdir(parents=True, exist_ok=True)
        shutil.copy(part, root / stray / ("part-0.parquet" if stray.startswith("dims") else part.name))
    try:
        assert run_sql("SELECT count(*) AS n FROM training", lake=lake)["n"].to_pylist() == [50]
        assert run_sql("SELECT count(*) AS n FROM latest_training", lake=lake)["n"].to_pylist() == [50]
        assert run_sql("SELECT DISTINCT sweep FROM versions", lake=lake)["sweep"].to_pylist() == ["s"]
    finally:
        for stray in ("kind=training/sweep=nl\n", "kind=training/sweep=s/version=abc", "kind=training/sweep=..",
                      "dims/chips/sweep=bad name"):
            shutil.rmtree(root / stray, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# query limits: memory, temp space, rows, concurrency, time; temp directories never left behind
# ------------------------------------------------------------------------------------------------
CROSS_SORT = "SELECT a.idx, b.idx FROM range(3000000) a(idx), range(3000000) b(idx) ORDER BY a.idx * 7 % 13, b.idx"


def _my_temp_dirs() -> list[str]:
    import tempfile

    return sorted(str(p) for p in Path(tempfile.gettempdir()).glob(f"chipsweep-duckdb-{os.getpid()}-*"))


def test_a_query_over_its_memory_and_temp_limits_is_stopped_naming_the_limit(lake: str) -> None:
    from chipsweep.queries.runner import QueryLimits

    before = _my_temp_dirs()
    limits = QueryLimits(memory_bytes=64 * 2**20, temp_bytes=64 * 2**20, timeout_s=60)
    with pytest.raises(QueryError) as err:
        run_sql(CROSS_SORT, lake=lake, limits=limits)
    assert err.value.field in ("memory_limit", "temp_limit") and err.value.http_status == 413
    assert "64 MiB" in str(err.value) and "CHIPSWEEP_SQL_" in str(err.value)
    assert _my_temp_dirs() == before  # the spill files went with their directory


def test_more_rows_than_the_cap_is_an_error_naming_the_cap_and_max_rows_still_truncates(lake: str) -> None:
    from chipsweep.queries.runner import QueryLimits

    with pytest.raises(QueryError) as err:
        run_sql("SELECT * FROM range(1000)", lake=lake, limits=QueryLimits(row_cap=100))
    assert err.value.field == "row_cap" and "100 rows" in str(err.value) and "CHIPSWEEP_SQL_MAX_ROWS" in str(err.value)
    assert run_sql("SELECT * FROM range(100)", lake=lake, limits=QueryLimits(row_cap=100)).num_rows == 100
    assert run_sql("SELECT * FROM range(1000)", lake=lake, max_rows=5).num_rows == 5


def test_a_query_past_the_concurrency_cap_waits_then_is_refused_with_429(lake: str) -> None:
    import threading

    from chipsweep.queries.runner import QueryLimits

    slow = QueryLimits(concurrency=1, timeout_s=3)
    first: list[BaseException] = []

    def hold() -> None:
        try:
            run_sql("SELECT count(*) FROM range(100000000000)", lake=lake, limits=slow)
        except BaseException as exc:  # the time limit ends it
            first.append(exc)

    t = threading.Thread(target=hold)
    t.start()
    import time

    time.sleep(1.0)
    with pytest.raises(QueryError) as err:
        run_sql("SELECT 1", lake=lake, limits=QueryLimits(concurrency=1, queue_wait_s=0.2))
    assert err.value.field == "concurrency" and err.value.http_status == 429
    assert "CHIPSWEEP_SQL_CONCURRENCY" in str(err.value)
    t.join(30)
    assert first and isinstance(first[0], QueryError) and first[0].field == "timeout_s"
    assert run_sql("SELECT 1 AS x", lake=lake, limits=QueryLimits(concurrency=1))["x"].to_pylist() == [1]


def test_temp_directories_are_removed_after_a_timeout(lake: str) -> None:
    before = _my_temp_dirs()
    with pytest.raises(QueryError):
        run_sql("SELECT count(*) FROM range(100000000000) a", lake=lake, timeout_s=0.3)
    assert _my_temp_dirs() == before


def test_temp_directories_of_a_killed_query_are_removed_on_the_next_start(lake: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    env = {**os.environ, "CHIPSWEEP_LAKE": lake, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "chipsweep", "sql", "SELECT count(*) FROM range(100000000000)"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pattern = f"chipsweep-duckdb-{proc.pid}-*"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(Path(tempfile.gettempdir()).glob(pattern)):
        time.sleep(0.1)
    assert list(Path(tempfile.gettempdir()).glob(pattern)), "the query never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert list(Path(tempfile.gettempdir()).glob(pattern))  # a kill leaves it behind ...
    done = subprocess.run([sys.executable, "-m", "chipsweep", "sql", "SELECT 1 AS x"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not list(Path(tempfile.gettempdir()).glob(pattern))  # ... and the next start removes it
