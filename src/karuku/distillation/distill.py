"""`distill(teacher, student, data, DistillConfig(...))`: train a student on karuku's loop."""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import nn

from karuku.data.batches import first_inputs, in_memory, tensor_parts
from karuku.data.config import DataConfig
from karuku.data.splits import DataSplits, load_splits
from karuku.distillation.config import DistillConfig
from karuku.distillation.hook import DistillHook
from karuku.io.safefile import tensor_digest
from karuku.training.hooks import Hook
from karuku.training.loop import TrainResult, train


def make_hook(teacher: nn.Module, student: nn.Module, data: DataSplits, cfg: DistillConfig) -> DistillHook:
    """The distillation hook for `data`: teacher logits cached only when the inputs are in memory and not
    augmented (data read as needed is never gathered: its teacher runs live, batch by batch)."""
    cache = cfg.cache_teacher and not data.config.augment_shift and in_memory(data.train)
    inputs = tensor_parts(data.train)[0] if cache else first_inputs(data.train, 2)
    return DistillHook(teacher, student, inputs, cfg.temperature, cfg.alpha, cfg.hints, cfg.hint_weight,
                       cache=cache, match=cfg.match)


def distill(teacher: nn.Module, student: nn.Module, data: DataSplits | DataConfig,
            cfg: DistillConfig | None = None, hooks: Sequence[Hook] = (),
            state_path: str | os.PathLike | None = None, verbose: bool = True) -> TrainResult:
    """Train `student` in place to match `teacher` (frozen) on `data`'s training set.

    `hooks` join the same loop after the distillation hook (e.g. a pruning mask or fake
    quantization), so its loss is the one used. Works under `torchrun` like `train`.
    """
    cfg = cfg or DistillConfig()
    splits = data if isinstance(data, DataSplits) else load_splits(data)
    hook = make_hook(teacher, student, splits, cfg)
    try:
        teacher_key = tensor_digest(teacher.state_dict()) if state_path else None  # another teacher: another run
        return train(student, splits, cfg.train, hooks=[hook, *hooks], state_path=state_path, verbose=verbose,
                     label="distill", state_key=teacher_key)
    finally:
        hook.close()
