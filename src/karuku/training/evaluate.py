"""Loss, accuracy and error count of a classifier on a dataset."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class Score:
    """Loss, top-1 accuracy and error count of a model on one dataset."""

    loss: float
    accuracy: float  # fraction in [0, 1]
    errors: int
    total: int

    def as_dict(self) -> dict[str, float | int]:
        return {"loss": self.loss, "accuracy": self.accuracy, "errors": self.errors, "total": self.total}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for all of `x`, in eval mode (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def score(model: nn.Module, data: TensorDataset, batch_size: int = 1000) -> Score:
    """Mean cross-entropy, top-1 accuracy and errors over a whole dataset."""
    x, y = data.tensors
    logits = predict(model, x, batch_size)
    wrong = int((logits.argmax(1) != y).sum())
    loss = float(F.cross_entropy(logits, y))
    return Score(loss, 1 - wrong / len(y), wrong, len(y))
