"""What every stage and the loop share during one run: data, baseline, budget, run folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torch import nn

from karuku.data.splits import DataSplits
from karuku.errors import KarukuError
from karuku.io.checkpoint import Checkpoint, load_model, save_checkpoint
from karuku.measure.evaluation import Evaluation, evaluate
from karuku.models.spec import ModelSpec
from karuku.pipeline import stages
from karuku.pipeline.recipe import Recipe
from karuku.pipeline.runfolder import RunFolder, key_of
from karuku.training.config import TrainConfig
from karuku.training.loop import train


def measure(model: nn.Module, splits: DataSplits, sizes: dict[str, int] | None = None) -> Evaluation:
    """Every candidate the same way: test accuracy and the deployed form's figures, its ONNX timed."""
    return evaluate(model, splits, threads=2, engines=("onnxruntime",), runs=20, sizes=sizes)


class Context:
    def __init__(self, recipe: Recipe, run: RunFolder, splits: DataSplits, verbose: bool = True):
        self.recipe, self.run, self.splits, self.verbose = recipe, run, splits, verbose
        self.input_shape = splits.input_shape
        self.baseline: dict[str, Any] = {}
        self.current_ckpt: Checkpoint | None = None
        self._step_dir: Path | None = None
        self._teacher: nn.Module | None = None

    # -- helpers stages use -------------------------------------------------------------------
    def artifact_path(self, name: str) -> Path:
        assert self._step_dir is not None
        return self._step_dir / name

    def active_hooks(self, model: nn.Module) -> list:
        return stages.restore_hooks(model, self.current_ckpt) if self.current_ckpt else []

    def teacher(self) -> nn.Module:
        if self._teacher is None:
            self._teacher, _ = load_model(self.baseline["checkpoint"])
        return self._teacher

    def train_config(self, given: TrainConfig | None) -> TrainConfig:
        """A stage's training: its own settings (seeded by the recipe), else the recovery's epochs (≥ 1) and lr."""
        if given is not None:
            return given.model_copy(update={"seed": self.recipe.seed})
        rec = self.recipe.recovery
        return TrainConfig(epochs=max(1, rec.finetune_epochs), lr=rec.lr, seed=self.recipe.seed)

    def finetune(self, model: nn.Module, epochs: int, lr: float, hooks: list) -> None:
        """Recovery training; with self-distillation the baseline teaches (compression kept by `hooks`)."""
        base = self.recipe.model.train
        cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=base.batch_size, optimizer=base.optimizer,
                          momentum=base.momentum, seed=self.recipe.seed, schedule="cosine")
        if self.recipe.recovery.self_distill:
            from karuku.distillation import recover

            recover(self.teacher(), model, self.splits, cfg, hooks=hooks, verbose=self.verbose)
        else:
            train(model, self.splits, cfg, hooks=hooks, verbose=self.verbose)

    # -- steps -----------------------------------------------------------------------------------
    def baseline_step(self) -> dict[str, Any]:
        r = self.recipe
        key = key_of("baseline", r.model.model_dump(mode="json"), r.data.model_dump(mode="json"), r.seed)

        def make(step_dir: Path) -> dict[str, Any]:
            path = step_dir / "model.safetensors"
            if r.model.checkpoint:
                model, ckpt = load_model(r.model.checkpoint)
                if tuple(ckpt.spec.input_shape) != tuple(self.input_shape):
                    raise KarukuError(f"model.checkpoint {r.model.checkpoint} expects inputs "
                                      f"{tuple(ckpt.spec.input_shape)} but data '{r.data.name}' has {self.input_shape}",
                                      "use the dataset the model was trained on")
                shutil.copyfile(r.model.checkpoint, path)
            else:
                import torch

                spec = ModelSpec(name=r.model.name, input_shape=self.input_shape,
                                 num_classes=self.splits.num_classes, kwargs=r.model.kwargs)
                torch.manual_seed(r.seed)
                model = spec.build()
                cfg = r.model.train.model_copy(update={"seed": r.seed})
                train(model, self.splits, cfg, state_path=step_dir / "train.state", verbose=self.verbose)
                save_checkpoint(path, model, spec, {"stages": [], "transforms": []})
            return {"kind": "baseline", "checkpoint": str(path), "measure": measure(model, self.splits).as_dict()}

        self.baseline = self.run.step(key, "baseline", make)
        return self.baseline

    def attempt(self, parent: dict[str, Any], index: int, stage, settings, rnd: int) -> dict[str, Any]:
        """Apply one stage with these settings to the parent; recover when over the accuracy budget."""
        r = self.recipe
        key = key_of(parent["key"], index, stage.kind, settings.model_dump(mode="json"),
                     r.recovery.model_dump(mode="json"), r.budget.max_accuracy_drop)
        label = f"stage {index + 1} {stage.kind}" + (f" (back-off {rnd})" if rnd else "")

        def make(step_dir: Path) -> dict[str, Any]:
            model, ckpt = load_model(parent["checkpoint"])
            self.current_ckpt, self._step_dir = ckpt, step_dir
            mod = stages.adapter(stage.kind)
            out = mod.apply(model, settings, self)
            fresh = out.spec is not None  # a new architecture (a distilled student) starts a fresh chain
            sizes = dict(out.sizes) if fresh else {**ckpt.meta.get("sizes", {}), **out.sizes}
            kinds = [stage.kind] if fresh else [*ckpt.meta.get("stages", []), stage.kind]
            m = measure(out.model, self.splits, sizes).as_dict()
            before, recovered = None, False
            over = 100 * (self.baseline["measure"]["accuracy"] - m["accuracy"]) > r.budget.max_accuracy_drop
            if out.recover and over and r.recovery.finetune_epochs:
                before = m
                self.finetune(out.model, r.recovery.finetune_epochs, r.recovery.lr,
                              self.active_hooks(out.model) + out.hooks)
                m, recovered = measure(out.model, self.splits, sizes).as_dict(), True
            path = step_dir / "model.safetensors"
            if fresh:
                spec, sections, transforms = out.spec, dict(out.sections), list(out.transforms)
            else:
                spec, sections = ckpt.spec, {**ckpt.sections, **out.sections}
                transforms = [*ckpt.meta.get("transforms", []), *out.transforms]
            meta = {"stages": kinds, "transforms": transforms, "sizes": sizes,
                    "stage_meta": {**ckpt.meta.get("stage_meta", {}), stage.kind: out.meta}}
            save_checkpoint(path, out.model, spec, meta, sections)
            drop = 100 * (self.baseline["measure"]["accuracy"] - m["accuracy"])
            return {"kind": stage.kind, "index": index, "round": rnd, "settings": settings.model_dump(mode="json"),
                    "settings_changed": settings.model_dump(mode="json", exclude_defaults=True),
                    "checkpoint": str(path), "measure": m, "before_recovery": before, "recovered": recovered,
                    "accuracy_drop": drop, "within_accuracy": drop <= r.budget.max_accuracy_drop + 1e-9,
                    "stage_meta": out.meta, "artifacts": out.artifacts}

        return self.run.step(key, label, make)
