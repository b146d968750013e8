"""`karuku evaluate`: accuracy and every measurement of a checkpoint, as a table (and JSON)."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import print_table, write_json
from karuku.cli.options import Section, configs
from karuku.data.config import DataConfig
from karuku.measure.config import MeasureConfig
from karuku.tasks.config import TaskConfig


@app.command("evaluate")
@guard
@configs(data=Section(DataConfig, "data", partial=True), measure=Section(MeasureConfig),
         task=Section(TaskConfig, "task", partial=True))
def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint (.safetensors) or packed model (.krk)"),
    json_out: Path = typer.Option(None, "--json", help="also write every figure to this JSON file"),
    profile: str = typer.Option(None, help="device profile to check the fit against (mcu-m4, mcu-m7, rpi4, phone)"),
    *,
    data: dict,
    measure: MeasureConfig,
    task: dict,
) -> None:
    """Score a checkpoint (on its own dataset unless --data says, by its task unless --task says) and measure
    it: params, MACs, sizes, latency, energy, and this process's peak memory."""
    from karuku.api import evaluate_checkpoint
    from karuku.io.atomic import ensure_writable_dir
    from karuku.measure.memory import peak_rss_bytes
    from karuku.measure.units import size

    if json_out:
        ensure_writable_dir(json_out)  # before the measuring, not after it
    ev = evaluate_checkpoint(checkpoint, data, measure, profile=profile, task=task)
    rss = peak_rss_bytes()
    print_table(f"karuku evaluate {checkpoint}", [*ev.rows(), ("peak memory (RSS)", size(rss))])
    if json_out:
        write_json(json_out, {**ev.as_dict(), "peak_rss_bytes": rss})
