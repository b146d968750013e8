"""Unstructured importance scores: one function per method, in a flat registry.

A score maps a weight tensor to a tensor of the same shape; higher is more important.
Register your own with `@register_score("name")`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from karuku.errors import KarukuError, closest

ScoreFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SCORES: dict[str, ScoreFn] = {}


def register_score(name: str):
    """Add a scoring function `(weight, generator) -> scores` to the registry."""

    def deco(fn: ScoreFn) -> ScoreFn:
        SCORES[name] = fn
        return fn

    return deco


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
    try:
        return SCORES[name]
    except KeyError:
        known = sorted(SCORES)
        raise KarukuError(f"unknown pruning method '{name}'{closest(name, known)}",
                          f"unstructured methods: {', '.join(known)}") from None
