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

from karuku.config import Config, digest, field_at, fields_at, renamed, seed_field
from karuku.data.config import DataConfig
from karuku.errors import KarukuError, closest
from karuku.io.paths import regular_file
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
    min_speedup: float | None = Field(None, gt=0, le=10_000, description="the least throughput of the result's "
                                      "ONNX file relative to the fp32 baseline's, timed side by side (2 = twice as "
                                      "many samples per second)")
    profile: str | None = Field(None, description="an edge device profile the result must fit (mcu-m4, ...)")

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, v):
        """`max_accuracy_drop` (before tasks): the same limit, for the accuracy every recipe measured then."""
        return renamed(v, "max_accuracy_drop", "max_drop")

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
    seed: int = seed_field("seeds the baseline, the data split and every fine-tuning")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSource
    task: TaskConfig | None = Field(None, description="the quality measure (default: the data's own — "
                                    "classification for classes, regression for values, fidelity without labels)")
    budget: Budget = Field(default_factory=Budget)
    recovery: Recovery = Field(default_factory=Recovery)
    stages: list[StageEntry] = Field(default_factory=list)
    threads: int | None = Field(None, ge=1, le=4096, description=(
        "threads the run computes with (default: every core this process may use, 1 when the machine is busy); "
        "not part of the run folder's hash"))

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
        """The hash that names the run folder: every setting that shapes the result (threads do not name it)."""
        return digest(self.model_dump(mode="json", exclude={"threads"}), 12)


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
    problems += _file_problems(raw)
    return (recipe if not problems else None), problems


# A recipe is a page of settings: these bound what a hostile file (a YAML alias bomb, deep nesting) may cost.
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_VALUES = 100_000  # values after YAML aliases are expanded
MAX_RECIPE_DEPTH = 32


def _bounded(raw: Any, source: str) -> None:
    """Refuse a document whose expanded tree is too large or too deep, before anything walks it fully."""
    left = MAX_RECIPE_VALUES
    stack = [(raw, 1)]
    while stack:
        node, depth = stack.pop()
        left -= 1
        if left < 0:
            raise KarukuError(f"{source}: the recipe expands to more than {MAX_RECIPE_VALUES:,} values",
                              "YAML aliases repeat what they name; write the settings out")
        if depth > MAX_RECIPE_DEPTH:
            raise KarukuError(f"{source}: the recipe nests deeper than {MAX_RECIPE_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in (*node.keys(), *node.values()))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _file_problems(raw: dict) -> list[str]:
    """Files and folders a recipe names that are not there (paths are relative to where karuku runs)."""
    out = []
    model, data = raw.get("model"), raw.get("data")
    ckpt = model.get("checkpoint") if isinstance(model, dict) else None
    if isinstance(ckpt, str) and not Path(ckpt).is_file():
        out.append(f"model.checkpoint: no file {ckpt}")
    folder = data.get("path") if isinstance(data, dict) else None
    if isinstance(folder, str) and not Path(folder).is_dir():
        out.append(f"data.path: no folder {folder}")
    return out


def read_yaml(path: str | Path, what: str = "recipe") -> Any:
    """A small YAML file, bounded in size, depth and alias expansion; every kind of damage is one KarukuError."""
    path = regular_file(path, what)
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise KarukuError(f"{what} {path} is larger than {MAX_RECIPE_BYTES >> 20} MiB", f"is it a {what}?")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise KarukuError(f"{what} {path} is not UTF-8 text", f"is it a {what}?") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise KarukuError(f"{path}: broken YAML{where}: {problem}") from None
    except RecursionError:
        raise KarukuError(f"{path}: the {what} nests deeper than YAML readers go") from None
    _bounded(raw, str(path))
    return raw


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; every problem goes into one error message."""
    raw = read_yaml(path)
    recipe, problems = parse_recipe(raw, str(path))
    if problems:
        raise KarukuError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems))
    return recipe
