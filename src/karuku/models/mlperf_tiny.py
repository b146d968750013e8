"""MLPerf Tiny's four reference models (mlcommons/tiny, benchmark/training/*), at their reference input shapes.

Written in PyTorch from the reference Keras definitions. One difference: Keras' padding='same' pads one row
more at the bottom / right than at the top / left when the total is odd (stride 2, or DS-CNN's 10×4 kernel);
PyTorch pads both sides alike, so those layers see the same shapes with a one-pixel shift. Parameters, MACs
and output sizes are the reference's. The models end in logits (the references add a softmax; arg-max is
unchanged and the integer engine keeps the logits' resolution).
"""

from __future__ import annotations

import math

from torch import nn

# the reference input shape of each (PyTorch layout, without batch); `karuku models` counts parameters there
REFERENCE_SHAPES = {"ds-cnn": (1, 49, 10), "resnet8": (3, 32, 32), "fc-autoencoder": (640,),
                    "mobilenetv1-025": (3, 96, 96)}


def _cbr(cin: int, cout: int, k, stride=1, padding=0, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, padding, groups=groups), nn.BatchNorm2d(cout), nn.ReLU()]


class DSCNN(nn.Module):
    """Keyword spotting (KWS): DS-CNN on 49×10 MFCC features, 12 classes (~24k parameters, 2.7M MACs)."""

    def __init__(self, input_shape=(1, 49, 10), num_classes: int = 12, filters: int = 64):
        super().__init__()
        layers = [*_cbr(input_shape[0], filters, (10, 4), 2, (5, 1)), nn.Dropout(0.2)]
        for _ in range(4):  # depthwise 3×3 + pointwise 1×1, each with BatchNorm and ReLU
            layers += _cbr(filters, filters, 3, 1, 1, groups=filters) + _cbr(filters, filters, 1)
        self.features = nn.Sequential(*layers, nn.Dropout(0.4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


class _Stack(nn.Module):
    """Two 3×3 conv-BN (ReLU between), plus the identity or a 1×1 stride-2 conv (no BN) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_cbr(cin, cout, 3, stride, 1), nn.Conv2d(cout, cout, 3, 1, 1),
                                  nn.BatchNorm2d(cout))
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.shortcut(x) + self.body(x))


class ResNet8(nn.Module):
    """Image classification (IC): ResNet-8 on 32×32×3 CIFAR-10, 10 classes (~78k parameters, 12.5M MACs)."""

    def __init__(self, input_shape=(3, 32, 32), num_classes: int = 10, filters: int = 16):
        super().__init__()
        self.stem = nn.Sequential(*_cbr(input_shape[0], filters, 3, 1, 1))
        self.stacks = nn.Sequential(_Stack(filters, filters, 1), _Stack(filters, 2 * filters, 2),
                                    _Stack(2 * filters, 4 * filters, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * filters, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.stacks(self.stem(x)))))


def fc_autoencoder(input_shape=(640,), num_classes: int | None = None, hidden: int = 128,
                   bottleneck: int = 8) -> nn.Sequential:
    """Anomaly detection (AD): the fully-connected autoencoder on 640 log-mel features (5 frames × 128 bins).

    Not a classifier: the output reconstructs the input (640 values; `num_classes` is ignored), and the
    anomaly score is the application's mean squared difference between input and output.
    """
    n = math.prod(input_shape)
    widths = [n, hidden, hidden, hidden, hidden, bottleneck, hidden, hidden, hidden, hidden]
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, n))


# (pointwise channels, depthwise stride) of MobileNetV1's 13 separable blocks at width 1
_MOBILENET_V1 = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
                 (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
    """Visual wake words (VWW): MobileNetV1 ×0.25 on 96×96×3, 2 classes (~209k parameters, 7.5M MACs)."""

    def __init__(self, input_shape=(3, 96, 96), num_classes: int = 2, alpha: float = 0.25):
        super().__init__()
        c = int(32 * alpha)
        layers = _cbr(input_shape[0], c, 3, 2, 1)
        for width, stride in _MOBILENET_V1:
            out = int(width * alpha)
            layers += _cbr(c, c, 3, stride, 1, groups=c) + _cbr(c, out, 1)
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))
