"""Whole jobs behind `karuku cluster` and `karuku unpack`, callable from Python."""

from __future__ import annotations

import os
from typing import Any

from karuku.codec.config import ClusterConfig
from karuku.codec.krk import read_packed
from karuku.codec.sharing import cluster
from karuku.data import DataConfig, load_splits
from karuku.errors import KarukuError
from karuku.io.atomic import ensure_writable_dir
from karuku.io.checkpoint import load_model, save_checkpoint
from karuku.training import TrainConfig, score, train


def cluster_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, cfg: ClusterConfig,
                       tune: TrainConfig | None = None, data: DataConfig | None = None,
                       verbose: bool = True) -> dict[str, Any]:
    """Share the weights of a (pruned) checkpoint, optionally fine-tune the centroids, write `out`.

    The data is the checkpoint's own (meta 'data') unless `data` is given; without either the
    model is clustered but neither tuned nor scored. Returns the new checkpoint's metadata.
    """
    ensure_writable_dir(out)
    model, ckpt = load_model(checkpoint)
    sharing = cluster(model, cfg)
    meta = dict(ckpt.meta, cluster=sharing.meta())
    stored = ckpt.meta.get("data")
    data = data or (DataConfig(**stored) if isinstance(stored, dict) and stored.get("name") else None)
    if tune is not None and data is None:
        raise KarukuError(f"{checkpoint} does not say which data it was trained on", "pass --data to fine-tune")
    if data is not None:
        splits = load_splits(data)
        meta["metrics"] = {"test_before_tuning": score(model, splits.test).as_dict()}
        if tune is not None:
            train(model, splits, tune, hooks=[sharing.hook()], verbose=verbose)
            meta["tuning"] = tune.model_dump(mode="json")
        meta["metrics"]["test"] = score(model, splits.test).as_dict()
    save_checkpoint(out, model, ckpt.spec, meta, sections=ckpt.sections)
    return meta


def unpack(packed_path: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Rebuild the model of a `.krk` file and write it as a karuku checkpoint."""
    ensure_writable_dir(out)
    packed = read_packed(packed_path)
    model = packed.build_model(str(packed_path))
    save_checkpoint(out, model, packed.spec, packed.meta)
    return packed.meta
