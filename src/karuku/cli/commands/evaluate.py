"""`karuku evaluate`: accuracy and every measurement of a checkpoint, as a table (and JSON)."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import print_table, write_json


@app.command("evaluate")
@guard
def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint (.safetensors)"),
    data: str = typer.Option(None, help="dataset to score on (default: the one it was trained on)"),
    data_path: str = typer.Option(None, help="folder of the raw data files"),
    test_limit: int = typer.Option(None, help="score on the first N test examples only"),
    json_out: Path = typer.Option(None, "--json", help="also write every figure to this JSON file"),
    threads: int = typer.Option(2, help="threads for latency measurements"),
    latency: bool = typer.Option(True, "--latency/--no-latency", help="measure torch and ONNX Runtime speed"),
    runs: int = typer.Option(30, help="timed runs per latency figure (median reported)"),
    profile: str = typer.Option(None, help="device profile to check the fit against (mcu-m4, mcu-m7, rpi4, phone)"),
) -> None:
    """Score a checkpoint and measure it: params, MACs, size, latency, energy."""
    from karuku.api import evaluate_checkpoint

    ev = evaluate_checkpoint(checkpoint, data=data, data_path=data_path, test_limit=test_limit, threads=threads,
                             latency=latency, runs=runs, profile=profile)
    print_table(f"karuku evaluate {checkpoint}", ev.rows())
    if json_out:
        write_json(json_out, ev.as_dict())
