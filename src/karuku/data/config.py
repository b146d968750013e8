"""Typed data settings, shared by the Python API, the CLI and recipes."""

from __future__ import annotations

from pydantic import Field, field_validator

from karuku.config import Config, seed_field


class DataConfig(Config):
    """Which dataset, how validation is carved from train, and optional augmentation."""

    name: str = Field("mnist", description="dataset name (see `karuku data list`)")
    val_size: int = Field(5000, ge=0, le=100_000_000, description="training examples held out for validation "
                                                                  "(fixed seed)")
    split_seed: int = seed_field("seed of the validation split")
    augment_shift: int = Field(0, ge=0, le=8, description="random translation of training images, up to ±N pixels")
    path: str | None = Field(None, description="folder of the raw files (default: the cache, $KARUKU_DATA)")
    train_limit: int | None = Field(None, gt=0, le=1_000_000_000, description="use only the first N training examples")
    test_limit: int | None = Field(None, gt=0, le=1_000_000_000, description="use only the first N test examples")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from karuku.data.registry import DATASETS

        return DATASETS.check(v)
