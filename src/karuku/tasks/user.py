"""A user's own metric, named `package.module:function` — imported only when the user names it.

The function takes `(outputs, targets)` — or `(outputs, targets, reference)` to compare with the uncompressed
model's outputs — for one batch and returns the batch's mean as a number; karuku averages it over all batches
weighted by their size. Whether higher is better is the user's to say (`higher_is_better`).
"""

from __future__ import annotations

import inspect
import math

import torch

from karuku.errors import KarukuError
from karuku.tasks.registry import Metric, Task


def user_task(name: str, higher_is_better: bool = True) -> Task:
    """The task of the metric function `name` (package.module:function)."""
    from karuku.models.registry import resolve_factory

    fn = resolve_factory(name, what="metric")
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    with_reference = len(params) >= 3
    short = name.rpartition(":")[2]

    def measure(outputs: torch.Tensor, targets, reference) -> dict[str, float]:
        args = (outputs, targets, reference) if with_reference else (outputs, targets)
        try:
            value = fn(*args)
        except KarukuError:
            raise
        except Exception as exc:  # the user's code failed: one line that says where
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise KarukuError(f"metric '{name}' failed: {type(exc).__name__}: {first}",
                              "run it in Python on a batch to see the traceback (or karuku --debug)") from None
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise KarukuError(f"metric '{name}' returned {type(value).__name__}, not a number",
                              "return the batch's mean as a float (or a one-element tensor)") from None
        if not math.isfinite(v):
            raise KarukuError(f"metric '{name}' returned {v} on a batch of {len(outputs)} examples",
                              "make it return a finite number (guard divisions by zero, empty batches)")
        return {short: v * len(outputs)}

    metric = Metric(short, f"your metric {name}", higher_is_better=higher_is_better)
    return Task(name, f"your metric {name}", (metric,), measure, "baseline" if with_reference else "labels")
