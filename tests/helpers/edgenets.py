"""The small image network the edge back-ends (.tflite, CMSIS-NN) are checked on, and its integer engine."""

import torch
from torch import nn

from karuku.quant import QuantConfig, quantize, to_integer


class EdgeNet(nn.Module):
    """Every op the edge exporters write: SAME and explicit padding (a stride-2 conv), depthwise with ReLU6, padded
    max pool, residual add with ReLU, then a global average pool or a flatten of 2×2 pixels (weight columns
    permuted to NHWC) before two linears."""

    def __init__(self, gap: bool):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU6())
        self.pw = nn.Conv2d(8, 8, 1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.head = nn.Conv2d(8, 6, 1)
        self.gap = nn.AdaptiveAvgPool2d(1) if gap else nn.Identity()
        self.fc1 = nn.Linear(6 if gap else 6 * 2 * 2, 12)
        self.fc2 = nn.Linear(12, 5)

    def forward(self, x):
        y = self.features(x)
        y = self.relu(y + self.pw(self.dw(y)))
        y = self.gap(self.head(self.pool(y)))
        return self.fc2(self.relu(self.fc1(torch.flatten(y, 1))))


def integer_engine(model: nn.Module, shape, n: int = 96, **cfg):
    """`model` calibrated on 64 seeded random inputs of `shape` and made integer-only; the other n - 64 to test."""
    torch.manual_seed(0)
    x = torch.randn(n, *shape)
    return to_integer(quantize(model.eval(), QuantConfig(**cfg), x[:64])), x[64:]
