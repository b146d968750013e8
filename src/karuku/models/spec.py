"""ModelSpec: everything needed to rebuild a model, stored in every checkpoint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from karuku.models.registry import build


class ModelSpec(BaseModel):
    """How to build a model: zoo name or import path, its arguments, input shape and class count."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="zoo name (see `karuku models`) or package.module:factory")
    input_shape: tuple[int, ...] = Field(description="shape of one input, without the batch dimension")
    num_classes: int = Field(gt=0)
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra factory arguments")

    def build(self) -> nn.Module:
        return build(self.name, self.input_shape, self.num_classes, **self.kwargs)
