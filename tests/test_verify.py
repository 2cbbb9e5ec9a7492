"""`chipsweep verify`: the queue and the lake compared file by file (service/verify.py). A clean sweep
verifies with exactly its rows; every kind of damage is found, named and (`--repair`) put right: the
damaged chunks re-queued and re-run, what does not belong moved to `_quarantine/`, which queries ignore."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chipsweep.lake import Lake
from chipsweep.queries.runner import run_sql
from chipsweep.service.cli import main as cli
from chipsweep.service.dispatch import Dispatcher, over, run_until, submit
from chipsweep.service.queue import Queue
from tests.conftest import assert_verified, training_spec

pytestmark = pytest.mark.usefixtures("ray_local")


def _sweep(home, name: str = "v"):  # type: ignore[no-untyped-def]
    queue = Queue(home.queue_path)
    row = submit(training_spec(name), settings=home, queue=queue, chunk_size=600)
    disp = Dispatcher(queue, home, actors=2)
    try:
        run_until(queue, home, over(queue, row.sweep_id), dispatcher=disp)
    finally:
        disp.close()
    assert queue.status(row.sweep_id)["state"] == "done"
    return queue, row


def test_a_clean_sweep_verifies_with_exactly_its_rows(home, capsys) -> None:  # type: ignore[no-untyped-def]
    _, row = _sweep(home)
    assert cli(["verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == []
    [v] = report["sweeps"]
    assert (v["sweep_id"], v["rows_in_lake"], v["distinct_idx"], v["duplicate_idx"]) == ("v@1", 6912, 6912, 0)
    assert cli(["verify", "v"]) == 0 and "ok: the lake holds exactly what the queue says" in capsys.readouterr().out
    assert cli(["verify", "ghost"]) == 2


def test_every_kind_of_damage_is_found_and_repaired(home, capsys) -> None:  # type: ignore[no-untyped-def]
    queue, row = _sweep(home)
    lake = Lake(home.lake)
    root = Path(home.lake)
    parts = [Path(p) for p in lake.committed_parts("training", "v", 1)]
    assert len(parts) == 12
    table = pq.read_table(parts[3])
    parts[0].unlink()  # missing
    parts[1].write_bytes(parts[1].read_bytes()[:500])  # truncated
    parts[2].write_bytes(b"PAR1" + b"\x00" * 4000 + b"PAR1")  # corrupt footer
    pq.write_table(table.slice(0, 100), parts[3])  # wrong number of rows
    own = pq.read_table(parts[4])
    half = own.num_rows // 2
    pq.write_table(pa.concat_tables([own.slice(0, half), own.slice(0, own.num_rows - half)]), parts[4])  # duplicate idx
    shutil.copy(parts[5], parts[5].with_name("part-00099.parquet"))  # a chunk the version does not have
    (parts[6].parent / ".part-00006.parquet.0123abcd.tmp").write_bytes(b"half")  # a write that died
    stray = root / "kind=training" / "sweep=nl\n" / "version=1"
    stray.mkdir(parents=True)
    shutil.copy(parts[7], stray / "part-00000.parquet")  # the partition of item 3
    (root / "kind=training" / "sweep=ghost" / "version=1").mkdir(parents=True)
    shutil.copy(parts[7], root / "kind=training" / "sweep=ghost" / "version=1" / "part-00000.parquet")
    (root / "notes.txt").write_text("hello")
    lake.write_sweep_dim("v", 1, kind="training", spec={}, hashes={}, configurations=6912, created_at=row.created_at,
                         state="running")  # a state the lake did not catch up with

    assert cli(["verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    found = {(p["kind"], p["path"].rsplit("/", 1)[-1] if p["kind"] != "stray" else p["path"]) for p in report["problems"]}
    assert found == {
        ("missing", "part-00000.parquet"), ("truncated", "part-00001.parquet"), ("corrupt", "part-00002.parquet"),
        ("rows", "part-00003.parquet"), ("idx", "part-00004.parquet"), ("extra", "part-00099.parquet"),
        ("temporary", ".part-00006.parquet.0123abcd.tmp"), ("stray", "kind=training/sweep=nl\n"),
        ("stray", "kind=training/sweep=ghost/version=1"), ("stray", "notes.txt"), ("dims", "part-0.parquet"),
    }, [(p["kind"], p["path"][-20:], p["detail"]) for p in report["problems"]]
    assert report["sweeps"][0]["duplicate_idx"] == half

    assert cli(["verify", "--repair", "--json"]) == 0
    repaired = json.loads(capsys.readouterr().out)
    assert repaired["ok"] and repaired["quarantine"].startswith("_quarantine/")
    actions = {(r["action"], r.get("why")) for r in repaired["repaired"]}
    assert ("requeued", None) in actions and ("deleted", "temporary") in actions and ("rewrote dims", None) in actions
    [requeued] = [r for r in repaired["repaired"] if r["action"] == "requeued"]
    assert requeued["chunks"] == [0, 1, 2, 3, 4]
    quarantine = root / repaired["quarantine"]
    assert (quarantine / "kind=training" / "sweep=nl\n" / "version=1" / "part-00000.parquet").exists()
    assert (quarantine / "notes.txt").exists() and (quarantine / parts[1].relative_to(root)).exists()
    assert queue.sweep("v").state == "queued"

    assert cli(["resume"]) == 0  # the re-queued chunks run again
    capsys.readouterr()
    assert queue.status("v")["state"] == "done"
    assert_verified(home.queue_path, home.lake, "v", rows=6912)
    n = run_sql("SELECT count(*) AS n, count(DISTINCT idx) AS d FROM training", lake=home.lake).to_pylist()
    assert n == [{"n": 6912, "d": 6912}]  # _quarantine/ is not part of the lake's views
