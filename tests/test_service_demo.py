"""`chipsweep demo`, the README's main command: over a million configurations through the service on
the local default, then the training, serving and edge frontiers printed from the saved queries over the lake."""

from __future__ import annotations

import re

import pytest

from chipsweep.queries.runner import run_saved
from chipsweep.schemas.catalog import load_catalog
from chipsweep.service import demo

pytestmark = pytest.mark.usefixtures("ray_local")


def test_demo_sweeps_a_million_configurations_and_prints_its_three_frontiers(home, capsys) -> None:  # type: ignore[no-untyped-def]
    assert demo.main() == 0
    out = capsys.readouterr().out
    total = int(out.split(" configurations in ")[0].rsplit("\n", 1)[-1].replace(",", ""))
    assert total >= 1_000_000
    assert out.count(" done ") == 4
    assert "Training frontier" in out and "-- gpt3_175b:" in out and "-- llama3_70b:" in out
    assert "Edge frontier for llama3_8b" in out and "frontier designs" in out
    # the counts printed are the saved queries' frontiers over the lake the demo wrote
    for model in ("gpt3_175b", "llama3_70b"):
        printed = int(re.search(rf"-- {model}: (\d+) frontier configurations", out).group(1))  # type: ignore[union-attr]
        front = run_saved("pareto_training", {"model": model, "sweep": "demo-training", "cost_basis": "rental"},
                          lake=home.lake)
        assert printed == front.num_rows > 0
        # a frontier longer than the demo prints says how many rows it shows (it said 13 above 12 rows)
        section = out.split(f"-- {model}:")[1].split("\n-- ")[0]
        listed = len([ln for ln in section.split("\n")[2:] if re.match(r"   \w+_\w+ +\d+ +\d+ ", ln)])
        shown = re.search(r"frontier configurations, (\d+) shown", section.split("\n")[0])
        assert listed == (int(shown.group(1)) if shown else printed)
        # every row says whether its chip's efficiency was fitted on its own runs; the measured-only frontier
        # keeps exactly those
        fitted = run_saved("pareto_training", {"model": model, "sweep": "demo-training", "cost_basis": "rental",
                                               "calibration": "measured"}, lake=home.lake)
        assert fitted.num_rows > 0
        assert not any(str(c).startswith("extrapolated") for c in fitted.column("calibrated_on").to_pylist())
        # chips faster than the whole frontier that no cost can place (no rental or purchase price in the catalog:
        # the GB200 and GB300) are named with their best time, not silently left out
        section = out.split(f"-- {model}:")[1].split("\n-- ")[0]
        named = re.findall(r"(\w+) ([\d.]+) days \((fitted|extrapolated)\)",
                           section.split("left out, faster than every row above")[1].split("\n")[1])
        assert "nvidia_gb200_per_gpu" in [n[0] for n in named]
        for chip, days, _ in named:
            c = load_catalog().chips[chip]
            assert c.usd_per_hour is None and c.purchase_usd is None
            assert float(days) < min(front.column("time_to_train_days").to_pylist()) + 0.05  # printed to 0.1 day
    assert "efficiency" in out and "--param calibration=measured" in out
    assert "chipsweep catalog show CHIP" in out and "chipsweep validate --bounds" in out
    # the serving frontier: the saved query's rows, each on a datacenter chip, ordered by throughput per chip down
    # and per-user speed up (a frontier of two maximised objectives)
    assert "Serving frontier for llama3_70b" in out and "--explain" in out
    printed = int(re.search(r"-- (\d+) frontier configurations(?:, \d+ shown \([^)]*\))? \(saved query pareto_serving", out).group(1))  # type: ignore[union-attr]
    serving = run_saved("pareto_serving", {"model": "llama3_70b", "sweep": "demo-serving"}, lake=home.lake).to_pylist()
    assert printed == len(serving) > 1
    per_chip = [r["output_tokens_per_s_per_chip"] for r in serving]
    per_user = [r["tokens_per_s_per_user"] for r in serving]
    assert per_chip == sorted(per_chip, reverse=True) and per_user == sorted(per_user)
    printed = int(re.search(r"-- (\d+) frontier designs", out).group(1))  # type: ignore[union-attr]
    # one workload's frontier (each workload is its own): the ASIC sweep's 512-token prompts, 128 generated
    edge = run_saved("pareto_edge", {"model": "llama3_8b", "prompt_len": 512, "gen_len": 128}, lake=home.lake)
    assert printed == edge.num_rows > 0
    assert set(edge.column("prompt_len").to_pylist()) == {512} and set(edge.column("source").to_pylist()) == {"asic", "inference"}
    # every workload of the sweeps has its own frontier: the catalog chips' 128-2,048-token prompts beside the ASICs'
    every = run_saved("pareto_edge", {"model": "llama3_8b"}, lake=home.lake)
    assert set(every.column("prompt_len").to_pylist()) == {128, 512, 2048}
    # chips faster than every edge design that the three-objective frontier cannot place (no price or no power in
    # the catalog: Apple publishes no chip price, nor power for the M3/M4) are named, not silently dropped
    # (an edge unit cost reads the purchase price alone: "no purchase price", not a rental price that does not help)
    named = re.findall(r"(\w+) ([\d.]+) tok/s \((no purchase price|no power|no purchase price, no power); "
                       r"(fitted|extrapolated)\)",
                       out.split("left out, faster than every design above")[1].split("\n")[1])
    fastest = max(edge.column("decode_tokens_per_s").to_pylist())
    catalog = load_catalog()
    assert "apple_m2_ultra" in [n[0] for n in named]
    for chip, tps, missing, _ in named:
        assert float(tps) > fastest
        assert ("no purchase price" in missing) == (catalog.chips[chip].purchase_usd is None)
        assert ("no power" in missing) == (catalog.chips[chip].tdp_w is None)
    assert "--param objectives=decode_tokens_per_s:max,energy_per_token_j" in out
