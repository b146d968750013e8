"""Shared fixtures: tiny MNIST-shaped IDX data made from scikit-learn's digits (no network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for tests/helpers (a user's own model package)

from karuku.data.idx import encode_idx  # noqa: E402


def make_idx_folder(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """Four MNIST-named IDX files: 8×8 digits scaled ×3 and padded to 28×28 uint8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.kron(d.images, np.ones((3, 3))) * (255 / 16)
    imgs = np.pad(imgs, ((0, 0), (2, 2), (2, 2))).round().astype(np.uint8)
    labels = d.target.astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images.idx3-ubyte": imgs[:n_train], "train-labels.idx1-ubyte": labels[:n_train],
        "t10k-images.idx3-ubyte": imgs[n_train:n_train + n_test],
        "t10k-labels.idx1-ubyte": labels[n_train:n_train + n_test],
    }
    for name, arr in parts.items():
        (folder / name).write_bytes(encode_idx(arr))
    return folder


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory) -> Path:
    return make_idx_folder(tmp_path_factory.mktemp("idx"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own data cache and a fixed thread count; nothing touches ~/.cache."""
    from karuku.threads import use_threads

    monkeypatch.setenv("KARUKU_DATA", str(tmp_path / "cache"))
    use_threads(1)  # a fixed count (an automatic one a command chose would follow the machine's load)
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
