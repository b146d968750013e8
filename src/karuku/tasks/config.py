"""Typed task settings, shared by the Python API, the CLI (`--task`, `--task-metric`, ...) and recipes (`task:`)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from karuku.config import Config


class TaskConfig(Config):
    """The quality measure: a registered task (with the metric the budget judges) or your own metric."""

    name: str | None = Field(None, description="classification, regression, fidelity (agreement with the "
                             "uncompressed model, no labels needed) or package.module:function (your metric); "
                             "default: the data's own (classification for classes, regression for values, "
                             "fidelity without labels)")
    metric: str | None = Field(None, description="the figure the budget judges (classification: top1, top5; "
                               "regression: mse, mae; fidelity: cosine, agreement); default: the task's first")
    higher_is_better: bool = Field(True, description="your metric: higher is better")
    baseline: str | None = Field(None, description="fidelity outside the loop: the uncompressed checkpoint to "
                                 "compare with (the loop compares with its own baseline)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        from karuku.tasks.registry import TASKS

        return v if v is None or ":" in v else TASKS.check(v)

    @model_validator(mode="after")
    def _metric(self):
        if self.metric is not None and self.name is not None:  # without a name: checked once the data says
            if ":" in self.name:
                raise ValueError("a metric function is its own metric: drop metric")
            from karuku.tasks.registry import TASKS

            known = [m.name for m in TASKS[self.name].metrics]
            if self.metric not in known:
                from karuku.errors import closest

                raise ValueError(f"task '{self.name}' has no metric '{self.metric}'{closest(self.metric, known)} "
                                 f"(its metrics: {', '.join(known)})")
        return self
