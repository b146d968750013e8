"""A loop stage: how a technique joins the compression loop. The loop core never names a technique.

A technique writes one class in its own package and registers it with its config type:

>>> @register_stage("prune", PruneConfig)
... class PruneStage(Stage):
...     def apply(self, model, cfg, run): ...           # compress `model` (a copy) -> StageOutput
...     def backoff(self, cfg, round): ...              # less aggressive settings for back-off round ≥ 1, or None
...     def keep_hooks(self, model, ckpt): ...          # hooks that keep this stage's compression while training

A recipe's `- prune: {...}` is validated by `PruneConfig`; the loop finds the stage by the config's type
(as torchao dispatches `quantize_(model, config)`), so the settings and the code that uses them are one class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku.config import Config
from karuku.registry import Registry


@dataclass
class StageOutput:
    """What a stage produced: the model plus everything needed to save, resume and recover it."""

    model: nn.Module
    transforms: list[dict[str, Any]] = field(default_factory=list)  # appended to the checkpoint's
    sections: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # shown in the report (per-layer sparsity, bits...)
    sizes: dict[str, int] = field(default_factory=dict)  # forms stored outside the model, e.g. {"packed": bytes}
    hooks: list = field(default_factory=list)  # keep the compression during recovery fine-tuning
    artifacts: dict[str, str] = field(default_factory=dict)  # files written (ONNX, .krk, C)
    recover: bool = True  # False for stages that change nothing trainable (export, pack)
    spec: Any = None  # a new ModelSpec when the stage replaces the architecture (distillation into a student)


@dataclass
class StageRun:
    """What a stage sees while it runs: the data, the checkpoint it starts from, its folder, the run's defaults."""

    splits: Any  # karuku.data.DataSplits
    parent: Any  # the karuku.io.checkpoint.Checkpoint the stage starts from
    folder: Path  # artifacts go here
    seed: int
    verbose: bool
    default_training: Callable[[], Any]  # the TrainConfig a stage uses when its config gives none
    recover: Callable[[nn.Module, int, float, list], None]  # recovery training (self-distillation when asked)
    keep_hooks: Callable[[nn.Module], list]  # hooks of every earlier stage, rebuilt for `model`

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape (the first's, for examples of several inputs): what a model spec records."""
        return tuple(self.splits.input_shape)

    @cached_property
    def inputs(self):
        """What the model takes, for `karuku.measure.inputs.signature`: the data's input shape, or its first test
        examples' inputs when they are several (token ids and a mask); read once per stage."""
        return self.splits.model_inputs()

    def artifact(self, name: str) -> Path:
        return self.folder / name

    def train_config(self, given):
        """A stage's training: its own settings (seeded by the recipe), else the run's default."""
        return given.model_copy(update={"seed": self.seed}) if given is not None else self.default_training()


class Stage:
    """Base of a technique's loop stage; `kind` and `config` are set by `register_stage`."""

    kind: str = ""
    config: type[Config] = Config
    needs: tuple[str, ...] = ()  # settings a recipe must give (optional in the config itself)

    def apply(self, model: nn.Module, cfg: Any, run: StageRun) -> StageOutput:
        raise NotImplementedError

    def backoff(self, cfg: Any, round_: int) -> Any | None:
        """Less aggressive settings for back-off round `round_` (≥ 1), or None when there is nothing to ease."""
        return None

    def keep_hooks(self, model: nn.Module, ckpt) -> list:
        """Training hooks that keep this stage's compression on `model`, rebuilt from a saved checkpoint."""
        return []


STAGES: Registry[Stage] = Registry("stage", hint="allowed")
BY_CONFIG: dict[type, Stage] = {}  # the same stages, by their config type


def register_stage(kind: str, config: type[Config]):
    """Register a `Stage` subclass as recipe stage `kind` with settings `config` (its technique's config)."""

    def deco(cls: type[Stage]) -> type[Stage]:
        stage = cls()
        stage.kind, stage.config = kind, config
        STAGES.register(kind, stage)
        BY_CONFIG[config] = stage
        return cls

    return deco
