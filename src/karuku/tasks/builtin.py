"""The built-in tasks: classification (top-1, top-5), regression (MSE, MAE) and fidelity to the uncompressed
model (cosine similarity of outputs, top-1 agreement) — the measure for embedding models and unlabelled data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from karuku.errors import KarukuError
from karuku.tasks.registry import Metric, register_task


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1).float()


@register_task("classification", "class labels: top-1 / top-5 accuracy (and cross-entropy)", [
    Metric("top1", "top-1 accuracy", percent=True), Metric("top5", "top-5 accuracy", percent=True),
    Metric("loss", "mean cross-entropy", higher_is_better=False)])
def classification(outputs: torch.Tensor, targets: torch.Tensor, reference=None) -> dict[str, float]:
    """Correct top-1 and top-5 predictions and the summed cross-entropy of one batch."""
    logits = _rows(outputs)
    y = targets.long().reshape(-1)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        bad = int(y.max()) if int(y.max()) >= logits.shape[1] else int(y.min())
        raise KarukuError(f"label {bad} is out of range for a model with {logits.shape[1]} outputs",
                          "the data's classes must be 0 .. outputs-1 (is it the model's dataset?)")
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return {"top1": float((top[:, 0] == y).sum()), "top5": float((top == y[:, None]).any(1).sum()),
            "loss": float(F.cross_entropy(logits, y, reduction="sum"))}


@register_task("regression", "values to predict: mean squared and mean absolute error", [
    Metric("mse", "mean squared error", higher_is_better=False),
    Metric("mae", "mean absolute error", higher_is_better=False)])
def regression(outputs: torch.Tensor, targets: torch.Tensor, reference=None) -> dict[str, float]:
    """Per example: the mean squared and absolute error over its output values; summed over the batch."""
    out, y = _rows(outputs), _rows(targets)
    if out.shape != y.shape:
        raise KarukuError(f"the model gives {out.shape[1]} value(s) per example but the labels have {y.shape[1]}",
                          "give the model one output per target value")
    err = out - y
    return {"mse": float(err.square().mean(1).sum()), "mae": float(err.abs().mean(1).sum())}


@register_task("fidelity", "agreement with the uncompressed model (no labels needed): cosine, top-1 agreement", [
    Metric("cosine", "mean cosine similarity of the outputs to the uncompressed model's"),
    Metric("agreement", "top-1 agreement with the uncompressed model", percent=True)],
    needs="baseline", budget="min_fidelity")
def fidelity(outputs: torch.Tensor, targets, reference: torch.Tensor) -> dict[str, float]:
    """How close the outputs stay to the uncompressed model's on the same inputs."""
    out, ref = _rows(outputs), _rows(reference)
    if out.shape != ref.shape:
        raise KarukuError(f"the model gives {out.shape[1]} outputs per example, the uncompressed model "
                          f"{ref.shape[1]}", "compare a model with its own uncompressed version")
    cos = F.cosine_similarity(out, ref, dim=1, eps=1e-12)
    return {"cosine": float(cos.sum()), "agreement": float((out.argmax(1) == ref.argmax(1)).sum())}
