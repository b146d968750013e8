"""Whole jobs behind the CLI, callable from Python: train to a checkpoint, evaluate a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from karuku.data.config import DataConfig
from karuku.data.splits import load_splits
from karuku.errors import KarukuError
from karuku.io.atomic import ensure_writable_dir
from karuku.io.checkpoint import load_model, load_state, read_weights, save_checkpoint, trust_import
from karuku.measure.evaluation import Evaluation, evaluate
from karuku.models.registry import resolve_factory
from karuku.models.spec import ModelSpec
from karuku.training.config import TrainConfig
from karuku.training.evaluate import score
from karuku.training.loop import train


def fit(model: str, data: DataConfig, cfg: TrainConfig, out: str | os.PathLike,
        model_kwargs: dict[str, Any] | None = None, init: str | os.PathLike | None = None,
        verbose: bool = True) -> dict[str, Any] | None:
    """Build `model` for `data`, train it and write the checkpoint `out`.

    Resumes from `<out>.state` when a previous run with the same settings crashed.
    Returns the checkpoint's metadata (None on non-zero ranks of a multi-process run).
    """
    resolve_factory(model)  # an unknown model fails before any data is loaded
    trust_import(model)  # named by the user: its own checkpoints may load it back
    out = ensure_writable_dir(out)
    splits = load_splits(data)
    spec = ModelSpec(name=model, input_shape=splits.input_shape, num_classes=splits.num_classes,
                     kwargs=model_kwargs or {})
    torch.manual_seed(cfg.seed)
    net = spec.build()
    if init:
        load_state(net, read_weights(init), str(init), model)
    result = train(net, splits, cfg, state_path=Path(f"{out}.state"), verbose=verbose)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank = torch.distributed.get_rank()
        torch.distributed.destroy_process_group()
        if rank != 0:
            return None
    test = score(net, splits.test)
    meta = {"data": data.model_dump(mode="json"), "training": cfg.model_dump(mode="json"),
            "result": result.as_dict(), "history": result.history, "metrics": {"test": test.as_dict()}}
    save_checkpoint(out, net, spec, meta)
    return meta


def evaluate_checkpoint(path: str | os.PathLike, data: str | None = None, data_path: str | None = None,
                        test_limit: int | None = None, threads: int = 2, latency: bool = True,
                        runs: int = 30, profile: str | None = None) -> Evaluation:
    """Load a checkpoint (or a packed `.krk` model) and measure it on its dataset (or `data`).

    `profile`: also check whether it fits that device profile (and take its on-chip memory for the energy).
    """
    from karuku.codec.krk import is_packed, load_packed
    from karuku.measure.profiles import get_profile

    if profile:
        get_profile(profile)  # an unknown profile fails before any work
    sizes = None
    if is_packed(path):  # a .krk file: same spec and metadata, plus its packed size
        model, packed = load_packed(path)
        ckpt, sizes = packed, {"packed": len(packed.data)}
    else:
        model, ckpt = load_model(path)
    stored = ckpt.meta.get("data") or {}
    name = data or stored.get("name")
    splits = None
    if name:
        cfg = DataConfig(name=name, path=data_path or (stored.get("path") if name == stored.get("name") else None),
                         val_size=0, test_limit=test_limit)
        splits = load_splits(cfg)
        if tuple(splits.input_shape) != tuple(ckpt.spec.input_shape):
            raise KarukuError(f"dataset '{name}' has inputs {splits.input_shape} but {path} expects "
                              f"{tuple(ckpt.spec.input_shape)}", "pass the dataset the model was trained on")
    engines = ("torch", "onnxruntime") if latency else ()
    ev = evaluate(model, splits, ckpt.spec.input_shape, threads=threads, engines=engines, runs=runs, sizes=sizes,
                  profile=profile, details=True)
    if sizes is not None:
        ev.extra.update(packed.extra())
    return ev
