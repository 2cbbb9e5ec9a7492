"""The scheduler inside `chipsweep serve`: a catalog edit re-runs an on-change sweep on its own, and a
`chipsweep rerun` racing it from the command line makes no second version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chipsweep.service.cli import main as cli
from chipsweep.service.queue import Queue
from tests.conftest import assert_exact, http, read_facts, wait_for
from tests.test_api import Server
from tests.test_rerun import small_spec

pytestmark = pytest.mark.usefixtures("ray_local")


def test_server_scheduler_reruns_on_catalog_edit_and_a_racing_cli_rerun_adds_nothing(  # type: ignore[no-untyped-def]
    home, tmp_path, monkeypatch, capsys
) -> None:
    path = tmp_path / "overlay.yaml"
    path.write_text("")
    monkeypatch.setenv("CHIPSWEEP_CATALOG", str(path))
    spec: dict[str, Any] = small_spec("sched", schedule={"on_change": True})
    with Server(home.with_(chunk_size=8, actors=2)) as s:
        r = http.post(f"{s.url}/sweeps", json=spec)
        assert r.status_code < 300, r.text

        def state(sweep_id: str) -> str:
            got = http.get(f"{s.url}/sweeps/{sweep_id}")
            return str(got.json()["state"]) if got.status_code == 200 else "absent"

        wait_for(lambda: state("sched@1") == "done", 120, "version 1")
        path.write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: 0.05\n")
        capsys.readouterr()
        assert cli(["rerun", "--changed", "--json"]) == 0  # races the server's scheduler
        [item] = json.loads(capsys.readouterr().out)
        assert item["outcome"] in ("rerun", "raced", "deferred") and item["sweep_id"] == "sched"
        wait_for(lambda: state("sched@2") == "done", 120, "version 2")
        queue = Queue(home.queue_path)
        wait_for(lambda: all(r.state == "done" for r in queue.sweeps()), 30, "all versions done")
        assert [r.version for r in queue.sweeps()] == [2, 1]  # one new version, not two
        v2 = queue.versions("sched")[-1]
        assert (v2["chunks_evaluated"], v2["chunks_repriced"], v2["chunks_carried"]) == (0, 2, 4)
        assert_exact(read_facts(home.lake, "training", "sched", 2), 48)


def test_a_broken_overlay_leaves_the_last_good_catalog_in_force_for_requests_and_says_so(  # type: ignore[no-untyped-def]
    home, tmp_path, monkeypatch
) -> None:
    """README: an edit that breaks the catalog is refused and the last good catalog stays in force. The scheduler
    kept it, but every POST /sweeps and GET /catalog answered 422 with no field (the CLI printed "field 'None'"), and
    /healthz said up."""
    from tests.conftest import training_spec

    path = tmp_path / "overlay.yaml"
    path.write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: 2.5\n")
    monkeypatch.setenv("CHIPSWEEP_CATALOG", str(path))
    with Server(home.with_(chunk_size=2000, actors=1)) as s:
        assert http.get(f"{s.url}/catalog/chips").status_code == 200  # the good catalog, seen
        path.write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: [0.9\n")
        r = http.post(f"{s.url}/sweeps", json=training_spec("broken-overlay"))
        assert r.status_code == 201, r.text
        chips = {c["id"]: c for c in http.get(f"{s.url}/catalog/chips").json()}
        assert chips["nvidia_h100_sxm"]["usd_per_hour"] == 2.5  # the last good overlay's price
        health = http.get(f"{s.url}/healthz").json()
        assert health["status"] == "degraded"
        # and every page of the web UI says so above its content (only the log and /healthz did)
        page = http.get(f"{s.url}/ui/catalog").text
        assert 'id="catalog-refused"' in page and "overlay.yaml" in page and "last good catalog stays in force" in page
        assert any(
            "catalog files are refused" in why
            and "overlay.yaml" in why
            and "last good one stays in force" in why
            for why in health["reasons"]
        )
        # broken another way, and then mended, with no request reading the catalog in between: /healthz follows
        # the files (it named the first error until some request loaded the catalog again)
        path.write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hr: 0.5\n")
        wait_for(lambda: any("usd_per_hr" in w for w in http.get(f"{s.url}/healthz").json()["reasons"]), 60,
                 "health naming the second error")
        path.write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: 3.0\n")  # mended
        wait_for(lambda: http.get(f"{s.url}/healthz").json()["status"] == "up", 60, "health up once the file is mended")
        assert 'id="catalog-refused"' not in http.get(f"{s.url}/").text
        assert {c["id"]: c for c in http.get(f"{s.url}/catalog/chips").json()}["nvidia_h100_sxm"][
            "usd_per_hour"
        ] == 3.0
        wait_for(
            lambda: not any("catalog" in w for w in http.get(f"{s.url}/healthz").json()["reasons"]),
            60,
            "health without the catalog reason",
        )
