"""Declared preprocessing — resize, centre crop, per-channel mean / std — as pure functions on tensors.

A pretrained model expects the inputs it was trained on: the user declares them (`DataConfig.resize`, `crop`,
`mean`, `std`), the declaration is stored with every checkpoint (its "data" settings), so every later job
prepares the data the same way. Without a declared mean / std the training set's own statistics normalise
the inputs (per channel: dimension 1), or nothing does (`normalize: false`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from karuku.errors import KarukuError


@dataclass(frozen=True)
class Preprocess:
    """The preprocessing of one dataset: sizes in pixels (H, W), mean and std per channel (None: none)."""

    resize: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def declared(cls, cfg) -> Preprocess:
        """What a DataConfig declares (sizes given as one number are square)."""
        return cls(_size(cfg.resize, "resize"), _size(cfg.crop, "crop"),
                   tuple(cfg.mean) if cfg.mean else None, tuple(cfg.std) if cfg.std else None)

    def with_stats(self, mean: Sequence[float], std: Sequence[float]) -> Preprocess:
        return Preprocess(self.resize, self.crop, tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def as_dict(self) -> dict:
        return {k: list(v) if v is not None else None for k, v in asdict(self).items()}

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        """Resize then centre-crop a batch (N, C, H, W); other shapes pass unless a size was declared."""
        if self.resize is None and self.crop is None:
            return x
        if x.dim() != 4:
            raise KarukuError(f"resize / crop apply to images (N, C, H, W), not to inputs shaped {tuple(x.shape[1:])}",
                              "drop --data-resize / --data-crop for this dataset")
        if self.resize is not None:
            x = resize(x, self.resize)
        return center_crop(x, self.crop) if self.crop is not None else x

    def normalize(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        return normalize(x, self.mean, self.std, inplace) if self.mean is not None else x


def _size(v, what: str) -> tuple[int, int] | None:
    if not v:
        return None
    if len(v) == 1:
        return int(v[0]), int(v[0])
    if len(v) == 2:
        return int(v[0]), int(v[1])
    raise KarukuError(f"{what} takes one size or two (H,W), got {len(v)} numbers", f"e.g. --data-{what} 32,32")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing of a float batch (N, C, H, W)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central H×W window of each image; an image smaller than the crop is refused."""
    h, w = x.shape[-2:]
    ch, cw = size
    if ch > h or cw > w:
        raise KarukuError(f"crop {ch}×{cw} is larger than the images ({h}×{w})", "crop less, or resize first")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top: top + ch, left: left + cw]


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> torch.Tensor:
    """(x − mean) / std per channel (dimension 1); one value applies to every channel. `inplace`: overwrite `x`
    (a freshly decoded batch: no second copy of it)."""
    c = x.shape[1] if x.dim() > 1 else 1
    if len(mean) not in (1, c) or len(std) not in (1, c):
        raise KarukuError(f"mean / std give {len(mean)} / {len(std)} values for inputs with {c} channels",
                          "give one value, or one per channel")
    if any(s <= 0 for s in std):
        raise KarukuError(f"std must be positive, got {list(std)}")
    view = (1, -1) + (1,) * max(0, x.dim() - 2)
    m = torch.tensor(mean, dtype=torch.float32).view(view) if len(mean) > 1 else float(mean[0])
    s = torch.tensor(std, dtype=torch.float32).view(view) if len(std) > 1 else float(std[0])
    if inplace and x.is_floating_point():
        return x.sub_(m).div_(s)
    return (x - m) / s


STATS_CHUNK = 1 << 24  # values per chunk of the per-channel statistics (64 MB of float32)


def channel_stats(x: np.ndarray | torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean and std per channel (dimension 1) of a batch; one channel: the whole array's, as MNIST always had."""
    a = x.numpy() if isinstance(x, torch.Tensor) else x
    if a.ndim < 2 or a.shape[1] == 1:
        std = float(a.std())
        return [float(a.mean())], [std or 1.0]
    # in chunks of examples: numpy's std of the whole array would hold a float64 copy of it (2× the data)
    axes, step = (0, *range(2, a.ndim)), max(1, STATS_CHUNK // max(1, a[0].size))
    count = a.size // a.shape[1]
    mean = sum(a[i:i + step].sum(axis=axes, dtype=np.float64) for i in range(0, len(a), step)) / count
    view = (1, -1) + (1,) * (a.ndim - 2)
    var = sum(np.square(a[i:i + step] - mean.reshape(view)).sum(axis=axes) for i in range(0, len(a), step)) / count
    return [float(m) for m in mean], [float(s) or 1.0 for s in np.sqrt(var)]


def prepared(ds, pre: Preprocess):
    """`ds` with `pre` applied to every example's input as it is read (a user's dataset given declared
    preprocessing): indexable stays indexable, a stream stays a stream."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    from karuku.data.batches import Unbatched, split_example

    def apply(item):
        if item is None:
            return None
        x, y = split_example(item)
        x = pre.normalize(pre.geometry(x[None].float()))[0]
        return (x, y) if y is not None else x

    if isinstance(ds, (IterableDataset, DataLoader)):
        class Stream(IterableDataset):
            def __iter__(self):
                source = Unbatched(ds) if isinstance(ds, DataLoader) else ds
                return (apply(item) for item in source)

            def set_epoch(self, epoch: int) -> None:
                if hasattr(ds, "set_epoch"):
                    ds.set_epoch(epoch)

        return Stream()

    class Indexed(Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return apply(ds[i])

    out = Indexed()
    for attr in ("classes", "num_classes"):
        if hasattr(ds, attr):
            setattr(out, attr, getattr(ds, attr))
    return out
