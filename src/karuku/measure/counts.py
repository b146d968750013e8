"""Parameters, nonzeros and MACs, per layer and in total.

MACs come from torch's own FlopCounterMode (one multiply-add = 2 FLOPs); per-layer
figures are read off the leaf modules it attributes them to. Effective MACs scale each
layer's dense MACs by the density of its weight: what a sparse kernel would need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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
def layer_counts(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerCount]:
    """One row per leaf module that has parameters or does MACs, in definition order."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    flops = counter.get_flop_counts()
    root = type(model).__name__  # FlopCounterMode names modules "<RootClass>.<path>"
    rows = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        own = list(module.parameters(recurse=False)) + [b for b in module.buffers(recurse=False)
                                                         if b.is_floating_point()]
        params = sum(p.numel() for p in module.parameters(recurse=False))
        nonzeros = sum(int((p != 0).sum()) for p in module.parameters(recurse=False))
        macs = sum(flops.get(f"{root}.{name}", {}).values()) // 2 if name else 0
        if not own and not macs:
            continue
        rows.append(LayerCount(name, type(module).__name__, params, nonzeros, macs,
                               round(macs * _weight_density(module))))
    return rows


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


def totals(model: nn.Module, input_shape: tuple[int, ...], rows: list[LayerCount] | None = None) -> Totals:
    """Whole-model parameters, nonzeros and MACs per sample (batch 1); `rows`: `layer_counts` already taken."""
    rows = layer_counts(model, input_shape) if rows is None else rows
    params = sum(p.numel() for p in model.parameters())
    nonzeros = sum(int((p != 0).sum()) for p in model.parameters())
    return Totals(params, nonzeros, sum(r.macs for r in rows), sum(r.effective_macs for r in rows))
