"""Structured importance criteria: one function per criterion, in a flat registry.

A criterion scores the channels of one group of coupled channels (`Group`): higher is more important.
Register your own with `@register_criterion("name")`; `PruneConfig(structured=True, method="name")` then
uses it, and recipe validation knows the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from karuku.pruning.structured.graph import ChannelGraph, Seg
from karuku.registry import Registry


@dataclass
class Group:
    """One group of channels removed together, and what touches them: what a criterion scores."""

    model: nn.Module
    graph: ChannelGraph
    root: int  # the group's channel space
    generator: torch.Generator  # shared by all groups, in order (random criteria)

    @property
    def size(self) -> int:
        return self.graph.size[self.root]

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.model.named_modules())

    def producers(self) -> list[str]:
        """Conv / linear layers whose output channels are this group's."""
        return [name for name, space in self.graph.producers.items() if self.graph.find(space) == self.root]

    def over(self, layouts: dict[str, list[Seg]], values: Callable[[str], torch.Tensor]) -> torch.Tensor:
        """Sum, over modules with a per-channel layout (norms, depthwise convs, consumers), of `values(name)` on
        this group's channels."""
        s = torch.zeros(self.size, dtype=torch.double)
        for name, segs in layouts.items():
            start = 0
            for seg in segs:
                if self.graph.find(seg.space) == self.root:
                    s += values(name)[start:start + seg.length]
                start += seg.length
        return s


Criterion = Callable[[Group], torch.Tensor]
CRITERIA: Registry[Criterion] = Registry("structured method", hint="structured methods")


def register_criterion(name: str):
    """Add a criterion `(group) -> per-channel scores` to the registry."""
    return CRITERIA.register(name)


def norm(w: torch.Tensor, p: int) -> torch.Tensor:
    """Per-output-channel L1 (p=1) or L2 (p=2) norm of a weight."""
    w = w.detach().flatten(1).double()
    return w.abs().sum(1) if p == 1 else w.pow(2).sum(1).sqrt()


def in_norm(w: torch.Tensor, segs: list[Seg]) -> torch.Tensor:
    """Squared L2 norm of each input feature's weights (columns of a consumer), in the consumer's layout."""
    w = w.detach().double()
    cols = w.transpose(0, 1).flatten(1).pow(2).sum(1)  # one value per input feature
    out, start = [], 0
    for seg in segs:  # a channel repeated `rep` times (after Flatten) owns `rep` consecutive features
        out.append(cols[start:start + seg.length * seg.rep].view(seg.length, seg.rep).sum(1))
        start += seg.length * seg.rep
    return torch.cat(out)


def _filters(g: Group, p: int, s: torch.Tensor | None = None) -> torch.Tensor:
    mods = g.modules()
    s = torch.zeros(g.size, dtype=torch.double) if s is None else s
    for name in g.producers():
        s += norm(mods[name].weight, p)
    return s + g.over(g.graph.depthwise, lambda name: norm(mods[name].weight, p))


@register_criterion("l1")
def l1(g: Group) -> torch.Tensor:
    """Summed L1 norms of the filters that produce each channel (and the depthwise filters on it)."""
    return _filters(g, 1)


@register_criterion("l2")
def l2(g: Group) -> torch.Tensor:
    """Summed L2 norms of the filters that produce each channel (and the depthwise filters on it)."""
    return _filters(g, 2)


@register_criterion("bn")
def bn(g: Group) -> torch.Tensor:
    """|γ| of each channel's BatchNorms; a group without BatchNorm falls back to L1."""
    mods = g.modules()
    s = g.over(g.graph.norms, lambda name: mods[name].weight.detach().double().abs())
    return s if s.any() else _filters(g, 1, s)


@register_criterion("group")
def group(g: Group) -> torch.Tensor:
    """Squared L2 norm of every weight the channel touches — its filters, depthwise filters, BatchNorm γ and the
    next layers' input weights (Torch-Pruning's group magnitude importance)."""
    mods = g.modules()
    s = torch.zeros(g.size, dtype=torch.double)
    for name in g.producers():
        s += norm(mods[name].weight, 2).pow(2)
    s += g.over(g.graph.depthwise, lambda name: norm(mods[name].weight, 2).pow(2))
    s += g.over(g.graph.norms, lambda name: mods[name].weight.detach().double().pow(2))
    return s + g.over(g.graph.consumers, lambda name: in_norm(mods[name].weight, g.graph.consumers[name]))


@register_criterion("random")
def random(g: Group) -> torch.Tensor:
    """Uniform noise: the control every criterion must beat."""
    return torch.rand(g.size, generator=g.generator, dtype=torch.double)
