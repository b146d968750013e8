"""`karuku train`: train a zoo or user model on a dataset and write a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, parse_kv
from karuku.cli.options import build_config, with_configs
from karuku.data.config import DataConfig
from karuku.training.config import TrainConfig


@app.command("train")
@guard
@with_configs({"": (TrainConfig, ()), "data_": (DataConfig, ("name",))})
def train_cmd(
    model: str = typer.Option(..., help="zoo name (see `karuku models`) or package.module:factory"),
    data: str = typer.Option("mnist", help="dataset (see `karuku data list`)"),
    out: Path = typer.Option(..., help="checkpoint to write (.safetensors)"),
    model_arg: list[str] = typer.Option(None, help="factory argument key=value (repeatable)"),
    init: Path = typer.Option(None, help="start from these weights (.safetensors, or a .pt state dict)"),
    quiet: bool = typer.Option(False, help="no progress output"),
    **options,
) -> None:
    """Train a model; the per-epoch state next to --out lets a crashed run resume."""
    from karuku.api import fit

    train_cfg = build_config(TrainConfig, options)
    data_cfg = build_config(DataConfig, options, "data_", name=data)
    result = fit(model, data_cfg, train_cfg, out, model_kwargs=parse_kv(model_arg), init=init, verbose=not quiet)
    if result is not None:
        test = result["metrics"]["test"]
        console.print(f"test accuracy {100 * test['accuracy']:.2f} % ({test['errors']} errors / {test['total']}) "
                      f"after {result['result']['iterations']} iterations in {result['result']['seconds']:.1f} s "
                      f"→ {out}", soft_wrap=True)
