"""Tasks: the quality measure of a model — classification, regression, fidelity to the uncompressed model, or a
metric of your own — and the budget key that judges it.

>>> from karuku.tasks import TaskConfig, measure_task
>>> r = measure_task(model, splits.test, TaskConfig(name="classification", metric="top5"))
>>> r.value, r.metrics
"""

from karuku.tasks import builtin  # noqa: F401  (the built-in tasks register themselves)
from karuku.tasks.config import TaskConfig
from karuku.tasks.measure import TaskResult, measure_task, resolve
from karuku.tasks.registry import TASKS, Metric, Task, register_task

__all__ = ["TASKS", "Metric", "Task", "TaskConfig", "TaskResult", "measure_task", "register_task", "resolve"]
