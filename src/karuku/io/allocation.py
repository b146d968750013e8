"""`AllocationBudget`: refuse tensor factory calls beyond a budget of elements while a file's model is built.

A checkpoint or `.krk` file names its architecture in a JSON spec; a hostile or damaged one (a hidden width of
2^30, `num_classes` 2^40) would otherwise allocate gigabytes before its weights are compared with the spec.
Builds from files run inside a budget of what the file holds: a meta-device build would catch it too, but costs
seconds of lazy imports on first use while this runs at normal speed.
"""

from __future__ import annotations

import contextlib
import math
import os

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

    def __init__(self, budget: int, source: str, hint: str = "the spec does not match the stored weights",
                 too_much: str = "building its model spec allocates far more than the file holds"):
        super().__init__()
        self.left, self.source, self.hint, self.too_much = budget, source, hint, too_much

    active = 0  # budgets entered and not left: a file's budget, tighter, then speaks for the build

    def __enter__(self):
        AllocationBudget.active += 1
        return super().__enter__()

    def __exit__(self, *exc):
        AllocationBudget.active -= 1
        return super().__exit__(*exc)

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
                raise KarukuError(f"{self.source}: {self.too_much}", self.hint)
        return func(*args, **kwargs)


def free_memory_bytes() -> int | None:
    """Memory this machine can give now without swapping (`MemAvailable`), or None where it cannot say."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_budget(name: str):
    """The budget of any model build: tensors beyond this machine's free memory (in float32 elements) are one
    KarukuError before the allocator fails (a raw RuntimeError) or the kernel kills the process mid-build."""
    free = None if AllocationBudget.active else free_memory_bytes()
    if free is None:
        return contextlib.nullcontext()
    return AllocationBudget(free // 4, f"model '{name}'", "smaller model arguments (--model-arg), or a machine with "
                            "more memory", f"building it allocates more than this machine's free memory "
                            f"({free / 1e9:.1f} GB)")
