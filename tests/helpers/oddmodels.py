"""Models outside what karuku compresses best: recurrent and attention layers, importable as
helpers.oddmodels:factory (a user's own package)."""

from torch import nn


class LSTMNet(nn.Module):
    """An LSTM over the image rows (8 steps of 8 values on digits-shaped input)."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10):
        super().__init__()
        self.lstm = nn.LSTM(input_shape[-1], 16, batch_first=True)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        out, _ = self.lstm(x.flatten(1, 2))
        return self.fc(out[:, -1])


class AttentionNet(nn.Module):
    """Self-attention over the image rows."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10):
        super().__init__()
        self.mha = nn.MultiheadAttention(input_shape[-1], 2, batch_first=True)
        self.fc = nn.Linear(input_shape[-1], num_classes)

    def forward(self, x):
        rows = x.flatten(1, 2)
        out, _ = self.mha(rows, rows, rows)
        return self.fc(out.mean(1))


def lstm(input_shape=(1, 8, 8), num_classes=10):
    return LSTMNet(input_shape, num_classes)


def attention(input_shape=(1, 8, 8), num_classes=10):
    return AttentionNet(input_shape, num_classes)


class Pair(nn.Module):
    """Returns (scores, features): karuku needs the scores alone."""

    def __init__(self, input_shape=(1, 8, 8), num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y, x


def pair(input_shape=(1, 8, 8), num_classes=10):
    return Pair(input_shape, num_classes)


def wrong_width(input_shape=(1, 8, 8), num_classes=10):
    """Built for 63 inputs: does not take the data's."""
    return nn.Sequential(nn.Flatten(), nn.Linear(63, num_classes))


def few_classes(input_shape=(1, 8, 8), num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def fails(input_shape=(1, 8, 8), num_classes=10):
    raise ValueError("the factory's own complaint")
