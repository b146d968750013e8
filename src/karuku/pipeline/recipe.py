"""Recipes: a compression job as declarative data, validated by the same typed configs as the API.

```yaml
version: 1
name: mnist-lenet300-int8
seed: 0
data: {name: mnist}
model: {name: lenet300, train: {epochs: 20, lr: 0.05}}
budget: {max_accuracy_drop: 0.5, max_size_kb: 100, profile: mcu-m4}
recovery: {finetune_epochs: 2, self_distill: true, max_rounds: 2}
stages:
  - prune: {sparsity: 0.9}
  - quantize: {mode: ptq}
```

Each stage is a one-key mapping `kind: {settings}`; the settings are validated by that stage's
config class (unknown keys are errors). Every problem is reported with its YAML path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from karuku.config import digest
from karuku.data.config import DataConfig
from karuku.errors import KarukuError
from karuku.training.config import TrainConfig

RECIPE_VERSION = 1


class ModelSource(BaseModel):
    """Where the baseline comes from: a checkpoint, or a zoo / import-path model trained first."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="zoo name or package.module:factory (trained when no checkpoint)")
    checkpoint: str | None = Field(None, description="a karuku checkpoint to start from")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="factory arguments")
    train: TrainConfig = Field(default_factory=TrainConfig, description="how to train the baseline")

    @model_validator(mode="after")
    def _one_source(self):
        if not self.name and not self.checkpoint:
            raise ValueError("give a model name (to train a baseline) or a checkpoint")
        return self


class Budget(BaseModel):
    """Limits the result must meet; a missing limit is not checked."""

    model_config = ConfigDict(extra="forbid")
    max_accuracy_drop: float = Field(1.0, ge=0, description="points of test accuracy the result may lose")
    max_size_kb: float | None = Field(None, gt=0, description="deployable size in KB (1000 bytes)")
    max_latency_ms: float | None = Field(None, gt=0, description="batch-1 ONNX Runtime latency, ms")
    profile: str | None = Field(None, description="an edge device profile the result must fit (mcu-m4, ...)")

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v):
        if v is not None:
            from karuku.measure.profiles import PROFILES

            if v not in PROFILES:
                raise ValueError(f"unknown profile '{v}'; allowed: {', '.join(sorted(PROFILES))}")
        return v


class Recovery(BaseModel):
    """What the loop does when a stage loses too much accuracy."""

    model_config = ConfigDict(extra="forbid")
    finetune_epochs: int = Field(1, ge=0, description="fine-tuning epochs per recovery")
    lr: float = Field(0.01, gt=0, description="fine-tuning learning rate")
    self_distill: bool = Field(False, description="the baseline teaches the compressed model while it recovers")
    max_rounds: int = Field(2, ge=0, description="back-off rounds per stage (less aggressive settings)")


class Stage(BaseModel):
    """One stage: its kind and its (validated) settings."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    settings: dict[str, Any] = Field(default_factory=dict)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = Field(description="recipe format version")
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$", description="names the run folder")
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSource
    budget: Budget = Field(default_factory=Budget)
    recovery: Recovery = Field(default_factory=Recovery)
    stages: list[Stage] = Field(default_factory=list)

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_mappings(cls, v):
        if not isinstance(v, list):
            raise ValueError("stages must be a list of one-key mappings like '- prune: {sparsity: 0.9}'")
        out = []
        for item in v:
            if isinstance(item, Stage):
                out.append(item)
                continue
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError("each stage must be a one-key mapping like '- prune: {sparsity: 0.9}'")
            ((kind, settings),) = item.items()
            out.append({"kind": kind, "settings": settings or {}})
        return out

    def digest(self) -> str:
        return digest(self.model_dump(mode="json"), 12)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _problems(exc: ValidationError, raw: dict) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        # show stages by their YAML shape: stages[1].prune.sparsity rather than stages[1].settings.sparsity
        if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int) and "settings" in loc:
            i = loc.index("settings")
            try:
                kind = next(iter(raw["stages"][loc[1]]))
                loc = loc[:2] + [kind] + loc[i + 1 :]
            except (KeyError, IndexError, TypeError, StopIteration):
                pass
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{_path(tuple(loc))}: {msg}")
    return problems


def parse_recipe(raw: Any, source: str = "recipe") -> tuple[Recipe | None, list[str]]:
    """Validate a loaded YAML document; return the recipe (or None) and every problem found."""
    from karuku.pipeline.stages import validate_stage

    if not isinstance(raw, dict):
        return None, [f"{source}: the top level must be a mapping"]
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        return None, _problems(exc, raw)
    problems = []
    for i, stage in enumerate(recipe.stages):
        problems += [f"stages[{i}].{stage.kind}{p}" for p in validate_stage(stage)]
    return (recipe if not problems else None), problems


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; every problem goes into one error message."""
    path = Path(path)
    if not path.is_file():
        raise KarukuError(f"recipe {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise KarukuError(f"{path}: broken YAML{where}: {getattr(exc, 'problem', exc)}") from None
    recipe, problems = parse_recipe(raw, str(path))
    if problems:
        raise KarukuError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems))
    return recipe
