"""Train / validation / test splits held in memory as tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

from karuku.data.config import DataConfig
from karuku.data.registry import get_dataset
from karuku.errors import KarukuError


@dataclass(frozen=True)
class DataSplits:
    """The three splits of one dataset, with what a model needs to know about them."""

    name: str
    train: TensorDataset
    val: TensorDataset | None
    test: TensorDataset
    input_shape: tuple[int, ...]
    num_classes: int
    config: DataConfig

    def calibration(self, n: int) -> torch.Tensor:
        """The first `n` training inputs (deterministic), e.g. for quantization calibration."""
        return self.train.tensors[0][:n]


def load_splits(cfg: DataConfig | None = None, **overrides) -> DataSplits:
    """Load a dataset and carve the validation split out of train with a fixed seed."""
    cfg = (cfg or DataConfig()).model_copy(update=overrides) if overrides else (cfg or DataConfig())
    info = get_dataset(cfg.name)
    raw = info.load(cfg)
    x_train, y_train = raw.x_train, raw.y_train
    if cfg.train_limit:
        x_train, y_train = x_train[: cfg.train_limit], y_train[: cfg.train_limit]
    x_test, y_test = raw.x_test, raw.y_test
    if cfg.test_limit:
        x_test, y_test = x_test[: cfg.test_limit], y_test[: cfg.test_limit]
    n = len(y_train)
    if cfg.val_size >= n:
        raise KarukuError(f"val_size {cfg.val_size} leaves no training data ({n} examples)",
                          "lower val_size (--data-val-size)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = perm[: cfg.val_size].sort().values, perm[cfg.val_size :].sort().values
    train = TensorDataset(x_train[train_idx], y_train[train_idx])
    val = TensorDataset(x_train[val_idx], y_train[val_idx]) if cfg.val_size else None
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return DataSplits(cfg.name, train, val, TensorDataset(x_test, y_test), tuple(x_train.shape[1:]),
                      num_classes, cfg)
