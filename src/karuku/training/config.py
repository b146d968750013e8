"""Typed training settings, shared by the Python API, the CLI and recipes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from karuku.config import Config, seed_field


class TrainConfig(Config):
    """How to train: optimiser, learning-rate schedule, length, batch, seed, evaluation cadence."""

    epochs: int = Field(10, ge=0, le=100_000, description="passes over the training set (0: no training, the "
                        "weights as given)")
    iterations: int | None = Field(None, gt=0, le=1_000_000_000,
                                   description="train for exactly this many iterations instead of epochs")
    batch_size: int = Field(64, gt=0, le=1_000_000, description="global batch size (split across processes)")
    optimizer: Literal["sgd", "adam", "adamw"] = Field("sgd", description="optimiser")
    lr: float = Field(0.01, gt=0, le=1000, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")
    schedule: Literal["constant", "cosine", "step"] = Field(
        "cosine", description="learning-rate schedule over the run (step: ×0.1 at 50 % and 75 %)")
    warmup_iterations: int = Field(0, ge=0, le=1_000_000_000, description="linear learning-rate warm-up")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float | None = Field(
        None, gt=0, description="clip the global gradient norm to this before each step (none: no clipping)")
    seed: int = seed_field("seed of data order, dropout and augmentation")
    eval_every: int = Field(0, ge=0, le=1_000_000_000,
                            description="evaluate on validation every N iterations (0: every epoch)")
    eval_batch_size: int = Field(1000, gt=0, le=1_000_000, description="batch size of validation scoring")

    @model_validator(mode="after")
    def _check(self):
        # settings that cannot take effect are refused, not ignored
        if self.optimizer != "sgd" and (self.nesterov or self.given("momentum")):
            raise ValueError(f"`{'nesterov' if self.nesterov else 'momentum'}` applies to the sgd `optimizer` only")
        if self.iterations is not None and self.given("epochs"):
            raise ValueError(f"`epochs` has no effect while `iterations` is set ({self.iterations:,}); give one of "
                             "them")
        return self
