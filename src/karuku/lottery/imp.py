"""Iterative magnitude pruning: which weights survive level L, and the two controls' masks.

Per layer, level L keeps (1 − p)^L of the weights (the output layer at its own rate);
each level prunes the lowest-magnitude survivors of the previous level's trained ticket,
so a pruned weight is never revived.
"""

from __future__ import annotations

import torch
from torch import nn

from karuku.pruning import select
from karuku.pruning.mask import Mask
from karuku.pruning.scores import get_score


def level_rates(names: list[str], rate: float, output_rate: float | None, level: int) -> dict[str, float]:
    """Fraction of each layer pruned in total after `level` rounds; the last layer is the output layer."""
    out = {}
    for i, n in enumerate(names):
        r = output_rate if (output_rate is not None and i == len(names) - 1) else rate
        out[n] = 1 - (1 - r) ** level
    return out


def ticket_mask(trained: nn.Module, previous: Mask | None, names: list[str], rates: dict[str, float],
                scope: str) -> Mask:
    """Prune the smallest-magnitude survivors of `trained` to the level's rates."""
    params = dict(trained.named_parameters())
    scores = {n: get_score("magnitude")(params[n].detach()) for n in names}
    if scope == "global":
        total = sum(params[n].numel() for n in names)
        rate = sum(rates[n] * params[n].numel() for n in names) / total
        return select.global_(scores, rate, previous)
    return select.layerwise(scores, rates, previous)


def random_mask(model: nn.Module, like: Mask, seed: int) -> Mask:
    """A random mask with the same number of kept weights per layer as `like`."""
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for n in like:
        scores = get_score("random")(params[n].detach(), gen)
        pruned = like[n].numel() - int(like[n].sum())
        out[n] = select.bottom_k(scores, pruned)
    return Mask(out)

