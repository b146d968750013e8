"""`compress`: baseline → for each stage: compress, evaluate, recover, back off → report."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karuku.data.splits import load_splits
from karuku.pipeline import candidate
from karuku.pipeline.context import Context
from karuku.pipeline.recipe import Recipe
from karuku.pipeline.runfolder import RunFolder
from karuku.pipeline.stages import backoffs


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    ok: bool
    final: dict[str, Any]
    checks: list[dict[str, Any]]
    report: Path


def compress(recipe: Recipe, run_dir: str | Path | None = None, verbose: bool = True, lang: str = "en") -> Outcome:
    """Run a recipe; every step is cached in the run folder, so re-running resumes."""
    from karuku.io.checkpoint import trust_import

    if recipe.model.name:
        trust_import(recipe.model.name)  # the recipe's author named it
    ctx = Context(recipe, RunFolder(run_dir or Path("runs") / f"{recipe.name}-{recipe.digest()}"),
                  load_splits(recipe.data.model_copy(update={"split_seed": recipe.seed})), verbose)
    attempts = [current := ctx.baseline_step()]
    for index, stage in enumerate(recipe.stages):
        tried = []
        for rnd, settings in enumerate(backoffs(stage, recipe.recovery.max_rounds)):
            tried.append(ctx.attempt(current, index, stage, settings, rnd))
            if tried[-1]["within_accuracy"]:
                break
        current = max(tried, key=lambda a: (a["within_accuracy"], a["measure"]["accuracy"], -a["round"]))
        attempts += tried
    return finish(ctx, current, attempts, lang)


def finish(ctx: Context, final: dict[str, Any], attempts: list[dict[str, Any]], lang: str) -> Outcome:
    from karuku.io.checkpoint import load_model
    from karuku.measure.evaluate import side_by_side
    from karuku.measure.onnx_runtime import export_bytes
    from karuku.report import write_report

    # baseline and result timed together now: their step measurements may be hours and loads apart
    models = {k: load_model(step["checkpoint"])[0] for k, step in (("baseline", ctx.baseline), ("final", final))}
    timing = side_by_side({k: candidate.deploy_onnx(m) or export_bytes(m, ctx.input_shape)
                           for k, m in models.items()}, ctx.input_shape)
    baseline = {**ctx.baseline, "measure": {**ctx.baseline["measure"], **timing["baseline"]}}
    final = {**final, "measure": {**final["measure"], **timing["final"]}}
    checks = candidate.judge(final["measure"], baseline["measure"], ctx.recipe.budget)
    run = ctx.run
    shutil.copyfile(final["checkpoint"], run.root / "final.safetensors")
    from karuku.cpu import detect

    summary = {"recipe": ctx.recipe.model_dump(mode="json"), "baseline": baseline, "final": final,
               "attempts": attempts, "checks": checks, "ok": all(c["ok"] for c in checks),
               "profiles": candidate.profile_fits(final["measure"]), "side_by_side": True,
               "cpu": {**detect().as_dict(), "summary": detect().summary()}}
    run.write_json("summary.json", summary)
    report = write_report(run.root, summary, lang=lang)
    run.log(f"finished: {'within budget' if summary['ok'] else 'budget NOT met'}; report {report}")
    return Outcome(run.root, summary["ok"], final, checks, report)
