"""Fully connected nets: LeNet-300-100, Hinton's distillation MLPs, the MNIST-1D MLP."""

from __future__ import annotations

import math

from torch import nn


class MLP(nn.Module):
    """Flatten, then Linear-ReLU(-Dropout) layers `fc1..fcN`; the last layer has no activation."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...],
                 dropout: float = 0.0, input_dropout: float = 0.0):
        super().__init__()
        self.flatten = nn.Flatten()
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout else nn.Identity()
        sizes = (math.prod(input_shape), *hidden, num_classes)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.add_module(f"fc{i}", nn.Linear(a, b))
            layers.append(getattr(self, f"fc{i}"))
        self.depth = len(layers)
        for i in range(1, self.depth):
            self.add_module(f"relu{i}", nn.ReLU())
            self.add_module(f"drop{i}", nn.Dropout(dropout) if dropout else nn.Identity())

    def forward(self, x):
        x = self.input_dropout(self.flatten(x))
        for i in range(1, self.depth):
            x = getattr(self, f"drop{i}")(getattr(self, f"relu{i}")(getattr(self, f"fc{i}")(x)))
        return getattr(self, f"fc{self.depth}")(x)


def lenet300(input_shape=(1, 28, 28), num_classes=10):
    """LeNet-300-100 (266,610 parameters on MNIST)."""
    return MLP(input_shape, num_classes, (300, 100))


def mlp_teacher(input_shape=(1, 28, 28), num_classes=10, dropout=0.5, input_dropout=0.2):
    """Hinton's teacher 784-1200-1200-10 with dropout."""
    return MLP(input_shape, num_classes, (1200, 1200), dropout=dropout, input_dropout=input_dropout)


def mlp_student(input_shape=(1, 28, 28), num_classes=10):
    """Hinton's student 784-800-800-10, no regularisation."""
    return MLP(input_shape, num_classes, (800, 800))


def mnist1d_mlp(input_shape=(1, 40), num_classes=10, hidden=(500, 500)):
    """The MNIST-1D lottery-ticket MLP, 40-500-500-10."""
    return MLP(input_shape, num_classes, tuple(hidden))
