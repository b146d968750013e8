"""`export_checkpoint`: the whole job behind `karuku export` — a checkpoint to a deployable file, checked."""

from __future__ import annotations

import os
from pathlib import Path

from karuku.data.batches import first_inputs
from karuku.data.checkpoint import for_checkpoint, recorded_inputs
from karuku.deploy.config import ExportConfig
from karuku.errors import KarukuError
from karuku.io.checkpoint import load_model


def export_checkpoint(path: str | os.PathLike, cfg: ExportConfig | None = None,
                      out: str | os.PathLike | None = None, data=None) -> str:
    """Export and verify; return a one-line description of what was written (default: next to the checkpoint).

    `data` (a DataConfig, its dict or DataSplits; CLI `--data`): the examples the file is checked on, and what a
    model of token ids and a mask takes (a checkpoint records one input's shape); default: the checkpoint's own
    data where it loads here, else random inputs of the recorded shape."""
    cfg = cfg or ExportConfig()
    path = Path(path)
    model, ckpt = load_model(path)
    from karuku.quant import QuantModel

    quantized = isinstance(model, QuantModel)
    if cfg.format == "onnx" and not cfg.int8 and not quantized:
        from karuku.deploy.onnx_fp32 import export_fp32

        target = Path(out or path.with_suffix(".onnx"))
        takes = (for_checkpoint(ckpt, data, val_size=0, test_limit=64).model_inputs() if data is not None
                 else recorded_inputs(model, tuple(ckpt.spec.input_shape), path))
        res = export_fp32(model, takes, target)
        note = f"; note: {res.note}" if res.note else ""
        return (f"wrote {res.path} ({res.bytes:,} bytes, self-contained fp32 ONNX); parity with PyTorch on "
                f"{res.checked} inputs: max |diff| {res.max_abs_diff:.1e} ≤ 1e-4{note}")
    if not quantized:
        raise KarukuError(f"--format {cfg.format}{' --int8' if cfg.int8 else ''} needs a quantized checkpoint",
                          "run `karuku quantize CKPT --out Q.safetensors` first, then export Q.safetensors")
    if cfg.format == "onnx":
        from karuku.deploy.export import export_int8_onnx

        return export_int8_onnx(model, ckpt.spec.input_shape, Path(out or path.with_suffix(".int8.onnx")),
                                inputs=reference_inputs(ckpt, data=data), target_isa=cfg.target_isa,
                                representation=cfg.representation)
    from karuku.quant import to_integer

    if cfg.format == "tflite":
        import torch

        from karuku.deploy.tflite.export import export_tflite

        im, inputs = to_integer(model), reference_inputs(ckpt, data=data)
        if inputs is None and not im.several:  # the same random inputs every run (token ids: --data is asked for)
            inputs = torch.randn(256, *ckpt.spec.input_shape, generator=torch.Generator().manual_seed(0))
        return export_tflite(im, Path(out or path.with_suffix(".tflite")), inputs, compact=cfg.compact)
    from karuku.deploy.c.project import export_c

    im = to_integer(model)
    return export_c(im, ckpt.spec.name, Path(out or path.with_suffix("")), ckpt.spec.input_shape,
                    profile=cfg.profile, kernels=cfg.kernels, cmsis_nn=cfg.cmsis_nn,
                    inputs=reference_inputs(ckpt, data=data) if im.several else None)  # token ids: the data's


def reference_inputs(ckpt, n: int = 2000, data=None):
    """The first test inputs of `data`, else of the data the checkpoint was trained on when it says which and it
    loads here."""
    if data is not None:  # named by the user: its errors are theirs to see
        return first_inputs(for_checkpoint(ckpt, data, val_size=0, test_limit=n).test, n)
    try:
        splits = for_checkpoint(ckpt, required=False, val_size=0, test_limit=n)
    except KarukuError:  # data not available here (not fetched, another machine's path): random inputs instead
        return None
    return first_inputs(splits.test, n) if splits is not None else None
