"""`Run`: what one compression run holds and offers its steps — the recipe, the run folder, the data, the
task, the baseline, and the two functions the loop is built on: `measure` and `recover`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from torch import nn

from karuku.data.splits import DataSplits, load_splits
from karuku.errors import KarukuError
from karuku.measure.evaluation import Evaluation, evaluate
from karuku.pipeline.attempt import Attempt
from karuku.pipeline.recipe import Recipe
from karuku.pipeline.recovery import recover
from karuku.pipeline.runfolder import RunFolder
from karuku.pipeline.stage import StageRun
from karuku.pipeline.stages import keep_hooks
from karuku.tasks.measure import resolve
from karuku.tasks.registry import Metric, Task
from karuku.training.config import TrainConfig


@dataclass
class Run:
    """One compression run: the recipe, its folder, the data, the task, the baseline, `measure` / `recover`."""

    recipe: Recipe
    folder: RunFolder
    splits: DataSplits
    task: Task
    metric: Metric
    verbose: bool = True
    baseline: Attempt | None = None
    _teacher: nn.Module | None = field(default=None, repr=False)

    threads: int = 1

    @classmethod
    def start(cls, recipe: Recipe, run_dir: str | Path | None = None, verbose: bool = True,
              threads: int | None = None, data: DataSplits | None = None) -> Run:
        """The run folder (default runs/<name>-<hash of the recipe>), the threads (`threads`, else the
        recipe's, else `karuku.threads.default_threads`), the recipe's data (or `data`, e.g.
        `karuku.data.from_torch(...)`) and its task."""
        from karuku.io.checkpoint import trust_import
        from karuku.threads import usable_cores, use_threads

        for named in (recipe.model.name, recipe.task.name if recipe.task else None):
            if named:
                trust_import(named)  # the recipe's author named it
        folder = RunFolder(run_dir or Path("runs") / f"{recipe.name}-{recipe.digest()}",
                           echo=(lambda line: print(line, flush=True)) if verbose else None)
        stages = ", ".join(s.kind for s in recipe.stages) or "none"
        folder.log(f"recipe '{recipe.name}': baseline, then {len(recipe.stages)} stage(s): {stages}; "
                   f"run folder {folder.root}")
        wanted = threads or recipe.threads
        if wanted and wanted > usable_cores():
            folder.log(f"threads: the recipe asks for {wanted} but this process may use {usable_cores()} core(s); "
                       f"using {usable_cores()}")
            wanted = usable_cores()
        used = use_threads(wanted)
        folder.log(f"threads: {used}" + ("" if wanted else " (chosen from the usable cores and the machine's load)"))
        splits = data or load_splits(recipe.data.model_copy(update={"split_seed": recipe.seed}))
        task, metric = resolve(recipe.task, splits.targets)
        check_budget(recipe, task, metric)
        return cls(recipe, folder, splits, task, metric, verbose, threads=used)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape (the first's, for examples of several inputs): what a model spec records."""
        return tuple(self.splits.input_shape)

    @cached_property
    def inputs(self):
        """What the run's models take, for measuring, exporting and timing them: the data's input shape, or its
        first test examples' inputs when they are several (`DataSplits.model_inputs`; read once)."""
        return self.splits.model_inputs()

    def measure(self, model: nn.Module, sizes: dict[str, int] | None = None,
                reference: nn.Module | None = None) -> Evaluation:
        """Every candidate the same way: the task's quality on the test set (compared with the baseline's
        outputs when the task asks: `reference`, by default the baseline) and the deployed form's figures,
        its ONNX timed."""
        if reference is None and self.task.needs == "baseline":
            reference = self.teacher()
        return evaluate(model, self.splits, engines=("onnxruntime",), runs=20, sizes=sizes,
                        task=self.task, reference=reference)

    def over_budget(self, m: Evaluation) -> bool:
        """More quality lost than the budget allows: recovery training is due."""
        return not self.within_budget(m)

    def drop(self, m: Evaluation) -> float:
        """How much the task's metric worsened from the baseline (points for a percentage)."""
        return self.metric.worse_by(self.baseline.measure.quality, m.quality)

    def within_budget(self, m: Evaluation) -> bool:
        """The budget's quality limits hold (size, speed and device limits are judged on the result)."""
        from karuku.pipeline.budget import quality_checks

        return all(c["ok"] for c in quality_checks(m, self.baseline.measure, self.recipe.budget, self.metric))

    def task_meta(self) -> dict:
        """The task as checkpoints record it (meta "task"), so `karuku evaluate` of a run's model judges it the
        same way: a fidelity task names the run's baseline checkpoint to compare with."""
        meta = {"name": self.task.name, "metric": self.metric.name}
        if ":" in self.task.name:
            meta = {"name": self.task.name, "higher_is_better": self.metric.higher_is_better}
        if self.task.needs == "baseline" and self.baseline is not None:
            meta["baseline"] = str(Path(self.baseline.checkpoint).resolve())
        return meta

    def rank(self, attempt: Attempt) -> tuple:
        return attempt.rank(self.metric)

    def teacher(self) -> nn.Module:
        """The baseline model (loaded once): the teacher of self-distilling recovery."""
        if self._teacher is None:
            from karuku.io.checkpoint import load_model

            self._teacher, _ = load_model(self.baseline.checkpoint)
        return self._teacher

    def recover(self, model: nn.Module, epochs: int, lr: float, hooks: list) -> None:
        """Recovery training; with self-distillation — always for unlabelled data — the baseline teaches
        (its class probabilities for a classification, its outputs otherwise); compression kept by `hooks`."""
        rec = self.recipe.recovery
        cfg = rec.train_config(self.recipe.model.train, self.recipe.seed, epochs, lr)
        teach = rec.self_distill or not self.splits.labelled
        match = "soft-targets" if self.task.name == "classification" else "outputs"
        recover(model, self.splits, cfg, hooks, self.teacher() if teach else None, self.verbose, match)

    def default_training(self) -> TrainConfig:
        """A stage that must train and is given no settings trains for the recovery's epochs (≥ 1) at its lr."""
        rec = self.recipe.recovery
        return TrainConfig(epochs=max(1, rec.epochs), lr=rec.lr, seed=self.recipe.seed)

    def stage_run(self, parent, folder: Path) -> StageRun:
        """What a stage sees while it runs from the checkpoint `parent` with its artifacts in `folder`."""
        return StageRun(self.splits, parent, folder, self.recipe.seed, self.verbose, self.default_training,
                        self.recover, lambda model: keep_hooks(model, parent))


def check_budget(recipe: Recipe, task: Task, metric: Metric) -> None:
    """The budget's quality limits must make sense for the task (a typo'd limit would judge nothing)."""
    b = recipe.budget
    if b.min_fidelity is not None and task.budget != "min_fidelity":
        raise KarukuError(f"budget.min_fidelity applies to the fidelity task, and this run's task is '{task.name}'",
                          "set task: {name: fidelity}, or limit the metric with budget.max_drop")
    if b.drop_limit(metric) is None and b.min_fidelity is None:
        raise KarukuError(f"the budget sets no quality limit for the task's metric '{metric.name}'",
                          f"give budget.max_drop (in {metric.name}'s own units)"
                          + (" or budget.min_fidelity" if task.budget == "min_fidelity" else ""))
