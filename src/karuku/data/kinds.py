"""What a dataset loader returns: `RawData` (tensors in memory) or `Sources` (torch datasets read as needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class RawData:
    """Train and test tensors of one dataset, inputs shaped (N, C, ...); labels None when unlabelled.

    `normalized`: the loader prepared the inputs itself. Otherwise they are scaled to [0, 1] (images) or left as
    read (features), and `load_splits` applies the declared preprocessing (resize, crop, mean / std) or the
    training set's own statistics.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor | None
    x_test: torch.Tensor | None  # None: `load_splits` holds out `test_fraction` of train
    y_test: torch.Tensor | None
    normalized: bool = True
    classes: tuple[str, ...] | None = None  # class names, index order (CSV labels given as words)


@dataclass(frozen=True)
class Sources:
    """Datasets read as needed (any `torch.utils.data.Dataset`, `IterableDataset` or `DataLoader`): a folder of
    images, a memory-mapped array, a user's own. Examples are `x` or `(x, y)`, already prepared.

    `test` None: `load_splits` holds out `test_fraction` of train (an indexable train set only). `num_classes`
    / `classes`: when the source knows them (else they are read from the datasets' own `classes` attribute or
    from the training labels). `preprocess`: what was applied, recorded with checkpoints.
    """

    train: Any
    test: Any = None
    val: Any = None
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    preprocess: dict[str, Any] | None = None
