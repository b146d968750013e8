"""`AllocationBudget`: refuse tensor factory calls beyond a budget of elements while a file's model is built.

A checkpoint or `.krk` file names its architecture in a JSON spec; a hostile or damaged one (a hidden width of
2^30, `num_classes` 2^40) would otherwise allocate gigabytes before its weights are compared with the spec.
Builds from files run inside a budget of what the file holds: a meta-device build would catch it too, but costs
seconds of lazy imports on first use while this runs at normal speed.
"""

from __future__ import annotations

import math

import torch
from torch.overrides import TorchFunctionMode

from karuku.errors import KarukuError

SLACK = 1 << 22  # elements a build may allocate beyond twice the file's: buffers, scratch tensors


def budget_for(elements: int) -> int:
    """The allocation budget of a model whose file holds `elements` tensor elements."""
    return 2 * elements + SLACK


class AllocationBudget(TorchFunctionMode):
    """Refuse tensor factory calls (torch.empty, zeros, ...) beyond a budget of elements (one KarukuError)."""

    FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn,
                           torch.empty_strided})

    def __init__(self, budget: int, source: str, hint: str = "the spec does not match the stored weights"):
        super().__init__()
        self.left, self.source, self.hint = budget, source, hint

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FACTORIES:
            size = kwargs.get("size", args[0] if args and not isinstance(args[0], int) else args)
            if func is torch.full and args:
                size = args[0]
            try:
                numel = math.prod(int(d) for d in size)
            except (TypeError, ValueError):
                numel = 0
            if numel < 0:
                raise KarukuError(f"{self.source}: its model spec asks for a tensor of negative size", self.hint)
            self.left -= numel
            if self.left < 0:
                raise KarukuError(f"{self.source}: building its model spec allocates far more than the file holds",
                                  self.hint)
        return func(*args, **kwargs)
