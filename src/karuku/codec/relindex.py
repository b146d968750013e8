"""Relative indices (Deep Compression): each surviving weight's position as the gap to the previous one.

Gaps are stored in `p` bits. With M = 2^p − 1, a gap d > M is preceded by ⌈d/M⌉ − 1 filler
codes 0, each meaning "advance M positions, no weight here"; real gaps are 1..M. Code 0
therefore never needs a weight index (see docs/FORMAT.md, "Relative indices").
"""

from __future__ import annotations

import numpy as np

from karuku.errors import KarukuError


def encode(positions: np.ndarray, p: int) -> np.ndarray:
    """Gap codes (uint8) for strictly increasing flat `positions` of nonzeros."""
    if not 1 <= p <= 8:
        raise KarukuError(f"index bits {p} outside 1..8", "choose 1..8 bits for relative indices")
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    if pos.size == 0:
        return np.zeros(0, dtype=np.uint8)
    gaps = np.diff(pos, prepend=-1)
    if (gaps < 1).any():
        raise ValueError("positions must be strictly increasing and non-negative")
    m_max = (1 << p) - 1
    fillers = (gaps - 1) // m_max
    out = np.zeros(int(fillers.sum()) + pos.size, dtype=np.uint8)
    out[np.cumsum(fillers + 1) - 1] = gaps - fillers * m_max
    return out


def decode(codes: np.ndarray, p: int, numel: int, nnz: int) -> np.ndarray:
    """Flat positions of the nonzeros; refuses streams that do not describe `nnz` weights inside `numel`."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    if codes.size == 0:
        if nnz:
            raise KarukuError(f"relative-index stream is empty but {nnz} weights are declared")
        return np.zeros(0, dtype=np.int64)
    if codes[-1] == 0:
        raise KarukuError("relative-index stream ends with a filler", "the file is corrupt; re-pack the model")
    step = np.where(codes == 0, (1 << p) - 1, codes)
    pos = np.cumsum(step) - 1
    real = pos[codes != 0]
    if real.size != nnz:
        raise KarukuError(f"relative-index stream holds {real.size} weights, {nnz} declared",
                          "the file is corrupt; re-pack the model")
    if pos[-1] >= numel:
        raise KarukuError(f"relative indices point past the tensor ({int(pos[-1])} ≥ {numel} elements)",
                          "the file is corrupt; re-pack the model")
    return real


def count(positions: np.ndarray, p: int) -> int:
    """Number of gap codes (weights + fillers) `encode` would emit, without building them."""
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    if pos.size == 0:
        return 0
    gaps = np.diff(pos, prepend=-1)
    return int(((gaps - 1) // ((1 << p) - 1)).sum()) + pos.size
