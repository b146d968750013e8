"""The flat registry of named datasets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from karuku.data import sources
from karuku.data.config import DataConfig
from karuku.errors import KarukuError, closest


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    load: Callable[[DataConfig], sources.RawData]


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("mnist", "real MNIST, 60k train / 10k test (fetched and verified)", (1, 28, 28), 10,
                    sources.load_mnist),
        DatasetInfo("digits", "scikit-learn 8×8 digits, 1,437 train / 360 test", (1, 8, 8), 10, sources.load_digits),
        DatasetInfo("mnist1d", "MNIST-1D generated offline, 4,000 train / 1,000 test", (1, 40), 10,
                    sources.load_mnist1d),
        DatasetInfo("idx", "your own IDX files (MNIST file names) in --data-path", (1, 28, 28), 10, sources.load_idx),
    )
}


def get_dataset(name: str) -> DatasetInfo:
    """Look a dataset up by name; the error lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = sorted(DATASETS)
        raise KarukuError(f"unknown dataset '{name}'{closest(name, known)}", f"known: {', '.join(known)}") from None
