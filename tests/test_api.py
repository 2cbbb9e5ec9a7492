"""The HTTP API over real HTTP on 127.0.0.1 (uvicorn, dispatcher thread, local Ray), and the CLI
against it with --server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from chipsweep.service.api import create_app
from chipsweep.service.cli import main as cli
from tests.conftest import assert_exact, free_port, read_facts, training_spec, wait_for

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
    wait_for(lambda: httpx.get(f"{url}/sweeps/{sweep_id}").json()["state"] in ("done", "failed"), 120, f"{sweep_id} to finish")
    return httpx.get(f"{url}/sweeps/{sweep_id}").json()


def test_submit_json_and_yaml_then_status_list_and_lake(server: Server) -> None:
    r = httpx.post(f"{server.url}/sweeps", json=training_spec("api-json"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["sweep_id"], body["version"], body["configurations"], body["chunks_total"]) == ("api-json", 1, 6912, 4)
    r = httpx.post(f"{server.url}/sweeps", content=yaml.safe_dump(training_spec("api-yaml", store="feasible")),
                   headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    done = wait_done(server.url, "api-json")
    assert (done["state"], done["chunks_done"], done["rows_written"]) == ("done", 4, 6912)
    assert_exact(read_facts(server.settings.lake, "training", "api-json", 1), 6912)
    feasible = wait_done(server.url, "api-yaml@1")
    assert feasible["state"] == "done" and 0 < feasible["rows_written"] < 6912
    listed = httpx.get(f"{server.url}/sweeps").json()
    assert [s["sweep_id"] for s in listed] == ["api-yaml", "api-json"]
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["ok"] and health["dispatcher"]["alive"]


@pytest.mark.parametrize(("mutate", "field", "value"), [
    (lambda s: s.update(speed="fast"), "speed", "fast"),
    (lambda s: s["axes"].update(chip=["nvidia_h100_sxm", "abacus"]), "axes.chip[1]", "abacus"),
    (lambda s: s["axes"].update(tp=[]), "axes.tp", []),
    (lambda s: s["axes"].update(micro_batch=["one"]), "axes.micro_batch[0]", "one"),
    (lambda s: s.update(name="../../escape"), "name", "../../escape"),
])
def test_invalid_specs_are_422_with_field_value_allowed_and_nothing_queued(server: Server, mutate, field, value) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec("bad")
    mutate(spec)
    r = httpx.post(f"{server.url}/sweeps", json=spec)
    assert r.status_code == 422
    body = r.json()
    assert (body["field"], body["value"]) == (field, value) and body["allowed"]
    assert httpx.get(f"{server.url}/sweeps").json() == []


def test_size_cap_and_unknown_ids_and_catalog(server: Server) -> None:
    spec = training_spec("too-big")
    spec["axes"]["n_chips"] = {"range": {"start": 8, "stop": 8 * 1000, "step": 8}}  # 1,152,000 configurations
    r = httpx.post(f"{server.url}/sweeps", json=spec)
    assert r.status_code == 422 and "1,000,000" in r.json()["allowed"] and "CHIPSWEEP_MAX_CONFIGS" in r.json()["allowed"]
    r = httpx.get(f"{server.url}/sweeps/ghost")
    assert r.status_code == 404 and r.json()["field"] == "id" and r.json()["value"] == "ghost"
    r = httpx.post(f"{server.url}/sweeps", content=b"name: [", headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422 and "YAML" in r.text
    chips = httpx.get(f"{server.url}/catalog/chips").json()
    assert any(c["id"] == "nvidia_h100_sxm" for c in chips)
    r = httpx.get(f"{server.url}/catalog/rocks")
    assert r.status_code == 404 and r.json()["allowed"] == "chips, models, clusters"
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "/sweeps/{sweep_id}" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_cancel_over_http(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = training_spec("api-cancel")
    spec["axes"]["global_batch"] = [256, 512, 768, 1024, 1280, 1536, 1792, 2048]
    spec["fixed"].pop("global_batch")
    assert httpx.post(f"{server.url}/sweeps", json=spec).status_code == 201
    r = httpx.delete(f"{server.url}/sweeps/api-cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    status = wait_done_or_cancelled(server.url, "api-cancel")
    assert status["chunks_done"] < status["chunks_total"]
    assert_exact(read_facts(server.settings.lake, "training", "api-cancel", 1), status["rows_written"])


def wait_done_or_cancelled(url: str, sweep_id: str) -> dict[str, Any]:
    wait_for(lambda: httpx.get(f"{url}/sweeps/{sweep_id}").json()["chunks_running"] == 0, 60, "in-flight chunks")
    return httpx.get(f"{url}/sweeps/{sweep_id}").json()


def test_cli_against_the_server(server: Server, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(training_spec("cli-remote", store="feasible")))
    assert cli(["submit", str(spec), "--server", server.url, "--wait", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["sweep_id"], out["configurations"]) == ("cli-remote", 6912) and out["rows_written"] > 0
    assert cli(["status", "cli-remote", "--server", server.url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert list(status)[:9] == ["sweep_id", "version", "state", "configurations", "chunks_total", "chunks_done",
                                "chunks_failed", "rows_written", "configs_per_s"] and status["state"] == "done"
    assert cli(["list", "--server", server.url]) == 0 and "cli-remote" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**training_spec("x"), "store": "everything"}))
    assert cli(["submit", str(bad), "--server", server.url]) == 2
    assert "field 'store'" in capsys.readouterr().err


def test_bearer_token(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with Server(home.with_(token="s3cret", actors=1)) as s:
        assert httpx.get(f"{s.url}/healthz").status_code == 200
        r = httpx.get(f"{s.url}/sweeps")
        assert r.status_code == 401 and r.json()["field"] == "Authorization"
        assert httpx.get(f"{s.url}/sweeps", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{s.url}/sweeps", headers={"Authorization": "Bearer s3cret"}).json() == []
        monkeypatch.setenv("CHIPSWEEP_TOKEN", "s3cret")
        assert cli(["list", "--server", s.url, "--json"]) == 0


def test_queries_and_sql_endpoints(server: Server) -> None:
    runner = pytest.importorskip("chipsweep.queries.runner")
    assert httpx.post(f"{server.url}/sweeps", json=training_spec("api-q", store="feasible")).status_code == 201
    wait_done(server.url, "api-q")
    r = httpx.post(f"{server.url}/sql", json={"sql": "SELECT count(*) AS n FROM training"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0]["n"] > 0
    r = httpx.get(f"{server.url}/queries/pareto_training", params={"model": "llama3_8b"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"]
    r = httpx.get(f"{server.url}/queries/no_such_query")
    assert r.status_code in (400, 404) and r.json()["error"]
    assert runner is not None
