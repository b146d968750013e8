"""Typed settings of a lottery-ticket experiment (Frankle & Carbin), shared by API, CLI and folder hash."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from karuku.config import Config, seed_field
from karuku.data.config import DataConfig
from karuku.training.config import TrainConfig

CONTROLS = ("reinit", "random-mask")


def paper_training() -> TrainConfig:
    """LeNet-300-100 in the paper: Adam 1.2e-3, batch 60, 50K iterations, validation every 100."""
    return TrainConfig(optimizer="adam", lr=1.2e-3, batch_size=60, iterations=50_000, schedule="constant",
                       eval_every=100)


class LotteryConfig(Config):
    """Iterative magnitude pruning with rewinding, and its controls."""

    model: str = Field("lenet300", description="zoo name or package.module:factory")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="model factory arguments",
                                         examples=["hidden=[300,100]"], json_schema_extra={"cli": "model_arg"})
    data: DataConfig = Field(default_factory=DataConfig)
    levels: int = Field(20, ge=1, le=60, description="pruning rounds after the dense run")
    rate: float = Field(0.2, gt=0, lt=1, description="fraction of the surviving weights pruned per round")
    output_rate: float | None = Field(0.1, gt=0, lt=1, description="rate of the output layer (None: same rate)")
    scope: Literal["layer", "global"] = Field("layer", description="per-layer rates or one global threshold")
    rewind: int = Field(0, ge=0, le=1_000_000_000, description="reset survivors to their values at this iteration "
                                                                "(0: init)")
    controls: list[str] = Field(default_factory=lambda: list(CONTROLS), description="reinit, random-mask ('' for "
                                                                                       "none)")
    trials: int = Field(1, ge=1, le=20, description="independent seeds")
    seed: int = seed_field("seed of the first trial")
    train: TrainConfig = Field(default_factory=paper_training)

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from karuku.models.registry import check_name

        return check_name(v)

    @field_validator("controls")
    @classmethod
    def _controls(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CONTROLS]
        if bad:
            raise ValueError(f"unknown control {bad[0]!r}; allowed: {', '.join(CONTROLS)}")
        return list(dict.fromkeys(v))
