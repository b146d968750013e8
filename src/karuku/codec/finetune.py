"""Centroid fine-tuning on karuku's training loop (Deep Compression, section 3.3).

Each centroid's gradient is the sum of its members' gradients; the weights' own gradients are
then dropped (so the optimiser leaves them alone) and after every step each weight is set back
to its centroid, pruned weights to exactly 0. Assignments never change.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from karuku.training.hooks import Hook
from karuku.training.state import TrainState


class Shared(Protocol):
    """What the hook needs of `karuku.codec.sharing.WeightSharing`: per-layer codebooks, and writing them back."""

    layers: dict[str, Any]  # module name -> SharedLayer (centroids, assign)

    def apply(self, model: nn.Module) -> None: ...


class CentroidTuning(Hook):
    """Trains the codebooks of a `WeightSharing` instead of the shared weights."""

    def __init__(self, sharing: Shared):
        self.sharing = sharing
        self.centroids = {n: torch.nn.Parameter(x.centroids.clone()) for n, x in sharing.layers.items()}
        self._members = {n: (x.assign >= 0) for n, x in sharing.layers.items()}

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.centroids.values())

    def on_start(self, state: TrainState) -> None:
        self._write(state)

    def after_backward(self, state: TrainState) -> None:
        modules = dict(state.model.named_modules())
        for name, layer in self.sharing.layers.items():
            w = modules[name].weight
            c = self.centroids[name]
            grad = torch.zeros_like(c)
            if w.grad is not None:
                keep = self._members[name]
                grad.index_add_(0, layer.assign[keep], w.grad[keep].to(c.dtype))
            c.grad = grad
            w.grad = None  # the optimiser skips parameters without a gradient

    def after_step(self, state: TrainState) -> None:
        self._write(state)

    @torch.no_grad()
    def _write(self, state: TrainState) -> None:
        for name, c in self.centroids.items():
            self.sharing.layers[name].centroids = c.detach().clone()
        self.sharing.apply(state.model)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: c.detach().clone() for n, c in self.centroids.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, t in state.items():
                self.centroids[n].copy_(t)
