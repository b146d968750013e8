"""`measure_task`: run a model over a dataset in batches and reduce its outputs to the task's metrics."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from karuku.data.batches import count, feed, iterate
from karuku.errors import KarukuError
from karuku.tasks.config import TaskConfig
from karuku.tasks.registry import TASKS, Metric, Task

DEFAULT_TASKS = {"classes": "classification", "values": "regression", "none": "fidelity"}  # data's targets → task


@dataclass(frozen=True)
class TaskResult:
    """The task's figures (means over `total` examples) and its headline metric."""

    task: str
    metric: str
    metrics: dict[str, float]
    total: int

    @property
    def value(self) -> float:
        return self.metrics[self.metric]


def resolve(task: TaskConfig | Task | str | None, targets: str = "classes") -> tuple[Task, Metric]:
    """The task (a user's metric is imported here) and the metric its budget judges; None: the task the data
    suggests (classes: classification, values: regression, no labels: fidelity)."""
    if isinstance(task, Task):
        return task, task.metric()
    if task is None or isinstance(task, str):
        task = TaskConfig(name=task or DEFAULT_TASKS[targets])
    elif task.name is None:  # settings for the data's own task (e.g. only a metric)
        task = task.model_copy(update={"name": DEFAULT_TASKS[targets]})
    if ":" in task.name:  # a user's metric: whoever passes it here named it, or checked its trust (`task_for`)
        from karuku.tasks.user import user_task

        t = user_task(task.name, task.higher_is_better)
        return t, t.metric()
    t = TASKS.find(task.name)
    return t, t.metric(task.metric)


@torch.no_grad()
def measure_task(model: nn.Module, dataset, task: TaskConfig | Task | str | None = None,
                 reference: nn.Module | None = None, batch_size: int = 1000, targets: str = "classes") -> TaskResult:
    """The task's metrics of `model` on all of `dataset` (streamed in batches); `reference`: the uncompressed
    model, for tasks that compare with it."""
    t, metric = resolve(task, targets)
    if t.needs == "baseline" and reference is None:
        raise KarukuError(f"task '{t.name}' compares with the uncompressed model, and none was given",
                          "pass --task-baseline BASE.safetensors (the loop uses its own baseline)")
    was = model.training, (reference.training if reference is not None else None)
    model.eval()
    if reference is not None:
        reference.eval()
    sums: dict[str, float] = {}
    total = 0
    try:
        for x, y in iterate(dataset, batch_size):
            if y is None and t.needs == "labels":
                raise KarukuError(f"task '{t.name}' needs labels and the data has none",
                                  "use --task fidelity (agreement with the uncompressed model)")
            ref = feed(reference, x) if reference is not None and t.needs == "baseline" else None
            for k, v in t.measure(feed(model, x), y, ref).items():
                sums[k] = sums.get(k, 0.0) + v
            total += count(x)
    finally:
        model.train(was[0])
        if reference is not None:
            reference.train(was[1])
    if not total:
        raise KarukuError("the test set is empty", "give test examples (check --data-test-limit, the data path)")
    return TaskResult(t.name, metric.name, {k: v / total for k, v in sums.items()}, total)
