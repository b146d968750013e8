"""A bag of token embeddings (`nn.EmbeddingBag`, mean or sum, pads left out) in integers.

The table is quantized like a weight: int8, symmetric, one scale for the whole table (narrow range, ±127), so the
engine sums the int8 rows of a text's non-pad ids exactly in int32 and requantizes once by the number of ids it
summed: one multiplier per count n = 1 .. L, M_n = s_w / (n · s_y) (mean) or s_w / s_y (sum). A text of pads
alone is a bag of nothing: the output's zero point (PyTorch's bag gives zeros). The fake-quant model computes the
same bag of the same rounded table in float, so the two agree to within one step of the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from karuku.quant.primitives import quantize_multiplier

QMAX = 127


def plain(m: nn.Module) -> bool:
    """A bag the engine computes: mean or sum, no max_norm, no per-sample weights or offsets."""
    return type(m) is nn.EmbeddingBag and m.mode in ("mean", "sum") and m.max_norm is None \
        and not m.include_last_offset


def table_scale(weight: torch.Tensor) -> torch.Tensor:
    """The table's one scale: max |w| / 127 (float32)."""
    return (weight.detach().abs().max().clamp(min=1e-12) / QMAX).to(torch.float32)


def int_table(weight: torch.Tensor) -> torch.Tensor:
    """The table's int8 rows."""
    return torch.clamp(torch.round(weight.detach().float() / table_scale(weight)), -QMAX, QMAX).to(torch.int8)


def fake_forward(bag: nn.EmbeddingBag, ids: torch.Tensor) -> torch.Tensor:
    """The bag on the rounded table (straight-through for training)."""
    w = bag.weight
    rounded = int_table(w).to(w.dtype) * table_scale(w)
    return F.embedding_bag(ids, w + (rounded - w).detach(), mode=bag.mode, padding_idx=bag.padding_idx)


def count_multipliers(s_w: float, s_y: float, length: int, mean: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(m0, shift) int32 [length + 1]: entry n requantizes a sum of n rows (entry 0 is unused)."""
    pairs = [(0, 0)] + [quantize_multiplier(s_w / ((n if mean else 1) * s_y)) for n in range(1, length + 1)]
    return (torch.tensor([p[0] for p in pairs], dtype=torch.int32),
            torch.tensor([p[1] for p in pairs], dtype=torch.int32))
