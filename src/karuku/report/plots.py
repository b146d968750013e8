"""Plots as SVG text (matplotlib, no display), inlined in the HTML report and written beside the Markdown one.

Text stays text (`svg.fonttype: none`): the browser draws it with the page's font stack, so Japanese axes
render wherever the page itself does, whatever fonts matplotlib has. Labels are the attempts' numbers, not
their names: short, language-free, and placed so that no two overlap.
"""

from __future__ import annotations

import contextlib
import io
import re
import unicodedata
import warnings
from typing import Any

FONT_STACK = ["DejaVu Sans", "Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "Hiragino Sans",
              "Yu Gothic", "Meiryo", "karuku ja", "sans-serif"]
LABEL_PT = 8  # attempt numbers beside the points


@contextlib.contextmanager
def _no_glyph_warnings():
    """CJK glyphs are missing from matplotlib's own fonts: it only measures the text, the browser draws it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        yield


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with _no_glyph_warnings():
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # no XML declaration or DOCTYPE: the text is inlined into HTML too
    return re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)


def _style(name: str):
    """The plots' settings, for this plot only (other matplotlib users in the process keep theirs)."""
    import matplotlib

    matplotlib.use("Agg")
    return matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name, "font.family": "sans-serif",
                                  "font.sans-serif": FONT_STACK})


def _figure(size: tuple[float, float]):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (smaller size and higher accuracy), by increasing size."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_limits(accuracies: list[float]) -> tuple[float, float]:
    """The accuracy axis (percent): the points with a margin, never below 0 or above 100."""
    lo, hi = min(accuracies), max(accuracies)
    pad = max(0.5, 0.1 * (hi - lo))
    return max(0.0, lo - pad), min(100.0, hi + pad)


def text_width(text: str, points: float) -> float:
    """A generous width of `text` in points: wide (CJK) characters one em, others 0.65 em."""
    return points * sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.65 for c in text)


def place_labels(points: list[tuple[float, float]], texts: list[str], height: float,
                 box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Lower-left corners (display points) for labels beside `points` so that no two labels overlap.

    Labels of one point are one text already (the caller joins them). Each label takes the first free spot
    around its point, nearest first, inside `box` (x0, y0, x1, y1); when none is free there, the nearest free
    one further above or below, outside the box if need be (the figure grows to hold it).
    """
    placed: list[tuple[float, float, float, float]] = []
    where = {}
    for (px, py), text in sorted(zip(points, texts), key=lambda pt: (pt[0][0], pt[0][1])):
        w = text_width(text, LABEL_PT)

        def rect(x, y, w=w):
            return (x - 1, y - 1, x + w + 1, y + height + 1)

        def free(r):
            return not any(_overlap(r, q) for q in placed)

        near = [(px + 5, py + 3), (px + 5, py - height - 3), (px - w - 5, py + 3), (px - w - 5, py - height - 3),
                (px - w / 2, py + 7), (px - w / 2, py - height - 7)]
        near += [(px + 5, py + 3 + k * (height + 2)) for k in range(1, 20)]
        near += [(px + 5, py - height - 3 - k * (height + 2)) for k in range(1, 20)]
        inside = [s for s in near if box[0] <= rect(*s)[0] and rect(*s)[2] <= box[2] and box[1] <= rect(*s)[1]
                  and rect(*s)[3] <= box[3]]
        spot = next((s for s in inside if free(rect(*s))), None)
        k = 0
        while spot is None:
            k += 1
            spot = next((s for s in ((px + 5, py + 3 + k * (height + 2)), (px + 5, py - height - 3 - k * (height + 2)))
                         if free(rect(*s))), None)
        placed.append(rect(*spot))
        where[(px, py)] = spot
    return [where[p] for p in points]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def accuracy_vs_size(attempts: list[dict[str, Any]], chosen_key: str, t: dict[str, str],
                     quality: dict[str, Any] | None = None) -> str:
    """SVG: every attempt's quality (`quality`: the run's task metric; default top-1 accuracy) against its
    deployable size, the Pareto front, the chosen one starred. Better is up whatever the metric's direction.

    Attempt i is labelled `i` (0 = the baseline); attempts on one point share one label ("2, 3").
    """

    with _style("pareto"):
        return _accuracy_vs_size(attempts, chosen_key, t, quality)


def _quality(m: dict[str, Any], q: dict[str, Any] | None) -> float:
    if q is None or (q["task"] == "classification" and q["metric"] == "top1"):
        return 100 * m["accuracy"]
    v = m.get("metrics", {})[q["metric"]]
    return 100 * v if q["percent"] else v


def _accuracy_vs_size(attempts: list[dict[str, Any]], chosen_key: str, t: dict[str, str],
                      q: dict[str, Any] | None) -> str:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lower_better = q is not None and not q["higher_is_better"]
    pts = [(a["measure"]["deploy_bytes"] / 1000, _quality(a["measure"], q)) for a in attempts]
    fig, ax = _figure((6.4, 4))
    for a, (x, y) in zip(attempts, pts):
        chosen = a["key"] == chosen_key
        ax.scatter(x, y, s=90 if chosen else 30, zorder=3, marker="*" if chosen else "o", clip_on=False,
                   color="tab:red" if chosen else "tab:blue")
    front = pareto([(x, -y) for x, y in pts] if lower_better else pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="gray", zorder=2)
    ax.set_xscale("log")
    xs = [p[0] for p in pts]
    ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    if q is None or q["percent"]:
        ax.set_ylim(*accuracy_limits([p[1] for p in pts]))
    if lower_better:
        ax.invert_yaxis()  # better is up
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(t["axis_size"])
    plain = q is None or (q["task"] == "classification" and q["metric"] == "top1")
    ax.set_ylabel(t["axis_accuracy"] if plain else f"test {q['metric']}" + (" (%)" if q["percent"] else ""))
    ax.grid(alpha=0.3)
    groups: dict[tuple[float, float], list[int]] = {}
    for i, p in enumerate(pts):
        groups.setdefault((round(p[0], 6), round(p[1], 6)), []).append(i)
    with _no_glyph_warnings():
        fig.canvas.draw()  # limits and layout fixed: display coordinates are final
    scale = fig.dpi / 72  # display pixels per point
    to_display = ax.transData.transform
    anchors = [tuple(to_display(pts[idx[0]]) / scale) for idx in groups.values()]
    texts = [", ".join(map(str, idx)) for idx in groups.values()]
    bbox = ax.get_window_extent()
    box = (bbox.x0 / scale, bbox.y0 / scale, bbox.x1 / scale, bbox.y1 / scale)
    inverse = ax.transData.inverted().transform
    spots = place_labels(anchors, texts, 1.25 * LABEL_PT, box)
    for (idx, text), (x, y) in zip(zip(groups.values(), texts), spots):
        ax.annotate(text, inverse((x * scale, y * scale)), xycoords="data", fontsize=LABEL_PT, va="bottom",
                    annotation_clip=False, gid=f"attempt-label-{'-'.join(map(str, idx))}")
    return _svg(fig)


def layers_kept(rows: list[tuple[str, float]], t: dict[str, str]) -> str:
    """SVG: the share of weights each layer keeps (name, percent)."""
    with _style("layers"):
        fig, ax = _figure((6.4, max(2.0, 0.28 * len(rows) + 1)))
        ax.barh([r[0] for r in rows], [r[1] for r in rows], color="tab:green")
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel(t["axis_kept"])
        ax.tick_params(axis="y", labelsize=7)
        return _svg(fig)
