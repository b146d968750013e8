"""The flat registry of tasks: how the quality of a model's outputs is measured and which budget key judges it.

A task is a small registered pair: `measure(outputs, targets, reference) -> {metric: sum over the batch}`
(sums, so that any amount of data streams through in batches and the mean is the sum over the count) and the
budget key its headline metric is judged by (`max_drop`, or `min_fidelity` for agreement with the
uncompressed model). `targets` are the labels (None when the data has none); `reference` the uncompressed
model's outputs on the same batch (given when the task `needs="baseline"`).

>>> @register_task("hinge", "multi-class hinge loss", [Metric("hinge", "mean hinge loss", higher_is_better=False)])
... def hinge(outputs, targets, reference):
...     return {"hinge": float(torch.nn.functional.multi_margin_loss(outputs, targets, reduction="sum"))}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from karuku.errors import KarukuError
from karuku.registry import Registry

Measure = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], dict[str, float]]


@dataclass(frozen=True)
class Metric:
    """One figure of a task: its direction, and whether it is a fraction shown as a percentage."""

    name: str
    description: str
    higher_is_better: bool = True
    percent: bool = False  # a fraction in [0, 1], shown in %, its changes in points

    @property
    def unit(self) -> str:
        """The unit of a change: percentage points, or the metric's own (empty)."""
        return "pt" if self.percent else ""

    def worse_by(self, base: float, value: float) -> float:
        """How much worse `value` is than `base` (negative: better), in points for a percentage."""
        change = (base - value) if self.higher_is_better else (value - base)
        return 100 * change if self.percent else change

    def show(self, value: float | None) -> str:
        if value is None:
            return "—"
        return f"{100 * value:.2f} %" if self.percent else f"{value:.6g}"

    def oriented(self, value: float) -> float:
        """Higher is better, whatever the metric (for ranking)."""
        return value if self.higher_is_better else -value


@dataclass(frozen=True)
class Task:
    """A quality measure: its metrics (the first is the default headline), the per-batch `measure`, what it
    needs ("labels" or "baseline") and the budget key its headline is judged by."""

    name: str
    description: str
    metrics: tuple[Metric, ...]
    measure: Measure
    needs: str = "labels"
    budget: str = "max_drop"

    def metric(self, name: str | None = None) -> Metric:
        """The metric called `name` (default: the task's headline), with "did you mean" otherwise."""
        if name is None:
            return self.metrics[0]
        for m in self.metrics:
            if m.name == name:
                return m
        known = [m.name for m in self.metrics]
        from karuku.errors import closest

        raise KarukuError(f"task '{self.name}' has no metric '{name}'{closest(name, known)}",
                          f"its metrics: {', '.join(known)}")


TASKS: Registry[Task] = Registry("task")


def register_task(name: str, description: str, metrics: Sequence[Metric], needs: str = "labels",
                  budget: str = "max_drop"):
    """Register `measure(outputs, targets, reference) -> {metric: batch sum}` as task `name`."""
    if needs not in ("labels", "baseline"):
        raise ValueError("needs is 'labels' or 'baseline'")

    def deco(measure: Measure) -> Measure:
        TASKS.register(name, Task(name, description, tuple(metrics), measure, needs, budget))
        return measure

    return deco
