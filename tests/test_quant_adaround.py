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


def test_a_channel_whose_scale_the_bias_sets_keeps_its_scale():
    # a channel of tiny weights beside a huge bias: its scale comes from the int32 bias limit, every weight
    # rounds to 0 — AdaRound must not leave it all-zero weights that would borrow another channel's scale
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    with torch.no_grad():
        net[0].weight[0].fill_(1e-6)
        net[0].bias[0] = 1e3
    x = data(16)
    cfg = QuantConfig(calibration=16, bias_correction=False)
    nearest, learnt = quantize(net, cfg, x), quantize(net, cfg.model_copy(update={"adaround": ["0"],
                                                                                 "adaround_iters": 50}), x)
    s_in = learnt.act(next(n.name for n in learnt.nodes if n.op == "input")).qparams()[0]
    a, b = (m.layers["0"].weight_scale(None, s_in).detach() for m in (nearest, learnt))
    assert torch.allclose(a, b, rtol=1e-5)
    w = learnt.layers["0"].weight.detach()
    assert float(a[0]) > 10 * float(w[0].abs().max())  # the bias-limited channel
    q = w[1:] / b[1:].reshape(-1, 1, 1, 1)
    assert torch.allclose(q, torch.round(q), atol=1e-4)  # the other channels: on the grid, learnt rounding
    assert bool((torch.round(q) != torch.round(nearest.layers["0"].weight.detach()[1:] / (
        a[1:].detach()).reshape(-1, 1, 1, 1))).any())
