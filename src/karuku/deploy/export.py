"""int8 QDQ ONNX from the integer engine, checked for agreement with it before the file is kept."""

from __future__ import annotations

from pathlib import Path

from karuku.errors import KarukuError


def export_int8_onnx(im, input_shape: tuple[int, ...], out: Path, n: int = 1000, inputs=None) -> str:
    """QDQ ONNX, checked: top-1 agreement with the integer engine ≥ 99.9 % on `inputs` (real data when the
    caller has it: random inputs put many near-ties between logits) or `n` random ones."""
    import numpy as np
    import torch

    from karuku.io.atomic import write_bytes
    from karuku.measure.onnx_runtime import session
    from karuku.quant import export_qdq

    raw = export_qdq(im)
    x = inputs if inputs is not None else torch.randn(n, *input_shape, generator=torch.Generator().manual_seed(0))
    n = len(x)
    ref = im.run(x, fast=True).argmax(1).numpy()
    sess = session(raw, threads=2)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0].argmax(1)
    agree = float(np.mean(ref == got))
    if agree < 0.999:
        raise KarukuError(f"int8 ONNX agrees with the integer engine on only {100 * agree:.2f} % of top-1 (< 99.9 %)")
    write_bytes(out, raw)
    return f"wrote {out} ({len(raw):,} bytes, int8 QDQ ONNX); top-1 agreement with the integer engine on {n} inputs: " \
           f"{100 * agree:.2f} %"
