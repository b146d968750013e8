"""Plots as PNG bytes (matplotlib, no display), embedded in the HTML report."""

from __future__ import annotations

import io
from typing import Any


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (smaller size and higher accuracy), by increasing size."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_vs_size(attempts: list[dict[str, Any]], chosen_key: str) -> bytes:
    """PNG: every attempt's accuracy against its deployable size, the Pareto front, the chosen one starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(a["measure"]["deploy_bytes"] / 1000, 100 * a["measure"]["accuracy"]) for a in attempts]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for a, (x, y) in zip(attempts, pts):
        ax.scatter(x, y, s=60 if a["key"] == chosen_key else 30, zorder=3,
                   marker="*" if a["key"] == chosen_key else "o",
                   color="tab:red" if a["key"] == chosen_key else "tab:blue")
        ax.annotate(a["label"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    front = pareto(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="gray", zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("deployable size (KB, log)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)  # the (translated) title is the figure caption: plot fonts may lack CJK glyphs
    return _png(fig)


def layers_kept(layers: list[dict[str, Any]]) -> bytes:
    """PNG: the share of weights each layer keeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [x["name"] for x in layers]
    kept = [100 * x["nonzeros"] / x["params"] for x in layers]
    fig, ax = plt.subplots(figsize=(6.4, max(2.0, 0.28 * len(names) + 1)))
    ax.barh(names, kept, color="tab:green")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of weights kept")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)
