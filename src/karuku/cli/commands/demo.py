"""`karuku demo`: the main job on real MNIST, end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, print_table


@app.command("demo")
@guard
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), help="folder for the demo's outputs"),
    epochs: int = typer.Option(2, help="training epochs"),
) -> None:
    """Train LeNet-5 on real MNIST (fetched when needed) and print its evaluation."""
    from karuku.api import evaluate_checkpoint, fit
    from karuku.data import DataConfig
    from karuku.training import TrainConfig

    ckpt = out / "lenet5.safetensors"
    console.print(f"[bold]karuku demo[/bold]: training lenet5 on MNIST for {epochs} epochs → {ckpt}")
    fit("lenet5", DataConfig(name="mnist"), TrainConfig(epochs=epochs, lr=0.05, batch_size=64), ckpt)
    ev = evaluate_checkpoint(ckpt, runs=20)
    print_table("lenet5 on MNIST", ev.rows())
    console.print(f"checkpoint: {ckpt}")
