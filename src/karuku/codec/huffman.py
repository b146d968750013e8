"""Canonical Huffman codes over small alphabets (≤ 256 symbols), vectorised with NumPy.

Building a code loops over the alphabet (at most 256 symbols); encoding and decoding never
loop per coded symbol in Python. Decoding uses a lookup table on the next L bits at *every*
bit position (one vectorised pass), then follows the chain "next code starts at i + len(i)"
from position 0 by pointer doubling: after r rounds the first 2^r code starts are known.
The stream is processed in chunks so memory stays proportional to the chunk, not the stream.
"""

from __future__ import annotations

import heapq

import numpy as np

from karuku.codec.bits import pack_bits
from karuku.errors import KarukuError

MAX_LEN = 15  # code lengths fit a nibble in the file's length table
CHUNK_BITS = 1 << 17  # bits decoded per pointer-doubling pass (bounds the working memory)


def code_lengths(freqs: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code lengths (uint8, 0 for unused symbols), limited to `max_len` bits.

    The limit is met by halving the counts (keeping used symbols at ≥ 1) until the code fits:
    simple, always terminates (equal counts give ⌈log2 A⌉ ≤ 8 bits), and costs almost nothing
    on the skewed distributions met here.
    """
    freqs = np.asarray(freqs, dtype=np.int64)
    while True:
        lengths = _huffman(freqs)
        if lengths.max(initial=0) <= max_len:
            return lengths
        freqs = np.where(freqs > 0, np.maximum(freqs >> 1, 1), 0)


def _huffman(freqs: np.ndarray) -> np.ndarray:
    lengths = np.zeros(freqs.size, dtype=np.uint8)
    used = np.flatnonzero(freqs)
    if used.size == 1:
        lengths[used] = 1  # one symbol still needs one bit per occurrence
        return lengths
    heap = [(int(freqs[s]), int(s), [int(s)]) for s in used]  # (weight, tie-break, members)
    heapq.heapify(heap)
    while len(heap) > 1:
        fa, ta, a = heapq.heappop(heap)
        fb, tb, b = heapq.heappop(heap)
        lengths[a + b] += 1
        heapq.heappush(heap, (fa + fb, min(ta, tb), a + b))
    return lengths


def check_lengths(lengths: np.ndarray) -> None:
    """Refuse a length table that is not a prefix code (Kraft sum over 1) or has lengths over MAX_LEN."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths < 0).any() or (lengths > MAX_LEN).any():
        raise KarukuError(f"Huffman code lengths outside 0..{MAX_LEN}", "the file is corrupt; re-pack the model")
    used = lengths[lengths > 0]
    if used.size == 0:
        return
    if int((np.int64(1) << (MAX_LEN - used)).sum()) > 1 << MAX_LEN:
        raise KarukuError("Huffman code lengths break Kraft's inequality (not a prefix code)",
                          "the file is corrupt; re-pack the model")


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code of each symbol (int64; 0 where unused): consecutive codes in (length, symbol) order."""
    lengths = np.asarray(lengths, dtype=np.int64)
    check_lengths(lengths)
    codes = np.zeros(lengths.size, dtype=np.int64)
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        codes[s], prev = code, int(lengths[s])
        code += 1
    return codes


def encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """The canonical Huffman bits of `symbols` (MSB first, zero-padded to a byte)."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    lengths = np.asarray(lengths, dtype=np.int64)
    if symbols.size == 0:
        return b""
    if symbols.min() < 0 or symbols.max() >= lengths.size or (lengths[symbols] == 0).any():
        raise ValueError("a symbol has no code")
    return pack_bits(canonical_codes(lengths)[symbols], lengths[symbols])


def encoded_bits(symbols: np.ndarray, lengths: np.ndarray) -> int:
    """Bits `encode` writes, before the byte padding."""
    return int(np.asarray(lengths, dtype=np.int64)[np.asarray(symbols, dtype=np.int64)].sum())


def _tables(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Lookup tables indexed by the next L bits: the symbol there and its code length (0 = no code)."""
    codes = canonical_codes(lengths)
    top = int(lengths.max())
    sym = np.zeros(1 << top, dtype=np.int64)
    size = np.zeros(1 << top, dtype=np.int64)
    for s in np.flatnonzero(lengths):  # ≤ 256 symbols: building the table, not decoding
        shift = top - int(lengths[s])
        sym[codes[s] << shift:(codes[s] + 1) << shift] = s
        size[codes[s] << shift:(codes[s] + 1) << shift] = lengths[s]
    return sym, size, top


def decode(data: bytes, lengths: np.ndarray, count: int) -> np.ndarray:
    """The first `count` symbols of a canonical Huffman stream; a bad or short stream is a KarukuError."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if not (lengths > 0).any():
        raise KarukuError(f"Huffman table is empty but {count} symbols are declared", "the file is corrupt")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if count > bits.size:
        raise KarukuError(f"Huffman stream of {bits.size} bits cannot hold {count} symbols", "the file is corrupt")
    sym_lut, len_lut, top = _tables(lengths)
    out, got, start = [], 0, 0
    while got < count:
        if start >= bits.size:
            raise KarukuError("Huffman stream ends early", "the file is truncated or corrupt")
        path, size, sym = _chunk(bits, start, top, sym_lut, len_lut, count - got)
        if (size[path] == 0).any():
            raise KarukuError("invalid Huffman code in stream", "the file is corrupt; re-pack the model")
        ends = start + path + size[path]
        if ends[-1] > bits.size:
            raise KarukuError("Huffman stream ends inside a code", "the file is truncated or corrupt")
        out.append(sym[path])
        got += path.size
        start = int(ends[-1])
    return np.concatenate(out)[:count]


def _chunk(bits, start, top, sym_lut, len_lut, need):
    """Code starts (relative to `start`) of up to `need` codes beginning in bits[start:start+CHUNK_BITS]."""
    n = min(CHUNK_BITS, bits.size - start)
    seg = np.zeros(n + top, dtype=np.int64)
    avail = bits[start:start + n + top]
    seg[: avail.size] = avail
    window = np.zeros(n, dtype=np.int64)
    for j in range(top):  # ≤ 15 vectorised passes: the next `top` bits at every position
        window = (window << 1) | seg[j:j + n]
    size, sym = len_lut[window], sym_lut[window]
    # pointer doubling: jump[i] = start of the code after the one at i; n is an absorbing "left the chunk"
    jump = np.append(np.minimum(np.arange(n) + size, n), n)
    path = np.zeros(1, dtype=np.int64)
    for _ in range(n.bit_length() + 1):
        if path[-1] == n or path.size >= need:
            break
        path = np.concatenate([path, jump[path]])
        jump = jump[jump]
    path = path[path < n][:need]
    # an invalid code (size 0) makes the chain stand still; keep one copy so the caller sees it
    if path.size > 1 and (size[path] == 0).any():
        path = path[: int(np.argmax(size[path] == 0)) + 1]
    return path, size, sym


def entropy_bits(symbols: np.ndarray, alphabet: int) -> float:
    """Shannon bound: the fewest bits any symbol-by-symbol code could use for `symbols`."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if symbols.size == 0:
        return 0.0
    p = np.bincount(symbols, minlength=alphabet) / symbols.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() * symbols.size)


def pack_lengths(lengths: np.ndarray) -> bytes:
    """Two 4-bit lengths per byte, even symbol in the high nibble (⌈A/2⌉ bytes)."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    padded = np.zeros(2 * ((lengths.size + 1) // 2), dtype=np.uint8)
    padded[: lengths.size] = lengths
    return ((padded[0::2] << 4) | padded[1::2]).astype(np.uint8).tobytes()


def unpack_lengths(data: bytes, alphabet: int) -> np.ndarray:
    """Inverse of `pack_lengths` (int64), validated as a prefix code."""
    raw = np.frombuffer(data, dtype=np.uint8)
    lengths = np.empty(raw.size * 2, dtype=np.int64)
    lengths[0::2], lengths[1::2] = raw >> 4, raw & 15
    if alphabet % 2 and lengths[alphabet:].any():
        raise KarukuError("Huffman table has a length for a symbol outside the alphabet", "the file is corrupt")
    lengths = lengths[:alphabet]
    check_lengths(lengths)
    return lengths
