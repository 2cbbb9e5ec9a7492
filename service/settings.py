"""Where the service keeps things and how big it lets them get, resolved from the environment.

CHIPSWEEP_HOME (default `.chipsweep` in the working directory) holds the queue database and, unless
CHIPSWEEP_LAKE names another location (a path or an s3:// URI), the lake. The other variables tune the
service; each has a default that needs nothing but Python:

    CHIPSWEEP_MAX_BODY_BYTES    request bodies larger than this are refused (413) before they are read
    CHIPSWEEP_SQL_MEMORY_MB     memory one query may hold (DuckDB memory_limit); default RAM / (4 x concurrency)
    CHIPSWEEP_SQL_TEMP_MB       disk one query may spill to; default a tenth of the free temp space / concurrency
    CHIPSWEEP_SQL_CONCURRENCY   queries running at once in one process (2); more wait, then get 429
    CHIPSWEEP_SQL_TIMEOUT_S     time limit of an HTTP query (120 s)
    CHIPSWEEP_SQL_MAX_ROWS      rows one HTTP answer may carry (100,000); more is an error naming the limit
    CHIPSWEEP_LAKE_BACKOFF_S    the longest wait between retries of a chunk the lake could not take (30 s)
    CHIPSWEEP_QUEUE_SYNC        SQLite synchronous mode of the queue: full (default) or normal
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from chipsweep.lake import lake_root
from chipsweep.queries.runner import QueryLimits
from chipsweep.schemas.errors import ChipsweepError

MIN_CHUNK_SIZE = 1 << 20  # configurations per chunk at least (~0.3 s of work, one Parquet file)
MAX_CHUNK_SIZE = 1 << 29  # ... and at most (~3 min in one actor; a few GB of rows held with store: all)
# configurations per chunk and per worker process that keep one driver below 10 % busy: 10 r e d with
# r = 3.69 M configs/s per process, e = 0.85, d = 2.74 ms of driver CPU per chunk (benchmarks/out/
# scaling.json, deploy/README.md "How throughput grows with nodes")
CHUNK_PER_WORKER = 86_000
DEFAULT_MAX_CONFIGS = 2_000_000_000
DEFAULT_MAX_BODY_BYTES = 4 * 2**20  # a spec is a few KB, SQL a few; 4 MiB leaves room and stops a 50 MB body
DEFAULT_SQL_CONCURRENCY = 2
DEFAULT_SQL_TIMEOUT_S = 120.0
DEFAULT_SQL_MAX_ROWS = 100_000
DEFAULT_LAKE_BACKOFF_S = 30.0


class SettingsError(ChipsweepError):
    """An environment variable with a value the service cannot use (names the variable)."""


@dataclass(frozen=True)
class Settings:
    home: Path
    lake: str  # a local path or a pyarrow.fs URI (s3://bucket/prefix)
    queue_path: Path
    max_configs: int  # CHIPSWEEP_MAX_CONFIGS: bigger sweeps are refused at submit
    chunk_size: int | None  # CHIPSWEEP_CHUNK_SIZE: configurations per chunk (one Parquet file each); None: by cluster size
    actors: int | None  # CHIPSWEEP_ACTORS: pool size; None = one per CPU of the Ray cluster
    max_attempts: int  # CHIPSWEEP_MAX_ATTEMPTS: evaluation errors before a chunk is marked failed
    token: str | None  # CHIPSWEEP_TOKEN: bearer token the HTTP API requires when set
    ray_address: str | None  # RAY_ADDRESS: an existing Ray cluster; None starts a local one
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # CHIPSWEEP_MAX_BODY_BYTES
    sql_memory_mb: int | None = None  # CHIPSWEEP_SQL_MEMORY_MB; None: sized for the machine
    sql_temp_mb: int | None = None  # CHIPSWEEP_SQL_TEMP_MB; None: sized for the free temp space
    sql_concurrency: int = DEFAULT_SQL_CONCURRENCY  # CHIPSWEEP_SQL_CONCURRENCY
    sql_timeout_s: float = DEFAULT_SQL_TIMEOUT_S  # CHIPSWEEP_SQL_TIMEOUT_S
    sql_max_rows: int = DEFAULT_SQL_MAX_ROWS  # CHIPSWEEP_SQL_MAX_ROWS
    lake_backoff_s: float = DEFAULT_LAKE_BACKOFF_S  # CHIPSWEEP_LAKE_BACKOFF_S
    queue_sync: str = "full"  # CHIPSWEEP_QUEUE_SYNC (see service/queue.py for why full)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("CHIPSWEEP_HOME") or ".chipsweep").expanduser().absolute()
        return cls(
            home=home,
            lake=lake_root(env),
            queue_path=home / "queue.db",
            max_configs=_int(env, "CHIPSWEEP_MAX_CONFIGS", DEFAULT_MAX_CONFIGS),
            chunk_size=_int(env, "CHIPSWEEP_CHUNK_SIZE", 0) or None,
            actors=_int(env, "CHIPSWEEP_ACTORS", 0) or None,
            max_attempts=_int(env, "CHIPSWEEP_MAX_ATTEMPTS", 3),
            token=env.get("CHIPSWEEP_TOKEN") or None,
            ray_address=env.get("RAY_ADDRESS") or None,
            max_body_bytes=_int(env, "CHIPSWEEP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES) or DEFAULT_MAX_BODY_BYTES,
            sql_memory_mb=_int(env, "CHIPSWEEP_SQL_MEMORY_MB", 0) or None,
            sql_temp_mb=_int(env, "CHIPSWEEP_SQL_TEMP_MB", 0) or None,
            sql_concurrency=_int(env, "CHIPSWEEP_SQL_CONCURRENCY", DEFAULT_SQL_CONCURRENCY) or DEFAULT_SQL_CONCURRENCY,
            sql_timeout_s=_float(env, "CHIPSWEEP_SQL_TIMEOUT_S", DEFAULT_SQL_TIMEOUT_S),
            sql_max_rows=_int(env, "CHIPSWEEP_SQL_MAX_ROWS", DEFAULT_SQL_MAX_ROWS) or DEFAULT_SQL_MAX_ROWS,
            lake_backoff_s=_float(env, "CHIPSWEEP_LAKE_BACKOFF_S", DEFAULT_LAKE_BACKOFF_S),
            queue_sync=_choice(env, "CHIPSWEEP_QUEUE_SYNC", ("full", "normal"), "full"),
        )

    def query_limits(self, *, timeout_s: float | None = None, row_cap: int | None = None) -> QueryLimits:
        """The limits every query of this process runs within (the CLI, the Python API, HTTP)."""
        base = QueryLimits.for_machine(concurrency=self.sql_concurrency)
        return QueryLimits(
            memory_bytes=self.sql_memory_mb * 2**20 if self.sql_memory_mb else base.memory_bytes,
            temp_bytes=self.sql_temp_mb * 2**20 if self.sql_temp_mb else base.temp_bytes,
            concurrency=self.sql_concurrency, timeout_s=timeout_s, row_cap=row_cap)

    @property
    def sql_memory_budget(self) -> int:
        """Bytes all concurrent queries of one process may hold together (the server's RSS bound for SQL)."""
        limits = self.query_limits()
        return int((limits.memory_bytes or 0) * self.sql_concurrency)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 and value < float("inf")):
        raise SettingsError(f"environment variable {name} = {raw[:60]!r}: allowed: a positive number",
                            field=name, value=raw, allowed="a positive number")
    return value


def _choice(env: Mapping[str, str], name: str, options: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in options:
        raise SettingsError(f"environment variable {name} = {raw[:60]!r}: allowed: {', '.join(options)}",
                            field=name, value=raw, allowed=list(options))
    return raw


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):
        raise SettingsError(f"environment variable {name} = {raw[:60]!r}: allowed: a positive integer",
                            field=name, value=raw, allowed="a positive integer") from None
    if value < 0:
        raise SettingsError(f"environment variable {name} = {raw[:60]!r}: allowed: a positive integer",
                            field=name, value=raw, allowed="a positive integer")
    return value
