"""A spec submitted again (a user audit: an identical resubmission re-evaluated every chunk): the new version is a
re-run of the latest done one, carrying the chunks whose configurations and catalog entries are unchanged, evaluating
(or re-pricing) the rest. Real Parquet, real DuckDB, no Ray: the chunks run in this process through the actors' class."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from chipsweep.lake import Lake
from chipsweep.schemas.catalog import load_catalog
from chipsweep.service.actor import ChunkWorker
from chipsweep.service.dispatch import record_state, submit
from chipsweep.service.queue import Queue

CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_40gb", "amd_mi300x"]
CHUNK = 8  # 48 configurations -> 6 chunks; the chip axis is outermost: 2 chunks per chip


@pytest.fixture(autouse=True)
def _outside_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """The actors' class runs here without Ray: asking Ray for the node id would start one."""
    import chipsweep.service.actor as actor

    monkeypatch.setattr(actor, "_node_id", lambda: "local")


@pytest.fixture()
def name() -> str:
    return f"rs-{uuid.uuid4().hex[:8]}"  # workers cache evaluators by sweep and version


def spec(name: str, chips: list[str] = CHIPS) -> dict[str, Any]:
    return {
        "name": name, "kind": "training",
        "axes": {"chip": chips, "model": ["llama3_8b", "gpt3_13b"], "n_chips": [64, 128], "tp": [1, 2], "pp": [1, 2]},
        "fixed": {"global_batch": 512, "tokens": 1.0e11, "micro_batch": 1, "recompute": "selective"},
    }


def run_here(queue: Queue) -> list[int]:
    """Run every pending chunk in this process, as a dispatcher's actors would; the chunks that ran (evaluated or
    re-priced: a carried chunk never reaches a worker)."""
    worker, ran = ChunkWorker(), []
    while (task := queue.claim("here")) is not None:
        out = worker.run(queue.payload(task.name, task.version), task.chunk, task.start, task.stop, task.repriced_from)
        queue.mark_done(task, out["rows"], out["bytes"], out["seconds"], out["worker"])
        record_state(queue, f"{task.name}@{task.version}")
        ran.append(task.chunk)
    return ran


def submitted(home: Any, queue: Queue, data: dict[str, Any], catalog: Any = None) -> tuple[int, list[int]]:
    row = submit(data, settings=home, queue=queue, catalog=catalog or load_catalog(use_env=False), chunk_size=CHUNK)
    ran = run_here(queue)
    assert queue.sweep(row.sweep_id).state == "done"
    return row.version, ran


def rows(lake: str, name: str, version: int) -> list[str]:
    """Every fact row of a version, read by DuckDB from its part files, in configuration order (as JSON: NaN-equal)."""
    parts = Lake(lake).committed_parts("training", name, version)
    table = duckdb.sql(f"SELECT * FROM read_parquet({[str(p) for p in parts]!r}, hive_partitioning = false) ORDER BY idx").fetchall()
    return [json.dumps(r, default=str) for r in table]


def column(lake: str, name: str, version: int, col: str, where: str) -> list[Any]:
    parts = Lake(lake).committed_parts("training", name, version)
    return [r[0] for r in duckdb.sql(f"SELECT {col} FROM read_parquet({[str(p) for p in parts]!r}, hive_partitioning = false) WHERE {where}"
                                     " ORDER BY idx").fetchall()]


def test_an_identical_resubmission_evaluates_no_chunk_and_its_rows_are_the_previous_versions(home, name) -> None:  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    assert submitted(home, queue, spec(name)) == (1, [0, 1, 2, 3, 4, 5])
    version, ran = submitted(home, queue, spec(name))
    assert (version, ran) == (2, [])  # nothing went to a worker
    v2 = rows(home.lake, name, 2)
    assert len(v2) == 48 and v2 == rows(home.lake, name, 1)
    status = queue.status(f"{name}@2")
    assert (status["state"], status["chunks_done"], status["chunks_carried"], status["rows_written"]) == ("done", 6, 6, 48)
    [_, h2] = queue.versions(name)
    assert (h2["trigger"], h2["base_version"], h2["chunks_carried"], h2["chunks_evaluated"], h2["changes"]) == (
        "submit", 1, 6, 0, [])
    # a real version: the lake records it done, so a query of the sweep's latest version reads it
    assert queue.recorded_state(name, 2) == "done"
    # and a full re-evaluation stays one flag away
    row = submit(spec(name), settings=home, queue=queue, catalog=load_catalog(use_env=False), chunk_size=CHUNK,
                 reevaluate=True)
    assert (row.version, run_here(queue)) == (3, [0, 1, 2, 3, 4, 5])
    assert rows(home.lake, name, 3) == v2


def test_a_resubmission_with_a_chip_added_evaluates_only_the_new_chips_chunks(home, name) -> None:  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    submitted(home, queue, spec(name))
    version, ran = submitted(home, queue, spec(name, [*CHIPS, "nvidia_a100_sxm_80gb"]))
    assert (version, ran) == (2, [6, 7])  # 64 configurations: the 16 of the added chip, and only they, evaluated
    v2 = rows(home.lake, name, 2)
    assert len(v2) == 64 and v2[:48] == rows(home.lake, name, 1)
    [_, h2] = queue.versions(name)
    assert (h2["chunks_carried"], h2["chunks_evaluated"], h2["rows"]) == (6, 2, 64)
    assert h2["changes"] == [{"entry": "spec", "field": "axes.chip", "old": CHIPS,
                              "new": [*CHIPS, "nvidia_a100_sxm_80gb"]}]


def test_a_price_change_between_two_identical_submissions_reprices_that_chips_chunks(home, name, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    submitted(home, queue, spec(name))
    (tmp_path / "o.yaml").write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: 0.05\n")
    version, ran = submitted(home, queue, spec(name), load_catalog(str(tmp_path / "o.yaml")))
    assert (version, ran) == (2, [0, 1])  # the h100's chunks re-priced; the other chips' carried
    [_, h2] = queue.versions(name)
    assert (h2["chunks_carried"], h2["chunks_repriced"], h2["chunks_evaluated"]) == (4, 2, 0)
    assert [c["entry"] for c in h2["changes"]] == ["chips/nvidia_h100_sxm"]
    old = column(home.lake, name, 1, "cost_usd", "idx < 16 AND cost_usd > 0")
    new = column(home.lake, name, 2, "cost_usd", "idx < 16 AND cost_usd > 0")
    assert old and len(new) == len(old) and all(n < o for n, o in zip(new, old, strict=True))
    assert rows(home.lake, name, 2)[16:] == rows(home.lake, name, 1)[16:]
    # a physics change (a chip's memory) is evaluated again, not carried
    (tmp_path / "m.yaml").write_text("chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: 0.05\n"
                                     "  - id: amd_mi300x\n    memory_gb: 96\n")
    version, ran = submitted(home, queue, spec(name), load_catalog(str(tmp_path / "m.yaml")))
    assert (version, ran) == (3, [4, 5])
