"""The web UI in a real browser: `chipsweep serve` started on 127.0.0.1, a sweep run through it, and
Debian's headless Chromium (driven by Playwright) through the sweep list, a sweep page, the frontier
explorer, the catalog and the submit form. Screenshots go to test-output/ui/ (CI keeps them).

Outside CI a missing browser skips these tests, saying why; with CI=true it fails them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chipsweep.queries.errors import QueryError
from chipsweep.queries.runner import run_saved, run_sql
from chipsweep.queries.saved import bind
from chipsweep.schemas.columns import FACTS
from tests.conftest import PYTHON, REPO, Sessions, free_port, subprocess_env, training_spec, wait_for

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("CHIPSWEEP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("CHIPSWEEP_TEST_OUTPUT") or REPO / "test-output") / "ui"
TOKEN = "ui-test-token-7f3a"
PRICED_CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_40gb", "amd_mi300x"]  # rental prices: finite costs to compare
# the flags this machine's closed network needs (no background connections, no sandbox as root)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _browser_or_skip() -> None:
    why = None
    if not Path(CHROMIUM).exists():
        why = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "playwright is not installed (pip install -e .[test])"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need a browser in CI: {why}")
        pytest.skip(why)


class Server:
    def __init__(self, url: str, home: Path, log: Path) -> None:
        self.url, self.home, self.log = url, home, log
        self.http = httpx.Client(base_url=url, timeout=60)

    def lake(self) -> str:
        return str(self.home / "lake")


def _serve(sessions: Sessions, home: Path, **env: str) -> Server:
    port = free_port()
    log = home.parent / f"serve-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    sessions.popen([PYTHON, "-m", "chipsweep", "serve", "--port", str(port), "--log-level", "info"],
                   subprocess_env(home, **env), stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 90, "chipsweep serve to answer")
    return Server(url, home, log)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _browser_or_skip()
    sessions = Sessions()
    try:
        srv = _serve(sessions, tmp_path_factory.mktemp("ui") / "home")
        spec = training_spec("ui-sweep", store="feasible")
        spec["axes"]["chip"] = PRICED_CHIPS
        r = srv.http.post("/sweeps", json=spec)
        assert r.status_code == 201, r.text
        wait_for(lambda: srv.http.get("/sweeps/ui-sweep").json()["state"] == "done", 180, "the sweep to finish")
        yield srv
    finally:
        sessions.kill_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


def _shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _frontier_points(pg: Any) -> list[tuple[float, float]]:
    """The bold frontier points the plotly chart on the page holds (what is drawn, read from the DOM)."""
    pg.wait_for_function("() => { const d = document.getElementById('chart'); return d && d.data && "
                         "d.data.some(t => t.meta === 'frontier'); }", timeout=60_000)
    traces = pg.evaluate("() => document.getElementById('chart').data.filter(t => t.meta === 'frontier')"
                         ".map(t => [Array.from(t.x), Array.from(t.y)])")
    return sorted((float(x), float(y)) for xs, ys in traces for x, y in zip(xs, ys, strict=True))


def _query_points(table: Any, x: str = "time_to_train_days", y: str = "cost_usd") -> list[tuple[float, float]]:
    return sorted(zip(table[x].to_pylist(), table[y].to_pylist(), strict=True))


def _same_points(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return len(a) == len(b) and all(p == pytest.approx(q, rel=1e-6) for p, q in zip(a, b, strict=True))


def test_the_list_shows_the_finished_sweep_with_its_progress(server: Server, page: Any) -> None:
    page.goto(server.url + "/")
    row = page.locator("tr[data-sweep='ui-sweep@1']")
    assert row.get_attribute("data-state") == "done"
    assert "6,912" in row.inner_text() and "100 %" in row.inner_text()
    assert row.locator("progress").get_attribute("value") == "1.0000"
    _shot(page, "sweeps")


def test_the_sweep_page_draws_exactly_the_frontier_the_saved_query_returns(server: Server, page: Any) -> None:
    page.goto(server.url + "/ui/sweeps/ui-sweep@1")
    assert page.locator("#state").inner_text() == "done"
    assert page.locator("#versions tbody tr").count() == 1
    drawn = _frontier_points(page)
    front = run_saved("pareto_training", {"model": "llama3_8b", "sweep": "ui-sweep"}, lake=server.lake())
    assert _same_points(drawn, _query_points(front)) and len(drawn) >= 2
    # then the faint feasible configurations behind it
    page.wait_for_function("() => document.getElementById('chart').dataset.stage === 'candidates'", timeout=60_000)
    assert _frontier_points(page) == drawn
    n_candidates = page.evaluate("() => document.getElementById('chart').data.filter(t => t.meta === 'candidates')"
                                 ".reduce((n, t) => n + t.x.length, 0)")
    assert n_candidates > 10 * len(drawn)
    _shot(page, "sweep-page")


def test_a_serving_sweeps_page_draws_its_own_throughput_per_chip_against_speed_per_user(
        server: Server, page: Any) -> None:
    # an inference sweep that sets concurrency is a serving sweep: its page draws pareto_serving over its own rows,
    # not the edge frontier (decode speed against J/token of every sweep), which it drew until 2026-12-05
    spec = {"name": "ui-serving", "kind": "inference", "store": "feasible",
            "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm", "nvidia_a100_sxm_80gb"], "n_chips": [1, 2],
                     "concurrency": [1, 4, 16, 64, 256]},
            "fixed": {"engine": "vllm", "prompt_len": 512, "gen_len": 256}}
    r = server.http.post("/sweeps", json=spec)
    assert r.status_code == 201, r.text
    wait_for(lambda: server.http.get("/sweeps/ui-serving").json()["state"] == "done", 120, "the serving sweep")
    page.goto(server.url + "/ui/sweeps/ui-serving@1")
    drawn = _frontier_points(page)
    front = run_saved("pareto_serving", {"model": "llama3_8b", "sweep": "ui-serving"}, lake=server.lake())
    assert front.num_rows >= 2
    assert _same_points(drawn, _query_points(front, "output_tokens_per_s_per_chip", "tokens_per_s_per_user"))
    assert "pareto_serving" in page.locator("#chart").inner_text()
    # a typed /ui lands on the list of sweeps
    home = server.http.get("/ui", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/"


def test_the_explorer_names_a_chip_the_frontier_cannot_place_for_want_of_a_price(server: Server, page: Any) -> None:
    # the GB200 has no rental or purchase price in the catalog: every row of its costs NaN, so it is absent from the
    # time-cost frontier however fast; the page says so beside the chart instead of leaving it out in silence
    spec = {"name": "ui-unpriced", "kind": "training", "store": "feasible",
            "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm", "nvidia_gb200_per_gpu"],
                     "n_chips": [64, 256]},
            "fixed": {"global_batch": 1024, "tokens": 3.0e11}}
    r = server.http.post("/sweeps", json=spec)
    assert r.status_code == 201, r.text
    wait_for(lambda: server.http.get("/sweeps/ui-unpriced").json()["state"] == "done", 120, "the sweep to finish")
    params = {"model": "llama3_8b", "sweep": "ui-unpriced"}
    front = run_saved("pareto_training", params, lake=server.lake())
    assert set(front["chip"].to_pylist()) == {"nvidia_h100_sxm"}
    gb200 = run_sql("SELECT min(t.time_to_train_days) AS d FROM latest_training t JOIN chips c USING (sweep, version, "
                    "chip_id) WHERE t.sweep = 'ui-unpriced' AND c.chip = 'nvidia_gb200_per_gpu' AND t.fits",
                    lake=server.lake())["d"][0].as_py()
    page.goto(server.url + "/ui/frontier?query=pareto_training&model=llama3_8b&sweep=ui-unpriced")
    assert _same_points(_frontier_points(page), _query_points(front))
    page.wait_for_function("() => document.getElementById('chart').dataset.stage === 'candidates'", timeout=60_000)
    note = page.locator("#chart-note").inner_text()
    assert "Left off, every row lacking an objective (the catalog has no price for the chip" in note
    assert f"nvidia_gb200_per_gpu (no price; best time_to_train_days {gb200:.4g})" in note
    # the GB200 alone: no frontier at all; the explorer says why (it said 'no feasible configuration')
    alone = server.http.get("/ui/data/frontier", params={**params, "query": "pareto_training", "candidates": 0,
                                                          "chips": "nvidia_gb200_per_gpu"}).json()
    assert alone["figure"] is None and alone["message"].startswith("no configuration has every objective. Left off")
    assert "nvidia_gb200_per_gpu (no price" in alone["message"]


def test_the_explorer_filters_by_chip_and_a_click_copies_the_configuration(server: Server, page: Any) -> None:
    # a chip with feasible configurations that is not on the unfiltered frontier: filtering draws its own
    unfiltered = run_saved("pareto_training", {"model": "llama2_70b"}, lake=server.lake())
    others = sorted(set(PRICED_CHIPS) - set(unfiltered["chip"].to_pylist()))
    assert others, "the test sweep should have a chip off the frontier"
    chip = next(c for c in others if run_saved("pareto_training", {"model": "llama2_70b", "chips": c},
                                                 lake=server.lake()).num_rows)
    page.goto(server.url + f"/ui/frontier?query=pareto_training&model=llama2_70b&chips={chip}")
    drawn = _frontier_points(page)
    front = run_saved("pareto_training", {"model": "llama2_70b", "chips": chip}, lake=server.lake())
    assert set(front["chip"].to_pylist()) == {chip}
    assert _same_points(drawn, _query_points(front))
    assert page.locator("#frontier-rows tbody tr").count() == front.num_rows
    page.wait_for_function("() => document.getElementById('chips').options.length > 0", timeout=60_000)  # filters in
    _shot(page, "frontier-explorer")
    # click the first frontier point (plotly's own click event, as a user's click raises it)
    page.evaluate("""() => { const d = document.getElementById('chart');
        const ti = d.data.findIndex(t => t.meta === 'frontier');
        d.emit('plotly_click', {points: [{curveNumber: ti, pointNumber: 0, customdata: d.data[ti].customdata[0]}]}); }""")
    copied = json.loads(page.locator("#copied").inner_text())
    assert copied["chip"] == chip and copied["model"] == "llama2_70b"
    assert {"tp", "pp", "dp", "micro_batch", "sweep", "version", "idx"} <= set(copied)


def test_the_explorer_can_keep_only_chips_fitted_on_their_own_runs(server: Server, page: Any) -> None:
    params = {"model": "llama2_70b", "calibration": "measured"}
    front = run_saved("pareto_training", params, lake=server.lake())
    assert front.num_rows and not any(str(c).startswith("extrapolated") for c in front["calibrated_on"].to_pylist())
    page.goto(server.url + "/ui/frontier?query=pareto_training&model=llama2_70b&calibration=measured")
    assert _same_points(_frontier_points(page), _query_points(front))
    assert page.locator("#calibration").input_value() == "measured"


def test_the_explorer_draws_frontier_points_of_extrapolated_efficiency_hollow(server: Server, page: Any) -> None:
    """The MI300X has no published run of its own (`calibrated_on` 'extrapolated from ...'): its frontier points are
    drawn hollow in the browser, the H100's and A100's solid, and the chart's title says what hollow means."""
    front = run_saved("pareto_training", {"model": "llama2_70b"}, lake=server.lake())
    want = sorted((float(d), str(c).startswith("extrapolated")) for d, c in zip(
        front["time_to_train_days"].to_pylist(), front["calibrated_on"].to_pylist(), strict=True))
    assert any(h for _, h in want)
    page.goto(server.url + "/ui/frontier?query=pareto_training&model=llama2_70b")
    _frontier_points(page)  # the chart is drawn
    traces = page.evaluate("() => document.getElementById('chart').data.filter(t => t.meta === 'frontier')"
                           ".map(t => [Array.from(t.x), Array.from(t.marker.symbol)])")
    got = sorted((float(x), s == "circle-open") for xs, ss in traces for x, s in zip(xs, ss, strict=True))
    assert [h for _, h in got] == [h for _, h in want] and _same_points(
        [(x, 0.0) for x, _ in got], [(x, 0.0) for x, _ in want])
    assert "hollow" in page.evaluate("() => document.getElementById('chart').layout.title.text")


def test_the_explorer_draws_the_frontier_within_a_deadline(server: Server, page: Any) -> None:
    # the sweep's model with the most frontier rows (one configuration can dominate a model's whole frontier)
    fronts = {m: run_saved("pareto_training", {"model": m}, lake=server.lake())
              for m in ("llama2_70b", "gpt3_175b", "gpt3_13b", "llama3_8b")}
    model, full = max(fronts.items(), key=lambda kv: kv[1].num_rows)
    days = sorted(full["time_to_train_days"].to_pylist())
    assert len(days) >= 2, {m: f.num_rows for m, f in fronts.items()}
    deadline = f"{(days[-2] + days[-1]) / 2:.6g}"  # between the two slowest frontier rows
    front = run_saved("pareto_training", {"model": model, "max_days": deadline}, lake=server.lake())
    assert front.num_rows and max(front["time_to_train_days"].to_pylist()) <= float(deadline) < days[-1]
    page.goto(server.url + f"/ui/frontier?query=pareto_training&model={model}&max_days={deadline}")
    assert _same_points(_frontier_points(page), _query_points(front))
    assert page.locator("#max_days").input_value() == deadline
    # a deadline no row meets says how close the rows came ('no feasible configuration' read as if none existed)
    page.goto(server.url + f"/ui/frontier?query=pareto_training&model={model}&max_days=0.0001")
    note = page.locator("#chart-note")
    note.filter(has_text="no row meets").wait_for(timeout=30_000)
    assert f"the best time_to_train_days without it is {min(days):.3g}" in note.inner_text(), note.inner_text()


def test_the_submit_form_refuses_an_invalid_spec_naming_the_field(server: Server, page: Any) -> None:
    page.goto(server.url + "/ui/submit")
    spec = training_spec("ui-bad")
    spec["axes"]["chip"] = ["no_such_chip"]
    page.fill("#spec", json.dumps(spec))
    page.click("#validate")
    problem = page.locator("li.problem").first
    problem.wait_for()
    assert problem.get_attribute("data-field") == "axes.chip[0]" and "no_such_chip" in problem.inner_text()
    # read as the CLI prints it: message; allowed: ...
    assert '"no_such_chip": unknown chip id; allowed: catalog chip ids' in problem.inner_text(), problem.inner_text()
    page.click("#submit")
    page.wait_for_timeout(300)
    assert page.url.endswith("/ui/submit")  # nothing queued, the form stays
    assert server.http.get("/sweeps/ui-bad").status_code == 404
    _shot(page, "submit-refused")
    # a valid spec validates, and submitting it opens its page
    page.fill("#spec", json.dumps(training_spec("ui-good", store="feasible")))
    page.click("#validate")
    page.locator("p.ok").wait_for()
    assert "6,912 configurations" in page.locator("p.ok").inner_text()
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/ui/sweeps/ui-good(@|%40)1$"))


def test_the_catalog_shows_each_number_with_its_source(server: Server, page: Any) -> None:
    page.goto(server.url + "/ui/catalog?kind=chips")
    entry = page.locator("details.entry[data-id^='nvidia_h100_sxm ']")
    entry.locator("summary").click()
    text = entry.inner_text()
    assert "memory_bandwidth_gb_s" in text and "sources" in text
    # and which published runs fitted its constants; a chip without runs says what it is extrapolated from
    assert "calibrated on (training, megatron)" in text and "megatron_bridge" in text
    assert "vllm: mlenergy_vllm (vllm on nvidia_h100_sxm)" in text
    b300 = page.locator("details.entry[data-id^='nvidia_b300_hgx ']")
    b300.locator("summary").click()
    assert "extrapolated from nvidia_gb200_per_gpu (same core architecture" in b300.inner_text()
    # values read as text, not Python's reprs of lists, mappings and booleans
    for shown in (text, b300.inner_text()):
        assert not re.search(r"\['|\{'|': |\bTrue\b|\bFalse\b", shown), re.findall(r".{30}(?:\['|\{').{30}", shown)[:3]
    _shot(page, "catalog")


def test_the_sweep_page_cancels_and_resumes_a_running_sweep(server: Server, page: Any) -> None:
    spec = {"name": "ui-cancel", "kind": "training", "store": "frontier",
            "axes": {"chip": PRICED_CHIPS, "model": ["llama3_8b", "llama2_70b"],
                     "n_chips": {"geometric": {"start": 8, "stop": 8192, "factor": 2}}, "tp": [1, 2, 4, 8],
                     "pp": [1, 2, 4, 8, 16], "micro_batch": [1, 2, 4, 8, 16], "recompute": ["none", "selective", "full"],
                     "global_batch": list(range(256, 256 * 41, 256)), "zero_stage": [0, 1, 2, 3]},
            "fixed": {"tokens": 1e12}}
    r = server.http.post("/sweeps", json=spec)
    assert r.status_code == 201, r.text
    try:
        page.goto(server.url + "/ui/sweeps/ui-cancel@1")
        # the page shows the fixed values beside the axes, and its version row follows the sweep's state live
        assert "tokens" in page.locator("#fixed").inner_text()
        page.wait_for_function("() => document.querySelector('#versions tr[data-version=\"1\"] .version-state')"
                               ".textContent === document.getElementById('state').textContent", timeout=30_000)
        page.click("#cancel")
        page.wait_for_function("() => document.getElementById('state').textContent === 'cancelled'", timeout=30_000)
        assert page.locator("#cancel").count() == 0
        _shot(page, "sweep-cancelled")
        # reloaded, the cancelled version says how many of its chunks ran, not the planned count alone
        page.reload()
        ran = server.http.get("/sweeps/ui-cancel/history").json()
        v = ran[-1] if isinstance(ran, list) else ran["versions"][-1]
        cell = page.locator("#versions tr[data-version=\"1\"] .chunks-evaluated").inner_text().split("\n")[0]
        assert cell == f"{v['chunks_evaluated_run']} of {v['chunks_evaluated']}", cell
        page.click("#resume")
        page.wait_for_function("() => ['queued', 'running', 'done'].includes(document.getElementById('state').textContent)",
                               timeout=30_000)
        assert server.http.get("/sweeps/ui-cancel").json()["state"] in ("queued", "running", "done")
    finally:
        server.http.delete("/sweeps/ui-cancel")  # the rest of the module does not wait for it


def test_a_price_change_shows_which_chunks_were_repriced_evaluated_and_carried(
        server: Server, page: Any, tmp_path: Path) -> None:
    overlay = tmp_path / "price.yaml"
    overlay.write_text("chips:\n  - {id: amd_mi300x, usd_per_hour: 0.75}\n")
    done = subprocess.run([PYTHON, "-m", "chipsweep", "rerun", "ui-sweep", "--changed", "--wait", "--json"],
                          env=subprocess_env(server.home, CHIPSWEEP_CATALOG=str(overlay)),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    [made] = json.loads(done.stdout.strip().splitlines()[-1])
    assert made["version"] == 2 and made["chunks_evaluated"] == 0 and made["chunks_repriced"] > 0
    page.goto(server.url + "/ui/sweeps/ui-sweep@2")
    row = page.locator("#versions tr[data-version='2']")
    cells = {way: row.locator(f"td.chunks-{way}").inner_text() for way in ("evaluated", "repriced", "carried")}
    assert cells["evaluated"].strip() == "0"
    assert cells["repriced"].startswith(str(made["chunks_repriced"]))
    assert cells["carried"].startswith(str(made["chunks_carried"]))
    from chipsweep.service.queue import Queue

    ranges = Queue(server.home / "queue.db").versions("ui-sweep")[-1]["chunk_ranges"]
    assert ranges["repriced"] and ranges["repriced"] in cells["repriced"] and ranges["carried"] in cells["carried"]
    _shot(page, "sweep-repriced")
    # the diff draws each version's whole frontier behind what entered and left: a point that stayed but moved (the
    # MI300X rows, their price halved) shows at its old and new cost; axes titled with units, training columns only
    page.goto(server.url + "/ui/diff?sweep=ui-sweep&from_version=1&to_version=2")
    page.wait_for_function("() => { const d = document.getElementById('chart'); return d && d.data && "
                           "d.data.some(t => t.meta === 'context'); }", timeout=60_000)
    drawn = page.evaluate("() => document.getElementById('chart').data.filter(t => t.meta === 'context')"
                          ".map(t => [t.name, Array.from(t.x), Array.from(t.y)])")
    assert [name.split(" (")[0] for name, _, _ in drawn] == ["v1 frontier", "v2 frontier"]
    models = sorted({r["model"] for r in server.http.get(
        "/ui/data/diff", params={"sweep": "ui-sweep", "from_version": 1, "to_version": 2}).json()["rows"]})
    for (_, xs, ys), version in zip(drawn, (1, 2), strict=True):
        want = [p for m in models for p in _query_points(run_saved(
            "pareto_training", {"model": m, "sweep": "ui-sweep", "version": version}, lake=server.lake()))]
        assert _same_points(sorted(zip(xs, ys, strict=True)), sorted(want)), version
    titles = page.evaluate("() => [document.getElementById('chart').layout.xaxis.title.text, "
                           "document.getElementById('chart').layout.yaxis.title.text]")
    assert "[days]" in titles[0] and "[USD]" in titles[1], titles
    heads = page.locator("#diff-rows thead th").all_inner_texts()
    assert "cost_usd" in heads and "decode_tokens_per_s" not in heads, heads
    _shot(page, "diff-repriced")


def test_with_a_token_the_ui_needs_a_login_and_the_token_stays_out_of_urls_and_logs(
        tmp_path: Path, browser: Any) -> None:
    sessions = Sessions()
    try:
        srv = _serve(sessions, tmp_path / "home", CHIPSWEEP_TOKEN=TOKEN)
        assert srv.http.get("/ui/data/sweeps").status_code == 401
        assert srv.http.get("/", follow_redirects=False).headers["location"].startswith("/ui/login")
        context = browser.new_context()
        page = context.new_page()
        page.goto(srv.url + "/ui/frontier")
        assert "/ui/login" in page.url
        page.fill("#token", "wrong")
        page.click("button[type=submit]")
        assert page.locator("#login-error").inner_text() == "wrong token"
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/frontier$"))
        [cookie] = [c for c in context.cookies() if c["name"] == "chipsweep_session"]
        assert cookie["httpOnly"] and TOKEN not in cookie["value"]
        assert TOKEN not in page.url
        with httpx.Client(base_url=srv.url, timeout=60, cookies={"chipsweep_session": cookie["value"]}) as session:
            assert session.get("/ui/data/sweeps").status_code == 200
        # a login lasts 12 hours: the cookie says so, and one past its expiry or tampered with is refused
        from chipsweep.service.ui import SESSION_S, session_value

        assert 0 < cookie["expires"] - time.time() <= SESSION_S + 60
        expires, _, mac = cookie["value"].partition(".")
        for stale in (session_value(TOKEN, int(time.time()) - 1), f"{int(expires) + 3600}.{mac}",
                      session_value("another-token"), f"0{expires}.{mac}", "\u00b2\u00b3.abc", "9" * 5000 + ".x"):
            # raw header bytes (latin-1: the superscripts as a browser could send them); refused, never a 500
            header = ("chipsweep_session=" + stale).encode("latin-1")
            assert httpx.get(srv.url + "/ui/data/sweeps", headers={"cookie": header}, timeout=60).status_code == 401, stale[:40]
        context.close()
        assert TOKEN not in srv.log.read_text()
    finally:
        sessions.kill_all()


def test_the_explorer_offers_the_models_the_sweeps_ran_and_opens_on_a_frontier(server: Server, page: Any) -> None:
    """The model list came from the dimension tables, which list each version's whole catalog: the explorer opened
    on aquila2_34b, which no sweep ran, and answered 'not in the lake'. It offers what the sweeps' specs name."""
    index = server.http.get("/ui/data/lake").json()
    ran = set(training_spec()["axes"]["model"])
    assert ran <= set(index["training"]["models"]) and "aquila2_34b" not in index["training"]["models"]
    assert set(index["training"]["chips"]) >= set(PRICED_CHIPS) and len(index["training"]["chips"]) < 20
    page.goto(server.url + "/ui/frontier")
    assert len(_frontier_points(page)) >= 1


def test_the_explorer_offers_the_edge_frontiers_cost_scope_only_there(server: Server, page: Any) -> None:
    """pareto_edge keeps one frontier per cost scope (an ASIC's manufacturing cost, an accelerator's price, a whole
    system's): the explorer offers the scope beside it, kept from the link, and hides it for the other frontiers."""
    page.goto(server.url + "/ui/frontier?query=pareto_edge&cost_scope=system")
    assert page.locator("#cost_scope").is_visible()
    assert page.locator("#cost_scope").input_value() == "system"
    page.wait_for_function("() => document.getElementById('sweep').options.length > 1")  # the filters are filled in
    page.select_option("#query", "pareto_training")
    assert not page.locator("#cost_scope").is_visible()


def test_an_older_versions_page_draws_that_versions_frontier_and_a_bad_diff_says_why(server: Server, page: Any) -> None:
    """A sweep resubmitted with fewer chip counts is version 2; version 1's page drew version 2's frontier (the
    saved queries read a sweep's latest version) under version 1's header. Each version's page now draws its own
    (pareto_training's `version`), and the diff page, asked for a version the sweep does not have, says so where the
    chart would be (it stayed blank, the refusal only in the browser's console)."""
    spec = {"name": "ui-versions", "kind": "training", "store": "feasible",
            "axes": {"model": ["llama3_8b"], "chip": PRICED_CHIPS, "n_chips": [64, 128, 256, 512]},
            "fixed": {"global_batch": 1024, "tokens": 3.0e11}}
    for n_chips in ([64, 128, 256, 512], [64]):
        spec["axes"]["n_chips"] = n_chips
        r = server.http.post("/sweeps", json=spec)
        assert r.status_code == 201, r.text
        version = r.json()["version"]
        wait_for(lambda v=version: server.http.get(f"/sweeps/ui-versions@{v}").json()["state"] == "done", 120,
                 f"version {version} to finish")
    assert version == 2
    v1 = run_saved("pareto_training", {"model": "llama3_8b", "sweep": "ui-versions", "version": 1}, lake=server.lake())
    v2 = run_saved("pareto_training", {"model": "llama3_8b", "sweep": "ui-versions"}, lake=server.lake())
    assert not _same_points(_query_points(v1), _query_points(v2))
    assert set(v2["n_chips"].to_pylist()) == {64} and len(set(v1["n_chips"].to_pylist())) > 1
    page.goto(server.url + "/ui/sweeps/ui-versions@1")
    assert _same_points(_frontier_points(page), _query_points(v1))
    page.goto(server.url + "/ui/sweeps/ui-versions@2")
    assert _same_points(_frontier_points(page), _query_points(v2))
    page.goto(server.url + "/ui/diff?sweep=ui-versions&from_version=1&to_version=7")
    note = page.locator("#diff-note")
    note.filter(has_text="no version 7").wait_for(timeout=30_000)
    assert "allowed: 1, 2" in note.inner_text() and "error" in (note.get_attribute("class") or "")
    _shot(page, "diff-refused")


def test_the_explorer_offers_the_chips_a_catalog_filter_chose_not_the_whole_catalog(server: Server) -> None:
    """A sweep whose chips are a catalog filter (`{vendor: AMD}`) named no ids in its spec, so the explorer offered
    every catalog chip (Apple, Hailo, Jetson: 'no feasible configuration' when picked). It offers the ids the queue
    resolved the filter to."""
    spec = {"name": "ui-filter", "kind": "training", "store": "feasible",
            "axes": {"model": ["llama3_8b"], "chip": {"vendor": "AMD"}, "n_chips": [64]},
            "fixed": {"global_batch": 1024, "tokens": 3.0e11}}
    r = server.http.post("/sweeps", json=spec)
    assert r.status_code == 201, r.text
    wait_for(lambda: server.http.get("/sweeps/ui-filter").json()["state"] == "done", 120, "the sweep to finish")
    chose = set(run_sql("SELECT DISTINCT c.chip FROM chips c JOIN latest_training t USING (sweep, version, chip_id) "
                        "WHERE t.sweep = 'ui-filter'", lake=server.lake())["chip"].to_pylist())
    assert chose and all(c.startswith("amd_") for c in chose)
    offered = set(server.http.get("/ui/data/lake").json()["training"]["chips"])
    assert chose <= offered
    assert not any(c.startswith(("apple_", "hailo_", "nvidia_jetson")) for c in offered), sorted(offered)


def test_an_unknown_sweeps_page_is_a_page_and_only_chart_pages_load_plotly(server: Server, page: Any) -> None:
    """/ui/sweeps/nope answered the API's JSON; it is a 404 page naming the sweeps that exist. The 3 MB plotly.js
    loaded on every page, the login and catalog ones too; it loads where a chart is drawn."""
    response = page.goto(server.url + "/ui/sweeps/nope")
    assert response.status == 404 and "html" in response.headers["content-type"]
    assert "nope" in page.locator("h2").inner_text() and "ui-sweep" in page.locator("#error").inner_text()
    for path, charts in (("/ui/catalog", False), ("/ui/submit", False), ("/", False), ("/ui/frontier", True),
                         ("/ui/diff", True), ("/ui/sweeps/ui-sweep@1", True)):
        html = server.http.get(path).text
        assert ("plotly.min.js" in html) == charts, path


@pytest.mark.parametrize(("query", "kinds"), [("pareto_training", ("training",)), ("pareto_serving", ("inference",)),
                                              ("pareto_edge", ("inference", "asic"))])
def test_the_explorer_offers_the_goals_among_the_objectives_its_query_accepts(home, query: str, kinds: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """The explorer offered every numeric output as an objective (idle_chips, first_stage_layers, global_batch_run,
    mem_gb, prefill_pool_busy, dram_gb): counts a layout happens to have, not goals. It offers the outputs the schema
    maximises and the costs, energies and times -- each one a column the query takes; a script may still rank by
    the others. No browser needed: the page's list is in its HTML."""
    from fastapi.testclient import TestClient

    from chipsweep.queries.saved import frontier_objectives
    from chipsweep.service.api import create_app

    with TestClient(create_app(home, dispatch=False)) as client:
        html = client.get("/ui/frontier", params={"query": query}).text
    spans = dict(re.findall(r'<span class="objectives" data-query="(\w+)"[^>]*>([^<]*)</span>', html))
    offered = [c.strip() for c in spans[query].split(",")]
    assert offered and len(set(offered)) == len(offered)

    def accepts(column: str) -> bool:
        other = next(c for c in offered if c != column)
        try:
            bind(query, {"objectives": f"{column},{other}"})
        except QueryError:
            return False
        return True

    assert all(accepts(c) for c in offered)
    kind = "edge" if query == "pareto_edge" else kinds[0]
    assert offered == frontier_objectives(kind)
    assert not {"idle_chips", "first_stage_layers", "global_batch_run", "mem_per_chip_gb", "mem_gb",
                "prefill_pool_busy", "dram_gb", "die_area_mm2"} & set(offered)
    if query != "pareto_edge":  # ... and the queries still take the rest from a script
        numeric = {c.name for c in FACTS[kinds[0]] if c.is_objective}
        assert {c for c in numeric if accepts(c)} == numeric
    wanted = {"pareto_training": {"time_to_train_days", "cost_usd", "energy_mwh", "co2_t", "tokens_per_s", "mfu"},
              "pareto_serving": {"output_tokens_per_s_per_chip", "tokens_per_s_per_user", "usd_per_million_tokens",
                                 "energy_per_token_j", "ttft_s", "tpot_s"},
              "pareto_edge": {"decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd"}}[query]
    assert wanted <= set(offered)
