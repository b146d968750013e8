"""Teacher logits computed once for a fixed (unaugmented) training set, looked up per batch.

The training loop hands hooks only the batch (x, y), not the dataset indices, so examples
are found by a key derived from their content: a 64-bit BLAKE2b digest of each input's raw
bytes. That finds the right examples whatever the order, whichever rank's slice of a global
batch, and after a resume, with no change to the loop. A batch is served from the cache only
if every key is known and the stored inputs equal the batch bit for bit; anything else
(augmented or foreign data, a digest collision) falls back to running the teacher.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from karuku.training.evaluate import predict


def example_keys(x: torch.Tensor) -> list[int]:
    """One 64-bit key per example (first dimension), from its raw bytes."""
    rows = x.detach().reshape(len(x), -1).contiguous().cpu()
    raw = rows.view(torch.uint8).numpy()
    return [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") for r in raw]


class LogitCache:
    """The teacher's logits on every example of `inputs`, computed in eval mode without gradients."""

    def __init__(self, teacher: nn.Module, inputs: torch.Tensor, batch_size: int = 1000):
        self.inputs = inputs
        self.logits = predict(teacher, inputs, batch_size)
        # duplicates keep their first index; identical inputs have identical teacher logits anyway
        self.index: dict[int, int] = {}
        for i, k in enumerate(example_keys(inputs)):
            self.index.setdefault(k, i)
        self.hits = self.misses = 0

    def lookup(self, x: torch.Tensor) -> torch.Tensor | None:
        """The cached logits of batch `x`, or None when any example is not in the cache."""
        try:
            idx = torch.tensor([self.index[k] for k in example_keys(x)], dtype=torch.long)
        except KeyError:
            self.misses += 1
            return None
        if not torch.equal(self.inputs[idx], x):  # a digest collision: never serve wrong targets
            self.misses += 1
            return None
        self.hits += 1
        return self.logits[idx]
