"""`karuku quantize`: PTQ, QAT or dynamic quantization of a checkpoint, written as a new checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console
from karuku.cli.options import build_config, with_configs
from karuku.quant.config import QuantConfig
from karuku.training.config import TrainConfig


@app.command("quantize")
@guard
@with_configs({"": (QuantConfig, ()), "train_": (TrainConfig, ())})
def quantize_cmd(
    checkpoint: Path = typer.Argument(..., help="a float karuku checkpoint (.safetensors)"),
    out: Path = typer.Option(..., help="quantized checkpoint to write (.safetensors)"),
    data: str = typer.Option(None, help="dataset for calibration / QAT (default: the one it was trained on)"),
    data_path: str = typer.Option(None, help="folder of the raw data files"),
    layer: list[str] = typer.Option(None, help="per-layer weight bits PATTERN=BITS (8, 6, 4 or float; repeatable)"),
    engine_out: Path = typer.Option(None, help="also write the integer-engine model here"),
    onnx_out: Path = typer.Option(None, help="also write the int8 QDQ ONNX model here"),
    quiet: bool = typer.Option(False, help="no progress output"),
    **options,
) -> None:
    """Quantize a checkpoint: --mode ptq (calibrated), qat (trains with --train-* settings) or dynamic."""
    from karuku.errors import KarukuError
    from karuku.quant.job import quantize_checkpoint

    bits = {}
    for item in layer or []:
        pattern, sep, value = item.partition("=")
        if not sep or not pattern:
            raise KarukuError(f"bad --layer '{item}'", "use PATTERN=BITS, e.g. --layer 'fc3=8' --layer 'conv*=4'")
        bits[pattern] = value if value == "float" else _int(value, item)
    cfg = build_config(QuantConfig, options, layer_bits=bits)
    train_cfg = build_config(TrainConfig, options, "train_") if cfg.mode == "qat" else None
    meta = quantize_checkpoint(checkpoint, cfg, out, data=data, data_path=data_path, train_config=train_cfg,
                               engine_out=engine_out, onnx_out=onnx_out, verbose=not quiet)
    if not meta:  # a non-zero rank of a multi-process QAT run
        return
    m = meta["metrics"]
    console.print(f"fp32 test accuracy {100 * m['fp32_test']['accuracy']:.2f} % → {cfg.mode} "
                  f"{100 * m['test']['accuracy']:.2f} % ({m['test']['errors']} errors / {m['test']['total']}) "
                  f"→ {out}", soft_wrap=True)
    used = meta["quantization"]
    if used["bits"] < cfg.bits:
        console.print(f"note: weights quantized to {used['bits']} bits for target {used['target_isa']} (its u8 x s8 "
                      "kernels saturate 8-bit products); --target-isa avx512-vnni (or another VNNI / Arm target) "
                      "keeps 8", soft_wrap=True)


def _int(value: str, item: str) -> int:
    from karuku.errors import KarukuError

    try:
        return int(value)
    except ValueError:
        raise KarukuError(f"bad --layer '{item}': bits must be 8, 6, 4 (2..8) or float") from None
