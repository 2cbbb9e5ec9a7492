"""The sweep service's commands: submit, status, list, cancel, resume, serve.

Each works embedded (the queue in CHIPSWEEP_HOME, the dispatcher in this process) or, with
`--server URL` (or CHIPSWEEP_SERVER), against a running `chipsweep serve`. Exit codes as in
`service.cli`: 0 ok, 1 the sweep failed or could not run, 2 bad input (the spec, an unknown id).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chipsweep.service.cli import EXIT_BAD_INPUT, command

STATES_OVER = ("done", "failed", "cancelled")


def _fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"chipsweep: {msg}", file=sys.stderr)
    return code


def _server_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("CHIPSWEEP_SERVER"),
                   help="URL of a running `chipsweep serve` (default: embedded, or CHIPSWEEP_SERVER)")


# ------------------------------------------------------------------------------------------------
# a running server, over HTTP
# ------------------------------------------------------------------------------------------------
class ServerError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(_error_text(body) if isinstance(body, dict) else str(body))


def _error_text(body: dict[str, Any]) -> str:
    problems = body.get("problems")
    if problems:
        return "; ".join(_problem_text(p) for p in problems)
    if "field" in body:
        return _problem_text(body)
    return str(body.get("error") or body)


def _problem_text(p: dict[str, Any]) -> str:
    msg = f"{p.get('message')}; " if p.get("message") else ""
    return f"field '{p.get('field')}' = {json.dumps(p.get('value'))}: {msg}allowed: {p.get('allowed')}"


class Client:
    """The HTTP API as function calls (bearer token from CHIPSWEEP_TOKEN when set)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        import httpx

        headers = {}
        token = os.environ.get("CHIPSWEEP_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if r.status_code >= 400:
            raise ServerError(r.status_code, body)
        return body

    def submit(self, text: bytes) -> dict[str, Any]:
        return self._call("POST", "/sweeps", content=text, headers={"Content-Type": "application/yaml"})

    def status(self, sweep_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sweeps/{sweep_id}")

    def list(self) -> list[dict[str, Any]]:
        return self._call("GET", "/sweeps")

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/sweeps/{sweep_id}")


# ------------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------------
class Progress:
    """A tqdm bar over configurations (rate and ETA), refreshed from the queue's status."""

    def __init__(self, status: dict[str, Any], enabled: bool) -> None:
        self.bar = None
        self.last = 0.0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=status["configurations"], unit="cfg", unit_scale=True, dynamic_ncols=True,
                            smoothing=0.1, desc=f"{status['sweep_id']}@{status['version']}", file=sys.stderr)

    def update(self, status: dict[str, Any]) -> None:
        if self.bar is None:
            return
        self.bar.n = int(status.get("configurations_done", 0))
        failed = f" {status['chunks_failed']} failed" if status.get("chunks_failed") else ""
        self.bar.set_postfix_str(f"chunks {status['chunks_done']}/{status['chunks_total']}{failed}, "
                                 f"rows {status['rows_written']:,}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(status: dict[str, Any]) -> str:
    rate = status.get("configs_per_s") or 0.0
    line = (f"{status['sweep_id']}@{status['version']}: {status['state']}, {status['chunks_done']}/{status['chunks_total']} chunks"
            f" ({status['chunks_failed']} failed), {status.get('configurations_done', 0):,}/{status['configurations']:,}"
            f" configurations, {status['rows_written']:,} rows, {rate / 1e6:.2f} M configs/s")
    errors = status.get("errors") or []
    for e in errors[:5]:
        line += f"\n  chunk {e['chunk']} ({e['state']}, {e['attempts']} attempts): {e['error'].splitlines()[0] if e['error'] else ''}"
    return line


# ------------------------------------------------------------------------------------------------
# submit
# ------------------------------------------------------------------------------------------------
@command
def _register_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a sweep spec (YAML or JSON) and run it")
    p.add_argument("spec", help="the sweep spec file (YAML or JSON), or - for stdin")
    p.add_argument("--wait", action="store_true", help="show a progress bar and return when the sweep is over")
    p.add_argument("--json", action="store_true", help="print {sweep_id, version, configurations} (+ rows_written, seconds)")
    _server_arg(p)
    p.add_argument("--chunk-size", type=int, help="configurations per chunk (default CHIPSWEEP_CHUNK_SIZE, else sized to the Ray cluster: 2^20 .. 2^29)")
    p.add_argument("--actors", type=int, help="pool size (default CHIPSWEEP_ACTORS or one per CPU)")
    p.add_argument("--no-run", action="store_true",
                   help="only queue the sweep (a `chipsweep serve` or `chipsweep resume` on the same CHIPSWEEP_HOME runs it)")
    p.set_defaults(func=_submit)


def _submit(args: argparse.Namespace) -> int:

    try:
        text = sys.stdin.buffer.read() if args.spec == "-" else Path(args.spec).read_bytes()
    except OSError as exc:
        return _fail(f"spec file '{args.spec}': {exc.strerror}")
    args.out = sys.stdout
    if args.json:
        sys.stdout = sys.stderr  # stdout carries only the JSON: Ray's own messages go to stderr
    try:
        return _submit_remote(args, text) if args.server else _submit_embedded(args, text)
    finally:
        sys.stdout = args.out


def _submit_embedded(args: argparse.Namespace, text: bytes) -> int:
    from chipsweep.schemas.catalog import CatalogError
    from chipsweep.schemas.sweep import SpecError, read_spec_text
    from chipsweep.service.dispatch import submit
    from chipsweep.service.queue import Queue
    from chipsweep.service.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        if args.actors:
            settings = settings.with_(actors=args.actors)
        queue = Queue(settings.queue_path)
        row = submit(read_spec_text(text), settings=settings, queue=queue, chunk_size=args.chunk_size)
    except SpecError as exc:
        if args.json:
            print(json.dumps(exc.as_dict()), file=sys.stderr)
        for p in exc.problems:
            print(f"chipsweep: invalid spec: {p}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CatalogError, SettingsError) as exc:
        return _fail(str(exc))
    ident = {"sweep_id": row.name, "version": row.version, "configurations": row.configurations}
    if not args.wait:
        _print_ident(ident, row.chunks_total, args.json, args.out)
    if args.no_run:
        return 0
    return _run_embedded(queue, settings, row.sweep_id, ident, args)


def _print_ident(ident: dict[str, Any], chunks: int, as_json: bool, out: Any) -> None:
    if as_json:
        print(json.dumps(ident), file=out, flush=True)
    else:
        print(f"submitted {ident['sweep_id']}@{ident['version']}: {ident['configurations']:,} configurations"
              f" in {chunks} chunks", file=out, flush=True)


def _run_embedded(queue: Any, settings: Any, sweep_id: str, ident: dict[str, Any], args: argparse.Namespace) -> int:
    from chipsweep.service.dispatch import Dispatcher, ensure_ray

    start = time.time()
    progress: Progress | None = None
    last = [0.0]

    def tick() -> None:
        now = time.monotonic()
        if progress is not None and now - last[0] > 0.2:
            last[0] = now
            progress.update(queue.status(sweep_id))

    import ray

    started = not ray.is_initialized()
    disp = None
    try:
        ensure_ray(settings)
        progress = Progress(queue.status(sweep_id), enabled=args.wait and not args.json)  # rate from here on
        disp = Dispatcher(queue, settings)
        disp.run(until=lambda: queue.sweep(sweep_id).state in STATES_OVER, on_tick=tick)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        print(f"chipsweep: interrupted; {sweep_id} stays queued (committed chunks are kept):"
              " `chipsweep resume` or `chipsweep serve` finishes it", file=sys.stderr)
        return 130
    finally:
        if disp is not None:
            disp.close()
        if started:
            ray.shutdown()  # the Ray this command started: nothing of it prints after the result
    status = queue.status(sweep_id)
    if progress is not None:
        progress.update(status)
        progress.close()
    return _report_end(status, ident, time.time() - start, args)


def _report_end(status: dict[str, Any], ident: dict[str, Any], seconds: float, args: argparse.Namespace) -> int:
    if args.wait and args.json:
        print(json.dumps({**ident, "rows_written": status["rows_written"], "seconds": round(seconds, 3),
                          "state": status["state"], "chunks_failed": status["chunks_failed"]}), file=args.out)
    elif args.wait:
        print(_summary(status), file=args.out)
    args.out.flush()  # before Ray's exit hooks, which may end the process without flushing
    return 0 if status["state"] == "done" else 1


def _submit_remote(args: argparse.Namespace, text: bytes) -> int:
    try:
        client = Client(args.server)
        status = client.submit(text)
    except ServerError as exc:
        if exc.status == 422:
            body = exc.body if isinstance(exc.body, dict) else {}
            if args.json:
                print(json.dumps(body), file=sys.stderr)
            for p in body.get("problems") or [body]:
                print(f"chipsweep: invalid spec: {_problem_text(p)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _fail(f"server {args.server}: {exc}", 1)
    except OSError as exc:
        return _fail(f"server {args.server}: {exc}", 1)
    except Exception as exc:  # httpx transport errors
        return _fail(f"server {args.server}: {type(exc).__name__}: {exc}", 1)
    ident = {"sweep_id": status["sweep_id"], "version": status["version"], "configurations": status["configurations"]}
    if not args.wait:
        _print_ident(ident, status["chunks_total"], args.json, args.out)
        return 0
    sweep_id = f"{status['sweep_id']}@{status['version']}"
    start = time.time()
    progress = Progress(status, enabled=not args.json)
    try:
        while status["state"] not in STATES_OVER:
            time.sleep(0.5)
            status = client.status(sweep_id)
            progress.update(status)
    except KeyboardInterrupt:
        progress.close()
        return 130
    progress.close()
    return _report_end(status, ident, time.time() - start, args)


# ------------------------------------------------------------------------------------------------
# status, list, cancel, resume
# ------------------------------------------------------------------------------------------------
def _local_queue() -> Any:
    from chipsweep.service.queue import Queue
    from chipsweep.service.settings import Settings

    return Queue(Settings.from_env().queue_path)


def _sweep_command(sub: argparse._SubParsersAction, name: str, help: str, func: Any) -> None:
    """A command that acts on one sweep version (`status`, `cancel`): ID, --json, --server."""
    p = sub.add_parser(name, help=help)
    p.add_argument("id", help="NAME (latest version) or NAME@VERSION")
    p.add_argument("--json", action="store_true")
    _server_arg(p)
    p.set_defaults(func=func)


@command
def _register_status(sub: argparse._SubParsersAction) -> None:
    _sweep_command(sub, "status", "a sweep's progress: chunks, rows, rate, errors", _status)


def _status(args: argparse.Namespace) -> int:
    from chipsweep.service.queue import QueueError

    try:
        status = Client(args.server).status(args.id) if args.server else _local_queue().status(args.id)
    except QueueError as exc:
        return _fail(str(exc))
    except ServerError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT if exc.status == 404 else 1)
    if args.json:
        keys = ("sweep_id", "version", "state", "configurations", "chunks_total", "chunks_done", "chunks_failed",
                "rows_written", "configs_per_s")
        print(json.dumps({**{k: status[k] for k in keys}, **{k: v for k, v in status.items() if k not in keys}}))
    else:
        print(_summary(status))
    return 0


@command
def _register_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="the sweeps in the queue, newest first")
    p.add_argument("--json", action="store_true")
    _server_arg(p)
    p.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    if args.server:
        try:
            rows = Client(args.server).list()
        except ServerError as exc:
            return _fail(str(exc), 1)
    else:
        q = _local_queue()
        rows = [q.status(r.sweep_id) for r in q.sweeps()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'sweep':32s} {'ver':>3s} {'kind':9s} {'state':9s} {'chunks':>11s} {'configurations':>15s} {'rows':>13s}")
    for s in rows:
        print(f"{s['sweep_id']:32s} {s['version']:3d} {s['kind']:9s} {s['state']:9s} "
              f"{s['chunks_done']:>5d}/{s['chunks_total']:<5d} {s['configurations']:15,d} {s['rows_written']:13,d}")
    return 0


@command
def _register_cancel(sub: argparse._SubParsersAction) -> None:
    _sweep_command(sub, "cancel", "stop a sweep; what is committed stays in the lake", _cancel)


def _cancel(args: argparse.Namespace) -> int:
    from chipsweep.service.queue import QueueError

    try:
        if args.server:
            status = Client(args.server).cancel(args.id)
        else:
            from chipsweep.service.dispatch import cancel

            q = _local_queue()
            row = cancel(q, args.id)
            status = q.status(row.sweep_id)
    except QueueError as exc:
        return _fail(str(exc))
    except ServerError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT if exc.status == 404 else 1)
    print(json.dumps(status) if args.json else _summary(status))
    return 0


@command
def _register_resume(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="run queued sweeps in this process until the queue is idle")
    p.add_argument("--actors", type=int, help="pool size (default CHIPSWEEP_ACTORS or one per CPU)")
    p.set_defaults(func=_resume)


def _resume(args: argparse.Namespace) -> int:
    from chipsweep.service.dispatch import Dispatcher, ensure_ray
    from chipsweep.service.queue import Queue
    from chipsweep.service.settings import Settings

    settings = Settings.from_env()
    if args.actors:
        settings = settings.with_(actors=args.actors)
    queue = Queue(settings.queue_path)
    ensure_ray(settings)
    disp = Dispatcher(queue, settings)
    try:
        disp.run(until=lambda: not queue.active() and not _running(queue))
    finally:
        disp.close()
    for r in queue.sweeps(20):
        print(_summary(queue.status(r.sweep_id)))
    return 0


def _running(queue: Any) -> bool:
    return any(r.state == "running" and queue.pending_chunks(r.name, r.version) for r in queue.sweeps(50))


# ------------------------------------------------------------------------------------------------
# serve
# ------------------------------------------------------------------------------------------------
@command
def _register_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP API (OpenAPI at /docs) + dispatcher")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--log-format", default=os.environ.get("CHIPSWEEP_LOG_FORMAT", "text"), choices=["text", "json"],
                   help="json: one JSON object per line, sweep id included (default: text, or CHIPSWEEP_LOG_FORMAT)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chipsweep.service.api import create_app
    from chipsweep.service.dispatch import ensure_ray
    from chipsweep.service.logs import configure
    from chipsweep.service.settings import Settings

    configure(args.log_level, args.log_format)
    settings = Settings.from_env()
    ensure_ray(settings)  # in the main thread: Ray's local processes live as long as it does
    # uvicorn keeps the handlers configured here (log_config=None) so its access log is JSON too
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level, log_config=None)
    return 0


# ------------------------------------------------------------------------------------------------
# rerun, history, gc (service.rerun)
# ------------------------------------------------------------------------------------------------
@command
def _register_rerun(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rerun", help="re-run sweeps whose catalog inputs changed (only the affected chunks)")
    p.add_argument("sweep", nargs="?", help="one sweep (default: every sweep)")
    p.add_argument("--changed", action="store_true",
                   help="only if an input changed (default with SWEEP: re-evaluate it in full)")
    p.add_argument("--wait", action="store_true", help="run the new versions here and return when they are done")
    p.add_argument("--json", action="store_true",
                   help="print [{sweep_id, version, changed, chunks_evaluated, chunks_carried}]")
    p.set_defaults(func=_rerun)


def _rerun(args: argparse.Namespace) -> int:
    from chipsweep.schemas.catalog import CatalogError
    from chipsweep.service.queue import QueueError
    from chipsweep.service.rerun import rerun

    queue = _local_queue()
    try:
        results = rerun(queue, name=args.sweep, changed_only=args.changed or args.sweep is None)
    except CatalogError as exc:  # nothing was recorded from the broken catalog
        return _fail(f"catalog refused, nothing re-run: {exc}")
    except QueueError as exc:
        return _fail(str(exc))
    made = [f"{r.sweep_id}@{r.version}" for r in results if r.outcome == "rerun"]
    if args.wait and made:
        _dispatch_until_over(queue, made)
    if args.json:
        print(json.dumps([r.as_json() for r in results]))
        return 0
    for r in results:
        if r.outcome == "rerun":
            print(f"{r.sweep_id}@{r.version}: {', '.join(r.changed) or 'full re-run'}; "
                  f"{r.chunks_evaluated} chunks evaluated, {r.chunks_carried} carried")
        else:
            print(f"{r.sweep_id}@{r.version}: {r.outcome}{': ' + r.message if r.message else ''}")
    return 1 if any(r.outcome == "error" for r in results) else 0


def _dispatch_until_over(queue: Any, sweep_ids: list[str]) -> None:
    import ray

    from chipsweep.service.dispatch import Dispatcher, ensure_ray
    from chipsweep.service.settings import Settings

    settings = Settings.from_env()
    started = not ray.is_initialized()
    ensure_ray(settings)
    disp = Dispatcher(queue, settings)
    try:  # waits for a running server's dispatcher instead when it holds the lease
        disp.run(until=lambda: all(queue.sweep(s).state in STATES_OVER for s in sweep_ids))
    finally:
        disp.close()
        if started:
            ray.shutdown()


@command
def _register_history(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="a sweep's versions and what changed between them")
    p.add_argument("sweep")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_history)


def _history(args: argparse.Namespace) -> int:
    from chipsweep.service.queue import QueueError, parse_id

    try:
        versions = _local_queue().versions(parse_id(args.sweep)[0])
    except QueueError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(versions))
        return 0
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v["created_at"]))
        base = f" from v{v['base_version']}" if v["base_version"] else ""
        print(f"v{v['version']}  {when} UTC  {v['state']:9s} {v['trigger']}{base}: "
              f"{v['chunks_evaluated']} chunks evaluated ({v['rows_recomputed']:,} rows), {v['chunks_carried']} carried")
        for c in v["changes"]:
            what = f"{c['entry']}.{c['field']}" if c["field"] else c["entry"]
            print(f"    {what}: {json.dumps(c['old'])} -> {json.dumps(c['new'])}")
    return 0


@command
def _register_gc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gc", help="remove old sweep versions (queue rows and lake files)")
    p.add_argument("sweep", nargs="?", help="one sweep (default: every sweep)")
    p.add_argument("--keep", type=int, required=True, help="versions to keep per sweep (the newest; at least 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_gc)


def _gc(args: argparse.Namespace) -> int:
    from chipsweep.service.queue import QueueError
    from chipsweep.service.rerun import gc

    if args.keep < 1:
        return _fail(f"--keep {args.keep}: allowed: an integer >= 1")
    try:
        removed = gc(_local_queue(), keep=args.keep, name=args.sweep)
    except QueueError as exc:
        return _fail(str(exc))
    print(json.dumps(removed) if args.json else "\n".join(f"removed {s}" for s in removed) or "nothing to remove")
    return 0
