"""Batches from any dataset: in-memory tensors, indexable datasets read as needed, or streams of unknown length.

Every consumer of data (evaluation, calibration, fine-tuning, distillation, export checks) reads through
`iterate` / `first_inputs`, so a dataset that does not fit in memory is never gathered into one tensor: a
`TensorDataset` is sliced, an indexable dataset is read one batch of examples at a time, and a stream
(`IterableDataset`, no length needed) is batched as it flows. An example is `x` or `(x, y)`; a `y` of None
means unlabelled. An indexable dataset may return None for an example it skips (an unreadable file).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from karuku.errors import KarukuError

Batch = tuple[torch.Tensor, "torch.Tensor | None"]


def length(ds: Any) -> int | None:
    """How many examples `ds` holds; None for a stream, whose length is never asked (it may be expensive or
    unknown) nor counted here."""
    return None if is_stream(ds) else len(ds)


def unlabelled(ds: Any) -> bool:
    """The dataset's examples carry no labels (read from its first example; a tensor dataset by its tensors)."""
    if isinstance(ds, TensorDataset):
        return len(ds.tensors) < 2
    first = next(iterate(ds, 1), None)
    return first is None or first[1] is None


def is_stream(ds: Any) -> bool:
    """A stream: examples come in order, with no index (an IterableDataset, a DataLoader)."""
    return isinstance(ds, (IterableDataset, DataLoader))


def in_memory(ds: Any) -> bool:
    """All examples are already tensors in memory."""
    return isinstance(ds, TensorDataset)


def split_example(item: Any) -> tuple[torch.Tensor, Any]:
    """(x, y) of one example: `x`, `(x,)` or `(x, y)`; y None when unlabelled."""
    if isinstance(item, (tuple, list)):
        if len(item) == 1:
            return _tensor(item[0]), None
        if len(item) == 2:
            return _tensor(item[0]), item[1]
        raise KarukuError(f"an example has {len(item)} parts", "a dataset must give x or (x, y) per example")
    if isinstance(item, dict):
        x = item.get("x", item.get("input", item.get("inputs")))
        if x is None:
            raise KarukuError(f"an example is a dict with keys {sorted(item)}", "give its input as 'x' (label 'y')")
        return _tensor(x), item.get("y", item.get("label"))
    return _tensor(item), None


def _tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise KarukuError(f"an example's input is a {type(x).__name__}, not an array",
                          "return tensors (or numpy arrays) from the dataset") from None


def collate(items: list[Any]) -> Batch | None:
    """Stack examples into one batch (None items were skipped); None when nothing is left."""
    pairs = [split_example(it) for it in items if it is not None]
    if not pairs:
        return None
    xs = [p[0] for p in pairs]
    shape = xs[0].shape
    for x in xs[1:]:
        if x.shape != shape:
            raise KarukuError(f"examples of different shapes in one batch: {tuple(shape)} and {tuple(x.shape)}",
                              "give every example the same shape (for images: --data-resize H,W)")
    x = torch.stack(xs).float() if not xs[0].is_floating_point() else torch.stack(xs)
    labels = [p[1] for p in pairs]
    if all(y is None for y in labels):
        return x, None
    if any(y is None for y in labels):
        raise KarukuError("some examples have labels and some do not", "label every example, or none")
    return x, torch.stack([torch.as_tensor(y) for y in labels])


def _as_batch(batch: Any) -> Batch:
    x, y = split_example(batch)
    return x, (torch.as_tensor(y) if y is not None else None)


def iterate(ds: Any, batch_size: int = 1000) -> Iterator[Batch]:
    """(x, y) batches over all of `ds`, in order; y is None for unlabelled data."""
    if isinstance(ds, TensorDataset):
        tensors = ds.tensors
        for i in range(0, len(tensors[0]), batch_size):
            yield tensors[0][i: i + batch_size], (tensors[1][i: i + batch_size] if len(tensors) > 1 else None)
        return
    if isinstance(ds, DataLoader):  # the user's own batching: re-batched to `batch_size` like any stream
        ds = Unbatched(ds)
    source: Iterable = iter(ds) if isinstance(ds, IterableDataset) else (ds[i] for i in range(len(ds)))
    chunk: list[Any] = []
    for item in source:
        chunk.append(item)
        if len(chunk) == batch_size:
            batch = collate(chunk)
            chunk = []
            if batch is not None:
                yield batch
    batch = collate(chunk) if chunk else None
    if batch is not None:
        yield batch


def first_inputs(ds: Any, n: int) -> torch.Tensor:
    """The first `n` inputs of `ds` (fewer if it is shorter), reading no further than needed."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[0][:n]
    parts, got = [], 0
    for x, _ in iterate(ds, min(n, 256)):
        parts.append(x[: n - got])
        got += len(parts[-1])
        if got >= n:
            break
    if not parts:
        raise KarukuError("the dataset is empty", "give at least one example")
    return torch.cat(parts)


def head(ds: Any, n: int) -> Dataset:
    """The first `n` examples of `ds` as a dataset of the same kind (a slice, a subset, or a cut stream)."""
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[:n] for t in ds.tensors))
    if is_stream(ds):
        return StreamSlice(ds, 0, n)
    return torch.utils.data.Subset(ds, range(min(n, len(ds))))


class StreamSlice(IterableDataset):
    """Examples `start` to `stop` (None: to the end) of a stream, read in passing: the carved validation split
    of a stream, or its first N examples (train_limit)."""

    def __init__(self, base: Any, start: int = 0, stop: int | None = None):
        self.base, self.start, self.stop = base, start, stop

    def __iter__(self):
        source = Unbatched(self.base) if isinstance(self.base, DataLoader) else self.base
        for i, item in enumerate(source):
            if self.stop is not None and i >= self.stop:
                return
            if i >= self.start:
                yield item

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)


class Unbatched(IterableDataset):
    """The examples of a user's DataLoader, one by one (karuku batches them itself)."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __iter__(self):
        for batch in self.loader:
            x, y = _as_batch(batch)
            for i in range(len(x)):
                yield (x[i], y[i]) if y is not None else x[i]
