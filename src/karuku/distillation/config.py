"""Typed distillation settings, shared by the Python API, the CLI and recipes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from karuku.config import Config
from karuku.training.config import TrainConfig


class DistillConfig(Config):
    """How a student learns from a teacher: the student, temperature, soft/hard mix, optional hints, training."""

    temperature: float = Field(4.0, gt=0, le=1000, description="softmax temperature T of the soft targets "
                                                                "(Hinton: 20)")
    alpha: float = Field(0.9, ge=0, le=1, description="weight α of the soft-target term; 1 − α weighs the labels")
    student: str | None = Field(None, description="the student: a zoo name or package.module:factory (fresh "
                                                   "weights), or a checkpoint to start from")
    student_kwargs: dict[str, Any] = Field(default_factory=dict, description="student factory arguments",
                                           examples=["hidden=[400,400]"], json_schema_extra={"cli": "student_arg"})
    match: Literal["soft-targets", "outputs"] = Field(
        "soft-targets", description="what the student learns: the teacher's softened class probabilities "
        "(Hinton), or its raw outputs by mean squared error (regression, embedding models)")
    hints: dict[str, str] = Field(
        default_factory=dict,
        description="feature distillation: student layer name → teacher layer name, matched by a learned adapter",
        examples=["fc2=fc2"], json_schema_extra={"cli": "hint"})
    hint_weight: float = Field(1.0, ge=0, le=1e6, description="weight of the mean-squared hint loss")
    cache_teacher: bool = Field(
        True, description="compute the teacher's logits once when the training data is not augmented")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the training settings")

    @model_validator(mode="after")
    def _effective(self):
        if self.given("hint_weight") and not self.hints:
            raise ValueError("`hint_weight` applies only with `hints`")
        return self

    @field_validator("hints")
    @classmethod
    def _names(cls, hints: dict[str, str]) -> dict[str, str]:
        for s, t in hints.items():
            if not s or not t:
                raise ValueError("hint layer names must not be empty")
        return hints
