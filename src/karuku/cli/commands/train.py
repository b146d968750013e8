"""`karuku train`: train a zoo or user model on a dataset and write a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console
from karuku.cli.options import Section, configs, parse_pairs
from karuku.data.config import DataConfig
from karuku.training.config import TrainConfig


@app.command("train")
@guard
@configs(cfg=Section(TrainConfig), data=Section(DataConfig, "data"))
def train_cmd(
    model: str = typer.Option(..., help="zoo name (see `karuku models`) or package.module:factory"),
    out: Path = typer.Option(..., help="checkpoint to write (.safetensors)"),
    model_arg: list[str] = typer.Option(None, metavar="KEY=VALUE",
                                        help="factory argument KEY=VALUE (repeatable), e.g. widths=[16,32]"),
    init: Path = typer.Option(None, help="start from these weights (.safetensors, or a .pt state dict)"),
    quiet: bool = typer.Option(False, help="no progress output"),
    *,
    cfg: TrainConfig,
    data: DataConfig,
) -> None:
    """Train a model; the per-epoch state next to --out lets a crashed run resume."""
    from karuku.io.checkpoint import trust_note
    from karuku.training.job import train_checkpoint

    result = train_checkpoint(model, cfg, out, data, model_kwargs=parse_pairs(model_arg, "--model-arg"), init=init,
                              verbose=not quiet)
    if result is not None:
        test = result["metrics"]["test"]
        if test is None:
            scored = "not scored (the data has no labels)"
        elif test["accuracy"] is None:
            scored = f"test MSE {test['loss']:.6g}"
        else:
            scored = f"test accuracy {100 * test['accuracy']:.2f} % ({test['errors']} errors / {test['total']})"
        console.print(f"{scored} after {result['result']['iterations']} iterations in "
                      f"{result['result']['seconds']:.1f} s → {out}", soft_wrap=True)
        note = trust_note(model)
        if note:
            console.print(f"note: {note}", soft_wrap=True, markup=False)
