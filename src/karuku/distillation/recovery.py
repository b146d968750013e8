"""Self-distillation as recovery: the uncompressed model teaches its own compressed version.

After pruning or quantization, fine-tuning against the original model's soft targets can
recover more than the labels alone: the teacher also says which mistakes are near misses
(measured in docs/bench/distill.md). The caller's hooks keep the compression in place while training: a mask hook
re-zeroes pruned weights, a fake-quant hook keeps weights on the quantization grid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import nn

from karuku.data.config import DataConfig
from karuku.data.splits import DataSplits
from karuku.distillation.config import DistillConfig
from karuku.distillation.distill import distill
from karuku.distillation.hook import freeze
from karuku.training.config import TrainConfig
from karuku.training.hooks import Hook
from karuku.training.loop import TrainResult, train

# fine-tuning defaults: a short low-learning-rate run, mostly soft targets at a moderate T
RECOVERY = DistillConfig(temperature=4.0, alpha=0.9,
                         train=TrainConfig(epochs=3, lr=0.01, schedule="cosine", batch_size=64))


def recover(uncompressed: nn.Module, compressed: nn.Module, data: DataSplits | DataConfig,
            cfg: DistillConfig | TrainConfig | None = None, hooks: Sequence[Hook] = (),
            state_path: str | os.PathLike | None = None, verbose: bool = True) -> TrainResult:
    """Fine-tune `compressed` in place with `uncompressed` (a separate copy, frozen) as its teacher.

    The argument order is distill's: teacher first. `cfg`: a DistillConfig, or just the
    fine-tuning TrainConfig (then T = 4, α = 0.9). `hooks`: whatever keeps the compression
    during training (pruning masks, fake quantization); they run after the distillation
    hook, which supplies the loss.
    """
    if isinstance(cfg, TrainConfig):
        cfg = RECOVERY.model_copy(update={"train": cfg})
    return distill(uncompressed, compressed, data, cfg or RECOVERY, hooks=hooks, state_path=state_path,
                   verbose=verbose)


def finetune(model: nn.Module, data: DataSplits, cfg: TrainConfig, hooks: Sequence[Hook] = (),
             teacher: nn.Module | None = None, verbose: bool = True, label: str = "fine-tuning") -> None:
    """A technique's fine-tuning of `model` in place: on the labels alone, or, given `teacher` (the model as it
    was before the technique changed it, frozen), self-distillation as well: its soft targets for classes
    (T = 4, α = 0.9), its raw outputs for values, the teacher alone for data without labels.

    Soft targets regularise a sparse or weight-shared model where plain fine-tuning over-fits (measured on
    Fashion-MNIST's LeNet-300-100 in docs/bench/data.md)."""
    if teacher is None:
        train(model, data, cfg, hooks=list(hooks), verbose=verbose, label=label)
        return
    match = "soft-targets" if data.targets == "classes" else "outputs"
    dcfg = RECOVERY.model_copy(update={"train": cfg, "match": match,
                                       "alpha": RECOVERY.alpha if data.labelled else 1.0})
    distill(teacher, model, data, dcfg, hooks=hooks, verbose=verbose)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of `model` to teach its own compressed version."""
    import copy

    return freeze(copy.deepcopy(model))
