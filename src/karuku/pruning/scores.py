"""Unstructured importance scores: one function per method, in a flat registry.

A score maps a weight tensor to a tensor of the same shape; higher is more important.
Register your own with `@register_score("name")`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from karuku.registry import Registry

ScoreFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SCORES: Registry[ScoreFn] = Registry("pruning method", hint="unstructured methods")


def register_score(name: str):
    """Add a scoring function `(weight, generator) -> scores` to the registry."""
    return SCORES.register(name)


@register_score("magnitude")
def magnitude(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """|w|: small weights go first (Han et al.)."""
    return weight.detach().abs()


@register_score("random")
def random(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform noise: the control that magnitude must beat (lottery tickets)."""
    return torch.rand(weight.shape, generator=generator)


def get_score(name: str) -> ScoreFn:
    """The scoring function called `name`; the error lists the known ones."""
    return SCORES.find(name)
