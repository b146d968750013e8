"""Typed data settings, shared by the Python API, the CLI and recipes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from karuku.config import Config, seed_field


class DataConfig(Config):
    """Which dataset, how validation is carved from train, how inputs are prepared, and optional augmentation."""

    name: str = Field("mnist", description="dataset name (see `karuku data list`) or package.module:factory")
    val_size: int = Field(5000, ge=0, le=100_000_000, description="training examples held out for validation "
                                                                  "(fixed seed)")
    split_seed: int = seed_field("seed of the validation split")
    augment_shift: int = Field(0, ge=0, le=8, description="random translation of training images, up to ±N pixels")
    path: str | None = Field(None, description="the data's file or folder (default: the cache, $KARUKU_DATA)")
    train_limit: int | None = Field(None, gt=0, le=1_000_000_000, description="use only the first N training examples")
    test_limit: int | None = Field(None, gt=0, le=1_000_000_000, description="use only the first N test examples")
    label: str | None = Field(None, description="the label column of a CSV file (or the labels' key in a .npz)")
    targets: Literal["auto", "classes", "values"] = Field(
        "auto", description="labels are class indices or values to regress (auto: integers are classes)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of the examples held out as the test set "
                                 "when the source has no test split of its own (fixed seed)")
    resize: list[int] | None = Field(None, description="resize images to H,W (one number: square)")
    crop: list[int] | None = Field(None, description="then keep the central H,W")
    mean: list[float] | None = Field(None, description="normalise inputs in [0, 1] by this mean (one per channel)")
    std: list[float] | None = Field(None, description="... and this std (default: the training set's own)")
    normalize: bool = Field(True, description="without mean/std: normalise by the training set's statistics")
    color: Literal["auto", "gray", "rgb"] = Field("auto", description="images: decode as grayscale or RGB "
                                                  "(auto: as the first image is)")
    unreadable: Literal["error", "skip"] = Field("error", description="images that cannot be decoded: "
                                                 "stop with their name, or skip them (each named once)")
    stream: bool | None = Field(None, description="read examples from disk as needed instead of into memory "
                                "(default: when they would take over 1 GB)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="arguments of a data factory",
                                   json_schema_extra={"cli": "arg"}, examples=["root=/data/photos"])

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from karuku.data.registry import DATASETS

        return v if ":" in v else DATASETS.check(v)

    @model_validator(mode="after")
    def _pairs(self):
        if (self.mean is None) != (self.std is None):
            raise ValueError("give mean and std together (one value, or one per channel)")
        for what in ("resize", "crop"):
            v = getattr(self, what)
            if v is not None and (len(v) not in (1, 2) or min(v) <= 0):
                raise ValueError(f"{what} takes one or two positive sizes (H,W), got {v}")
        return self
