"""What a frontier figure shows, computed from a returned table -- independent of how it is drawn.

`figure_data` turns a frontier table (a saved query's result, whose schema metadata names its
objectives) and, optionally, the candidate rows it was taken from into a `FrontierFigure`: the axes
(first two objectives; an axis is logarithmic when its values are positive and span more than
LOG_SPAN; titles carry the units of schemas/columns.py), the frontier points with their chip, layout,
every objective and the whole configuration, and the candidates (faint behind it). A third objective
travels with each point (hover, size). Drawing it is queries/plot.py (PNG, HTML) and the web UI.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chipsweep.queries.frontier import Objective
from chipsweep.queries.runner import objectives_of
from chipsweep.queries.saved import META_PARTITION
from chipsweep.schemas.columns import FACTS
from chipsweep.schemas.errors import ChipsweepError

LOG_SPAN = 30.0  # max/min above which an axis is logarithmic
OTHER = "(no chip)"  # the group of rows that name no chip (hypothetical ASIC designs)


class PlotError(ChipsweepError):
    """A table that cannot be drawn; the message names what is missing and what is allowed."""


def unit_of(column: str) -> str:
    for cols in FACTS.values():
        for c in cols:
            if c.name == column:
                return c.unit
    return ""


_UNIT_SUFFIXES = ("_days", "_usd", "_mwh", "_j", "_gb", "_mm2", "_w", "_t", "_s", "_ghz", "_mb", "_nm")


def _plain(v: object) -> str:
    """A frontier's partition value as a reader writes it: 15T tokens, not 15000000000000.0; 4096, not 4096.0."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return str(v)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(v) >= scale:
            return f"{v / scale:.4g}{suffix}"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.4g}"


def axis_title(obj: Objective) -> str:
    """`time_to_train_days` -> `time to train [days] (lower is better)`."""
    unit = unit_of(obj.column)
    name = obj.column
    if unit and not name.endswith("_per_s"):
        for suffix in _UNIT_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
    better = "higher is better" if obj.sense == "max" else "lower is better"
    return name.replace("_", " ") + (f" [{unit}]" if unit else "") + f" ({better})"


@dataclass
class Axis:
    column: str
    title: str
    sense: str
    log: bool


@dataclass
class FrontierFigure:
    """What a frontier plot shows. Frontier points: {"x", "y", "c"? (third objective), "chip",
    "label", "group" (which of the result's frontiers it is on: '' for one frontier, else e.g.
    'prompt_len 128, gen_len 2048'), "row" (the configuration, JSON-safe), "extrapolated" (the row's efficiency
    constants come from other chips' runs, `calibrated_on` 'extrapolated ...': drawn hollow)}, in x order;
    candidates: parallel lists."""

    title: str
    x: Axis
    y: Axis
    colour: Axis | None  # the third objective, if any (drawn as size and shown on hover)
    frontier: list[dict[str, object]]
    candidates_x: list[float] = field(default_factory=list)
    candidates_y: list[float] = field(default_factory=list)
    candidates_chip: list[str] = field(default_factory=list)
    candidates_total: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False, default=str)

    def staircases(self) -> dict[str, list[int]]:
        """The frontier points of each of the result's frontiers (by `group`), in x order: one line each."""
        out: dict[str, list[int]] = {}
        for i, p in enumerate(self.frontier):
            out.setdefault(str(p.get("group") or ""), []).append(i)
        return dict(sorted(out.items()))

    def staircase_corner(self) -> str:
        """Which way a staircase turns between two frontier points (in x order): through the corner worse than both,
        where every point of the line is reached by a configuration or dominated by one. With x minimised (cost,
        days) that corner is the next point's x at this point's y (across, then down: plotly 'hv'); with x maximised
        (tokens/s per chip beside tokens/s per user) it is this point's x at the next point's y ('vh'). Drawn 'hv'
        on a serving frontier, the line ran through a corner that beats both points."""
        return "hv" if self.x.sense == "min" else "vh"

    def any_extrapolated(self) -> bool:
        """Whether a frontier point rests on efficiency constants extrapolated from other chips."""
        return any(bool(p.get("extrapolated")) for p in self.frontier)

    def chips(self) -> list[str]:
        """Every chip drawn (frontier first, then candidates), in a stable order: colours follow it."""
        seen = dict.fromkeys(str(p["chip"]) for p in self.frontier)
        seen.update(dict.fromkeys(self.candidates_chip))
        return sorted(seen)


def _finite(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, NULL as NaN."""
    return np.asarray(pc.fill_null(pc.cast(values, pa.float64()), math.nan).to_numpy(), dtype=np.float64)


def _log(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return bool(v.size and v.min() > 0 and v.max() / v.min() > LOG_SPAN)


def _chip(row: dict[str, object]) -> str:
    """The group a row is coloured by: its catalog chip, or for a hypothetical ASIC design its node."""
    if row.get("source") == "asic":
        return f"ASIC {row['node_nm']:g} nm" if row.get("node_nm") is not None else "ASIC"
    return str(row.get("chip") or row.get("chip_name") or OTHER)


def _label(row: dict[str, object]) -> str:
    chip = row.get("chip") or row.get("chip_name") or ""
    layout = row.get("layout") or ""
    return f"{chip} × {layout}" if chip and layout else str(chip or layout or row.get("idx", ""))


def extrapolated(row: dict[str, object]) -> bool:
    """A row whose chip's efficiency constants were fitted on other chips' published runs: `calibrated_on` says
    'extrapolated from ...' (workers/context.py; the lake's `fitted_on_own_runs` macro is its negation for rows
    that carry the column)."""
    return str(row.get("calibrated_on") or "").startswith("extrapolated")


def _json_safe(row: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        elif v is not None and not isinstance(v, str | int | float | bool):
            v = str(v)
        out[k] = v
    return out


def figure_data(
    frontier: pa.Table, candidates: pa.Table | None = None, *, title: str | None = None,
    candidates_total: int | None = None,
) -> FrontierFigure:
    """The figure of a frontier table (objectives from its metadata) over its candidate rows (or a sample
    of them: `candidates_total` says how many there are in all)."""
    objs = objectives_of(frontier)
    if len(objs) < 2:
        raise PlotError("plot: the table is not a frontier (no objectives in its metadata); allowed: the result of "
                        "a frontier query such as pareto_training or pareto_edge")
    for o in objs:
        if o.column not in frontier.column_names:
            raise PlotError(f"plot: objective column '{o.column}' is not in the table; allowed: its columns "
                            f"{', '.join(frontier.column_names)}")
    fx, fy = _finite(frontier[objs[0].column]), _finite(frontier[objs[1].column])
    cand = candidates if candidates is not None else frontier.slice(0, 0)
    cx, cy = _finite(cand[objs[0].column]), _finite(cand[objs[1].column])
    cols = [c for c in ("chip", "chip_name", "source", "node_nm") if c in cand.column_names]
    cchip = np.array([_chip(r) for r in cand.select(cols).to_pylist()] if cols else [OTHER] * len(cx), dtype=np.object_)
    keep = np.isfinite(cx) & np.isfinite(cy)
    # a candidate the frontier could not have held is not drawn behind it: one lacking an objective the plot does
    # not show (an edge row without a unit cost lay faster and leaner than the three-objective frontier), or of a
    # workload the frontier's rows are not of (another prompt or generated length is another question)
    for o in objs[2:]:
        if o.column in cand.column_names:
            keep &= np.isfinite(_finite(cand[o.column]))
    work = [c for c in ("prompt_len", "gen_len") if c in cand.column_names and c in frontier.column_names]
    if work and frontier.num_rows:
        shown = set(zip(*(frontier[c].to_pylist() for c in work), strict=True))
        keep &= np.array([t in shown for t in zip(*(cand[c].to_pylist() for c in work), strict=True)], dtype=bool)
    cx, cy, cchip = cx[keep], cy[keep], cchip[keep]
    axes = [Axis(o.column, axis_title(o), o.sense, _log(np.concatenate([v, c])))
            for o, v, c in ((objs[0], fx, cx), (objs[1], fy, cy))]
    colour = None
    fc = None
    if len(objs) > 2:
        fc = _finite(frontier[objs[2].column])
        colour = Axis(objs[2].column, axis_title(objs[2]), objs[2].sense, _log(fc))
    rows = frontier.to_pylist()
    models = sorted({str(r["model"]) for r in rows if r.get("model") is not None})
    if len(models) > 1:
        raise PlotError(f"plot: the frontier holds {len(models)} models ({', '.join(models[:5])}); allowed: one "
                        "(--param model=...)")
    # the result holds one frontier per value of the query's partition columns (the model aside: one is drawn)
    raw_part = (frontier.schema.metadata or {}).get(META_PARTITION, b"").decode()
    part = [c for c in raw_part.split(",") if c and c != "model" and c in frontier.column_names]
    part = [c for c in part if len({r.get(c) for r in rows}) > 1]  # only the columns that split this result
    # each partition value as a reader writes it, unless two values would read alike (then as stored): a label
    # is also the staircase a point joins, and two frontiers must never share one
    labels: dict[str, dict[object, str]] = {}
    for c in part:
        values = {r.get(c) for r in rows}
        texts = {v: _plain(v) for v in values}
        labels[c] = texts if len(set(texts.values())) == len(values) else {v: str(v) for v in values}
    points = []
    for i, row in enumerate(rows):
        if not (math.isfinite(fx[i]) and math.isfinite(fy[i])):
            continue
        p: dict[str, object] = {"x": float(fx[i]), "y": float(fy[i]), "chip": _chip(row), "label": _label(row),
                                "group": ", ".join(f"{c} {labels[c][row.get(c)]}" for c in part), "row": _json_safe(row),
                                "extrapolated": extrapolated(row)}
        if fc is not None and math.isfinite(fc[i]):
            p["c"] = float(fc[i])
        points.append(p)
    points.sort(key=lambda p: (p["x"], p["y"]))  # type: ignore[arg-type, return-value]
    model = rows[0].get("model") if rows else None
    name = (frontier.schema.metadata or {}).get(b"chipsweep.query", b"frontier").decode()
    return FrontierFigure(
        title or f"{name}" + (f": {model}" if model else "") + f" ({len(points)} on the frontier)",
        axes[0], axes[1], colour, points, cx.tolist(), cy.tolist(), [str(c) for c in cchip],
        int(candidates_total) if candidates_total is not None else len(cx),
    )
