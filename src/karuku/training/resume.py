"""Training state on disk, written at each epoch end so a crashed run resumes where it was.

Tensors only (safetensors): model weights, optimiser buffers, RNG state, hook tensors; the JSON part holds the
counters, the history and the run's key: digests of everything that shapes the result (`state_key`). A state
whose key differs is refused, naming what differs, rather than resumed into a result its metadata misdescribes.
The state is written at the last epoch end too and removed only by `discard`, which a job calls once its result
is durably written: a kill between training and saving loses nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from karuku.config import digest
from karuku.errors import KarukuError
from karuku.io import safefile

KIND = "karuku.train-state"
KEY_PARTS = {"train": "training settings", "data": "data settings", "start": "starting weights (model, its "
             "arguments, --init or the parent checkpoint)", "hooks": "the technique's settings", "extra": "inputs"}


def state_key(cfg, data_config, model: torch.nn.Module, hooks, extra: Any = None) -> dict[str, str]:
    """Digests of what shapes a training run's result: its settings, its data, the weights and the hooks' tensors
    it starts from, and `extra` (e.g. a teacher's weights)."""
    return {"train": cfg.digest(), "data": digest(data_config.model_dump(mode="json")),
            "start": safefile.tensor_digest(model.state_dict()),
            "hooks": digest([[type(h).__name__, safefile.tensor_digest(h.state_dict())] for h in hooks]),
            "extra": digest(extra)}


def discard(path: str | os.PathLike | None) -> None:
    """Remove a resume state once the result it led to is durably written."""
    if path is not None:
        Path(path).unlink(missing_ok=True)


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
               key: dict[str, str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore model, optimiser and RNG of a run with this `key` (`state_key`); return (hook tensors, doc)."""
    from karuku.io.checkpoint import load_state as load_weights

    tensors, doc = safefile.read(path, "training state")
    fresh = f"delete {Path(path).name} to start afresh, or write to another --out"
    if doc.get("kind") != KIND:
        raise KarukuError(f"{path} is not a karuku training state", fresh)
    stored = doc.get("key")
    if not isinstance(stored, dict):
        raise KarukuError(f"{path} was written by an older karuku and cannot say what run it belongs to", fresh)
    differ = [KEY_PARTS.get(k, k) for k in key if stored.get(k) != key[k]]
    if differ:
        raise KarukuError(f"{path} belongs to another run: its {', '.join(differ)} differ from this one's", fresh)
    counts = [doc.get("iteration"), doc.get("epoch")]
    if not (all(type(c) is int and c >= 0 for c in counts) and isinstance(doc.get("history"), list)
            and all(isinstance(h, dict) for h in doc["history"])):
        raise KarukuError(f"{path} is damaged (its iteration, epoch or history is not what karuku writes)", fresh)
    try:
        load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
        _join_optimizer(opt, tensors, doc["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise KarukuError(f"{path} is damaged ({type(exc).__name__}: {reason})", fresh) from None
    return {k[5:]: v for k, v in tensors.items() if k.startswith("hook.")}, doc
