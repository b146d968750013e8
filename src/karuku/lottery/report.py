"""Tables and the paper's two figures from an experiment folder.

Figure: test accuracy and early-stopping iteration against the weights remaining (log axis),
the ticket beside both controls, mean over trials with min–max bars.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes, write_text
from karuku.io.once import read_object
from karuku.lottery.experiment import results

FIELDS = ("test_acc", "best_val_acc", "early_stop_iteration", "weights_remaining")


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max over trials per (variant, level); the dense run counts as level 0 of every variant."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["level"]), []).append(r)
    out = []
    for (variant, level), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row: dict[str, Any] = {"variant": variant, "level": level, "trials": len(rs)}
        for f in FIELDS:
            vals = [r[f] for r in rs]
            row[f] = statistics.fmean(vals)
            row[f"{f}_min"], row[f"{f}_max"] = min(vals), max(vals)
        out.append(row)
    return out


def experiments(path: str | Path) -> list[Path]:
    """Experiment folders at `path`: itself when it is one, else those directly below it."""
    path = Path(path)
    if (path / "settings.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/settings.json"))
    if not found:
        raise KarukuError(f"{path} holds no lottery experiment", "give the --out folder of `karuku lottery`")
    return found


def _figure(table: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    dense = next((r for r in table if r["variant"] == "dense"), None)
    styles = {"ticket": ("tab:blue", "o"), "reinit": ("tab:orange", "s"), "random-mask": ("tab:green", "^")}
    for variant, (color, marker) in styles.items():
        rows = [r for r in table if r["variant"] == variant]
        if not rows:
            continue
        if dense:
            rows = [dense, *rows]
        x = [100 * r["weights_remaining"] for r in rows]
        for ax, f, scale in ((axes[0], "test_acc", 100), (axes[1], "early_stop_iteration", 1)):
            y = [scale * r[f] for r in rows]
            err = [[scale * (r[f] - r[f"{f}_min"]) for r in rows], [scale * (r[f"{f}_max"] - r[f]) for r in rows]]
            ax.errorbar(x, y, yerr=err, color=color, marker=marker, ms=4, capsize=2, label=variant)
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    levels = sorted({round(100 * r["weights_remaining"], 1) for r in table}, reverse=True)
    for ax, label in ((axes[0], "test accuracy (%)"), (axes[1], "early-stopping iteration")):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(levels[:: max(1, len(levels) // 8)]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_report(path: str | Path) -> list[Path]:
    """For each experiment under `path`: table.csv, table.json, lottery.png and report.md; return the folders."""
    folders = experiments(path)
    for folder in folders:
        table = aggregate(results(folder))
        if not table:
            raise KarukuError(f"{folder} has no finished level yet", "run `karuku lottery` first")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
        write_text(folder / "table.csv", buf.getvalue())
        write_text(folder / "table.json", json.dumps(table, indent=2))
        write_bytes(folder / "lottery.png", _figure(table))
        write_text(folder / "report.md", markdown(folder, table))
    return folders


def markdown(folder: Path, table: list[dict[str, Any]]) -> str:
    """The experiment's report.md: settings and the aggregated table."""
    settings = read_object(folder / "settings.json", f"delete {folder} and rerun the experiment")
    lines = [f"# Lottery tickets: {settings['model']} on {settings['data']['name']}", "",
             f"rate {settings['rate']}, output rate {settings['output_rate']}, rewind {settings['rewind']}, "
             f"{settings['trials']} trial(s); mean (min–max) over trials.", "", "![figure](lottery.png)", "",
             "| level | weights remaining | variant | test accuracy | best val. accuracy | early-stop iteration |",
             "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['level']} | {100 * r['weights_remaining']:.2f} % | {r['variant']} | "
                     f"{100 * r['test_acc']:.2f} % ({100 * r['test_acc_min']:.2f}–{100 * r['test_acc_max']:.2f}) | "
                     f"{100 * r['best_val_acc']:.2f} % | {r['early_stop_iteration']:.0f} "
                     f"({r['early_stop_iteration_min']}–{r['early_stop_iteration_max']}) |")
    return "\n".join(lines) + "\n"
