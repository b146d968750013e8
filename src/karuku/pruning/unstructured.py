"""Unstructured pruning: score every prunable weight, select exactly, return a Mask."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from karuku.pruning import select
from karuku.pruning.config import PruneConfig
from karuku.pruning.mask import Mask
from karuku.pruning.scores import get_score
from karuku.pruning.targets import prunable


def compute_mask(model: nn.Module, cfg: PruneConfig, current: Mask | None = None,
                 at: Callable[[float], float] = lambda rate: rate) -> Mask:
    """The mask `cfg` asks for on `model`'s current weights, never reviving what `current` pruned.

    `at` maps a final rate to the rate for now (schedules use it; per-layer overrides follow).
    """
    names = prunable(model, cfg.exclude)
    if current is not None:
        current.check(model)
    params = dict(model.named_parameters())
    score_fn = get_score(cfg.method)
    gen = torch.Generator().manual_seed(cfg.seed)
    scores = {n: score_fn(params[n], gen) for n in names}
    if cfg.scope == "global":
        mask = select.global_(scores, at(cfg.sparsity), current)
    else:
        rates = select.layer_rates(names, cfg.sparsity, cfg.overrides)
        mask = select.layerwise(scores, {n: at(r) for n, r in rates.items()}, current)
    return mask & current if current is not None else mask
