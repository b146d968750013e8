"""The distillation loss of Hinton, Vinyals and Dean (2015), as a plain nn.Module any loop can use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from karuku.errors import KarukuError


def check_temperature_alpha(temperature: float, alpha: float) -> None:
    """Raise a one-line KarukuError for T ≤ 0 or α outside [0, 1]."""
    if not temperature > 0:  # also catches NaN
        raise KarukuError(f"temperature must be > 0, got {temperature}", "use e.g. --temperature 4 (Hinton: 20)")
    if not 0 <= alpha <= 1:
        raise KarukuError(f"alpha must be in [0, 1], got {alpha}",
                          "alpha weighs the soft targets; 1 - alpha weighs the hard labels")


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch.

    The T² keeps the soft targets' gradients at the same scale as the hard labels' when T
    changes (their magnitude falls as 1/T²), so α means the same thing at every temperature.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


class DistillationLoss(nn.Module):
    """α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − α)·CE(student, labels).

    `match="outputs"`: α·MSE(student, teacher) + (1 − α)·(the labels' loss) instead — for models whose
    outputs are not class scores (regression, embeddings), where softened probabilities mean nothing.

    >>> loss_fn = DistillationLoss(temperature=4.0, alpha=0.9)
    >>> loss = loss_fn(student(x), teacher(x).detach(), y)
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9, match: str = "soft-targets"):
        super().__init__()
        check_temperature_alpha(temperature, alpha)
        if match not in ("soft-targets", "outputs"):
            raise KarukuError(f"unknown distillation match '{match}'", "use soft-targets or outputs")
        self.temperature, self.alpha, self.match = float(temperature), float(alpha), match

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """The loss for one batch; `labels` may be None only when α = 1."""
        if student_logits.shape != teacher_logits.shape:
            raise KarukuError(f"student outputs {tuple(student_logits.shape)} but teacher outputs "
                              f"{tuple(teacher_logits.shape)}", "both models must predict the same classes")
        if self.match == "soft-targets" and student_logits.dim() != 2:
            raise KarukuError(f"distillation expects logits of shape (batch, classes), "
                              f"got {tuple(student_logits.shape)}", "match outputs instead (match: outputs)")
        loss = student_logits.new_zeros(())
        if self.alpha > 0:
            teacher = teacher_logits.detach()
            term = (soft_target_loss(student_logits, teacher, self.temperature) if self.match == "soft-targets"
                    else F.mse_loss(student_logits, teacher))
            loss = loss + self.alpha * term
        if self.alpha < 1:
            if labels is None:
                raise KarukuError("labels are needed when alpha < 1", "pass labels, or use alpha=1")
            from karuku.training.evaluate import supervised_loss

            loss = loss + (1 - self.alpha) * supervised_loss(student_logits, labels)
        return loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}, alpha={self.alpha:g}, match={self.match}"
