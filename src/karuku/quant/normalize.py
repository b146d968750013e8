"""Fold an input normalisation into the first convolution, so the model takes pixels.

Real pipelines hold 8-bit pixels; a model trained on (pixel / 255 − mean) / std would have its int8 input
quantized a second time, on a grid that is not the pixels' (per-tensor scale over three channels with
different std), which perturbs the input as much as a second JPEG save. With the normalisation folded into
the first conv (w' = w / std per input channel, b' = b − Σ w · mean / std) and `QuantConfig.input_range`
(0, 1), the int8 input *is* the pixel: scale 1/255, zero point 0, no rounding at all.

Exact except where the conv pads: zero padding of the normalised input is padding with the mean pixel;
the folded conv pads with pixel 0 (black) — the only value an int8 zero point-padded conv can use per
tensor. `padded_border` says how many outputs that touches; the EfficientNet benchmark measures the cost.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from karuku.errors import KarukuError


def fold_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float],
                       conv: str | None = None) -> nn.Module:
    """A copy of `model` that takes un-normalised inputs x where `model` took (x − mean) / std (per channel).

    `conv` names the Conv2d that receives the input (default: the first Conv2d in `model.modules()` order);
    the caller must make sure nothing else reads the input."""
    mean_t, std_t = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
    if mean_t.dim() != 1 or mean_t.shape != std_t.shape or not bool((std_t > 0).all()):
        raise KarukuError(f"mean and std must be two equal-length lists, std > 0 (got {list(mean)}, {list(std)})",
                          "give one mean and one std per input channel, e.g. ImageNet's 0.485,0.456,0.406 and "
                          "0.229,0.224,0.225")
    out = copy.deepcopy(model)
    convs = dict((n, m) for n, m in out.named_modules() if isinstance(m, nn.Conv2d))
    if conv is None:
        if not convs:
            raise KarukuError("no Conv2d to fold the input normalisation into", "fold it only into a CNN")
        conv = next(iter(convs))
    if conv not in convs:
        from karuku.errors import closest

        raise KarukuError(f"no Conv2d named '{conv}'{closest(conv, list(convs))}",
                          "name the convolution that receives the input")
    m = convs[conv]
    if m.groups != 1 or m.in_channels != len(mean_t):
        raise KarukuError(f"'{conv}' takes {m.in_channels} channels in {m.groups} group(s); the normalisation has "
                          f"{len(mean_t)}", "name the first convolution (groups 1, one input channel per mean)")
    with torch.no_grad():
        w = m.weight / std_t.view(1, -1, 1, 1)
        shift = (w * mean_t.view(1, -1, 1, 1)).sum((1, 2, 3))
        m.weight.copy_(w)
        if m.bias is None:
            m.bias = nn.Parameter(-shift)
        else:
            m.bias.sub_(shift)
    return out

