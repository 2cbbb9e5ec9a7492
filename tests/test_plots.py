"""Frontier plots drawn from a real lake: the files exist, are not trivial, and show the query's frontier."""

from __future__ import annotations

import re
from pathlib import Path

import lakegen
import numpy as np
import pytest

from chipsweep.queries.plot import PlotError, figure_data, plot, read_html_data, read_png_data
from chipsweep.queries.runner import run_saved, run_sql
from chipsweep.service.cli import main


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    lake = str(tmp_path_factory.mktemp("plots") / "lake")
    grid = lakegen.TrainingGrid(models=["llama2_70b", "llama2_7b"], n_chips=[8, 64, 512, 4096], global_batch=[1024],
                                pp=[1, 2, 4, 8], micro_batch=[1, 2], zero_stage=[0, 1], interleave=[1])
    lakegen.write_version(lake, "training", "grid", 1, lakegen.training_grid(grid, 0, grid.size), parts=3)
    rng = np.random.default_rng(11)
    lakegen.write_version(lake, "inference", "edge", 1, lakegen.random_inference(rng, 400, distinct=200))
    lakegen.write_version(lake, "asic", "designs", 1, lakegen.random_asic(rng, 400, distinct=200))
    return lake


def _frontier_points(table) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    return sorted(zip(table["time_to_train_days"].to_pylist(), table["cost_usd"].to_pylist(), strict=True))


def test_png_shows_the_frontier_the_query_returned(lake: str, tmp_path: Path) -> None:
    frontier = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake)
    candidates = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake, frontier=False)
    assert frontier.num_rows >= 2 and candidates.num_rows > 10 * frontier.num_rows
    out = tmp_path / "frontier.png"
    fig = plot(frontier, candidates, out)
    assert out.exists() and out.stat().st_size > 20_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = read_png_data(out)
    assert sorted((p["x"], p["y"]) for p in drawn["frontier"]) == _frontier_points(frontier)
    labels = {p["label"] for p in drawn["frontier"]}
    assert labels == {f"{c} × {lay}" for c, lay in zip(frontier["chip"].to_pylist(), frontier["layout"].to_pylist(),
                                                        strict=True)}
    assert len(drawn["candidates_x"]) == candidates.num_rows == len(fig.candidates_x)
    # time spans orders of magnitude: a log axis, with its unit
    assert drawn["x"]["log"] is True and "[days]" in drawn["x"]["title"] and "[USD]" in drawn["y"]["title"]


def test_html_page_is_the_plotly_chart_self_contained_and_holds_the_frontier(lake: str, tmp_path: Path) -> None:
    frontier = run_saved("pareto_training", {"model": "llama2_7b"}, lake=lake)
    candidates = run_saved("pareto_training", {"model": "llama2_7b"}, lake=lake, frontier=False, sample=500)
    out = tmp_path / "frontier.html"
    plot(frontier, candidates, out)
    text = out.read_text()
    assert text.lstrip().lower().startswith("<!doctype html>")
    # plotly.js is inline: nothing is fetched when the page opens
    assert out.stat().st_size > 1_000_000 and "Plotly.newPlot" in text
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=[\"']https?:", text)
    drawn = read_html_data(out)
    assert sorted((p["x"], p["y"]) for p in drawn["frontier"]) == _frontier_points(frontier)
    assert len(drawn["candidates_x"]) == 500 and len(drawn["candidates_chip"]) == 500
    # one bold trace per chip on the frontier, each point's configuration attached for click-to-copy
    chips = sorted(set(frontier["chip"].to_pylist()))
    assert all(f'"name":"{c}"' in text for c in chips)


def test_three_objective_edge_plot_sizes_by_the_third(lake: str, tmp_path: Path) -> None:
    frontier = run_saved("pareto_edge", {"model": "llama2_7b"}, lake=lake)
    fig = plot(frontier, run_saved("pareto_edge", {"model": "llama2_7b"}, lake=lake, frontier=False),
               tmp_path / "edge.png")
    assert fig.colour is not None and fig.colour.column == "unit_cost_usd"
    assert fig.x.sense == "max" and "higher is better" in fig.x.title
    assert sorted(p["c"] for p in fig.frontier) == pytest.approx(sorted(frontier["unit_cost_usd"].to_pylist()))
    assert (tmp_path / "edge.png").stat().st_size > 20_000
    # behind it only candidates the frontier could have held: a row without a unit cost (NaN here for a tenth of the
    # rows) lay faster and leaner than a three-objective frontier and made it look dominated
    cand = run_saved("pareto_edge", {"model": "llama2_7b"}, lake=lake, frontier=False)
    costs = np.asarray(cand["unit_cost_usd"].to_numpy(zero_copy_only=False), dtype=float)
    x = np.asarray(cand["decode_tokens_per_s"].to_numpy(zero_copy_only=False), dtype=float)
    y = np.asarray(cand["energy_per_token_j"].to_numpy(zero_copy_only=False), dtype=float)
    drawable = np.isfinite(x) & np.isfinite(y)
    assert (drawable & ~np.isfinite(costs)).any()  # the lake holds such rows
    assert len(fig.candidates_x) == int((drawable & np.isfinite(costs)).sum())


def test_cli_query_plot_writes_the_file(lake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.png"
    rc = main(["query", "pareto_training", "--param", "model=llama2_70b", "--plot", str(out), "--lake", lake])
    assert rc == 0 and out.stat().st_size > 20_000
    frontier = run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake)
    assert len(read_png_data(out)["frontier"]) == frontier.num_rows
    assert "frontier of min time_to_train_days, min cost_usd" in capsys.readouterr().out


def test_plot_refuses_what_is_not_a_frontier(lake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PlotError, match="not a frontier"):
        figure_data(run_sql("SELECT * FROM training LIMIT 3", lake=lake))
    with pytest.raises(PlotError, match="allowed: .png, .html"):
        plot(run_saved("pareto_training", {"model": "llama2_70b"}, lake=lake), None, tmp_path / "x.svg")
    rc = main(["query", "chip_leaderboard", "--plot", str(tmp_path / "y.png"), "--lake", lake])
    assert rc == 2 and "not a frontier query" in capsys.readouterr().err
    # a folder that does not exist, or a wrong extension: refused in one line before the table is printed (a missing
    # folder printed the table, then a FileNotFoundError traceback)
    for bad, words in ((tmp_path / "nodir" / "x.png", "does not exist"), (tmp_path / "x.svg", "allowed: .png, .html")):
        rc = main(["query", "pareto_training", "--param", "model=llama2_70b", "--plot", str(bad), "--lake", lake])
        out, err = capsys.readouterr()
        assert rc == 2 and words in err and "Traceback" not in err and out == ""


def test_an_empty_frontier_plots_without_a_warning(lake: str, tmp_path: Path) -> None:
    """A deadline nothing meets leaves an empty frontier: the PNG is written and says what it drew (no chip legend),
    without matplotlib's 'No artists with labels' warning and its source path on the user's terminal."""
    import warnings

    params = {"model": "llama2_70b", "max_days": 1e-9}
    frontier = run_saved("pareto_training", params, lake=lake)
    candidates = run_saved("pareto_training", params, lake=lake, frontier=False)
    assert frontier.num_rows == 0
    out = tmp_path / "empty.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot(frontier, candidates, out)
    assert out.exists() and read_png_data(out)["frontier"] == []


def test_each_frontier_of_a_result_is_its_own_staircase(tmp_path: Path) -> None:
    """A result of two frontiers (two training workloads; pareto_serving's prompt lengths) drew one staircase
    through all its points in the PNG, so points of one frontier sat under the other's line. Each frontier is now
    one line: its own points, non-dominated among themselves."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lake = str(tmp_path / "lake")
    grid = lakegen.TrainingGrid(models=["llama2_70b"], n_chips=[8, 64, 512], global_batch=[1024], pp=[1, 2, 4],
                                micro_batch=[1, 2], zero_stage=[0, 1], interleave=[1])
    full = lakegen.training_grid(grid, 0, grid.size)
    lakegen.write_version(lake, "training", "full", 1, full)
    half = full
    for col in ("tokens", "time_to_train_days", "cost_usd"):
        half = half.set_column(half.schema.get_field_index(col), col,
                               pc.multiply(full[col], pa.scalar(0.5, full.schema.field(col).type)))
    lakegen.write_version(lake, "training", "half", 1, half)
    frontier = run_saved("pareto_training", {"model": "llama2_70b", "cost_basis": "rental"}, lake=lake)
    fig = plot(frontier, None, tmp_path / "two.png")
    lines = fig.staircases()
    assert len(lines) == 2 and all("tokens" in g for g in lines)
    assert sorted(i for idx in lines.values() for i in idx) == list(range(len(fig.frontier)))
    for idx in lines.values():
        xs, ys = [fig.frontier[i]["x"] for i in idx], [fig.frontier[i]["y"] for i in idx]
        assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # min time, min cost: a staircase
    # both minimised: across to the next point's cost at this point's time, the corner worse than both
    assert fig.staircase_corner() == "hv"
    from chipsweep.queries.chart import chart

    assert {t.line.shape for t in chart(fig).data if t.meta == "staircase"} == {"hv"}
    drawn = read_png_data(tmp_path / "two.png")
    assert {p["group"] for p in drawn["frontier"]} == set(lines)



def test_frontier_points_whose_efficiency_is_extrapolated_are_drawn_hollow(tmp_path: Path) -> None:
    """A frontier point whose chip has no published run of its own (`calibrated_on` 'extrapolated from ...') is
    the one the model is least sure of, and the frontier is where optimism lands: the chart and the PNG draw it
    hollow, say what it is extrapolated from on hover, and the title says what hollow means. Points of chips
    fitted on their own runs (the H100 here) stay solid. A real sweep: Llama 2 7B on the H100, H200 (extrapolated
    from the H100, same compute) and MI300X (extrapolated by measured GEMM throughput)."""
    import json

    from chipsweep.queries.chart import chart_json
    from chipsweep.queries.output import to_text
    from chipsweep.schemas.catalog import load_catalog
    from tests.conftest import evaluated_lake

    spec = {"name": "hollow", "kind": "training", "axes": {
        "model": ["llama2_7b"], "chip": ["nvidia_h100_sxm", "nvidia_h200_sxm", "amd_mi300x"],
        "n_chips": [8, 64, 512, 2048]}, "fixed": {"global_batch": 1024, "tokens": 2e12, "cost_basis": "rental"}}
    evaluated_lake(spec, tmp_path / "lake", load_catalog(use_env=False))
    lake = str(tmp_path / "lake")
    table = run_saved("pareto_training", {"model": "llama2_7b"}, lake=lake)
    cal = {c: str(o) for c, o in zip(table["chip"].to_pylist(), table["calibrated_on"].to_pylist(), strict=True)}
    assert cal["nvidia_h100_sxm"].startswith("llm_foundry")  # fitted on its own runs
    assert cal["amd_mi300x"].startswith("extrapolated from") and cal["nvidia_h200_sxm"].startswith("extrapolated from")
    fig = figure_data(table)
    assert {p["chip"]: p["extrapolated"] for p in fig.frontier} == {c: o.startswith("extrapolated") for c, o in cal.items()}
    chart = chart_json(fig)
    for trace in (t for t in chart["data"] if t.get("meta") == "frontier"):
        hollow = not cal[trace["name"]].startswith("llm_foundry")
        assert set(trace["marker"]["symbol"]) == {"circle-open" if hollow else "circle"}, trace["name"]
        for text in trace["text"]:
            assert ("<i>efficiency extrapolated from" in text) is hollow and ("calibrated on llm_foundry" in text) is not hollow
    assert "hollow: efficiency extrapolated" in json.dumps(chart["layout"]["title"])
    # the same flags reach the PNG (its embedded figure data), and a frontier of fitted chips alone says nothing of it
    out = tmp_path / "hollow.png"
    plot(table, None, out)
    assert [p["extrapolated"] for p in read_png_data(out)["frontier"]] == [p["extrapolated"] for p in fig.frontier]
    measured = run_saved("pareto_training", {"model": "llama2_7b", "calibration": "measured"}, lake=lake)
    solid = figure_data(measured)
    assert solid.frontier and not solid.any_extrapolated()
    assert "hollow" not in json.dumps(chart_json(solid)["layout"]["title"])
    # the table `chipsweep query` prints says the same in its footer, and how to keep the fitted chips only
    n = sum(p["extrapolated"] for p in fig.frontier)
    assert (f"; {n} of {len(fig.frontier)} rows on efficiency extrapolated from other chips' published runs "
            "(amd_mi300x, nvidia_h200_sxm; --param calibration=measured keeps the chips fitted on their own))"
            ) in to_text(table)
    assert to_text(measured).splitlines()[-1] == f"({measured.num_rows} row{'s' if measured.num_rows > 1 else ''}; " \
        "frontier of min time_to_train_days, min cost_usd)"


def test_hover_text_writes_numbers_as_a_reader_would() -> None:
    """The hover said 'frontier of tokens 15000000000000.0' and 'cost_usd = 7.605e+05'."""
    from chipsweep.queries.chart import _fmt
    from chipsweep.queries.figure import _plain

    assert (_plain(15e12), _plain(3e11), _plain(2.5e6), _plain(4096.0), _plain(0.5), _plain("bf16")) == (
        "15T", "300B", "2.5M", "4096", "0.5", "bf16")
    assert (_fmt(760500.0), _fmt(12.3456), _fmt(0.000123)) == ("760,500", "12.35", "0.000123")


@pytest.mark.parametrize(("x_sense", "y_sense"), [("min", "min"), ("min", "max"), ("max", "min"), ("max", "max")])
def test_a_staircase_turns_through_the_corner_worse_than_both_points(x_sense: str, y_sense: str) -> None:
    """Two non-dominated points in x order, for every pair of senses: the corner the line turns through (plotly 'hv':
    the next point's x at this point's y; 'vh': this point's x at the next one's y) is no better than either point
    in both objectives, so the line never passes where no configuration reaches."""
    from chipsweep.queries.figure import Axis, FrontierFigure

    better = {"min": lambda a, b: a < b, "max": lambda a, b: a > b}
    x0, x1 = 1.0, 2.0
    # the second point is worse in x where x is minimised, so it must be better in y (and the other way round)
    y0, y1 = (2.0, 1.0) if better[y_sense](1.0, 2.0) == (x_sense == "min") else (1.0, 2.0)
    fig = FrontierFigure(title="", x=Axis("x", "x", x_sense, False), y=Axis("y", "y", y_sense, False), colour=None,
                         frontier=[{"x": x0, "y": y0}, {"x": x1, "y": y1}])
    corner = (x1, y0) if fig.staircase_corner() == "hv" else (x0, y1)
    for px, py in ((x0, y0), (x1, y1)):
        assert not (better[x_sense](corner[0], px) or better[y_sense](corner[1], py)), (corner, (px, py))
