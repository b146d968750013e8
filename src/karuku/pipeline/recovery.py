"""Recovery: the loop's own training — fine-tuning a compressed candidate that lost too much accuracy (with
the baseline as its teacher when `self_distill`), and the `finetune` stage that runs it on request."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from karuku.config import Config
from karuku.pipeline.stage import Stage, StageOutput, StageRun, register_stage
from karuku.training.config import TrainConfig


class Recovery(Config):
    """What the loop does when a stage loses too much accuracy."""

    epochs: int = Field(1, ge=0, le=100_000, description="fine-tuning epochs per recovery (0: no recovery)")
    lr: float = Field(0.01, gt=0, le=1000, description="fine-tuning learning rate")
    self_distill: bool = Field(False, description="the baseline teaches the compressed model while it recovers")
    max_rounds: int = Field(2, ge=0, le=20, description="back-off rounds per stage (less aggressive settings)")

    def train_config(self, base: TrainConfig, seed: int, epochs: int | None = None, lr: float | None = None):
        """The recovery's training: the baseline's batch size, optimiser and momentum, a cosine schedule."""
        return TrainConfig(epochs=epochs or self.epochs, lr=lr or self.lr, batch_size=base.batch_size,
                           optimizer=base.optimizer, momentum=base.momentum, seed=seed, schedule="cosine")


def recover(model: nn.Module, splits, cfg: TrainConfig, hooks: list, teacher: nn.Module | None = None,
            verbose: bool = True, match: str = "soft-targets") -> None:
    """Fine-tune `model` in place (its compression kept by `hooks`); with a `teacher` it learns the teacher's
    soft targets (or, `match="outputs"`, its raw outputs) as well as the labels, or alone when the data has
    none (self-distillation: the uncompressed baseline teaches)."""
    if teacher is not None:
        from karuku.distillation import recover as distil
        from karuku.distillation.recovery import RECOVERY

        dcfg = RECOVERY.model_copy(update={"train": cfg, "match": match,
                                           "alpha": RECOVERY.alpha if splits.labelled else 1.0})
        distil(teacher, model, splits, dcfg, hooks=hooks, verbose=verbose)
    else:
        from karuku.training.loop import train

        train(model, splits, cfg, hooks=hooks, verbose=verbose, label="recovery")


class FinetuneConfig(Config):
    """The `finetune` stage: recovery training now, whatever the accuracy."""

    epochs: int = Field(1, gt=0, le=100_000, description="fine-tuning epochs")
    lr: float = Field(0.01, gt=0, le=1000, description="learning rate")


@register_stage("finetune", FinetuneConfig)
class FinetuneStage(Stage):
    """More training of the current model (its compression kept by the earlier stages' hooks)."""

    def apply(self, model: nn.Module, cfg: FinetuneConfig, run: StageRun) -> StageOutput:
        run.recover(model, cfg.epochs, cfg.lr, run.keep_hooks(model))
        return StageOutput(model, meta={"epochs": cfg.epochs}, recover=False)
