"""Export a checkpoint to a deployable file: fp32 ONNX now; int8 ONNX and C through their packages."""

from __future__ import annotations

import os
from pathlib import Path

from karuku.errors import KarukuError
from karuku.io.checkpoint import load_model


def export_checkpoint(path: str | os.PathLike, format: str = "onnx", int8: bool = False,
                      out: str | os.PathLike | None = None) -> str:
    """Export and verify; return a one-line description of what was written."""
    if format not in ("onnx", "c"):
        raise KarukuError(f"unknown export format '{format}'", "allowed: onnx, c")
    path = Path(path)
    model, ckpt = load_model(path)
    if format == "onnx" and not int8:
        from karuku.deploy.onnx_fp32 import export_fp32

        target = Path(out or path.with_suffix(".onnx"))
        res = export_fp32(model, tuple(ckpt.spec.input_shape), target)
        return (f"wrote {res.path} ({res.bytes:,} bytes, self-contained fp32 ONNX); parity with PyTorch on "
                f"{res.checked} inputs: max |diff| {res.max_abs_diff:.1e} ≤ 1e-4")
    raise KarukuError(f"--format {format}{' --int8' if int8 else ''} needs a quantized checkpoint",
                      "run `karuku quantize CKPT --out Q.safetensors` first, then export Q.safetensors")
