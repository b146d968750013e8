"""Hooks: how a technique joins the training loop without copying it.

A hook overrides only what it needs. Masks zero gradients and weights after each step,
fake quantization changes the model before training, distillation replaces the loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from karuku.training.state import TrainState


class Hook:
    """No-op base; every method is optional."""

    def on_start(self, state: TrainState) -> None:
        """Before the first iteration (also after a resume)."""

    def loss(self, state: TrainState, x: torch.Tensor, y: torch.Tensor, output: torch.Tensor) -> torch.Tensor | None:
        """Return a loss to replace the default cross-entropy, or None to keep it."""
        return None

    def after_backward(self, state: TrainState) -> None:
        """Gradients exist; the optimiser has not stepped yet."""

    def after_step(self, state: TrainState) -> None:
        """The optimiser stepped; `state.iteration` counts this step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """At the end of every epoch, before the resume state is written."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Extra trainable parameters (e.g. a distillation adapter)."""
        return []

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to save in the resume state."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state_dict` returned."""
