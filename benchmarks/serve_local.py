"""Start `chipsweep serve` on 127.0.0.1 for a benchmark and wait until it answers (bench_ui, bench_sql_limits)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(env: dict[str, str], log_path: Path, *extra: str, timeout_s: float = 300.0) -> tuple[subprocess.Popen[bytes], str, IO[str]]:
    """`chipsweep serve --port P [extra]` in its own session, logging to `log_path`; returns the process, its
    URL and the open log once /healthz answers (SystemExit with the log's tail if it never does)."""
    port = free_port()
    log = log_path.open("w")
    server = subprocess.Popen([sys.executable, "-m", "chipsweep", "serve", "--port", str(port), "--log-level", "warning",
                               *extra], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return server, url, log
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"chipsweep serve did not come up:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
