"""Text recipes: a pretrained sentence encoder taken through prune → distil → int8 → ONNX against a fidelity
budget, each step cached in a run folder (a crashed run resumes), then timed side by side and reported.

    version: 1
    name: minilm-edge
    task: sentence-embedding
    model: {pretrained: all-minilm-l6-v2}
    data: {corpus: fortunes}
    budget: {min_fidelity: 0.95, min_top10_overlap: 0.7, max_size_kb: 15000}
    stages:
      - prune: {heads: 0.25, ffn: 0.25}          # HeadPruneConfig
      - distill: {layers: 3, epochs: 2}           # TextDistillConfig
      - quantize: {mode: dynamic, smooth: 0.75}   # QuantConfig (dynamic or ptq) + SmoothQuant α
      - export: {target_isa: auto}

Every stage's settings are its technique's own typed config. Fidelity (karuku.text.task) is measured against
the pretrained fp32 model on the corpus's held-out texts after every stage. The budget is the pipeline's
(`karuku.pipeline.recipe.Budget`, the same keys and checks as every other recipe) in a sentence encoder's terms,
plus retrieval agreement (`min_top10_overlap`); the text recipes' first key, `min_mean_cosine`, is read as
`min_fidelity`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from karuku.config import Config, renamed
from karuku.errors import KarukuError, closest
from karuku.pipeline.recipe import Budget
from karuku.quant.config import QuantConfig
from karuku.text.distill import TextDistillConfig
from karuku.text.prune import HeadPruneConfig
from karuku.text.quantize import EMBEDDING, word_table_bits


class ExportSettings(Config):
    """The export stage: which CPU the int8 file is for, and how its weights are stored."""
    target_isa: str | None = Field(None, description="the CPU the int8 file is for (default: as quantized)")
    representation: str | None = Field(None, description="u8s8 / u8s7 / u8u8 (default: the fastest exact one)")


class TextQuantSettings(QuantConfig):
    """QuantConfig plus SmoothQuant's α and GPTQ rounding for sentence encoders (karuku.text.quantize)."""

    smooth: float | None = Field(None, ge=0, le=1, description="SmoothQuant α (0.75 measured best on MiniLM); "
                                                               "None: no smoothing")
    rounding: Literal["nearest", "gptq"] = Field("nearest", description="how weights meet the int8 grid: nearest, "
                                                 "or GPTQ against the calibration texts' inputs (dynamic / ptq)")
    train: TextDistillConfig | None = Field(None, description="mode qat: how the fake-quantized encoder is "
                                                           "distilled from the float one (default: 1 epoch, lr 2e-5)")
    qat_activations: Literal["static", "dynamic"] = Field(
        "static", description="mode qat: activations on a trained static range (the ptq file), or on each input's "
                              "own range (the dynamic file)")
    qat_teacher: Literal["float", "pretrained"] = Field(
        "float", description="mode qat: distil from the float model of this point, or from the pretrained encoder "
                             "(a distilled student keeps learning from its teacher, on the distillation texts, "
                             "with the distill stage's hint targets)")

    @model_validator(mode="after")
    def _train_is_qat(self):
        qat_only = [k for k in ("train", "qat_activations", "qat_teacher") if k in self.model_fields_set]
        if qat_only and self.mode != "qat":
            raise ValueError(f"{qat_only[0]} applies to mode qat only (mode is {self.mode}); drop it or set mode: "
                             "qat")
        if self.rounding != "nearest" and self.mode == "qat":
            raise ValueError("rounding gptq does not apply to mode qat (training sets the weights); drop it")
        return self


STAGES: dict[str, type[BaseModel]] = {"prune": HeadPruneConfig, "distill": TextDistillConfig,
                                      "quantize": TextQuantSettings, "export": ExportSettings}


class TextModel(Config):
    """Which pretrained encoder the recipe starts from."""
    pretrained: str = Field("all-minilm-l6-v2", description="a karuku.text.PRETRAINED name")


class TextData(Config):
    """The corpus and how many of its training texts calibrate pruning and int8."""
    corpus: Literal["fortunes", "python-docs"] = Field("fortunes", description="held-out texts measure fidelity; "
                                                       "training texts calibrate and distil")
    extra: list[Literal["fortunes", "python-docs"]] = Field([], description="more corpora whose training texts "
                                                            "join distillation's (more varied text than one corpus)")
    extra_texts: int | None = Field(None, gt=0, description="from each extra corpus, this many training texts "
                                    "(a fixed draw); None: all of them")
    augment: int = Field(0, ge=0, description="this many more distillation texts made from the main corpus's "
                         "training texts (word runs and joins of two; karuku.text.corpus.augment_texts)")
    calibration: int = Field(256, gt=0, description="training texts used to calibrate pruning and int8")

    @model_validator(mode="after")
    def _count_needs_extra(self):
        if self.extra_texts is not None and not self.extra:
            raise ValueError("extra_texts counts texts of the extra corpora, and extra names none; add extra: "
                             "[python-docs] or drop extra_texts")
        return self


class TextBudget(Budget):
    """The pipeline's budget in a sentence encoder's terms: `min_fidelity` is the least mean cosine to the
    pretrained fp32 embeddings on the held-out texts (the fidelity task's own figure), `max_size_kb` the final ONNX
    file, `max_latency_ms` its batch-1 × 32-token latency; `min_top10_overlap` adds retrieval agreement."""

    min_fidelity: float | None = Field(0.95, ge=-1, le=1, description="the least mean cosine of the result's "
                                       "embeddings to the pretrained fp32 model's on held-out texts")
    min_top10_overlap: float | None = Field(None, ge=0, le=1, description="retrieval agreement: the least share "
                                            "of each held-out text's 10 nearest neighbours the result keeps")

    @model_validator(mode="before")
    @classmethod
    def _old_text_name(cls, v):
        """`min_mean_cosine` (the first text recipes): the same floor, now named as in every recipe."""
        return renamed(v, "min_mean_cosine", "min_fidelity")

    @model_validator(mode="after")
    def _text_limits(self):
        for name in ("max_drop", "profile"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} does not apply to sentence encoders; use min_fidelity, min_top10_overlap, "
                                 "max_size_kb, max_latency_ms or min_speedup")
        return self

    def checks(self, fidelity: dict[str, float], file_bytes: int | None, latency_ms: float | None,
               per_s: float | None = None, baseline_per_s: float | None = None) -> list[dict]:
        """Every limit set, with its measured value (karuku.pipeline.budget.limit_check); `per_s`,
        `baseline_per_s`: batch 32 × 128 throughput of the result's ONNX file and of the fp32 baseline timed beside
        it (`min_speedup`)."""
        from karuku.pipeline.budget import limit_check, speedup_check

        out = []
        if self.min_fidelity is not None:
            out.append(limit_check("min_fidelity", self.min_fidelity, fidelity["mean_cosine"], "cosine", "cosine"))
        if self.min_top10_overlap is not None:
            out.append(limit_check("min_top10_overlap", self.min_top10_overlap, fidelity["top10_overlap"], "share",
                                   "top-10 overlap"))
        if self.max_size_kb is not None:
            if file_bytes is None:
                raise KarukuError("budget.max_size_kb needs an ONNX file", "end the recipe with an export stage")
            out.append(limit_check("max_size_kb", self.max_size_kb, round(file_bytes / 1000, 2), "KB"))
        if self.max_latency_ms is not None:
            if latency_ms is None:
                raise KarukuError("budget.max_latency_ms needs an ONNX file", "end the recipe with an export stage")
            out.append(limit_check("max_latency_ms", self.max_latency_ms, round(latency_ms, 4), "ms"))
        if self.min_speedup is not None:
            if per_s is None:
                raise KarukuError("budget.min_speedup needs an ONNX file", "end the recipe with an export stage")
            out.append(speedup_check(self.min_speedup, per_s, baseline_per_s, "batch 32 × 128 tokens"))
        return out


class Stage(Config):
    """One stage: its kind and its settings (validated by that kind's config)."""
    kind: str
    settings: dict[str, Any]

    def config(self) -> BaseModel:
        return STAGES[self.kind](**self.settings)


class TextRecipe(Config):
    """A whole text recipe (see the module docstring)."""
    version: Literal[1] = 1
    name: str
    task: Literal["sentence-embedding"] = "sentence-embedding"
    seed: int = 0
    model: TextModel = Field(default_factory=TextModel)
    data: TextData = Field(default_factory=TextData)
    budget: TextBudget = Field(default_factory=TextBudget)
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
    _check_word_bits(path, recipe.stages)
    kinds = [s.kind for s in recipe.stages]
    if "export" in kinds and kinds.index("export") != len(kinds) - 1:
        raise KarukuError(f"{path}: export must be the last stage", "move it to the end")
    file_limits = [k for k in ("max_size_kb", "max_latency_ms") if getattr(recipe.budget, k) is not None]
    if file_limits and "export" not in kinds:
        raise KarukuError(f"{path}: budget.{file_limits[0]} is measured on the ONNX file, and no stage exports one",
                          "end the stages with `- export: {}`")
    return recipe


def _check_word_bits(path: Path, stages: list[Stage]) -> None:
    """A student distilled against its word table's k-bit rounding (`distill: {word_bits: k}`) gains only if
    the quantize stage after it stores that table at k bits; any other width would round it again."""
    for i, stage in enumerate(stages):
        if stage.kind != "distill":
            continue
        cfg = stage.config()
        quant = next((s for s in stages[i + 1:] if s.kind == "quantize"), None)
        if quant is None:
            continue
        stored = word_table_bits(quant.config())
        for field, bits in [("word_bits", cfg.word_bits), *[(f"member_word_bits[{m}]", b)
                                                            for m, b in enumerate(cfg.member_word_bits or [])]]:
            if bits is None or stored == bits:
                continue
            held = "in float" if stored is None else f"at {stored} bits"
            raise KarukuError(f"{path}: stages[{i}].distill.{field} is {bits}, but the quantize stage stores the "
                              f"word table {held}", f"give quantize layer_bits: {{{EMBEDDING}: {bits}}}, "
                              f"or drop {field.split('[')[0]}")
