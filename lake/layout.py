"""Where each file of a sweep version lives, and the one rule for the names in those paths.

    <lake>/kind=<training|inference|asic>/sweep=<name>/version=<int>/part-NNNNN.parquet   facts, one per chunk
    <lake>/dims/<chips|models|sweeps>/sweep=<name>/version=<int>/part-0.parquet         dimensions
    <dir>/.<file name>.<uuid>.tmp                                                       a file being committed

Paths are built by string joins on any root (a local path, a path inside a pyarrow filesystem, or a URI for
DuckDB), so writers and readers agree on them. A sweep name becomes a directory, so it must follow the
spec's rule (`schemas.spec.valid_name`: the whole string, no '..'); anything else is refused before a
path is made. Temporary names start with '.', so they never match `part-*.parquet`.
"""

from __future__ import annotations

import re
import uuid

import pyarrow as pa

from chipsweep.lake.errors import LakeError
from chipsweep.schemas.columns import DIM_CHIPS, DIM_MODELS, DIM_SWEEPS, KINDS
from chipsweep.schemas.spec import NAME_ALLOWED, valid_name

DIMS: dict[str, pa.Schema] = {"chips": DIM_CHIPS, "models": DIM_MODELS, "sweeps": DIM_SWEEPS}
PART_GLOB = "part-*.parquet"
DIM_PART = "part-0.parquet"
TMP_SUFFIX = ".tmp"
_PART_RE = re.compile(r"part-\d+\.parquet")


def check_sweep(name: object) -> str:
    """`name` if it can be a sweep partition (the spec's name rule), else LakeError(field='sweep')."""
    if not isinstance(name, str) or not valid_name(name):
        raise LakeError(f"sweep {name!r} cannot name a lake partition: allowed: {NAME_ALLOWED}",
                        field="sweep", value=name, allowed=NAME_ALLOWED)
    return name


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise LakeError(f"kind '{kind}' is not one of {', '.join(KINDS)}", field="kind", value=kind,
                        allowed=list(KINDS))
    return str(kind)


def check_dim(dim: object) -> str:
    if dim not in DIMS:
        raise LakeError(f"dimension '{dim}' is not one of {', '.join(DIMS)}", field="dim", value=dim,
                        allowed=list(DIMS))
    return str(dim)


def join(root: str, *parts: str) -> str:
    """`root/part/...` with single slashes (a URI's `scheme://` kept)."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def part_name(chunk: int) -> str:
    return f"part-{int(chunk):05d}.parquet"


def fact_dir(root: str, kind: str, sweep: str, version: int) -> str:
    """The directory of one sweep version's fact files, in the root's own form (path or URI)."""
    return join(root, f"kind={check_kind(kind)}", f"sweep={check_sweep(sweep)}", f"version={int(version)}")


def fact_file(root: str, kind: str, sweep: str, version: int, chunk: int) -> str:
    return join(fact_dir(root, kind, sweep, version), part_name(chunk))


def dim_dir(root: str, dim: str, sweep: str, version: int) -> str:
    return join(root, "dims", check_dim(dim), f"sweep={check_sweep(sweep)}", f"version={int(version)}")


def dim_file(root: str, dim: str, sweep: str, version: int) -> str:
    return join(dim_dir(root, dim, sweep, version), DIM_PART)


def is_part(base_name: str) -> bool:
    """A committed data file (`part-NNNNN.parquet`), as opposed to a temporary or anything else."""
    return _PART_RE.fullmatch(base_name) is not None


def temporary_name(name: str) -> str:
    """The hidden name a file is written under before it is moved to `name`."""
    return f".{name}.{uuid.uuid4().hex}{TMP_SUFFIX}"


def is_temporary(base_name: str) -> bool:
    return base_name.startswith(".") and base_name.endswith(TMP_SUFFIX)
