"""Pruning then quantizing: a neuron whose weights were all pruned keeps a finite scale and its bias."""

import torch

from karuku.models import build
from karuku.quant import QuantConfig, quantize, to_integer


def test_fully_pruned_output_channels_quantize():
    torch.manual_seed(0)
    model = build("lenet300", (1, 28, 28), 10).eval()
    with torch.no_grad():
        model.fc2.weight[:50] = 0  # 50 neurons pruned away entirely; their bias still feeds fc3
        model.fc2.bias[:50] = 0.5
    x = torch.randn(256, 1, 28, 28)
    qm = quantize(model, QuantConfig(), x)
    scale = qm.layers["fc2"].weight_scale()
    assert bool(torch.isfinite(scale).all()) and float(scale.min()) > 1e-6
    im = to_integer(qm)  # used to fail: "bias does not fit int32"
    w = im.arrays["fc2.weight"]
    assert int(w[:50].abs().sum()) == 0  # the pruned weights stay exactly zero
    agree = (im.run(x).argmax(1) == model(x).argmax(1)).float().mean()
    assert agree > 0.9
