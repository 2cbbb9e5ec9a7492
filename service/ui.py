"""The web UI of `chipsweep serve`, at `/`: sweeps and their progress, a sweep's versions and chunk errors,
the frontier explorer (plotly, queries/chart.py), version diffs, the catalog with every number's source,
and a submit form that validates a spec as the API does.

Server-rendered Jinja2 pages (service/templates/) with a little JavaScript (service/static/ui.js) that
reads the JSON endpoints under /ui/data/; every asset, plotly.js included, is served by this app, so the
UI works offline. With CHIPSWEEP_TOKEN set, pages and data need a session: /ui/login checks the token
(a form POST, so it never appears in a URL or an access log) and sets an HttpOnly cookie holding its expiry
(12 hours on) and an HMAC of that under the token; a bearer token works for the data endpoints too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import plotly
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from chipsweep.queries import chart, output, runner
from chipsweep.queries.figure import figure_data
from chipsweep.queries.saved import META_REPEATS, frontier_objectives, saved_queries
from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.schemas.errors import ChipsweepError, SpecError
from chipsweep.schemas.spec import read_spec_body
from chipsweep.schemas.sweep import validate
from chipsweep.schemas.vocab import FINAL_STATES, PRECISIONS
from chipsweep.service import dispatch, python_api
from chipsweep.service.queue import Queue
from chipsweep.service.settings import Settings

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
log = logging.getLogger("chipsweep.ui")


def plain(value: Any) -> str:
    """A catalog value as a page shows it: lists joined, mappings as 'key: value' pairs, yes/no, '-' for nothing
    (the catalog page printed Python's reprs: ['host_link_gb_s'], {'host_memory_gb': ...}, True)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value) or "-"
    return "-" if value is None else str(value)


TEMPLATES.env.filters["plain"] = plain
STATIC = HERE / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
SESSION_COOKIE = "chipsweep_session"
CANDIDATES = 5_000  # faint points the explorer draws (a repeatable sample of the feasible rows)
FRONTIERS = ("pareto_training", "pareto_edge", "pareto_serving")  # what the explorer can draw (those that exist)
SPEC_PLACEHOLDER = """name: my-sweep
kind: training
axes:
  model: [llama3_8b]
  chip: [nvidia_h100_sxm, amd_mi300x]
  n_chips: {geometric: {start: 64, stop: 1024, factor: 2}}
  tp: [1, 2, 4, 8]
  pp: [1, 2, 4]
fixed: {global_batch: 1024, tokens: 1.0e12}
store: feasible
"""


class SessionRequired(ChipsweepError):
    """A data endpoint asked for without a session or a bearer token."""

    http_status = 401


class LoginRequired(Exception):
    """A page asked for without a session: answered by a redirect to the login form."""


SESSION_S = 12 * 3600  # a login lasts 12 hours (the cookie was the same for every login and never expired)


def session_value(token: str, expires: int | None = None) -> str:
    """What the session cookie holds: when it expires (Unix seconds) and an HMAC of that under the token (the token
    itself never leaves the server); a new value at each login, void after `SESSION_S` or once the token changes."""
    expires = int(time.time()) + SESSION_S if expires is None else expires
    mac = hmac.new(token.encode(), f"chipsweep-ui-session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def session_valid(cookie: str, token: str) -> bool:
    """Whether a session cookie was made under `token` and has not expired."""
    expires, _, _mac = cookie.partition(".")
    # ASCII digits, a Unix time's length: int() refuses '²³' and 5,000 digits, which isdigit() lets through
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12) or int(expires) < time.time():
        return False
    return _same(cookie, session_value(token, int(expires)))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def authorised(request: Request, token: str | None) -> bool:
    if not token:
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and session_valid(cookie, token):
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same(given.strip(), token)


def _eta(status: dict[str, Any]) -> float | None:
    rate = status.get("configs_per_s") or 0.0
    left = status["configurations"] - status.get("configurations_done", 0)
    if status["state"] in FINAL_STATES or rate <= 0:
        return None
    return left / rate


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def serving_spec(spec: dict[str, Any]) -> bool:
    """A serving sweep: an inference sweep that sets `concurrency` (continuous batching), whose frontier is
    pareto_serving's; other inference sweeps (static batches) are read on pareto_edge's objectives."""
    return spec.get("kind") == "inference" and ("concurrency" in (spec.get("axes") or {})
                                                or "concurrency" in (spec.get("fixed") or {}))


def router(settings: Settings, queue: Queue, catalog: Callable[[], Catalog] = load_catalog,
           refused: Callable[[], str | None] = lambda: None) -> APIRouter:
    """The UI's pages and data endpoints over this server's queue and lake; `refused()`: why the catalog files
    in force now are refused, if they are (every page says so above its content)."""

    def page_auth(request: Request) -> None:
        if not authorised(request, settings.token):
            raise LoginRequired(request.url.path)

    def data_auth(request: Request) -> None:
        if not authorised(request, settings.token):
            raise SessionRequired("a session (log in at /ui/login) or a bearer token is required",
                                 field="session", value=None, allowed="log in at /ui/login, or Authorization: Bearer")

    pages = [Depends(page_auth)]
    data = [Depends(data_auth)]
    r = APIRouter(include_in_schema=False)

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        # `refused()` reads the files as they are now: a refused edit shows on every page, not only in the log
        return TEMPLATES.TemplateResponse(request, name, {"auth": bool(settings.token), "catalog_refused": refused(),
                                                          **context})

    # ---- assets and the session ------------------------------------------------------------------
    @r.get("/ui/static/plotly.min.js")
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @r.get("/ui/static/{name}")
    def static(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise ChipsweepError(f"no static file {name!r}", field="name", value=name, allowed="ui.js, ui.css")
        return FileResponse(path, media_type="text/javascript" if name.endswith(".js") else "text/css")

    @r.get("/ui/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", next=next if next.startswith("/") else "/", error=None)

    @r.post("/ui/login")
    def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        if settings.token and not _same(token, settings.token):
            refused = render(request, "login.html", next=target, error="wrong token")
            refused.status_code = 401
            return refused
        resp = RedirectResponse(target, status_code=303)
        if settings.token:
            resp.set_cookie(SESSION_COOKIE, session_value(settings.token), httponly=True, samesite="strict", path="/",
                            max_age=SESSION_S)
        return resp

    @r.post("/ui/logout")
    def logout() -> Response:
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    # ---- pages ----------------------------------------------------------------------------------
    @r.get("/ui")
    @r.get("/ui/")
    def ui_home() -> Response:
        """The UI's pages live under /ui/ but its list of sweeps is at /: a typed /ui lands there."""
        return RedirectResponse("/", status_code=307)

    @r.get("/", response_class=HTMLResponse, dependencies=pages)
    def index(request: Request) -> HTMLResponse:
        return render(request, "index.html", sweeps=sweep_rows())

    @r.get("/ui/sweeps/{sweep_id}", response_class=HTMLResponse, dependencies=pages)
    def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
        try:
            detail = sweep_detail(sweep_id)
        except ChipsweepError as exc:  # a page, not the API's JSON: what was asked for, and what exists
            response = render(request, "error.html", status=exc.http_status, heading=f"No sweep {sweep_id}",
                              message=str(exc), allowed=exc.allowed if isinstance(exc.allowed, str) else None)
            response.status_code = exc.http_status
            return response
        return render(request, "sweep.html", s=detail, frontier=default_frontier(detail))

    @r.get("/ui/frontier", response_class=HTMLResponse, dependencies=pages)
    def frontier_page(request: Request) -> HTMLResponse:
        names = [q for q in FRONTIERS if q in saved_queries()]
        return render(request, "frontier.html", queries=names, params=dict(request.query_params),
                      objectives={q: objective_choices(q) for q in names}, precisions=PRECISIONS)

    @r.get("/ui/diff", response_class=HTMLResponse, dependencies=pages)
    def diff_page(request: Request, sweep: str = "", from_version: int | None = None,
                  to_version: int | None = None) -> HTMLResponse:
        return render(request, "diff.html", sweeps=sorted({s.name for s in queue.sweeps()}), sweep=sweep,
                      from_version=from_version, to_version=to_version)

    @r.get("/ui/catalog", response_class=HTMLResponse, dependencies=pages)
    def catalog_page(request: Request, kind: str = "chips") -> HTMLResponse:
        if kind not in ("chips", "models", "clusters"):
            kind = "chips"
        return render(request, "catalog.html", kind=kind, entries=catalog_entries(kind))

    @r.get("/ui/submit", response_class=HTMLResponse, dependencies=pages)
    def submit_page(request: Request) -> HTMLResponse:
        return render(request, "submit.html", placeholder=SPEC_PLACEHOLDER)

    # ---- data -----------------------------------------------------------------------------------
    @r.get("/ui/data/sweeps", dependencies=data)
    def data_sweeps() -> list[dict[str, Any]]:
        return sweep_rows()

    @r.get("/ui/data/sweeps/{sweep_id}", dependencies=data)
    def data_sweep(sweep_id: str) -> dict[str, Any]:
        return sweep_detail(sweep_id)

    @r.post("/ui/data/sweeps/{sweep_id}/cancel", dependencies=data)
    def data_cancel(sweep_id: str) -> dict[str, Any]:
        return queue.status(dispatch.cancel(queue, sweep_id).sweep_id)

    @r.post("/ui/data/sweeps/{sweep_id}/resume", dependencies=data)
    def data_resume(sweep_id: str) -> dict[str, Any]:
        """A failed sweep retries its failed chunks, a cancelled one continues (as `chipsweep resume`)."""
        return queue.status(dispatch.reopen(queue, sweep_id)[0].sweep_id)

    @r.get("/ui/data/lake", dependencies=data)
    def data_lake() -> dict[str, Any]:
        """What the explorer's filters offer: the models and chips in the lake, per kind, and the sweeps."""
        return lake_index()

    @r.get("/ui/data/frontier", dependencies=data)
    async def data_frontier(request: Request) -> dict[str, Any]:
        params = {k: v for k, v in request.query_params.items() if v != ""}
        name = params.pop("query", "pareto_training")
        try:
            n = int(params.pop("candidates", CANDIDATES))
        except ValueError:
            raise ChipsweepError("candidates: allowed: a whole number of faint points to draw (0: none)",
                                 field="candidates", value=request.query_params.get("candidates"),
                                 allowed=f"0 to {CANDIDATES}") from None
        if name not in FRONTIERS:
            raise ChipsweepError(f"query {name!r}: allowed: {', '.join(FRONTIERS)}", field="query", value=name,
                                 allowed=", ".join(FRONTIERS))
        return await run_in_threadpool(frontier_json, name, params, max(0, min(n, CANDIDATES)))

    @r.get("/ui/data/diff", dependencies=data)
    async def data_diff(sweep: str, from_version: int, to_version: int) -> dict[str, Any]:
        # a serving sweep is compared on pareto_serving's objectives: the query reads that from the recorded spec
        params: dict[str, Any] = {"sweep": sweep, "from_version": from_version, "to_version": to_version}
        table = await run_in_threadpool(python_api.query, "frontier_diff", params)
        note = ""
        if table.num_rows == 0 and serving_spec(queue.spec(sweep, to_version)):
            # speeds alone did not move (a price change never does): compare with the cost per token too
            table = await run_in_threadpool(python_api.query, "frontier_diff", {**params, "frontier": "serving_cost"})
            note = ("Output tokens/s per chip and per user did not move; compared with USD per million tokens as a third "
                    "objective (frontier_diff --param frontier=serving_cost):")
        rows = runner.table_records(table)
        context = await run_in_threadpool(diff_context, sweep, rows, (from_version, to_version))
        return {"rows": rows, "figure": chart.diff_chart_json(rows, context), "note": note}

    def diff_context(sweep: str, rows: list[dict[str, Any]], versions: tuple[int, int]) -> dict[int, list[dict[str, Any]]]:
        """Each version's whole frontier of the models that moved (training and serving sweeps: their queries take a
        version), drawn behind what entered and left: one query per version; context only, so a query that fails
        (a timeout, a row cap) draws none rather than failing the diff."""
        kinds = {str(r.get("kind")) for r in rows}
        if not rows or not kinds <= {"training", "serving"}:
            return {}
        name = "pareto_training" if kinds == {"training"} else "pareto_serving"
        models = {str(r["model"]) for r in rows}
        out: dict[int, list[dict[str, Any]]] = {}
        try:
            for v in versions:
                table = python_api.query(name, {"sweep": sweep, "version": v})
                out[v] = [dict(r, version=v) for r in runner.table_records(table) if str(r.get("model")) in models]
        except ChipsweepError as exc:
            log.warning("version diff of %s: no context frontiers (%s)", sweep, exc)
            return {}
        return out

    @r.get("/ui/data/catalog/{kind}", dependencies=data)
    def data_catalog(kind: str) -> list[dict[str, Any]]:
        if kind not in ("chips", "models", "clusters"):
            raise ChipsweepError(f"catalog kind {kind!r}", field="kind", value=kind, allowed="chips, models, clusters")
        return catalog_entries(kind)

    @r.post("/ui/data/validate", dependencies=data)
    async def data_validate(request: Request) -> JSONResponse:
        """A spec checked as `POST /sweeps` checks it, without queueing it."""
        body = await request.body()
        try:
            sweep = await run_in_threadpool(validate, read_spec_body(body), catalog())
        except SpecError as exc:
            return JSONResponse({"ok": False, **exc.as_dict()}, status_code=422)
        return JSONResponse({"ok": True, "name": sweep.name, "kind": sweep.kind, "configurations": sweep.configurations,
                             "axes": {a.name: len(a.values) for a in sweep.axes}})

    @r.post("/ui/data/submit", dependencies=data)
    async def data_submit(request: Request) -> JSONResponse:
        """`POST /sweeps` for a browser session: the same checks, the same queue."""
        spec = read_spec_body(await request.body())
        status = await run_in_threadpool(lambda: python_api.submit(spec, wait=False, settings=settings, queue=queue,
                                                                   catalog=catalog()))
        return JSONResponse(status, status_code=201)

    # ---- helpers --------------------------------------------------------------------------------
    def sweep_rows() -> list[dict[str, Any]]:
        out = []
        for row in queue.sweeps():
            s = queue.status(row.sweep_id)
            s["eta_s"] = _eta(s)
            s["progress"] = s.get("configurations_done", 0) / s["configurations"] if s["configurations"] else 1.0
            out.append(s)
        return out

    def sweep_detail(sweep_id: str) -> dict[str, Any]:
        s = queue.status(sweep_id)
        s["eta_s"] = _eta(s)
        s["progress"] = s.get("configurations_done", 0) / s["configurations"] if s["configurations"] else 1.0
        s["versions"] = queue.versions(s["sweep_id"])
        s["spec"] = queue.spec(s["sweep_id"], s["version"])
        s["axes"] = queue.axes(s["sweep_id"], s["version"])
        return s

    def default_frontier(s: dict[str, Any]) -> dict[str, Any] | None:
        """The chart a sweep page opens with: its first model's frontier (a finished version only). A training
        sweep and a serving sweep (an inference sweep that sets `concurrency`) draw their own rows; an edge sweep
        (static batches) or an ASIC sweep draws the edge frontier of every sweep, catalog chips and ASICs together."""
        fixed = s["spec"].get("fixed") or {}
        models = s["axes"].get("model") or ([fixed["model"]] if fixed.get("model") else [])
        if s["state"] != "done" or not models:
            return None
        name = "pareto_training" if s["kind"] == "training" else "pareto_serving" if serving_spec(s["spec"]) \
            else "pareto_edge"
        params = {"query": name, "model": models[0]}
        if name != "pareto_edge":
            # this page's version, an older one too (the queries' default, the sweep's latest, drew the newest
            # version's frontier under an older version's header)
            params["sweep"] = s["sweep_id"]
            params["version"] = str(s["version"])
        return params

    def objective_choices(query: str) -> list[str]:
        """The objectives the explorer offers for a frontier query: the planner's goals among what its `objectives`
        parameter accepts (queries/saved.py `frontier_objectives`), not every numeric output."""
        kinds = [p.objective_kind for p in saved_queries()[query].params if p.objective_kind]
        return frontier_objectives(kinds[0]) if kinds else []

    def ran(versions: list[dict[str, Any]], axis: str, known: list[str]) -> list[str]:
        """The ids of `known` the versions ran on `axis`: each one's axis as the queue resolved it (a catalog filter
        such as {class: datacenter} as the ids it chose), else the ids its spec names (`runner.spec_named`: a fixed
        value, a list; every known id for a filter the queue holds no record of)."""
        out: set[str] = set()
        for v in versions:
            values = queue.axes(str(v["sweep"]), int(v["version"])).get(axis)
            if isinstance(values, list) and values:
                out.update(str(x) for x in values)
            else:
                out.update(runner.spec_named([str(v["spec_json"])], axis, known))
        return sorted(out & set(known))

    def lake_index() -> dict[str, Any]:
        index: dict[str, Any] = {}
        for kind in ("training", "inference", "asic"):
            # from the dimension tables of each sweep's latest version and the queue's record: a few rows, not the facts
            latest = f"(SELECT sweep, version FROM versions WHERE latest AND kind = '{kind}')"
            versions = python_api.sql(f"SELECT sweep, version, spec_json FROM versions WHERE latest AND kind = '{kind}'"
                                      " ORDER BY 1, 2").to_pylist()
            if not versions:
                index[kind] = {"models": []} | ({} if kind == "asic" else {"chips": []})
                continue
            # what the sweeps ran (the dimension tables list each version's whole catalog)
            table = python_api.sql(f"SELECT DISTINCT model FROM models WHERE (sweep, version) IN {latest} ORDER BY 1")
            index[kind] = {"models": ran(versions, "model", table.column("model").to_pylist())}
            if kind != "asic":
                chips = python_api.sql(f"SELECT DISTINCT chip FROM chips WHERE (sweep, version) IN {latest} ORDER BY 1")
                index[kind]["chips"] = ran(versions, "chip", chips.column("chip").to_pylist())
        index["sweeps"] = sorted({s.name for s in queue.sweeps()})
        return index

    def frontier_json(name: str, params: dict[str, str], n: int) -> dict[str, Any]:
        """The frontier's rows and chart; with `n` > 0, over a sample of `n` of the feasible rows (the page
        asks for the frontier alone first, so it draws as soon as the frontier is known)."""
        t0 = time.perf_counter()
        front = python_api.query(name, params)
        candidates, total = runner.sample_candidates(name, params, n) if n else (None, None)
        models = sorted(set(front.column("model").to_pylist())) if "model" in front.column_names else []
        if len(models) != 1:
            message = "choose one model to draw its frontier"
            if not models:  # nothing on a frontier: a limit that leaves no row says how close the rows came, else
                # which chips had rows that no objective value could place
                near = python_api.beyond_limits(name, params)
                unplaced = output.unplaced_note(python_api.left_off(name, params))
                message = ("; ".join(near) if near else "no configuration has every objective. " + unplaced[0].upper()
                           + unplaced[1:] if unplaced else "no feasible configuration")
            return {"rows": runner.table_records(front), "figure": None, "models": models, "message": message}
        fig = figure_data(front, candidates, candidates_total=total)
        # with the faint points, the chips no point can stand for (every row lacks an objective: no price or power)
        unplaced = output.unplaced_note(python_api.left_off(name, params), front) if n else ""
        # rows identical to one on the frontier but for their idx, listed once (runner.collapse_repeats)
        repeats = int((front.schema.metadata or {}).get(META_REPEATS, b"0") or 0)
        return {"rows": runner.table_records(front), "figure": chart.chart_json(fig, candidates=max(n, 1)),
                "candidates": n, "unplaced": unplaced, "repeats": repeats,
                "objectives": [fig.x.column, fig.y.column] + ([fig.colour.column] if fig.colour else []),
                "candidates_total": fig.candidates_total, "seconds": round(time.perf_counter() - t0, 3)}

    def catalog_entries(kind: str) -> list[dict[str, Any]]:
        table = getattr(catalog(), kind)
        entries = [{k: _finite(v) for k, v in table[key].model_dump(mode="json", by_alias=True, exclude_none=True).items()}
                   for key in sorted(table)]
        if kind == "chips":  # which published runs fitted each chip's constants, or what they are extrapolated from
            from chipsweep.workers.provenance import catalog_calibration

            cal = catalog_calibration(catalog())
            for e in entries:
                e.update(calibration_rows(cal[e["id"]]))
        return entries

    return r


def calibration_rows(cal: dict[str, Any]) -> dict[str, str]:
    """A chip's calibration (workers/provenance.py) as two catalog-page rows: training and serving."""
    t, sv = cal["training"], cal["serving"]
    eff = ", ".join(f"{k} {t[k]:.2f}" for k in ("mm_eff_max", "mm_eff_max_fp8") if k in t)
    engines = "; ".join(f"{name}{' (default)' if name == sv['default_engine'] else ''}: {text}"
                        for name, text in sv["calibrated_on"].items())
    return {f"calibrated on (training, {t['framework']})": f"{t['calibrated_on']} ({eff})" if eff else t["calibrated_on"],
            "calibrated on (serving)": engines}


def install(app: Any, settings: Settings, queue: Queue, catalog: Callable[[], Catalog] = load_catalog,
            refused: Callable[[], str | None] = lambda: None) -> None:
    """Mount the UI on the API's app: its routes (reading `catalog()`: the catalog in force; `refused()`: why the
    newest catalog files are refused), and the login redirect for pages without a session."""
    app.include_router(router(settings, queue, catalog, refused))

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/ui/login?next={exc.args[0]}", status_code=303)
