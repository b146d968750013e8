"""`for_checkpoint`: the data a checkpoint was made with, or the one a user names instead.

Every job that reads a checkpoint (prune, quantize, cluster, distill, export, evaluate) asks here, so the
same rules hold everywhere: the checkpoint's stored `DataConfig` is the default; settings the user gives
override it (a different dataset name drops the stored settings); the inputs must have the model's shape.
"""

from __future__ import annotations

from typing import Any

from karuku.data.config import DataConfig
from karuku.data.registry import DATASETS, get_dataset
from karuku.data.splits import DataSplits, load_splits
from karuku.errors import KarukuError


def stored_config(ckpt) -> dict[str, Any] | None:
    """The DataConfig settings a checkpoint records (meta "data"), or None."""
    stored = ckpt.meta.get("data")
    return dict(stored) if isinstance(stored, dict) and stored.get("name") else None


def config_for(ckpt, data: DataConfig | dict[str, Any] | None = None, **settings: Any) -> DataConfig | None:
    """The DataConfig for `ckpt`: `data` (a config replaces the stored one, a dict overrides it), then `settings`."""
    if isinstance(data, DataConfig):
        base: dict[str, Any] | None = data.model_dump()
    else:
        base = stored_config(ckpt)
        given = {k: v for k, v in (data or {}).items() if v is not None}
        if given.get("name") and (base is None or given["name"] != base.get("name")):
            base = {}  # another dataset: the stored settings (its path, limits) describe the old one
        if base is not None or given:
            base = {**(base or {}), **given}
    if base is None:
        return None
    return DataConfig(**{**base, **settings})


def for_checkpoint(ckpt, data: DataSplits | DataConfig | dict[str, Any] | None = None, required: bool = True,
                   **settings: Any) -> DataSplits | None:
    """The splits for `ckpt` (see `config_for`; `DataSplits` — e.g. `from_torch(...)` — are used as given),
    checked against its input shape; None when neither the checkpoint nor the user names a dataset and
    `required` is False. A data factory recorded in the checkpoint is imported only when trusted."""
    source = getattr(ckpt, "path", None) or "the checkpoint"
    if isinstance(data, DataSplits):
        splits = data
    else:
        cfg = config_for(ckpt, data, **settings)
        if cfg is None:
            if required:
                raise KarukuError(f"{source} does not say which data it was trained on", "pass --data NAME")
            return None
        named = data.name if isinstance(data, DataConfig) else (data or {}).get("name")
        if ":" in cfg.name and named != cfg.name:
            from karuku.io.checkpoint import check_trusted_name

            check_trusted_name(cfg.name, f"{source} reads its data")
        try:
            splits = load_splits(cfg)
        except KarukuError:
            # a dataset of another shape fails on its own settings first (say, the model's val_size): the shape
            # is what the user must hear about
            known = get_dataset(cfg.name).input_shape if ":" not in cfg.name and cfg.name in DATASETS else None
            if known is not None:
                _check_shape(known, cfg.name, ckpt, source)
            raise
    _check_shape(splits.input_shape, splits.name, ckpt, source)
    return splits


def _check_shape(shape: tuple[int, ...], name: str, ckpt, source) -> None:
    if tuple(shape) != tuple(ckpt.spec.input_shape):
        raise KarukuError(f"input shapes differ: dataset '{name}' has inputs {tuple(shape)} but {source} "
                          f"expects {tuple(ckpt.spec.input_shape)}", "pass the dataset the model was trained on")


def recorded_inputs(model, shape: tuple[int, ...], path) -> tuple[int, ...]:
    """The checkpoint's input shape, once the model is seen to run on it: a checkpoint records one input's shape,
    so a model of token ids and a mask needs its data named to be measured."""
    from karuku.measure.inputs import signature

    sig = signature(model, shape)
    try:
        sig.check(model)
    except KarukuError:
        raise KarukuError(f"{path}: {type(model).__name__} does not run on one input of the shape its checkpoint "
                          f"records ({sig.describe()})", "pass --data naming the dataset whose examples carry its "
                          "inputs (token ids, a mask)") from None
    return shape
