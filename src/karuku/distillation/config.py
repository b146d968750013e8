"""Typed distillation settings, shared by the Python API, the CLI and recipes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from karuku.errors import KarukuError
from karuku.training.config import TrainConfig


class DistillConfig(BaseModel):
    """How a student learns from a teacher: temperature, soft/hard mix, optional hints, training."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(4.0, gt=0, description="softmax temperature T of the soft targets (> 0; Hinton: 20)")
    alpha: float = Field(0.9, ge=0, le=1, description="weight α of the soft-target term; 1 − α weighs the labels")
    hints: dict[str, str] = Field(
        default_factory=dict,
        description="feature distillation: student layer name → teacher layer name, matched by a learned adapter")
    hint_weight: float = Field(1.0, ge=0, description="weight of the mean-squared hint loss")
    cache_teacher: bool = Field(
        True, description="compute the teacher's logits once when the training data is not augmented")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the training settings")

    def __init__(self, **data):
        # one line naming the setting, as for every other karuku input, instead of pydantic's report
        try:
            super().__init__(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "DistillConfig"
            raise KarukuError(f"invalid distillation setting '{where}': {err['msg']}",
                              "temperature > 0, alpha in [0, 1]; see `karuku distill --help`") from None

    @field_validator("hints")
    @classmethod
    def _names(cls, hints: dict[str, str]) -> dict[str, str]:
        for s, t in hints.items():
            if not s or not t:
                raise ValueError("hint layer names must not be empty")
        return hints
