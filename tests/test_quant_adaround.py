"""AdaRound (QuantConfig.adaround): learnt up/down rounding, on a tiny CNN."""

import pytest
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.quant import QuantConfig, quantize, to_integer


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3, groups=8),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def data(n: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, 10, 10, generator=torch.Generator().manual_seed(1))


def error(qm, net, x) -> float:
    with torch.no_grad():
        return float(((qm(x) - net(x)) ** 2).mean())


def test_adaround_lowers_the_error_and_stays_on_the_integer_grid():
    net, x = tiny(), data()
    cfg = QuantConfig(bits=4, calibration=32, calibration_batch=8, bias_correction=False)
    nearest = quantize(net, cfg, x)
    learnt = quantize(net, cfg.model_copy(update={"adaround": ["*"], "adaround_iters": 300}), x)
    assert error(learnt, net, x) < error(nearest, net, x)
    changed = 0
    for k, layer in learnt.layers.items():
        s = layer.weight_scale().reshape(-1, *[1] * (layer.weight.dim() - 1))
        q = layer.weight / s
        assert torch.allclose(q, torch.round(q), atol=1e-4)  # the weights are the grid values themselves
        changed += int((torch.round(q) != torch.round(nearest.layers[k].weight / s)).sum())
    assert changed > 0
    # the integer engine computes the same model
    im = to_integer(learnt)
    with torch.no_grad():
        a, b = learnt(x).argmax(1), im.run(x).argmax(1)
    assert (a == b).float().mean() >= 0.9


def test_adaround_names_a_pattern_that_matches_nothing():
    with pytest.raises(KarukuError, match=r"adaround: no quantized conv or linear layer matches 'conv9'") as err:
        quantize(tiny(), QuantConfig(adaround=["conv9"], calibration=8), data(8))
    assert "\n" not in str(err.value)
    with pytest.raises(KarukuError, match="applies to `mode` ptq only"):
        QuantConfig(mode="dynamic", adaround=["*"])
