"""What a hostile user tries against `chipsweep serve`, as a table: SQL that would escape the lake
(read or write outside it, reveal server paths or settings, run more than one statement), spec and
body attacks (alias bombs, nesting, sizes, NaN/inf, overflow, unsafe names, YAML tags), and attempts
to get past the bearer token. Every row goes over real HTTP on 127.0.0.1 and must end in a 4xx JSON
answer (never a 500), read nothing outside the lake, write nothing, queue nothing, and leave the
server answering. `test_the_attack_table` prints the counts (0 escapes, 0 500s when it passes)."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lakegen
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn

from chipsweep.service.api import create_app
from chipsweep.service.dispatch import submit
from chipsweep.service.queue import Queue
from chipsweep.service.settings import Settings
from tests.conftest import free_port, training_spec, wait_for

TOKEN = "t0ken-for-the-attack-table"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRETS = ("hunter2", "root:x:0:0", "chipsweep-duckdb", TOKEN)
RESULTS: dict[str, list[tuple[str, int]]] = {"sql": [], "spec": [], "auth": []}

SQL_ESCAPES = [
    "COPY (SELECT 1) TO '{out}/a.csv'",
    "COPY training TO '{out}/b.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '{out}/dump'",
    "IMPORT DATABASE '{root}'",
    "ATTACH '{out}/x.duckdb' AS x",
    "ATTACH ':memory:' AS m",
    "DETACH lake",
    "USE memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL sqlite",
    "SET enable_external_access = true",
    "RESET allowed_directories",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "SELECT * FROM read_csv('{root}/secret.csv')",
    "SELECT * FROM read_csv_auto('{root}/secret.csv')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM '{root}/secret.csv'",
    "SELECT * FROM read_json('/proc/self/environ')",
    "SELECT * FROM read_text('/proc/self/cmdline')",
    "SELECT * FROM read_parquet('{root}/outside.parquet')",
    "SELECT * FROM read_parquet('{root}/lake2/part-0.parquet')",
    "SELECT * FROM read_csv('{lake}/../secret.csv')",
    "SELECT * FROM read_csv('{lake}/kind=training/../../secret.csv')",
    "SELECT * FROM read_text('{lake}/link/passwd')",
    "SELECT * FROM read_csv('file://{root}/secret.csv')",
    "SELECT * FROM read_csv('{root}//secret.csv')",
    "SELECT * FROM read_csv(['{lake}/none.csv', '/etc/passwd'])",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM glob('{root}/*')",
    "SELECT * FROM sniff_csv('{root}/secret.csv')",
    "SELECT * FROM parquet_metadata('{root}/outside.parquet')",
    "SELECT * FROM parquet_schema('{root}/outside.parquet')",
    "SELECT * FROM read_csv('https://example.com/x.csv')",
    "SELECT * FROM sqlite_scan('{out}/x.db', 't')",
    "WITH x AS (SELECT * FROM read_csv('{root}/secret.csv')) SELECT * FROM x",
    "SELECT * FROM query('COPY (SELECT 1) TO ''{out}/q.csv''')",
    "SELECT * FROM query('ATTACH ''{out}/q.duckdb''')",
    "SELECT * FROM query_table('duckdb_settings')",
    "SELECT current_setting('allowed_directories')",
    "SELECT current_setting('temp_directory')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM duckdb_temporary_files()",
    "SELECT getenv('HOME')",
    "SELECT 1; COPY (SELECT 1) TO '{out}/m.csv'",
    "SELECT 1; DROP VIEW training",
    "/* hidden */ COPY (SELECT 1) TO '{out}/c.csv'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/e.csv'",
    "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "CREATE MACRO m(x) AS x",
    "CREATE TEMP TABLE t AS SELECT 1",
    "INSERT INTO training SELECT * FROM training",
    "SET VARIABLE x = 1",
    "PREPARE p AS COPY (SELECT 1) TO '{out}/p.csv'",
    "CHECKPOINT",
    "VACUUM",
    "UPDATE EXTENSIONS",
]

SPEC_ATTACKS: list[tuple[str, Any]] = [
    ("alias bomb (376 bytes)", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                               'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n'
                               'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n'
                               'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n'),
    ("merge-key alias", "base: &b {name: x}\n<<: *b\nkind: training\n"),
    ("JSON nested 1,000 levels", '{"a":' * 1000 + "1" + "}" * 1000),
    ("JSON nested 100,000 levels", "[" * 100_000 + "]" * 100_000),
    ("YAML nested 200 levels", "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200))),
    ("50 MB body", b"name: " + b"x" * (50 * 2**20)),
    ("2 MB body, chunked", "chunked"),
    ("20 KB description", {"description": "d" * 20_000}),
    ("NaN tokens", {"fixed.tokens": "NaN"}),
    ("Infinity tokens", {"fixed.tokens": "Infinity"}),
    ("-Infinity global_batch", {"fixed.global_batch": "-Infinity"}),
    ("NaN price override", {"overrides": '{"nvidia_h100_sxm": {"usd_per_hour": NaN}}'}),
    ("Infinity price override", {"overrides": '{"nvidia_h100_sxm": {"usd_per_hour": Infinity}}'}),
    ("NaN in an axis list", {"axes.n_chips": "[64, NaN]"}),
    ("n_chips 1e30", {"axes.n_chips": "[1e30]"}),
    ("n_chips 10**400", {"axes.n_chips": "[1" + "0" * 400 + "]"}),
    ("tp beyond int16", {"axes.tp": "[40000]"}),
    ("geometric stop Infinity", {"axes.n_chips": '{"geometric": {"start": 1, "stop": Infinity, "factor": 2}}'}),
    ("geometric stop 1.0e300 as text", {"axes.n_chips": '{"geometric": {"start": 1, "stop": "1.0e300", "factor": 2}}'}),
    ("geometric factor 1.0000001", {"axes.n_chips": '{"geometric": {"start": 1, "stop": 1e9, "factor": 1.0000001}}'}),
    ("range step 1e-300", {"axes.n_chips": '{"range": {"start": 1, "stop": 1e9, "step": 1e-300}}'}),
    ("name with a trailing newline", {"name": '"nl\\n"'}),
    ("name ../escape", {"name": '"../escape"'}),
    ("name with NUL", {"name": '"a\\u0000b"'}),
    ("name with a slash", {"name": '"a/b"'}),
    ("name unicode", {"name": '"na\\u00efve"'}),
    ("duplicate keys", "name: a\nkind: training\nname: b\n"),
    ("python tag", "name: !!python/object/apply:os.system ['echo owned']\n"),
    ("binary tag", "name: !!binary aGVsbG8=\nkind: training\n"),
    ("set tag", "name: !!set {a, b}\n"),
    ("non-UTF-8 bytes", b"\xff\xfe\xfa\x00name: x"),
    ("empty body", b""),
    ("a JSON list", "[1, 2, 3]"),
    ("a JSON string", '"just text"'),
    ("unknown top-level field", {"shell": '"rm -rf /"'}),
    ("100,000 chip ids", {"axes.chip": json.dumps(["x"] * 100_000)}),
    ("filter nested 30 levels", {"axes.chip": '{"class": ' + "[" * 30 + "1" + "]" * 30 + "}"}),
    ("cron injection", {"schedule": '{"cron": "* * * * * ; rm -rf /"}'}),
    ("interval NaN", {"schedule": '{"interval_s": NaN}'}),
]

AUTH_BYPASSES: list[tuple[str, str, str, Any]] = [  # (what, method, path, headers or params)
    ("no header", "GET", "/sweeps", {}),
    ("empty bearer", "GET", "/sweeps", {"Authorization": "Bearer"}),
    ("wrong token", "GET", "/sweeps", {"Authorization": "Bearer wrong"}),
    ("token prefix", "GET", "/sweeps", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
    ("token plus suffix", "GET", "/sweeps", {"Authorization": f"Bearer {TOKEN}x"}),
    ("no scheme", "GET", "/sweeps", {"Authorization": TOKEN}),
    ("basic scheme", "GET", "/sweeps", {"Authorization": "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()}),
    ("token scheme", "GET", "/sweeps", {"Authorization": f"Token {TOKEN}"}),
    ("non-ASCII token", "GET", "/sweeps", {"Authorization": "Bearer t0k\u00e9n".encode()}),
    ("8 KB header", "GET", "/sweeps", {"Authorization": "Bearer " + "a" * 8000}),
    ("token in the query", "GET", "/sweeps?token=" + TOKEN, {}),
    ("access_token in the query", "GET", "/sweeps?access_token=" + TOKEN, {}),
    ("token as a cookie", "GET", "/sweeps", {"Cookie": f"Authorization=Bearer {TOKEN}; token={TOKEN}"}),
    ("wrong header first", "GET", "/sweeps", [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {TOKEN}")]),
    ("trailing slash", "GET", "/sweeps/", {}),
    ("double slash", "GET", "//sweeps", {}),
    ("upper case path", "GET", "/SWEEPS", {}),
    ("dot segment", "GET", "/./sweeps", {}),
    ("encoded slash", "GET", "/sweeps%2Fsecret-sweep", {}),
    ("HEAD", "HEAD", "/sweeps", {}),
    ("OPTIONS", "OPTIONS", "/sweeps", {}),
    ("one sweep", "GET", "/sweeps/secret-sweep", {}),
    ("cancel", "DELETE", "/sweeps/secret-sweep", {}),
    ("resume", "POST", "/sweeps/secret-sweep/resume", {}),
    ("submit", "POST", "/sweeps", {}),
    ("sql", "POST", "/sql", {}),
    ("saved query", "GET", "/queries/pareto_training?model=llama3_8b", {}),
    ("catalog", "GET", "/catalog/chips", {}),
    ("metrics", "GET", "/metrics", {}),
    ("health detail", "GET", "/healthz", {}),
    ("UI data", "GET", "/ui/data/sweeps", {}),
    ("X-Forwarded-User", "GET", "/sweeps", {"X-Forwarded-User": "admin", "X-Real-IP": "127.0.0.1"}),
]


class _Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings, dispatch=False), host="127.0.0.1", port=self.port,
                                log_level="critical")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("attack")
    home = root / "home"
    lake = home / "lake"
    lakegen.write_version(str(lake), "training", "s", 1, lakegen.random_training(np.random.default_rng(5), 50))
    (root / "secret.csv").write_text("user,password\nroot,hunter2\n")
    pq.write_table(pa.table({"secret": ["hunter2"]}), root / "outside.parquet")
    (root / "lake2").mkdir()
    pq.write_table(pa.table({"secret": ["hunter2"]}), root / "lake2" / "part-0.parquet")
    os.symlink("/etc", lake / "link")
    out = root / "out"
    out.mkdir()
    env = {"CHIPSWEEP_HOME": str(home), "CHIPSWEEP_TOKEN": TOKEN, "CHIPSWEEP_MAX_BODY_BYTES": str(2**20)}
    settings = Settings.from_env(env)
    queue = Queue(settings.queue_path)
    submit(training_spec("secret-sweep"), settings=settings, queue=queue)
    srv = _Server(settings)
    srv.thread.start()
    wait_for(lambda: srv.server.started, 60, "uvicorn to start")
    before = sorted(str(p) for p in root.rglob("*"))
    try:
        yield {"url": srv.url, "root": str(root), "lake": str(lake), "out": str(out), "queue": queue, "before": before,
               "home": str(home)}
    finally:
        srv.server.should_exit = True
        srv.thread.join(30)


def _no_leak(r: httpx.Response, target: dict[str, Any]) -> None:
    text = r.text
    for s in SECRETS:
        assert s not in text, (s, text[:500])
    assert target["home"] not in text and target["root"] not in text or r.request.url.path == "/sql", text[:500]
    assert len(r.content) < 50_000, len(r.content)  # bounded: 20 problems at most, values cut to 120 characters


def _alive(target: dict[str, Any]) -> None:
    assert httpx.get(f"{target['url']}/healthz", timeout=10).json() == {"status": "up"}


@pytest.mark.parametrize("template", SQL_ESCAPES)
def test_sql_escape_is_refused_with_a_4xx_and_reads_or_writes_nothing(target: dict[str, Any], template: str) -> None:
    sql = template.format(root=target["root"], lake=target["lake"], out=target["out"])
    r = httpx.post(f"{target['url']}/sql", json={"sql": sql}, headers=AUTH, timeout=60)
    RESULTS["sql"].append((template, r.status_code))
    assert 400 <= r.status_code < 500, (sql, r.status_code, r.text[:500])
    body = r.json()
    assert body["error"] and body["field"]
    for s in SECRETS:
        assert s not in r.text
    assert not os.listdir(target["out"]), os.listdir(target["out"])
    _alive(target)


def _spec_body(attack: Any) -> tuple[bytes | Any, str]:
    if isinstance(attack, bytes):
        return attack, "application/yaml"
    if attack == "chunked":
        return (b"x" * 2**16 for _ in range(32)), "application/yaml"
    if isinstance(attack, str):
        return attack.encode(), "application/yaml"
    spec: dict[str, Any] = training_spec("attack")
    placeholders = {}
    for i, (where, value) in enumerate(attack.items()):
        key = f"PLACEHOLDER{i}"
        placeholders[key] = value
        parts = where.split(".")
        node = spec
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node.pop(parts[-1], None)
        node[parts[-1]] = key if not isinstance(value, str) or where != "description" else value
    text = json.dumps(spec)
    for key, value in placeholders.items():
        text = text.replace(f'"{key}"', value if isinstance(value, str) else json.dumps(value))
    return text.encode(), "application/json"


@pytest.mark.parametrize(("what", "attack"), SPEC_ATTACKS, ids=[w for w, _ in SPEC_ATTACKS])
def test_spec_or_body_attack_is_a_4xx_that_queues_nothing(target: dict[str, Any], what: str, attack: Any) -> None:
    body, kind = _spec_body(attack)
    r = httpx.post(f"{target['url']}/sweeps", content=body, headers={**AUTH, "Content-Type": kind}, timeout=120)
    RESULTS["spec"].append((what, r.status_code))
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:500])
    assert r.json()["error"]
    _no_leak(r, target)
    assert [s.name for s in target["queue"].sweeps()] == ["secret-sweep"]
    _alive(target)


@pytest.mark.parametrize(("what", "method", "path", "headers"), AUTH_BYPASSES, ids=[a[0] for a in AUTH_BYPASSES])
def test_auth_bypass_is_refused_and_shows_no_data(target: dict[str, Any], what: str, method: str, path: str,
                                                  headers: Any) -> None:
    with httpx.Client(base_url=target["url"], timeout=30) as c:
        r = c.request(method, path, headers=headers, json={"sql": "SELECT 1"} if path == "/sql" else None)
    RESULTS["auth"].append((what, r.status_code))
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    assert "secret-sweep" not in r.text and "hunter2" not in r.text
    if path == "/healthz":
        assert r.json() == {"status": "up"}
    else:
        assert r.status_code in (303, 307, 400, 401, 404, 405), (what, r.status_code, r.text[:300])
    assert target["queue"].sweep("secret-sweep").state == "queued"  # not cancelled, not touched


def test_the_attack_table(target: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last: the counts of what was tried and how it ended."""
    assert len(SQL_ESCAPES) >= 40 and len(SPEC_ATTACKS) >= 30 and len(AUTH_BYPASSES) >= 30
    rows = [(kind, len(results), sum(1 for _, s in results if s >= 500),
             sorted({s for _, s in results})) for kind, results in RESULTS.items()]
    with capsys.disabled():
        print("\nattack table: kind, tried, 500s, statuses")
        for kind, n, fives, statuses in rows:
            print(f"  {kind:5s} {n:3d} tried, {fives} answered 500, statuses {statuses}")
        print("  auth answers:", ", ".join(f"{w}: {s}" for w, s in RESULTS["auth"]))
    assert all(fives == 0 for _, _, fives, _ in rows)
    assert not os.listdir(target["out"])
    after = sorted(str(p) for p in Path(target["root"]).rglob("*") if "lake/dims" not in str(p) and "queue.db" not in str(p))
    assert after == [p for p in target["before"] if "lake/dims" not in p and "queue.db" not in p]
