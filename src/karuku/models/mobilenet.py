"""A small MobileNetV2: inverted residuals with depthwise convolutions and ReLU6."""

from __future__ import annotations

from torch import nn


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1×1 expand (ReLU6), 3×3 depthwise (ReLU6), 1×1 linear projection; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [_conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


# (expansion, channels, repeats, first stride)
DEFAULT_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2))


class MobileNetV2S(nn.Module):
    """Stem conv, inverted-residual stages, a 1×1 head conv, global average pool, fc."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, width: float = 1.0,
                 settings=DEFAULT_SETTINGS, stem: int = 32, head: int = 256):
        super().__init__()
        scale = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731  (channels in multiples of 8)
        cin = scale(stem)
        self.stem = _conv_bn(input_shape[0], cin, 3)
        blocks = []
        for t, c, n, s in settings:
            for i in range(n):
                blocks.append(InvertedResidual(cin, scale(c), s if i == 0 else 1, t))
                cin = scale(c)
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(cin, head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(head, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.head(self.blocks(self.stem(x))))))
