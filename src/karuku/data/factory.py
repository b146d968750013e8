"""A user's own data: torch datasets from Python (`karuku.data.from_torch`), or a factory named
`package.module:factory`.

The factory is imported only when the user names it (`--data mypkg.data:make`, `data: {name: ...}` in a
recipe), under the same trust rule as a user's model: a checkpoint that records it loads it again only when
the module is trusted (named in this process, or in $KARUKU_TRUSTED_IMPORTS). It is called with the
`DataConfig` when it takes an argument (its `kwargs` are `--data-arg KEY=VALUE`), and returns any of:
a `Dataset` / `IterableDataset` / `DataLoader` (the training set: `test_fraction` is held out), a
`(train, test)` pair, a dict with `train`, `test` (and `val`), karuku's `Sources`, or `DataSplits`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch.utils.data import DataLoader, Dataset, IterableDataset

from karuku.data.config import DataConfig
from karuku.data.kinds import Sources
from karuku.errors import KarukuError

DATASET_TYPES = (Dataset, IterableDataset, DataLoader)


def as_sources(value: Any, what: str) -> Sources:
    """What a factory (or a Python caller) gave, as `Sources`; anything else is one error naming `what`."""
    if isinstance(value, Sources):
        return value
    if isinstance(value, DATASET_TYPES):
        return Sources(value)
    if isinstance(value, dict) and "train" in value and set(value) <= {"train", "test", "val"}:
        parts = value
    elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
        parts = dict(zip(("train", "test", "val"), value))
    else:
        raise KarukuError(f"{what} returned {type(value).__name__}, not a torch Dataset, DataLoader, "
                          "(train, test) pair or dict of them", "return torch.utils.data datasets")
    for k, v in parts.items():
        if v is not None and not isinstance(v, DATASET_TYPES):
            raise KarukuError(f"{what} gave {type(v).__name__} as its {k} set, not a torch Dataset or DataLoader",
                              "return torch.utils.data datasets")
    return Sources(parts["train"], parts.get("test"), parts.get("val"))


def load_factory(cfg: DataConfig):
    """Import and call the factory `cfg.name` names: its `Sources`, or the `DataSplits` it built itself."""
    from karuku.io.checkpoint import trust_import
    from karuku.models.registry import resolve_factory

    factory = resolve_factory(cfg.name, what="data factory")
    trust_import(cfg.name)
    try:
        takes = len(inspect.signature(factory).parameters) > 0
    except (TypeError, ValueError):
        takes = True
    try:
        value = factory(cfg) if takes else factory()
    except KarukuError:
        raise
    except Exception as exc:  # the user's code failed: say where, in one line
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise KarukuError(f"data factory '{cfg.name}' failed: {type(exc).__name__}: {first}",
                          "run it in Python to see the traceback (or karuku --debug)") from None
    if type(value).__name__ == "DataSplits":  # built by the factory itself (karuku.data.splits)
        return value
    return as_sources(value, f"data factory '{cfg.name}'")
