"""Datasets: a registry of named datasets and sources, splits, batches and loaders.

>>> from karuku.data import load_splits, DataConfig
>>> splits = load_splits(DataConfig(name="digits", val_size=200))
>>> splits = load_splits(DataConfig(name="images", path="photos/", resize=[32, 32]))
>>> splits = from_torch(my_train_set, my_test_set, val_size=0)
"""

from karuku.data import images, sources, tables  # noqa: F401  (the built-in datasets register themselves)
from karuku.data.batches import first_inputs, iterate
from karuku.data.checkpoint import for_checkpoint
from karuku.data.config import DataConfig
from karuku.data.fetch import REMOTES, cache_dir, fetch_dataset, fetch_mnist
from karuku.data.idx import encode_idx, parse_idx, read_idx
from karuku.data.kinds import RawData, Sources
from karuku.data.loaders import Loader, make_loader, random_shift
from karuku.data.registry import DATASETS, DatasetInfo, get_dataset, register_dataset
from karuku.data.splits import DataSplits, from_torch, load_splits

__all__ = [
    "DATASETS", "REMOTES", "DataConfig", "DataSplits", "DatasetInfo", "Loader", "RawData", "Sources", "cache_dir",
    "encode_idx", "fetch_dataset", "fetch_mnist", "first_inputs", "for_checkpoint", "from_torch", "get_dataset",
    "iterate", "load_splits", "make_loader", "parse_idx", "random_shift", "read_idx", "register_dataset",
]
