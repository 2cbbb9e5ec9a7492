"""The lake's writer: one class over one `pyarrow.fs` filesystem, and one way a file becomes visible.

Every file -- a chunk's fact part, a dimension table, a part carried into a new version -- is committed
the same way: written under a hidden temporary name beside its final one (`layout.temporary_name`), then
moved onto its deterministic name (a rename on a local disk; copy + delete on object stores, where the
final object appears whole). Readers never see half a file, and a chunk retried after its file was
committed is not written again. The only exception is a carried part on a local disk: a hard link,
which is atomic by itself.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from chipsweep.lake import layout, location
from chipsweep.lake.errors import LakeError
from chipsweep.schemas import columns

if TYPE_CHECKING:
    from chipsweep.schemas.sweep import Sweep

# Parquet writer options of every lake file (pyarrow.parquet.write_table keywords), measured on sweep chunks
# of 2^20 training rows: zstd level 1 writes ~2x faster than level 3 for files ~10 % larger. `parquet_options`
# adds, per table, dictionaries for the category columns (the schema's dictionary-typed, low-cardinality
# text) and delta encoding for the sequential `idx` (5 KB instead of 1 MB per chunk, scanned ~3x faster by
# DuckDB, and written no slower than plain).
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "write_statistics": True}
DELTA_COLUMNS = ("idx",)


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """The writer options of a table with this schema: PARQUET_OPTIONS plus its per-column encodings."""
    options = dict(PARQUET_OPTIONS)
    options["use_dictionary"] = [f.name for f in schema if pa.types.is_dictionary(f.type)] or False
    delta = {name: "DELTA_BINARY_PACKED" for name in DELTA_COLUMNS if name in schema.names}
    if delta:
        options["column_encoding"] = delta
    return options


# OS errors that say "not now" rather than "never": permissions being fixed, a read-only remount, a full
# disk or quota, an I/O error, an object store that is busy or unreachable. Any OSError of a lake
# operation is treated as transient (a chunk waits with back-off instead of spending its attempts); the
# errno only names the cause in messages and health.
TRANSIENT_ERRNOS = {
    errno.EACCES: "permission denied", errno.EPERM: "operation not permitted (immutable?)",
    errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "input/output error", errno.EAGAIN: "resource temporarily unavailable", errno.EBUSY: "device busy",
    errno.ETIMEDOUT: "timed out", errno.ENOTDIR: "a path component is not a directory",
}


class LakeUnavailable(RuntimeError):
    """The lake could not be written or read right now (an OS error of the file system or object store).
    Transient: the chunk waits with back-off and is retried; its evaluation attempts are not spent."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)

    def __reduce__(self) -> tuple[object, ...]:  # crosses process boundaries (Ray) intact
        return (LakeUnavailable, (self.reason, self.code))

    @classmethod
    def of(cls, exc: OSError, doing: str) -> LakeUnavailable:
        code = exc.errno if isinstance(exc.errno, int) else None
        name = errno.errorcode.get(code, "") if code is not None else ""
        text = " ".join(str(exc).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        return cls(f"{doing}: {name + ': ' if name else ''}{text}", code)


# A dimension table is one small file written in milliseconds, by whichever process changes a version's
# state (the dispatcher, a cancel through the API, `verify --repair`): its temporary younger than this may
# be a write in flight, older it is what a killed writer left.
DIM_WRITE_GRACE_S = 30.0


def temporary_in_flight(info: pafs.FileInfo, now: float) -> bool:
    """Whether a dimension table's temporary may still be being written (modified within the grace)."""
    mtime = info.mtime.timestamp() if info.mtime is not None else None
    return mtime is not None and now - mtime < DIM_WRITE_GRACE_S


@dataclass(frozen=True)
class PartInfo:
    rows: int
    bytes: int
    path: str


class Lake:
    """One lake root on one filesystem."""

    def __init__(self, uri: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None) -> None:
        """`uri`: a local path, or a URI pyarrow.fs resolves (s3://bucket/prefix, file:///path); or a path
        inside an explicit `filesystem`."""
        self.uri = os.fspath(uri)
        if filesystem is not None:
            self.fs, root = filesystem, self.uri
        else:
            self.fs, root = location.filesystem(self.uri)
        self.root = root.rstrip("/")

    # ---- paths -----------------------------------------------------------------------------------
    def fact_dir(self, kind: str, sweep: str, version: int) -> str:
        return layout.fact_dir(self.root, kind, sweep, version)

    def part_path(self, kind: str, sweep: str, version: int, chunk: int) -> str:
        return layout.fact_file(self.root, kind, sweep, version, chunk)

    def dim_path(self, dim: str, sweep: str, version: int) -> str:
        return layout.dim_file(self.root, dim, sweep, version)

    # ---- facts -----------------------------------------------------------------------------------
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
        return PartInfo(table.num_rows, self._commit_table(table, path), path)

    def committed_parts(self, kind: str, sweep: str, version: int) -> list[str]:
        """The committed part files of one version (temporaries are not parts)."""
        selector = pafs.FileSelector(self.fact_dir(kind, sweep, version), allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(selector)
                      if i.type == pafs.FileType.File and layout.is_part(i.base_name))

    def remove_temporaries(self, kind: str, sweep: str, version: int, *, now: float | None = None) -> int:
        """Delete the temporaries that writes which died mid-commit left in a version: among its facts, and
        among its dimension tables those older than DIM_WRITE_GRACE_S (younger ones may be a state another
        process is writing right now). Call it when the version is finished (no chunk is being written)."""
        now = time.time() if now is None else now
        n = 0
        for info in self._temporaries(self.fact_dir(kind, sweep, version)):
            self.fs.delete_file(info.path)
            n += 1
        for dim in layout.DIMS:
            for info in self._temporaries(layout.dim_dir(self.root, dim, sweep, version)):
                if not temporary_in_flight(info, now):
                    self.fs.delete_file(info.path)
                    n += 1
        return n

    def _temporaries(self, directory: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(directory, allow_not_found=True)
        return [i for i in self.fs.get_file_info(selector)
                if i.type == pafs.FileType.File and layout.is_temporary(i.base_name)]

    def carry(self, kind: str, sweep: str, src_version: int, dst_version: int, chunk: int) -> str:
        """Put the committed part of `chunk` of `src_version` into `dst_version` under the same name: a hard
        link on a local disk (part files are never modified in place, so a shared inode is safe), else a
        copy committed like any other file. An existing destination is kept (idempotent)."""
        src = self.part_path(kind, sweep, src_version, chunk)
        dst = self.part_path(kind, sweep, dst_version, chunk)
        if self.fs.get_file_info(dst).type == pafs.FileType.File:
            return dst
        if self.fs.get_file_info(src).type != pafs.FileType.File:
            raise LakeError(f"chunk {chunk} of {sweep}@{src_version} is not committed; cannot carry it to "
                            f"version {dst_version}", field="chunk", value=chunk,
                            allowed="a committed chunk of the source version")
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
            try:
                os.link(src, dst)
                return dst
            except FileExistsError:
                return dst
            except OSError:  # another device, or no hard links here: copy
                pass
        self._commit(dst, lambda tmp: self.fs.copy_file(src, tmp))
        return dst

    def delete_version(self, kind: str, sweep: str, version: int) -> list[str]:
        """Remove one version's facts and dimension tables; the directories removed. Parts carried into
        newer versions are their own links or copies, so those versions stay complete."""
        dirs = [self.fact_dir(kind, sweep, version)]
        dirs += [layout.dim_dir(self.root, d, sweep, version) for d in layout.DIMS]
        removed = []
        for path in dirs:
            if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                self.fs.delete_dir(path)
                removed.append(path)
        return removed

    # ---- dimensions ------------------------------------------------------------------------------
    def write_dim(self, dim: str, sweep: str, version: int, table: pa.Table) -> str:
        """Commit one dimension table (`chips`, `models` or `sweeps`) of a version, cast to its schema."""
        schema = layout.DIMS[layout.check_dim(dim)]
        missing = [n for n in schema.names if n not in table.column_names]
        if missing:
            raise LakeError(f"dims/{dim} table lacks column(s) {', '.join(missing)}; required: "
                            f"{', '.join(schema.names)}", field=f"dims/{dim}", value=table.column_names,
                            allowed=schema.names)
        path = self.dim_path(dim, sweep, version)
        self._commit_table(table.select(schema.names).cast(schema), path)
        return path

    def write_dims(self, sweep: Sweep, version: int, *, created_at: float, state: str = "queued") -> None:
        """The chips, models and sweeps dimension tables of one sweep version. Integer ids are positions
        in the version's catalog in sorted-id order, as the workers number them."""
        cat = sweep.catalog
        chip_rows = []
        for i, cid in enumerate(sorted(cat.chips)):
            c = cat.chips[cid]
            row = {"chip_id": i, "chip": cid, "name": c.name, "vendor": c.vendor, "class": c.chip_class,
                   "confidence": c.confidence, "purchase_scope": c.cost_scope}
            for f in columns.DIM_CHIPS.names:
                if f not in row:
                    row[f] = getattr(c, f, None)
            chip_rows.append(row)
        model_rows = []
        for i, mid in enumerate(sorted(cat.models)):
            m = cat.models[mid]
            row = {"model_id": i, "model": mid}
            for f in columns.DIM_MODELS.names:
                if f not in row:
                    row[f] = getattr(m, f, None)
            model_rows.append(row)
        spec = sweep.spec
        self.write_dim("chips", spec.name, version, _table(chip_rows, columns.DIM_CHIPS))
        self.write_dim("models", spec.name, version, _table(model_rows, columns.DIM_MODELS))
        self.write_sweep_dim(spec.name, version, kind=spec.kind, spec=spec.canonical(), hashes=sweep.hashes,
                             configurations=sweep.configurations, created_at=created_at, state=state)

    def write_sweep_dim(self, name: str, version: int, *, kind: str, spec: dict[str, Any], hashes: dict[str, str],
                        configurations: int, created_at: float, state: str) -> None:
        """The one-row `dims/sweeps` file of a version; rewritten (atomically) when its state changes,
        since queries take a sweep's latest version to be its newest `done` one."""
        when = datetime.datetime.fromtimestamp(created_at, tz=datetime.timezone.utc)
        table = columns.dim_sweeps_row(kind, json.dumps(spec, sort_keys=True), json.dumps(hashes, sort_keys=True),
                                       configurations, state, when)
        self.write_dim("sweeps", name, version, table)

    # ---- the commit ------------------------------------------------------------------------------
    def _commit_table(self, table: pa.Table, path: str) -> int:
        """Commit `table` as Parquet (one row group) at `path`; its size in bytes."""
        options = parquet_options(table.schema)
        return self._commit(path, lambda tmp: pq.write_table(
            table, tmp, filesystem=self.fs, row_group_size=max(table.num_rows, 1), **options))

    def _commit(self, path: str, write: Callable[[str], object]) -> int:
        """The one commit: `write` fills a hidden temporary beside `path`, which is then moved onto it
        (atomic rename on a local disk; copy + delete on object stores). A failure removes the temporary."""
        parent, name = path.rsplit("/", 1)
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/{layout.temporary_name(name)}"
        try:
            write(tmp)
            size = int(self.fs.get_file_info(tmp).size or 0)
            self.fs.move(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.delete_file(tmp)
            raise
        return size


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    data = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(data, schema=schema)
