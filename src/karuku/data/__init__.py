"""Datasets: a registry of named datasets, splits and batch loaders.

>>> from karuku.data import load_splits, DataConfig
>>> splits = load_splits(DataConfig(name="digits", val_size=200))
"""

from karuku.data import sources  # noqa: F401  (the built-in datasets register themselves)
from karuku.data.checkpoint import for_checkpoint
from karuku.data.config import DataConfig
from karuku.data.fetch import cache_dir, fetch_mnist
from karuku.data.idx import encode_idx, parse_idx, read_idx
from karuku.data.loaders import Loader, make_loader, random_shift
from karuku.data.registry import DATASETS, DatasetInfo, get_dataset, register_dataset
from karuku.data.splits import DataSplits, load_splits

__all__ = [
    "DATASETS", "DataConfig", "DataSplits", "DatasetInfo", "Loader", "cache_dir", "encode_idx", "fetch_mnist",
    "for_checkpoint", "get_dataset", "load_splits", "make_loader", "parse_idx", "random_shift", "read_idx",
    "register_dataset",
]
