"""The deployed form of a quantized sentence encoder, for measurement (`karuku.measure.evaluate`).

An encoder with int8 layers (`karuku.text.quantize`, PTQ or QAT) deploys as its int8 ONNX file
(`karuku.text.onnx_export`): that file's bytes are its size and ONNX Runtime times it; torch times its float view
(the same weights dequantized, in nn.Linear / nn.Embedding), whose state dict is its fp32 size. A float encoder
needs no form of its own (its fp32 export is what users run today).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from karuku.measure.forms import Form, register_form
from karuku.text.encoder import SentenceEncoder
from karuku.text.quantize import QEmbedding, QLinear, _replace


def float_view(model: SentenceEncoder) -> SentenceEncoder:
    """A float copy computing with the quantized weights: QLinear → Linear (W = W_int · s_w, SmoothQuant's 1 / s
    folded into its columns), QEmbedding → Embedding."""
    fp = copy.deepcopy(model).eval()
    for name, m in list(fp.named_modules()):
        if isinstance(m, QLinear):
            lin = nn.Linear(m.in_features, m.out_features)
            w = m.w_int.float() * m.w_scale[:, None]
            with torch.no_grad():
                lin.weight.copy_(w * m.in_scale[None, :] if m.in_scale.numel() else w)
                lin.bias.copy_(m.bias)
            _replace(fp, name, lin)
        elif isinstance(m, QEmbedding):
            _replace(fp, name, nn.Embedding.from_pretrained(m.weight, freeze=False))
    return fp


@register_form(SentenceEncoder)
def int8_form(model: SentenceEncoder) -> Form | None:
    """The int8 ONNX file of an encoder with quantized layers; None for a float one."""
    if not any(isinstance(m, (QLinear, QEmbedding)) for m in model.modules()):
        return None
    from karuku.text.onnx_export import export_onnx

    raw = export_onnx(model)
    cfg = getattr(model, "quant_cfg", None)
    what = f"{cfg.mode}, weights {cfg.bits}-bit per-channel, activations uint8" if cfg is not None else "int8"
    return Form("int8", len(raw), integer=True, onnx=lambda: raw, float_model=float_view(model),
                details=lambda _data: {"quantization": what, "int8 ONNX bytes": len(raw)})
