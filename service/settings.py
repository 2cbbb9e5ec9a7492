"""Where the service keeps things and how big it lets them get, resolved from the environment.

CHIPSWEEP_HOME (default `.chipsweep` in the working directory) holds the queue database and, unless
CHIPSWEEP_LAKE names another location (a path or an s3:// URI), the lake. The other variables tune the
service; each has a default that needs nothing but Python.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from chipsweep.lake import lake_root
from chipsweep.schemas.errors import ChipsweepError

MIN_CHUNK_SIZE = 1 << 20  # configurations per chunk at least (~0.3 s of work, one Parquet file)
MAX_CHUNK_SIZE = 1 << 29  # ... and at most (~3 min in one actor; a few GB of rows held with store: all)
# configurations per chunk and per worker process that keep one driver below 10 % busy: 10 r e d with
# r = 3.69 M configs/s per process, e = 0.85, d = 2.74 ms of driver CPU per chunk (benchmarks/out/
# scaling.json, deploy/README.md "How throughput grows with nodes")
CHUNK_PER_WORKER = 86_000
DEFAULT_MAX_CONFIGS = 2_000_000_000


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
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise SettingsError(f"environment variable {name} = {raw!r}: allowed: a positive integer") from None
    if value < 0:
        raise SettingsError(f"environment variable {name} = {raw!r}: allowed: a positive integer")
    return value
