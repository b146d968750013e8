"""The flat registry of named datasets: one `DatasetInfo` (and its loader) per name.

The built-in datasets register themselves in `karuku.data.sources`, `images` and `tables`; add your own with

>>> @register_dataset("blobs", "three Gaussian blobs", (1, 2), 3)
... def load_blobs(cfg: DataConfig) -> RawData: ...

A loader returns `RawData` (train and test tensors, held in memory) or `Sources` (any torch datasets, read as
needed); a source whose inputs and classes depend on its files registers no shape: they are inferred.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karuku.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset: its name, what it is, one input's shape and its class count (None: inferred from the files)
    and its loader (`DataConfig` → RawData or Sources)."""

    name: str
    description: str
    input_shape: tuple[int, ...] | None
    num_classes: int | None
    load: Callable[[Any], Any]


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(name: str, description: str, input_shape: tuple[int, ...] | None = None,
                     num_classes: int | None = None):
    """Decorate a loader `(DataConfig) -> RawData | Sources`: `DataConfig(name=...)`, `--data NAME` and recipes
    then load it."""

    def deco(load: Callable[[Any], Any]) -> Callable[[Any], Any]:
        shape = tuple(input_shape) if input_shape is not None else None
        DATASETS.register(name, DatasetInfo(name, description, shape, num_classes, load))
        return load

    return deco


def get_dataset(name: str) -> DatasetInfo:
    """Look a dataset up by name; the error lists the known ones."""
    return DATASETS.find(name)
