"""int8 QDQ ONNX for a target CPU, checked for agreement with the integer engine before the file is kept."""

from __future__ import annotations

from pathlib import Path

from karuku.errors import KarukuError


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
    im.need_examples(inputs, "an int8 ONNX")
    x = inputs if inputs is not None else torch.randn(n, *input_shape, generator=torch.Generator().manual_seed(0))
    parity, _ = check(im, rep, x)
    require(parity)
    raw = export_qdq(im, representation=rep, target_isa=target)
    write_bytes(out, raw)
    return (f"wrote {out} ({len(raw):,} bytes, int8 QDQ ONNX, {rep} for {target}); {parity.line()}; "
            f"this CPU: {detect().summary()}")
