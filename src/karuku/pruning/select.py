"""Exact selection: which weights to prune given scores, layer-wise or globally.

Pure functions. Counts are exact: a rate s over n weights prunes round(s·n); ties are
broken by position (stable sort), so equal scores never make the count drift. Weights that
an earlier mask pruned stay pruned (they sort first), so masks only shrink.
"""

from __future__ import annotations

import torch

from karuku.pruning.mask import Mask
from karuku.pruning.targets import check_patterns, matches


def count(rate: float, n: int) -> int:
    """Weights pruned at `rate` out of `n`."""
    return min(n, int(round(rate * n)))


def bottom_k(scores: torch.Tensor, k: int, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask (True = kept) pruning the k lowest scores; entries not in `keep` are pruned first."""
    flat = scores.detach().flatten().double()
    if keep is not None:
        flat = torch.where(keep.flatten(), flat, torch.tensor(float("-inf"), dtype=flat.dtype))
        k = max(k, int((~keep).sum()))
    order = torch.sort(flat, stable=True).indices
    kept = torch.ones(flat.numel(), dtype=torch.bool)
    kept[order[:k]] = False
    return kept.view(scores.shape)


def threshold(scores: torch.Tensor, kept: torch.Tensor) -> tuple[float, float]:
    """(highest pruned score, lowest kept score): the first never exceeds the second."""
    s = scores.detach().flatten().double()
    k = kept.flatten()
    hi = float(s[~k].max()) if (~k).any() else float("-inf")
    lo = float(s[k].min()) if k.any() else float("inf")
    return hi, lo


def layer_rates(names: list[str], rate: float, overrides: dict[str, float]) -> dict[str, float]:
    """The rate of each layer: the first override pattern that matches it, else `rate`."""
    check_patterns(list(overrides), names, "override")
    return {n: next((r for p, r in overrides.items() if matches(n, p)), rate) for n in names}


def layerwise(scores: dict[str, torch.Tensor], rates: dict[str, float], current: Mask | None = None) -> Mask:
    """Prune each layer to its own rate."""
    return Mask({n: bottom_k(s, count(rates[n], s.numel()), current[n] if current and n in current else None)
                 for n, s in scores.items()})


def global_(scores: dict[str, torch.Tensor], rate: float, current: Mask | None = None) -> Mask:
    """One threshold across all layers: the round(rate·N) lowest scores overall are pruned."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().flatten().double() for n in names])
    keep = None
    if current is not None:
        keep = torch.cat([(current[n] if n in current else torch.ones_like(scores[n], dtype=torch.bool)).flatten()
                          for n in names])
    kept = bottom_k(flat, count(rate, flat.numel()), keep)
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = kept[start:start + size].view(scores[n].shape)
        start += size
    return Mask(out)
