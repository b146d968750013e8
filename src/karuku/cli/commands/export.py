"""`karuku export CKPT --format onnx|c` and `karuku bench FILE.onnx`."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console


@app.command("export")
@guard
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint"),
    format: str = typer.Option("onnx", "--format", help="onnx or c"),
    int8: bool = typer.Option(False, "--int8", help="int8 QDQ ONNX from a quantized checkpoint"),
    out: Path = typer.Option(None, help="output file, or folder for C (default: next to the checkpoint)"),
    profile: str = typer.Option(None, help="C only: fail unless the model fits this device profile (mcu-m4, ...)"),
    target_isa: str = typer.Option(None, help="int8 ONNX: the CPU it is for (auto, portable, avx2, avx512-vnni, "
                                              "arm64, ...; default: the one it was quantized for)"),
    representation: str = typer.Option(None, help="int8 ONNX: u8s8, u8s7 or u8u8 (default: the fastest exact on "
                                                  "the target)"),
) -> None:
    """Export a deployable file, checked for parity on export."""
    from karuku.deploy.export import export_checkpoint

    result = export_checkpoint(checkpoint, format, int8, out, profile, target_isa, representation)
    console.print(result, soft_wrap=True)


@app.command("bench")
@guard
def bench_cmd(
    onnx_file: Path = typer.Argument(..., help="an .onnx file"),
    threads: int = typer.Option(2, help="ONNX Runtime intra-op threads"),
    runs: int = typer.Option(50, help="timed runs per batch size (median reported)"),
) -> None:
    """ONNX Runtime latency (batch 1) and throughput (batch 64)."""
    from rich.table import Table

    from karuku.cpu import detect
    from karuku.deploy.bench import bench_onnx, exactness_note

    table = Table("batch", "median ms", "p90 ms", "samples/s", "runs", "threads", title=str(onnx_file),
                  title_justify="left")
    for r in bench_onnx(onnx_file, threads, runs=runs):
        table.add_row(str(r["batch"]), f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['per_s']:,.0f}",
                      str(r["runs"]), str(r["threads"]))
    console.print(table)
    console.print(f"CPU: {detect().summary()}", soft_wrap=True)
    note = exactness_note(onnx_file)
    if note:
        console.print(f"warning: {note}", soft_wrap=True)
