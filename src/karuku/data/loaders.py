"""Batch loaders: whole batches sliced from in-memory tensors (or gathered from a dataset read as needed),
reproducible per epoch; streams are batched in their own order.

Each global batch is drawn from a permutation seeded by (seed, epoch), so an epoch's order
does not depend on what ran before it: resuming after a crash replays the same batches,
and under data parallelism every rank takes its own slice of the same global batch, which
makes N processes compute the gradient of one process (up to float summation order).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from karuku.data import batches
from karuku.errors import KarukuError


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
    """Indexes a dataset with a whole index tensor at once (tensors are sliced, other datasets read example by
    example and stacked); optional random shifts."""

    def __init__(self, base, max_shift: int = 0, seed: int = 0):
        self.base, self.max_shift, self.seed, self.epoch = base, max_shift, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._gen = torch.Generator().manual_seed(self.seed * 7_919 + epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: torch.Tensor):
        if isinstance(self.base, TensorDataset):
            x, y = batches.tensor_parts(self.base)
            x, y = x[idx], (y[idx] if y is not None else None)
        else:
            batch = batches.collate([self.base[int(i)] for i in idx])
            if batch is None:
                return None  # every example of this batch was skipped (unreadable files)
            x, y = batch
        if self.max_shift:
            if not hasattr(self, "_gen"):
                self.set_epoch(self.epoch)
            x = random_shift(_image(x), self.max_shift, self._gen)
        return x, y


def _image(x: batches.Inputs) -> torch.Tensor:
    """The one image tensor augmentation shifts (inputs of several tensors, token ids, are not images)."""
    if not isinstance(x, torch.Tensor):
        raise KarukuError(f"augment_shift shifts images; these examples carry several inputs {batches.describe(x)}",
                          "set augment_shift 0 (--data-augment-shift 0) for a model of several inputs")
    return x


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

    def __iter__(self):
        # torch's conversion turns a tuple of inputs into a list: back to the tuple the model is fed
        return ((batches.as_inputs(b[0]), b[1]) for b in super().__iter__() if b is not None)


class StreamLoader:
    """Batches of a stream in its own order (a stream has no index to shuffle by); `set_epoch` reaches the
    stream when it has one, so a stream may reshuffle itself per epoch. Its length is known only when the
    stream's is: `len` raises TypeError otherwise, and nothing here counts it."""

    def __init__(self, ds, batch_size: int, max_shift: int = 0, seed: int = 0, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        self.ds, self.batch_size, self.max_shift, self.seed = ds, batch_size, max_shift, seed
        self.rank, self.world, self.epoch = rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.ds, "set_epoch"):
            self.ds.set_epoch(epoch)

    def __len__(self) -> int:
        n = batches.length(self.ds)
        if n is None:
            raise TypeError("a stream of unknown length")
        return -(-n // self.batch_size)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 7_919 + self.epoch)
        for x, y in batches.iterate(self.ds, self.batch_size):
            if self.world > 1:
                x = batches.map_inputs(lambda t: t.tensor_split(self.world)[self.rank], x)
                y = y.tensor_split(self.world)[self.rank] if y is not None else None
            yield (random_shift(_image(x), self.max_shift, gen) if self.max_shift else x), y


def make_loader(ds, batch_size: int, shuffle: bool = False, seed: int = 0, augment_shift: int = 0, rank: int = 0,
                world: int = 1) -> Loader | StreamLoader:
    """A loader yielding (x, y) batches (y None when unlabelled); shuffled loaders reseed at every `set_epoch`.
    Streams come in their own order."""
    if batches.is_stream(ds):
        return StreamLoader(ds, batch_size, augment_shift, seed, rank, world)
    sampler = EpochBatchSampler(len(ds), batch_size, shuffle=shuffle, seed=seed, rank=rank, world=world)
    return Loader(BatchDataset(ds, augment_shift, seed), sampler=sampler, batch_size=None)
