"""Batches from any dataset: in-memory tensors, indexable datasets read as needed, or streams of unknown length.

Every consumer of data (evaluation, calibration, fine-tuning, distillation, export checks) reads through
`iterate` / `first_inputs`, so a dataset that does not fit in memory is never gathered into one tensor: a
`TensorDataset` is sliced, an indexable dataset is read one batch of examples at a time, and a stream
(`IterableDataset`, no length needed) is batched as it flows. An example is `x`, `(x,)` or `(x, y)`; a `y` of
None means unlabelled. An indexable dataset may return None for an example it skips (an unreadable file).

The input part `x` is what the model is called on (`feed`): a tensor, or for a model of several inputs a tuple
of tensors in forward's order (`((input_ids, attention_mask), y)`) or a dict of them by name
(`({"input_ids": ..., "attention_mask": ...}, y)`); `count`, `map_inputs` and `cat` treat the three alike. A lone
tensor of integers is read as pixel values (float); the parts of a tuple or dict keep their dtypes (token ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from karuku.errors import KarukuError

Inputs = torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]
Batch = tuple[Inputs, "torch.Tensor | None"]


def length(ds: Any) -> int | None:
    """How many examples `ds` holds; None for a stream, whose length is never asked (it may be expensive or
    unknown) nor counted here."""
    return None if is_stream(ds) else len(ds)


def unlabelled(ds: Any) -> bool:
    """The dataset's examples carry no labels (read from its first example; a tensor dataset by its tensors)."""
    if isinstance(ds, TensorDataset):
        return tensor_parts(ds)[1] is None
    first = next(iterate(ds, 1), None)
    return first is None or first[1] is None


def is_stream(ds: Any) -> bool:
    """A stream: examples come in order, with no index (an IterableDataset, a DataLoader)."""
    return isinstance(ds, (IterableDataset, DataLoader))


def in_memory(ds: Any) -> bool:
    """All examples are already tensors in memory."""
    return isinstance(ds, TensorDataset)


def split_example(item: Any) -> tuple[Inputs, Any]:
    """(x, y) of one example: `x`, `(x,)` or `(x, y)` (or a dict with 'x' and 'y'); y None when unlabelled."""
    if isinstance(item, (tuple, list)):
        if len(item) == 1:
            return as_inputs(item[0]), None
        if len(item) == 2:
            return as_inputs(item[0]), item[1]
        raise KarukuError(f"an example has {len(item)} parts", "a dataset must give x or (x, y) per example; "
                          "several inputs go together as x: ((input_ids, attention_mask), y)")
    if isinstance(item, dict):
        x = item.get("x", item.get("input", item.get("inputs")))
        if x is None:
            raise KarukuError(f"an example is a dict with keys {sorted(item)}",
                              "give its input as 'x' (label 'y'), or examples ({'input_ids': ..., ...}, y)")
        return as_inputs(x), item.get("y", item.get("label"))
    return as_inputs(item), None


def as_inputs(x: Any) -> Inputs:
    """The input part of an example or batch: a tensor, a tuple of tensors (or arrays; a list of them, as a
    DataLoader collates a tuple, is one) or a dict name -> tensor. A tuple of numbers is one array, as ever."""
    if isinstance(x, dict):
        if not x:
            raise KarukuError("an example's inputs are an empty dict", "give the model's inputs by name")
        return {str(k): _tensor(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)) and x and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in x):
        return tuple(_tensor(v) for v in x)
    return _tensor(x)


def parts(x: Inputs) -> tuple[torch.Tensor, ...]:
    """The tensors of an input part, in order."""
    return tuple(x.values()) if isinstance(x, dict) else x if isinstance(x, tuple) else (x,)


def count(x: Inputs) -> int:
    """Examples in a batch's input part."""
    return len(parts(x)[0])


def map_inputs(fn: Callable[[torch.Tensor], torch.Tensor], x: Inputs) -> Inputs:
    """`fn` applied to every tensor of an input part, its structure kept (slicing, splitting, indexing)."""
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    return tuple(fn(v) for v in x) if isinstance(x, tuple) else fn(x)


def cat(xs: list[Inputs]) -> Inputs:
    """Batches' input parts (of one structure) joined along the examples."""
    first = xs[0]
    if isinstance(first, dict):
        return {k: torch.cat([x[k] for x in xs]) for k in first}
    if isinstance(first, tuple):
        return tuple(torch.cat(col) for col in zip(*xs))
    return torch.cat(xs)


def feed(model: Callable, x: Inputs):
    """`model` called on an input part: model(x), model(*x) for a tuple, model(**x) for a dict."""
    if isinstance(x, dict):
        return model(**x)
    return model(*x) if isinstance(x, tuple) else model(x)


def describe(x: Inputs) -> str:
    """One example's shapes: `(1, 28, 28)`, or `(input_ids (8,) int64, attention_mask (8,) int64)`."""
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape[1:]))
    named = x.items() if isinstance(x, dict) else ((f"input{i}", t) for i, t in enumerate(x))
    return "(" + ", ".join(f"{k} {tuple(t.shape[1:])} {str(t.dtype).removeprefix('torch.')}" for k, t in named) + ")"


def _tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise KarukuError(f"an example's input is a {type(x).__name__}, not an array",
                          "return tensors (or numpy arrays) from the dataset") from None


def _structure(x: Inputs) -> Any:
    return tuple(x) if isinstance(x, dict) else len(x) if isinstance(x, tuple) else None


def _stack(xs: list[Inputs]) -> Inputs:
    """Examples' input parts stacked into a batch; each part of one shape in every example."""
    for x in xs[1:]:
        if _structure(x) != _structure(xs[0]):
            one = [describe(map_inputs(lambda t: t[None], v)) for v in (xs[0], x)]
            raise KarukuError(f"examples of one dataset carry different inputs: {one[0]} and {one[1]}",
                              "give every example the same inputs")
    stacked = []
    for col in zip(*(parts(x) for x in xs)):
        for t in col[1:]:
            if t.shape != col[0].shape:
                raise KarukuError(f"examples of different shapes in one batch: {tuple(col[0].shape)} and "
                                  f"{tuple(t.shape)}", "give every example the same shape (for images: "
                                  "--data-resize H,W; token ids: padded to one length)")
        stacked.append(torch.stack(col))
    if isinstance(xs[0], dict):
        return dict(zip(xs[0], stacked))
    if isinstance(xs[0], tuple):
        return tuple(stacked)
    return stacked[0] if stacked[0].is_floating_point() else stacked[0].float()  # a lone tensor: pixel values


def tensor_parts(ds: TensorDataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs, labels or None) of a TensorDataset, which holds one input tensor and its labels."""
    if len(ds.tensors) > 2:
        raise KarukuError(f"a TensorDataset of {len(ds.tensors)} tensors: karuku reads (x) or (x, y)",
                          "for a model of several inputs give a dataset of examples ((input_ids, attention_mask), y)")
    return ds.tensors[0], (ds.tensors[1] if len(ds.tensors) > 1 else None)


def collate(items: list[Any]) -> Batch | None:
    """Stack examples into one batch (None items were skipped); None when nothing is left."""
    pairs = [split_example(it) for it in items if it is not None]
    if not pairs:
        return None
    x = _stack([p[0] for p in pairs])
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
        x, y = tensor_parts(ds)
        for i in range(0, len(x), batch_size):
            yield x[i: i + batch_size], (y[i: i + batch_size] if y is not None else None)
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


def first_inputs(ds: Any, n: int) -> Inputs:
    """The first `n` inputs of `ds` (fewer if it is shorter), reading no further than needed."""
    if isinstance(ds, TensorDataset):
        return tensor_parts(ds)[0][:n]
    got: list[Inputs] = []
    have = 0
    for x, _ in iterate(ds, min(n, 256)):
        got.append(map_inputs(lambda t, left=n - have: t[:left], x))
        have += count(got[-1])
        if have >= n:
            break
    if not got:
        raise KarukuError("the dataset is empty", "give at least one example")
    return cat(got)


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
            for i in range(count(x)):
                xi = map_inputs(lambda t, i=i: t[i], x)
                yield (xi, y[i]) if y is not None else (xi,)
