"""fp32 ONNX export, checked for parity with PyTorch before the file is kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes
from karuku.measure.onnx_runtime import export_bytes, session

PARITY_ATOL = 1e-4


@dataclass(frozen=True)
class Exported:
    """A written fp32 ONNX file and its parity check: bytes, largest difference, inputs compared."""

    path: Path
    bytes: int
    max_abs_diff: float
    checked: int  # inputs compared


def export_fp32(model: nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike,
                inputs: torch.Tensor | None = None) -> Exported:
    """Export, run the same inputs through ONNX Runtime and PyTorch, write only if within 1e-4."""
    model.eval()
    raw = export_bytes(model, input_shape)
    x = inputs if inputs is not None else torch.randn(64, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x).numpy()
    got = session(raw, threads=2).run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(ref - got).max())
    if not diff <= PARITY_ATOL:
        raise KarukuError(f"ONNX export differs from PyTorch by {diff:.2e} (> {PARITY_ATOL})",
                          "an op is exported inexactly; report the model")
    path = write_bytes(path, raw)
    return Exported(path, len(raw), diff, len(x))
