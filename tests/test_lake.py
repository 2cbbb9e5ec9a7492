"""The lake as one layer: one commit protocol for every file, carried versions that stand alone, the
spec's name rule on every path, and one error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lakegen
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from chipsweep.lake import Lake, LakeError, check_sweep, is_part, is_temporary, lake_root, scan
from chipsweep.lake.layout import TMP_SUFFIX, temporary_name
from chipsweep.lake.store import DIM_WRITE_GRACE_S
from chipsweep.schemas.columns import dim_sweeps_row
from chipsweep.schemas.errors import ChipsweepError
from chipsweep.service.settings import Settings


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return lakegen.random_training(np.random.default_rng(3), 500)


class Recording(pafs.FileSystemHandler):
    """A local filesystem that records every file opened for writing, copied and moved."""

    def __init__(self) -> None:
        self.fs = pafs.LocalFileSystem()
        self.written: list[str] = []
        self.moves: list[tuple[str, str]] = []
        self.visible_at_move: list[list[str]] = []  # committed parts of the destination's directory
        self.lake: Lake | None = None

    def get_type_name(self) -> str:
        return "recording"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths):  # type: ignore[no-untyped-def]
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):  # type: ignore[no-untyped-def]
        return self.fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.moves.append((src, dest))
        self.visible_at_move.append(sorted(i.base_name for i in self.fs.get_file_info(
            pafs.FileSelector(dest.rsplit("/", 1)[0])) if is_part(i.base_name)))
        self.fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.written.append(dest)
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path: str):  # type: ignore[no-untyped-def]
        return self.fs.open_input_stream(path)

    def open_input_file(self, path: str):  # type: ignore[no-untyped-def]
        return self.fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata):  # type: ignore[no-untyped-def]
        self.written.append(path)
        return self.fs.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_facts_dims_and_carried_parts_share_one_commit_and_a_temporary_is_never_a_part(tmp_path: Path,
                                                                                        table: pa.Table) -> None:
    rec = Recording()
    lake = Lake(str(tmp_path / "lake"), filesystem=pafs.PyFileSystem(rec))  # not local: carry copies
    lake.write_part(table, "training", "s", 1, 0)
    lake.write_part(table.slice(0, 7), "training", "s", 1, 1)
    lake.write_dim("sweeps", "s", 1, dim_sweeps_row("training", "{}", "{}", 507, "done"))
    lake.carry("training", "s", 1, 2, 0)
    # every byte went to a hidden temporary beside its final name, then one move made it the file
    assert len(rec.written) == len(rec.moves) == 4
    for written, (src, dest) in zip(rec.written, rec.moves, strict=True):
        name = dest.rsplit("/", 1)[1]
        assert src == written and src.rsplit("/", 1)[0] == dest.rsplit("/", 1)[0]
        assert is_temporary(src.rsplit("/", 1)[1]) and src.rsplit("/", 1)[1].startswith(f".{name}.")
        assert not is_part(src.rsplit("/", 1)[1])
    # at each move the temporary was complete on disk, yet no reader counted it as a part
    assert rec.visible_at_move == [[], ["part-00000.parquet"], [], []]
    assert lake.committed_parts("training", "s", 2) == [lake.part_path("training", "s", 2, 0)]
    assert not [p for p in Path(tmp_path).rglob("*") if p.name.endswith(TMP_SUFFIX)]


def test_remove_temporaries_cleans_what_a_writer_that_died_mid_commit_left(tmp_path: Path, table: pa.Table) -> None:
    root = str(tmp_path / "lake")
    lake = Lake(root)
    lake.write_part(table, "training", "s", 1, 0)
    # a worker process killed after writing its temporary, before the move (no cleanup runs)
    script = textwrap.dedent(f"""
        import os
        import pyarrow.parquet as pq
        import lakegen, numpy as np
        from chipsweep.lake import Lake, store
        real = pq.write_table
        def write_then_die(*args, **kwargs):
            real(*args, **kwargs)
            os._exit(9)
        store.pq.write_table = write_then_die
        Lake({root!r}).write_part(lakegen.random_training(np.random.default_rng(1), 50), "training", "s", 1, 1)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    assert subprocess.run([sys.executable, "-c", script], env=env, check=False).returncode == 9
    left = sorted(os.listdir(lake.fact_dir("training", "s", 1)))
    assert len(left) == 2 and is_temporary(left[0]) and left[0].startswith(".part-00001.parquet.")
    assert lake.part_info("training", "s", 1, 1) is None  # not committed: a retry will write it
    assert lake.committed_parts("training", "s", 1) == [lake.part_path("training", "s", 1, 0)]
    assert scan(root).facts == {("training", "s", 1): 1}
    assert lake.remove_temporaries("training", "s", 1) == 1
    assert os.listdir(lake.fact_dir("training", "s", 1)) == ["part-00000.parquet"]
    assert lake.write_part(table.slice(0, 50), "training", "s", 1, 1).rows == 50


def _dim_temporary(lake: Lake, dim: str, sweep: str, version: int, age_s: float) -> Path:
    """A dimension table's temporary as a writer killed between its write and its move leaves it, last
    modified `age_s` seconds ago."""
    final = Path(lake.dim_path(dim, sweep, version))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / temporary_name(final.name)
    pq.write_table(dim_sweeps_row("training", "{}", "{}", 10, "running", None), tmp)
    when = time.time() - age_s
    os.utime(tmp, (when, when))
    return tmp


def test_the_end_of_a_version_removes_the_dims_temporaries_a_killed_writer_left(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    lake.write_sweep_dim("s", 1, kind="training", spec={}, hashes={}, configurations=10, created_at=0.0, state="done")
    left = [_dim_temporary(lake, dim, "s", 1, age_s=DIM_WRITE_GRACE_S + 60) for dim in ("sweeps", "chips")]
    in_flight = _dim_temporary(lake, "sweeps", "s", 1, age_s=1)  # another process recording the state now
    other = _dim_temporary(lake, "sweeps", "s", 2, age_s=DIM_WRITE_GRACE_S + 60)  # another version's
    assert lake.remove_temporaries("training", "s", 1) == 2
    assert not any(p.exists() for p in left)
    assert in_flight.exists() and other.exists()
    assert Path(lake.dim_path("sweeps", "s", 1)).exists()  # the committed table is no temporary
    # once the grace has passed, a write still not moved is one that died: the next end removes it
    assert lake.remove_temporaries("training", "s", 1, now=time.time() + DIM_WRITE_GRACE_S) == 1
    assert not in_flight.exists() and other.exists()


@pytest.mark.parametrize("where", ["local", "object store"])
def test_carry_makes_a_complete_version_that_outlives_its_source(tmp_path: Path, table: pa.Table, where: str) -> None:
    lake = (Lake(str(tmp_path / "lake")) if where == "local"
            else Lake("bucket/lake", filesystem=pafs._MockFileSystem()))
    for chunk in range(4):
        lake.write_part(table.slice(100 * chunk, 100), "training", "s", 1, chunk)
    lake.write_part(table.slice(400, 100), "training", "s", 2, 2)  # the one chunk a re-run re-evaluated
    for chunk in (0, 1, 3):
        lake.carry("training", "s", 1, 2, chunk)
    lake.carry("training", "s", 1, 2, 0)  # again: kept as it is
    if where == "local":  # a hard link: no second copy of the bytes
        assert os.stat(lake.part_path("training", "s", 2, 0)).st_ino == os.stat(lake.part_path("training", "s", 1, 0)).st_ino
    lake.delete_version("training", "s", 1)
    assert lake.committed_parts("training", "s", 1) == []
    parts = lake.committed_parts("training", "s", 2)
    assert [p.rsplit("/", 1)[1] for p in parts] == [f"part-{c:05d}.parquet" for c in range(4)]
    got = [pq.read_table(lake.fs.open_input_file(p))["idx"].to_pylist() for p in parts]
    want = [table.slice(100 * c, 100)["idx"].to_pylist() for c in (0, 1, 3)]
    assert [got[0], got[1], got[3]] == want and got[2] == table.slice(400, 100)["idx"].to_pylist()
    with pytest.raises(LakeError, match="not committed"):
        lake.carry("training", "s", 1, 3, 0)  # the source is gone


def test_a_sweep_name_with_a_trailing_newline_is_refused_by_the_lake(tmp_path: Path, table: pa.Table) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for call in (lambda: lake.write_part(table, "training", "ok\n", 1, 0),
                 lambda: lake.write_dim("sweeps", "ok\n", 1, dim_sweeps_row("training", "{}", "{}", 1, "done")),
                 lambda: lake.carry("training", "ok\n", 1, 2, 0),
                 lambda: lake.delete_version("training", "ok\n", 1)):
        with pytest.raises(LakeError) as err:
            call()
        assert (err.value.field, err.value.value) == ("sweep", "ok\n") and "letters, digits" in str(err.value.allowed)
    assert not (tmp_path / "lake").exists() or not list((tmp_path / "lake").rglob("*.parquet"))
    assert check_sweep("ok") == "ok"


def test_lake_error_is_a_chipsweep_error_naming_field_value_and_allowed(tmp_path: Path) -> None:
    assert issubclass(LakeError, ChipsweepError)
    with pytest.raises(ChipsweepError) as err:
        Lake(str(tmp_path)).part_path("train", "s", 1, 0)
    body = err.value.as_dict()
    assert (body["field"], body["value"]) == ("kind", "train") and body["allowed"] == "training, inference, asic"


def test_fact_parts_are_written_with_the_sweep_writer_options(tmp_path: Path, table: pa.Table) -> None:
    info = Lake(str(tmp_path)).write_part(table, "training", "s", 1, 0)
    meta = pq.ParquetFile(info.path).metadata
    names = table.schema.names
    col = {n: meta.row_group(0).column(i) for i, n in enumerate(names)}
    assert meta.num_row_groups == 1 and col["cost_usd"].compression == "ZSTD"
    assert "DELTA_BINARY_PACKED" in col["idx"].encodings
    for category in ("precision", "recompute", "cost_basis", "infeasible_reason"):  # the dictionary-typed columns
        assert "RLE_DICTIONARY" in col[category].encodings
    assert "RLE_DICTIONARY" not in col["cost_usd"].encodings
    assert pq.read_schema(info.path).equals(table.schema)  # the format: same columns and types as before


def test_settings_take_the_lake_from_the_one_location_rule(tmp_path: Path) -> None:
    env = {"CHIPSWEEP_HOME": str(tmp_path / "home")}
    assert Settings.from_env(env).lake == lake_root(env) == str(tmp_path / "home" / "lake")
    env["CHIPSWEEP_LAKE"] = "s3://bucket/results/"
    assert Settings.from_env(env).lake == lake_root(env) == "s3://bucket/results"


def test_parts_written_before_a_column_was_added_still_read_with_it_null(tmp_path: Path, table: pa.Table) -> None:
    """A lake of an older chipsweep: its part files lack the columns added since. Every view still has
    every column of today's schema; the old rows read NULL there, the new rows their values."""
    from chipsweep.queries.runner import run_sql

    added = table.column_names[-2]  # stands for a column a later version added

    def write_old(lake: str) -> None:  # what the older writer left: the same files without that column
        lakegen.write_version(lake, "training", "old", 1, table)
        for part in Lake(lake).committed_parts("training", "old", 1):
            pq.write_table(pq.read_table(part).drop_columns([added]), part)

    lake = str(tmp_path / "lake")
    write_old(lake)
    lakegen.write_version(lake, "training", "new", 1, table)
    got = run_sql(f"SELECT sweep, count(*) AS n, count({added}) AS valued FROM training GROUP BY sweep ORDER BY sweep",
                  lake=lake).to_pylist()
    valued = table.num_rows - table.column(added).null_count
    assert got == [{"sweep": "new", "n": table.num_rows, "valued": valued},
                   {"sweep": "old", "n": table.num_rows, "valued": 0}]
    only_old = str(tmp_path / "only-old")
    write_old(only_old)
    assert run_sql(f"SELECT count({added}) AS v FROM latest_training", lake=only_old).column("v")[0].as_py() == 0


def test_a_sweep_over_settings_without_a_column_writes_them_in_what_if(tmp_path):
    """A sweep over a model what-if (hidden), a framework switch (sequence_parallel) or a chip override writes one
    `what_if` string per row, 'name=value; ...' in axis order after the fixed settings without a column of their own,
    so rows that differ only there stay apart in SQL (8 rows of one model_id read the same before 2026-12-06); a sweep
    without such settings writes ''. The frontier store keeps each what-if's own frontier."""
    from chipsweep.schemas.catalog import load_catalog
    from tests.conftest import evaluated_lake

    cat = load_catalog(use_env=False)
    spec = {"name": "what-if", "kind": "training", "axes": {
        "model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"], "n_chips": [64], "hidden": [4096, 5120],
        "sequence_parallel": [True, False]}, "fixed": {"global_batch": 512, "tokens": 1e12, "tp": 2, "grad_bytes": 2}}
    t = evaluated_lake(spec, tmp_path / "a", cat)
    got = t.select(["what_if", "step_time_s"]).to_pylist()
    assert [r["what_if"] for r in got] == [
        f"grad_bytes=2; hidden={h}; sequence_parallel={sp}" for h in (4096, 5120) for sp in (True, False)]
    assert len({r["step_time_s"] for r in got}) == 4
    plain = dict(spec, name="plain", axes={"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"], "n_chips": [64, 128]},
                 fixed={"global_batch": 512, "tokens": 1e12})
    assert set(evaluated_lake(plain, tmp_path / "b", cat).column("what_if").to_pylist()) == {""}
    front = dict(spec, name="front", store="frontier", objectives=["time_to_train_days", "cost_usd"],
                 axes={**spec["axes"], "n_chips": [64, 128]})
    kept = evaluated_lake(front, tmp_path / "c", cat).column("what_if").to_pylist()
    assert len(set(kept)) == 4  # a frontier per what-if: the larger model is slower and dearer, and kept
