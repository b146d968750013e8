"""Parameters, nonzeros and MACs, per layer and in total.

MACs come from torch's own FlopCounterMode (one multiply-add = 2 FLOPs), which attributes
each operation to every module on the call stack; a module's own MACs are its total less its
children's, so work done in a module's own forward counts too (a Conv2d subclass that pads
with a child module and calls F.conv2d itself, functional layers in a container). Effective
MACs scale each layer's dense MACs by the density of its weight: what a sparse kernel would need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from karuku.measure import inputs


@dataclass(frozen=True)
class LayerCount:
    """Parameters, nonzeros, dense and effective MACs of one leaf module."""

    name: str
    kind: str
    params: int
    nonzeros: int
    macs: int
    effective_macs: int

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzeros / self.params if self.params else 0.0


def _weight_density(module: nn.Module) -> float:
    w = getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor) or w.numel() == 0:
        return 1.0
    return float((w != 0).sum()) / w.numel()


@torch.no_grad()
def layer_counts(model: nn.Module, input_shape) -> list[LayerCount]:
    """One row per module that has parameters of its own or does MACs itself, in definition order.

    `input_shape`: what the model takes at batch 1 (an input shape, a `inputs.Signature` or example inputs)."""
    sig = inputs.signature(model, input_shape)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            sig.call(model, sig.fixed(1))
    finally:
        model.train(was_training)
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__  # FlopCounterMode names modules "<RootClass>.<path>"
    rows = []
    for name, module in model.named_modules():
        path = f"{root}.{name}" if name else root
        children = sum(_called(flops, f"{path}.{c}", child) for c, child in module.named_children())
        macs = max(flops.get(path, 0) - children, 0) // 2
        own = list(module.parameters(recurse=False)) + [b for b in module.buffers(recurse=False)
                                                         if b.is_floating_point()]
        params = sum(p.numel() for p in module.parameters(recurse=False))
        nonzeros = sum(int((p != 0).sum()) for p in module.parameters(recurse=False))
        if not own and not macs:
            continue
        rows.append(LayerCount(name, type(module).__name__, params, nonzeros, macs,
                               round(macs * _weight_density(module))))
    return rows


def _called(flops: dict[str, int], path: str, module: nn.Module) -> int:
    """FLOPs done inside `module`: its own entry, or, for a container never called itself (a ModuleList a
    parent iterates), the sum over its children."""
    if path in flops:
        return flops[path]
    return sum(_called(flops, f"{path}.{c}", child) for c, child in module.named_children())


@dataclass(frozen=True)
class Totals:
    """Whole-model parameters, nonzeros, dense and effective MACs (per sample)."""

    params: int
    nonzeros: int
    macs: int
    effective_macs: int

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzeros / self.params if self.params else 0.0


def totals(model: nn.Module, input_shape, rows: list[LayerCount] | None = None) -> Totals:
    """Whole-model parameters, nonzeros and MACs per sample (batch 1); `rows`: `layer_counts` already taken."""
    rows = layer_counts(model, input_shape) if rows is None else rows
    params = sum(p.numel() for p in model.parameters())
    nonzeros = sum(int((p != 0).sum()) for p in model.parameters())
    return Totals(params, nonzeros, sum(r.macs for r in rows), sum(r.effective_macs for r in rows))
