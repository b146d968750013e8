"""`karuku distill`: a student learns from a teacher checkpoint (Hinton et al.'s knowledge distillation)."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console
from karuku.cli.options import build_config, with_configs
from karuku.data.config import DataConfig
from karuku.distillation.config import DistillConfig
from karuku.training.config import TrainConfig


@app.command("distill")
@guard
@with_configs({"": (TrainConfig, ()), "data_": (DataConfig, ("name",))})
@with_configs({"": (DistillConfig, ("train", "hints"))})
def distill_cmd(
    teacher: Path = typer.Option(..., help="teacher checkpoint (.safetensors from `karuku train`)"),
    student: str = typer.Option(..., help="zoo name (e.g. mlp-student), package.module:factory, or a checkpoint"),
    data: str = typer.Option("mnist", help="dataset (see `karuku data list`)"),
    out: Path = typer.Option(..., help="student checkpoint to write (.safetensors)"),
    hint: list[str] = typer.Option(None, help="feature hint STUDENT_LAYER=TEACHER_LAYER (repeatable)"),
    quiet: bool = typer.Option(False, help="no progress output"),
    **options,
) -> None:
    """Distil a teacher into a student; the per-epoch state next to --out lets a crashed run resume."""
    from karuku.distillation.job import distill_checkpoint
    from karuku.errors import KarukuError

    hints = {}
    for item in hint or []:
        s, sep, t = item.partition("=")
        if not sep or not s or not t:
            raise KarukuError(f"bad --hint '{item}'", "use STUDENT_LAYER=TEACHER_LAYER, e.g. --hint fc2=fc2")
        hints[s] = t
    train_cfg = build_config(TrainConfig, options)
    cfg = build_config(DistillConfig, options, train=train_cfg, hints=hints)
    data_cfg = build_config(DataConfig, options, "data_", name=data)
    meta = distill_checkpoint(teacher, student, data_cfg, cfg, out, verbose=not quiet)
    if meta is not None:
        test, t = meta["metrics"]["test"], meta["distillation"]["teacher_test"]
        console.print(f"student test accuracy {100 * test['accuracy']:.2f} % ({test['errors']} errors / "
                      f"{test['total']}); teacher {100 * t['accuracy']:.2f} % ({t['errors']} errors) "
                      f"after {meta['result']['iterations']} iterations in {meta['result']['seconds']:.1f} s → {out}",
                      soft_wrap=True)
