"""The built-in datasets: each loader returns normalised float tensors and int64 labels, and registers itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from karuku.data.config import DataConfig
from karuku.data.fetch import MNIST_FILES, fetch_mnist
from karuku.data.idx import read_idx
from karuku.data.registry import register_dataset
from karuku.errors import KarukuError


@dataclass(frozen=True)
class RawData:
    """Train and test arrays of one dataset, inputs shaped (N, C, ...) and normalised."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _normalise(x_train: np.ndarray, x_test: np.ndarray, mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    def conv(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return (t - mean) / std

    return conv(x_train), conv(x_test)


def _with_channel(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim in (2, 3) else x


def _idx_folder(folder: Path) -> RawData:
    def find(stem: str) -> Path:
        for cand in (stem, stem.replace(".idx", "-idx"), stem + ".gz", stem.replace(".idx", "-idx") + ".gz"):
            if (folder / cand).is_file():
                return folder / cand
        raise KarukuError(f"{folder}: no {stem} file", "the folder must hold the four MNIST-named IDX files")

    arrays = {name: read_idx(find(name)) for name in MNIST_FILES}
    xtr, ytr = arrays["train-images.idx3-ubyte"], arrays["train-labels.idx1-ubyte"]
    xte, yte = arrays["t10k-images.idx3-ubyte"], arrays["t10k-labels.idx1-ubyte"]
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise KarukuError(f"{folder}: image and label counts differ ({len(xtr)}/{len(ytr)}, {len(xte)}/{len(yte)})")
    scale = 255.0 if xtr.dtype == np.uint8 else 1.0
    xtr, xte = _with_channel(xtr) / scale, _with_channel(xte) / scale
    mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
    x_train, x_test = _normalise(xtr, xte, mean, std)
    return RawData(x_train, torch.from_numpy(ytr.astype(np.int64)), x_test, torch.from_numpy(yte.astype(np.int64)))


@register_dataset("mnist", "real MNIST, 60k train / 10k test (fetched and verified)", (1, 28, 28), 10)
def load_mnist(cfg: DataConfig) -> RawData:
    """Real MNIST: 60k train / 10k test, 1×28×28, fetched and verified on first use."""
    folder = fetch_mnist(Path(cfg.path) if cfg.path else None)
    return _idx_folder(folder)


@register_dataset("idx", "your own IDX files (MNIST file names) in --data-path", (1, 28, 28), 10)
def load_idx(cfg: DataConfig) -> RawData:
    """A user's own IDX files in `cfg.path` (MNIST file names); normalised by the train statistics."""
    if not cfg.path:
        raise KarukuError("dataset 'idx' needs a folder", "pass --data-path DIR holding the four IDX files")
    return _idx_folder(Path(cfg.path))


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
    x_train, x_test = _normalise(x[tr][:, None], x[te][:, None], float(x[tr].mean()), float(x[tr].std()))
    return RawData(x_train, torch.from_numpy(y[tr]), x_test, torch.from_numpy(y[te]))


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
