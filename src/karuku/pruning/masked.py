"""Masked training: pruned weights stay exactly zero while the foundation's loop fine-tunes.

`MaskedTraining` is a `karuku.training.Hook`. After backward it zeroes the pruned weights'
gradients; after each optimiser step it zeroes the weights again and the optimiser's state
for them (momentum, Adam moments), so neither weight decay nor stale momentum can revive
them. `bake` makes the zeros permanent; the model is then a plain module with no hooks.

>>> train(model, splits, TrainConfig(epochs=3), hooks=[MaskedTraining(mask)])
>>> bake(model, mask)
"""

from __future__ import annotations

import torch
from torch import nn

from karuku.pruning.mask import Mask
from karuku.training.hooks import Hook


class MaskedTraining(Hook):
    """Keep `mask` enforced on the model being trained."""

    def __init__(self, mask: Mask):
        self.mask = mask
        self._params: dict[str, torch.nn.Parameter] = {}

    def on_start(self, state) -> None:
        self.bind(state.model)
        self.enforce(state.optimizer)

    def bind(self, model: nn.Module) -> None:
        """Check the mask fits `model`, remember its parameters and zero the pruned weights."""
        self.mask.check(model)
        params = dict(model.named_parameters())
        self._params = {n: params[n] for n in self.mask}
        self.mask.apply(model)

    def after_backward(self, state) -> None:
        for n, p in self._params.items():
            if p.grad is not None:
                p.grad.mul_(self.mask[n].to(p.grad.dtype))

    def after_step(self, state) -> None:
        self.enforce(state.optimizer)

    @torch.no_grad()
    def enforce(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero pruned weights and, when given, the optimiser's per-weight state for them."""
        for n, p in self._params.items():
            m = self.mask[n].to(p.dtype)
            p.mul_(m)
            if optimizer is not None:
                for buf in optimizer.state.get(p, {}).values():
                    if isinstance(buf, torch.Tensor) and buf.shape == p.shape:
                        buf.mul_(m.to(buf.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t for n, t in self.mask.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            self.mask = Mask(state)


@torch.no_grad()
def bake(model: nn.Module, mask: Mask | None = None) -> nn.Module:
    """Make the zeros permanent and remove pruning machinery; returns the same plain module.

    Also folds `torch.nn.utils.prune` re-parametrisations (`weight_orig` × `weight_mask`)
    into ordinary parameters, so a model pruned with torch's own utility bakes the same way.
    """
    from torch.nn.utils import prune as torch_prune

    for module in model.modules():
        for name in [k[:-5] for k, _ in list(module.named_buffers(recurse=False)) if k.endswith("_mask")]:
            if hasattr(module, f"{name}_orig"):
                torch_prune.remove(module, name)
    if mask is not None:
        mask.check(model)
        mask.apply(model)
    return model
