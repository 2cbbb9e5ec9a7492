"""The interactive frontier chart (plotly): the one figure the web UI and `--plot FILE.html` draw.

Every feasible configuration faint and every frontier point bold, both coloured by chip (one legend
entry per chip toggles both); a staircase joins a two-objective frontier; hovering a point shows its
chip, layout and every objective; clicking it copies the configuration (JSON) to the clipboard. A
third objective sets the frontier markers' size. Only draws: the figure's content is `figure.py`'s.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from chipsweep.queries.figure import LOG_SPAN, FrontierFigure, axis_title
from chipsweep.queries.frontier import Objective

CANDIDATES = 10_000  # faint points drawn at most (a repeatable sample beyond that)
PALETTE = (*qualitative.Dark24, *qualitative.Light24)
# on a click, the point's configuration goes to the clipboard and to an element the page may show
COPY_SCRIPT = """
var plot = document.getElementById('{plot_id}');
plot.on('plotly_click', function (ev) {
  var p = ev.points[0]; if (!p || p.customdata === undefined) return;
  var text = typeof p.customdata === 'string' ? p.customdata : JSON.stringify(p.customdata);
  if (navigator.clipboard) navigator.clipboard.writeText(text).catch(function () {});
  var out = document.getElementById('copied'); if (out) out.textContent = text;
});
"""


def chip_colours(chips: list[str]) -> dict[str, str]:
    return {chip: PALETTE[i % len(PALETTE)] for i, chip in enumerate(chips)}


def sample(n: int, limit: int = CANDIDATES) -> np.ndarray:
    """Indices of at most `limit` of `n` candidates (the same ones every time)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def _fmt(v: float) -> str:
    """A hover value: 4 significant digits, thousands written out ($760,500 read as 7.605e+05)."""
    return f"{v:,.0f}" if abs(v) >= 1e4 and abs(v) < 1e15 else f"{v:.4g}"


def _wrap(text: object, width: int = 70) -> str:
    """A long hover line broken at spaces (plotly does not wrap hover text)."""
    return "<br>".join(textwrap.wrap(str(text), width)) or str(text)


def _hover(fig: FrontierFigure, p: dict[str, Any]) -> str:
    row = p.get("row") or {}
    lines = [f"<b>{p['label']}</b>", f"{fig.x.column} = {_fmt(p['x'])}", f"{fig.y.column} = {_fmt(p['y'])}"]
    if fig.colour is not None and "c" in p:
        lines.append(f"{fig.colour.column} = {_fmt(p['c'])}")
    if p.get("group"):
        lines.append(f"frontier of {p['group']}")
    if row.get("calibrated_on"):
        # an extrapolated point's efficiency was never checked against a run of its own chip: say so on hover
        text = _wrap(row["calibrated_on"])
        lines.append(f"<i>efficiency {text}</i>" if p.get("extrapolated") else f"calibrated on {text}")
    if row.get("sweep") is not None:
        lines.append(f"sweep {row['sweep']} v{row.get('version')}, idx {row.get('idx')}")
    return "<br>".join(lines)


def chart(fig: FrontierFigure, *, candidates: int = CANDIDATES) -> go.Figure:
    """The plotly figure of a frontier (candidates sampled to at most `candidates`)."""
    colours = chip_colours(fig.chips())
    traces: list[Any] = []
    on_front = {str(p["chip"]) for p in fig.frontier}
    picked = sample(len(fig.candidates_x), candidates)
    by_chip: dict[str, list[int]] = defaultdict(list)
    for i in picked.tolist():
        by_chip[fig.candidates_chip[i] if fig.candidates_chip else ""].append(i)
    for chip, idx in sorted(by_chip.items()):
        traces.append(go.Scattergl(
            x=[fig.candidates_x[i] for i in idx], y=[fig.candidates_y[i] for i in idx], mode="markers",
            marker={"size": 4, "color": colours.get(chip, "#9aa4b1"), "opacity": 0.18}, name=chip,
            legendgroup=chip, showlegend=False, hoverinfo="skip", meta="candidates"))
        if chip not in on_front:  # a legend entry as visible as the frontier's (the faint points toggle with it)
            traces.append(go.Scatter(x=[None], y=[None], mode="markers", name=chip, legendgroup=chip,
                                     marker={"size": 8, "color": colours.get(chip, "#9aa4b1"), "opacity": 0.6},
                                     hoverinfo="skip", meta="legend"))
    if fig.colour is None:
        # one staircase per frontier of the result (a serving frontier per workload, a training one per cost
        # basis): a line through the points of different frontiers would zig-zag between them
        for group, idx in fig.staircases().items():
            ps = [fig.frontier[i] for i in idx]
            if len(ps) > 1:
                traces.append(go.Scatter(
                    x=[p["x"] for p in ps], y=[p["y"] for p in ps], mode="lines",
                    line={"shape": fig.staircase_corner(), "color": "#555", "width": 1.2}, name=group or "frontier", hoverinfo="skip",
                    showlegend=False, meta="staircase"))
    sizes: dict[int, float] = {}
    if fig.colour is not None:
        cs = np.array([float(p.get("c", np.nan)) for p in fig.frontier])  # type: ignore[arg-type]
        ok = np.isfinite(cs)
        if ok.any():
            lo, hi = cs[ok].min(), cs[ok].max()
            t = (cs - lo) / (hi - lo) if hi > lo else np.full(len(cs), 0.5)
            if fig.colour.sense == "max":
                t = 1 - t  # bigger markers are better: small cost, or large throughput
            sizes = {i: float(8 + 14 * (1 - t[i])) for i in range(len(cs)) if ok[i]}
    points: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(fig.frontier):
        points[str(p["chip"])].append(i)
    for chip, idx in sorted(points.items()):
        ps = [fig.frontier[i] for i in idx]
        traces.append(go.Scatter(
            x=[p["x"] for p in ps], y=[p["y"] for p in ps], mode="markers", name=chip, legendgroup=chip,
            # hollow where the efficiency is extrapolated from other chips' runs (no published run of this chip)
            marker={"size": [sizes.get(i, 11) for i in idx], "color": colours[chip],
                    "symbol": ["circle-open" if p.get("extrapolated") else "circle" for p in ps],
                    "line": {"width": [2 if p.get("extrapolated") else 1 for p in ps],
                             "color": [colours[chip] if p.get("extrapolated") else "#111" for p in ps]}},
            text=[_hover(fig, p) for p in ps], hovertemplate="%{text}<extra></extra>",
            customdata=[json.dumps(p.get("row") or {}, sort_keys=True) for p in ps], meta="frontier"))
    title = fig.title
    if fig.candidates_total:
        shown = len(picked)
        what = f"{fig.candidates_total:,} feasible" + (f", {shown:,} drawn" if shown < fig.candidates_total else "")
        title += f" — {what}"
    if fig.colour is not None:
        title += f"; marker size: {fig.colour.title}"
    if fig.any_extrapolated():
        title += "<br><sup>hollow: efficiency extrapolated from other chips' runs (no published run of that chip)</sup>"
    layout = go.Layout(
        title={"text": title, "font": {"size": 15}}, template="plotly_white", hovermode="closest",
        xaxis={"title": {"text": fig.x.title}, "type": "log" if fig.x.log else "linear"},
        yaxis={"title": {"text": fig.y.title}, "type": "log" if fig.y.log else "linear"},
        legend={"title": {"text": "chip"}, "itemclick": "toggle"}, margin={"l": 70, "r": 20, "t": 60, "b": 60},
    )
    return go.Figure(data=traces, layout=layout)


def chart_json(fig: FrontierFigure, *, candidates: int = CANDIDATES) -> dict[str, Any]:
    """The figure as plotly JSON (`data`, `layout`), as the web UI's data endpoint sends it."""
    return json.loads(chart(fig, candidates=candidates).to_json())  # type: ignore[no-any-return]


DIFF_AXES = {"training": (Objective("time_to_train_days"), Objective("cost_usd")),
             "serving": (Objective("tokens_per_s_per_user", "max"), Objective("output_tokens_per_s_per_chip", "max"))}
DIFF_EDGE_AXES = (Objective("decode_tokens_per_s", "max"), Objective("energy_per_token_j"))


def diff_axes(kind: str) -> tuple[Objective, Objective]:
    """The two objectives a `frontier_diff` of rows of `kind` is drawn on (x, y)."""
    return DIFF_AXES.get(kind, DIFF_EDGE_AXES)


def diff_chart_json(rows: list[dict[str, Any]], context: dict[int, list[dict[str, Any]]] | None = None
                    ) -> dict[str, Any] | None:
    """`frontier_diff` drawn: the configurations that entered the frontier and those that left it, per
    model, on the kind's objectives (training: time vs cost; edge: decode speed vs energy per token; serving:
    tokens/s per user vs output tokens/s per chip), over each version's whole frontier where `context` gives it
    (version -> its frontier rows): a point that stayed on the frontier but moved (a chip whose price fell) shows as
    its old and new position, which entered and left alone never drew."""
    if not rows:
        return None
    xo, yo = diff_axes(str(rows[0].get("kind")))
    xcol, ycol = xo.column, yo.column

    def points(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rs if r.get(xcol) is not None and r.get(ycol) is not None]

    def label(r: dict[str, Any]) -> str:
        return f"<b>{r.get('model')}: {r.get('chip')} × {r.get('layout')}</b><br>v{r.get('version')}"

    traces = []
    for (version, pts), style in zip((context or {}).items(), (  # the older version first, as given
            {"symbol": "circle-open", "color": "#9aa4b1", "size": 9}, {"symbol": "circle", "color": "#555", "size": 6}),
            strict=False):
        pts = points(pts)
        traces.append(go.Scatter(
            x=[r[xcol] for r in pts], y=[r[ycol] for r in pts], mode="markers", name=f"v{version} frontier ({len(pts)})",
            marker=style, text=[label(r) for r in pts], hovertemplate="%{text}<extra></extra>", meta="context"))
    for change, colour, symbol in (("entered", "#1a9850", "circle"), ("left", "#d73027", "x")):
        pts = points([r for r in rows if r.get("change") == change])
        traces.append(go.Scatter(
            x=[r[xcol] for r in pts], y=[r[ycol] for r in pts], mode="markers", name=f"{change} ({len(pts)})",
            marker={"size": 12, "color": colour, "symbol": symbol, "line": {"width": 1, "color": "#111"}},
            text=[label(r) + f", idx {r.get('idx')}" for r in pts], hovertemplate="%{text}<extra></extra>", meta=change))

    def scale(col: str) -> str:  # logarithmic where the values span more than LOG_SPAN, as the explorer's axes
        vals = [float(v) for t in traces for v in (t.x if col == xcol else t.y) if v is not None and float(v) > 0]
        return "log" if vals and max(vals) / min(vals) > LOG_SPAN else "linear"

    def axis(obj: Objective) -> dict[str, Any]:  # a log axis labels 1, 2 and 5 of each decade, not every digit
        kind = scale(obj.column)
        return {"title": {"text": axis_title(obj)}, "type": kind} | ({"dtick": "D2"} if kind == "log" else {})

    layout = go.Layout(template="plotly_white", hovermode="closest", title={"text": "frontier: entered and left"},
                       showlegend=True, legend={"title": {"text": "version"}}, xaxis=axis(xo), yaxis=axis(yo))
    return json.loads(go.Figure(data=traces, layout=layout).to_json())  # type: ignore[no-any-return]
