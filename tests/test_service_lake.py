"""The lake writer (chipsweep.lake.Lake): deterministic part names, atomic commits, a chunk never written twice, dimension
tables, and the same code on a non-local pyarrow filesystem."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from chipsweep.lake import Lake, LakeError
from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.columns import DIM_CHIPS, DIM_MODELS, DIM_SWEEPS
from chipsweep.schemas.spec import parse_spec
from chipsweep.schemas.sweep import resolve
from chipsweep.workers.chunk import ChunkEvaluator
from tests.conftest import training_spec


@pytest.fixture(scope="module")
def sweep():  # type: ignore[no-untyped-def]
    return resolve(parse_spec(training_spec("lake-t")), load_catalog(use_env=False))


@pytest.fixture(scope="module")
def table(sweep):  # type: ignore[no-untyped-def]
    return ChunkEvaluator(sweep).evaluate(0, 2000)


def test_part_is_committed_under_its_deterministic_name(tmp_path, table) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(str(tmp_path / "lake"))
    info = lake.write_part(table, "training", "lake-t", 1, 3)
    assert info.path == f"{tmp_path}/lake/kind=training/sweep=lake-t/version=1/part-00003.parquet"
    assert os.listdir(os.path.dirname(info.path)) == ["part-00003.parquet"]  # no temporary left
    meta = pq.ParquetFile(info.path).metadata
    assert meta.num_rows == 2000 and info.rows == 2000 and info.bytes == os.path.getsize(info.path)
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(info.path).field("precision").type == pa.dictionary(pa.int32(), pa.string())


def test_a_committed_chunk_is_not_written_twice(tmp_path, table) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(str(tmp_path / "lake"))
    first = lake.write_part(table, "training", "lake-t", 1, 0)
    stat = os.stat(first.path)
    second = lake.write_part(table.slice(0, 10), "training", "lake-t", 1, 0)  # a retry after the commit
    assert second == first and os.stat(first.path).st_mtime_ns == stat.st_mtime_ns and os.stat(first.path).st_ino == stat.st_ino
    assert lake.part_info("training", "lake-t", 1, 0).rows == 2000


def test_a_failed_commit_leaves_no_temporary(tmp_path, table) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(str(tmp_path / "lake"))
    blocker = lake.part_path("training", "lake-t", 1, 0)
    os.makedirs(f"{blocker}/occupied")  # the rename onto a non-empty directory fails
    with pytest.raises(OSError):
        lake.write_part(table, "training", "lake-t", 1, 0)
    assert os.listdir(lake.fact_dir("training", "lake-t", 1)) == ["part-00000.parquet"]


def test_temporaries_of_dead_attempts_are_removed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(str(tmp_path / "lake"))
    d = lake.fact_dir("training", "x", 1)
    os.makedirs(d)
    open(f"{d}/.part-00001.parquet.abc.tmp", "w").close()
    open(f"{d}/part-00000.parquet", "w").close()
    assert lake.remove_temporaries("training", "x", 1) == 1
    assert os.listdir(d) == ["part-00000.parquet"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "x=1"])
def test_partition_values_cannot_escape_the_lake(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LakeError, match="allowed"):
        Lake(str(tmp_path)).part_path("training", name, 1, 0)


def test_dimension_tables_follow_the_catalog_the_version_used(tmp_path, sweep) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(str(tmp_path / "lake"))
    lake.write_dims(sweep, 4, created_at=1.0e9)
    chips = pq.read_table(lake.dim_path("chips", "lake-t", 4))
    models = pq.read_table(lake.dim_path("models", "lake-t", 4))
    sweeps = pq.read_table(lake.dim_path("sweeps", "lake-t", 4))
    assert chips.schema.equals(DIM_CHIPS) and models.schema.equals(DIM_MODELS) and sweeps.schema.equals(DIM_SWEEPS)
    assert chips.column("chip").to_pylist() == sorted(sweep.catalog.chips)
    assert chips.column("chip_id").to_pylist() == list(range(len(sweep.catalog.chips)))
    assert models.column("model").to_pylist() == sorted(sweep.catalog.models)
    row = sweeps.to_pylist()[0]
    assert (row["kind"], row["state"], row["configurations"]) == ("training", "queued", sweep.configurations)


def test_the_same_code_writes_to_a_non_local_filesystem(table) -> None:  # type: ignore[no-untyped-def]
    fs = pafs._MockFileSystem()
    lake = Lake("bucket/lake", filesystem=fs)
    info = lake.write_part(table, "training", "lake-t", 2, 7)
    assert info.path == "bucket/lake/kind=training/sweep=lake-t/version=2/part-00007.parquet"
    with fs.open_input_file(info.path) as fh:
        assert pq.read_table(fh).num_rows == 2000
    assert lake.write_part(table, "training", "lake-t", 2, 7) == info
