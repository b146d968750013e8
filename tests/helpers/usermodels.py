"""A user's own model package, importable as helpers.usermodels:factory."""

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):
        return self.net(x)


def tiny(width: int = 16):
    """Takes neither input_shape nor num_classes: karuku must not pass them."""
    return Tiny(width)


def not_a_model():
    return 42


class Branchy(nn.Module):
    """A user's small CNN: a depthwise block with a residual add, two branches joined by torch.cat, adaptive
    average pooling to 2×2 (what a new user tried first: PTQ worked, int8 export refused cat and the pool)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width),
                                nn.ReLU6(), nn.Conv2d(width, width, 1), nn.BatchNorm2d(width))
        self.left, self.right = nn.Conv2d(width, width, 3, stride=2, padding=1), nn.Conv2d(width, width, 1, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(2 * width * 4, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.dw(x)
        x = torch.cat([torch.relu(self.left(x)), self.right(x)], dim=1)
        return self.fc(torch.flatten(self.pool(x), 1))


def branchy(width: int = 8):
    return Branchy(width)
