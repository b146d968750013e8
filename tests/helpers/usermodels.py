"""A user's own model package, importable as helpers.usermodels:factory."""

import torch
from torch import nn
from torch.utils.data import Dataset


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


class TokenMask(nn.Module):
    """A user's tiny text classifier of two integer inputs: token ids and an attention mask (masked mean of the
    token embeddings, then a two-layer head)."""

    def __init__(self, vocab: int = 32, dim: int = 16, num_classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 32), nn.Linear(32, num_classes)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.fc2(torch.relu(self.fc1(pooled)))


def token_mask(num_classes: int = 2, vocab: int = 32, dim: int = 16):
    """Takes no input_shape: what it takes is token ids and a mask (the data says their length)."""
    return TokenMask(vocab, dim, num_classes)


class TokenFlat(nn.Module):
    """Token ids and a mask through layers that all have an integer form (embeddings flattened into a linear
    layer, the mask as features), for quantization in the loop."""

    def __init__(self, vocab: int = 32, length: int = 12, dim: int = 8, num_classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.tokens, self.mask = nn.Linear(length * dim, 32), nn.Linear(length, 32)
        self.head = nn.Linear(32, num_classes)

    def forward(self, input_ids, attention_mask):
        return self.head(torch.relu(self.tokens(self.embed(input_ids).flatten(1)) + self.mask(attention_mask.float())))


def token_flat(num_classes: int = 2, vocab: int = 32, length: int = 12, dim: int = 8):
    return TokenFlat(vocab, length, dim, num_classes)


def token_flat3():
    """A token model brought in as it is (its own 3 outputs; takes neither input_shape nor num_classes)."""
    return TokenFlat(num_classes=3)


class Masked(Dataset):
    """Examples ((input_ids, attention_mask), y): 12 tokens, padded (id 0, mask 0) after 4-12 of them; the class
    says whether token 5 or 7 is among the real ones (the data of the token models below)."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        lens = torch.randint(4, 13, (n,), generator=g)
        self.mask = (torch.arange(12)[None] < lens[:, None]).long()
        self.ids = torch.randint(1, 32, (n, 12), generator=g) * self.mask
        self.y = ((self.ids == 5) | (self.ids == 7)).any(1).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.ids[i], self.mask[i]), self.y[i]


def masked_data(train: bool = True):
    """`Masked` as a data factory (`--data helpers.usermodels:masked_data`): examples of token ids and a mask."""
    return Masked(600 if train else 200, 0 if train else 1)
