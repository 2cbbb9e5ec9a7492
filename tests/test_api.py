"""The HTTP API over real HTTP on 127.0.0.1 (uvicorn, dispatcher thread, local Ray), and the CLI
against it with --server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import yaml

import chipsweep
from chipsweep.service.api import create_app
from chipsweep.service.cli import main as cli
from tests.conftest import assert_exact, free_port, http, read_facts, training_spec, wait_for

pytestmark = pytest.mark.usefixtures("ray_local")


class Server:
    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        wait_for(lambda: self.server.started, 60, "uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture()
def server(home, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHIPSWEEP_CHUNK_SIZE", "2000")
    with Server(home.with_(chunk_size=2000, max_configs=1_000_000, actors=2)) as s:
        yield s


def wait_done(url: str, sweep_id: str) -> dict[str, Any]:
    wait_for(
        lambda: http.get(f"{url}/sweeps/{sweep_id}").json()["state"] in ("done", "failed"),
        120,
        f"{sweep_id} to finish",
    )
    return http.get(f"{url}/sweeps/{sweep_id}").json()


def test_submit_json_and_yaml_then_status_list_and_lake(server: Server) -> None:
    r = http.post(f"{server.url}/sweeps", json=training_spec("api-json"))
    assert r.status_code == 201, r.text
    body = r.json()
    # chunks never span two models or chips: 4 x 3 chunks of 576 configurations
    assert (body["sweep_id"], body["version"], body["configurations"], body["chunks_total"]) == (
        "api-json",
        1,
        6912,
        12,
    )
    r = http.post(
        f"{server.url}/sweeps",
        content=yaml.safe_dump(training_spec("api-yaml", store="feasible")),
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 201, r.text
    done = wait_done(server.url, "api-json")
    assert (done["state"], done["chunks_done"], done["rows_written"]) == ("done", 12, 6912)
    assert_exact(read_facts(server.settings.lake, "training", "api-json", 1), 6912)
    feasible = wait_done(server.url, "api-yaml@1")
    assert feasible["state"] == "done" and 0 < feasible["rows_written"] < 6912
    listed = http.get(f"{server.url}/sweeps").json()
    assert [s["sweep_id"] for s in listed] == ["api-yaml", "api-json"]
    [v1] = http.get(f"{server.url}/sweeps/api-json/history").json()
    assert (v1["version"], v1["trigger"], v1["chunks_evaluated"], v1["chunks_repriced"], v1["rows"]) == (
        1,
        "submit",
        12,
        0,
        6912,
    )
    assert http.get(f"{server.url}/sweeps/no-such-sweep/history").status_code == 404
    health = http.get(f"{server.url}/healthz").json()
    assert health["ok"] and health["dispatcher"]["alive"]


@pytest.mark.parametrize(
    ("mutate", "field", "value"),
    [
        (lambda s: s.update(speed="fast"), "speed", "fast"),
        (lambda s: s["axes"].update(chip=["nvidia_h100_sxm", "abacus"]), "axes.chip[1]", "abacus"),
        (lambda s: s["axes"].update(tp=[]), "axes.tp", []),
        (lambda s: s["axes"].update(micro_batch=["one"]), "axes.micro_batch[0]", "one"),
        (lambda s: s.update(name="../../escape"), "name", "../../escape"),
    ],
)
def test_invalid_specs_are_422_with_field_value_allowed_and_nothing_queued(
    server: Server, mutate, field, value
) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec("bad")
    mutate(spec)
    r = http.post(f"{server.url}/sweeps", json=spec)
    assert r.status_code == 422
    body = r.json()
    assert (body["field"], body["value"]) == (field, value) and body["allowed"]
    assert http.get(f"{server.url}/sweeps").json() == []


def test_size_cap_and_unknown_ids_and_catalog(server: Server) -> None:
    spec = training_spec("too-big")
    spec["axes"]["n_chips"] = {"range": {"start": 8, "stop": 8 * 1000, "step": 8}}  # 1,152,000 configurations
    r = http.post(f"{server.url}/sweeps", json=spec)
    assert (
        r.status_code == 422
        and "1,000,000" in r.json()["allowed"]
        and "CHIPSWEEP_MAX_CONFIGS" in r.json()["allowed"]
    )
    r = http.get(f"{server.url}/sweeps/ghost")
    assert r.status_code == 404 and r.json()["field"] == "id" and r.json()["value"] == "ghost"
    r = http.post(f"{server.url}/sweeps", content=b"name: [", headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422 and "YAML" in r.text
    chips = {c["id"]: c for c in http.get(f"{server.url}/catalog/chips").json()}
    assert (
        chips["nvidia_h100_sxm"]["calibration"]["serving"]["calibrated_on"]["vllm"]
        == "mlenergy_vllm (vllm on nvidia_h100_sxm)"
    )
    assert chips["nvidia_b300_hgx"]["calibration"]["training"]["calibrated_on"].startswith(
        "extrapolated from"
    )
    r = http.get(f"{server.url}/catalog/rocks")
    assert r.status_code == 404 and r.json()["allowed"] == "chips, models, clusters"
    # the docs pages work offline: their scripts come from this server, not a CDN (the page was blank offline)
    for page in ("docs", "redoc"):
        html = http.get(f"{server.url}/{page}")
        assert html.status_code == 200 and "cdn." not in html.text and "https://" not in html.text
        scripts = re.findall(r'<script src="([^"]+)"', html.text)
        assert scripts and all(http.get(f"{server.url}{s}").status_code == 200 for s in scripts)
    paths = http.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/sweeps/{sweep_id}" in paths
    # each saved query documents its own parameters (the generic /queries/{name} took an undocumented ?k=v)
    params = {p["name"]: p for p in paths["/queries/cheapest_within_deadline"]["get"]["parameters"]}
    assert params["days"]["required"] and params["days"]["schema"] == {
        "type": "number",
        "exclusiveMinimum": 0,
    }
    assert not params["sweep"]["required"] and "only this sweep" in params["sweep"]["description"]
    objectives = {p["name"]: p for p in paths["/queries/pareto_serving"]["get"]["parameters"]}["objectives"]
    assert "output_tokens_per_s_per_chip" in objectives["description"]
    assert {p["name"]: p for p in paths["/queries/best_layout"]["get"]["parameters"]}["objective"]["schema"][
        "enum"
    ][0] == "time_to_train_days"
    # no such route, no such method: the project's error shape (field, value, allowed), not FastAPI's {"detail"}
    r = http.get(f"{server.url}/sweep")
    assert r.status_code == 404 and r.json()["field"] == "path" and r.json()["value"] == "/sweep"
    assert "/sweeps" in r.json()["allowed"] and "detail" not in r.json()
    r = http.put(f"{server.url}/sweeps")
    assert r.status_code == 405 and r.json()["field"] == "method" and r.json()["value"] == "PUT"
    assert set(r.json()["allowed"]) >= {"GET", "POST"}


def _eight_chunk_spec(name: str) -> dict:
    """A training spec of eight chunks (one per global batch): long enough to cancel while it runs."""
    spec = training_spec(name)
    spec["axes"]["global_batch"] = [256, 512, 768, 1024, 1280, 1536, 1792, 2048]
    spec["fixed"].pop("global_batch")
    return spec


def test_cancel_over_http(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert http.post(f"{server.url}/sweeps", json=_eight_chunk_spec("api-cancel")).status_code == 201
    r = http.delete(f"{server.url}/sweeps/api-cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    status = wait_done_or_cancelled(server.url, "api-cancel")
    assert status["chunks_done"] < status["chunks_total"]
    assert_exact(read_facts(server.settings.lake, "training", "api-cancel", 1), status["rows_written"])


def test_cancelling_a_finished_sweep_is_a_409_naming_it_at_every_edge(server: Server, capsys) -> None:  # type: ignore[no-untyped-def]
    """DELETE of a done sweep answered 200 with its status, as if it had cancelled something. Now 409 Conflict
    naming the sweep, its state and that only a queued or running sweep can be cancelled -- and the CLI (remote
    and local) and `chipsweep.cancel` say the same, with no traceback. A cancelled sweep cancelled again stays 200."""
    assert http.post(f"{server.url}/sweeps", json=training_spec("api-over")).status_code == 201
    assert wait_done(server.url, "api-over")["state"] == "done"
    r = http.delete(f"{server.url}/sweeps/api-over")
    assert r.status_code == 409, r.text
    body = r.json()
    assert (body["sweep_id"], body["state"], body["field"], body["value"]) == ("api-over@1", "done", "state", "done")
    assert body["error"].startswith("sweep api-over@1 is already done: nothing to cancel")
    assert "only a queued or running sweep can be cancelled" in body["error"]
    assert http.get(f"{server.url}/sweeps/api-over").json()["state"] == "done"  # untouched
    for args in (["cancel", "api-over", "--server", server.url], ["cancel", "api-over@1"]):
        assert cli(args) == 2
        out = capsys.readouterr()
        assert "sweep api-over@1 is already done: nothing to cancel" in out.err and "Traceback" not in out.err
        assert out.out == ""  # no status printed as if it were cancelled
    with pytest.raises(chipsweep.ChipsweepError, match="sweep api-over@1 is already done") as err:
        chipsweep.cancel("api-over")
    assert (err.value.field, err.value.value) == ("state", "done")
    # a queued (or running) sweep cancels as before, and cancelling it again is harmless
    assert http.post(f"{server.url}/sweeps", json=_eight_chunk_spec("api-twice")).status_code == 201
    first = http.delete(f"{server.url}/sweeps/api-twice")
    assert first.status_code == 200 and first.json()["state"] == "cancelled"
    again = http.delete(f"{server.url}/sweeps/api-twice")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"
    assert chipsweep.cancel("api-twice")["state"] == "cancelled"


def wait_done_or_cancelled(url: str, sweep_id: str) -> dict[str, Any]:
    wait_for(
        lambda: http.get(f"{url}/sweeps/{sweep_id}").json()["chunks_running"] == 0, 60, "in-flight chunks"
    )
    return http.get(f"{url}/sweeps/{sweep_id}").json()


def test_a_spec_posted_again_carries_its_chunks_unless_asked_to_reevaluate(server: Server, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """POST /sweeps of the spec a done version ran makes a new version that carries every chunk (nothing evaluated;
    the rows identical); `?reevaluate=true`, and `chipsweep submit --reevaluate --server`, evaluate every chunk."""
    spec = training_spec("api-again")
    assert http.post(f"{server.url}/sweeps", json=spec).status_code == 201
    first = wait_done(server.url, "api-again@1")
    again = http.post(f"{server.url}/sweeps", json=spec)
    assert again.status_code == 201, again.text
    second = wait_done(server.url, f"api-again@{again.json()['version']}")
    assert second["version"] == 2 and second["chunks_carried"] == second["chunks_total"] == first["chunks_total"]
    v2 = http.get(f"{server.url}/sweeps/api-again/history").json()[-1]
    assert v2["trigger"] == "submit" and v2["chunks_evaluated"] == 0
    rows = [read_facts(server.settings.lake, "training", "api-again", v).sort_by("idx") for v in (1, 2)]
    assert rows[0].num_rows > 0 and rows[0].equals(rows[1])
    forced = http.post(f"{server.url}/sweeps", params={"reevaluate": "true"}, json=spec)
    assert forced.status_code == 201 and wait_done(server.url, "api-again@3")["chunks_carried"] == 0
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    assert cli(["submit", str(path), "--server", server.url, "--reevaluate", "--wait", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["version"] == 4 and http.get(f"{server.url}/sweeps/api-again@4").json()["chunks_carried"] == 0


def test_cli_against_the_server(server: Server, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(training_spec("cli-remote", store="feasible")))
    assert cli(["submit", str(spec), "--server", server.url, "--wait", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["sweep_id"], out["configurations"]) == ("cli-remote", 6912) and out["rows_written"] > 0
    assert cli(["status", "cli-remote", "--server", server.url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (
        list(status)[:9]
        == [
            "sweep_id",
            "version",
            "state",
            "configurations",
            "chunks_total",
            "chunks_done",
            "chunks_failed",
            "rows_written",
            "configs_per_s",
        ]
        and status["state"] == "done"
    )
    assert cli(["list", "--server", server.url]) == 0 and "cli-remote" in capsys.readouterr().out
    # cancelling a finished sweep is refused, naming it (it printed the status as if it had stopped something)
    assert cli(["cancel", "cli-remote", "--server", server.url]) == 2
    assert "sweep cli-remote@1 is already done: nothing to cancel" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**training_spec("x"), "store": "everything"}))
    assert cli(["submit", str(bad), "--server", server.url]) == 2
    assert "field 'store'" in capsys.readouterr().err
    # history and resume reach the server too (they read the local queue, and `resume` made a stray .chipsweep)
    assert cli(["history", "cli-remote", "--server", server.url, "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1]
    assert cli(["resume", "cli-remote", "--server", server.url]) == 0
    assert "cli-remote@1" in capsys.readouterr().out
    # a refusal prints the server's own message (it named only the field: "field 'id' = "nope": allowed: ...")
    assert cli(["status", "nope", "--server", server.url]) == 2
    assert "unknown sweep id 'nope'" in capsys.readouterr().err
    # settings only this process could apply are refused, not silently dropped
    for flag in (["--chunk-size", "12"], ["--actors", "1"], ["--no-run"]):
        assert cli(["submit", str(spec), "--server", server.url, *flag]) == 2
        assert f"{flag[0]} with --server" in capsys.readouterr().err
    # no server there: one line naming it, exit 1 (a traceback of httpx.ConnectError before)
    gone = f"http://127.0.0.1:{free_port()}"
    for args in (["status", "cli-remote"], ["list"], ["cancel", "cli-remote"], ["history", "cli-remote"]):
        assert cli([*args, "--server", gone]) == 1
        err = capsys.readouterr().err
        assert f"cannot reach the server at {gone}" in err and "Traceback" not in err


def test_bearer_token(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with Server(home.with_(token="s3cret", actors=1)) as s:
        assert http.get(f"{s.url}/healthz").status_code == 200
        r = http.get(f"{s.url}/sweeps")
        assert r.status_code == 401 and r.json()["field"] == "Authorization"
        assert http.get(f"{s.url}/sweeps", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get(f"{s.url}/sweeps", headers={"Authorization": "Bearer s3cret"}).json() == []
        # without the token the CLI's refusal exits 2, as every bad input does (it exited 1, a failure's code)
        monkeypatch.delenv("CHIPSWEEP_TOKEN", raising=False)
        assert cli(["list", "--server", s.url, "--json"]) == 2
        assert cli(["status", "nope", "--server", s.url]) == 2
        monkeypatch.setenv("CHIPSWEEP_TOKEN", "s3cret")
        assert cli(["list", "--server", s.url, "--json"]) == 0


def test_queries_and_sql_endpoints(server: Server) -> None:
    runner = pytest.importorskip("chipsweep.queries.runner")
    assert http.post(f"{server.url}/sweeps", json=training_spec("api-q", store="feasible")).status_code == 201
    wait_done(server.url, "api-q")
    r = http.post(f"{server.url}/sql", json={"sql": "SELECT count(*) AS n FROM training"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0]["n"] > 0
    r = http.get(f"{server.url}/queries/pareto_training", params={"model": "llama3_8b"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"]
    r = http.get(f"{server.url}/queries/no_such_query")
    assert r.status_code in (400, 404) and r.json()["error"]
    assert runner is not None
    # the chips the frontier cannot place: the TPU v5p has no rental or purchase price in the catalog, so every
    # row of it lacks cost_usd; the same answer as the Python API and `chipsweep query`'s 'left off' note
    r = http.get(f"{server.url}/queries/pareto_training/left-off", params={"model": "llama3_8b"})
    assert r.status_code == 200, r.text
    chips = {c["chip"]: c for c in r.json()["chips"]}
    assert set(chips) == {"google_tpu_v5p"}
    tpu = chips["google_tpu_v5p"]
    assert tpu["missing"] == ["cost_usd"] and tpu["catalog_lacks"] == ["price"] and tpu["rows"] > 0
    assert tpu["best"]["time_to_train_days"] > 0
    assert (
        chipsweep.left_off("pareto_training", model="llama3_8b", lake=server.settings.lake)
        == r.json()["chips"]
    )
    r = http.get(f"{server.url}/queries/pareto_training/left-off", params={"modle": "llama3_8b"})
    assert r.status_code == 422 and r.json()["field"] == "modle"


def test_a_frontier_over_http_counts_the_repeats_it_lists_once(server: Server) -> None:
    """A colocated serving row swept along decode_instances is one configuration repeated: the frontier lists it once
    and says how many copies it left out, in the query's JSON and in the explorer's data."""
    spec = {"name": "api-repeats", "kind": "inference", "store": "all", "axes": {
        "model": ["llama3_70b"], "chip": ["nvidia_h100_sxm"], "disaggregated": [False, True],
        "decode_instances": [1, 4], "concurrency": [16, 64, 256]},
        "fixed": {"n_chips": 8, "compute_precision": "fp8", "weight_bits": 8, "prompt_len": 512, "gen_len": 1024}}
    assert http.post(f"{server.url}/sweeps", json=spec).status_code == 201
    wait_done(server.url, "api-repeats")
    r = http.get(f"{server.url}/queries/pareto_serving", params={"model": "llama3_70b"})
    assert r.status_code == 200, r.text
    body = r.json()
    together = [row for row in body["rows"] if not row["disaggregated"]]
    assert together and body["repeats"] == len(together)  # each colocated row's decode_instances 4 copy
    assert len({row["concurrency"] for row in together}) == len(together)
    ui = http.get(f"{server.url}/ui/data/frontier", params={"query": "pareto_serving", "model": "llama3_70b",
                                                             "candidates": 0})
    assert ui.status_code == 200, ui.text
    assert ui.json()["repeats"] == body["repeats"] and len(ui.json()["rows"]) == len(body["rows"])


# ------------------------------------------------------------------------------------------------
# input that cannot hurt, over HTTP: every refusal a 4xx JSON with field, value and allowed
# ------------------------------------------------------------------------------------------------
@pytest.fixture()
def api(home):  # type: ignore[no-untyped-def]
    """A server without a dispatcher (the API and queries only), small body limit."""
    s = Server.__new__(Server)
    s.settings = home.with_(max_body_bytes=1_000_000)
    s.port = free_port()
    s.url = f"http://127.0.0.1:{s.port}"
    config = uvicorn.Config(
        create_app(s.settings, dispatch=False), host="127.0.0.1", port=s.port, log_level="warning"
    )
    s.server = uvicorn.Server(config)
    s.thread = threading.Thread(target=s.server.run, daemon=True)
    with s:
        yield s


def test_healthz_without_the_token_says_only_up_and_the_detail_needs_it(home) -> None:  # type: ignore[no-untyped-def]
    with Server(home.with_(token="s3cret", actors=1)) as s:
        anonymous = http.get(f"{s.url}/healthz").json()
        assert anonymous == {"status": "up"}
        wrong = http.get(f"{s.url}/healthz", headers={"Authorization": "Bearer nope"}).json()
        assert wrong == {"status": "up"}
        full = http.get(f"{s.url}/healthz", headers={"Authorization": "Bearer s3cret"}).json()
        assert full["status"] == "up" and full["queue"].endswith("queue.db") and full["dispatcher"]["alive"]


@pytest.mark.parametrize("header", ["Bearer s3crét", "Bearer \u2603", "Bearer s3cret\u00a0", "Bëarer s3cret"])
def test_a_non_ascii_authorization_header_is_a_401_not_a_500(home, header: str) -> None:  # type: ignore[no-untyped-def]
    with Server(home.with_(token="s3cret", actors=1)) as s:
        r = http.get(f"{s.url}/sweeps", headers={"Authorization": header.encode("utf-8")})  # type: ignore[dict-item]
        assert r.status_code == 401 and r.json()["field"] == "Authorization"


def test_a_50_mb_body_is_refused_with_413_before_it_is_read_and_never_echoed(api: Server) -> None:
    import time

    big = b"name: " + b"x" * (50 * 2**20)
    for path in ("/sweeps", "/sql"):
        t0 = time.perf_counter()
        r = http.post(
            f"{api.url}{path}", content=big, headers={"Content-Type": "application/yaml"}, timeout=60
        )
        assert r.status_code == 413 and len(r.content) < 1000, (path, r.status_code, len(r.content))
        assert r.json()["field"] == "(body)" and "CHIPSWEEP_MAX_BODY_BYTES" in r.json()["allowed"]
        assert time.perf_counter() - t0 < 10

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted as it arrives
        for _ in range(50):
            yield b"x" * 2**20

    r = http.post(
        f"{api.url}/sweeps", content=chunks(), headers={"Content-Type": "application/yaml"}, timeout=60
    )
    assert r.status_code == 413 and len(r.content) < 1000
    assert http.get(f"{api.url}/healthz").status_code == 200


def test_large_values_are_never_echoed_back(api: Server) -> None:
    r = http.post(f"{api.url}/sql", json={"sql": ["x" * 200_000]})
    assert r.status_code == 422 and len(r.content) < 2000
    spec = training_spec("desc", description="d" * 500_000)
    r = http.post(f"{api.url}/sweeps", json=spec)
    assert r.status_code == 422 and len(r.content) < 2000 and r.json()["field"] == "description"
    r = http.post(f"{api.url}/sql", json={"sql": "SELECT " + "y" * 400_000})
    assert r.status_code == 400 and len(r.content) < 5000


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("fixed.tokens", "NaN"),
        ("fixed.tokens", "Infinity"),
        ("fixed.tokens", "-Infinity"),
        ("axes.n_chips", "[64, NaN]"),
        ("overrides.nvidia_h100_sxm.usd_per_hour", "NaN"),
        ("axes.n_chips", '{"geometric": {"start": 1, "stop": Infinity, "factor": 2}}'),
        ("axes.n_chips", "[1e30]"),
        ("fixed.global_batch", "1" + "0" * 400),
    ],
)
def test_nan_infinity_and_overflow_in_a_spec_over_http_are_422_with_valid_json(
    api: Server, where: str, value: str
) -> None:
    spec = training_spec("nums")
    key = where.split(".")[-1]
    if where.startswith("overrides"):
        spec["overrides"] = {"nvidia_h100_sxm": {"usd_per_hour": "PLACEHOLDER"}}
    else:
        spec["fixed" if where.startswith("fixed") else "axes"][key] = "PLACEHOLDER"
    text = json.dumps(spec).replace('"PLACEHOLDER"', value)  # JSON as Python's json module writes NaN
    r = http.post(f"{api.url}/sweeps", content=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    body = r.json()  # valid JSON: NaN and infinities are carried as text
    assert body["field"].startswith(where.split(".")[0]) and body["allowed"]
    assert http.get(f"{api.url}/sweeps").json() == []


def test_json_nested_1000_levels_is_422_over_http_and_exit_2_in_the_cli(
    api: Server, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    deep = '{"a":' * 1000 + "1" + "}" * 1000
    r = http.post(f"{api.url}/sweeps", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "nested deeper than 32 levels" in r.text
    r = http.post(f"{api.url}/sql", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    spec = tmp_path / "deep.json"
    spec.write_text(deep)
    assert cli(["submit", str(spec)]) == 2
    assert "nested deeper than 32 levels" in capsys.readouterr().err
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n')
    assert cli(["submit", str(bomb)]) == 2
    assert "aliases (*a) are not allowed" in capsys.readouterr().err
    r = http.post(
        f"{api.url}/sweeps", content=bomb.read_bytes(), headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 422 and "aliases" in r.text


def test_a_sweep_name_with_a_trailing_newline_is_refused_over_http_and_in_the_cli(
    api: Server, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    r = http.post(f"{api.url}/sweeps", json=training_spec("nl\n"))
    assert r.status_code == 422 and (r.json()["field"], r.json()["value"]) == ("name", "nl\n")
    spec = tmp_path / "nl.yaml"
    spec.write_text(yaml.safe_dump(training_spec("nl\n")))
    assert cli(["submit", str(spec)]) == 2
    assert "field 'name'" in capsys.readouterr().err
    assert http.get(f"{api.url}/sweeps").json() == []
    assert not (api.settings.home / "lake").exists() or not list(
        (api.settings.home / "lake").rglob("sweep=nl*")
    )


def test_duckdb_settings_over_http_is_refused_and_odd_column_types_are_json(api: Server) -> None:
    r = http.post(f"{api.url}/sql", json={"sql": "SELECT * FROM duckdb_settings()"})
    assert r.status_code == 400 and "duckdb_settings is not allowed" in r.json()["error"]
    r = http.post(f"{api.url}/sql", json={"sql": "SELECT current_setting('allowed_directories') AS d"})
    assert r.status_code == 400 and str(api.settings.home) not in r.text
    odd = (
        "SELECT '\\xFF\\x00'::BLOB AS b, INTERVAL 1 DAY AS i, 1.5::DECIMAL(10, 2) AS d, ['nan'::DOUBLE] AS l, "
        "{'x': 'inf'::DOUBLE} AS s, MAP {'k': 1} AS m, uuid() AS u, TIME '12:00' AS t"
    )
    r = http.post(f"{api.url}/sql", json={"sql": odd})
    assert r.status_code == 200, r.text
    row = r.json()["rows"][0]
    assert (
        row["b"].startswith("base64:") and row["l"] == [None] and row["s"] == {"x": None} and row["d"] == 1.5
    )
    r = http.post(f"{api.url}/sql", json={"sql": "UPDATE EXTENSIONS"})
    assert r.status_code == 400 and "UPDATE EXTENSIONS is not allowed" in r.json()["error"]


def test_resume_over_http_continues_a_cancelled_sweep(server: Server) -> None:
    from tests.conftest import assert_verified

    spec = training_spec("api-resume")
    spec["axes"]["global_batch"] = [256, 512, 768, 1024, 1280, 1536, 1792, 2048]
    spec["fixed"].pop("global_batch")
    assert http.post(f"{server.url}/sweeps", json=spec).status_code == 201
    assert http.delete(f"{server.url}/sweeps/api-resume").json()["state"] == "cancelled"
    wait_done_or_cancelled(server.url, "api-resume")
    r = http.post(f"{server.url}/sweeps/api-resume/resume")
    assert r.status_code == 200 and r.json()["state"] in ("queued", "running", "done")
    done = wait_done(server.url, "api-resume")
    assert (done["state"], done["chunks_done"], done["rows_written"]) == (
        "done",
        done["chunks_total"],
        6912 * 8,
    )
    assert_verified(server.settings.queue_path, server.settings.lake, "api-resume", rows=6912 * 8)
    r = http.post(f"{server.url}/sweeps/ghost/resume")
    assert r.status_code == 404 and r.json()["field"] == "id"


def test_healthz_says_degraded_and_why_while_the_lake_refuses_chunks(
    home, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import assert_verified, lake_unwritable

    monkeypatch.setenv("CHIPSWEEP_FAULT_DELAY_S", "0.3")
    with Server(home.with_(chunk_size=2000, actors=2, lake_backoff_s=2.0)) as s:
        spec = training_spec("api-outage")
        spec["axes"]["global_batch"] = [256, 512, 768, 1024]
        spec["fixed"].pop("global_batch")
        assert http.post(f"{s.url}/sweeps", json=spec).status_code == 201
        wait_for(lambda: http.get(f"{s.url}/sweeps/api-outage").json()["chunks_done"] >= 2, 60, "two chunks")
        with lake_unwritable(home.lake):
            wait_for(
                lambda: http.get(f"{s.url}/healthz").json()["status"] == "degraded", 30, "degraded health"
            )
            health = http.get(f"{s.url}/healthz").json()
            assert "the lake refused a chunk" in health["reasons"][0] and not health["lake_state"]["ok"]
            assert http.get(f"{s.url}/sweeps/api-outage").json()["chunks_failed"] == 0
            metrics = http.get(f"{s.url}/metrics").text
            assert "chipsweep_lake_available 0" in metrics
        done = wait_done(s.url, "api-outage")
        assert (done["state"], done["chunks_failed"]) == ("done", 0)
        assert http.get(f"{s.url}/healthz").json()["status"] == "up"
    assert_verified(home.queue_path, home.lake, "api-outage", rows=6912 * 4)


def test_a_body_that_is_not_a_mapping_is_refused_and_never_read_as_a_path(api: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A body that parses to a string was handed to the Python API's spec reader, which reads a path: a body naming
    a file on the server that ends in .yaml or .json submitted (or echoed back) that file. Over HTTP a spec is a
    mapping; anything else is a 422 naming what it is, and nothing is read or queued (the UI's validate and submit
    endpoints too)."""
    on_server = tmp_path / "server-side.yaml"
    on_server.write_text(yaml.safe_dump(training_spec("from-a-server-file")))
    for body in (str(on_server), json.dumps(str(on_server)), "[1, 2]", "42"):
        for path in ("/sweeps", "/ui/data/validate", "/ui/data/submit"):
            r = http.post(f"{api.url}{path}", content=body, headers={"Content-Type": "application/yaml"})
            assert r.status_code == 422, (path, body, r.text)
            answer = r.json()
            problem = (answer.get("problems") or [answer])[0]
            assert problem["field"] == "(spec)" and "not a mapping" in problem["message"], (path, answer)
            assert "name, kind, axes" in str(problem["allowed"])
    assert http.get(f"{api.url}/sweeps").json() == []
