"""`finetune`: more training of the current model (its compression kept by the active hooks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from karuku.pipeline.stages import StageOutput


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(1, gt=0, description="fine-tuning epochs")
    lr: float = Field(0.01, gt=0, description="learning rate")


def apply(model, settings: Settings, ctx) -> StageOutput:
    ctx.finetune(model, settings.epochs, settings.lr, hooks=ctx.active_hooks(model))
    return StageOutput(model, meta={"epochs": settings.epochs}, recover=False)


def backoff(settings: Settings, attempt: int) -> Settings | None:
    return None  # nothing to back off: fine-tuning does not lose accuracy by design
