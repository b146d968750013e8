"""Feature (hint) distillation: a student layer's output, mapped by a learned adapter, mimics a teacher layer's.

A 1×1 convolution matches channel counts of feature maps, a linear layer those of vectors
(FitNets, Romero et al. 2015). Layers are named as in `model.named_modules()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from karuku.errors import KarukuError, closest


def find_layer(model: nn.Module, name: str, role: str) -> nn.Module:
    """The submodule called `name`, or a one-line error listing what exists."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        known = [n for n in modules if n]
        raise KarukuError(f"{role} has no layer '{name}'{closest(name, known)}",
                          f"known: {', '.join(known[:12])}{'…' if len(known) > 12 else ''}")
    return modules[name]


class FeatureTap:
    """Keeps the latest output of one layer (a forward hook); `remove()` detaches it."""

    def __init__(self, layer: nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = layer.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            self.value = output

    def remove(self) -> None:
        self._handle.remove()
        self.value = None


def make_adapter(student_shape: torch.Size, teacher_shape: torch.Size, pair: str) -> nn.Module:
    """Linear for (N, C) features, 1×1 convolution for (N, C, L) and (N, C, H, W) ones."""
    if student_shape[2:] != teacher_shape[2:] or len(student_shape) != len(teacher_shape):
        raise KarukuError(f"hint {pair}: student features {tuple(student_shape[1:])} and teacher features "
                          f"{tuple(teacher_shape[1:])} differ beyond the channel count",
                          "pair layers with the same spatial size")
    cs, ct = student_shape[1], teacher_shape[1]
    if len(student_shape) == 2:
        return nn.Linear(cs, ct)
    if len(student_shape) == 3:
        return nn.Conv1d(cs, ct, 1)
    if len(student_shape) == 4:
        return nn.Conv2d(cs, ct, 1)
    raise KarukuError(f"hint {pair}: features of shape {tuple(student_shape)} are not supported",
                      "pick layers whose outputs are (N, C), (N, C, L) or (N, C, H, W)")


def hint_loss(adapter: nn.Module, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the adapted student features and the teacher's."""
    return F.mse_loss(adapter(student_feature), teacher_feature)
