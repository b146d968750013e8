"""Train / validation / test splits of any source, and what a model needs to know about them.

`load_splits` turns what a loader returns into `DataSplits`: tensors in memory (`RawData`, prepared here:
declared resize / crop / mean / std or the training set's statistics), or datasets read as needed (`Sources`:
validation carved by index, or from the head of a stream, never by materialising it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Subset, TensorDataset

from karuku.data import batches
from karuku.data.config import DataConfig
from karuku.data.kinds import RawData, Sources
from karuku.data.registry import get_dataset
from karuku.data.transforms import Preprocess, channel_stats, prepared
from karuku.errors import KarukuError


@dataclass(frozen=True)
class DataSplits:
    """The three splits of one dataset (`TensorDataset`s in memory, or datasets read as needed), with what a
    model needs to know about them: one input's shape (the first's, for examples of several inputs: see
    `karuku.data.batches`), the class count (None for values or no labels) and
    `targets` — "classes", "values" (regression) or "none" (unlabelled: fidelity to a baseline only)."""

    name: str
    train: Any
    val: Any
    test: Any
    input_shape: tuple[int, ...]
    num_classes: int | None
    config: DataConfig
    targets: str = "classes"
    classes: tuple[str, ...] | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    values: int | None = None  # regression: target values per example

    @property
    def outputs(self) -> int | None:
        """How many outputs a model for this data gives: the classes, or the values to regress (None: no labels
        say; a pretrained model's own)."""
        return self.num_classes if self.targets == "classes" else self.values

    @property
    def labelled(self) -> bool:
        return self.targets != "none"

    @property
    def in_memory(self) -> bool:
        return all(batches.in_memory(d) for d in (self.train, self.val, self.test) if d is not None)

    def model_inputs(self, n: int = 64) -> tuple[int, ...] | batches.Inputs:
        """What a model of this data takes, as `karuku.measure.inputs.signature` reads it: the input shape when an
        example is one tensor (or a model class's registered inputs stand for it), else the first `n` test
        examples' inputs (a tuple or dict: token ids and a mask), whose dtypes and value ranges measurement keeps."""
        example = batches.first_inputs(self.test, n)
        return tuple(self.input_shape) if isinstance(example, torch.Tensor) else example

    def calibration(self, n: int) -> batches.Inputs:
        """The first `n` training inputs (deterministic), e.g. for quantization calibration: a tensor, or a tuple or
        dict of them for examples of several inputs."""
        return batches.first_inputs(self.train, n)


def load_splits(cfg: DataConfig | None = None, **overrides) -> DataSplits:
    """Load a dataset (a registered name or `package.module:factory`) and carve validation out of train."""
    cfg = (cfg or DataConfig()).model_copy(update=overrides) if overrides else (cfg or DataConfig())
    if ":" in cfg.name:
        from karuku.data.factory import load_factory

        raw = load_factory(cfg)
        pre = Preprocess.declared(cfg)
        if isinstance(raw, Sources) and (pre.resize or pre.crop or pre.mean):  # the user's data, as declared
            raw = Sources(*(prepared(d, pre) if d is not None else None for d in (raw.train, raw.test, raw.val)),
                          raw.num_classes, raw.classes, pre.as_dict())
    else:
        raw = get_dataset(cfg.name).load(cfg)
    if isinstance(raw, DataSplits):
        return raw
    if isinstance(raw, RawData):
        return _from_tensors(cfg, raw)
    if isinstance(raw, Sources):
        return from_sources(cfg, raw)
    raise KarukuError(f"the loader of dataset '{cfg.name}' returned {type(raw).__name__}",
                      "a loader returns karuku.data.sources.RawData or Sources")


def targets_of(y: torch.Tensor | None, wanted: str, source: str) -> tuple[torch.Tensor | None, str]:
    """Labels as class indices (int64) or values (float32), as `wanted` ("auto": integers are classes)."""
    if y is None:
        return None, "none"
    integral = not y.is_floating_point() or bool(torch.equal(y, y.round()))
    kind = wanted if wanted != "auto" else ("classes" if not y.is_floating_point() else "values")
    if kind == "classes":
        if not integral:
            raise KarukuError(f"{source}: labels like {float(y[~y.eq(y.round())][0]):g} are not class indices",
                              "use --data-targets values for regression")
        y = y.long()
        if len(y) and int(y.min()) < 0:
            raise KarukuError(f"{source}: label {int(y.min())} is out of range (class labels start at 0)",
                              "number the classes 0, 1, 2, ...")
        return y, kind
    return y.float(), kind


def _from_tensors(cfg: DataConfig, raw: RawData) -> DataSplits:
    x_train, x_test = raw.x_train, raw.x_test
    y_train, kind = targets_of(raw.y_train, cfg.targets, f"dataset '{cfg.name}' train")
    y_test = targets_of(raw.y_test, kind if kind != "none" else "auto", f"dataset '{cfg.name}' test")[0]
    if x_test is None:
        x_train, y_train, x_test, y_test = _hold_out(x_train, y_train, cfg.test_fraction)
    pre = Preprocess.declared(cfg)
    preprocess: dict[str, Any] = {}
    if not raw.normalized:
        if pre.resize or pre.crop:
            x_train, x_test = pre.geometry(x_train.float()), pre.geometry(x_test.float())
        if pre.mean is None and cfg.normalize:
            pre = pre.with_stats(*channel_stats(x_train))  # before the cast: float64 stays float64
        x_train, x_test = pre.normalize(x_train.float()), pre.normalize(x_test.float())
        preprocess = pre.as_dict()
    elif pre.mean is not None:
        x_train, x_test = pre.normalize(x_train), pre.normalize(x_test)
        preprocess = pre.as_dict()
    if cfg.train_limit:
        x_train = x_train[: cfg.train_limit]
        y_train = y_train[: cfg.train_limit] if y_train is not None else None
    if cfg.test_limit:
        x_test = x_test[: cfg.test_limit]
        y_test = y_test[: cfg.test_limit] if y_test is not None else None
    n = len(x_train)
    _check_val(cfg, n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = perm[: cfg.val_size].sort().values, perm[cfg.val_size:].sort().values

    def pick(idx):
        return TensorDataset(x_train[idx], y_train[idx]) if y_train is not None else TensorDataset(x_train[idx])

    test = TensorDataset(x_test, y_test) if y_test is not None else TensorDataset(x_test)
    num_classes = None
    if kind == "classes":
        num_classes = int(max(y_train.max(), y_test.max() if y_test is not None and len(y_test) else 0)) + 1
        if raw.classes is not None:
            num_classes = max(num_classes, len(raw.classes))
    values = int(y_train[0].numel()) if kind == "values" and len(y_train) else None
    return DataSplits(cfg.name, pick(train_idx), pick(val_idx) if cfg.val_size else None, test,
                      tuple(x_train.shape[1:]), num_classes, cfg, kind, raw.classes, preprocess, values)


def _hold_out(x, y, fraction: float):
    """A fixed share of the examples as the test set (seed 0, so it never moves with the validation seed)."""
    n = len(x)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cut = max(1, int(round(n * fraction)))
    test, train = perm[:cut].sort().values, perm[cut:].sort().values
    return x[train], (y[train] if y is not None else None), x[test], (y[test] if y is not None else None)


def _check_val(cfg: DataConfig, n: int | None) -> None:
    if n is not None and cfg.val_size >= n:
        raise KarukuError(f"val_size {cfg.val_size} leaves no training data ({n} examples)",
                          "lower val_size (--data-val-size)")


def from_sources(cfg: DataConfig, src: Sources) -> DataSplits:
    """DataSplits over datasets read as needed: limits and validation by index, or from a stream's head."""
    train, test, val = src.train, src.test, src.val
    if test is None:
        n = batches.length(train)
        if n is None:
            raise KarukuError(f"dataset '{cfg.name}' is a stream without a test split",
                              "give the stream's test examples as a separate dataset")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        cut = max(1, int(round(n * cfg.test_fraction)))
        train, test = take(train, perm[cut:].sort().values), take(train, perm[:cut].sort().values)
    if cfg.train_limit:
        train = batches.head(train, cfg.train_limit)
    if cfg.test_limit:
        test = batches.head(test, cfg.test_limit)
    if val is None and cfg.val_size:
        n = batches.length(train)
        _check_val(cfg, n)
        if batches.is_stream(train):  # the stream's first examples: no index to draw from
            val, train = batches.StreamSlice(train, 0, cfg.val_size), batches.StreamSlice(train, cfg.val_size)
        else:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
            train, val = take(train, perm[cfg.val_size:].sort().values), take(train, perm[: cfg.val_size].sort().values)
    first = next(batches.iterate(train, 1), None)
    if first is None:
        raise KarukuError(f"dataset '{cfg.name}' has no training examples", "check --data-path")
    x, y = first
    kind = "none" if y is None else ("values" if y.is_floating_point() else "classes")
    if cfg.targets != "auto" and kind != "none":
        kind = cfg.targets
    num_classes = src.num_classes or (len(src.classes) if src.classes else None)
    if kind == "classes" and num_classes is None:
        num_classes = _declared_classes(src.train) or _count_classes(train, cfg.name)
    values = int(y[0].numel()) if kind == "values" else None
    shape = tuple(batches.parts(x)[0].shape[1:])  # several inputs (token ids, mask): the first one's
    return DataSplits(cfg.name, train, val, test, shape, num_classes if kind == "classes" else None,
                      cfg, kind, src.classes, dict(src.preprocess or {}), values)


def take(ds: Any, idx: torch.Tensor) -> Any:
    """The examples `idx` of an indexable dataset: tensors stay tensors (fast whole-batch loading)."""
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[idx] for t in ds.tensors))
    return Subset(ds, idx.tolist())


def _declared_classes(ds: Any) -> int | None:
    for attr in ("num_classes", "classes"):
        v = getattr(ds, attr, None)
        if isinstance(v, int):
            return v
        if isinstance(v, (list, tuple)) and v:
            return len(v)
    return None


def _count_classes(ds: Any, name: str) -> int:
    """One pass over the training labels (streamed, nothing kept): the largest label + 1."""
    top = -1
    for _, y in batches.iterate(ds, 1000):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0:
            raise KarukuError(f"dataset '{name}': label {lo} is out of range (class labels start at 0)",
                              "number the classes 0, 1, 2, ...")
        top = max(top, hi)
    return top + 1


def from_torch(train: Any, test: Any = None, val: Any = None, *, name: str = "python", **settings: Any) -> DataSplits:
    """DataSplits over your own torch datasets (or DataLoaders), for every job's `data=` argument.

    >>> splits = from_torch(train_set, test_set, val_size=0)
    >>> karuku.api.evaluate_checkpoint("model.safetensors", splits)
    """
    from karuku.data.factory import as_sources

    parts = {"train": train, "test": test, "val": val} if test is not None or val is not None else train
    cfg = DataConfig.model_construct(**{**DataConfig().model_dump(), "name": name, **settings})
    return from_sources(cfg, as_sources(parts, "from_torch"))
