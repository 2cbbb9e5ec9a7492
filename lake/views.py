"""The lake as DuckDB sees it: a listing of what it holds, the views over it, and the read-only connection.

`connect()` mounts the lake in a throw-away DuckDB database, reopens it read-only, and confines file
access to the lake, so saved queries and user SQL run with the same views and the same rules:

    training, inference, asic               every version of every sweep (+ kind, sweep, version)
    latest_training, latest_inference, ...  the latest version of each sweep
    chips, models                           the dimension rows of every (sweep, version)
    versions                                one row per sweep version (state, spec, hashes, files)
    sweeps                                  one row per sweep (kind, latest version, state)

The latest version of a sweep is its newest version with fact files whose state is `done` (or not
recorded); a sweep with no such version shows its newest version with facts (a first run in progress).
A mount is a snapshot of the lake's listing: mount again to see versions written since. Only committed
`part-*.parquet` files under partition names the lake could have written are listed, and the views
name those directories one by one (no `sweep=*` glob), so a stray directory (`sweep=nl\n`, something
copied in by hand, `_quarantine/`) never breaks a query.

Each connection has a memory limit, a temp-space limit and a thread count (`connect(..., memory_limit=,
temp_limit=, threads=)`); its database file and spill files live in one `chipsweep-duckdb-<pid>-*`
directory, removed when the connection closes; `remove_stale_temp_dirs` removes those of processes that
died mid-query.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.arrow import ArrowFSWrapper

from chipsweep.lake.errors import LakeError
from chipsweep.lake.layout import DIM_PART, DIMS, PART_GLOB, check_sweep, fact_dir, is_part, join
from chipsweep.lake.location import ENV_LAKE, filesystem, is_uri, lake_root, normalise_root
from chipsweep.schemas.catalog import SYSTEM_CLASSES
from chipsweep.schemas.columns import DIM_SWEEPS, KINDS, arrow_schema
from chipsweep.workers.runtime import pid_alive


# ---------------------------------------------------------------------------------------------
# listing: which sweep versions have facts, and their recorded state
# ---------------------------------------------------------------------------------------------
@dataclass
class Listing:
    """What the lake holds, read from its directory tree (and the small dims/sweeps files)."""

    root: str
    facts: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (kind, sweep, version) -> parts
    dims: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # dim -> [(sweep, version)]
    states: dict[tuple[str, int], str] = field(default_factory=dict)  # (sweep, version) -> state

    def latest(self) -> dict[tuple[str, str], int]:
        """(kind, sweep) -> latest version (see the module doc for the rule)."""
        by_sweep: dict[tuple[str, str], list[int]] = {}
        for kind, sweep, version in self.facts:
            by_sweep.setdefault((kind, sweep), []).append(version)
        out: dict[tuple[str, str], int] = {}
        for (kind, sweep), versions in by_sweep.items():
            finished = [v for v in versions if self.states.get((sweep, v), "done") == "done"]
            out[(kind, sweep)] = max(finished or versions)
        return out


def _partition(name: str, key: str) -> str | None:
    prefix = f"{key}="
    return name[len(prefix):] if name.startswith(prefix) else None


def _sweep(name: str, key: str = "sweep") -> str | None:
    """The sweep of a `sweep=<name>` directory, when it is a name the lake could have written."""
    value = _partition(name, key)
    try:
        return check_sweep(value) if value else None
    except LakeError:
        return None


def scan(root: str | None = None) -> Listing:
    """List fact and dimension files. A missing lake is an empty lake."""
    root = normalise_root(root or lake_root())
    fs, base = filesystem(root)
    listing = Listing(root)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        return listing
    if info.type != pafs.FileType.Directory:
        raise LakeError(f"lake '{root}' is not a directory; set {ENV_LAKE} to a directory or an s3:// URI",
                        field=ENV_LAKE, value=root, allowed="a directory or an s3:// URI")
    for entry in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if entry.type != pafs.FileType.File or not is_part(entry.base_name):
            continue
        parts = entry.path[len(base):].strip("/").split("/")
        if len(parts) == 4:
            kind, sweep, version = _partition(parts[0], "kind"), _sweep(parts[1]), _partition(parts[2], "version")
            if kind in KINDS and sweep and version and version.isdigit():
                key = (kind, sweep, int(version))
                listing.facts[key] = listing.facts.get(key, 0) + 1
        elif len(parts) == 5 and parts[0] == "dims" and parts[1] in DIMS:
            sweep, version = _sweep(parts[2]), _partition(parts[3], "version")
            if sweep and version and version.isdigit():
                listing.dims.setdefault(parts[1], []).append((sweep, int(version)))
    for dim_sweep, dim_version in listing.dims.get("sweeps", []):
        try:
            with fs.open_input_file(join(base, "dims", "sweeps", f"sweep={dim_sweep}", f"version={dim_version}",
                                          DIM_PART)) as f:
                states = pq.read_table(f, columns=["state"]).column("state").to_pylist()
        except (OSError, pa.ArrowInvalid, KeyError):
            continue  # a dims file being replaced right now: treat the state as unknown
        if states and states[-1]:
            listing.states[(dim_sweep, dim_version)] = str(states[-1])
    return listing


# ---------------------------------------------------------------------------------------------
# DuckDB views
# ---------------------------------------------------------------------------------------------
_DUCK_TYPES = {
    pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int16(): "SMALLINT", pa.int8(): "TINYINT",
    pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR",
}


def duck_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return duck_type(t.value_type)
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    return _DUCK_TYPES[t]


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _empty(schema: pa.Schema, extra: dict[str, str]) -> str:
    cols = [f"CAST(NULL AS {duck_type(f.type)}) AS {f.name}" for f in schema]
    cols += [f"CAST(NULL AS {t}) AS {n}" for n, t in extra.items()]
    return f"SELECT {', '.join(cols)} WHERE false"


def _reader(paths: list[str], schema: pa.Schema | None = None, hive: dict[str, str] | None = None) -> str:
    """The Parquet files as one relation. Files written before a column was added lack it (an older
    chipsweep): columns are matched by name, a missing one reads as NULL, and with `schema` every column
    of today's schema exists even when no file has it yet. Float columns may hold NaN (a unit cost without a
    price, an energy without a TDP): Parquet writers leave NaN out of a column's min/max (Arrow does, as the format
    asks), and DuckDB, unless told `can_have_nan`, reads such min/max as proof that no NaN is there and folds
    `isnan(x)` to false (duckdb/duckdb issue #25521), so a frontier query would misprice or drop those rows."""
    files = paths[0] if len(paths) == 1 else paths
    arg = sql_literal(files) if isinstance(files, str) else "[" + ", ".join(sql_literal(p) for p in files) + "]"
    scan = (f"read_parquet({arg}, hive_partitioning = true, union_by_name = true, can_have_nan = true, "
            f"hive_types = {{'sweep': VARCHAR, 'version': BIGINT}})")
    if schema is None:
        return scan
    return f"(SELECT * FROM {scan} UNION ALL BY NAME ({_empty(schema, hive or {})}))"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(listing: Listing) -> dict[str, str]:
    """name -> SELECT of every view the lake mounts (in creation order)."""
    root = listing.root
    views: dict[str, str] = {}
    latest = listing.latest()
    hive = {"kind": "VARCHAR", "sweep": "VARCHAR", "version": "BIGINT"}
    for kind in KINDS:
        schema = arrow_schema(kind)
        cols = ", ".join(_quoted(n) for n in schema.names)
        versions = sorted((s, v) for k, s, v in listing.facts if k == kind)
        if versions:
            globs = [join(fact_dir(root, kind, s, v), PART_GLOB) for s, v in versions]
            views[kind] = f"SELECT {cols}, kind, sweep, version FROM {_reader(globs, schema, hive)}"
        else:
            views[kind] = _empty(schema, hive)
        dirs = [fact_dir(root, kind, s, v) for (k, s), v in sorted(latest.items()) if k == kind]
        if dirs:
            views[f"latest_{kind}"] = (
                f"SELECT {cols}, kind, sweep, version FROM {_reader([join(d, PART_GLOB) for d in dirs], schema, hive)}"
            )
        else:
            views[f"latest_{kind}"] = _empty(schema, hive)
    for dim in ("chips", "models"):
        schema = DIMS[dim]
        cols = ", ".join(_quoted(n) for n in schema.names)
        if listing.dims.get(dim):
            views[dim] = (f"SELECT {cols}, sweep, version FROM "
                          f"{_reader(_dim_files(root, dim, listing), schema, {'sweep': 'VARCHAR', 'version': 'BIGINT'})}")
        else:
            views[dim] = _empty(schema, {"sweep": "VARCHAR", "version": "BIGINT"})
    if listing.dims.get("sweeps"):
        recorded = (f"SELECT sweep, version, kind, spec_json, hashes_json, created_at, configurations, state "
                    f"FROM {_reader(_dim_files(root, 'sweeps', listing))}")
    else:
        recorded = _empty(DIM_SWEEPS, {"sweep": "VARCHAR", "version": "BIGINT"})
        recorded = f"SELECT sweep, version, kind, spec_json, hashes_json, created_at, configurations, state FROM ({recorded})"
    views["versions"] = f"""
        WITH recorded AS ({recorded}),
        files AS (SELECT * FROM _lake_files)
        SELECT coalesce(r.sweep, f.sweep) AS sweep, coalesce(r.version, f.version) AS version,
               coalesce(r.kind, f.kind) AS kind, coalesce(r.state, 'done') AS state,
               r.configurations, r.created_at, coalesce(f.parts, 0) AS parts,
               coalesce(f.latest, false) AS latest, r.spec_json, r.hashes_json
        FROM recorded r FULL OUTER JOIN files f ON r.sweep = f.sweep AND r.version = f.version"""
    views["sweeps"] = """
        SELECT sweep, any_value(kind) AS kind,
               coalesce(max(version) FILTER (WHERE latest), max(version)) AS latest_version,
               count(*) AS versions,
               arg_max(state, version) AS newest_state,
               max(version) AS newest_version,
               min(created_at) AS first_created_at, max(created_at) AS last_created_at,
               arg_max(configurations, version) FILTER (WHERE latest) AS configurations
        FROM versions GROUP BY sweep"""
    return views


def _dim_files(root: str, dim: str, listing: Listing) -> list[str]:
    return [join(root, "dims", dim, f"sweep={s}", f"version={v}", DIM_PART) for s, v in sorted(set(listing.dims[dim]))]


# labels for a configuration, usable in any query (`chipsweep sql` included)
MACROS: dict[str, str] = {
    # a row whose chip's efficiency was fitted on that chip's own published runs (workers/context.py writes
    # `calibrated_on` as the sources, or "extrapolated ..."); the saved frontiers' `calibration=measured`
    "fitted_on_own_runs": """(calibrated_on) AS
        calibrated_on IS NOT NULL AND NOT starts_with(CAST(calibrated_on AS VARCHAR), 'extrapolated')""",
    # offload_layers (optional, 0: none): the layers per stage whose activations wait in host memory; ep and cp
    # (optional, 1: none): expert and context parallelism, shown where they split the work
    "training_layout": """(n_chips, tp, pp, dp, micro_batch, interleave, recompute, zero_stage, offload_layers := 0,
                           ep := 1, cp := 1) AS
        n_chips || ' chips, tp' || tp || ' pp' || pp
        || CASE WHEN coalesce(ep, 1) > 1 THEN ' ep' || ep ELSE '' END
        || CASE WHEN coalesce(cp, 1) > 1 THEN ' cp' || cp ELSE '' END
        || ' dp' || dp || ' mb' || micro_batch
        || CASE WHEN interleave > 1 THEN ' v' || interleave ELSE '' END
        || CASE WHEN recompute <> 'none' THEN ' ' || recompute || ' recompute' ELSE '' END
        || CASE WHEN zero_stage > 0 THEN ' zero' || zero_stage ELSE '' END
        || CASE WHEN coalesce(offload_layers, 0) > 0 THEN ' offload' || offload_layers ELSE '' END""",
    "inference_layout": """(n_chips, weight_bits, batch) AS
        n_chips || ' chip' || CASE WHEN n_chips > 1 THEN 's' ELSE '' END || ', ' || weight_bits
        || '-bit weights, batch ' || batch""",
    # a serving configuration (continuous batching at `concurrency` users); a blank compute precision (the row
    # let the weight bits choose it) leaves the words out, not the layout
    "serving_layout": """(n_chips, pp, ep, ep_dedup, dp_attention, compute_precision, weight_bits, concurrency,
                          ssm_state_bits, disaggregated, prefill_instances, decode_instances) AS
        n_chips || ' chip' || CASE WHEN n_chips > 1 THEN 's' ELSE '' END
        || CASE WHEN pp > 1 THEN ' (pp' || pp || ')' ELSE '' END
        || CASE WHEN ep > 1 THEN ' ep' || ep ELSE '' END
        || CASE WHEN ep_dedup THEN ' (hierarchical dispatch)' ELSE '' END
        || CASE WHEN dp_attention THEN ' dp-attention' ELSE '' END
        || ', ' || coalesce(compute_precision || ' compute, ', '') || weight_bits || '-bit weights, '
        || concurrency || CASE WHEN concurrency = 1 THEN ' user' ELSE ' users' END
        || CASE WHEN ssm_state_bits = 32 THEN ', fp32 Mamba state' ELSE '' END
        || CASE WHEN disaggregated THEN ', disaggregated prefill'
                || coalesce(' ' || prefill_instances || 'P' || decode_instances || 'D', '') ELSE '' END""",
    "asic_design": """(node_nm, n_mac, clock_ghz, sram_mb, dram, dram_bus_bits, arch) AS
        'asic ' || CASE WHEN node_nm = round(node_nm) THEN CAST(CAST(node_nm AS INTEGER) AS VARCHAR)
                        ELSE CAST(round(node_nm, 2) AS VARCHAR) END
        || 'nm ' || n_mac || ' MAC ' || round(clock_ghz, 2) || ' GHz '
        || round(sram_mb, 1) || ' MB ' || dram || ' ' || dram_bus_bits || '-bit'
        || CASE WHEN arch = 'gpu' THEN ' (GPU datapath)' ELSE '' END""",
    "asic_layout": """(precision, weight_bits, batch) AS
        precision || ', ' || weight_bits || '-bit weights, batch ' || batch""",
    # what a catalog chip's purchase price buys (schemas/catalog.py Chip.cost_scope): the chips dimension's
    # purchase_scope, or by class where a lake written before 2026-12-07 has none
    "cost_scope": f"""(purchase_scope, chip_class) AS
        coalesce(purchase_scope, CASE WHEN chip_class IN ({", ".join(f"'{c}'" for c in sorted(SYSTEM_CLASSES))})
                                      THEN 'system' ELSE 'accelerator' END)""",
}


def _files_table(con: duckdb.DuckDBPyConnection, listing: Listing) -> None:
    latest = listing.latest()
    rows = [(s, v, k, n, latest.get((k, s)) == v) for (k, s, v), n in sorted(listing.facts.items())]
    con.execute("CREATE TABLE _lake_files (sweep VARCHAR, version BIGINT, kind VARCHAR, parts BIGINT, latest BOOLEAN)")
    if rows:
        con.executemany("INSERT INTO _lake_files VALUES (?, ?, ?, ?, ?)", rows)


def _remote(con: duckdb.DuckDBPyConnection, root: str) -> None:
    """Object-store access for a URI lake, offline: DuckDB reads through the lake's own `pyarrow.fs`
    filesystem (endpoint and credentials from the usual AWS variables), wrapped for fsspec; nothing is
    downloaded at run time (no httpfs extension)."""
    if not is_uri(root):
        return
    fs, _ = filesystem(root)
    wrapper = type("LakeFS", (ArrowFSWrapper,), {"protocol": (root.split("://", 1)[0],)})(fs)
    con.register_filesystem(wrapper)


_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
TEMP_PREFIX = "chipsweep-duckdb-"  # + "<pid>-<random>": the owner's pid tells a stale directory from a live one
_swept: list[bool] = []  # stale temp directories are looked for once per process


def machine_memory() -> int:
    """Bytes of physical memory of this machine (a container's limit where cgroups say less)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text.isdigit() and 0 < int(text) < total:
                total = int(text)
    return int(total)


def temp_space() -> int:
    """Bytes free where DuckDB spills (the system temp directory)."""
    try:
        return int(shutil.disk_usage(tempfile.gettempdir()).free)
    except OSError:
        return 0


def remove_stale_temp_dirs(*, older_than_s: float = 3600.0) -> list[str]:
    """Remove the temp directories of connections whose process died (killed mid-query): a
    `chipsweep-duckdb-<pid>-*` whose pid is gone, or one without a pid older than `older_than_s`.
    Returns what was removed."""
    removed: list[str] = []
    base = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for name in names:
        path = os.path.join(base, name)
        pid_text = name[len(TEMP_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and "-" in name[len(TEMP_PREFIX):]:
            if pid_alive(int(pid_text)):
                continue
        else:
            with contextlib.suppress(OSError):
                if now - os.stat(path).st_mtime < older_than_s:
                    continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    return removed



# the share of a query's memory bound given to DuckDB's memory_limit: the rest is headroom for what its
# buffer manager does not count (three concurrent 100-million-row joins at a 1,024 MiB limit each peaked
# 7 % above the sum of their limits; benchmarks/bench_sql_limits.py)
DUCKDB_MEMORY_SHARE = 0.8


@contextmanager
def connect(
    root: str | None = None, *, threads: int | None = None, lock: bool = True, fixed_join_order: bool = False,
    memory_limit: int | None = None, temp_limit: int | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckDB connection with the lake's views; file access is limited to the lake.

    The views live in a temporary database file, built and then reopened read-only: nothing a query
    does can write a table, and with external access off (locked) no file outside the lake is read.
    `lock=False` leaves the settings changeable (profiling in benchmarks); never for user SQL.
    `fixed_join_order=True` makes every join build its hash table on the right-hand side as written:
    saved queries put the small side (dimension rows, frontier cells) there, and DuckDB's estimates for
    derived tables are too rough to be trusted with a 100-million-row probe side.
    `memory_limit` and `temp_limit` (bytes) bound what one query may hold in memory and spill to disk
    (DuckDB raises an out-of-memory error past them; it is given `DUCKDB_MEMORY_SHARE` of the memory); the spill files live in the connection's own
    temporary directory, removed with it.
    """
    if not _swept:
        _swept.append(True)
        remove_stale_temp_dirs()
    root = normalise_root(root or lake_root())
    listing = scan(root)
    config: dict[str, object] = dict(_CONFIG)
    if threads:
        config["threads"] = int(threads)
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", ignore_cleanup_errors=True) as tmp:
        path = str(Path(tmp) / "lake.duckdb")
        build = duckdb.connect(path, config=config)  # type: ignore[arg-type]
        try:
            _remote(build, root)
            _files_table(build, listing)
            for name, select in view_sql(listing).items():
                build.execute(f"CREATE VIEW {name} AS {select}")
            for name, body in MACROS.items():
                build.execute(f"CREATE MACRO {name}{body}")
            build.execute("CHECKPOINT")
        finally:
            build.close()
        run_config = dict(config)
        run_config["temp_directory"] = str(Path(tmp) / "spill")
        if memory_limit:  # DuckDB's buffer manager gets a share: its limit does not count every allocation
            run_config["memory_limit"] = f"{max(int(memory_limit * DUCKDB_MEMORY_SHARE) // 2**20, 16)}MiB"
        if temp_limit:
            run_config["max_temp_directory_size"] = f"{max(int(temp_limit) // 2**20, 1)}MiB"
        con = duckdb.connect(path, read_only=True, config=run_config)  # type: ignore[arg-type]
        try:
            _remote(con, root)
            con.execute("SET enable_progress_bar = false")
            if fixed_join_order:
                con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
            allowed = root if is_uri(root) else root.rstrip(os.sep)
            con.execute(f"SET allowed_directories = [{sql_literal(allowed + '/')}]")
            con.execute("SET enable_external_access = false")
            if lock:
                con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()


def describe(root: str | None = None) -> dict[str, object]:
    """A JSON-able summary of the lake (versions with facts, latest per sweep)."""
    listing = scan(root)
    return {
        "root": listing.root,
        "facts": [{"kind": k, "sweep": s, "version": v, "parts": n} for (k, s, v), n in sorted(listing.facts.items())],
        "latest": [{"kind": k, "sweep": s, "version": v} for (k, s), v in sorted(listing.latest().items())],
    }


if __name__ == "__main__":  # pragma: no cover - a debugging aid
    print(json.dumps(describe(), indent=1))
