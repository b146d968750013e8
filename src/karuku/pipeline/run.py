"""`Run`: what one compression run holds and offers its steps — the recipe, the run folder, the data, the
baseline, and the two functions the loop is built on: `measure` and `recover`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from karuku.data.splits import DataSplits, load_splits
from karuku.measure.evaluation import Evaluation, evaluate
from karuku.pipeline.attempt import Attempt
from karuku.pipeline.recipe import Recipe
from karuku.pipeline.recovery import recover
from karuku.pipeline.runfolder import RunFolder
from karuku.pipeline.stage import StageRun
from karuku.pipeline.stages import keep_hooks
from karuku.training.config import TrainConfig


@dataclass
class Run:
    """One compression run: the recipe, its folder, the data, the baseline, and `measure` / `recover`."""

    recipe: Recipe
    folder: RunFolder
    splits: DataSplits
    verbose: bool = True
    baseline: Attempt | None = None
    _teacher: nn.Module | None = field(default=None, repr=False)

    threads: int = 1

    @classmethod
    def start(cls, recipe: Recipe, run_dir: str | Path | None = None, verbose: bool = True,
              threads: int | None = None) -> Run:
        """The run folder (default runs/<name>-<hash of the recipe>), the threads (`threads`, else the
        recipe's, else `karuku.threads.default_threads`) and the recipe's data."""
        from karuku.io.checkpoint import trust_import
        from karuku.threads import usable_cores, use_threads

        if recipe.model.name:
            trust_import(recipe.model.name)  # the recipe's author named it
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
        splits = load_splits(recipe.data.model_copy(update={"split_seed": recipe.seed}))
        return cls(recipe, folder, splits, verbose, threads=used)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.splits.input_shape)

    def measure(self, model: nn.Module, sizes: dict[str, int] | None = None) -> Evaluation:
        """Every candidate the same way: test accuracy and the deployed form's figures, its ONNX timed."""
        return evaluate(model, self.splits, engines=("onnxruntime",), runs=20, sizes=sizes)

    def over_budget(self, m: Evaluation) -> bool:
        """More accuracy lost than the budget allows: recovery training is due."""
        return self.drop(m) > self.recipe.budget.max_accuracy_drop

    def drop(self, m: Evaluation) -> float:
        """Points of test accuracy below the baseline."""
        return 100 * (self.baseline.measure.accuracy - m.accuracy)

    def within_accuracy(self, m: Evaluation) -> bool:
        return self.drop(m) <= self.recipe.budget.max_accuracy_drop + 1e-9

    def teacher(self) -> nn.Module:
        """The baseline model (loaded once): the teacher of self-distilling recovery."""
        if self._teacher is None:
            from karuku.io.checkpoint import load_model

            self._teacher, _ = load_model(self.baseline.checkpoint)
        return self._teacher

    def recover(self, model: nn.Module, epochs: int, lr: float, hooks: list) -> None:
        """Recovery training; with self-distillation the baseline teaches (compression kept by `hooks`)."""
        rec = self.recipe.recovery
        cfg = rec.train_config(self.recipe.model.train, self.recipe.seed, epochs, lr)
        recover(model, self.splits, cfg, hooks, self.teacher() if rec.self_distill else None, self.verbose)

    def default_training(self) -> TrainConfig:
        """A stage that must train and is given no settings trains for the recovery's epochs (≥ 1) at its lr."""
        rec = self.recipe.recovery
        return TrainConfig(epochs=max(1, rec.epochs), lr=rec.lr, seed=self.recipe.seed)

    def stage_run(self, parent, folder: Path) -> StageRun:
        """What a stage sees while it runs from the checkpoint `parent` with its artifacts in `folder`."""
        return StageRun(self.splits, parent, folder, self.recipe.seed, self.verbose, self.default_training,
                        self.recover, lambda model: keep_hooks(model, parent))
