"""The result lake: hive-partitioned Parquet through `pyarrow.fs` (a local folder or s3:// alike).

Facts:      <lake>/kind=<kind>/sweep=<name>/version=<v>/part-<chunk:05d>.parquet   (one file per chunk)
Dimensions: <lake>/dims/{chips,models,sweeps}/sweep=<name>/version=<v>/part-0.parquet

A file is committed by writing a hidden temporary file beside it and moving it to its deterministic
name (a rename on a local disk; a single PUT on object stores), so readers never see half a file and a
chunk that is retried after its file was committed is not written again.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from chipsweep.schemas import columns
from chipsweep.schemas.sweep import NAME_ALLOWED, NAME_PATTERN, Sweep
from chipsweep.workers.tables import ChipTable, ModelTable

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,  # the fastest zstd level: files ~10 % larger than level 3, written ~2x faster
    "use_dictionary": ["precision", "recompute", "infeasible_reason", "dram"],
    "write_statistics": True,
}
TMP_SUFFIX = ".tmp"

class LakeError(ValueError):
    """A lake location or partition value that cannot be used."""


@dataclass(frozen=True)
class PartInfo:
    rows: int
    bytes: int
    path: str


class Lake:
    """One lake root on one filesystem."""

    def __init__(self, uri: str, filesystem: pafs.FileSystem | None = None) -> None:
        """`uri`: a local path, or a URI pyarrow.fs resolves (s3://bucket/prefix, file:///path); or a
        path inside an explicit `filesystem`."""
        self.uri = uri
        if filesystem is not None:
            self.fs, root = filesystem, uri
        elif "://" in uri:
            self.fs, root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, root = pafs.LocalFileSystem(), str(Path(uri).expanduser().absolute())
        self.root = root.rstrip("/")

    # ---- paths ------------------------------------------------------------------------------
    def fact_dir(self, kind: str, sweep: str, version: int) -> str:
        if kind not in columns.KINDS:
            raise LakeError(f"kind '{kind}': allowed: {', '.join(columns.KINDS)}")
        return f"{self.root}/kind={kind}/sweep={_safe(sweep)}/version={int(version)}"

    def part_path(self, kind: str, sweep: str, version: int, chunk: int) -> str:
        return f"{self.fact_dir(kind, sweep, version)}/part-{int(chunk):05d}.parquet"

    def dim_path(self, dim: str, sweep: str, version: int) -> str:
        return f"{self.root}/dims/{dim}/sweep={_safe(sweep)}/version={int(version)}/part-0.parquet"

    # ---- facts -------------------------------------------------------------------------------
    def part_info(self, kind: str, sweep: str, version: int, chunk: int) -> PartInfo | None:
        """Rows and bytes of a committed chunk file, or None if it is not committed."""
        path = self.part_path(kind, sweep, version, chunk)
        info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            return None
        with self.fs.open_input_file(path) as fh:
            rows = pq.ParquetFile(fh).metadata.num_rows
        return PartInfo(rows, int(info.size or 0), path)

    def write_part(self, table: pa.Table, kind: str, sweep: str, version: int, chunk: int) -> PartInfo:
        """Commit one chunk's rows; a chunk already committed is left as it is (never written twice)."""
        done = self.part_info(kind, sweep, version, chunk)
        if done is not None:
            return done
        path = self.part_path(kind, sweep, version, chunk)
        size = self._commit(table, path)
        return PartInfo(table.num_rows, size, path)

    def remove_temporaries(self, kind: str, sweep: str, version: int) -> int:
        """Delete temporary files left by attempts that died mid-write (none is being written)."""
        selector = pafs.FileSelector(self.fact_dir(kind, sweep, version), allow_not_found=True)
        n = 0
        for info in self.fs.get_file_info(selector):
            if info.base_name.startswith(".") and info.base_name.endswith(TMP_SUFFIX):
                self.fs.delete_file(info.path)
                n += 1
        return n

    def committed_parts(self, kind: str, sweep: str, version: int) -> list[str]:
        selector = pafs.FileSelector(self.fact_dir(kind, sweep, version), allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(selector) if i.base_name.endswith(".parquet")
                      and not i.base_name.startswith("."))

    # ---- dimensions ---------------------------------------------------------------------------
    def write_dims(self, sweep: Sweep, version: int, *, created_at: float, state: str = "queued") -> None:
        """The chips, models and sweeps dimension tables of one sweep version (ids as its catalog's)."""
        cat = sweep.catalog
        chips = ChipTable.from_catalog(cat).ids
        chip_rows = []
        for i, cid in enumerate(chips):
            c = cat.chips[cid]
            row = {"chip_id": i, "chip": cid, "name": c.name, "vendor": c.vendor, "class": c.chip_class,
                   "confidence": c.confidence}
            for f in columns.DIM_CHIPS.names:
                if f not in row:
                    row[f] = getattr(c, f, None)
            chip_rows.append(row)
        models = ModelTable.from_catalog(cat).ids
        model_rows = []
        for i, mid in enumerate(models):
            m = cat.models[mid]
            row = {"model_id": i, "model": mid}
            for f in columns.DIM_MODELS.names:
                if f not in row:
                    row[f] = getattr(m, f, None)
            model_rows.append(row)
        spec = sweep.spec
        self._commit(_table(chip_rows, columns.DIM_CHIPS), self.dim_path("chips", spec.name, version))
        self._commit(_table(model_rows, columns.DIM_MODELS), self.dim_path("models", spec.name, version))
        self.write_sweep_dim(spec.name, version, kind=spec.kind, spec=spec.canonical(), hashes=sweep.hashes,
                             configurations=sweep.configurations, created_at=created_at, state=state)

    def write_sweep_dim(self, name: str, version: int, *, kind: str, spec: dict[str, Any], hashes: dict[str, str],
                        configurations: int, created_at: float, state: str) -> None:
        """The one-row `dims/sweeps` file of a version; rewritten (atomically) when its state changes,
        since queries take a sweep's latest version to be its newest `done` one."""
        when = datetime.datetime.fromtimestamp(created_at, tz=datetime.timezone.utc)
        table = columns.dim_sweeps_row(kind, json.dumps(spec, sort_keys=True), json.dumps(hashes, sort_keys=True),
                                       configurations, state, when)
        self._commit(table, self.dim_path("sweeps", name, version))

    # ---- the commit ---------------------------------------------------------------------------
    def _commit(self, table: pa.Table, path: str) -> int:
        parent, name = path.rsplit("/", 1)
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        options = dict(PARQUET_OPTIONS)
        options["use_dictionary"] = [c for c in options["use_dictionary"] if c in table.schema.names] or False
        try:
            pq.write_table(table, tmp, filesystem=self.fs, row_group_size=max(table.num_rows, 1), **options)
            size = int(self.fs.get_file_info(tmp).size or 0)
            self.fs.move(tmp, path)  # atomic rename on a local disk; copy + delete (one PUT) on object stores
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.delete_file(tmp)
            raise
        return size


def _safe(name: str) -> str:
    """A sweep name as a partition value; anything that could leave the lake directory is refused."""
    if not re.match(NAME_PATTERN, name) or ".." in name:
        raise LakeError(f"sweep name {name!r}: allowed: {NAME_ALLOWED}")
    return name


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    data = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(data, schema=schema)
