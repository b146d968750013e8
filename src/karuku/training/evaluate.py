"""Loss, accuracy and error count of a model on a dataset, and the training loss the labels call for.

Class labels (integers) are scored by cross-entropy and top-1 accuracy, values (floats) by mean squared
error; the dataset is read in batches (`karuku.data.batches`), so it may be larger than memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from karuku.data.batches import Inputs, count, feed, iterate, map_inputs
from karuku.errors import KarukuError


@dataclass(frozen=True)
class Score:
    """Loss, top-1 accuracy and error count of a model on one dataset (accuracy None for values)."""

    loss: float
    accuracy: float | None  # fraction in [0, 1]
    errors: int | None
    total: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"loss": self.loss, "accuracy": self.accuracy, "errors": self.errors, "total": self.total}


@torch.no_grad()
def predict(model: nn.Module, x: Inputs, batch_size: int = 1000) -> torch.Tensor:
    """Logits for all of `x` (a tensor, or a tuple or dict of the model's inputs), in eval mode (the model's mode
    is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([feed(model, map_inputs(lambda t, i=i: t[i: i + batch_size], x))
                          for i in range(0, count(x), batch_size)])
    finally:
        model.train(was_training)


def supervised_loss(out: torch.Tensor, y: torch.Tensor | None, label_smoothing: float = 0.0,
                    reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy for class labels, mean squared error for values; unlabelled data cannot train this way."""
    if y is None:
        raise KarukuError("the data has no labels to train on",
                          "recover by distillation from the uncompressed model (recovery: {self_distill: true}), "
                          "or give labelled data")
    if y.is_floating_point():
        target = y.reshape(out.shape) if y.numel() == out.numel() else None
        if target is None:
            raise KarukuError(f"the model gives {tuple(out.shape[1:])} per example but the labels are "
                              f"{tuple(y.shape[1:])}", "give the model one output per target value")
        loss = F.mse_loss(out, target.to(out.dtype), reduction="none").reshape(len(out), -1).mean(1)
        return loss.mean() if reduction == "mean" else loss.sum()
    return F.cross_entropy(out, y, label_smoothing=label_smoothing, reduction=reduction)


@torch.no_grad()
def score(model: nn.Module, data, batch_size: int = 1000) -> Score:
    """Mean loss, and for class labels top-1 accuracy and errors, over a whole dataset (read in batches)."""
    was_training = model.training
    model.eval()
    total, loss, wrong, classes = 0, 0.0, 0, True
    try:
        for x, y in iterate(data, batch_size):
            out = feed(model, x)
            loss += float(supervised_loss(out, y, reduction="sum"))
            classes = not y.is_floating_point()
            if classes:
                wrong += int((out.argmax(1) != y).sum())
            total += count(x)
    finally:
        model.train(was_training)
    if not total:
        raise KarukuError("cannot score on an empty dataset", "give at least one example")
    if not classes:
        return Score(loss / total, None, None, total)
    return Score(loss / total, 1 - wrong / total, wrong, total)
