"""Whole jobs behind `karuku cluster`, `karuku pack` and `karuku unpack`, callable from Python."""

from __future__ import annotations

import os
from typing import Any

from karuku.codec.config import ClusterConfig, PackConfig
from karuku.codec.krk import Packed, pack_state, read_packed
from karuku.codec.sharing import cluster
from karuku.data.checkpoint import for_checkpoint
from karuku.data.config import DataConfig
from karuku.distillation.recovery import finetune, frozen_copy
from karuku.io.atomic import ensure_writable_dir, write_bytes
from karuku.io.checkpoint import load_checkpoint, load_model, save_checkpoint
from karuku.training import score


def cluster_checkpoint(path: str | os.PathLike, cfg: ClusterConfig, out: str | os.PathLike,
                       data: DataConfig | dict[str, Any] | None = None, *, verbose: bool = True) -> dict[str, Any]:
    """Share the weights of a (pruned) checkpoint, fine-tune the centroids when `cfg.finetune` says, write `out`.

    The data is the checkpoint's own unless `data` is given; without either the model is clustered but
    neither tuned nor scored. Returns the new checkpoint's metadata.
    """
    ensure_writable_dir(out)
    model, ckpt = load_model(path)
    teacher = frozen_copy(model) if cfg.distill else None
    sharing = cluster(model, cfg)
    meta = dict(ckpt.meta, cluster=sharing.meta())
    splits = for_checkpoint(ckpt, data, required=cfg.finetune is not None)
    if splits is not None:
        meta["metrics"] = {"test_before_tuning": score(model, splits.test).as_dict()}
        if cfg.finetune is not None:
            finetune(model, splits, cfg.finetune, hooks=[sharing.hook()], teacher=teacher, verbose=verbose,
                     label="cluster tuning")
            meta["tuning"] = cfg.finetune.model_dump(mode="json")
        meta["metrics"]["test"] = score(model, splits.test).as_dict()
    save_checkpoint(out, model, ckpt.spec, meta, sections=ckpt.sections)
    return meta


def pack_checkpoint(path: str | os.PathLike, cfg: PackConfig | None, out: str | os.PathLike) -> Packed:
    """Pack a karuku checkpoint of a shared-weight model into the `.krk` file `out`."""
    ensure_writable_dir(out)
    ckpt = load_checkpoint(path)
    packed = pack_state(ckpt.state, ckpt.spec, ckpt.meta, cfg)
    write_bytes(out, packed.data)
    return packed


def unpack_checkpoint(path: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Rebuild the model of a `.krk` file and write it as a karuku checkpoint."""
    ensure_writable_dir(out)
    packed = read_packed(path)
    model = packed.build_model(str(path))
    save_checkpoint(out, model, packed.spec, packed.meta)
    return packed.meta
