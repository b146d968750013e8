"""PruneConfig: the one typed description of a pruning job (Python API, CLI and recipes)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from karuku.config import Config, seed_field
from karuku.training.config import TrainConfig

_SCHEDULE = re.compile(r"^(oneshot|one-shot|iterative(:\d+)?|agp(:\d+)?)$")
MAX_ROUNDS = 100  # iterative:N — each round prunes and fine-tunes; Han et al. needed a handful
MAX_EVERY = 1_000_000


class PruneConfig(Config):
    """What to prune, how much, how to choose, on what schedule, and how to fine-tune."""

    sparsity: float = Field(0.9, ge=0, lt=1, description=(
        "fraction to remove: of the prunable weights (unstructured), of each group's channels "
        "(structured, target=channels) or of the MACs (structured, target=macs)"))
    scope: Literal["layer", "global"] = Field("layer", description=(
        "layer: the same rate in every layer (overrides by pattern); global: one threshold across layers"))
    method: str = Field("magnitude", description=(
        "scoring: magnitude or random (unstructured); l1, l2, bn (BatchNorm γ), group (L2 over every coupled "
        "weight) or random (structured; magnitude means l1)"))
    structured: bool = Field(False, description="remove whole channels / neurons and shrink the modules")
    target: Literal["channels", "macs"] = Field("channels", description=(
        "structured only: whether sparsity counts removed channels or removed MACs"))
    schedule: str = Field("oneshot", description=(
        "oneshot, iterative:N (N rounds of prune then fine-tune) or agp[:K] (gradual, every K steps)"))
    overrides: dict[str, float] = Field(default_factory=dict, description=(
        "layer scope: rate per layer-name pattern (fnmatch), first match wins, e.g. {'fc3': 0.45}"),
        examples=["fc3=0.45"], json_schema_extra={"cli": "override"})
    exclude: list[str] = Field(default_factory=list, description="layer-name patterns (fnmatch) never pruned")
    agp_end: float = Field(0.75, gt=0, le=1, description="agp: fraction of fine-tuning by which the target is reached")
    round_to: int = Field(1, ge=1, le=4096, description=(
        "structured: keep a multiple of this many channels per layer (8 or 16 suit CPU kernels)"))
    allocation: Literal["uniform", "budget"] = Field("uniform", description=(
        "structured, target=macs: uniform (one ratio for every group, bisected; with round_to it can overshoot) "
        "or budget (each group's width chosen in round_to blocks by importance per MAC, landing near the target)"))
    on_unsupported: Literal["error", "skip"] = Field("error", description=(
        "structured: an op it cannot rewrite is an error, or (skip) its channels are left untouched with a warning"))
    seed: int = seed_field("seed of random scores")
    finetune: TrainConfig | None = Field(None, description=(
        "fine-tuning after pruning (per round for iterative:N; agp prunes while it trains); none: no fine-tuning"))
    distill: bool = Field(False, description=(
        "fine-tuning also learns the soft targets of the model as it was before pruning (self-distillation, "
        "T 4, α 0.9; its outputs for values): less over-fitting of a sparse model than the labels alone"))

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if not _SCHEDULE.match(v):
            raise ValueError(f"'{v}' is not a schedule; use oneshot, iterative:N or agp[:K]")
        n = int(v.split(":")[1]) if ":" in v else 1
        top = MAX_ROUNDS if v.startswith("iterative") else MAX_EVERY
        if not 1 <= n <= top:
            raise ValueError(f"'{v}': N must be from 1 to {top:,}")
        return "oneshot" if v == "one-shot" else v

    @field_validator("overrides")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        for pattern, rate in v.items():
            if not 0 <= rate < 1:
                raise ValueError(f"override {pattern}={rate} is outside [0, 1)")
        return v

    @model_validator(mode="after")
    def _method(self):
        # checked here, not when pruning starts: a typo in a recipe fails `karuku recipe validate`
        if self.structured:
            from karuku.pruning.structured.criteria import CRITERIA

            if self.method != "magnitude":
                CRITERIA.check(self.method)
        else:
            from karuku.pruning.scores import SCORES

            SCORES.check(self.method)
        return self

    @model_validator(mode="after")
    def _check(self):
        if self.structured and self.kind == "agp":
            raise ValueError("agp is for unstructured pruning; use iterative:N with structured")
        if self.overrides and self.scope == "global":
            raise ValueError("overrides apply to scope=layer; use exclude with scope=global")
        if self.target == "macs" and not self.structured:
            raise ValueError("target=macs needs structured pruning (unstructured sparsity removes no dense MACs)")
        if self.allocation == "budget" and self.target != "macs":
            raise ValueError("allocation=budget needs structured pruning with target=macs")
        # settings that cannot take effect are refused, not ignored
        if self.given("agp_end") and self.kind != "agp":
            raise ValueError("`agp_end` applies to the agp `schedule` only")
        unstructured = [n for n in self.given("round_to", "on_unsupported", "allocation") if not self.structured]
        if unstructured:
            raise ValueError(f"`{unstructured[0]}` applies to `structured` pruning only")
        if self.given("seed") and self.method != "random":
            raise ValueError("`seed` applies to `method` random only (the other scores are deterministic)")
        if self.distill and self.finetune is None and self.kind == "oneshot":
            raise ValueError("`distill` teaches fine-tuning, and one-shot pruning without `finetune` has none")
        return self

    @property
    def kind(self) -> str:
        """oneshot, iterative or agp."""
        return self.schedule.split(":")[0]

    @property
    def rounds(self) -> int:
        """Prune-and-fine-tune rounds (iterative:N), 1 otherwise."""
        return int(self.schedule.split(":")[1]) if self.kind == "iterative" and ":" in self.schedule else (
            5 if self.kind == "iterative" else 1)

    @property
    def every(self) -> int:
        """AGP: steps between mask updates."""
        return int(self.schedule.split(":")[1]) if self.kind == "agp" and ":" in self.schedule else 100


class SensitivityConfig(Config):
    """A sensitivity sweep: each layer pruned alone at each rate (`karuku sensitivity`)."""

    rates: list[float] = Field(default_factory=lambda: [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98], min_length=1,
                               max_length=100, description="sparsities to sweep, each in [0, 1)")
    method: str = Field("magnitude", description="scoring: magnitude or random")
    target: float | None = Field(None, ge=0, lt=1, description="choose per-layer rates reaching this overall sparsity")
    limit: int = Field(5000, gt=0, le=10_000_000, description="score on the first N validation (else test) examples")

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        bad = [r for r in v if not 0 <= r < 1]
        if bad:
            raise ValueError(f"rate {bad[0]} is outside [0, 1)")
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        from karuku.pruning.scores import SCORES

        return SCORES.check(v)
