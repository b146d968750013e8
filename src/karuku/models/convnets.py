"""Conv-2 / Conv-4 / Conv-6 of the lottery-ticket paper, and a small 1-D CNN for MNIST-1D."""

from __future__ import annotations

import torch
from torch import nn


class ConvNet(nn.Module):
    """VGG-like: pairs of 3×3 conv-ReLU then max-pool, then fc 256-256-classes (Frankle & Carbin)."""

    def __init__(self, input_shape, num_classes, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        c = input_shape[0]
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).numel()
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, 256),
                                        nn.ReLU(), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def conv2(input_shape=(3, 32, 32), num_classes=10):
    """Conv-2 (lottery-ticket paper): 64, 64, pool, fc 256-256."""
    return ConvNet(input_shape, num_classes, (64, 64))


def conv4(input_shape=(3, 32, 32), num_classes=10):
    """Conv-4: 64, 64, pool, 128, 128, pool, fc 256-256."""
    return ConvNet(input_shape, num_classes, (64, 64, 128, 128))


def conv6(input_shape=(3, 32, 32), num_classes=10):
    """Conv-6: 64, 64, pool, 128, 128, pool, 256, 256, pool, fc 256-256."""
    return ConvNet(input_shape, num_classes, (64, 64, 128, 128, 256, 256))


class CNN1D(nn.Module):
    """Three strided 1-D convolutions and a linear classifier (MNIST-1D's CNN baseline, ~94 %)."""

    def __init__(self, input_shape=(1, 40), num_classes=10, width: int = 32):
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(
            nn.Conv1d(c, width, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1), nn.ReLU(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).numel()
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """Two VGG blocks (3×3 conv-BN-ReLU twice, then max-pool) and a linear classifier: a small image CNN
    (≈ 18 M MACs, 65 K parameters at widths 32, 64 on 28×28) whose BatchNorms fold into the convs for int8
    and whose channels structured pruning can remove."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, widths: tuple[int, int] = (32, 64),
                 dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        c = input_shape[0]
        for w in widths:
            for _ in range(2):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).numel()
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
