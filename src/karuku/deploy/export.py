"""Export a checkpoint to a deployable file: fp32 ONNX now; int8 ONNX and C through their packages."""

from __future__ import annotations

import os
from pathlib import Path

from karuku.errors import KarukuError
from karuku.io.checkpoint import load_model


def export_checkpoint(path: str | os.PathLike, format: str = "onnx", int8: bool = False,
                      out: str | os.PathLike | None = None, profile: str | None = None,
                      target_isa: str | None = None, representation: str | None = None) -> str:
    """Export and verify; return a one-line description of what was written.

    int8 ONNX: `target_isa` (default: the one the checkpoint was quantized for) and `representation` (default:
    the fastest exact there) as in `export_int8_onnx`."""
    if format not in ("onnx", "c"):
        raise KarukuError(f"unknown export format '{format}'", "allowed: onnx, c")
    path = Path(path)
    model, ckpt = load_model(path)
    if format == "onnx" and not int8 and not _quantized(model):
        from karuku.deploy.onnx_fp32 import export_fp32

        target = Path(out or path.with_suffix(".onnx"))
        res = export_fp32(model, tuple(ckpt.spec.input_shape), target)
        return (f"wrote {res.path} ({res.bytes:,} bytes, self-contained fp32 ONNX); parity with PyTorch on "
                f"{res.checked} inputs: max |diff| {res.max_abs_diff:.1e} ≤ 1e-4")
    from karuku.quant import QuantModel, to_integer

    if not isinstance(model, QuantModel):
        raise KarukuError(f"--format {format}{' --int8' if int8 else ''} needs a quantized checkpoint",
                          "run `karuku quantize CKPT --out Q.safetensors` first, then export Q.safetensors")
    if format == "onnx":
        return export_int8_onnx(model, ckpt.spec.input_shape, Path(out or path.with_suffix(".int8.onnx")),
                                inputs=_test_inputs(ckpt), target_isa=target_isa, representation=representation)
    im = to_integer(model)
    from karuku.deploy.c.project import export_c

    return export_c(im, ckpt.spec.name, Path(out or path.with_suffix("")), ckpt.spec.input_shape, profile=profile)


def export_int8_onnx(model, input_shape: tuple[int, ...], out: Path, n: int = 1000, inputs=None,
                     target_isa: str | None = None, representation: str | None = None) -> str:
    """QDQ ONNX of a QuantModel or IntegerModel for the CPU `target_isa`, checked before it is written: top-1
    agreement with the integer engine ≥ 99.9 % on `inputs` (real data when the caller has it: random inputs put
    many near-ties between logits) or `n` random ones, run on this CPU (karuku.deploy.parity). A miss is a
    one-line error naming the layer that departs first and the likely cause; nothing is written."""
    import torch

    from karuku.cpu import detect
    from karuku.deploy.parity import check, require
    from karuku.io.atomic import write_bytes
    from karuku.quant import IntegerModel, export_choice, to_integer
    from karuku.quant.onnx_export import export_qdq
    from karuku.quant.representation import exact_on

    im = model if isinstance(model, IntegerModel) else to_integer(model)
    target, rep = export_choice(model, im, target_isa, representation)
    if not exact_on(rep, target):
        raise KarukuError(f"representation {rep} is not computed exactly on target {target} (its u8 x s8 kernels "
                          "saturate int16 pairs)", "leave --representation unset, or use u8u8")
    x = inputs if inputs is not None else torch.randn(n, *input_shape, generator=torch.Generator().manual_seed(0))
    parity, _ = check(im, rep, x)
    require(parity)
    raw = export_qdq(im, representation=rep, target_isa=target)
    write_bytes(out, raw)
    return (f"wrote {out} ({len(raw):,} bytes, int8 QDQ ONNX, {rep} for {target}); {parity.line()}; "
            f"this CPU: {detect().summary()}")


def _quantized(model) -> bool:
    from karuku.quant import QuantModel

    return isinstance(model, QuantModel)


def _test_inputs(ckpt, n: int = 2000):
    """The first test inputs of the data the checkpoint was trained on, when it says which."""
    from karuku.data import DataConfig, load_splits

    stored = ckpt.meta.get("data")
    if not isinstance(stored, dict) or not stored.get("name"):
        return None
    try:
        splits = load_splits(DataConfig(**{**stored, "val_size": 0, "test_limit": n}))
    except Exception:  # noqa: BLE001 — data not available here: fall back to random inputs
        return None
    return splits.test.tensors[0] if tuple(splits.input_shape) == tuple(ckpt.spec.input_shape) else None
