"""The flat registry of named datasets: one `DatasetInfo` (and its loader) per name.

The built-in datasets register themselves in `karuku.data.sources`; add your own with

>>> @register_dataset("blobs", "three Gaussian blobs", (1, 2), 3)
... def load_blobs(cfg: DataConfig) -> RawData: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karuku.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset: its name, what it is, one input's shape, its class count and its loader (`DataConfig` → RawData)."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    load: Callable[[Any], Any]


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(name: str, description: str, input_shape: tuple[int, ...], num_classes: int):
    """Decorate a loader `(DataConfig) -> RawData`: `DataConfig(name=...)`, `--data NAME` and recipes then load it."""

    def deco(load: Callable[[Any], Any]) -> Callable[[Any], Any]:
        DATASETS.register(name, DatasetInfo(name, description, tuple(input_shape), num_classes, load))
        return load

    return deco


def get_dataset(name: str) -> DatasetInfo:
    """Look a dataset up by name; the error lists the known ones."""
    return DATASETS.find(name)
