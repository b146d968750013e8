"""Typed settings of weight sharing and packing, shared by the Python API and the CLI."""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator, model_validator

from karuku.config import Config, seed_field
from karuku.training.config import TrainConfig


class ClusterConfig(Config):
    """Weight sharing: k = 2^bits centroids per layer by k-means over the surviving weights; centroid fine-tuning."""

    bits: int = Field(5, ge=1, le=8, description="bits per shared weight (2^bits centroids) for layers "
                                                  "no pattern in layer_bits matches")
    layer_bits: dict[str, int] = Field(default_factory=dict, description="bits per layer by fnmatch pattern on "
                                       "the module name, first match wins (e.g. {'conv*': 8, 'fc*': 5})",
                                       examples=["'conv*=8'"])
    init: Literal["linear", "density", "random"] = Field(
        "linear", description="centroid initialisation: evenly spaced over [min, max] (the paper's best), "
                              "quantiles of the weights, or random weights")
    max_iter: int = Field(300, gt=0, le=100_000, description="k-means iterations at most")
    seed: int = seed_field("seed of the random initialisation")
    finetune: TrainConfig | None = Field(None, description="centroid fine-tuning (Deep Compression 3.3: each "
                                                            "centroid learns from its members' summed gradients)")
    distill: bool = Field(False, description="centroid fine-tuning also learns the soft targets of the model as "
                                             "it was before sharing (self-distillation, T 4, α 0.9)")

    @model_validator(mode="after")
    def _effective(self):
        if self.given("seed") and self.init != "random":
            raise ValueError("`seed` applies to `init` random only")
        if self.distill and self.finetune is None:
            raise ValueError("`distill` teaches centroid fine-tuning: give `finetune` too")
        return self

    @field_validator("layer_bits")
    @classmethod
    def _bits_in_range(cls, v: dict[str, int]) -> dict[str, int]:
        for pattern, b in v.items():
            if not 1 <= b <= 8:
                raise ValueError(f"bits for '{pattern}' must be 1..8, got {b}")
        return v

    def bits_for(self, module_name: str) -> int:
        """Bits of the layer `module_name` (e.g. 'conv1')."""
        for pattern, b in self.layer_bits.items():
            if fnmatch.fnmatchcase(module_name, pattern):
                return b
        return self.bits


class PackConfig(Config):
    """How `pack` codes the positions and streams."""

    index_bits: int | None = Field(None, ge=1, le=8, description="bits per relative index (default: the "
                                                                  "smallest file per layer, trying 1..8)")
    huffman: bool = Field(True, description="Huffman-code the streams where that is smaller")
