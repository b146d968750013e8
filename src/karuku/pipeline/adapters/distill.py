"""`distill`: the current model teaches a smaller student (karuku.distillation), which replaces it."""

from __future__ import annotations

from pydantic import Field

from karuku.distillation import DistillConfig, distill
from karuku.models.spec import ModelSpec
from karuku.pipeline.stages import StageOutput


class Settings(DistillConfig):
    student: str = Field(description="zoo name or package.module:factory of the student")


def apply(model, s: Settings, ctx) -> StageOutput:
    import torch

    spec = ModelSpec(name=s.student, input_shape=ctx.input_shape, num_classes=ctx.splits.num_classes,
                     kwargs=s.student_kwargs)
    torch.manual_seed(ctx.recipe.seed)
    student = spec.build()
    cfg = DistillConfig(**s.model_dump())
    distill(model, student, ctx.splits, cfg, verbose=ctx.verbose)
    return StageOutput(student, spec=spec, meta={"student": s.student, "temperature": cfg.temperature,
                                                 "alpha": cfg.alpha})


def backoff(s: Settings, attempt: int) -> Settings:
    """Train the student twice as long."""
    return s.model_copy(update={"train": s.train.model_copy(update={"epochs": s.train.epochs * 2})})
