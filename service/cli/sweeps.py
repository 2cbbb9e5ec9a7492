"""The queue's commands: submit, status, list, cancel, resume.

Each works embedded (the queue in CHIPSWEEP_HOME, through `chipsweep.submit`) or, with `--server URL`
(or CHIPSWEEP_SERVER), against a running `chipsweep serve`. Embedded `submit --wait` and `resume` run the
dispatcher in a supervised child process (`python_api.run_to_end`, `service/ray_supervisor.py`): when Ray
dies it is restarted and the sweep finishes; after MAX_RAY_RESTARTS failures in a row the command ends
with a message saying what is committed and that `chipsweep resume NAME` finishes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from chipsweep.schemas.errors import SpecError
from chipsweep.schemas.spec import read_spec_text
from chipsweep.schemas.vocab import FINAL_STATES
from chipsweep.service import dispatch, python_api
from chipsweep.service.cli.base import EXIT_BAD_INPUT, EXIT_FAILED, Subparsers, fail, server_arg
from chipsweep.service.cli.progress import Progress, summary
from chipsweep.service.client import Client, ServerError, problem_text
from chipsweep.service.queue import Queue
from chipsweep.service.settings import Settings

STATUS_KEYS = ("sweep_id", "version", "state", "configurations", "chunks_total", "chunks_done", "chunks_failed",
               "rows_written", "configs_per_s")  # CONTRACT.md `status --json`, in this order


def register(sub: Subparsers) -> None:
    p = sub.add_parser("submit", help="submit a sweep spec (YAML or JSON) and run it")
    p.add_argument("spec", help="the sweep spec file (YAML or JSON), or - for stdin")
    p.add_argument("--wait", action="store_true", help="show a progress bar and return when the sweep is over")
    p.add_argument("--json", action="store_true", help="print {sweep_id, version, configurations} (+ rows_written, seconds)")
    server_arg(p)
    p.add_argument("--chunk-size", type=int, help="configurations per chunk (default CHIPSWEEP_CHUNK_SIZE, else sized to the Ray cluster: 2^20 .. 2^29)")
    p.add_argument("--actors", type=int, help="pool size (default CHIPSWEEP_ACTORS or one per CPU)")
    p.add_argument("--no-run", action="store_true",
                   help="only queue the sweep (a `chipsweep serve` or `chipsweep resume` on the same CHIPSWEEP_HOME runs it)")
    p.add_argument("--reevaluate", action="store_true",
                   help="evaluate every chunk, even where the spec and catalog are those of the sweep's latest done "
                        "version (by default its unchanged chunks are carried into the new version)")
    p.set_defaults(func=submit)

    for name, help_, func in (("status", "a sweep's progress: chunks, rows, rate, errors", status),
                              ("cancel", "stop a sweep; what is committed stays in the lake", cancel)):
        p = sub.add_parser(name, help=help_)
        p.add_argument("id", help="NAME (latest version) or NAME@VERSION")
        p.add_argument("--json", action="store_true")
        server_arg(p)
        p.set_defaults(func=func)

    p = sub.add_parser("list", help="the sweeps in the queue, newest first")
    p.add_argument("--json", action="store_true")
    server_arg(p)
    p.set_defaults(func=list_sweeps)

    p = sub.add_parser("resume", help="run queued sweeps until the queue is idle; with ids, retry those sweeps' "
                                      "failed chunks or continue them if cancelled, and run them to the end")
    p.add_argument("ids", nargs="*", metavar="ID", help="NAME or NAME@VERSION of a failed or cancelled sweep")
    p.add_argument("--actors", type=int, help="pool size (default CHIPSWEEP_ACTORS or one per CPU)")
    server_arg(p)
    p.set_defaults(func=resume)


# ------------------------------------------------------------------------------------------------
# submit
# ------------------------------------------------------------------------------------------------
def submit(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.buffer.read() if args.spec == "-" else Path(args.spec).read_bytes()
    except OSError as exc:
        return fail(f"spec file '{args.spec}': {exc.strerror}")
    args.out = sys.stdout
    if args.json:
        sys.stdout = sys.stderr  # stdout carries only the JSON: Ray's own messages go to stderr
    if args.server:  # the server runs the sweep with its own pool and chunking: a local setting would be ignored
        local = [flag for flag, given in (("--chunk-size", args.chunk_size is not None), ("--actors", args.actors is not None),
                                          ("--no-run", args.no_run)) if given]
        if local:
            return fail(f"{', '.join(local)} with --server: the server sizes chunks and runs every sweep it accepts "
                        "(CHIPSWEEP_CHUNK_SIZE, CHIPSWEEP_ACTORS where it runs); allowed: submit without them, or "
                        "without --server to run here")
    try:
        return _submit_remote(args, text) if args.server else _submit_embedded(args, text)
    except SpecError as exc:
        if args.json:
            print(json.dumps(exc.as_dict()), file=sys.stderr)
        for p in exc.problems:
            print(f"chipsweep: invalid spec: {p}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        sys.stdout = args.out


def _ident(status: dict[str, Any]) -> dict[str, Any]:
    return {"sweep_id": status["sweep_id"], "version": status["version"], "configurations": status["configurations"]}


def _print_ident(status: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(_ident(status)), file=args.out, flush=True)
    else:
        print(f"submitted {status['sweep_id']}@{status['version']}: {status['configurations']:,} configurations"
              f" in {status['chunks_total']} chunks", file=args.out, flush=True)


def _submit_embedded(args: argparse.Namespace, text: bytes) -> int:
    start = time.time()
    recorded: list[bool] = []
    bar: list[Progress] = []
    gave_up: python_api.RayGaveUp | None = None

    def progress(status: dict[str, Any]) -> None:
        if not recorded:  # recorded, not yet running: say so
            recorded.append(True)
            if not args.wait:
                _print_ident(status, args)
                if not args.no_run and not args.json:  # no server runs it: this command does, to the end
                    print("chipsweep: running it here (no --server): this returns when the sweep is over; --wait "
                          "shows its progress, --no-run only queues it", file=sys.stderr, flush=True)
        elif not bar:  # the first tick, with Ray up: the bar's rate counts from here
            bar.append(Progress(status, enabled=args.wait and not args.json))
        elif bar[0].due():
            bar[0].update(status)

    try:
        status = python_api.submit(read_spec_text(text), wait=not args.no_run, chunk_size=args.chunk_size,
                                   actors=args.actors, progress=progress, reevaluate=args.reevaluate)
        if args.no_run:
            return 0
    except python_api.RayGaveUp as exc:
        gave_up = exc
    except KeyboardInterrupt:
        print("chipsweep: interrupted; the sweep stays queued (committed chunks are kept):"
              " `chipsweep resume` or `chipsweep serve` finishes it", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar[0].close()
    if gave_up is not None:
        print(f"chipsweep: {gave_up}", file=sys.stderr)
        return EXIT_FAILED
    if bar:
        bar[0].update(status)
    return _report_end(status, time.time() - start, args)


def _report_end(status: dict[str, Any], seconds: float, args: argparse.Namespace) -> int:
    if args.wait and args.json:
        print(json.dumps({**_ident(status), "rows_written": status["rows_written"], "seconds": round(seconds, 3),
                          "state": status["state"], "chunks_failed": status["chunks_failed"]}), file=args.out)
    elif args.wait:
        print(summary(status), file=args.out)
    args.out.flush()  # before Ray's exit hooks, which may end the process without flushing
    return 0 if status["state"] == "done" else EXIT_FAILED


def _submit_remote(args: argparse.Namespace, text: bytes) -> int:
    try:
        client = Client(args.server)
        status = client.submit(text, reevaluate=args.reevaluate)
    except ServerError as exc:
        if exc.status == 422:
            body = exc.body if isinstance(exc.body, dict) else {}
            if args.json:
                print(json.dumps(body), file=sys.stderr)
            for p in body.get("problems") or [body]:
                print(f"chipsweep: invalid spec: {problem_text(p)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return fail(f"server {args.server}: {exc}", EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_FAILED)
    except OSError as exc:
        return fail(f"server {args.server}: {exc}", EXIT_FAILED)
    except Exception as exc:  # httpx transport errors
        return fail(f"server {args.server}: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if not args.wait:
        _print_ident(status, args)
        return 0
    sweep_id = f"{status['sweep_id']}@{status['version']}"
    start = time.time()
    progress = Progress(status, enabled=not args.json)
    try:
        while status["state"] not in FINAL_STATES:
            time.sleep(0.5)
            status = client.status(sweep_id)
            progress.update(status)
    except KeyboardInterrupt:
        progress.close()
        return 130
    except ServerError as exc:  # the server went away (or refused) while we waited: the sweep stays accepted there
        progress.close()
        return fail(f"{exc}; {sweep_id} was accepted: `chipsweep status {sweep_id} --server {args.server}` once it is "
                    "back", EXIT_FAILED if exc.status == 0 or exc.status >= 500 else EXIT_BAD_INPUT)
    progress.close()
    return _report_end(status, time.time() - start, args)


# ------------------------------------------------------------------------------------------------
# status, list, cancel, resume
# ------------------------------------------------------------------------------------------------
def _local_queue() -> Queue:
    return Queue(Settings.from_env().queue_path)


def _remote_failure(exc: ServerError) -> int:
    """A refusal (4xx: no such sweep, a missing or wrong token, a bad request) exits 2 like every bad input; a server
    failure (5xx) or no answer at all 1."""
    return fail(str(exc), EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_FAILED)


def status(args: argparse.Namespace) -> int:
    try:
        st = Client(args.server).status(args.id) if args.server else _local_queue().status(args.id)
    except ServerError as exc:
        return _remote_failure(exc)
    if args.json:
        print(json.dumps({**{k: st[k] for k in STATUS_KEYS}, **{k: v for k, v in st.items() if k not in STATUS_KEYS}}))
    else:
        print(summary(st))
    return 0


def list_sweeps(args: argparse.Namespace) -> int:
    if args.server:
        try:
            rows = Client(args.server).list()
        except ServerError as exc:
            return _remote_failure(exc)
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


def cancel(args: argparse.Namespace) -> int:
    try:
        if args.server:
            st = Client(args.server).cancel(args.id)
        else:
            q = _local_queue()
            st = q.status(dispatch.cancel(q, args.id).sweep_id)
    except ServerError as exc:  # a finished sweep is refused (409) as locally (SweepStateError): exit 2, its message
        return _remote_failure(exc)
    print(json.dumps(st) if args.json else summary(st))
    return 0


def resume(args: argparse.Namespace) -> int:
    """Without ids: run what is queued until the queue is idle. With ids: re-open those sweeps (failed
    chunks of a failed sweep get fresh attempts, a cancelled sweep continues) and run them to the end."""
    if args.server:  # the server re-opens them and its dispatcher runs them
        if not args.ids:
            return fail("resume --server needs the sweeps to re-open (a server runs its queue by itself); allowed: "
                        "NAME or NAME@VERSION of a failed or cancelled sweep")
        if args.actors is not None:
            return fail("--actors with --server: the server runs with its own pool (CHIPSWEEP_ACTORS where it runs)")
        client = Client(args.server)
        for sweep_id in args.ids:
            try:
                print(summary(client.resume(sweep_id)))
            except ServerError as exc:
                return _remote_failure(exc)
        return 0
    settings = Settings.from_env()
    queue = Queue(settings.queue_path)
    ids = []
    for sweep_id in args.ids:
        row, left = dispatch.reopen(queue, sweep_id)
        ids.append(row.sweep_id)
        print(f"{row.sweep_id}: {row.state}, {left} chunks to run", file=sys.stderr)
    gave_up: python_api.RayGaveUp | None = None
    try:
        python_api.run_to_end(ids, actors=args.actors, settings=settings, queue=queue)  # no ids: until the queue is idle
    except python_api.RayGaveUp as exc:
        gave_up = exc
    for r in ([queue.sweep(i) for i in ids] if ids else queue.sweeps(20)):
        print(summary(queue.status(r.sweep_id)))
    if gave_up:
        return fail(str(gave_up), EXIT_FAILED)
    failed = [i for i in ids if queue.sweep(i).state != "done"]
    return EXIT_FAILED if failed else 0
