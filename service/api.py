"""The HTTP API of `chipsweep serve` (FastAPI; OpenAPI at /docs), with the dispatcher in a thread.

POST /sweeps (spec as JSON or YAML) . GET /sweeps . GET /sweeps/{id} . DELETE /sweeps/{id} .
GET /queries/{name}?k=v . POST /sql . GET /catalog/{chips|models|clusters} . GET /healthz

Errors are JSON objects with `error`, `field`, `value` and `allowed` (422 for an invalid spec, with every
problem under `problems`). When CHIPSWEEP_TOKEN is set every endpoint but /healthz and the docs needs
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from chipsweep.queries import runner
from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.errors import ChipsweepError
from chipsweep.schemas.spec import read_spec_text
from chipsweep.schemas.vocab import SweepState
from chipsweep.service import metrics, python_api, ui
from chipsweep.service.dispatch import Dispatcher, cancel, ensure_ray, run_until
from chipsweep.service.queue import Queue
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


QUERY_TIMEOUT_S = 120.0  # a query running longer is stopped (the server stays responsive)
QUERY_MAX_ROWS = 100_000  # rows one answer may carry


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


def create_app(settings: Settings | None = None, *, dispatch: bool = True) -> FastAPI:
    """The API over the queue at `settings.queue_path`; `dispatch` runs the dispatcher in a thread."""
    settings = settings or Settings.from_env()
    queue = Queue(settings.queue_path)
    state: dict[str, Any] = {"dispatcher": None, "started": time.time()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if dispatch:
            ensure_ray(settings)
            worker = DispatcherThread(queue, settings)
            worker.thread.start()
            state["dispatcher"] = worker
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

    app = FastAPI(
        title="chipsweep",
        description="Sweeps of LLM models x chips x clusters x layouts; results as Parquet; frontiers in SQL.",
        version=metadata.version("chipsweep"),
        lifespan=lifespan,
    )

    def auth(request: Request) -> None:
        if not settings.token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), settings.token):
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
        errs = exc.errors()
        first = errs[0] if errs else {}
        return JSONResponse({"error": "invalid request", "field": ".".join(str(p) for p in first.get("loc", ())),
                             "value": first.get("input"), "allowed": first.get("msg", ""),
                             "problems": [{"field": ".".join(str(p) for p in e.get("loc", ())), "value": e.get("input"),
                                           "allowed": e.get("msg", "")} for e in errs]}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "field": None, "value": None, "allowed": None},
                            status_code=exc.status_code)

    # ---- sweeps -------------------------------------------------------------------------------
    @app.post("/sweeps", status_code=201, response_model=SweepStatus, dependencies=protected,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/yaml": {"schema": {"type": "string"}, "example": SPEC_EXAMPLE},
                  "application/json": {"schema": {"type": "object"}}}}},
              summary="Submit a sweep spec (JSON or YAML); refused with 422 before anything is queued")
    async def post_sweep(request: Request) -> dict[str, Any]:
        body = await request.body()
        if not body.strip():
            raise ApiError(422, "empty body", "(spec)", None, "a sweep spec as JSON or YAML")
        spec = read_spec_text(body)
        # validation, the catalog and the dimension files: off the event loop; the dispatcher thread runs it
        return await run_in_threadpool(python_api.submit, spec, wait=False, settings=settings, queue=queue)

    @app.get("/sweeps", response_model=list[SweepStatus], dependencies=protected, summary="All sweep versions, newest first")
    def list_sweeps() -> list[dict[str, Any]]:
        return [queue.status(r.sweep_id) for r in queue.sweeps()]

    @app.get("/sweeps/{sweep_id}", response_model=SweepStatus, dependencies=protected,
             summary="Progress of a sweep: NAME (latest version) or NAME@VERSION")
    def get_sweep(sweep_id: str) -> dict[str, Any]:
        return queue.status(sweep_id)

    @app.delete("/sweeps/{sweep_id}", response_model=SweepStatus, dependencies=protected,
                summary="Cancel a sweep; committed chunks stay in the lake")
    def cancel_sweep(sweep_id: str) -> dict[str, Any]:
        row = cancel(queue, sweep_id)
        return queue.status(row.sweep_id)

    # ---- queries ------------------------------------------------------------------------------
    @app.get("/queries/{name}", dependencies=protected, summary="Run a saved query; parameters as ?k=v")
    def get_query(name: str, request: Request) -> dict[str, Any]:
        table = python_api.query(name, dict(request.query_params), timeout_s=QUERY_TIMEOUT_S, max_rows=QUERY_MAX_ROWS)
        return _rows(table)

    @app.post("/sql", dependencies=protected, summary="Read-only SQL over the lake's views")
    async def post_sql(request: Request) -> dict[str, Any]:
        body = await request.body()
        text = body.decode("utf-8", "replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                text = SqlRequest.model_validate_json(body).sql
            except ValueError:
                raise ApiError(422, "invalid body", "sql", text[:200], 'a JSON object {"sql": "SELECT ..."} or the SQL as text') from None
        table = await run_in_threadpool(python_api.sql, text, timeout_s=QUERY_TIMEOUT_S, max_rows=QUERY_MAX_ROWS)
        return _rows(table)

    # ---- catalog and health -------------------------------------------------------------------
    @app.get("/catalog/{kind}", dependencies=protected, summary="Catalog entries (every number with its source)")
    def get_catalog(kind: str) -> list[dict[str, Any]]:
        if kind not in ("chips", "models", "clusters"):
            raise ApiError(404, f"unknown catalog kind '{kind}'", "kind", kind, "chips, models, clusters")
        table = getattr(load_catalog(), kind)
        return [table[k].model_dump(mode="json", by_alias=True, exclude_none=True) for k in sorted(table)]

    @app.get("/healthz", summary="Liveness: queue, lake, dispatcher")
    def healthz() -> dict[str, Any]:
        worker = state["dispatcher"]
        return {
            "ok": True,
            "queue": str(settings.queue_path),
            "lake": settings.lake,
            "dispatcher": None if worker is None else {"alive": worker.alive, "running": worker.dispatcher.running,
                                                      "actors": len(worker.dispatcher.actors), "error": worker.error},
            "uptime_s": round(time.time() - state["started"], 1),
        }

    @app.get("/metrics", dependencies=protected, response_class=PlainTextResponse,
             summary="Prometheus metrics: sweeps and chunks by state, configurations/s, lake bytes")
    def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(metrics.collect(settings.queue_path)), media_type=metrics.CONTENT_TYPE)

    ui.install(app, settings, queue)  # the web UI at / (service/ui.py)
    return app


def _rows(table: Any) -> dict[str, Any]:
    """An Arrow result as {columns, rows} (NaN and infinities as null, timestamps ISO)."""
    return {"columns": list(table.column_names), "rows": runner.table_records(table)}
