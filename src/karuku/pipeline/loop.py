"""`compress`: baseline → for each stage: compress, evaluate, recover, back off → report.

The core below names no technique: stages come from the registry (their techniques' packages), each step
is measured and recovered by the `Run`, and every step is cached in the run folder, so re-running resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karuku.errors import KarukuError
from karuku.pipeline.attempt import Attempt
from karuku.pipeline.recipe import Recipe
from karuku.pipeline.run import Run
from karuku.pipeline.stages import backoffs
from karuku.pipeline.steps import attempt_step, baseline_step


@dataclass(frozen=True)
class Outcome:
    """A finished run: its folder, whether the budget was met, the chosen result, the limits and the report."""

    run_dir: Path
    ok: bool
    final: dict[str, Any]
    checks: list[dict[str, Any]]
    report: Path


def compress(recipe: Recipe, run_dir: str | Path | None = None, verbose: bool = True, lang: str = "en",
             threads: int | None = None, data=None) -> Outcome:
    """Run a recipe (`threads`: overrides its own; `data`: your DataSplits); each step is cached: reruns resume."""
    run = Run.start(recipe, run_dir, verbose, threads, data)
    current = run.baseline = baseline_step(run)
    attempts = [current]
    for index, stage in enumerate(recipe.stages):
        tried = []
        for rnd, settings in enumerate(backoffs(stage.kind, stage.settings, recipe.recovery.max_rounds)):
            tried.append(attempt_step(run, current, index, settings, rnd))
            if tried[-1].within_budget:
                break
        current = max(tried, key=run.rank)
        attempts += tried
    return finish(run, current, attempts, lang)


def quality_info(run: Run) -> dict[str, Any]:
    """What the report needs to show the task's metric: its name, meaning, direction and unit."""
    m = run.metric
    return {"task": run.task.name, "metric": m.name, "description": m.description,
            "higher_is_better": m.higher_is_better, "percent": m.percent}


def finish(run: Run, final: Attempt, attempts: list[Attempt], lang: str) -> Outcome:
    """Time the baseline and the result side by side, judge the budget, write final.safetensors and the report."""
    import copy
    import shutil

    from karuku.cpu import detect
    from karuku.io.atomic import atomic_path
    from karuku.io.checkpoint import load_model
    from karuku.measure.evaluation import deployed_onnx
    from karuku.measure.inputs import signature
    from karuku.measure.memory import peak_rss_bytes
    from karuku.measure.speed import side_by_side
    from karuku.pipeline.budget import judge, profile_fits
    from karuku.report import write_report

    # baseline and result timed together now: their step measurements may be hours and loads apart
    run.folder.log("timing the baseline and the result side by side (ONNX Runtime)")
    steps = {"baseline": copy.deepcopy(run.baseline), "final": copy.deepcopy(final)}
    models = {k: load_model(a.checkpoint)[0] for k, a in steps.items()}
    inputs = signature(models["baseline"], run.inputs)  # both files take the data's inputs, by the same names
    files, untimed = {}, {}
    for k, m in models.items():
        try:
            files[k] = deployed_onnx(m, inputs)
        except KarukuError as exc:  # torch.onnx cannot export every float model (its step said so too)
            untimed[k] = exc.message
    if untimed:
        run.folder.log(f"not timed side by side: {'; '.join(f'{k}: {v}' for k, v in untimed.items())}")
    else:
        for k, speed in side_by_side(files, inputs).items():
            steps[k].measure.latency["onnxruntime"] = speed.as_dict()
    base, final = steps["baseline"], steps["final"]
    checks = judge(final.measure, base.measure, run.recipe.budget, run.metric)
    with atomic_path(run.folder.root / "final.safetensors") as tmp:
        shutil.copyfile(final.checkpoint, tmp)
    summary = {"recipe": run.recipe.model_dump(mode="json"), "baseline": base.as_dict(), "final": final.as_dict(),
               "attempts": [a.as_dict() for a in attempts], "checks": checks, "ok": all(c["ok"] for c in checks),
               "profiles": profile_fits(final.measure), "side_by_side": not untimed, "threads": run.threads,
               "quality": quality_info(run), "peak_rss_bytes": peak_rss_bytes(),
               # threads in the line the report shows: results (float sums) and timings depend on them
               "cpu": {**detect().as_dict(), "summary": f"{detect().summary()}; {run.threads} thread(s)"}}
    run.folder.write_json("summary.json", summary)
    report = write_report(run.folder.root, summary, lang=lang)
    run.folder.log(f"finished: {'within budget' if summary['ok'] else 'budget NOT met'}; report {report}")
    return Outcome(run.folder.root, summary["ok"], summary["final"], checks, report)
