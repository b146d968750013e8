"""Recipes: a compression job as declarative data, validated by the same typed configs as the API.

```yaml
version: 1
name: mnist-lenet300-int8
seed: 0
data: {name: mnist}
task: {name: classification, metric: top1}      # optional: the data's own task by default
model: {name: lenet300, train: {epochs: 20, lr: 0.05}}
budget: {max_drop: 0.5, max_size_kb: 100, profile: mcu-m4}
recovery: {epochs: 2, self_distill: true, max_rounds: 2}
stages:
  - prune: {sparsity: 0.9, finetune: {epochs: 2}}
  - quantize: {mode: ptq}
```

Each stage is a one-key mapping `kind: {settings}`; the settings are validated by that stage's config class
(its technique's, unknown keys are errors). `parse_recipe` reports every problem at once, each with its YAML
path and, where it can, what was meant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from karuku.config import Config, digest, field_at, fields_at
from karuku.data.config import DataConfig
from karuku.errors import KarukuError, closest
from karuku.pipeline.recovery import Recovery
from karuku.tasks.config import TaskConfig
from karuku.training.config import TrainConfig

# keys earlier recipes used, and what says the same now
RENAMED = {"finetune_epochs": "finetune: {epochs: N}", "tune_epochs": "finetune: {epochs: N}"}
RENAMED_IN = {"recovery": {"finetune_epochs": "epochs"}}


class ModelSource(Config):
    """Where the baseline comes from: a checkpoint, or a zoo / import-path model trained first."""

    name: str | None = Field(None, description="zoo name or package.module:factory (trained when no checkpoint)")
    checkpoint: str | None = Field(None, description="a karuku checkpoint to start from")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="factory arguments")
    train: TrainConfig = Field(default_factory=TrainConfig, description="how to train the baseline")

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str | None) -> str | None:
        from karuku.models.registry import check_name

        return v if v is None else check_name(v)

    @model_validator(mode="after")
    def _one_source(self):
        if not self.name and not self.checkpoint:
            raise ValueError("give a model name (to train a baseline) or a checkpoint")
        return self


class Budget(Config):
    """Limits the result must meet; a missing limit is not checked. Quality limits are in the task's terms."""

    max_drop: float | None = Field(None, ge=0, description="how much the task's metric may worsen from the "
                                   "baseline: points for percentages (accuracy), the metric's units otherwise "
                                   "(MSE); default 1 point for percentages")
    min_fidelity: float | None = Field(None, ge=-1, le=1, description="task fidelity: the least cosine "
                                       "similarity (or top-1 agreement, 0.99 = 99 %) with the baseline's outputs")
    max_size_kb: float | None = Field(None, gt=0, description="deployable size in KB (1000 bytes)")
    max_latency_ms: float | None = Field(None, gt=0, description="batch-1 ONNX Runtime latency, ms")
    profile: str | None = Field(None, description="an edge device profile the result must fit (mcu-m4, ...)")

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, v):
        """`max_accuracy_drop` (before tasks): the same limit, for the accuracy every recipe measured then."""
        if isinstance(v, dict) and "max_accuracy_drop" in v:
            v = dict(v)
            old = v.pop("max_accuracy_drop")
            if v.get("max_drop") is not None and old is not None and v["max_drop"] != old:
                raise ValueError("give max_drop only (max_accuracy_drop is its old name)")
            v.setdefault("max_drop", old)
        return v

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v):
        if v is not None:
            from karuku.measure.profiles import PROFILES

            PROFILES.check(v)
        return v

    def drop_limit(self, metric) -> float | None:
        """The most the metric may worsen (`max_drop`; 1 point by default for a percentage when no fidelity
        floor is set), or None when only `min_fidelity` limits quality."""
        if self.max_drop is not None:
            return self.max_drop
        return 1.0 if metric.percent and self.min_fidelity is None else None


class StageEntry(Config):
    """One recipe stage: its kind and its settings (validated by the stage's config when the recipe is parsed)."""

    kind: str
    settings: dict[str, Any] = Field(default_factory=dict)


class Recipe(Config):
    """A whole compression job: the data, the baseline, the budget, recovery and the stages, in order."""

    version: Literal[1] = Field(description="recipe format version")
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$", description="names the run folder")
    seed: int = Field(0, description="seeds the baseline, the data split and every fine-tuning")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSource
    task: TaskConfig | None = Field(None, description="the quality measure (default: the data's own — "
                                    "classification for classes, regression for values, fidelity without labels)")
    budget: Budget = Field(default_factory=Budget)
    recovery: Recovery = Field(default_factory=Recovery)
    stages: list[StageEntry] = Field(default_factory=list)

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_mappings(cls, v):
        if not isinstance(v, list):
            raise ValueError("stages must be a list of one-key mappings like '- prune: {sparsity: 0.9}'")
        out = []
        for item in v:
            if isinstance(item, StageEntry):
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


def _explain(cls: type[BaseModel], loc: tuple, msg: str) -> str:
    """A suggestion for a problem: the key meant by an unknown one, or what a missing field is."""
    if msg.startswith("Extra inputs") and loc:
        key, where = str(loc[-1]), str(loc[-2]) if len(loc) > 1 else ""
        renamed = RENAMED_IN.get(where, {}).get(key) or RENAMED.get(key)
        if renamed:
            return f"{msg}: renamed, use {renamed}"
        known = list(fields_at(cls, loc[:-1]) or {})
        return msg + (closest(key, known) or " (known: " + ", ".join(known) + ")")
    if msg == "Field required":
        info = field_at(cls, loc)
        return f"{msg} ({info.description})" if info is not None and info.description else msg
    return msg


def _stage_problems(raw_stages: Any) -> list[str]:
    """Every problem of every stage, whatever else in the recipe is wrong."""
    from karuku.pipeline import stages

    if not isinstance(raw_stages, list):
        return []  # reported with the top level
    out = []
    for i, item in enumerate(raw_stages):
        if not isinstance(item, dict) or len(item) != 1:
            continue  # reported with the top level
        ((kind, settings),) = item.items()
        where = f"stages[{i}].{kind}"
        for loc, msg in stages.problems(kind, settings):
            cfg = stages.get_stage(kind).config if not (msg.startswith("unknown stage") or not loc) else None
            out.append(where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc) + ": "
                       + (_explain(cfg, loc, msg) if cfg is not None else msg))
    return out


def parse_recipe(raw: Any, source: str = "recipe") -> tuple[Recipe | None, list[str]]:
    """Validate a loaded YAML document; return the recipe (or None) and every problem found, each with its path."""
    if not isinstance(raw, dict):
        return None, [f"{source}: the top level must be a mapping"]
    problems = []
    recipe = None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc, msg = tuple(err["loc"]), err["msg"].removeprefix("Value error, ")
            if loc[:1] == ("stages",) and len(loc) > 1:
                continue  # every stage is checked below, by its own config
            problems.append(f"{_path(loc)}: {_explain(Recipe, loc, msg)}")
    problems += _stage_problems(raw.get("stages"))
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
