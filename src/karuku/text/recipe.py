"""Text recipes: a pretrained sentence encoder taken through prune → distil → int8 → ONNX against a fidelity
budget, each step cached in a run folder (a crashed run resumes), then timed side by side and reported.

    version: 1
    name: minilm-edge
    task: sentence-embedding
    model: {pretrained: all-minilm-l6-v2}
    data: {corpus: fortunes}
    budget: {min_mean_cosine: 0.95, min_top10_overlap: 0.7}
    stages:
      - prune: {heads: 0.25, ffn: 0.25}          # HeadPruneConfig
      - distill: {layers: 3, epochs: 2}           # TextDistillConfig
      - quantize: {mode: dynamic, smooth: 0.75}   # QuantConfig (dynamic or ptq) + SmoothQuant α
      - export: {target_isa: auto}

Every stage's settings are its technique's own typed config. Fidelity (karuku.text.task) is measured against
the pretrained fp32 model on the corpus's held-out texts after every stage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from karuku.errors import KarukuError, closest
from karuku.quant.config import QuantConfig
from karuku.text.distill import TextDistillConfig
from karuku.text.prune import HeadPruneConfig


class ExportSettings(BaseModel):
    """The export stage: which CPU the int8 file is for, and how its weights are stored."""
    model_config = ConfigDict(extra="forbid")
    target_isa: str | None = Field(None, description="the CPU the int8 file is for (default: as quantized)")
    representation: str | None = Field(None, description="u8s8 / u8s7 / u8u8 (default: the fastest exact one)")


class TextQuantSettings(QuantConfig):
    """QuantConfig plus SmoothQuant's α for sentence encoders (karuku.text.quantize)."""

    smooth: float | None = Field(None, ge=0, le=1, description="SmoothQuant α (0.75 measured best on MiniLM); "
                                                               "None: no smoothing")


STAGES: dict[str, type[BaseModel]] = {"prune": HeadPruneConfig, "distill": TextDistillConfig,
                                      "quantize": TextQuantSettings, "export": ExportSettings}


class TextModel(BaseModel):
    """Which pretrained encoder the recipe starts from."""
    model_config = ConfigDict(extra="forbid")
    pretrained: str = Field("all-minilm-l6-v2", description="a karuku.text.PRETRAINED name")


class TextData(BaseModel):
    """The corpus and how many of its training texts calibrate pruning and int8."""
    model_config = ConfigDict(extra="forbid")
    corpus: Literal["fortunes"] = "fortunes"
    calibration: int = Field(256, gt=0, description="training texts used to calibrate pruning and int8")


class FidelityBudget(BaseModel):
    """What the result must keep, measured against the pretrained fp32 model."""
    model_config = ConfigDict(extra="forbid")
    min_mean_cosine: float = Field(0.95, ge=-1, le=1)
    min_top10_overlap: float = Field(0.0, ge=0, le=1)


class Stage(BaseModel):
    """One stage: its kind and its settings (validated by that kind's config)."""
    kind: str
    settings: dict[str, Any]

    def config(self) -> BaseModel:
        return STAGES[self.kind](**self.settings)


class TextRecipe(BaseModel):
    """A whole text recipe (see the module docstring)."""
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    name: str
    task: Literal["sentence-embedding"] = "sentence-embedding"
    seed: int = 0
    model: TextModel = Field(default_factory=TextModel)
    data: TextData = Field(default_factory=TextData)
    budget: FidelityBudget = Field(default_factory=FidelityBudget)
    threads: int = Field(1, ge=1, description="threads for the timing")
    stages: list[Stage]

    @model_validator(mode="before")
    @classmethod
    def _stages(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stages"), list):
            out = []
            for i, item in enumerate(data["stages"]):
                if not isinstance(item, dict) or len(item) != 1:
                    raise ValueError(f"stages[{i}] must be one mapping like {{prune: {{...}}}}")
                (kind, settings), = item.items()
                if kind not in STAGES:
                    raise ValueError(f"stages[{i}]: unknown stage '{kind}'{closest(kind, list(STAGES))} "
                                     f"(allowed: {', '.join(STAGES)})")
                out.append({"kind": kind, "settings": settings or {}})
            data = {**data, "stages": out}
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:10]


def is_text_recipe(path: str | Path) -> bool:
    """Is this YAML file a text recipe (`task: sentence-embedding`)? False for anything unreadable: the
    classification loader then reports the problem."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and doc.get("task") == "sentence-embedding"


def load_recipe(path: str | Path) -> TextRecipe:
    """Parse and validate a text recipe; every stage's settings are checked by its own config."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KarukuError(f"cannot read recipe {path}: {exc}") from None
    try:
        recipe = TextRecipe.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(map(str, e["loc"])) or "recipe"
        raise KarukuError(f"{path}: {where}: {e['msg'].removeprefix('Value error, ')}",
                          "see docs/TEXT.md for the recipe format") from None
    for i, stage in enumerate(recipe.stages):
        try:
            stage.config()
        except KarukuError as exc:
            raise KarukuError(f"{path}: stages[{i}].{stage.kind}: {exc.message}", exc.hint) from None
        except ValidationError as exc:
            e = exc.errors()[0]
            raise KarukuError(f"{path}: stages[{i}].{stage.kind}.{'.'.join(map(str, e['loc']))}: {e['msg']}",
                              "see docs/TEXT.md") from None
    kinds = [s.kind for s in recipe.stages]
    if "export" in kinds and kinds.index("export") != len(kinds) - 1:
        raise KarukuError(f"{path}: export must be the last stage", "move it to the end")
    return recipe
