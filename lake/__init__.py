"""chipsweep.lake: the result lake -- hive-partitioned Parquet through `pyarrow.fs` (a local folder or s3://).

    location   where the lake is ($CHIPSWEEP_LAKE, $CHIPSWEEP_HOME/lake) and its filesystem
    layout     the path of every file, and the one name rule for sweep partitions
    store      `Lake`: the one writer; every file committed by the same temporary-then-move
    views      what DuckDB sees: `scan`, the views, `connect()` (read-only, confined to the lake)

Imports only `chipsweep.schemas`; the workers, queries and service build on it.
"""

from chipsweep.lake.errors import LakeError
from chipsweep.lake.layout import (
    DIMS,
    TMP_SUFFIX,
    check_sweep,
    dim_file,
    fact_dir,
    fact_file,
    is_part,
    is_temporary,
)
from chipsweep.lake.location import chipsweep_home, filesystem, is_uri, lake_root, normalise_root
from chipsweep.lake.store import PARQUET_OPTIONS, Lake, PartInfo, parquet_options
from chipsweep.lake.views import MACROS, Listing, connect, describe, scan, sql_literal, view_sql

__all__ = [
    "DIMS", "MACROS", "PARQUET_OPTIONS", "TMP_SUFFIX", "Lake", "LakeError", "Listing", "PartInfo", "check_sweep",
    "chipsweep_home", "connect", "describe", "dim_file", "fact_dir", "fact_file", "filesystem", "is_part",
    "is_temporary", "is_uri", "lake_root", "normalise_root", "parquet_options", "scan", "sql_literal", "view_sql",
]
