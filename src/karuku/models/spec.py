"""ModelSpec: everything needed to rebuild a model, stored in every checkpoint."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from karuku.models.registry import build

# What a spec may ask for: specs come from files, and evaluating a model feeds it batches of 64 inputs.
MAX_INPUT_DIMS = 6
MAX_INPUT_VALUES = 1 << 20  # values in one input (3×512×512 fits); a batch of 64 is then 256 MiB of float32
MAX_CLASSES = 1 << 20


class ModelSpec(BaseModel):
    """How to build a model: zoo name or import path, its arguments, input shape and class count."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="zoo name (see `karuku models`) or package.module:factory")
    input_shape: tuple[int, ...] = Field(description="shape of one input, without the batch dimension")
    num_classes: int = Field(gt=0, le=MAX_CLASSES)
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra factory arguments")

    @field_validator("name")
    @classmethod
    def _short_name(cls, v: str) -> str:
        if not 0 < len(v) <= 300:
            raise ValueError("a model name has 1 to 300 characters")
        return v

    @field_validator("input_shape")
    @classmethod
    def _bounded_input(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not 1 <= len(v) <= MAX_INPUT_DIMS or any(d < 1 for d in v):
            raise ValueError(f"an input shape has 1 to {MAX_INPUT_DIMS} dimensions, each at least 1 (got {v})")
        if math.prod(v) > MAX_INPUT_VALUES:
            raise ValueError(f"one input of shape {v} holds {math.prod(v):,} values; karuku measures models whose "
                             f"inputs hold at most {MAX_INPUT_VALUES:,}")
        return v

    def build(self) -> nn.Module:
        return build(self.name, self.input_shape, self.num_classes, **self.kwargs)


def spec_for(name: str, input_shape: tuple[int, ...], outputs: int | None,
             kwargs: dict[str, Any] | None = None, inputs=None) -> ModelSpec:
    """The spec of model `name` for data with `outputs` outputs per example (classes or values); None (data
    without labels: a pretrained model brought in as it is) takes the model's own output size, found by
    building it once and running it on one example of `inputs` (what `karuku.measure.inputs.signature` reads:
    by default one float input of `input_shape`, zeros)."""
    if outputs is not None:
        return ModelSpec(name=name, input_shape=tuple(input_shape), num_classes=outputs, kwargs=kwargs or {})
    import torch

    from karuku.measure.inputs import signature

    probe = ModelSpec(name=name, input_shape=tuple(input_shape), num_classes=1, kwargs=kwargs or {}).build().eval()
    sig = signature(probe, inputs if inputs is not None else tuple(input_shape))
    with torch.no_grad():
        out = sig.call(probe, sig.fixed(1))
    return ModelSpec(name=name, input_shape=tuple(input_shape), num_classes=max(1, out[0].numel()),
                     kwargs=kwargs or {})
