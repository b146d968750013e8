"""Whole jobs, callable from Python: what each `karuku` command does, one function per technique.

Every job takes a path, the technique's one config, the output path and (optionally) the data, which is
otherwise the data the checkpoint was made with (`karuku.data.for_checkpoint`):

| job | command |
|---|---|
| `train_checkpoint(model, TrainConfig, out, data)` | `karuku train` |
| `prune_checkpoint(path, PruneConfig, out, data)` | `karuku prune` |
| `quantize_checkpoint(path, QuantConfig, out, data)` | `karuku quantize` |
| `distill_checkpoint(teacher, DistillConfig, out, data)` | `karuku distill` |
| `cluster_checkpoint(path, ClusterConfig, out, data)` | `karuku cluster` |
| `pack_checkpoint(path, PackConfig, out)` / `unpack_checkpoint(path, out)` | `karuku pack` / `unpack` |
| `export_checkpoint(path, ExportConfig, out)` | `karuku export` |
| `lottery_experiment(LotteryConfig, out)` | `karuku lottery` |
| `evaluate_checkpoint(path, data, MeasureConfig, profile)` | `karuku evaluate` |

Each job lives in its technique's package (`karuku/<technique>/job.py`); this module names them in one place.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from karuku.data.checkpoint import for_checkpoint
from karuku.data.config import DataConfig
from karuku.measure.config import MeasureConfig
from karuku.measure.evaluation import Evaluation, evaluate
from karuku.tasks.config import TaskConfig

_JOBS = {
    "train_checkpoint": "karuku.training.job",
    "prune_checkpoint": "karuku.pruning.job",
    "quantize_checkpoint": "karuku.quant.job",
    "distill_checkpoint": "karuku.distillation.job",
    "cluster_checkpoint": "karuku.codec.job",
    "pack_checkpoint": "karuku.codec.job",
    "unpack_checkpoint": "karuku.codec.job",
    "export_checkpoint": "karuku.deploy.job",
    "lottery_experiment": "karuku.lottery.job",
}

__all__ = ["evaluate_checkpoint", *_JOBS]


def __getattr__(name: str):
    if name in _JOBS:  # imported on first use: `import karuku.api` stays light
        value = getattr(importlib.import_module(_JOBS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'karuku.api' has no attribute {name!r}")


def evaluate_checkpoint(path: str | os.PathLike, data: DataConfig | dict[str, Any] | None = None,
                        measure: MeasureConfig | None = None, profile: str | None = None,
                        task: TaskConfig | dict[str, Any] | None = None) -> Evaluation:
    """Load a checkpoint (or a packed `.krk` model) and measure it on its dataset (or `data`: settings, a
    DataConfig, or your own `DataSplits`), by its task (or `task`).

    `profile`: also check whether it fits that device profile (and take its on-chip memory for the energy).
    A fidelity task compares with `task.baseline`, the uncompressed checkpoint.
    """
    from karuku.codec.krk import is_packed, load_packed
    from karuku.data.checkpoint import recorded_inputs
    from karuku.io.checkpoint import load_model
    from karuku.measure.profiles import get_profile
    from karuku.tasks.checkpoint import task_for

    measure = measure or MeasureConfig()
    if profile:
        get_profile(profile)  # an unknown profile fails before any work
    sizes, packed = None, None
    if is_packed(path):  # a .krk file: same spec and metadata, plus its packed size
        model, packed = load_packed(path)
        ckpt, sizes = packed, {"packed": len(packed.data)}
    else:
        model, ckpt = load_model(path)
    splits = for_checkpoint(ckpt, data, required=False, val_size=0)
    tcfg = task_for(ckpt, task, splits.targets if splits is not None else "classes")
    reference = load_model(tcfg.baseline)[0] if tcfg is not None and tcfg.baseline else None
    # what the model takes: the data's examples (token ids and a mask), else one input of the recorded shape
    shape = tuple(ckpt.spec.input_shape)
    inputs = splits.model_inputs() if splits is not None else recorded_inputs(model, shape, path)
    ev = evaluate(model, splits, shape, engines=measure.engines, runs=measure.runs, sizes=sizes, profile=profile,
                  details=True, task=tcfg, reference=reference, inputs=inputs)
    if packed is not None:
        ev.extra.update(packed.extra())
    return ev
