"""Re-runs (issue 6): a catalog change re-evaluates only the chunks that use the changed entry, carries
the rest over as files of the new version, keeps old versions queryable, and never makes two versions
out of two racing re-runs. Real Ray (2 CPUs), real Parquet, real DuckDB; small sweeps."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from chipsweep.lake import Lake
from chipsweep.queries.runner import run_saved
from chipsweep.schemas.catalog import load_catalog
from chipsweep.service.cli import main as cli
from chipsweep.service.dispatch import Dispatcher, submit
from chipsweep.service.queue import Queue
from chipsweep.service.rerun import chunk_entries, execute, plan, rerun
from tests.conftest import assert_exact, read_facts

pytestmark = pytest.mark.usefixtures("ray_local")

CHIPS = ["nvidia_h100_sxm", "nvidia_a100_sxm_40gb", "amd_mi300x"]
CHUNK = 8  # 48 configurations -> 6 chunks; the chip axis is outermost: 2 chunks per chip


def small_spec(name: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name or SW,
        "kind": "training",
        "axes": {"chip": CHIPS, "model": ["llama3_8b", "gpt3_13b"], "n_chips": [64, 128], "tp": [1, 2],
                 "pp": [1, 2]},
        "fixed": {"global_batch": 512, "tokens": 1.0e11, "micro_batch": 1, "recompute": "selective"},
    }
    spec.update(extra)
    return spec


def overlay(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def price(path: Path, chip: str, usd: float) -> str:
    return overlay(path, f"chips:\n  - id: {chip}\n    usd_per_hour: {usd}\n")


SW = "rr"  # this test's sweep name (unique per test: workers cache evaluators by sweep and version)
_POOL: list[Dispatcher] = []  # one actor pool for the module: actors start once, not per run


@pytest.fixture(autouse=True)
def _sweep_name(request: pytest.FixtureRequest) -> None:
    global SW
    SW = f"rr-{request.node.name[5:25].replace('_', '-')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def _no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests step the scheduler's clock by hand: an edit takes effect at the next tick (the settle window has
    a test of its own)."""
    import chipsweep.service.scheduler as scheduler

    monkeypatch.setattr(scheduler, "SETTLE_S", 0.0)


@pytest.fixture(autouse=True, scope="module")
def _pool() -> Any:
    yield
    for disp in _POOL:
        disp.close()


def run_all(queue: Queue, settings: Any) -> None:
    """Dispatch until nothing is queued or running (the module's pool, pointed at this test's queue)."""
    if not _POOL:
        _POOL.append(Dispatcher(queue, settings, actors=2))
    disp = _POOL[0]
    disp.queue, disp.settings = queue, settings
    disp._jobs.clear()
    disp.run(until=lambda: all(r.state not in ("queued", "running") for r in queue.sweeps()))


def first_version(home: Any, spec: dict[str, Any] | None = None) -> Queue:
    queue = Queue(home.queue_path)
    submit(spec or small_spec(), settings=home, queue=queue, catalog=load_catalog(use_env=False), chunk_size=CHUNK)
    run_all(queue, home)
    assert queue.sweep(SW).state == "done"
    return queue


def evaluated_chunks(queue: Queue, version: int) -> list[int]:
    """Chunks a worker evaluated or re-priced (carried chunks have no worker)."""
    return [c["chunk"] for c in queue.chunk_rows(SW, version) if c["carried_from"] is None]


def test_chunk_entries_follow_the_flat_index_range() -> None:
    from chipsweep.schemas.spec import parse_spec
    from chipsweep.schemas.sweep import resolve

    sweep = resolve(parse_spec(small_spec()), load_catalog(use_env=False))
    assert chunk_entries(sweep, 0, 8) == {"chips/nvidia_h100_sxm", "models/llama3_8b"}
    assert chunk_entries(sweep, 8, 16) == {"chips/nvidia_h100_sxm", "models/gpt3_13b"}
    assert chunk_entries(sweep, 14, 18) == {"chips/nvidia_h100_sxm", "chips/nvidia_a100_sxm_40gb",
                                           "models/gpt3_13b", "models/llama3_8b"}


def test_price_change_reprices_only_that_chips_chunks_and_moves_the_frontier(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    queue = first_version(home)
    v1_before = read_facts(home.lake, "training", SW, 1).sort_by("idx")
    v1_files = _file_digests(home.lake, 1)
    cat = load_catalog(price(tmp_path / "o.yaml", "nvidia_h100_sxm", 0.05))
    [res] = rerun(queue, catalog=cat)
    assert (res.outcome, res.version, res.changed) == ("rerun", 2, ["chips/nvidia_h100_sxm"])
    assert (res.chunks_evaluated, res.chunks_repriced, res.chunks_carried) == (0, 2, 4)
    run_all(queue, home)
    assert queue.sweep(f"{SW}@2").state == "done"
    assert evaluated_chunks(queue, 2) == [0, 1]  # the h100 chunks, and only they, went to a worker
    assert all(c["worker"] is None for c in _workers(queue, 2) if c["chunk"] >= 2)
    v2 = read_facts(home.lake, "training", SW, 2).sort_by("idx")
    assert_exact(v2, 48)  # the new version is complete on its own
    assert _file_digests(home.lake, 1) == v1_files  # the old version is untouched
    h100 = pc.less(v2.column("idx"), 16)
    old_cost = v1_before.filter(h100).column("cost_usd").to_pylist()
    new_cost = v2.filter(h100).column("cost_usd").to_pylist()
    assert all(n < o for n, o in zip(new_cost, old_cost, strict=True) if o == o and o > 0)
    assert _rows(v2.filter(pc.invert(h100))) == _rows(v1_before.filter(pc.invert(h100)))  # carried as they were
    physics = [c for c in v2.column_names if c not in ("cost_usd", "capex_usd", "opex_usd", "cost_basis")]
    assert _rows(v2.filter(h100).select(physics)) == _rows(v1_before.filter(h100).select(physics))  # re-priced only
    diff = run_saved("frontier_diff", {"sweep": SW, "from_version": 1, "to_version": 2}, lake=home.lake)
    entered = [r for r in diff.to_pylist() if r["change"] == "entered"]
    assert entered and all(r["chip"] == "nvidia_h100_sxm" for r in entered)


def _file_digests(lake: str, version: int) -> dict[str, str]:
    return {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for p in Lake(lake).committed_parts("training", SW, version)}


def _rows(table: Any) -> str:
    return json.dumps(table.to_pylist(), default=str)  # NaN-equal, unlike Table.equals


def _workers(queue: Queue, version: int) -> list[dict[str, Any]]:
    return [dict(r) for r in queue._db().execute(
        "SELECT chunk, worker FROM chunks WHERE name = ? AND version = ? ORDER BY chunk", (SW, version))]


def test_unrelated_change_reruns_nothing(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    queue = first_version(home)
    cat = load_catalog(price(tmp_path / "o.yaml", "google_tpu_v4", 0.5))  # not on the sweep's chip axis
    [res] = rerun(queue, catalog=cat)
    assert (res.outcome, res.version) == ("unchanged", 1)
    assert [r.version for r in queue.sweeps()] == [1]


def test_an_overlay_renamed_or_overridden_by_the_spec_reruns_nothing(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A re-run compares what a sweep computes with: an overlay that says the same under another file name (the
    name is written into each overlaid entry's sources) or moves a price the spec's own `overrides` pin changes
    nothing it computes. A contract audit found both made a new version with `"changes": []` and the untouched chip
    listed as changed."""
    queue = first_version(home, small_spec(overrides={"nvidia_h100_sxm": {"usd_per_hour": 2.0}}))
    text = "chips:\n  - {id: amd_mi300x, usd_per_hour: 0.1}\n  - {id: nvidia_h100_sxm, usd_per_hour: 1.2}\n"
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "one.yaml", text)))
    assert res.outcome == "rerun" and res.changed == ["chips/amd_mi300x"], res.as_json()
    run_all(queue, home)
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "two.yaml", text)))  # the same, renamed
    assert (res.outcome, res.version, res.changed) == ("unchanged", 2, []), res.as_json()
    pinned = text.replace("1.2", "1.5")  # the H100's price, which the spec overrides to 2.0
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "three.yaml", pinned)))
    assert (res.outcome, res.version) == ("unchanged", 2), res.as_json()
    assert sorted(r.version for r in queue.sweeps()) == [1, 2]


def test_a_change_to_constants_a_kind_never_reads_reruns_none_of_its_sweeps(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """asic.yaml's serving constants (refitted often) re-evaluated every training sweep in full: training reads
    calibration.yaml, never asic.yaml; serving rows read asic.yaml, never calibration.yaml."""
    import copy

    from chipsweep.service.rerun import reads

    queue = first_version(home)
    base = load_catalog(use_env=False)
    served = copy.copy(base)
    served.asic = copy.deepcopy(base.asic)
    served.asic["serving"]["efficiency"][0]["mem_bw_fraction"] = 0.5
    [res] = rerun(queue, catalog=served)
    assert (res.outcome, res.version) == ("unchanged", 1)
    assert reads("inference", "asic/serving") and not reads("asic", "asic/serving") and reads("asic", "asic/asic")
    assert reads("training", "calibration/default") and not reads("inference", "calibration/default")
    assert all(reads(kind, "defaults/all") for kind in ("training", "inference", "asic"))


def test_a_default_an_overlay_sets_reaches_every_chunk(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An overlay's `defaults:` (PUE, the usable memory) moved no sweep: the filter that keeps documentation-only
    changes out dropped the catalog-wide entries too, so `rerun --changed` said 'unchanged' for `mem_usable: 0.5`
    while `evaluate` already applied it, and a price edit beside a PUE edit re-priced the priced chip's chunks with
    the new PUE and carried the others with the old one (a user audit, reproduced here). A price-only default
    re-prices every chunk; any other default re-evaluates them all."""
    queue = first_version(home)
    text = "chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 0.5}\ndefaults: {pue: 1.7}\n"
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "pue.yaml", text)))
    assert res.outcome == "rerun" and "defaults/all" in res.changed, res.as_json()
    assert (res.chunks_evaluated, res.chunks_repriced, res.chunks_carried) == (0, 6, 0), res.as_json()
    changes = queue.versions(SW)[-1]["changes"]
    assert {"entry": "defaults/all", "field": "pue", "old": 1.1, "new": 1.7} in changes, changes
    run_all(queue, home)
    v1, v2 = (read_facts(home.lake, "training", SW, v).sort_by("idx") for v in (1, 2))
    ratio = [b / a for a, b in zip(v1.column("energy_mwh").to_pylist(), v2.column("energy_mwh").to_pylist(), strict=True)
             if a is not None and b is not None and a > 0]
    assert ratio and all(abs(r - 1.7 / 1.1) < 1e-4 for r in ratio)  # every chip's energy at the new PUE
    less_memory = text.replace("{pue: 1.7}", "{pue: 1.7, mem_usable: 0.5}")
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "mem.yaml", less_memory)))
    assert res.outcome == "rerun" and (res.chunks_evaluated, res.chunks_carried) == (6, 0), res.as_json()


def test_added_chip_shifts_ids_so_the_next_change_reruns_everything(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    queue = first_version(home)
    added = ("chips:\n  - id: aaa_new_chip\n    vendor: x\n    class: datacenter_training\n"
             "    peak_tflops_bf16: 100\n    memory_gb: 80\n    usd_per_hour: 1.0\n")
    path = tmp_path / "o.yaml"
    [res] = rerun(queue, catalog=load_catalog(overlay(path, added)))
    assert res.outcome == "unchanged"  # a chip the sweep does not use
    cat = load_catalog(overlay(path, added + "  - id: nvidia_h100_sxm\n    usd_per_hour: 0.05\n"))
    [res] = rerun(queue, catalog=cat)
    # integer chip ids are positions in sorted-id order: the new chip shifts them, so no file is carried
    assert (res.outcome, res.chunks_evaluated, res.chunks_carried) == ("rerun", 6, 0)
    run_all(queue, home)
    assert_exact(read_facts(home.lake, "training", SW, 2), 48)


def test_change_during_a_rerun_makes_one_more_version_not_a_lost_update(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.service.scheduler import Scheduler

    queue = first_version(home, small_spec(schedule={"on_change": True}))
    path = tmp_path / "o.yaml"
    clock = [queue.sweep(SW).created_at + 10]
    sched = Scheduler(queue, now=lambda: clock[0], overlay=str(path))
    price(path, "nvidia_h100_sxm", 0.05)
    [res] = sched.tick()
    assert (res.outcome, res.version) == ("rerun", 2)
    overlay(path, "chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 0.05}\n  - {id: amd_mi300x, usd_per_hour: 0.1}\n")
    clock[0] += 1
    [res] = sched.tick()  # version 2 has not run yet: the change waits for it
    assert (res.outcome, res.version) == ("deferred", 2)
    run_all(queue, home)
    clock[0] += 1
    [res] = sched.tick()
    assert (res.outcome, res.version, res.changed) == ("rerun", 3, ["chips/amd_mi300x"])
    assert (res.chunks_evaluated, res.chunks_repriced, res.chunks_carried) == (0, 2, 4)
    run_all(queue, home)
    clock[0] += 1
    assert [r.outcome for r in sched.tick()] == ["unchanged"]
    assert queue.payload(SW, 3)["sweep"]["hashes"] == _hashes(load_catalog(path))


def _hashes(cat: Any) -> dict[str, str]:
    from chipsweep.schemas.spec import parse_spec
    from chipsweep.schemas.sweep import resolve

    return resolve(parse_spec(small_spec(schedule={"on_change": True})), cat).hashes


def test_an_edit_takes_effect_once_the_files_have_settled(home, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A file saved in two writes, the first half valid YAML, re-ran a sweep on the half and again on the whole (a
    user audit: `layers 36 -> 32`, then back). The scheduler reads an edit once the files have held still for
    SETTLE_S: one re-run, on the whole file."""
    import chipsweep.service.scheduler as scheduler
    from chipsweep.service.scheduler import Scheduler

    monkeypatch.setattr(scheduler, "SETTLE_S", 2.0)
    queue = first_version(home, small_spec(schedule={"on_change": True}))
    path = tmp_path / "o.yaml"
    overlay(path, "")
    clock = [queue.sweep(SW).created_at + 10]
    sched = Scheduler(queue, now=lambda: clock[0], overlay=str(path))
    assert [r.outcome for r in sched.tick()] == ["unchanged"]  # the first catalog is read at once
    overlay(path, "chips:\n  - id: nvidia_h100_sxm\n")  # the first write: valid, and no price change yet
    assert [r.outcome for r in sched.tick()] == []  # seen, not read: checked already against these files
    clock[0] += 1
    price(path, "nvidia_h100_sxm", 0.05)  # the second write, a second later
    assert sched.tick() == [] and sched.catalog is not None
    clock[0] += 1.5
    assert sched.tick() == []  # 1.5 s of quiet: not yet
    clock[0] += 1
    [res] = sched.tick()
    assert (res.outcome, res.version, res.changed) == ("rerun", 2, ["chips/nvidia_h100_sxm"])
    assert [r.version for r in queue.sweeps()] == [2, 1]


def test_the_last_good_catalog_outlives_a_restart_with_the_files_broken(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The last good catalog was held in memory only: `serve` restarted while the overlay was broken had none (no
    re-runs, every catalog request a 503) until the file was fixed. It is kept beside the queue and taken up again."""
    from chipsweep.service.queue import Queue
    from chipsweep.service.scheduler import Scheduler

    queue = Queue(home.queue_path)
    path = tmp_path / "o.yaml"
    price(path, "nvidia_h100_sxm", 0.05)
    first = Scheduler(queue, overlay=str(path))
    first.tick()
    assert first.catalog is not None and first.last_good_path.exists()
    overlay(path, "chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: [0.9\n")  # broken, then the process restarts
    again = Scheduler(queue, overlay=str(path))
    again.tick()
    assert again.catalog_error and f"{path}:" in again.catalog_error
    assert again.catalog is not None and again.catalog.hashes() == first.catalog.hashes()
    assert again.catalog.chips["nvidia_h100_sxm"].usd_per_hour == 0.05
    first.last_good_path.unlink()  # and with nothing kept: none, as before, and said so
    third = Scheduler(queue, overlay=str(path))
    assert third.tick() == [] and third.catalog is None and third.catalog_error


def test_cron_schedule_fires_when_due_and_not_before(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.service.scheduler import Scheduler

    queue = first_version(home, small_spec(schedule={"cron": "0 * * * *"}))  # hourly, on the hour
    created = queue.sweep(SW).created_at
    due = (int(created) // 3600 + 1) * 3600
    path = tmp_path / "o.yaml"
    price(path, "nvidia_h100_sxm", 0.05)
    clock = [due - 1.0]
    sched = Scheduler(queue, now=lambda: clock[0], overlay=str(path))
    assert sched.tick() == []  # changed, but not due (and not on_change)
    clock[0] = due
    [res] = sched.tick()
    assert (res.outcome, res.version, res.chunks_evaluated, res.chunks_repriced) == ("rerun", 2, 0, 2)
    assert queue.versions(SW)[-1]["trigger"] == "cron"
    clock[0] = due + 60
    assert sched.tick() == []  # the next firing is an hour on
    run_all(queue, home)
    clock[0] = due + 3600
    assert [r.outcome for r in sched.tick()] == ["unchanged"]  # due again; nothing changed since


def test_racing_reruns_make_one_version(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    queue = first_version(home)
    cat = load_catalog(price(tmp_path / "o.yaml", "nvidia_h100_sxm", 0.05))
    base = queue.sweep(SW)
    p1, p2 = plan(queue, base, cat), plan(Queue(home.queue_path), base, cat)
    assert p1 is not None and p2 is not None
    assert execute(queue, p1, trigger="change").outcome == "rerun"
    assert execute(Queue(home.queue_path), p2, trigger="change").outcome == "raced"
    run_all(queue, home)
    # threads, each with its own connection, as two scheduler ticks or a CLI beside a server would be
    cat = load_catalog(price(tmp_path / "o2.yaml", "nvidia_h100_sxm", 0.07))
    gate = threading.Barrier(6)
    outcomes: list[str] = []

    def one() -> None:
        q = Queue(home.queue_path)
        gate.wait()
        outcomes.extend(r.outcome for r in rerun(q, catalog=cat, trigger="change"))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("rerun") == 1 and set(outcomes) <= {"rerun", "raced", "deferred"}
    assert [r.version for r in queue.sweeps()] == [3, 2, 1]


def test_broken_catalog_is_refused_with_file_line_and_the_last_good_stays(home, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.service.scheduler import Scheduler

    queue = first_version(home, small_spec(schedule={"on_change": True}))
    path = tmp_path / "o.yaml"
    overlay(path, "")
    clock = [0.0]
    sched = Scheduler(queue, now=lambda: clock[0], overlay=str(path))
    assert [r.outcome for r in sched.tick()] == ["unchanged"]
    good = sched.catalog
    overlay(path, "chips:\n  - id: nvidia_h100_sxm\n    usd_per_hour: [0.05\n")  # half-edited
    clock[0] += 1
    assert [r.outcome for r in sched.tick()] == ["unchanged"]  # judged on the last good catalog
    assert sched.catalog is good and sched.catalog_error and f"{path}:" in sched.catalog_error
    assert "invalid YAML" in sched.catalog_error
    overlay(path, "chips:\n  - id: nvidia_a100_sxm_40gb\n    tdp_w: 400\n  - id: nvidia_h100_sxm\n    usd_per_hour: -3\n")
    clock[0] += 1
    sched.tick()
    assert f"{path}:4" in sched.catalog_error and "usd_per_hour" in sched.catalog_error
    assert [r.version for r in queue.sweeps()] == [1]
    monkeypatch.setenv("CHIPSWEEP_CATALOG", str(path))
    assert cli(["rerun", "--changed", "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4" in err and "nothing re-run" in err
    price(path, "nvidia_h100_sxm", 0.05)  # fixed
    clock[0] += 1
    [res] = sched.tick()
    assert (res.outcome, res.version) == ("rerun", 2)


def test_history_frontier_and_gc_through_the_cli(home, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    queue = first_version(home)
    monkeypatch.setenv("CHIPSWEEP_CATALOG", price(tmp_path / "o.yaml", "nvidia_h100_sxm", 0.05))
    capsys.readouterr()
    assert cli(["rerun", "--changed", SW, "--wait", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: item[k] for k in ("sweep_id", "version", "changed", "chunks_evaluated", "chunks_repriced",
                                 "chunks_carried")} == {
        "sweep_id": SW, "version": 2, "changed": ["chips/nvidia_h100_sxm"], "chunks_evaluated": 0,
        "chunks_repriced": 2, "chunks_carried": 4}
    assert queue.sweep(f"{SW}@2").state == "done"
    assert cli(["history", SW, "--json"]) == 0
    v1, v2 = json.loads(capsys.readouterr().out)
    assert (v1["trigger"], v2["trigger"], v2["base_version"]) == ("submit", "manual", 1)
    usd = [c for c in v2["changes"] if c["field"] == "usd_per_hour"]
    assert usd == [{"entry": "chips/nvidia_h100_sxm", "field": "usd_per_hour", "old": usd[0]["old"], "new": 0.05}]
    assert usd[0]["old"] > 0.05 and (v2["rows_recomputed"], v2["rows_repriced"], v2["chunks_carried"]) == (0, 16, 4)
    assert v2["chunk_ranges"] == {"evaluated": "", "repriced": "0-1", "carried": "2-5"}
    assert cli(["history", SW]) == 0
    out = capsys.readouterr().out
    assert "chips/nvidia_h100_sxm.usd_per_hour" in out
    assert "chunks re-priced: 0-1" in out and "chunks carried: 2-5" in out
    assert cli(["gc", "--keep", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [f"{SW}@1"]
    assert Lake(home.lake).committed_parts("training", SW, 1) == []
    assert_exact(read_facts(home.lake, "training", SW, 2), 48)  # carried files outlive their source
    assert [v["version"] for v in queue.versions(SW)] == [2]
    assert run_saved("pareto_training", {"model": "llama3_8b", "sweep": SW}, lake=home.lake).num_rows > 0


def test_a_version_left_preparing_by_a_dead_rerun_is_finished_later(home, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import chipsweep.service.rerun as rr

    queue = first_version(home)
    cat = load_catalog(price(tmp_path / "o.yaml", "nvidia_h100_sxm", 0.05))
    p = plan(queue, queue.sweep(SW), cat)
    assert p is not None
    # what `execute` records before it copies anything; the process "dies" here
    queue.add_version(base=p.base, configurations=p.sweep.configurations, record=p.sweep.record(),
                      carried=p.carried, trigger="change", changes=p.changes, repriced=p.repriced)
    [res] = rerun(queue, catalog=cat)
    assert (res.outcome, res.version) == ("deferred", 2) and queue.sweep(SW).state == "preparing"  # not yet stale
    monkeypatch.setattr(rr, "PREPARE_STALE_S", -1.0)
    [res] = rerun(queue, catalog=cat)
    assert (res.outcome, res.version) == ("deferred", 2) and queue.sweep(SW).state == "queued"
    run_all(queue, home)
    assert queue.sweep(SW).state == "done" and evaluated_chunks(queue, 2) == [0, 1]
    assert_exact(read_facts(home.lake, "training", SW, 2), 48)
    assert [r.outcome for r in rerun(queue, catalog=cat)] == ["unchanged"]


def test_the_scheduler_finishes_a_version_left_preparing_whatever_the_sweeps_schedule(home, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A `rerun` killed while it prepared a version left it `preparing` (listed as queued, never dispatched); `serve`'s
    scheduler finished it only when the sweep's own schedule came due (a daily cron: tomorrow), and never for a
    sweep without a schedule (a user audit). Every tick now finishes a stale one; an interval firing is recorded as
    'interval', not 'cron'."""
    import chipsweep.service.rerun as rr
    from chipsweep.service.scheduler import Scheduler

    queue = first_version(home)  # no schedule
    cat = load_catalog(price(tmp_path / "o.yaml", "nvidia_h100_sxm", 0.05))
    p = plan(queue, queue.sweep(SW), cat)
    assert p is not None
    queue.add_version(base=p.base, configurations=p.sweep.configurations, record=p.sweep.record(),
                      carried=p.carried, trigger="change", changes=p.changes, repriced=p.repriced)
    sched = Scheduler(queue, overlay=str(tmp_path / "o.yaml"))
    assert sched.tick() == [] and queue.sweep(SW).state == "preparing"  # not yet stale
    monkeypatch.setattr(rr, "PREPARE_STALE_S", -1.0)
    assert sched.tick() == [] and queue.sweep(SW).state == "queued"  # finished, though the sweep has no schedule
    run_all(queue, home)
    assert queue.sweep(SW).state == "done"
    assert Scheduler(queue)._due(None, 30.0, since=0.0) == "interval"


def test_a_price_change_to_one_of_three_chips_reevaluates_a_third_of_a_5m_sweep_listing_chip_second(
        home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Default chunk size (sized to this machine's CPUs), a ~5-million-configuration spec with the chip
    axis second: chunks never span two chips, so one chip's price change plans at most a third of the
    chunks (+1) for re-evaluation and carries the rest."""
    chips = ["nvidia_h100_sxm", "nvidia_a100_sxm_40gb", "amd_mi300x"]
    spec = {"name": "five-m", "kind": "training", "store": "feasible",
            "axes": {"n_chips": {"geometric": {"start": 8, "stop": 8192, "factor": 2}}, "chip": chips,
                     "model": ["llama3_8b", "llama2_70b"], "tp": [1, 2, 4, 8], "pp": [1, 2, 4, 8, 16],
                     "micro_batch": [1, 2, 4, 8, 16], "recompute": ["none", "selective", "full"], "interleave": [1, 2],
                     "global_batch": list(range(256, 256 * 29, 256)), "zero_stage": [0, 1, 2, 3]},
            "fixed": {"tokens": 1e12}}
    queue = Queue(home.queue_path)
    row = submit(spec, settings=home, queue=queue)  # the chunk size chipsweep picks when none is set
    assert 4_000_000 <= row.configurations <= 6_000_000 and row.chunks_total >= 3
    with queue._tx() as db:  # the first version as finished (which chunks a change touches is the question)
        db.execute("UPDATE chunks SET state = 'done', rows = 1, bytes = 1 WHERE name = 'five-m'")
        db.execute("UPDATE sweeps SET state = 'done' WHERE name = 'five-m'")
    p = plan(queue, queue.sweep("five-m"), load_catalog(price(tmp_path / "o.yaml", "amd_mi300x", 0.5)))
    assert p is not None and p.changed == ["chips/amd_mi300x"]
    touched = row.chunks_total - len(p.carried)
    assert 0 < touched <= row.chunks_total // 3 + 1, (touched, row.chunks_total)
    assert len(p.repriced) == touched  # a price: re-priced, not one of them re-evaluated
    q = plan(queue, queue.sweep("five-m"), load_catalog(overlay(tmp_path / "m.yaml", "chips:\n  - {id: amd_mi300x, memory_gb: 128}\n")))
    assert q is not None and not q.repriced and row.chunks_total - len(q.carried) == touched  # physics: evaluated


def test_a_serving_sweep_reprices_through_the_workers_and_a_frontier_store_reevaluates(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    global SW
    base = {"kind": "inference", "axes": {"chip": CHIPS, "model": ["llama3_8b", "gpt3_13b"], "n_chips": [1, 2],
                                          "concurrency": [1, 16, 64, 256]},
            "fixed": {"prompt_len": 1024, "gen_len": 256, "weight_bits": 8, "kv_bits": 8}}
    queue = first_version(home, {"name": SW, **base})
    cat = load_catalog(price(tmp_path / "o.yaml", "amd_mi300x", 0.4))
    [res] = rerun(queue, catalog=cat)
    assert (res.chunks_evaluated, res.chunks_repriced, res.chunks_carried) == (0, 2, 4)
    run_all(queue, home)
    v1, v2 = (read_facts(home.lake, "inference", SW, v).sort_by("idx") for v in (1, 2))
    assert_exact(v2, 48)
    mi300x = pc.greater_equal(v2.column("idx"), 32)
    assert _rows(v2.filter(pc.invert(mi300x))) == _rows(v1.filter(pc.invert(mi300x)))
    new, old = (t.filter(mi300x).column("usd_per_million_tokens").to_pylist() for t in (v2, v1))
    assert any(o == o for o in old) and all(n < o for n, o in zip(new, old, strict=True) if o == o)
    # the same change on a frontier store: rows it dropped may now be on the frontier, so they are evaluated
    SW = SW + "-f"
    queue = first_version(home, {"name": SW, "store": "frontier", **base})
    [res] = rerun(queue, name=SW, catalog=cat)
    assert (res.chunks_evaluated, res.chunks_repriced, res.chunks_carried) == (2, 0, 4)


def test_a_chip_reruns_when_the_gemm_measurement_it_borrows_changes_and_not_for_its_price(home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A chip without a GEMM measurement of its own takes a measured chip's share of peak (the GB300 and B300 the
    GB200's, the MI355X the MI300X's): a change to that measurement changes what a sweep of the borrowing chip
    computes, and re-runs it; a change to the lender's price does not. A review found the lender's measurement
    change dropped as 'unchanged' (a B300 serving row 2,376 -> 2,346 tokens/s, TTFT 53.0 -> 58.6 ms)."""
    spec = small_spec(axes={"chip": ["amd_mi355x"], "model": ["llama3_8b"], "n_chips": [64, 128], "tp": [1, 2],
                            "pp": [1, 2]})
    queue = first_version(home, spec)
    price_only = "chips:\n  - {id: amd_mi300x, usd_per_hour: 0.1}\n"
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "price.yaml", price_only)))
    assert (res.outcome, res.version) == ("unchanged", 1), res.as_json()
    measured = ("chips:\n  - id: amd_mi300x\n    gemm_measured: {precision: fp8, tflops: 1000.0, source: a what-if,"
                " url: null}\n")
    [res] = rerun(queue, catalog=load_catalog(overlay(tmp_path / "gemm.yaml", measured)))
    assert res.outcome == "rerun" and res.changed == ["chips/amd_mi300x"], res.as_json()
