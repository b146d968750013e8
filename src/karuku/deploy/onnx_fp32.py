"""fp32 ONNX export, checked for parity with PyTorch before the file is kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from karuku.data.batches import as_inputs, parts
from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes
from karuku.measure.inputs import Signature, signature
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


def export_fp32(model: nn.Module, input_shape, path: str | os.PathLike, inputs=None) -> Exported:
    """Export, run the same inputs through ONNX Runtime and PyTorch (as a batch and one by one, on varied
    inputs), write only if within 1e-4. Python control flow on tensor values makes the tracer keep one branch:
    the export is refused when that shows in the outputs, and noted when it does not.

    `input_shape`: what the model takes (`karuku.measure.inputs.signature`: an input shape, a `Signature` or
    example inputs; a token-id model's file takes int64 inputs under forward's names). `inputs`: the batch to
    compare on (a tensor, or a tuple or dict of the model's inputs), else 64 drawn from the signature (integer
    inputs within their ranges)."""
    model.eval()
    sig = signature(model, input_shape)
    frozen: list[str] = []
    raw = export_bytes(model, sig, frozen=frozen)
    gen = torch.Generator().manual_seed(0)
    xs = _ordered(sig, inputs) if inputs is not None else sig.random(64, gen)
    singles = _varied(sig, xs, gen)
    sess = session(raw)

    def diff(batch: tuple[torch.Tensor, ...]) -> float:
        ref = sig.call(model, batch).numpy()
        got = sess.run(None, {name: t.numpy() for name, t in zip(sig.names, batch)})[0]
        return _max_diff(ref, got)

    with torch.no_grad():
        worst = diff(xs)
        for i in range(len(singles[0])):
            worst = max(worst, diff(tuple(t[i: i + 1] for t in singles)))
    what = frozen[0].split(" might")[0] if frozen else ""
    if not worst <= PARITY_ATOL and frozen:
        raise KarukuError(f"the ONNX export differs from PyTorch by {worst:.2e}: the model's control flow depends on "
                          f"its input values ({what}), and the export keeps only the branch its example input took",
                          "write the branch as tensor ops (torch.where), or export a model without it")
    if not worst <= PARITY_ATOL:
        raise KarukuError(f"ONNX export differs from PyTorch by {worst:.2e} (> {PARITY_ATOL})",
                          "an op is exported inexactly; report the model")
    note = (f"the tracer warned that control flow reads tensor values ({what}); parity held on {SINGLES} "
            "varied inputs one by one and on the batch, but other inputs may take another branch") if frozen else ""
    path = write_bytes(path, raw)
    return Exported(path, len(raw), worst, len(xs[0]) + len(singles[0]), note)


def _ordered(sig: Signature, inputs) -> tuple[torch.Tensor, ...]:
    """Given parity inputs as one tensor per signature input, in its order."""
    given = as_inputs(inputs)
    if isinstance(given, dict):
        missing = [n for n in sig.names if n not in given]
        if missing:
            raise KarukuError(f"the parity inputs lack {', '.join(missing)} (the model takes {sig.describe()})",
                              "give every input by name")
        return tuple(given[n] for n in sig.names)
    xs = parts(given)
    if len(xs) != len(sig.inputs):
        raise KarukuError(f"{len(xs)} parity inputs for a model of {len(sig.inputs)} ({sig.describe()})",
                          "give a tuple of all its inputs, in forward's order")
    return xs


def _varied(sig: Signature, xs: tuple[torch.Tensor, ...], gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """SINGLES inputs to compare one by one: the batch's first and last, and drawn ones — floats shifted both
    ways (a branch on a sign or a size gets inputs on each side of it), integers anywhere in their range."""
    k = SINGLES // 4
    out = []
    for inp, x in zip(sig.inputs, xs):
        if inp.integer:
            drawn = inp.random(2 * k, gen)
        else:
            shifted = 3 * torch.randn(2 * k, *inp.shape, generator=gen)
            drawn = torch.cat([shifted[:k] + 1, shifted[k:] - 1])
        out.append(torch.cat([x[:k], drawn.to(x.dtype), x[-k:]]))
    return tuple(out)


def _max_diff(ref: np.ndarray, got: np.ndarray) -> float:
    """The largest difference; NaN where both give NaN (an all-padding example) agrees, NaN on one side does not."""
    both = np.isnan(ref) & np.isnan(got)
    d = np.where(both, 0.0, np.abs(ref - got))
    return float(np.nan_to_num(d, nan=np.inf).max(initial=0.0))
