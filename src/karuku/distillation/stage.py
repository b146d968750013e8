"""Distillation's stage in the compression loop: the current model teaches a smaller student, which replaces it."""

from __future__ import annotations

import torch
from torch import nn

from karuku.distillation.config import DistillConfig
from karuku.distillation.distill import distill
from karuku.models.spec import ModelSpec
from karuku.pipeline.stage import Stage, StageOutput, StageRun, register_stage


@register_stage("distill", DistillConfig)
class DistillStage(Stage):
    """A smaller student learns from the current model and replaces it; back-off trains it longer."""

    needs = ("student",)

    def apply(self, model: nn.Module, cfg: DistillConfig, run: StageRun) -> StageOutput:
        spec = ModelSpec(name=cfg.student, input_shape=run.input_shape, num_classes=run.parent.spec.num_classes,
                         kwargs=cfg.student_kwargs)
        torch.manual_seed(run.seed)
        student = spec.build()
        distill(model, student, run.splits, cfg, verbose=run.verbose)
        return StageOutput(student, spec=spec, meta={"student": cfg.student, "temperature": cfg.temperature,
                                                     "alpha": cfg.alpha})

    def backoff(self, cfg: DistillConfig, round_: int) -> DistillConfig:
        """Train the student twice as long."""
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": cfg.train.epochs * 2})})
