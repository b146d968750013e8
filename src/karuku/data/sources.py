"""The built-in datasets and IDX files of any shape: each loader registers itself and returns `RawData`.

Images come back scaled to [0, 1]; `load_splits` then prepares them (declared mean / std, or the training
set's statistics). Other sources: `karuku.data.images` (folders of images), `karuku.data.tables` (.npz /
.npy / CSV), `karuku.data.factory` (a user's own datasets by import path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from karuku.data.config import DataConfig
from karuku.data.fetch import FASHION_MNIST, fetch_dataset, fetch_mnist
from karuku.data.idx import read_idx
from karuku.data.kinds import RawData, Sources
from karuku.data.registry import register_dataset
from karuku.errors import KarukuError

__all__ = ["RawData", "Sources", "idx_arrays"]

# file stems, in the order they are looked for: MNIST's own names first, then the usual variants
_STEMS = {"train": ("train",), "test": ("t10k", "test")}


def _find(folder: Path, split: str, what: str) -> Path | None:
    for stem in _STEMS[split]:
        hits = sorted(p for p in folder.glob(f"{stem}-{what}*") if p.is_file())
        if hits:
            return hits[0]
    return None


def _inputs(a: np.ndarray, path: Path) -> torch.Tensor:
    """(N, H, W) images get a channel; (N, F) features and (N, C, H, W) stay; uint8 pixels scale to [0, 1]."""
    if a.ndim < 2:
        raise KarukuError(f"{path}: IDX inputs of shape {a.shape} have no example dimension",
                          "the images file holds (N, ...) examples")
    if a.ndim == 3:
        a = a[:, None]
    scale = 255.0 if a.dtype == np.uint8 else 1.0
    return torch.from_numpy(a / scale)  # float64 here: the statistics come out as they always have


def idx_arrays(folder: Path) -> RawData:
    """Train and test IDX files of any shape and class count: `train-images*` / `train-labels*` and
    `t10k-*` or `test-*` (plain or .gz); without a labels file the split is unlabelled."""
    if not folder.is_dir():
        raise KarukuError(f"{folder} is not a folder", "--data-path must name the folder holding the IDX files")
    out = {}
    for split in ("train", "test"):
        images = _find(folder, split, "images")
        if images is None:
            raise KarukuError(f"{folder}: no {'/'.join(s + '-images*' for s in _STEMS[split])} file",
                              "name the files like MNIST's: train-images-idx3-ubyte, t10k-labels-idx1-ubyte, ...")
        x = read_idx(images)
        labels = _find(folder, split, "labels")
        y = read_idx(labels) if labels is not None else None
        if y is not None and (y.ndim != 1 or len(y) != len(x)):
            raise KarukuError(f"{labels}: {y.shape} labels for {len(x)} examples in {images.name}",
                              "the labels file holds one label per example")
        out[split] = (_inputs(x, images), torch.from_numpy(y.astype(np.int64)) if y is not None else None)
    return RawData(out["train"][0], out["train"][1], out["test"][0], out["test"][1], normalized=False)


@register_dataset("mnist", "real MNIST, 60k train / 10k test (fetched and verified)", (1, 28, 28), 10)
def load_mnist(cfg: DataConfig) -> RawData:
    """Real MNIST: 60k train / 10k test, 1×28×28, fetched and verified on first use."""
    return idx_arrays(fetch_mnist(Path(cfg.path) if cfg.path else None))


@register_dataset("fashion-mnist", "real Fashion-MNIST (Zalando), 60k train / 10k test (fetched and verified)",
                  (1, 28, 28), 10)
def load_fashion_mnist(cfg: DataConfig) -> RawData:
    """Fashion-MNIST: 60k train / 10k test clothing images, 1×28×28, 10 classes, fetched and verified on first use."""
    return idx_arrays(fetch_dataset(FASHION_MNIST, Path(cfg.path) if cfg.path else None))


@register_dataset("idx", "your own IDX files of any shape and class count in --data-path")
def load_idx(cfg: DataConfig) -> RawData:
    """A user's own IDX files in `cfg.path` (see `idx_arrays`)."""
    if not cfg.path:
        raise KarukuError("dataset 'idx' needs a folder", "pass --data-path DIR holding the IDX files")
    return idx_arrays(Path(cfg.path))


@register_dataset("digits", "scikit-learn 8×8 digits, 1,437 train / 360 test", (1, 8, 8), 10)
def load_digits(cfg: DataConfig) -> RawData:
    """scikit-learn's 8×8 digits (1,797 images): a fixed 80/20 train/test split."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = bunch.images.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(1234).permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = order[:cut], order[cut:]
    return RawData(torch.from_numpy(x[tr][:, None]), torch.from_numpy(y[tr]), torch.from_numpy(x[te][:, None]),
                   torch.from_numpy(y[te]), normalized=False)


@register_dataset("mnist1d", "MNIST-1D generated offline, 4,000 train / 1,000 test", (1, 40), 10)
def load_mnist1d(cfg: DataConfig) -> RawData:
    """MNIST-1D (Greydanus 2020) generated offline with its defaults: 4,000 train / 1,000 test, length 40."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # the generator seeds numpy's global RNG; leave it as we found it
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    x_train = torch.from_numpy(data["x"].astype(np.float32))[:, None]
    x_test = torch.from_numpy(data["x_test"].astype(np.float32))[:, None]
    return RawData(x_train, torch.from_numpy(data["y"].astype(np.int64)),
                   x_test, torch.from_numpy(data["y_test"].astype(np.int64)))
