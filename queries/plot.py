"""Frontier plots from a returned table: a PNG (matplotlib) or a self-contained interactive HTML page.

Computing is apart from drawing: `figure_data` turns a frontier table (a saved query's result, whose
schema metadata names its objectives) and, optionally, the candidate rows it was taken from into a
`FrontierFigure`; `draw_png` and `draw_html` only draw that. All candidates are faint, the frontier
bold, each frontier point labelled chip x layout; an axis is logarithmic when its values are positive
and span more than LOG_SPAN; axis titles carry the units of schemas/columns.py. A third objective is
the colour of the frontier points.

The figure's data travels with the file -- PNG text chunk `chipsweep` and an HTML `<script
type="application/json" id="chipsweep-data">` -- so a test or a script can check what was drawn.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chipsweep.queries.frontier import Objective
from chipsweep.queries.runner import objectives_of
from chipsweep.schemas.columns import FACTS
from chipsweep.schemas.errors import ChipsweepError

LOG_SPAN = 30.0  # max/min above which an axis is logarithmic
MAX_LABELS = 25  # frontier points labelled in the PNG (all are labelled on hover in the HTML)
HTML_CANDIDATES = 10_000  # candidate points embedded in the HTML page (4 significant digits)


class PlotError(ChipsweepError):
    """A table that cannot be drawn; the message names what is missing and what is allowed."""


def unit_of(column: str) -> str:
    for cols in FACTS.values():
        for c in cols:
            if c.name == column:
                return c.unit
    return ""


_UNIT_SUFFIXES = ("_days", "_usd", "_mwh", "_j", "_gb", "_mm2", "_w", "_t", "_s", "_ghz", "_mb", "_nm")


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
    """What a frontier plot shows, independent of how it is drawn."""

    title: str
    x: Axis
    y: Axis
    colour: Axis | None
    frontier: list[dict[str, object]]  # {"x", "y", "c"?, "label", ...} in x order
    candidates_x: list[float] = field(default_factory=list)
    candidates_y: list[float] = field(default_factory=list)
    candidates_total: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False, default=str)


def _finite(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, NULL as NaN."""
    return np.asarray(pc.fill_null(pc.cast(values, pa.float64()), math.nan).to_numpy(), dtype=np.float64)


def _log(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return bool(v.size and v.min() > 0 and v.max() / v.min() > LOG_SPAN)


def _label(row: dict[str, object]) -> str:
    chip = row.get("chip") or row.get("chip_name") or ""
    layout = row.get("layout") or ""
    return f"{chip} × {layout}" if chip and layout else str(chip or layout or row.get("idx", ""))


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
    cx = _finite(candidates[objs[0].column]) if candidates is not None and candidates.num_rows else np.array([])
    cy = _finite(candidates[objs[1].column]) if candidates is not None and candidates.num_rows else np.array([])
    keep = np.isfinite(cx) & np.isfinite(cy)
    cx, cy = cx[keep], cy[keep]
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
    points = []
    for i, row in enumerate(rows):
        if not (math.isfinite(fx[i]) and math.isfinite(fy[i])):
            continue
        p: dict[str, object] = {"x": float(fx[i]), "y": float(fy[i]), "label": _label(row)}
        if fc is not None and math.isfinite(fc[i]):
            p["c"] = float(fc[i])
        for key in ("model", "chip", "layout", "sweep", "version", "idx", "source"):
            if key in row and row[key] is not None:
                p[key] = row[key]
        points.append(p)
    points.sort(key=lambda p: (p["x"], p["y"]))  # type: ignore[arg-type, return-value]
    model = rows[0].get("model") if rows else None
    name = (frontier.schema.metadata or {}).get(b"chipsweep.query", b"frontier").decode()
    return FrontierFigure(
        title or f"{name}" + (f": {model}" if model else "") + f" ({len(points)} on the frontier)",
        axes[0], axes[1], colour, points, cx.tolist(), cy.tolist(),
        int(candidates_total) if candidates_total is not None else len(cx),
    )


# ---------------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------------
def draw_png(fig: FrontierFigure, path: str | Path) -> Path:
    """Candidates faint, the frontier bold and numbered; the numbers' chip x layout listed beside the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = plt.figure(figsize=(15, 7.5), dpi=100)
    ax = f.add_axes((0.07, 0.09, 0.55, 0.83))
    if fig.candidates_x:
        drawn, total = len(fig.candidates_x), max(fig.candidates_total, len(fig.candidates_x))
        what = f"{total:,}" if drawn == total else f"{drawn:,} drawn of {total:,}"
        ax.scatter(fig.candidates_x, fig.candidates_y, s=3, c="#9aa4b1", alpha=0.2, linewidths=0,
                   label=f"feasible configurations ({what})")
    xs = [float(p["x"]) for p in fig.frontier]  # type: ignore[arg-type]
    ys = [float(p["y"]) for p in fig.frontier]  # type: ignore[arg-type]
    if fig.colour is None:
        ax.step(xs, ys, where="post", color="#c0392b", linewidth=1.2, alpha=0.7)
        ax.scatter(xs, ys, s=40, c="#c0392b", edgecolors="black", linewidths=0.6, zorder=3,
                   label=f"Pareto frontier ({len(xs)})")
    else:
        from matplotlib.colors import LogNorm, Normalize

        cs = [float(p.get("c", np.nan)) for p in fig.frontier]  # type: ignore[arg-type]
        norm = LogNorm() if fig.colour.log else Normalize()
        sc = ax.scatter(xs, ys, s=46, c=cs, cmap="viridis_r" if fig.colour.sense == "min" else "viridis", norm=norm,
                        edgecolors="black", linewidths=0.6, zorder=3, label=f"Pareto frontier ({len(xs)})")
        f.colorbar(sc, ax=ax, label=fig.colour.title, pad=0.01)
    if fig.x.log:
        ax.set_xscale("log")
    if fig.y.log:
        ax.set_yscale("log")
    step = max(1, math.ceil(len(fig.frontier) / MAX_LABELS))
    listed = list(enumerate(fig.frontier, start=1))[::step]
    for n, p in listed:
        ax.annotate(str(n), (float(p["x"]), float(p["y"])), xytext=(3, 5),  # type: ignore[arg-type]
                    textcoords="offset points", fontsize=7, fontweight="bold", color="#7b241c")
    ax.set_xlabel(fig.x.title)
    ax.set_ylabel(fig.y.title)
    ax.set_title(fig.title, fontsize=11, loc="left")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", fontsize=8)
    key = "\n".join(f"{n:>3}  {_short(str(p['label']))}" for n, p in listed)
    if step > 1:
        key += f"\n(every {step}th of {len(fig.frontier)} points)"
    left = 0.66 if fig.colour is None else 0.72
    f.text(left, 0.92, "chip \u00d7 layout", fontsize=9, fontweight="bold", va="top")
    f.text(left, 0.89, key, fontsize=7, family="monospace", va="top")
    out = Path(path)
    f.savefig(out, metadata={"Software": "chipsweep", "Description": fig.title})
    plt.close(f)
    _png_text(out, "chipsweep", fig.to_json())
    return out


def _short(label: str, width: int = 64) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"


def _png_text(path: Path, key: str, text: str) -> None:
    """Add an iTXt chunk (UTF-8, compressed) before IEND."""
    import struct
    import zlib

    data = path.read_bytes()
    body = key.encode() + b"\x00" + b"\x01\x00" + b"\x00" + b"\x00" + zlib.compress(text.encode())
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])


def read_png_data(path: str | Path) -> dict[str, object]:
    """The figure data a PNG drawn here carries (for checks)."""
    import struct
    import zlib

    data = Path(path).read_bytes()
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"iTXt" and body.startswith(b"chipsweep\x00"):
            rest = body[len(b"chipsweep\x00"):]
            text = rest[4:]  # flag, method, language tag NUL, translated keyword NUL
            return json.loads(zlib.decompress(text).decode())  # type: ignore[no-any-return]
        pos += 12 + length
    raise PlotError(f"plot: {path} carries no chipsweep figure data")


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
 body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
 #chart {{ border: 1px solid #ddd; background: #fff; }}
 .cand {{ fill: #9aa4b1; fill-opacity: .2; }}
 .front {{ stroke: #111; stroke-width: .8; cursor: pointer; }}
 .front:hover {{ stroke-width: 2.5; }}
 .stair {{ fill: none; stroke: #c0392b; stroke-opacity: .7; stroke-width: 1.3; }}
 .lbl {{ font-size: 10px; fill: #333; pointer-events: none; }}
 .axis text {{ font-size: 11px; }} .grid {{ stroke: #eee; }}
 #tip {{ position: absolute; background: #fffbe6; border: 1px solid #c9b458; padding: 6px 8px; font-size: 12px;
        pointer-events: none; display: none; white-space: pre; }}
 label {{ margin-right: 14px; }}
</style></head><body>
<h3>{title}</h3>
<div><label><input type="checkbox" id="showc" checked> all feasible configurations</label>
<label><input type="checkbox" id="showl" checked> labels</label>
<label><input type="checkbox" id="logx"> log x</label><label><input type="checkbox" id="logy"> log y</label>
<span id="info"></span></div>
<svg id="chart" width="1000" height="620"></svg><div id="tip"></div>
<script type="application/json" id="chipsweep-data">{data}</script>
<script>
(function () {{
 const D = JSON.parse(document.getElementById('chipsweep-data').textContent);
 const svg = document.getElementById('chart'), tip = document.getElementById('tip');
 const W = 1000, H = 620, L = 90, R = 30, T = 20, B = 60, NS = 'http://www.w3.org/2000/svg';
 document.getElementById('logx').checked = D.x.log; document.getElementById('logy').checked = D.y.log;
 document.getElementById('info').textContent = D.frontier.length + ' on the frontier, ' +
   D.candidates_total.toLocaleString() + ' feasible (' + D.candidates_x.length.toLocaleString() + ' drawn)';
 function el(n, a, p) {{ const e = document.createElementNS(NS, n); for (const k in a) e.setAttribute(k, a[k]);
   (p || svg).appendChild(e); return e; }}
 function scale(vals, log, a, b) {{
   let v = vals.filter(x => isFinite(x) && (!log || x > 0)); if (!v.length) v = [1, 10];
   let lo = Math.min(...v), hi = Math.max(...v);
   if (log) {{ lo = Math.log10(lo); hi = Math.log10(hi); }}
   if (hi === lo) {{ hi += 0.5; lo -= 0.5; }} const pad = (hi - lo) * 0.04; lo -= pad; hi += pad;
   const f = x => a + (b - a) * (((log ? Math.log10(x) : x) - lo) / (hi - lo));
   f.ticks = () => {{ const out = []; if (log) {{ for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) out.push(10 ** e); }}
     else {{ const st = 10 ** Math.floor(Math.log10((hi - lo) / 5)); for (let t = Math.ceil(lo / st) * st; t <= hi; t += st) out.push(t); }}
     return out; }};
   return f; }}
 function fmt(v) {{ return Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(2) : (+v.toPrecision(4)).toLocaleString(); }}
 const cmin = Math.min(...D.frontier.map(p => p.c ?? Infinity)), cmax = Math.max(...D.frontier.map(p => p.c ?? -Infinity));
 function colour(c) {{ if (c === undefined || !isFinite(cmin)) return '#c0392b';
   let t = cmax > cmin ? (c - cmin) / (cmax - cmin) : 0.5; if (D.colour.sense === 'min') t = 1 - t;
   return 'hsl(' + Math.round(260 - 200 * t) + ',70%,' + Math.round(35 + 20 * t) + '%)'; }}
 function draw() {{
   while (svg.firstChild) svg.removeChild(svg.firstChild);
   const lx = document.getElementById('logx').checked, ly = document.getElementById('logy').checked;
   const sx = scale(D.frontier.map(p => p.x).concat(D.candidates_x), lx, L, W - R);
   const sy = scale(D.frontier.map(p => p.y).concat(D.candidates_y), ly, H - B, T);
   const g = el('g', {{class: 'axis'}});
   for (const t of sx.ticks()) {{ el('line', {{x1: sx(t), x2: sx(t), y1: T, y2: H - B, class: 'grid'}}, g);
     el('text', {{x: sx(t), y: H - B + 16, 'text-anchor': 'middle'}}, g).textContent = fmt(t); }}
   for (const t of sy.ticks()) {{ el('line', {{x1: L, x2: W - R, y1: sy(t), y2: sy(t), class: 'grid'}}, g);
     el('text', {{x: L - 6, y: sy(t) + 4, 'text-anchor': 'end'}}, g).textContent = fmt(t); }}
   el('text', {{x: (L + W - R) / 2, y: H - 14, 'text-anchor': 'middle'}}, g).textContent = D.x.title;
   el('text', {{x: 16, y: (T + H - B) / 2, 'text-anchor': 'middle', transform: 'rotate(-90 16 ' + (T + H - B) / 2 + ')'}}, g).textContent = D.y.title;
   if (D.colour) el('text', {{x: W - R, y: T + 4, 'text-anchor': 'end'}}, g).textContent = 'colour: ' + D.colour.title;
   if (document.getElementById('showc').checked) {{
     const cg = el('g', {{}});
     for (let i = 0; i < D.candidates_x.length; i++) {{ const x = D.candidates_x[i], y = D.candidates_y[i];
       if ((lx && x <= 0) || (ly && y <= 0)) continue; el('circle', {{cx: sx(x), cy: sy(y), r: 1.6, class: 'cand'}}, cg); }} }}
   const pts = D.frontier.filter(p => (!lx || p.x > 0) && (!ly || p.y > 0));
   if (!D.colour && pts.length > 1) {{ let d = 'M' + sx(pts[0].x) + ',' + sy(pts[0].y);
     for (let i = 1; i < pts.length; i++) d += 'H' + sx(pts[i].x) + 'V' + sy(pts[i].y);
     el('path', {{d: d, class: 'stair'}}); }}
   const showl = document.getElementById('showl').checked;
   for (const p of pts) {{
     const c = el('circle', {{cx: sx(p.x), cy: sy(p.y), r: 5, fill: colour(p.c), class: 'front'}});
     c.addEventListener('mousemove', e => {{ tip.style.display = 'block'; tip.style.left = (e.pageX + 12) + 'px';
       tip.style.top = (e.pageY + 12) + 'px'; tip.textContent = p.label + '\\n' + D.x.column + ' = ' + fmt(p.x) + '\\n' +
       D.y.column + ' = ' + fmt(p.y) + (p.c !== undefined ? '\\n' + D.colour.column + ' = ' + fmt(p.c) : '') +
       (p.sweep ? '\\nsweep ' + p.sweep + ' v' + p.version + ', idx ' + p.idx : ''); }});
     c.addEventListener('mouseleave', () => {{ tip.style.display = 'none'; }});
     if (showl) el('text', {{x: sx(p.x) + 7, y: sy(p.y) - 6, class: 'lbl'}}).textContent = p.label;
   }} }}
 for (const id of ['showc', 'showl', 'logx', 'logy']) document.getElementById(id).addEventListener('change', draw);
 draw();
}})();
</script></body></html>
"""


def draw_html(fig: FrontierFigure, path: str | Path) -> Path:
    """A single HTML file (no network needed): SVG drawn by inline script, hover for details."""
    pick = np.arange(len(fig.candidates_x))
    if len(pick) > HTML_CANDIDATES:
        pick = np.sort(np.random.default_rng(0).choice(len(pick), HTML_CANDIDATES, replace=False))
    data = FrontierFigure(fig.title, fig.x, fig.y, fig.colour, fig.frontier,
                          [float(f"{fig.candidates_x[i]:.4g}") for i in pick],
                          [float(f"{fig.candidates_y[i]:.4g}") for i in pick], fig.candidates_total)
    # "</" cannot appear inside a script element
    payload = data.to_json().replace("</", "<\\/")
    out = Path(path)
    out.write_text(_PAGE.format(title=html.escape(fig.title), data=payload), encoding="utf-8")
    return out


def read_html_data(path: str | Path) -> dict[str, object]:
    text = Path(path).read_text(encoding="utf-8")
    start = text.index('id="chipsweep-data">') + len('id="chipsweep-data">')
    end = text.index("</script>", start)
    return json.loads(text[start:end].replace("<\\/", "</"))  # type: ignore[no-any-return]


def plot(
    frontier: pa.Table, candidates: pa.Table | None, path: str | Path, *, title: str | None = None,
    candidates_total: int | None = None,
) -> FrontierFigure:
    """Draw `frontier` over `candidates` to a .png or .html file (by extension)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise PlotError(f"plot: file '{path}' has extension '{suffix}'; allowed: .png, .html")
    fig = figure_data(frontier, candidates, title=title, candidates_total=candidates_total)
    if suffix == ".png":
        draw_png(fig, path)
    else:
        draw_html(fig, path)
    return fig
