"""`Attempt`: one step of a compression run — the baseline, or one stage tried with one set of settings."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from karuku.measure.evaluation import Evaluation


@dataclass
class Attempt:
    """What one step produced and how it measured; stored as the step's `result.json` (`as_dict`)."""

    kind: str  # "baseline" or the stage kind
    checkpoint: str  # the step's model.safetensors
    measure: Evaluation
    key: str = ""  # the step's folder: a digest of everything that shapes its result
    label: str = ""
    index: int | None = None  # the stage's position in the recipe
    round: int = 0  # 0: the recipe's settings; k: the k-th back-off
    settings: dict[str, Any] = field(default_factory=dict)
    settings_changed: dict[str, Any] = field(default_factory=dict)  # the settings that differ from the defaults
    before_recovery: Evaluation | None = None
    recovered: bool = False
    drop: float = 0.0  # how much the task's metric worsened from the baseline (points for a percentage)
    within_budget: bool = True  # the quality limits hold (max_drop, min_fidelity)
    stage_meta: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["measure"] = self.measure.as_dict()
        out["before_recovery"] = self.before_recovery.as_dict() if self.before_recovery else None
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attempt:
        names = {f.name for f in fields(cls)}
        d = {"drop": d.get("accuracy_drop", 0.0), "within_budget": d.get("within_accuracy", True), **d}  # older runs
        data = {k: v for k, v in d.items() if k in names}
        data["measure"] = Evaluation.from_dict(d["measure"])
        data["before_recovery"] = Evaluation.from_dict(d["before_recovery"]) if d.get("before_recovery") else None
        return cls(**data)

    def rank(self, metric) -> tuple:
        """Which of a stage's attempts to keep: within the quality limits, then the best metric, then earliest."""
        return self.within_budget, metric.oriented(self.measure.quality), -self.round
