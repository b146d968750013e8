"""Physical rewrite: slice Conv/Linear/BatchNorm parameters to the kept channels.

Edits are plain data, `{module name: {"out": [kept output channels], "in": [kept inputs]}}`,
so the same function shrinks a model now and, registered as the checkpoint transform
`prune_channels`, rebuilds the shrunk architecture when the checkpoint is loaded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.io.checkpoint import register_transform

TRANSFORM = "prune_channels"
Edits = dict[str, dict[str, list[int]]]


def _param(t: torch.Tensor, requires_grad: bool) -> nn.Parameter:
    return nn.Parameter(t.detach().clone().contiguous(), requires_grad=requires_grad)


@torch.no_grad()
def apply_edits(model: nn.Module, edits: Edits) -> nn.Module:
    """Shrink the named modules of `model` in place; returns `model`."""
    for name, e in edits.items():
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            raise KarukuError(f"channel edit names module '{name}' that the model lacks",
                              "the checkpoint was made for another architecture") from None
        out = torch.tensor(e["out"], dtype=torch.long) if e.get("out") is not None else None
        inn = torch.tensor(e["in"], dtype=torch.long) if e.get("in") is not None else None
        if isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
            w = mod.weight
            depthwise = isinstance(mod, nn.modules.conv._ConvNd) and mod.groups > 1
            if out is not None:
                w = w[out]
            if inn is not None and not depthwise:
                w = w[:, inn]
            mod.weight = _param(w, mod.weight.requires_grad)
            if mod.bias is not None and out is not None:
                mod.bias = _param(mod.bias[out], mod.bias.requires_grad)
            if isinstance(mod, nn.Linear):
                mod.out_features, mod.in_features = w.shape[0], w.shape[1]
            else:
                mod.out_channels = w.shape[0]
                if depthwise:
                    mod.groups = mod.in_channels = w.shape[0]
                else:
                    mod.in_channels = w.shape[1]
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm) and out is not None:
            mod.weight = _param(mod.weight[out], mod.weight.requires_grad)
            mod.bias = _param(mod.bias[out], mod.bias.requires_grad)
            if mod.running_mean is not None:
                mod.running_mean = mod.running_mean[out].clone()
                mod.running_var = mod.running_var[out].clone()
            mod.num_features = len(out)
        else:
            raise KarukuError(f"cannot shrink {type(mod).__name__} '{name}'", "only Conv, Linear and BatchNorm shrink")
    return model


@torch.no_grad()
def zero_channels(model: nn.Module, edits: Edits) -> nn.Module:
    """The reference: keep every shape, zero the channels `apply_edits` would remove.

    Producers lose their filters and biases, BatchNorms their γ and β, so a removed channel
    carries exactly zero through ReLU, pooling, adds and concatenation.
    """
    for name, e in edits.items():
        if e.get("out") is None:
            continue
        mod = model.get_submodule(name)
        drop = torch.ones(mod.weight.shape[0], dtype=torch.bool)
        drop[torch.tensor(e["out"], dtype=torch.long)] = False
        mod.weight[drop] = 0
        if getattr(mod, "bias", None) is not None:
            mod.bias[drop] = 0
    return model


@register_transform(TRANSFORM)
def _replay(model: nn.Module, params: dict[str, Any]) -> nn.Module:
    return apply_edits(model, params["edits"])
