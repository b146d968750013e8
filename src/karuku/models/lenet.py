"""Convolutional LeNets: the Caffe variant used by Deep Compression, and LeCun's LeNet-5."""

from __future__ import annotations

import torch
from torch import nn


def _flat_features(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).numel()


class LeNet5(nn.Module):
    """Caffe LeNet (431,080 parameters on MNIST): conv 20@5×5, pool, conv 50@5×5, pool, fc 800→500→10.

    Caffe's net has no activation after the convolutions; we add ReLU there (no parameters
    change) because it trains to the same accuracy and gives uint8-friendly activations.
    """

    def __init__(self, input_shape=(1, 28, 28), num_classes=10):
        super().__init__()
        c = input_shape[0]
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(c, 20, 5), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        feats = nn.Sequential(self.conv1, self.relu1, self.pool1, self.conv2, self.relu2, self.pool2)
        self.fc1, self.relu3 = nn.Linear(_flat_features(feats, input_shape), 500), nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


class LeNet5LeCun(nn.Module):
    """LeCun's LeNet-5 (61,706 parameters on MNIST): conv 6@5×5 pad 2, pool, conv 16@5×5, pool, 120, 84."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10):
        super().__init__()
        c = input_shape[0]
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        feats = nn.Sequential(self.conv1, self.relu1, self.pool1, self.conv2, self.relu2, self.pool2)
        self.fc1, self.relu3 = nn.Linear(_flat_features(feats, input_shape), 120), nn.ReLU()
        self.fc2, self.relu4 = nn.Linear(120, 84), nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.fc3(self.relu4(self.fc2(x)))
