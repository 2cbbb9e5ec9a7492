"""Page load of the web UI's frontier explorer over a big lake, in a real browser.

Builds (or reuses) the frontier benchmark's synthetic lake (benchmarks/bench_frontier.py: ~100 million
training rows written by the production lake writer), starts `chipsweep serve` on 127.0.0.1 over it and
loads /ui/frontier for one model in headless Chromium, timing from navigation start to the moment the
plotly chart holds the frontier. Writes benchmarks/out/ui.json and a screenshot
(benchmarks/out/ui_frontier_explorer.png, the one the README shows).

    python benchmarks/bench_ui.py [--lake DIR | --keep DIR] [--rows N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "ui.json"
SHOT = HERE / "out" / "ui_frontier_explorer.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", help="an existing lake (default: build the frontier benchmark's)")
    ap.add_argument("--keep", help="build the lake in this directory and keep it")
    ap.add_argument("--rows", type=int, help="rows of the built lake (default: the frontier benchmark's ~100 M)")
    ap.add_argument("--model", default="llama2_70b")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    import bench_frontier
    import serve_local

    tmp = None
    lake = args.lake
    build = None
    if not lake:
        lake = args.keep or (tmp := tempfile.mkdtemp(prefix="chipsweep-bench-ui-"))
        build = bench_frontier.build_lake(lake, args.rows or bench_frontier.GRID.size)
    home = tempfile.mkdtemp(prefix="chipsweep-bench-ui-home-")
    env = {**os.environ, "CHIPSWEEP_HOME": home, "CHIPSWEEP_LAKE": lake, "RAY_AUTH_MODE": "disabled"}
    server, url, log = serve_local.start(env, Path(home) / "serve.log")
    try:
        from playwright.sync_api import sync_playwright

        loads = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
            for _ in range(args.repeat):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                t0 = time.perf_counter()
                page.goto(f"{url}/ui/frontier?query=pareto_training&model={args.model}")
                page.wait_for_function("() => { const d = document.getElementById('chart'); return d && d.data && "
                                       "d.data.some(t => t.meta === 'frontier'); }", timeout=120_000)
                frontier_at = time.perf_counter() - t0
                page.wait_for_function("() => document.getElementById('chart').dataset.stage === 'candidates'",
                                       timeout=120_000)
                loads.append((frontier_at, time.perf_counter() - t0))
                note = page.locator("#chart-note").inner_text()
                SHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOT))
                page.close()
            browser.close()
        rows = int(httpx.get(f"{url}/ui/data/frontier", params={"query": "pareto_training", "model": args.model},
                             timeout=120).json()["candidates_total"])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "notes": "seconds from navigation start until the plotly chart holds the frontier (page, plotly.js, the frontier "
                 "query), and until it also holds a 5,000-row sample of the feasible configurations behind it, in "
                 "headless Chromium against `chipsweep serve` on 127.0.0.1; best and all runs; the first run includes "
                 "DuckDB's first read of the lake files; load_average says how busy the machine was",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_after": list(os.getloadavg())},
        "lake": build or {"path": "existing"},
        "model": args.model,
        "feasible_rows_of_model": rows,
        "page_load_seconds": {
            "frontier_drawn": {"best": round(min(f for f, _ in loads), 3), "runs": [round(f, 3) for f, _ in loads]},
            "feasible_sample_drawn": {"best": round(min(c for _, c in loads), 3), "runs": [round(c, 3) for _, c in loads]},
        },
        "chart_note": note,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
