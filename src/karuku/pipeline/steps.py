"""The loop's two kinds of step, each cached in the run folder: the baseline, and one attempt of a stage."""

from __future__ import annotations

import shutil
from pathlib import Path

from karuku.errors import KarukuError
from karuku.io.atomic import atomic_path
from karuku.io.checkpoint import load_model, save_checkpoint
from karuku.models.spec import spec_for
from karuku.pipeline.attempt import Attempt
from karuku.pipeline.run import Run
from karuku.pipeline.runfolder import key_of
from karuku.pipeline.stages import keep_hooks, stage_for

STEP_FORMAT = 3  # part of every step's key: steps cached by an older layout are redone, not misread


def baseline_step(run: Run) -> Attempt:
    """The recipe's checkpoint, or its model trained on its data: measured like every later candidate."""
    r = run.recipe
    key = key_of("baseline", STEP_FORMAT, r.model.model_dump(mode="json"), r.data.model_dump(mode="json"), r.seed)

    def make(step_dir: Path) -> dict:
        path = step_dir / "model.safetensors"
        if r.model.checkpoint:
            model, ckpt = load_model(r.model.checkpoint)
            if tuple(ckpt.spec.input_shape) != run.input_shape:
                raise KarukuError(f"model.checkpoint {r.model.checkpoint} expects inputs "
                                  f"{tuple(ckpt.spec.input_shape)} but data '{r.data.name}' has {run.input_shape}",
                                  "use the dataset the model was trained on")
            with atomic_path(path) as tmp:
                shutil.copyfile(r.model.checkpoint, tmp)
        else:
            import torch

            from karuku.training.loop import train

            spec = spec_for(r.model.name, run.input_shape, run.splits.outputs, r.model.kwargs, run.inputs)
            torch.manual_seed(r.seed)
            model = spec.build()
            cfg = r.model.train.model_copy(update={"seed": r.seed})
            train(model, run.splits, cfg, state_path=step_dir / "train.state", verbose=run.verbose,
                  label="baseline training")
            save_checkpoint(path, model, spec, {"stages": [], "transforms": [], "task": run.task_meta()})
        return Attempt("baseline", str(path), run.measure(model, reference=model)).as_dict()

    return Attempt.from_dict(run.folder.step(key, "baseline", make, describe))


def attempt_step(run: Run, parent: Attempt, index: int, settings, rnd: int) -> Attempt:
    """Apply one stage with these settings to the parent; recover when over the accuracy budget."""
    r, stage = run.recipe, stage_for(settings)
    dump = settings.model_dump(mode="json")
    quality = (run.task.name, run.metric.name, r.budget.drop_limit(run.metric), r.budget.min_fidelity)
    key = key_of(parent.key, index, stage.kind, dump, r.recovery.model_dump(mode="json"), *quality)
    label = f"stage {index + 1}/{len(r.stages)} {stage.kind}" + (f" (back-off {rnd})" if rnd else "")

    def make(step_dir: Path) -> dict:
        model, ckpt = load_model(parent.checkpoint)
        out = stage.apply(model, settings, run.stage_run(ckpt, step_dir))
        fresh = out.spec is not None  # a new architecture (a distilled student) starts a fresh chain
        sizes = dict(out.sizes) if fresh else {**ckpt.meta.get("sizes", {}), **out.sizes}
        m = run.measure(out.model, sizes)
        before, recovered = None, False
        if out.recover and run.over_budget(m) and r.recovery.epochs:
            before = m
            run.recover(out.model, r.recovery.epochs, r.recovery.lr, keep_hooks(out.model, ckpt) + out.hooks)
            m, recovered = run.measure(out.model, sizes), True
        path = step_dir / "model.safetensors"
        if fresh:
            spec, sections, transforms, kinds = out.spec, dict(out.sections), list(out.transforms), [stage.kind]
        else:
            spec, sections = ckpt.spec, {**ckpt.sections, **out.sections}
            transforms = [*ckpt.meta.get("transforms", []), *out.transforms]
            kinds = [*ckpt.meta.get("stages", []), stage.kind]
        meta = {"stages": kinds, "transforms": transforms, "sizes": sizes, "task": run.task_meta(),
                "stage_meta": {**ckpt.meta.get("stage_meta", {}), stage.kind: out.meta}}
        save_checkpoint(path, out.model, spec, meta, sections)
        return Attempt(stage.kind, str(path), m, index=index, round=rnd, settings=dump,
                       settings_changed=settings.model_dump(mode="json", exclude_defaults=True),
                       before_recovery=before, recovered=recovered, drop=run.drop(m),
                       within_budget=run.within_budget(m), stage_meta=out.meta, artifacts=out.artifacts).as_dict()

    return Attempt.from_dict(run.folder.step(key, label, make, describe))


def describe(result: dict) -> str:
    """A finished step in a few words: its quality (and change), deployed size, whether it was recovered."""
    from karuku.measure.evaluation import Evaluation
    from karuku.measure.units import size
    from karuku.tasks.registry import TASKS

    m = Evaluation.from_dict(result["measure"])
    task = TASKS.get_or_none(m.task)
    metric = next((x for x in task.metrics if x.name == m.metric), None) if task else None
    if metric is not None:
        value = f"test {'accuracy' if m.metric == 'top1' else metric.description} {metric.show(m.quality)}"
    else:
        value = f"test {m.metric} {m.quality:.6g}" if m.quality is not None else "measured"
    drop = result.get("drop", result.get("accuracy_drop"))
    unit = f" {metric.unit}" if metric is not None and metric.unit else ""
    change = f" ({-drop:+.2f}{unit})" if result.get("index") is not None and drop is not None else ""
    return (f"{value}{change}, {size(m.deploy_bytes)} ({m.deploy_kind})"
            + (", after recovery training" if result.get("recovered") else ""))
