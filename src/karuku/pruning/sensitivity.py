"""Sensitivity analysis: prune one layer at a time over a sweep of rates and watch accuracy.

The table says which layers tolerate pruning; `choose_rates` turns it into per-layer rates
that reach a global sparsity with the least loss: every layer gets the largest rate whose
accuracy drop stays under one common tolerance, and the tolerance is the smallest that
reaches the target (interpolated between sweep points so the target is met exactly).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from karuku.errors import KarukuError
from karuku.io.atomic import atomic_path, write_text
from karuku.pruning import select
from karuku.pruning.scores import get_score
from karuku.pruning.targets import prunable
from karuku.training.evaluate import score

DEFAULT_RATES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@dataclass
class Sensitivity:
    """Accuracy of the model with one layer pruned at each rate."""

    rates: list[float]
    sizes: dict[str, int]  # layer weight name -> number of weights
    base_accuracy: float
    accuracy: dict[str, list[float]]  # layer -> accuracy at each rate

    def drops(self, layer: str) -> list[float]:
        """Accuracy lost (points of fraction), made non-decreasing in the rate (noise would mislead)."""
        out, worst = [], 0.0
        for a in self.accuracy[layer]:
            worst = max(worst, self.base_accuracy - a)
            out.append(worst)
        return out

    def markdown(self) -> str:
        head = "| layer | weights | " + " | ".join(f"{100 * r:g} %" for r in self.rates) + " |"
        rule = "|---|---:|" + "---:|" * len(self.rates)
        lines = [f"Accuracy drop (points) with one layer pruned; base accuracy {100 * self.base_accuracy:.2f} %.",
                 "", head, rule]
        for layer, accs in self.accuracy.items():
            cells = " | ".join(f"{100 * (self.base_accuracy - a):+.2f}" for a in accs)
            lines.append(f"| {layer.removesuffix('.weight')} | {self.sizes[layer]:,} | {cells} |")
        return "\n".join(lines) + "\n"

    def write(self, folder: str | os.PathLike) -> dict[str, Path]:
        """sensitivity.md, sensitivity.json and sensitivity.png in `folder` (atomically)."""
        folder = Path(folder)
        paths = {"table": folder / "sensitivity.md", "json": folder / "sensitivity.json",
                 "plot": folder / "sensitivity.png"}
        write_text(paths["table"], self.markdown())
        write_text(paths["json"], json.dumps(asdict(self), indent=2) + "\n")
        self.plot(paths["plot"])
        return paths

    def plot(self, path: str | os.PathLike) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for layer, accs in self.accuracy.items():
            ax.plot([100 * r for r in self.rates], [100 * a for a in accs], marker="o",
                    label=layer.removesuffix(".weight"))
        ax.axhline(100 * self.base_accuracy, color="grey", linestyle="--", linewidth=0.8, label="unpruned")
        ax.set_xlabel("sparsity of the one pruned layer (%)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        return Path(path)

    def choose_rates(self, target: float) -> dict[str, float]:
        """Per-layer rates whose weighted sparsity is exactly `target`, with the least common drop."""
        if not 0 <= target < 1:
            raise KarukuError(f"target sparsity {target} is outside [0, 1)", "give e.g. 0.9")
        layers, total = list(self.accuracy), sum(self.sizes.values())

        def rates_at(tol: float) -> dict[str, float]:
            out = {}
            for layer in layers:
                ok = [r for r, d in zip(self.rates, self.drops(layer)) if d <= tol + 1e-12]
                out[layer] = max(ok, default=0.0)
            return out

        def sparsity(rates: dict[str, float]) -> float:
            return sum(rates[n] * self.sizes[n] for n in layers) / total

        prev = {n: 0.0 for n in layers}
        for tol in sorted({0.0, *[d for n in layers for d in self.drops(n)]}):
            cur = rates_at(tol)
            if sparsity(cur) >= target:
                lo, hi = sparsity(prev), sparsity(cur)
                lam = (target - lo) / (hi - lo) if hi > lo else 1.0
                return {n: round(prev[n] + lam * (cur[n] - prev[n]), 6) for n in layers}
            prev = cur
        raise KarukuError(f"the sweep reaches at most {100 * sparsity(prev):.1f} % sparsity, below {100 * target:g} %",
                          "add higher rates to the sweep")


@torch.no_grad()
def sweep(model: nn.Module, data: TensorDataset, rates=DEFAULT_RATES, method: str = "magnitude",
          exclude: list[str] = (), seed: int = 0) -> Sensitivity:
    """Prune each layer alone at each rate (others intact) and score on `data`; the model is restored."""
    rates = sorted(float(r) for r in rates)
    if not rates or any(not 0 <= r < 1 for r in rates):
        raise KarukuError(f"sweep rates {rates} must lie in [0, 1)", "give e.g. 0.5,0.7,0.9")
    names = prunable(model, list(exclude))
    params = dict(model.named_parameters())
    score_fn = get_score(method)
    base = score(model, data).accuracy
    acc: dict[str, list[float]] = {}
    for n in names:
        saved = params[n].detach().clone()
        s = score_fn(saved, torch.Generator().manual_seed(seed))
        acc[n] = []
        for r in rates:
            params[n].copy_(saved * select.bottom_k(s, select.count(r, s.numel())))
            acc[n].append(score(model, data).accuracy)
        params[n].copy_(saved)
    return Sensitivity(rates, {n: params[n].numel() for n in names}, base, acc)
