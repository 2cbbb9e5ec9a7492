"""Frontier plots as files: a PNG (matplotlib) or a self-contained interactive HTML page (plotly, the
same chart as the web UI: queries/chart.py), drawn from a `FrontierFigure` (queries/figure.py).

In the PNG every feasible configuration is faint and every frontier point bold, coloured by chip with a
legend; frontier points are numbered and the numbers' chip x layout listed beside the plot. The HTML
page carries plotly.js inline, so it opens offline. The figure's data travels with the file -- PNG text
chunk `chipsweep` and an HTML `<script type="application/json" id="chipsweep-data">` -- so a test or a
script can check what was drawn.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from chipsweep.queries.chart import CANDIDATES, COPY_SCRIPT, chart, chip_colours, sample
from chipsweep.queries.figure import FrontierFigure, PlotError, figure_data

MAX_LABELS = 25  # frontier points numbered in the PNG (every point shows its label on hover in the HTML)
LEGEND_CHIPS = 12  # more chips than this: the legend lists those on the frontier


# ---------------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------------
def draw_png(fig: FrontierFigure, path: str | Path) -> Path:
    """Candidates faint and frontier points bold, both coloured by chip (legend); points numbered, the
    numbers' chip x layout listed beside the plot; a third objective sets the marker size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chips = fig.chips()
    colour = chip_colours(chips)  # the same colour per chip as the interactive chart
    f = plt.figure(figsize=(15, 7.5), dpi=100)
    ax = f.add_axes((0.07, 0.09, 0.55, 0.83))
    if fig.candidates_x:
        cc = np.array(fig.candidates_chip or ["" for _ in fig.candidates_x], dtype=object)
        cx, cy = np.asarray(fig.candidates_x), np.asarray(fig.candidates_y)
        for chip in chips:
            m = cc == chip
            if m.any():
                ax.scatter(cx[m], cy[m], s=4, color=colour[chip], alpha=0.25, linewidths=0)
    xs = [float(p["x"]) for p in fig.frontier]  # type: ignore[arg-type]
    ys = [float(p["y"]) for p in fig.frontier]  # type: ignore[arg-type]
    if fig.colour is None and len(xs) > 1:
        # one staircase per frontier of the result (a workload, a cost basis): points of two frontiers are no one
        # staircase, one may sit under the other's
        where: Literal["pre", "post"] = "post" if fig.staircase_corner() == "hv" else "pre"  # matplotlib's turns
        for k, (group, idx) in enumerate(fig.staircases().items()):
            ax.step([xs[i] for i in idx], [ys[i] for i in idx], where=where, color="#555555", linewidth=1.1,
                    alpha=0.7, linestyle=("-", "--", ":", "-.")[k % 4], label=f"frontier of {group}" if group else None)
    sizes = np.full(len(xs), 46.0)
    if fig.colour is not None:
        cs = np.array([float(p.get("c", np.nan)) for p in fig.frontier])  # type: ignore[arg-type]
        ok = np.isfinite(cs)
        if ok.any() and cs[ok].max() > cs[ok].min():
            t = (cs - cs[ok].min()) / (cs[ok].max() - cs[ok].min())
            t = 1 - t if fig.colour.sense == "max" else t
            sizes = np.where(ok, 30 + 120 * (1 - t), 46.0)
    legend_all = len(chips) <= LEGEND_CHIPS  # else only the chips on the frontier get a legend entry
    for chip in chips:
        idx = [i for i, p in enumerate(fig.frontier) if p["chip"] == chip]
        if not idx and not legend_all:
            continue
        n_cand = sum(1 for c in fig.candidates_chip if c == chip)
        # hollow where the efficiency is extrapolated from other chips' runs (no published run of this chip)
        hollow = [bool(fig.frontier[i].get("extrapolated")) for i in idx]
        ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], s=sizes[idx] if idx else 46,
                   facecolors=["none" if h else colour[chip] for h in hollow] if idx else colour[chip],
                   edgecolors=[colour[chip] if h else "black" for h in hollow] if idx else "black",
                   linewidths=[1.6 if h else 0.6 for h in hollow] if idx else 0.6, zorder=3,
                   label=f"{chip} ({len(idx)} on the frontier, {n_cand:,} drawn)")
    if fig.x.log:
        ax.set_xscale("log")
    if fig.y.log:
        ax.set_yscale("log")
    step = max(1, math.ceil(len(fig.frontier) / MAX_LABELS))
    listed = list(enumerate(fig.frontier, start=1))[::step]
    for n, p in listed:
        ax.annotate(str(n), (float(p["x"]), float(p["y"])), xytext=(3, 5),  # type: ignore[arg-type]
                    textcoords="offset points", fontsize=7, fontweight="bold", color="#222222")
    ax.set_xlabel(fig.x.title)
    ax.set_ylabel(fig.y.title)
    total = max(fig.candidates_total, len(fig.candidates_x))
    sub = f"over {total:,} feasible configurations (faint)"
    if fig.colour is not None:
        sub += f"; marker size: {fig.colour.title}"
    if fig.any_extrapolated():
        sub += "; hollow: efficiency extrapolated from other chips' runs"
    ax.set_title(f"{fig.title}\n{sub}", fontsize=10, loc="left")
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:  # an empty frontier has no chip to list (matplotlib warns otherwise)
        ax.legend(loc="best", fontsize=7, title="chip", title_fontsize=8, markerscale=0.8, framealpha=0.85)
    key = "\n".join(f"{n:>3}  {_short(str(p['label']))}" for n, p in listed)
    if step > 1:
        key += f"\n(every {step}th of {len(fig.frontier)} points)"
    f.text(0.66, 0.92, "chip \u00d7 layout", fontsize=9, fontweight="bold", va="top")
    f.text(0.66, 0.89, key, fontsize=7, family="monospace", va="top")
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
def draw_html(fig: FrontierFigure, path: str | Path) -> Path:
    """One HTML file that opens offline: the plotly chart (plotly.js inline), the figure's data beside it."""
    pick = sample(len(fig.candidates_x), CANDIDATES)
    data = FrontierFigure(fig.title, fig.x, fig.y, fig.colour, fig.frontier,
                          [float(f"{fig.candidates_x[i]:.4g}") for i in pick],
                          [float(f"{fig.candidates_y[i]:.4g}") for i in pick],
                          [fig.candidates_chip[i] for i in pick] if fig.candidates_chip else [],
                          fig.candidates_total)
    page = chart(fig).to_html(include_plotlyjs=True, full_html=True, div_id="frontier",
                              config={"displaylogo": False, "responsive": True}, post_script=COPY_SCRIPT)
    payload = data.to_json().replace("</", "<\\/")  # "</" cannot appear inside a script element
    extra = ('<pre id="copied" style="font-size:11px;color:#555"></pre>\n'
             f'<script type="application/json" id="chipsweep-data">{payload}</script>\n')
    end = page.rindex("</body>")
    out = Path(path)
    out.write_text(page[:end] + extra + page[end:], encoding="utf-8")
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
    suffix = check_plot_path(path)
    fig = figure_data(frontier, candidates, title=title, candidates_total=candidates_total)
    try:
        if suffix == ".png":
            draw_png(fig, path)
        else:
            draw_html(fig, path)
    except OSError as exc:
        raise PlotError(f"plot: cannot write '{path}': {exc.strerror or exc}", field="plot", value=str(path),
                        allowed="a writable .png or .html path") from None
    return fig


def check_plot_path(path: str | Path) -> str:
    """The suffix of a plot file that can be written, or a PlotError naming why not (checked before a query runs,
    so a bad path is refused before its table is printed)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise PlotError(f"plot: file '{path}' has extension '{suffix}'; allowed: .png, .html", field="plot",
                        value=str(path), allowed=".png, .html")
    folder = Path(path).parent
    if not folder.is_dir():
        raise PlotError(f"plot: folder '{folder}' does not exist; allowed: a path in an existing folder", field="plot",
                        value=str(path), allowed="a path in an existing folder")
    return suffix
