"""How long a training will take on this machine, measured before it starts (for settings that run for hours)."""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from karuku.data.batches import head, length
from karuku.data.splits import DataSplits
from karuku.progress import Progress
from karuku.training.config import TrainConfig
from karuku.training.evaluate import score
from karuku.training.hooks import Hook


def seconds_per_iteration(model: nn.Module, data: DataSplits, cfg: TrainConfig, hooks: list[Hook] = (),
                          steps: int = 10) -> float:
    """Seconds one iteration of `train(model, data, cfg)` takes here, its validation passes included (amortised).

    Timed with the training loop itself on a copy of `model`: a run of 2 iterations and one of 2 + `steps`, the
    difference divided by `steps` (what every run pays once — setting up, the final evaluation — cancels out);
    the model, `hooks`, the random state and a running `Progress` are left as they were.
    """
    from karuku.training.loop import planned_iterations, train

    def timed(n: int) -> float:
        net = copy.deepcopy(model)
        probe = cfg.model_copy(update={"iterations": n, "eval_every": n + 1})  # one evaluation, at the end
        start = time.perf_counter()
        train(net, data, probe, hooks=copy.deepcopy(list(hooks)), verbose=False)
        return time.perf_counter() - start

    with torch.random.fork_rng(), Progress.apart():
        timed(1)  # warm-up: the first run in a process pays one-time imports and allocations
        per_step = max(0.0, timed(2 + steps) - timed(2)) / steps
        evaluation = 0.0
        val_n = length(data.val) if data.val is not None else 0
        if val_n:
            n = min(val_n, 512)
            start = time.perf_counter()
            score(copy.deepcopy(model), head(data.val, n), cfg.eval_batch_size)
            per_eval = (time.perf_counter() - start) * val_n / n
            per_epoch = planned_iterations(cfg.model_copy(update={"iterations": None, "epochs": 1}), data)
            evaluation = per_eval / (cfg.eval_every or per_epoch)
    return per_step + evaluation
