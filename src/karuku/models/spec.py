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


def spec_for(name: str, input_shape: tuple[int, ...], outputs: int | None,
             kwargs: dict[str, Any] | None = None) -> ModelSpec:
    """The spec of model `name` for data with `outputs` outputs per example (classes or values); None (data
    without labels: a pretrained model brought in as it is) takes the model's own output size, found by
    building it once and running it on one zero input."""
    if outputs is not None:
        return ModelSpec(name=name, input_shape=tuple(input_shape), num_classes=outputs, kwargs=kwargs or {})
    import torch

    probe = ModelSpec(name=name, input_shape=tuple(input_shape), num_classes=1, kwargs=kwargs or {}).build().eval()
    with torch.no_grad():
        out = probe(torch.zeros(1, *input_shape))
    return ModelSpec(name=name, input_shape=tuple(input_shape), num_classes=max(1, out[0].numel()),
                     kwargs=kwargs or {})
