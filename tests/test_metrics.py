"""Observability: `/metrics` in the Prometheus text format, read from the queue, and structured JSON
log lines that carry the sweep id."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from chipsweep.service import metrics
from chipsweep.service.api import create_app
from chipsweep.service.dispatch import submit
from chipsweep.service.logs import JsonFormatter, event
from chipsweep.service.queue import Queue
from tests.conftest import training_spec

SAMPLE = re.compile(r'^([a-z_]+)(\{state="[a-z]+"\})? (-?[0-9.e+]+)$')


def _parse(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text page; fails on any line that is neither a sample nor HELP/TYPE."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def _queue_with_progress(home) -> tuple[Queue, int, int]:  # type: ignore[no-untyped-def]
    """A submitted sweep: 3 chunks committed (1,000 rows, 5,000 bytes each), 1 failed, 1 running; returns
    the queue, its chunks and the configurations of the committed ones."""
    queue = Queue(home.queue_path)
    row = submit(training_spec("metrics"), settings=home, queue=queue, chunk_size=1000)
    done = 0
    for i in range(5):
        task = queue.claim("test")
        assert task is not None
        if i < 3:
            queue.mark_done(task, 1000, 5000, 0.5, "host:1:node")
            done += task.stop - task.start
        elif i == 3:
            queue.mark_error(task, "boom", max_attempts=1)
    return queue, row.chunks_total, done


def test_metrics_count_sweeps_chunks_rate_and_lake_bytes(home) -> None:  # type: ignore[no-untyped-def]
    _, total, done = _queue_with_progress(home)
    samples = _parse(metrics.render(metrics.collect(home.queue_path)))
    assert samples['chipsweep_sweeps{state="running"}'] == 1
    assert samples['chipsweep_sweeps{state="done"}'] == 0
    assert samples['chipsweep_chunks{state="pending"}'] == total - 5
    assert samples['chipsweep_chunks{state="running"}'] == 1
    assert samples["chipsweep_chunks_done_total"] == 3
    assert samples["chipsweep_chunks_failed_total"] == 1
    assert samples["chipsweep_configurations_done_total"] == done
    assert samples["chipsweep_rows_written_total"] == 3000
    assert samples["chipsweep_lake_bytes"] == 15000
    assert samples["chipsweep_configurations_per_second"] == pytest.approx(done / metrics.WINDOW_S)
    assert samples["chipsweep_chunk_seconds_sum"] == pytest.approx(1.5)
    assert samples["chipsweep_chunk_seconds_count"] == 3


def test_a_cancelled_sweeps_chunks_that_never_ran_are_stopped_not_pending(home) -> None:  # type: ignore[no-untyped-def]
    """A backlog alert on pending chunks fired for a cancelled sweep whose chunks no dispatcher would take."""
    queue, total, _ = _queue_with_progress(home)
    queue.cancel("metrics")
    samples = _parse(metrics.render(metrics.collect(home.queue_path)))
    assert samples['chipsweep_chunks{state="pending"}'] == 0
    assert samples['chipsweep_chunks{state="stopped"}'] == total - 5
    assert samples['chipsweep_chunks{state="running"}'] == 1  # still running where it was handed out


def test_metrics_of_a_queue_not_created_yet_are_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    samples = _parse(metrics.render(metrics.collect(tmp_path / "none.db")))
    assert samples["chipsweep_chunks_done_total"] == 0 and samples['chipsweep_sweeps{state="queued"}'] == 0


def test_configurations_per_second_counts_only_the_recent_window(home) -> None:  # type: ignore[no-untyped-def]
    _, _, done = _queue_with_progress(home)
    import time

    later = metrics.collect(home.queue_path, now=time.time() + 10 * metrics.WINDOW_S)
    assert later.recent_configurations == 0 and later.configurations_done == done


def test_get_metrics_serves_prometheus_text_behind_the_token(home) -> None:  # type: ignore[no-untyped-def]
    _queue_with_progress(home)
    client = TestClient(create_app(home.with_(token="s3cret"), dispatch=False))
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _parse(r.text)
    assert samples["chipsweep_chunks_done_total"] == 3 and samples["chipsweep_lake_bytes"] == 15000
    assert "# TYPE chipsweep_configurations_per_second gauge" in r.text


def test_log_events_are_json_lines_with_the_sweep_id(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("chipsweep.test")
    with caplog.at_level(logging.INFO, logger="chipsweep.test"):
        event(log, "chunk_done", "gpt3@2", chunk=17, rows=1024, seconds=0.5)
    [record] = caplog.records
    assert json.loads(record.getMessage()) == {"event": "chunk_done", "sweep_id": "gpt3@2", "chunk": 17, "rows": 1024,
                                               "seconds": 0.5}
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["sweep_id"], line["chunk"]) == ("INFO", "chipsweep.test", "gpt3@2", 17)


def test_serve_log_format_json_writes_one_json_object_per_line() -> None:
    import io
    import logging

    from chipsweep.service.logs import configure

    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure("info", "json", stream)
        event(logging.getLogger("chipsweep.dispatch"), "chunk_done", "gpt3@2", chunk=17, rows=1024)
        logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /metrics" 200')
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "chunk_done" and lines[0]["sweep_id"] == "gpt3@2" and lines[0]["rows"] == 1024
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "chipsweep.dispatch"
    assert lines[1]["message"] == '127.0.0.1 - "GET /metrics" 200'
