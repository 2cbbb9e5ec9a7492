"""Process settings that the numpy core's throughput depends on: one definition, applied by every process
that evaluates (the CLI, sweep actors, the benchmarks) through `tune_allocator()`.

glibc returns every freed block above `M_MMAP_THRESHOLD` (128 KiB by default, adjusted dynamically) to
the kernel, so each numpy temporary of a core block is a fresh mmap and thousands of page faults per
call. Fixing the mmap threshold and raising the trim threshold keeps freed memory in the process for
reuse: 2.4-3.6x the edge cores' assemble+core throughput on blocks of 16,384 and 65,536 rows
(benchmarks/out/edge_core.json, default_malloc vs malloc_keep_freed). A no-op on other C libraries.

The mmap threshold is 32 MiB, glibc's own ceiling for its dynamic threshold on 64-bit: every temporary of
a core block (65,536 rows, 512 KiB per float64 array; layout-search slices of 262,144 candidates, 2 MiB)
and of a million-row `evaluate` (8 MiB) stays on the heap, while a one-off array larger than that is still
mapped and handed back when freed. Measured on the edge cores, 32 MiB, 256 MiB and 1 GiB give the same
throughput (within 5 %, round-to-round noise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # blocks below this come from the heap, not fresh mmaps
TRIM_THRESHOLD_BYTES = 1024 * 2**20  # free heap above this goes back to the kernel


@lru_cache(maxsize=1)
def tune_allocator() -> bool:
    """Keep freed numpy temporaries in the process (glibc only); True if applied. Call it once at process
    start, before the first evaluation (later calls do nothing)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    return ok


def pid_alive(pid: int) -> bool:
    """Whether process `pid` is running (a zombie, killed but not yet reaped, is not): the one check the
    queue's lease, the lake's temporary directories and the Ray supervisor share."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return True


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` says: benchmark files record the host they ran
    on, since one VM image runs at different speeds on different hosts (docs/speed.md)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
