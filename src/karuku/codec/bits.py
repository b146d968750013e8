"""Bit streams: variable-width codes packed MSB-first into bytes, and fixed-width unpacking.

Pure NumPy, no per-symbol Python loop: every code's bits are laid out with one `np.repeat`
and packed with `np.packbits`.
"""

from __future__ import annotations

import numpy as np


def pack_bits(values: np.ndarray, widths: np.ndarray | int) -> bytes:
    """Concatenate `values[i]` written in `widths[i]` bits (MSB first); zero-pad to a byte."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    widths = np.broadcast_to(np.asarray(widths, dtype=np.int64), values.shape)
    if values.size == 0:
        return b""
    if (widths < 1).any() or (widths > 32).any():
        raise ValueError("code widths must be 1..32 bits")
    if ((values < 0) | (values >= (np.int64(1) << widths))).any():
        raise ValueError("a value does not fit its width")
    ends = np.cumsum(widths)
    owner = np.repeat(np.arange(values.size), widths)
    # bit j of a code (0 = most significant) sits at position starts[owner] + j
    j = np.arange(int(ends[-1])) - (ends - widths)[owner]
    bits = (values[owner] >> (widths[owner] - 1 - j)) & 1
    return np.packbits(bits.astype(np.uint8)).tobytes()


def unpack_fixed(data: bytes | np.ndarray, count: int, width: int) -> np.ndarray:
    """The first `count` codes of `width` bits from an MSB-first stream (caller checks the length)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    bits = np.unpackbits(raw[: (count * width + 7) // 8])[: count * width].reshape(count, width)
    weights = np.int64(1) << np.arange(width - 1, -1, -1, dtype=np.int64)
    return bits.astype(np.int64) @ weights


def fixed_len(count: int, width: int) -> int:
    """Bytes of `count` codes of `width` bits."""
    return (count * width + 7) // 8
