"""`chipsweep demo`: the README's main command.

Runs three built-in sweeps on the local default (embedded Ray, the lake and queue in CHIPSWEEP_HOME):
a training sweep (4 models x every datacenter training chip x cluster sizes x parallel layouts, about
1.2 million configurations) and an edge sweep in two parts (small models on catalog edge chips, and
hypothetical edge ASIC designs), then prints the training frontier (time to train vs cost) and the
edge frontier (tokens/s vs joules per token vs unit cost) from the lake. The frontiers come from the
saved queries `pareto_training` / `pareto_edge` when the queries package provides them, otherwise from
DuckDB over the lake directly.
"""

from __future__ import annotations

import sys
import time
from typing import Any

TRAINING_MODELS = ("gpt3_175b", "llama2_70b", "llama3_70b", "llama3_8b")
EDGE_MODEL = "llama3_8b"

TRAINING = {
    "name": "demo-training",
    "kind": "training",
    "description": "4 models x datacenter training chips x 64-8192 chips x 3D-parallel layouts",
    "axes": {
        "model": list(TRAINING_MODELS),
        "chip": {"class": "datacenter_training"},
        "n_chips": {"geometric": {"start": 64, "stop": 8192, "factor": 2}},
        "global_batch": [1024, 2048],
        "tp": [1, 2, 4, 8],
        "pp": {"geometric": {"start": 1, "stop": 64, "factor": 2}},
        "micro_batch": [1, 2, 4],
        "interleave": [1, 2],
        "recompute": ["none", "selective", "full"],
        "zero_stage": [0, 1],
    },
    "store": "feasible",
}
EDGE_INFERENCE = {
    "name": "demo-edge",
    "kind": "inference",
    "description": "small models on catalog edge chips: quantisation x batch x prompt and generation lengths",
    "axes": {
        "model": ["llama3_8b", "llama3.2_3b", "qwen2.5_7b", "phi3.5_mini_3.8b", "gemma2_2b", "qwen2_1.5b"],
        "chip": {"system_kind": "edge"},
        "weight_bits": [4, 8, 16],
        "kv_bits": [8, 16],
        "batch": [1, 2, 4, 8, 16, 32],
        "prompt_len": [128, 512, 2048],
        "gen_len": [128, 512],
    },
    "store": "feasible",
}
EDGE_ASIC = {
    "name": "demo-asic",
    "kind": "asic",
    "description": "hypothetical edge ASICs: node x MACs x clock x SRAM x DRAM x bus x precision",
    "axes": {
        "model": ["llama3_8b", "llama3.2_3b", "qwen2_1.5b"],
        "node_nm": [3, 5, 7, 12, 16],
        "n_mac": {"geometric": {"start": 512, "stop": 65536, "factor": 2}},
        "clock_ghz": [0.6, 0.8, 1.0, 1.2, 1.5],
        "sram_mb": [4, 8, 16, 32, 64, 128],
        "dram": ["lpddr4x", "lpddr5", "lpddr5x"],
        "dram_bus_bits": [16, 32, 64, 128],
        "precision": ["int4", "int8"],
    },
    "store": "feasible",
}
SWEEPS = (TRAINING, EDGE_INFERENCE, EDGE_ASIC)


def main() -> int:
    from chipsweep.schemas.sweep import SpecError
    from chipsweep.service.dispatch import Dispatcher, ensure_ray, submit
    from chipsweep.service.queue import Queue
    from chipsweep.service.settings import Settings

    settings = Settings.from_env()
    queue = Queue(settings.queue_path)
    print(f"chipsweep demo: queue {settings.queue_path}, lake {settings.lake}")
    t0 = time.perf_counter()
    ensure_ray(settings)
    import ray

    print(f"local Ray ready in {time.perf_counter() - t0:.1f} s ({int(ray.cluster_resources().get('CPU', 0))} CPUs)")
    try:
        rows = [submit(spec, settings=settings, queue=queue) for spec in SWEEPS]
    except SpecError as exc:  # the built-in specs are tested; this would be a catalog change
        print(f"chipsweep demo: {exc}", file=sys.stderr)
        return 1
    total = sum(r.configurations for r in rows)
    for r in rows:
        print(f"  submitted {r.sweep_id}: {r.configurations:,} configurations ({r.kind}), {r.chunks_total} chunks")
    ids = [r.sweep_id for r in rows]
    bar = _bar(total)
    t1 = time.perf_counter()

    def tick() -> None:
        if bar is not None:
            bar.n = sum(queue.status(i)["configurations_done"] for i in ids)
            bar.refresh()

    disp = Dispatcher(queue, settings)
    try:
        disp.run(until=lambda: all(queue.sweep(i).state in ("done", "failed", "cancelled") for i in ids), on_tick=tick)
    finally:
        disp.close()
    tick()
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t1
    print(f"\n{total:,} configurations in {seconds:.1f} s ({total / seconds / 1e6:.2f} M configurations/s, end to end)")
    for i in ids:
        s = queue.status(i)
        print(f"  {i:22s} {s['state']:6s} {s['configurations']:>10,} configurations -> {s['rows_written']:>9,} rows"
              f" ({s['store']}), {s['bytes_written'] / 1e6:.1f} MB")
    failed = [i for i in ids if queue.sweep(i).state != "done"]
    if failed:
        print(f"chipsweep demo: {', '.join(failed)} did not finish; see `chipsweep status`", file=sys.stderr)
        return 1
    print_training_frontier(settings.lake, rows[0].version)
    print_edge_frontier(settings.lake, rows[1].version, rows[2].version)
    print(f"\nThe rows are Parquet under {settings.lake}; try `chipsweep status demo-training` or DuckDB over the lake.")
    return 0


def _bar(total: int) -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="cfg", unit_scale=True, dynamic_ncols=True, file=sys.stderr, desc="demo")


# ------------------------------------------------------------------------------------------------
# frontiers
# ------------------------------------------------------------------------------------------------
TRAINING_KEYS = ("chip", "n_chips", "tp", "pp", "dp", "micro_batch", "interleave", "recompute", "zero_stage",
                 "time_to_train_days", "cost_usd")
EDGE_KEYS = ("source", "chip", "n_chips", "weight_bits", "batch", "node_nm", "n_mac", "clock_ghz", "sram_mb", "dram",
             "precision", "decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd")


def _saved(name: str, params: dict[str, str], needs: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """Rows of a saved query from the queries package, or None when it is not available (or does not
    return the columns printed here)."""
    try:
        from chipsweep.queries import runner
    except ImportError:
        return None
    try:
        result = runner.run_saved(name, params)
    except Exception as exc:  # fall back to the direct query below, saying why
        print(f"  (saved query {name} unavailable: {exc}; querying the lake directly)")
        return None
    missing = [k for k in needs if k not in result.column_names]
    if missing:
        print(f"  (saved query {name} returns no {', '.join(missing)}; querying the lake directly)")
        return None
    return list(runner.table_records(result))


def _files(lake: str, kind: str, sweep: str, version: int) -> list[str]:
    from chipsweep.service.lake import Lake

    return Lake(lake).committed_parts(kind, sweep, version)


def _dims(lake: str, dim: str, sweep: str, version: int) -> list[str]:
    import pyarrow.parquet as pq

    from chipsweep.service.lake import Lake

    table = pq.read_table(Lake(lake).dim_path(dim, sweep, version))
    return table.column(dim[:-1]).to_pylist()  # chips -> chip, models -> model


def print_training_frontier(lake: str, version: int) -> None:
    import duckdb

    print("\n== Training frontier: time to train vs cost (no other configuration is both faster and cheaper) ==")
    print("   (tokens: each model's published training tokens; cost: rental prices, one basis for every chip;")
    print("    chips priced by purchase only: chipsweep query pareto_training --param cost_basis=owned)")
    for model in ("gpt3_175b", "llama3_70b"):
        rows = _saved("pareto_training", {"model": model, "sweep": "demo-training", "cost_basis": "rental"}, TRAINING_KEYS)
        source = "saved query pareto_training"
        if rows is None:
            source = "DuckDB over the lake"
            files = _files(lake, "training", "demo-training", version)
            chips = _dims(lake, "chips", "demo-training", version)
            mid = _dims(lake, "models", "demo-training", version).index(model)
            sql = f"""
            WITH r AS (SELECT * FROM read_parquet({files!r})
                       WHERE model_id = {mid} AND isfinite(time_to_train_days) AND isfinite(cost_usd)
                             AND cost_basis = 'rental'),
            p AS (SELECT DISTINCT time_to_train_days AS t, cost_usd AS c FROM r),
            f AS (SELECT t, c FROM (SELECT t, c, min(c) OVER (ORDER BY t, c ROWS BETWEEN UNBOUNDED PRECEDING
                                                             AND 1 PRECEDING) AS prev FROM p)
                  WHERE prev IS NULL OR c < prev)
            SELECT r.chip_id, r.n_chips, r.tp, r.pp, r.dp, r.micro_batch, r.interleave, r.recompute::VARCHAR,
                   r.zero_stage, r.time_to_train_days, r.cost_usd, r.energy_mwh, r.mfu
            FROM r JOIN f ON r.time_to_train_days = f.t AND r.cost_usd = f.c
            ORDER BY r.time_to_train_days, r.idx"""
            keys = ("chip", "n_chips", "tp", "pp", "dp", "micro_batch", "interleave", "recompute", "zero_stage",
                    "time_to_train_days", "cost_usd", "energy_mwh", "mfu")
            rows = [dict(zip(keys, (chips[r[0]], *r[1:]), strict=True)) for r in duckdb.connect().execute(sql).fetchall()]
        print(f"-- {model}: {len(rows)} frontier configurations ({source})")
        extra = [(k, head, fmt) for k, head, fmt in (("energy_mwh", "MWh", "{:8.0f}"), ("mfu", "MFU", "{:6.1%}"))
                 if rows and k in rows[0]]
        print(f"   {'chip':24s} {'chips':>5s} {'tp':>2s} {'pp':>3s} {'dp':>4s} {'mb':>2s} {'v':>1s} {'recompute':>9s} "
              f"{'zero':>4s} {'days':>8s} {'cost $M':>8s}" + "".join(f" {h:>8s}" for _, h, _ in extra))
        for r in _thin(rows, 12):
            print(f"   {r['chip']:24s} {r['n_chips']:5d} {r['tp']:2d} {r['pp']:3d} {r['dp']:4d} {r['micro_batch']:2d} "
                  f"{r['interleave']:1d} {r['recompute']:>9s} {r['zero_stage']:4d} {r['time_to_train_days']:8.1f} "
                  f"{r['cost_usd'] / 1e6:8.2f}" + "".join(" " + f.format(r[k]).rjust(8) for k, _, f in extra))


def print_edge_frontier(lake: str, inf_version: int, asic_version: int) -> None:
    print(f"\n== Edge frontier for {EDGE_MODEL}: decode tokens/s (max) vs J/token (min) vs unit cost (min) ==")
    rows = _saved("pareto_edge", {"model": EDGE_MODEL}, EDGE_KEYS)
    source = "saved query pareto_edge"
    if rows is None:
        source = "DuckDB over the lake"
        rows = _edge_frontier_direct(lake, inf_version, asic_version)
    print(f"-- {len(rows)} frontier designs ({source}); catalog chips and hypothetical ASICs together")
    print(f"   {'design':66s} {'tok/s':>7s} {'J/token':>8s} {'unit $':>8s}")
    for r in _thin(rows, 14):
        if r["source"] == "asic":
            what = (f"ASIC {r['node_nm']} nm, {r['n_mac']} MACs, {r['clock_ghz']:.1f} GHz, {r['sram_mb']:g} MB SRAM, "
                    f"{r['dram']}, {r['precision']}, batch {r['batch']}")
        else:
            what = f"{r['chip']} x{r['n_chips']}, {r['weight_bits']}-bit weights, batch {r['batch']}"
        cost = r["unit_cost_usd"]
        print(f"   {what[:66]:66s} {r['decode_tokens_per_s']:7.1f} {r['energy_per_token_j']:8.3f} "
              f"{cost if cost is not None else float('nan'):8.0f}")


def _edge_frontier_direct(lake: str, inf_version: int, asic_version: int) -> list[dict[str, Any]]:
    """The edge frontier without the queries package: DuckDB reads the rows, numpy keeps the front."""
    import duckdb
    import numpy as np

    from chipsweep.workers.chunk import nondominated

    con = duckdb.connect()
    chips = _dims(lake, "chips", "demo-edge", inf_version)
    mid = _dims(lake, "models", "demo-edge", inf_version).index(EDGE_MODEL)
    inf = con.execute(f"""SELECT 'inference', chip_id, n_chips, weight_bits, batch, decode_tokens_per_s,
                                 energy_per_token_j, unit_cost_usd
                          FROM read_parquet({_files(lake, 'inference', 'demo-edge', inf_version)!r})
                          WHERE model_id = {mid}""").fetchall()
    amid = _dims(lake, "models", "demo-asic", asic_version).index(EDGE_MODEL)
    asic = con.execute(f"""SELECT 'asic', node_nm, n_mac, clock_ghz, sram_mb, dram::VARCHAR, precision::VARCHAR, batch,
                                  decode_tokens_per_s, energy_per_token_j, unit_cost_usd
                           FROM read_parquet({_files(lake, 'asic', 'demo-asic', asic_version)!r})
                           WHERE model_id = {amid}""").fetchall()
    rows = [{"source": "inference", "chip": chips[r[1]], "n_chips": r[2], "weight_bits": r[3], "batch": r[4],
             "decode_tokens_per_s": r[5], "energy_per_token_j": r[6], "unit_cost_usd": r[7]} for r in inf]
    rows += [{"source": "asic", "node_nm": r[1], "n_mac": r[2], "clock_ghz": r[3], "sram_mb": r[4], "dram": r[5],
              "precision": r[6], "batch": r[7], "decode_tokens_per_s": r[8], "energy_per_token_j": r[9],
              "unit_cost_usd": r[10]} for r in asic]
    objs = np.array([[-r["decode_tokens_per_s"], r["energy_per_token_j"], r["unit_cost_usd"]] for r in rows],
                    dtype=np.float64).reshape(-1, 3)
    keep = np.zeros(len(rows), dtype=bool)
    if len(rows):
        keep = nondominated(np.zeros(len(rows), dtype=np.int64), objs) & np.isfinite(objs).all(axis=1)
    front = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
    return sorted(front, key=lambda r: -r["decode_tokens_per_s"])


def _thin(rows: list[Any], n: int) -> list[Any]:
    """At most n rows, evenly spread along the frontier (first and last kept)."""
    if len(rows) <= n:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
    return [rows[i] for i in picks]
