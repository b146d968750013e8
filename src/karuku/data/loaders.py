"""Batch loaders: whole batches sliced from in-memory tensors, reproducible per epoch.

Each global batch is drawn from a permutation seeded by (seed, epoch), so an epoch's order
does not depend on what ran before it: resuming after a crash replays the same batches,
and under data parallelism every rank takes its own slice of the same global batch, which
makes N processes compute the gradient of one process (up to float summation order).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset


class EpochBatchSampler(Sampler[torch.Tensor]):
    """Yields index tensors, one per batch; `set_epoch` picks the permutation."""

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world: int = 1, drop_last: bool = False):
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.drop_last, self.epoch = rank, world, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start : start + self.batch_size]
            if self.world > 1:
                batch = batch.tensor_split(self.world)[self.rank]
            yield batch


class BatchDataset(Dataset):
    """Indexes a TensorDataset with a whole index tensor at once; optional random shifts."""

    def __init__(self, base: TensorDataset, max_shift: int = 0, seed: int = 0):
        self.base, self.max_shift, self.seed, self.epoch = base, max_shift, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._gen = torch.Generator().manual_seed(self.seed * 7_919 + epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: torch.Tensor):
        x, y = (t[idx] for t in self.base.tensors)
        if self.max_shift:
            if not hasattr(self, "_gen"):
                self.set_epoch(self.epoch)
            x = random_shift(x, self.max_shift, self._gen)
        return x, y


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each example by its own random offset in [-max_shift, max_shift] per spatial axis.

    Works on images (N, C, H, W) and sequences (N, C, L); the fill is the batch minimum
    (the background, 0 before normalisation).
    """
    if x.dim() == 3:
        return random_shift(x.unsqueeze(2), max_shift, gen).squeeze(2)
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    sh, sw = (max_shift if h > 1 else 0), max_shift
    pad = torch.nn.functional.pad(x, (sw, sw, sh, sh), value=float(x.min()))
    dy = torch.randint(0, 2 * sh + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * sw + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # n, h, 1
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # n, 1, w
    batch = torch.arange(n)[:, None, None]
    out = pad.movedim(1, -1)[batch, rows, cols]  # n, h, w, c
    return out.movedim(-1, 1).contiguous()


class Loader(DataLoader):
    """A DataLoader over whole batches that knows its epoch (forwarded to sampler and augmentation)."""

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)


def make_loader(ds: TensorDataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                augment_shift: int = 0, rank: int = 0, world: int = 1) -> Loader:
    """A loader yielding (x, y) batches; shuffled loaders reseed at every `set_epoch`."""
    sampler = EpochBatchSampler(len(ds), batch_size, shuffle=shuffle, seed=seed, rank=rank, world=world)
    return Loader(BatchDataset(ds, augment_shift, seed), sampler=sampler, batch_size=None)
