"""`TrainState`: what the training loop shows its hooks at every step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from karuku.training.config import TrainConfig
from karuku.training.distributed import World


@dataclass
class TrainState:
    """What hooks see: the model (unwrapped), optimiser, counters and the evaluation history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    total_iterations: int
    world: World
    iteration: int = 0
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any] | None:
        """The evaluation with the lowest validation loss (its iteration is the early-stopping point)."""
        return min(self.history, key=lambda h: h["val_loss"]) if self.history else None
