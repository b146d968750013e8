"""The deployed form of a quantized model, for measurement: int8 size, its ONNX file, its float view.

Registered with `karuku.measure.forms`, so `measure.evaluate` of a `QuantModel` reports the int8 size as
the deployed size, times the int8 ONNX in ONNX Runtime and the float view in torch, and (with details)
adds the integer engine's accuracy — the same figures in `karuku evaluate` and in the compression loop.
"""

from __future__ import annotations

import copy
from typing import Any

from karuku.measure.forms import Form, register_form
from karuku.quant.model import QuantModel
from karuku.quant.store import QParams


def float_view(qm: QuantModel) -> QuantModel:
    """A copy of `qm` that computes in float (BN stays folded, biases corrected): its fp32 counterpart."""
    fp = copy.deepcopy(qm)
    for a in fp.acts.values():
        a.enabled.fill_(False)
        a.dynamic = False
    for layer in fp.layers.values():
        layer.bits = None
    return fp.eval()


def deployed_onnx(qm: QuantModel) -> bytes | None:
    """The int8 ONNX a quantized model deploys as: QDQ when static, DynamicQuantizeMatMul when dynamic."""
    from karuku.quant import export_onnx

    return export_onnx(qm) if qm.is_static or qm.cfg.mode == "dynamic" else None


@register_form(QuantModel)
def int8_form(qm: QuantModel) -> Form:
    """The int8 form of `qm`: integer weights and int32 biases, its int8 ONNX when it has one, its float view."""
    onnx = (lambda: deployed_onnx(qm)) if qm.is_static or qm.cfg.mode == "dynamic" else None
    return Form("int8", QParams.from_model(qm).weight_bytes(qm), integer=True, onnx=onnx, float_model=float_view(qm),
                details=lambda data: details(qm, data))


def details(qm: QuantModel, data) -> dict[str, Any]:
    """Rows for `Evaluation.extra`: the settings, the float view's and the integer engine's accuracy."""
    from karuku.training.evaluate import score

    cfg = qm.cfg
    out: dict[str, Any] = {"quantization": f"{cfg.mode}, weights {cfg.bits}-bit per-"
                                           f"{'channel' if cfg.per_channel else 'tensor'}, activations "
                                           f"{cfg.act_dtype if cfg.mode != 'dynamic' else 'dynamic'}"}
    if data is not None and getattr(data, "targets", "classes") == "classes":
        out["float view test accuracy (BN folded, biases corrected)"] = \
            f"{100 * score(float_view(qm), data.test).accuracy:.2f} %"
    if qm.float_layers:
        out["integer engine"] = "not available (layers kept in float)"
    elif qm.is_static:
        from karuku.quant.engine import to_integer

        im = to_integer(qm)
        if data is not None and getattr(data, "targets", "classes") == "classes":
            from karuku.data.batches import iterate

            right = total = 0
            for x, y in iterate(data.test, 1000):
                right, total = right + int((im.run(x, fast=True).argmax(1) == y).sum()), total + len(y)
            out["int8 test accuracy (integer engine)"] = f"{100 * right / total:.2f} %"
    onnx = deployed_onnx(qm)
    if onnx is not None:
        out["int8 ONNX bytes"] = len(onnx)
    return out
