"""Training state on disk, written at each epoch end so a crashed run resumes where it was.

Tensors only (safetensors): model weights, optimiser buffers, RNG state, hook tensors;
the JSON part holds the counters, the history and a hash of the settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from karuku.errors import KarukuError
from karuku.io import safefile

KIND = "karuku.train-state"


def _split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, buffers in sd["state"].items():
        for key, value in buffers.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def _join_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    for name, v in doc["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": doc["param_groups"]})


def save_state(path: str | os.PathLike, model: torch.nn.Module, opt: torch.optim.Optimizer,
               hook_tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> None:
    """Write the resume state atomically: weights, optimiser buffers, RNG state, hook tensors and `doc`."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_doc = _split_optimizer(opt)
    tensors.update(opt_tensors)
    tensors.update({f"hook.{k}": v for k, v in hook_tensors.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    safefile.write(path, tensors, dict(doc, kind=KIND, optimizer=opt_doc))


def load_state(path: str | os.PathLike, model: torch.nn.Module, opt: torch.optim.Optimizer,
               config_hash: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore model, optimiser and RNG; return (hook tensors, doc)."""
    tensors, doc = safefile.read(path, "training state")
    if doc.get("kind") != KIND:
        raise KarukuError(f"{path} is not a karuku training state")
    if doc.get("config_hash") != config_hash:
        raise KarukuError(f"{path} belongs to a run with other settings",
                          f"delete {Path(path).name} to start afresh, or use another --out")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    _join_optimizer(opt, tensors, doc["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    return {k[5:]: v for k, v in tensors.items() if k.startswith("hook.")}, doc
