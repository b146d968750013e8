"""`karuku quantize`: PTQ, QAT or dynamic quantization of a checkpoint, written as a new checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console
from karuku.cli.options import Section, configs
from karuku.data.config import DataConfig
from karuku.quant.config import QuantConfig


@app.command("quantize")
@guard
@configs(cfg=Section(QuantConfig), data=Section(DataConfig, "data", partial=True))
def quantize_cmd(
    checkpoint: Path = typer.Argument(..., help="a float karuku checkpoint (.safetensors)"),
    out: Path = typer.Option(..., help="quantized checkpoint to write (.safetensors)"),
    engine_out: Path = typer.Option(None, help="also write the integer-engine model here"),
    onnx_out: Path = typer.Option(None, help="also write the int8 QDQ ONNX model here"),
    quiet: bool = typer.Option(False, help="no progress output"),
    *,
    cfg: QuantConfig,
    data: dict,
) -> None:
    """Quantize a checkpoint: --mode ptq (calibrated), qat (trains with the --finetune-* settings) or dynamic."""
    from karuku.quant.job import quantize_checkpoint

    meta = quantize_checkpoint(checkpoint, cfg, out, data, engine_out=engine_out, onnx_out=onnx_out,
                               verbose=not quiet)
    if meta is None:  # a non-zero rank of a multi-process QAT run
        return
    m = meta["metrics"]
    console.print(f"fp32 test accuracy {100 * m['fp32_test']['accuracy']:.2f} % → {cfg.mode} "
                  f"{100 * m['test']['accuracy']:.2f} % ({m['test']['errors']} errors / {m['test']['total']}) "
                  f"→ {out}", soft_wrap=True)
    if meta.get("onnx_export"):
        console.print(meta["onnx_export"], soft_wrap=True)
    used = meta["quantization"]
    if used["bits"] < cfg.bits:
        console.print(f"note: weights quantized to {used['bits']} bits for target {used['target_isa']} (its u8 x s8 "
                      "kernels saturate 8-bit products); --target-isa avx512-vnni (or another VNNI / Arm target) "
                      "keeps 8", soft_wrap=True)
