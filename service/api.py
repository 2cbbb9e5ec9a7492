"""The HTTP API of `chipsweep serve` (FastAPI; OpenAPI at /docs), with the dispatcher in a thread.

POST /sweeps (spec as JSON or YAML) . GET /sweeps . GET /sweeps/{id} . DELETE /sweeps/{id} .
GET /queries/{name}?k=v . GET /queries/{name}/left-off?k=v . POST /sql . GET /catalog/{chips|models|clusters} . GET /healthz

Errors are JSON objects with `error`, `field`, `value` and `allowed` (422 for an invalid spec, with every
problem under `problems`; values are shortened, never echoed whole). When CHIPSWEEP_TOKEN is set every
endpoint but /healthz and the docs needs `Authorization: Bearer <token>`, and /healthz without it says
only `up` or `degraded` (paths, the dispatcher and Ray need the token).

What the server refuses before doing any work: a body over CHIPSWEEP_MAX_BODY_BYTES (413, before it is
read), YAML aliases, nesting deeper than 32 levels and duplicate keys (422). Queries run within the
limits of `Settings.query_limits` (memory, temp space, concurrency, time, rows).

The dispatcher runs in a supervised child process (`service/ray_supervisor.py`) unless this process is
already a Ray driver (tests, notebooks), where it runs in a thread as before.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from chipsweep.lake.views import remove_stale_temp_dirs
from chipsweep.queries import runner
from chipsweep.queries.saved import META_REPEATS, saved_queries
from chipsweep.schemas.catalog import Catalog, CatalogError, load_catalog
from chipsweep.schemas.errors import ChipsweepError, jsonable, pydantic_allowed
from chipsweep.schemas.spec import read_spec_body
from chipsweep.schemas.vocab import SweepState
from chipsweep.service import metrics, python_api, ui
from chipsweep.service.dispatch import Dispatcher, cancel, ensure_ray, reopen, run_until
from chipsweep.service.queue import Queue, parse_id
from chipsweep.service.ray_supervisor import DispatcherProcess
from chipsweep.service.scheduler import SchedulerThread
from chipsweep.service.settings import Settings

log = logging.getLogger("chipsweep.api")

SPEC_EXAMPLE = """name: gpt3-everywhere
kind: training
axes:
  model: [gpt3_175b, llama2_70b]
  chip: {class: datacenter_training}
  n_chips: {geometric: {start: 64, stop: 8192, factor: 2}}
  tp: [1, 2, 4, 8]
  pp: {geometric: {start: 1, stop: 64, factor: 2}}
  micro_batch: [1, 2, 4]
  recompute: [none, selective, full]
fixed: {global_batch: 1536, tokens: 300e9}
store: feasible
"""



class ApiError(ChipsweepError):
    """An error of the HTTP layer itself (auth, an empty body, an unknown route parameter)."""

    def __init__(self, status: int, error: str, field: str, value: Any, allowed: str) -> None:
        self.http_status = status
        super().__init__(error, field=field, value=value, allowed=allowed)


class SweepStatus(BaseModel):
    """`GET /sweeps/{id}`: the CONTRACT.md status keys, plus detail."""

    model_config = ConfigDict(extra="allow")
    sweep_id: str
    version: int
    state: SweepState  # never `preparing`: a re-run placing its carried files shows as queued
    configurations: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    rows_written: int
    configs_per_s: float


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str
    limit: int | None = None


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413 before the app reads it: by Content-Length when
    given, else by counting what arrives (chunked), so a 50 MB body is never held nor echoed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(send, int(declared))
                return
        seen = 0
        refused = False

        async def counted() -> dict[str, Any]:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    raise _TooLarge()
            return message

        started = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:  # the app answered a body cut short (a form parser's 400): answer 413 instead
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, seen)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not refused:
                raise
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps({"error": f"request body too large: more than {self.limit:,} bytes",
                           "field": "(body)", "value": f"{size:,} bytes",
                           "allowed": f"at most {self.limit:,} bytes (CHIPSWEEP_MAX_BODY_BYTES)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def same_secret(given: str, expected: str) -> bool:
    """A constant-time comparison that takes any header text (a non-ASCII header is a wrong token, not
    a TypeError): both sides compared as bytes."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


class DispatcherThread:
    """The dispatcher, restarted after an unexpected error, stopped with the server."""

    def __init__(self, queue: Queue, settings: Settings) -> None:
        self.queue = queue
        self.settings = settings
        self.dispatcher = Dispatcher(queue, settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="chipsweep-dispatcher", daemon=True)
        self.error: str | None = None

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                run_until(self.queue, self.settings, stop=self.stop, dispatcher=self.dispatcher)
            except Exception as exc:  # keep serving; report it on /healthz
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("dispatcher stopped; restarting in 2 s")
                self.dispatcher.close()
                self.stop.wait(2.0)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def detail(self) -> dict[str, Any]:
        return {"mode": "thread", "alive": self.alive, "running": self.dispatcher.running,
                "actors": len(self.dispatcher.actors), "error": self.error}


def _process_detail(proc: DispatcherProcess) -> dict[str, Any]:
    return {"mode": "process", "alive": proc.alive, "running": proc.state == "up", "actors": None,
            "error": proc.reason}


def create_app(settings: Settings | None = None, *, dispatch: bool = True) -> FastAPI:
    """The API over the queue at `settings.queue_path`; `dispatch` runs the dispatcher in a thread."""
    settings = settings or Settings.from_env()
    queue = Queue(settings.queue_path, synchronous=settings.queue_sync)
    state: dict[str, Any] = {"dispatcher": None, "ray": None, "started": time.time()}
    http_limits = settings.query_limits(timeout_s=settings.sql_timeout_s, row_cap=settings.sql_max_rows)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import ray

        worker = None
        supervised = None
        remove_stale_temp_dirs()  # DuckDB temp directories of queries killed with an earlier server
        if dispatch:
            if ray.is_initialized():  # this process is a Ray driver already (tests, a notebook): a thread
                ensure_ray(settings)
                worker = DispatcherThread(queue, settings)
                worker.thread.start()
                state["dispatcher"] = worker
            else:  # the usual server: Ray in a supervised child, so its death never takes HTTP down
                supervised = DispatcherProcess(settings).start()
                state["ray"] = supervised
            state["scheduler"] = SchedulerThread(queue)
            state["scheduler"].start()
        try:
            yield
        finally:
            if state.get("scheduler") is not None:
                state["scheduler"].close()
            if worker is not None:
                worker.stop.set()
                worker.thread.join(timeout=30)
                worker.dispatcher.close()
            if supervised is not None:
                supervised.stop()

    # the docs pages from files the package ships: FastAPI's own load Swagger UI from a CDN, blank without internet
    app = FastAPIOffline(
        title="chipsweep",
        description="Sweeps of LLM models x chips x clusters x layouts; results as Parquet; frontiers in SQL.",
        version=metadata.version("chipsweep"),
        lifespan=lifespan,
    )

    def authorised(request: Request) -> bool:
        if not settings.token:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same_secret(token.strip(), settings.token)

    def auth(request: Request) -> None:
        if not authorised(request):
            header = request.headers.get("authorization", "")
            raise ApiError(401, "missing or wrong bearer token", "Authorization", "(hidden)" if header else None,
                           "Bearer <CHIPSWEEP_TOKEN>")

    protected = [Depends(auth)]

    @app.exception_handler(ChipsweepError)
    async def _chipsweep_error(_: Request, exc: ChipsweepError) -> JSONResponse:
        """Every refusal, whichever layer raised it: {error, field, value, allowed[, problems]}."""
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(exc.as_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()[:20]
        first = errs[0] if errs else {}
        return JSONResponse({"error": "invalid request", "field": ".".join(str(p) for p in first.get("loc", ())),
                             "value": jsonable(first.get("input")), "allowed": pydantic_allowed(first),
                             "problems": [{"field": ".".join(str(p) for p in e.get("loc", ())),
                                           "value": jsonable(e.get("input")), "allowed": pydantic_allowed(e)}
                                          for e in errs]}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not a refusal: logged with its traceback, answered as JSON without internals."""
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); it is logged", "field": None,
                             "value": None, "allowed": None}, status_code=500)

    @app.exception_handler(StarletteHTTPException)  # the router's own 404 / 405 too (FastAPI's is a subclass)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body: dict[str, Any] = {"error": str(exc.detail), "field": None, "value": None, "allowed": None}
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route: the paths there are
            paths = sorted({str(getattr(r, "path", "")) for r in app.routes if getattr(r, "include_in_schema", False)})
            body.update(error=f"no such path: {request.url.path}", field="path", value=request.url.path, allowed=paths)
        elif exc.status_code == 405:
            # every route whose path matches (the Allow header names only the first one's methods)
            methods = sorted({m for r in app.routes if r.matches(request.scope)[0] != Match.NONE
                              for m in (getattr(r, "methods", None) or ())})
            body.update(error=f"{request.method} is not allowed on {request.url.path}", field="method",
                        value=request.method, allowed=methods)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    # ---- sweeps -------------------------------------------------------------------------------
    @app.post("/sweeps", status_code=201, response_model=SweepStatus, dependencies=protected,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/yaml": {"schema": {"type": "string"}, "example": SPEC_EXAMPLE},
                  "application/json": {"schema": {"type": "object"}}}}},
              summary="Submit a sweep spec (JSON or YAML); refused with 422 before anything is queued. Submitted again "
                      "under a name whose latest version is done, its unchanged chunks are carried; `reevaluate=true` "
                      "evaluates every chunk")
    async def post_sweep(request: Request, reevaluate: bool = False) -> dict[str, Any]:
        body = await request.body()
        if not body.strip():
            raise ApiError(422, "empty body", "(spec)", None, "a sweep spec as JSON or YAML")

        def parse_and_submit() -> dict[str, Any]:
            # parsing, validation, the catalog and the dimension files: off the event loop
            supervised = state.get("ray")
            cpus = supervised.cpus if supervised is not None else None
            return python_api.submit(read_spec_body(body), wait=False, settings=settings, queue=queue, cpus=cpus,
                                     catalog=catalog_in_force(), reevaluate=reevaluate)

        return await run_in_threadpool(parse_and_submit)

    @app.get("/sweeps", response_model=list[SweepStatus], dependencies=protected, summary="All sweep versions, newest first")
    def list_sweeps() -> list[dict[str, Any]]:
        return [queue.status(r.sweep_id) for r in queue.sweeps()]

    @app.get("/sweeps/{sweep_id}", response_model=SweepStatus, dependencies=protected,
             summary="Progress of a sweep: NAME (latest version) or NAME@VERSION")
    def get_sweep(sweep_id: str) -> dict[str, Any]:
        return queue.status(sweep_id)

    @app.get("/sweeps/{sweep_id}/history", dependencies=protected,
             summary="The versions of a sweep: what triggered each, what changed, which chunks were evaluated, re-priced "
                     "and carried (`chipsweep history --json`)")
    def sweep_history(sweep_id: str) -> list[dict[str, Any]]:
        return queue.versions(parse_id(sweep_id)[0])

    @app.delete("/sweeps/{sweep_id}", response_model=SweepStatus, dependencies=protected,
                summary="Cancel a queued or running sweep; committed chunks stay in the lake (409 if it is already over)")
    def cancel_sweep(sweep_id: str) -> dict[str, Any]:
        row = cancel(queue, sweep_id)
        return queue.status(row.sweep_id)

    @app.post("/sweeps/{sweep_id}/resume", response_model=SweepStatus, dependencies=protected,
              summary="Retry a failed sweep's failed chunks, or continue a cancelled sweep")
    def resume_sweep(sweep_id: str) -> dict[str, Any]:
        row, _ = reopen(queue, sweep_id)
        return queue.status(row.sweep_id)

    # ---- queries ------------------------------------------------------------------------------
    def get_query(name: str, request: Request) -> dict[str, Any]:
        table = python_api.query(name, dict(request.query_params), limits=http_limits)
        return _rows(table)

    # one documented path per saved query, its parameters from the query's header (the OpenAPI page lists what each
    # takes); the generic path answers the same, and names the queries when one is not saved
    for saved in saved_queries().values():
        app.add_api_route(f"/queries/{saved.name}", _named_query(get_query, saved.name), methods=["GET"],
                          dependencies=protected, summary=f"{saved.name}: {saved.answers}", tags=["queries"],
                          openapi_extra={"parameters": [_query_param(p) for p in saved.params]})
    app.add_api_route("/queries/{name}", get_query, methods=["GET"], dependencies=protected, tags=["queries"],
                      summary="Run a saved query by name; parameters as ?k=v (`chipsweep query --list`)")

    @app.get("/queries/{name}/left-off", dependencies=protected,
             summary="The chips a frontier query cannot place (no catalog price or power); parameters as ?k=v")
    def get_left_off(name: str, request: Request) -> dict[str, Any]:
        return {"chips": runner.json_safe(python_api.left_off(name, dict(request.query_params), limits=http_limits))}

    @app.post("/sql", dependencies=protected, summary="Read-only SQL over the lake's views")
    async def post_sql(request: Request) -> dict[str, Any]:
        body = await request.body()
        text = body.decode("utf-8", "replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                text = SqlRequest.model_validate_json(body).sql
            except ValueError:
                raise ApiError(422, "invalid body", "sql", jsonable(text),
                               'a JSON object {"sql": "SELECT ..."} or the SQL as text') from None
        table = await run_in_threadpool(python_api.sql, text, limits=http_limits)
        return await run_in_threadpool(_rows, table)

    # ---- catalog and health -------------------------------------------------------------------
    @app.get("/catalog/{kind}", dependencies=protected, summary="Catalog entries (every number with its source)")
    def get_catalog(kind: str) -> list[dict[str, Any]]:
        if kind not in ("chips", "models", "clusters"):
            raise ApiError(404, f"unknown catalog kind '{kind}'", "kind", kind, "chips, models, clusters")
        catalog = catalog_in_force()
        table = getattr(catalog, kind)
        entries = [table[k].model_dump(mode="json", by_alias=True, exclude_none=True) for k in sorted(table)]
        if kind == "chips":  # which published runs fitted each chip's constants, as `chipsweep catalog show` says
            from chipsweep.workers.provenance import catalog_calibration

            cal = catalog_calibration(catalog)
            for e in entries:
                e["calibration"] = cal[e["id"]]
        return entries

    def catalog_in_force() -> Catalog:
        """The catalog a request uses: its files as they are, or, where an edit broke them, the last good one the
        scheduler holds (README: the last good catalog stays in force); with none good yet, 503 naming the file."""
        sched = state.get("scheduler")
        try:
            state["catalog"], state["catalog_error"] = load_catalog(), None
            return state["catalog"]
        except CatalogError as exc:
            good = state.get("catalog") or (sched.scheduler.catalog if sched is not None else None)
            state["catalog_error"] = str(exc)
            if good is not None:
                log.warning("catalog refused, the last good one stays in force: %s", exc)
                return good
            err = CatalogError(f"the catalog files are refused and this server has no earlier good catalog: {exc}",
                               field="CHIPSWEEP_CATALOG", value=os.environ.get("CHIPSWEEP_CATALOG"),
                               allowed="catalog files that load (fix the file and line named)")
            err.http_status = 503
            raise err from None

    def catalog_refused() -> str | None:
        """Why the catalog files as they are now are refused, if they are (a load is cached by the file's mtime): the
        error a past request saw went stale once the file changed again, and /healthz kept naming it."""
        with contextlib.suppress(ChipsweepError):  # none good yet: the error is recorded all the same
            catalog_in_force()
        return state.get("catalog_error")

    def health() -> dict[str, Any]:
        """up or degraded, the reasons, and the detail: queue and lake, dispatcher, Ray, the lake's state."""
        reasons: list[str] = []
        sched = state.get("scheduler")
        refused = catalog_refused()
        if refused:
            good = state.get("catalog") or (sched.scheduler.catalog if sched is not None else None)
            kept = "the last good one stays in force" if good is not None else "no good one yet"
            reasons.append(f"the catalog files are refused ({refused}); {kept}")
        worker, supervised = state["dispatcher"], state["ray"]
        dispatcher: dict[str, Any] | None = None
        ray_health: dict[str, Any] | None = None
        if worker is not None:
            dispatcher = worker.detail()
            if not worker.alive:
                reasons.append(f"the dispatcher thread stopped: {worker.error}")
        if supervised is not None:
            dispatcher = _process_detail(supervised)
            ray_health = supervised.health()
            if supervised.state == "starting":
                reasons.append("Ray is starting")
            elif supervised.state != "up":
                what = "reconnecting to RAY_ADDRESS" if ray_health["reconnecting"] else f"Ray {supervised.state}"
                reasons.append(f"{what}: {supervised.reason}" if supervised.reason else what)
        lake = queue.note("lake") or {"ok": True}
        waiting = queue.waiting_chunks()
        if not lake.get("ok", True):
            reasons.append(f"the lake refused a chunk: {lake.get('reason')}; {waiting} chunks waiting")
        return {
            "status": "degraded" if reasons else "up", "ok": not reasons, "reasons": reasons,
            "queue": str(settings.queue_path), "lake": settings.lake,
            "dispatcher": dispatcher, "ray": ray_health,
            "lake_state": {**{k: v for k, v in lake.items() if k != "updated_at"}, "chunks_waiting": waiting},
            "uptime_s": round(time.time() - state["started"], 1),
        }

    @app.get("/healthz", summary="Liveness: up or degraded; with the token, why and the detail")
    def healthz(request: Request) -> dict[str, Any]:
        detail = health()
        if not authorised(request):
            return {"status": detail["status"]}
        return detail

    @app.get("/metrics", dependencies=protected, response_class=PlainTextResponse,
             summary="Prometheus metrics: sweeps and chunks by state, configurations/s, lake bytes, Ray and lake health")
    def get_metrics() -> PlainTextResponse:
        snap = metrics.collect(settings.queue_path)
        supervised = state["ray"]
        if supervised is not None:
            snap.ray = supervised.health()
        return PlainTextResponse(metrics.render(snap), media_type=metrics.CONTENT_TYPE)

    ui.install(app, settings, queue, catalog_in_force, catalog_refused)  # the web UI at / (service/ui.py)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _named_query(run: Any, name: str) -> Any:
    """The endpoint of one saved query's own path (FastAPI reads the endpoint's signature: a request alone)."""

    def endpoint(request: Request) -> dict[str, Any]:
        return run(name, request)  # type: ignore[no-any-return]

    endpoint.__name__ = f"query_{name}"
    return endpoint


# OpenAPI schema types of the saved queries' parameter types (queries/saved.py); the rest are strings
_PARAM_SCHEMA: dict[str, dict[str, Any]] = {"int": {"type": "integer"}, "float": {"type": "number"}, "positive": {"type": "number", "exclusiveMinimum": 0}}


def _query_param(p: Any) -> dict[str, Any]:
    """One saved-query parameter as an OpenAPI query parameter: its type, default, allowed values and doc."""
    schema: dict[str, Any] = {**_PARAM_SCHEMA.get(p.type, {"type": "string"})}
    described = p.describe()
    if p.choices:
        schema["enum"] = p.choices
    if p.default is not None:
        schema["default"] = p.default
    doc = p.doc + (f" (allowed: {', '.join(map(str, described['allowed']))})" if p.objective_kind else "")
    return {"name": p.name, "in": "query", "required": p.required, "schema": schema,
            "description": f"{p.type}: {doc}"}


def _rows(table: Any) -> dict[str, Any]:
    """An Arrow result as {columns, rows} (NaN and infinities as null, timestamps ISO), and where a frontier left out
    rows identical to one it lists but for their idx, how many (`repeats`)."""
    out: dict[str, Any] = {"columns": list(table.column_names), "rows": runner.table_records(table)}
    repeats = (table.schema.metadata or {}).get(META_REPEATS)
    if repeats:
        out["repeats"] = int(repeats)
    return out
