"""One shared tensor in coded form: codebook, cluster indices of the survivors, and their gap codes.

`code_tensor` turns a weight tensor whose nonzeros take at most 2^b distinct values into this
form; `CodedTensor.dense` rebuilds it bit for bit. Streams are Huffman-coded when that is smaller
than fixed width (the length table counts against Huffman).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from karuku.codec import huffman, relindex
from karuku.codec.bits import fixed_len, pack_bits, unpack_fixed
from karuku.errors import KarukuError


@dataclass
class Stream:
    """Codes over an alphabet of 2^width symbols, and how they are stored."""

    codes: np.ndarray
    width: int
    lengths: np.ndarray | None = None  # Huffman code lengths when Huffman-coded

    @property
    def alphabet(self) -> int:
        return 1 << self.width

    @functools.cached_property
    def counts(self) -> np.ndarray:
        """How often each symbol occurs (sizes come from this, not from the codes)."""
        return np.bincount(self.codes, minlength=self.alphabet)

    def payload(self) -> bytes:
        if self.lengths is None:
            return pack_bits(self.codes, self.width)
        return huffman.encode(self.codes, self.lengths)

    def stored_bytes(self) -> int:
        """Bytes in the file: length table (Huffman only), u32 length, payload."""
        if self.lengths is None:
            return 4 + fixed_len(self.codes.size, self.width)
        table = (self.alphabet + 1) // 2
        return table + 4 + (self.huffman_bits() + 7) // 8

    def fixed_bits(self) -> int:
        return self.codes.size * self.width

    def huffman_bits(self) -> int:
        lengths = self.lengths if self.lengths is not None else huffman.code_lengths(self.counts)
        return int((self.counts * lengths).sum())

    def entropy_bits(self) -> float:
        n = self.codes.size
        p = self.counts[self.counts > 0] / max(n, 1)
        return float(-(p * np.log2(p)).sum() * n)


def make_stream(codes: np.ndarray, width: int, use_huffman: bool) -> Stream:
    """A stream in fixed width, or Huffman-coded when asked and smaller."""
    plain = Stream(codes.astype(np.int64), width)
    if not use_huffman or codes.size == 0:
        return plain
    coded = Stream(plain.codes, width, huffman.code_lengths(plain.counts))
    return coded if coded.stored_bytes() < plain.stored_bytes() else plain


@dataclass
class CodedTensor:
    """Deep Compression's form of one tensor (see docs/FORMAT.md, shared records)."""

    shape: tuple[int, ...]
    codebook: np.ndarray  # float32, 2^bits entries
    weights: Stream  # cluster index of each surviving weight
    gaps: Stream  # relative indices with filler zeros

    @property
    def bits(self) -> int:
        return self.weights.width

    @property
    def index_bits(self) -> int:
        return self.gaps.width

    @property
    def nnz(self) -> int:
        return int(self.weights.codes.size)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def positions(self) -> np.ndarray:
        """Flat positions of the surviving weights (refuses a gap stream that does not fit)."""
        return relindex.decode(self.gaps.codes, self.index_bits, self.numel, self.nnz)

    def dense(self) -> np.ndarray:
        """The float32 tensor, exactly as before coding."""
        out = np.zeros(self.numel, dtype=np.float32)
        out[self.positions()] = self.codebook[self.weights.codes]
        return out.reshape(self.shape)

    def stored_bytes(self) -> int:
        """Bytes of the record body after the name and shape (see FORMAT.md)."""
        return 12 + 4 * self.codebook.size + self.weights.stored_bytes() + self.gaps.stored_bytes()


def code_tensor(name: str, weight: np.ndarray, bits: int | None = None, index_bits: int | None = None,
                use_huffman: bool = True) -> CodedTensor:
    """Code a float32 tensor whose nonzeros share at most 2^bits values.

    `bits` None: the fewest bits that hold the distinct values. `index_bits` None: the width
    1..8 that makes this tensor's stored gap stream smallest.
    """
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    positions = np.flatnonzero(flat)
    if positions.size == 0:
        raise KarukuError(f"layer {name} has no surviving weights",
                          "every weight of a layer is zero, which cuts the network; prune this layer less")
    values, codes = np.unique(flat[positions], return_inverse=True)
    need = max(1, int(np.ceil(np.log2(values.size)))) if values.size > 1 else 1
    bits = need if bits is None else bits
    if not 1 <= bits <= 8:
        raise KarukuError(f"{name}: weight bits {bits} outside 1..8", "choose 1..8 bits per shared weight")
    if values.size > 1 << bits:
        raise KarukuError(f"{name} has {values.size} distinct values, more than 2^{bits}",
                          "cluster the model first (karuku cluster) or give more bits")
    codebook = np.zeros(1 << bits, dtype=np.float32)
    codebook[: values.size] = values
    weights = make_stream(codes.reshape(-1), bits, use_huffman)
    widths = range(1, 9) if index_bits is None else [index_bits]
    candidates = [make_stream(relindex.encode(positions, p), p, use_huffman) for p in widths]
    gaps = min(candidates, key=lambda s: (s.stored_bytes(), s.width))
    return CodedTensor(tuple(int(d) for d in weight.shape), codebook, weights, gaps)


def decode_stream(payload: bytes, count: int, width: int, lengths: np.ndarray | None) -> Stream:
    """Read `count` codes (the caller has checked the payload length against the file)."""
    if lengths is None:
        codes = unpack_fixed(payload, count, width)
    else:
        codes = huffman.decode(payload, lengths, count)
    return Stream(codes, width, lengths)
