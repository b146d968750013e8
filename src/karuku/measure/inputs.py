"""Example inputs for measuring a model: the one place that knows what a model takes.

Counting, activation memory, ONNX export and timing all feed a model inputs made here, so a model
with other inputs (several tensors, integer token ids) needs one change here, not one per measurement.
"""

from __future__ import annotations

import torch

# The largest batch of inputs karuku makes to time a model (a batch of 64 of the largest input a model spec may
# declare, karuku.models.spec.MAX_INPUT_VALUES float32 values each): a file claiming more is refused, not run.
MAX_INPUT_BYTES = 256 << 20


def zeros(input_shape: tuple[int, ...], batch: int = 1) -> torch.Tensor:
    """A batch of zero inputs: for counting and tracing, where values do not matter."""
    return torch.zeros(batch, *input_shape)


def random(input_shape: tuple[int, ...], batch: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """A batch of standard-normal inputs: for timing and parity checks."""
    return torch.randn(batch, *input_shape, generator=generator)
