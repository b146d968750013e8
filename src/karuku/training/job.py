"""`train_checkpoint`: the whole job behind `karuku train` — build a model for a dataset, train it, save it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from karuku.data.config import DataConfig
from karuku.data.splits import load_splits
from karuku.io.atomic import ensure_writable_dir
from karuku.io.checkpoint import load_state, read_weights, save_checkpoint, trust_import
from karuku.io.paths import regular_file
from karuku.models.registry import resolve_factory
from karuku.models.spec import spec_for
from karuku.training import distributed, resume
from karuku.training.config import TrainConfig
from karuku.training.evaluate import score
from karuku.training.loop import train


def train_checkpoint(model: str, cfg: TrainConfig, out: str | os.PathLike, data: DataConfig | None = None, *,
                     model_kwargs: dict[str, Any] | None = None, init: str | os.PathLike | None = None,
                     verbose: bool = True) -> dict[str, Any] | None:
    """Build `model` (a zoo name or package.module:factory) for `data`, train it and write the checkpoint `out`.

    `init`: start from these weights; with `cfg.epochs` 0 they are kept as given (a pretrained model comes in,
    its data's declared preprocessing recorded with it). Resumes from `<out>.state` when a previous run with
    the same settings crashed. Returns the checkpoint's metadata (None on non-zero ranks of a multi-process run).
    """
    data = data or DataConfig()
    resolve_factory(model)  # an unknown model fails before any data is loaded
    trust_import(model)  # named by the user: its own checkpoints may load it back
    out = ensure_writable_dir(out)
    if init:
        regular_file(init, "weights file")  # a wrong --init fails before any data is fetched or loaded
    splits = load_splits(data)
    spec = spec_for(model, splits.input_shape, splits.outputs, model_kwargs, splits.model_inputs())
    torch.manual_seed(cfg.seed)
    net = spec.build()
    if init:
        load_state(net, read_weights(init), str(init), model)
    state = Path(f"{out}.state")
    result = train(net, splits, cfg, state_path=state, verbose=verbose)
    if not distributed.finish():
        return None
    test = score(net, splits.test).as_dict() if splits.labelled else None
    meta = {"data": data.model_dump(mode="json"), "training": cfg.model_dump(mode="json"),
            "result": result.as_dict(), "history": result.history, "metrics": {"test": test}}
    if splits.preprocess:
        meta["preprocess"] = splits.preprocess  # as applied (declared, or the training set's statistics)
    save_checkpoint(out, net, spec, meta)
    resume.discard(state)  # only now: a kill before the checkpoint is written resumes from the last epoch's end
    return meta
