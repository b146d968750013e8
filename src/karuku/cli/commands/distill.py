"""`karuku distill`: a student learns from a teacher checkpoint (Hinton et al.'s knowledge distillation)."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console
from karuku.cli.options import Section, configs
from karuku.data.config import DataConfig
from karuku.distillation.config import DistillConfig


@app.command("distill")
@guard
@configs(cfg=Section(DistillConfig, lift=("train",)), data=Section(DataConfig, "data", partial=True))
def distill_cmd(
    teacher: Path = typer.Option(..., help="teacher checkpoint (.safetensors from `karuku train`)"),
    out: Path = typer.Option(..., help="student checkpoint to write (.safetensors)"),
    quiet: bool = typer.Option(False, help="no progress output"),
    *,
    cfg: DistillConfig,
    data: dict,
) -> None:
    """Distil a teacher into a student (on the teacher's data unless --data says); the per-epoch state next to
    --out lets a crashed run resume."""
    from karuku.distillation.job import distill_checkpoint
    from karuku.io.checkpoint import trust_note

    meta = distill_checkpoint(teacher, cfg, out, data, verbose=not quiet)
    if meta is not None:
        test, t = meta["metrics"]["test"], meta["distillation"]["teacher_test"]
        console.print(f"student test accuracy {100 * test['accuracy']:.2f} % ({test['errors']} errors / "
                      f"{test['total']}); teacher {100 * t['accuracy']:.2f} % ({t['errors']} errors) "
                      f"after {meta['result']['iterations']} iterations in {meta['result']['seconds']:.1f} s → {out}",
                      soft_wrap=True)
        note = trust_note(cfg.student or "")
        if note:
            console.print(f"note: {note}", soft_wrap=True, markup=False)
