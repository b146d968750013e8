"""`karuku export CKPT --format onnx|c` and `karuku bench FILE.onnx`."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console
from karuku.cli.options import Section, configs
from karuku.data.config import DataConfig
from karuku.deploy.config import ExportConfig
from karuku.measure.config import MeasureConfig


@app.command("export")
@guard
@configs(cfg=Section(ExportConfig), data=Section(DataConfig, "data", partial=True))
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint"),
    out: Path = typer.Option(None, help="output file, or folder for C (default: next to the checkpoint)"),
    *,
    cfg: ExportConfig,
    data: dict,
) -> None:
    """Export a deployable file, checked for parity on export."""
    from karuku.deploy.job import export_checkpoint
    from karuku.io.atomic import ensure_writable_dir

    if out is not None:  # a folder for C, a file otherwise: writable before the export and its checks
        ensure_writable_dir(out / "model.c" if cfg.format == "c" else out)
    console.print(export_checkpoint(checkpoint, cfg, out, data or None), soft_wrap=True)


@app.command("bench")
@guard
@configs(measure=Section(MeasureConfig, skip=("latency",), defaults={"runs": 50}))
def bench_cmd(
    onnx_file: Path = typer.Argument(..., help="an .onnx file"),
    *,
    measure: MeasureConfig,
) -> None:
    """ONNX Runtime latency (batch 1) and throughput (batch 64)."""
    from rich.table import Table

    from karuku.cpu import detect
    from karuku.deploy.bench import bench_onnx, exactness_note

    table = Table("batch", "median ms", "p90 ms", "samples/s", "runs", "threads", title=str(onnx_file),
                  title_justify="left")
    for r in bench_onnx(onnx_file, runs=measure.runs):
        table.add_row(str(r["batch"]), f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['per_s']:,.0f}",
                      str(r["runs"]), str(r["threads"]))
    console.print(table)
    console.print(f"CPU: {detect().summary()}", soft_wrap=True)
    note = exactness_note(onnx_file)
    if note:
        console.print(f"warning: {note}", soft_wrap=True)
