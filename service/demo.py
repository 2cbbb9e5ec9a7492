"""`chipsweep demo`: the README's main command.

Runs four built-in sweeps on the local default (embedded Ray, the lake and queue in CHIPSWEEP_HOME):
a training sweep (4 models x every datacenter training chip x cluster sizes x parallel layouts, about
2 million configurations), a serving sweep (Llama 3 70B under vLLM on the same chips x tensor parallelism x
precision x concurrency) and an edge sweep in two parts (small models on catalog edge chips, and hypothetical edge ASIC
designs), then prints the training frontier (time to train vs cost), the serving frontier (output tokens/s per
chip vs tokens/s per user) and the edge frontier (tokens/s vs joules per token vs unit cost) from the lake,
through the saved queries `pareto_training`, `pareto_serving` and `pareto_edge`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import ray

from chipsweep.queries import runner
from chipsweep.schemas.errors import SpecError
from chipsweep.service.dispatch import ensure_ray, over, run_until, submit
from chipsweep.service.queue import Queue
from chipsweep.service.settings import Settings

TRAINING_MODELS = ("gpt3_175b", "llama2_70b", "llama3_70b", "llama3_8b")
EDGE_MODEL = "llama3_8b"
EDGE_PROMPT_LEN, EDGE_GEN_LEN = 512, 128  # asic.yaml workload_defaults: the ASIC sweep's workload

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
SERVING_MODEL = "llama3_70b"
SERVING = {
    "name": "demo-serving",
    "kind": "inference",
    "description": "Llama 3 70B served with vLLM on datacenter chips: chips x tensor parallelism x precision x "
                   "concurrency",
    "axes": {
        "model": [SERVING_MODEL],
        "chip": {"class": "datacenter_training"},
        # one engine on every chip, so the frontier compares chips: each engine's fitted overheads differ, and
        # TensorRT-LLM's fitted time per layer makes its light-load rows read slow (README, 'What the misses mean')
        "engine": ["vllm"],
        "n_chips": [1, 2, 4, 8],
        "compute_precision": ["bf16", "fp8"],
        "concurrency": {"geometric": {"start": 1, "stop": 1024, "factor": 2}},
        "prompt_len": [1000],
        "gen_len": [500],
    },
    "store": "feasible",
}
SWEEPS = (TRAINING, SERVING, EDGE_INFERENCE, EDGE_ASIC)


def main() -> int:
    settings = Settings.from_env()
    queue = Queue(settings.queue_path)
    print(f"chipsweep demo: queue {settings.queue_path}, lake {settings.lake}")
    t0 = time.perf_counter()
    ensure_ray(settings)
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

    run_until(queue, settings, over(queue, *ids), on_tick=tick)
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
    print_training_frontier(settings.lake)
    print_serving_frontier(settings.lake)
    print_edge_frontier(settings.lake)
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
def _frontier(name: str, params: dict[str, str], lake: str) -> list[dict[str, Any]]:
    return runner.table_records(runner.run_saved(name, params, lake=lake))


def _recompute_cell(row: dict) -> str:  # type: ignore[type-arg]
    """The recompute mode, and the layers a stage offloads to host memory where it does (`+off79`)."""
    off = row.get("offload_layers") or 0
    return f"{row['recompute']}+off{off}" if off else str(row["recompute"])


def print_training_frontier(lake: str) -> None:
    print("\n== Training frontier: time to train vs cost (no other configuration is both faster and cheaper) ==")
    print("   (tokens: each model's published training tokens; cost: rental prices, one basis for every chip;")
    print("    chips priced by purchase only: chipsweep query pareto_training --param cost_basis=owned)")
    for model in ("gpt3_175b", "llama3_70b"):
        rows = _frontier("pareto_training", {"model": model, "sweep": "demo-training", "cost_basis": "rental"}, lake)
        print(f"-- {model}: {len(rows)} frontier configurations{_shown(rows, 12)} (saved query pareto_training)")
        extra = [(k, head, fmt) for k, head, fmt in (("energy_mwh", "MWh", "{:8.0f}"), ("mfu", "MFU", "{:6.1%}"))
                 if rows and k in rows[0]]
        print(f"   {'chip':24s} {'chips':>5s} {'tp':>2s} {'pp':>3s} {'dp':>4s} {'mb':>2s} {'v':>1s} {'recompute':>11s} "
              f"{'zero':>4s} {'days':>8s} {'cost $M':>8s}" + "".join(f" {h:>8s}" for _, h, _ in extra) + "  efficiency")
        for r in _thin(rows, 12):
            print(f"   {r['chip']:24s} {r['n_chips']:5d} {r['tp']:2d} {r['pp']:3d} {r['dp']:4d} {r['micro_batch']:2d} "
                  f"{r['interleave']:1d} {_recompute_cell(r):>11s} {r['zero_stage']:4d} {r['time_to_train_days']:8.1f} "
                  f"{r['cost_usd'] / 1e6:8.2f}" + "".join(" " + f.format(r[k]).rjust(8) for k, _, f in extra)
                  + f"  {_fitted(r)}")
        _print_left_out("pareto_training", {"model": model, "sweep": "demo-training"}, lake, rows, "time_to_train_days",
                        "min", "faster than every row above but with no cost (the catalog has no rental or purchase "
                        "price for them)", lambda r: f"{r['chip']} {r['best']:.1f} days ({r['efficiency']})")
        if any(_fitted(r) == "extrapolated" for r in rows):
            measured = _frontier("pareto_training", {"model": model, "sweep": "demo-training", "cost_basis": "rental",
                                                     "calibration": "measured"}, lake)
            if measured:
                fast, cheap = measured[0], min(measured, key=lambda r: r["cost_usd"])
                chips = ", ".join(sorted({r["chip"] for r in measured}))
                print(f"   chips with their own published runs only ({len(measured)} configurations, {chips}): fastest "
                      f"{fast['time_to_train_days']:.1f} days for ${fast['cost_usd'] / 1e6:.2f}M, cheapest "
                      f"${cheap['cost_usd'] / 1e6:.2f}M in {cheap['time_to_train_days']:.1f} days")
    print("   efficiency: 'fitted' where the chip's own published runs fitted it, 'extrapolated' where no run of that")
    print("   chip exists (calibrated_on says from which chips); only fitted chips: --param calibration=measured;")
    print("   one chip's: chipsweep catalog show CHIP; the model against published runs: chipsweep validate --bounds")


def _fitted(row: dict[str, Any]) -> str:
    text = str(row.get("calibrated_on") or "")
    return "extrapolated" if not text or text.startswith("extrapolated") else "fitted"


def print_serving_frontier(lake: str) -> None:
    print(f"\n== Serving frontier for {SERVING_MODEL} under vLLM (1,000-token prompts, 500 output tokens): output "
          "tokens/s per chip (max) vs tokens/s per user (max) ==")
    print("   (one engine on every chip; sweep `engine` to compare engines: TensorRT-LLM's per-user speed at light load")
    print("    reads up to 1.7x slow, README 'What the misses mean')")
    rows = _frontier("pareto_serving", {"model": SERVING_MODEL, "sweep": "demo-serving"}, lake)
    print(f"-- {len(rows)} frontier configurations{_shown(rows, 12)} (saved query pareto_serving; no latency SLO: "
          "add one with --param tpot_max_s=0.05)")
    shown = _thin(rows, 12)
    layouts = [f"{r['chip']} {r['layout']}" for r in shown]
    width = max([len("configuration"), *map(len, layouts)])
    print(f"   {'configuration':{width}s} {'tok/s/chip':>10s} {'tok/s/user':>10s} {'TTFT ms':>8s} {'TPOT ms':>8s} "
          f"{'$/M tok':>8s} {'engine':>12s}  efficiency")
    for r, what in zip(shown, layouts, strict=True):
        usd = r["usd_per_million_tokens"]
        price = f"{usd:8.2f}" if usd is not None and math.isfinite(usd) else f"{'-':>8s}"  # no price in the catalog
        print(f"   {what:{width}s} {r['output_tokens_per_s_per_chip']:10.0f} {r['tokens_per_s_per_user']:10.1f} "
              f"{r['ttft_s'] * 1e3:8.0f} {r['tpot_s'] * 1e3:8.1f} {price} {r['engine']:>12s}  {_fitted(r)}")
    if any(_fitted(r) == "extrapolated" for r in rows):
        measured = _frontier("pareto_serving", {"model": SERVING_MODEL, "sweep": "demo-serving",
                                                "calibration": "measured"}, lake)
        if measured:
            most, fastest = measured[0], measured[-1]  # ordered by throughput per chip, down
            print(f"   chips whose engine was fitted on their own runs only ({len(measured)} configurations, "
                  f"{', '.join(sorted({r['chip'] for r in measured}))}):")
            print(f"   most tokens/s per chip {most['output_tokens_per_s_per_chip']:.0f} ({most['chip']}, "
                  f"{most['tokens_per_s_per_user']:.1f} per user), fastest per user "
                  f"{fastest['tokens_per_s_per_user']:.1f} ({fastest['chip']}); --param calibration=measured")
    print("   where a row's time per token goes: chipsweep evaluate --kind inference --explain")


# the edge frontier's cost scopes (queries/sql/pareto_edge.sql), in the order the demo prints them, in words
EDGE_COST_SCOPES = {
    "manufacturing": "unit cost = an ASIC's manufacturing cost (packaged die and DRAM; no board, no design cost)",
    "accelerator": "unit cost = the price of an accelerator that runs in a host computer (a card, a module, a stick)",
    "system": "unit cost = the price of a complete system (a developer kit, a desktop)",
}


def print_edge_frontier(lake: str) -> None:
    # one workload (each is its own frontier): the ASIC sweep's, the catalog's default prompt and generated lengths
    workload = {"prompt_len": str(EDGE_PROMPT_LEN), "gen_len": str(EDGE_GEN_LEN)}
    print(f"\n== Edge frontier for {EDGE_MODEL}, {EDGE_PROMPT_LEN}-token prompts, {EDGE_GEN_LEN} generated: decode "
          "tokens/s per user (max) vs J/token, prompt included (min) vs unit cost (min) ==")
    rows = _frontier("pareto_edge", {"model": EDGE_MODEL, **workload}, lake)
    print(f"-- {len(rows)} frontier designs (saved query pareto_edge); catalog chips and hypothetical ASICs, each at "
          "its serving point (time to first token apart), one frontier per cost scope:")
    scopes = [s for s in EDGE_COST_SCOPES if any(r["cost_scope"] == s for r in rows)]
    shown = {s: _thin([r for r in rows if r["cost_scope"] == s], 8) for s in scopes}
    designs = {s: [_design(r) for r in shown[s]] for s in scopes}
    width = max([len("design"), *(len(d) for s in scopes for d in designs[s])])  # whole: a cut one hides the batch
    for s in scopes:
        group = [r for r in rows if r["cost_scope"] == s]
        print(f"   {EDGE_COST_SCOPES[s]}: {len(group)} on its frontier{_shown(group, 8)}")
        print(f"   {'design':{width}s} {'tok/s':>7s} {'J/token':>8s} {'unit $':>8s}")
        for r, what in zip(shown[s], designs[s], strict=True):
            cost = r["unit_cost_usd"]
            print(f"   {what:{width}s} {r['decode_tokens_per_s']:7.1f} {r['energy_per_token_j']:8.3f} "
                  f"{cost if cost is not None else float('nan'):8.0f}")
    if _print_left_out("pareto_edge", {"model": EDGE_MODEL, "sweep": "demo-edge", **workload}, lake, rows, "decode_tokens_per_s",
                       "max", "faster than every design above but missing an objective the frontier compares (the "
                       "catalog has no purchase price or no power for them)",
                       lambda r: f"{r['chip']} {r['best']:.0f} tok/s ({r['missing']}; {r['efficiency']})"):
        print(f"   on speed and J/token alone: chipsweep query pareto_edge --param model={EDGE_MODEL} "
              f"--param prompt_len={EDGE_PROMPT_LEN} --param gen_len={EDGE_GEN_LEN} "
              "--param objectives=decode_tokens_per_s:max,energy_per_token_j")


def _print_left_out(name: str, params: dict[str, str], lake: str, rows: list[dict[str, Any]], column: str, sense: str,
                    why: str, say: Callable[[dict[str, Any]], str]) -> bool:
    """Print the chips a demo frontier cannot place for want of a catalog number (a price, a power) whose best
    `column` is beyond every one of its `rows` (above them for sense max, below for min), each as `say` words it;
    True if there were any."""
    values = [float(r[column]) for r in rows]
    edge = (max(values) if sense == "max" else min(values)) if values else (-math.inf if sense == "max" else math.inf)
    left = []
    for u in runner.unplaced_chips(name, params, lake=lake):
        best = u["best"].get(column)
        if best is not None and (float(best) > edge if sense == "max" else float(best) < edge):
            left.append({"chip": u["chip"], "best": float(best), "missing": ", ".join(f"no {f}" for f in u["catalog_lacks"]),
                         "efficiency": _fitted({"calibrated_on": u["calibrated_on"]})})
    if left:
        print(f"   left out, {why}:")
        print("   " + "; ".join(say(r) for r in left))
    return bool(left)


def _design(r: dict[str, Any]) -> str:
    """One edge frontier row in words: a hypothetical ASIC's design vector, or a catalog chip's setting."""
    if r["source"] == "asic":
        return (f"ASIC {r['node_nm']:g} nm, {r['n_mac']} MACs, {r['clock_ghz']:.1f} GHz, {r['sram_mb']:g} MB SRAM, "
                f"{r['dram']} {r['dram_bus_bits']}-bit, {r['precision']}, batch {r['batch']}")
    return f"{r['chip']} x{r['n_chips']}, {r['weight_bits']}-bit weights, batch {r['batch']}"


def _shown(rows: list[Any], n: int) -> str:
    """What `_thin(rows, n)` leaves out, said beside the count ('' when every row is shown)."""
    kept = len(_thin(rows, n))
    return f", {kept} shown (evenly spread along it)" if kept < len(rows) else ""


def _thin(rows: list[Any], n: int) -> list[Any]:
    """At most n rows, evenly spread along the frontier (first and last kept)."""
    if len(rows) <= n:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
    return [rows[i] for i in picks]
