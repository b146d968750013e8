"""fold_normalization + QuantConfig.input_range: the int8 input is the 8-bit pixel itself."""

import pytest
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.quant import QuantConfig, fold_normalization, quantize, to_integer

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tiny(padding: int = 0, bias: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=padding, bias=bias), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).eval()


def pixels(n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 12, 12), generator=g).float() / 255


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("bias", [False, True])
def test_fold_is_exact_without_padding(bias):
    net, x = tiny(bias=bias), pixels()
    folded = fold_normalization(net, MEAN, STD)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(normalise(x)), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net[0].weight, tiny(bias=bias)[0].weight)  # the original is untouched


def test_fold_with_zero_padding_differs_only_on_the_border():
    net, x = tiny(padding=1), pixels()
    folded = fold_normalization(net, MEAN, STD, conv="0")
    with torch.no_grad():
        a, b = net[0](normalise(x)), folded[0](x)
    assert torch.allclose(a[..., 1:, 1:], b[..., 1:, 1:], atol=1e-5)  # rows/cols reading padding are the top/left
    assert not torch.allclose(a[..., 0, :], b[..., 0, :], atol=1e-3)  # padded with pixel 0 there, not the mean


def test_input_range_makes_the_int8_input_the_pixel():
    x = pixels()
    qm = quantize(fold_normalization(tiny(), MEAN, STD), QuantConfig(input_range=(0, 1), calibration=16), x)
    inp = next(n.name for n in qm.nodes if n.op == "input")
    scale, zp = qm.act(inp).qparams()
    assert float(scale) == pytest.approx(1 / 255) and int(zp) == 0
    q = to_integer(qm).quantize_input(x)
    assert torch.equal(q.to(torch.int64), torch.round(x * 255).to(torch.int64))  # no rounding: the pixels
    # a calibrated range would not have been the pixel grid
    scale_cal = quantize(fold_normalization(tiny(), MEAN, STD), QuantConfig(calibration=16), x * 0.9).act(inp)
    assert float(scale_cal.qparams()[0]) != pytest.approx(1 / 255)


def test_bad_normalisation_and_input_range_are_one_line_errors():
    cases = [
        (lambda: fold_normalization(tiny(), MEAN[:2], STD), "mean and std must be two equal-length lists"),
        (lambda: fold_normalization(tiny(), MEAN, [0.2, 0.0, 0.2]), "std > 0"),
        (lambda: fold_normalization(tiny(), MEAN, STD, conv="stem"), "no Conv2d named 'stem'"),
        (lambda: fold_normalization(tiny(), MEAN, STD, conv="3"), "'3' takes 4 channels"),
        (lambda: fold_normalization(nn.Linear(3, 2), MEAN, STD), "no Conv2d"),
        (lambda: QuantConfig(input_range=(0.2, 1)), "input_range must be"),
        (lambda: QuantConfig(input_range=[0, 1, 2]), "input_range must be"),
        (lambda: QuantConfig(mode="dynamic", input_range=(0, 1)), "applies to `mode` ptq only"),
    ]
    for fn, text in cases:
        with pytest.raises(KarukuError, match=text) as err:
            fn()
        assert "\n" not in str(err.value)
