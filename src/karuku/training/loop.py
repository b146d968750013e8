"""The one training loop, for any nn.Module; techniques join it through hooks.

Learning rates are a pure function of the iteration, data order a pure function of
(seed, epoch), and the RNG state is saved with the weights at each epoch end: so a run
resumed from its state file reaches the same weights as one that never stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from karuku.data.batches import count, feed, first_inputs, length, unlabelled
from karuku.data.loaders import make_loader
from karuku.data.splits import DataSplits
from karuku.errors import KarukuError
from karuku.models.check import check_forward
from karuku.progress import Progress, duration
from karuku.threads import adapt as adapt_threads
from karuku.training import resume
from karuku.training.config import TrainConfig
from karuku.training.distributed import barrier, world_from_env
from karuku.training.evaluate import score, supervised_loss
from karuku.training.hooks import Hook
from karuku.training.state import TrainState


@dataclass(frozen=True)
class TrainResult:
    """What a training run did: its length, time, validation history and the best validation point."""

    iterations: int
    epochs: int
    seconds: float
    history: list[dict[str, Any]]
    best_val_loss: float | None
    best_iteration: int | None
    final_val: dict[str, Any] | None
    threads: int = 1  # torch threads it ran with: float sums, and so the last digits, depend on them
    threads_stepped: list[int] | None = None  # [iteration, threads] where an automatic count stepped down

    def as_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "epochs": self.epochs, "seconds": round(self.seconds, 2),
                "best_val_loss": self.best_val_loss, "best_iteration": self.best_iteration,
                "final_val": self.final_val, "threads": self.threads, "threads_stepped": self.threads_stepped}


def lr_factor(cfg: TrainConfig, it: int, total: int) -> float:
    """Multiplier of the base learning rate at iteration `it` (0-based)."""
    if it < cfg.warmup_iterations:
        return (it + 1) / cfg.warmup_iterations
    t = (it - cfg.warmup_iterations) / max(1, total - cfg.warmup_iterations)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        return 0.1 ** ((t >= 0.5) + (t >= 0.75))
    return 1.0


def planned_iterations(cfg: TrainConfig, data: DataSplits) -> int:
    """How many iterations `train(model, data, cfg)` runs: `cfg.iterations`, else its epochs over data.train
    (a stream of unknown length is counted, one pass, nothing kept)."""
    if cfg.iterations or not cfg.epochs:
        return cfg.iterations or 0
    n = length(data.train)
    return cfg.epochs * (math.ceil(n / cfg.batch_size) if n is not None else count_batches(data.train, cfg))


def count_batches(ds, cfg: TrainConfig) -> int:
    """Batches in one pass over a stream of unknown length: read through once, nothing kept."""
    return sum(1 for _ in make_loader(ds, cfg.batch_size))


def _per_epoch(loader, data: DataSplits, cfg: TrainConfig) -> int | None:
    try:
        return len(loader)
    except TypeError:  # a stream of unknown length: counted only when epochs must be turned into iterations
        return None if cfg.iterations else count_batches(data.train, cfg)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimiser `cfg` names over `params`."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(model: nn.Module, data: DataSplits, cfg: TrainConfig | None = None, hooks: list[Hook] | None = None,
          state_path: str | os.PathLike | None = None, verbose: bool = True, label: str = "train",
          state_key: Any = None) -> TrainResult:
    """Train `model` in place on `data.train`, evaluating on `data.val`.

    A batch's input part is what the model is called on (`karuku.data.batches.feed`): a tensor, or for a model of
    several inputs a tuple in forward's order or a dict by name (examples `((input_ids, attention_mask), y)`).

    `state_path`: where the per-epoch resume state lives (written at every epoch end, the last included). An
    existing one of the same run — same settings, data, starting weights, hooks and `state_key` — is resumed;
    one of another run is refused. The caller removes it with `resume.discard` once its result is written.
    `verbose`: progress on the console (`karuku.progress`: a bar on a terminal, else a line per epoch and every
    half minute, each with the elapsed time and an estimate), under `label`; inside a running `Progress` it
    counts toward that one.
    """
    cfg, hooks = cfg or TrainConfig(), list(hooks or [])
    if not cfg.iterations and not cfg.epochs:  # epochs 0: the weights as given (a pretrained model)
        return TrainResult(0, 0, 0.0, [], None, None, None)
    check_forward(model, first_inputs(data.train, 2),  # one line before any step, not a raw error
                  data.num_classes if data.targets == "classes" else None)
    world = world_from_env()
    loader = make_loader(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed,
                         augment_shift=data.config.augment_shift, rank=world.rank, world=world.size)
    per_epoch = _per_epoch(loader, data, cfg)
    total = cfg.iterations or cfg.epochs * per_epoch
    epochs = math.ceil(total / per_epoch) if per_epoch else None
    params = [p for p in model.parameters() if p.requires_grad] + [p for h in hooks for p in h.parameters()]
    opt = make_optimizer(cfg, params)
    state = TrainState(model, opt, cfg, total, world)
    torch.manual_seed(cfg.seed)
    key = resume.state_key(cfg, data.config, model, hooks, state_key) if state_path else None
    if state_path and Path(state_path).exists():
        hook_tensors, doc = resume.load_state(state_path, model, opt, key)
        for i, h in enumerate(hooks):
            h.load_state_dict({k.split(".", 1)[1]: v for k, v in hook_tensors.items() if k.startswith(f"{i}.")})
        state.iteration, state.epoch, state.history = doc["iteration"], doc["epoch"], doc["history"]
        if per_epoch and state.iteration != min(state.epoch * per_epoch, total):  # written at epoch ends only
            raise KarukuError(f"{state_path} is damaged (iteration {state.iteration} is not the end of epoch "
                              f"{state.epoch} of this run)", f"delete {Path(state_path).name} to start afresh")
    net = DistributedDataParallel(model) if world.size > 1 else model
    eval_every = cfg.eval_every or per_epoch or total
    val = data.val if data.val is not None and not unlabelled(data.val) else None  # no labels: nothing to score
    outer = Progress.current()
    progress = (outer.part(total, label, done=state.iteration, lines=verbose) if outer is not None
                else Progress(total, label, enabled=verbose and world.is_main, done=state.iteration))
    if state.iteration:
        progress.note(f"resumed at epoch {state.epoch}, iteration {state.iteration} of {total:,}")
    elif outer is None:
        progress.note(f"{total:,} iterations ({epochs} epoch{'s' * (epochs > 1)} of {per_epoch:,})" if epochs
                      else f"{total:,} iterations over a stream of unknown length")
    for h in hooks:
        h.on_start(state)
    start, threads, stepped = time.perf_counter(), torch.get_num_threads(), None
    judged = False  # whether the run's length was judged (once, after LONG_AFTER seconds of steps)
    try:
        while state.iteration < total:
            loader.set_epoch(state.epoch)
            running, seen = 0.0, 0
            for x, y in loader:
                if adapt_threads():  # an automatic thread count steps down when the machine gets busy
                    stepped = [state.iteration, 1]
                    progress.note(f"the machine got busy: continuing with 1 thread from iteration {state.iteration}")
                loss = _step(net, state, hooks, x, y, lr_factor(cfg, state.iteration, total))
                running, seen = running + loss * count(x), seen + count(x)
                if state.iteration % eval_every == 0 or state.iteration == total:
                    _evaluate(state, val)
                progress.update(state.iteration, f"loss {running / max(seen, 1):.4f}")
                if not judged and time.perf_counter() - start > LONG_AFTER:
                    judged = True
                    _say_if_long(progress, resumable=state_path is not None)
                if state.iteration >= total:
                    break
            state.epoch += 1
            for h in hooks:
                h.on_epoch_end(state)
            last = state.history[-1] if state.history else {}
            progress.line(f"epoch {state.epoch}/{epochs or '?'}  iter {state.iteration:,}/{total:,}  "
                          f"loss {running / max(seen, 1):.4f}"
                          + (f"  val_loss {last['val_loss']:.4f}" if last else "")
                          + (f"  val_acc {100 * last['val_acc']:.2f}%" if "val_acc" in last else ""))
            if state_path and world.is_main:
                _save(state_path, state, hooks, key)
            barrier(world)
    finally:
        progress.close()
    best = state.best
    return TrainResult(state.iteration, state.epoch, time.perf_counter() - start, state.history,
                       best["val_loss"] if best else None, best["iteration"] if best else None,
                       state.history[-1] if state.history else None, threads, stepped)


LONG = 3600.0  # a run (or the job it is part of) that will take longer than this says so as it starts
LONG_AFTER = 2.0  # seconds of timed steps before it judges


def _say_if_long(progress: Progress, resumable: bool) -> None:
    """One line when the job (this training, or the longer step it is part of) will take hours at this pace;
    a job of many trainings (prune rounds, a lottery) says it once."""
    root = progress
    while hasattr(root, "outer"):
        root = root.outer
    left = progress.estimate()
    if root.long_said or left is None or left <= LONG:
        return
    root.long_said = True
    stop = ("Ctrl-C stops it and the same command resumes from the last epoch's end" if resumable else
            "Ctrl-C stops it (rerun, this step starts over)")
    progress.note(f"this will take about {duration(left)} at the pace of the first iterations here; {stop}; "
                  "fewer epochs or iterations shorten it")


def _step(net: nn.Module, state: TrainState, hooks: list[Hook], x, y, factor: float) -> float:
    for g in state.optimizer.param_groups:
        g["lr"] = state.config.lr * factor
    net.train()
    out = feed(net, x)
    loss = None
    for h in hooks:
        loss = h.loss(state, x, y, out)
        if loss is not None:
            break
    if loss is None:
        loss = supervised_loss(out, y, state.config.label_smoothing)
    state.optimizer.zero_grad(set_to_none=True)
    value = float(loss.detach())
    if not math.isfinite(value):
        # a diverged run only writes garbage from here on; stop it while the last state is sound
        raise KarukuError(f"training diverged at iteration {state.iteration + 1}: the loss is {value}",
                          "lower lr, add warmup_iterations or set max_grad_norm")
    loss.backward()
    for h in hooks:
        h.after_backward(state)
    if state.config.max_grad_norm is not None:
        # after the hooks, so DDP-averaged and masked gradients are what gets clipped
        params = [p for g in state.optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, state.config.max_grad_norm)
    state.optimizer.step()
    state.iteration += 1
    for h in hooks:
        h.after_step(state)
    return value


def _evaluate(state: TrainState, val) -> None:
    if val is None:
        return
    s = score(state.model, val, state.config.eval_batch_size)
    state.history.append({"iteration": state.iteration, "epoch": state.epoch, "val_loss": s.loss,
                          **({"val_acc": s.accuracy} if s.accuracy is not None else {})})


def _save(path, state: TrainState, hooks: list[Hook], key: dict[str, str]) -> None:
    hook_tensors = {f"{i}.{k}": v for i, h in enumerate(hooks) for k, v in h.state_dict().items()}
    resume.save_state(path, state.model, state.optimizer, hook_tensors,
                      {"key": key, "iteration": state.iteration, "epoch": state.epoch, "history": state.history})
