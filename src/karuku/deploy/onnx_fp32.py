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
    note: str = ""  # what a person should know although parity held (the tracer's warnings)


SINGLES = 16  # inputs also compared one at a time: a batch can hide a branch that single inputs take


def export_fp32(model: nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike,
                inputs: torch.Tensor | None = None) -> Exported:
    """Export, run the same inputs through ONNX Runtime and PyTorch (as a batch and one by one, on varied
    inputs), write only if within 1e-4. Python control flow on tensor values makes the tracer keep one branch:
    the export is refused when that shows in the outputs, and noted when it does not."""
    model.eval()
    frozen: list[str] = []
    raw = export_bytes(model, input_shape, frozen=frozen)
    gen = torch.Generator().manual_seed(0)
    x = inputs if inputs is not None else torch.randn(64, *input_shape, generator=gen)
    # one by one too, shifted both ways: a branch on a sign or a size gets inputs on each side of it
    shifted = 3 * torch.randn(SINGLES // 2, *input_shape, generator=gen)
    singles = torch.cat([x[: SINGLES // 4], shifted[: SINGLES // 4] + 1, shifted[SINGLES // 4:] - 1,
                         x[-(SINGLES // 4):]])
    sess = session(raw)
    with torch.no_grad():
        diff = float(np.abs(model(x).numpy() - sess.run(None, {"input": x.numpy()})[0]).max())
        for s in singles:
            one = s.unsqueeze(0)
            diff = max(diff, float(np.abs(model(one).numpy() - sess.run(None, {"input": one.numpy()})[0]).max()))
    what = frozen[0].split(" might")[0] if frozen else ""
    if not diff <= PARITY_ATOL and frozen:
        raise KarukuError(f"the ONNX export differs from PyTorch by {diff:.2e}: the model's control flow depends on "
                          f"its input values ({what}), and the export keeps only the branch its example input took",
                          "write the branch as tensor ops (torch.where), or export a model without it")
    if not diff <= PARITY_ATOL:
        raise KarukuError(f"ONNX export differs from PyTorch by {diff:.2e} (> {PARITY_ATOL})",
                          "an op is exported inexactly; report the model")
    note = (f"the tracer warned that control flow reads tensor values ({what}); parity held on {len(singles)} "
            "varied inputs one by one and on the batch, but other inputs may take another branch") if frozen else ""
    path = write_bytes(path, raw)
    return Exported(path, len(raw), diff, len(x) + len(singles), note)
