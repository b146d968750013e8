"""Canonical Huffman: exact round trips, prefix-free canonical codes, Kraft, and refusal of bad streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from karuku.codec import huffman
from karuku.codec.bits import pack_bits, unpack_fixed
from karuku.errors import KarukuError

symbol_lists = st.integers(1, 8).flatmap(
    lambda b: st.tuples(st.just(b), st.lists(st.integers(0, (1 << b) - 1), min_size=1, max_size=400)))


def _code_strings(lengths):
    codes = huffman.canonical_codes(lengths)
    return {s: format(int(codes[s]), f"0{int(lengths[s])}b") for s in np.flatnonzero(lengths)}


@settings(max_examples=150, deadline=None)
@given(symbol_lists)
def test_round_trip_is_exact(case):
    bits, symbols = case
    symbols = np.array(symbols)
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=1 << bits))
    data = huffman.encode(symbols, lengths)
    assert len(data) == (huffman.encoded_bits(symbols, lengths) + 7) // 8
    assert np.array_equal(huffman.decode(data, lengths, symbols.size), symbols)
    # the table survives its own serialisation
    assert np.array_equal(huffman.unpack_lengths(huffman.pack_lengths(lengths), 1 << bits), lengths)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=256))
def test_canonical_code_is_prefix_free_optimal_and_within_kraft(freqs):
    freqs = np.array(freqs)
    lengths = huffman.code_lengths(freqs)
    assert ((lengths > 0) == (freqs > 0)).all()
    assert lengths.max(initial=0) <= huffman.MAX_LEN
    used = lengths[lengths > 0]
    if used.size:
        assert (2.0 ** -used.astype(float)).sum() <= 1.0
    words = sorted(_code_strings(lengths).values())
    for a, b in zip(words, words[1:]):
        assert not b.startswith(a)
    # within one bit per symbol of the entropy (when no length limit kicked in)
    n = freqs.sum()
    if n and used.size > 1 and lengths.max() < huffman.MAX_LEN:
        p = freqs[freqs > 0] / n
        assert (freqs * lengths).sum() / n < -(p * np.log2(p)).sum() + 1


def test_canonical_codes_match_deflate_example():
    # RFC 1951 §3.2.2: lengths (3,3,3,3,3,2,4,4) give codes 010 011 100 101 110 00 1110 1111
    lengths = np.array([3, 3, 3, 3, 3, 2, 4, 4])
    assert list(_code_strings(lengths).values()) == ["010", "011", "100", "101", "110", "00", "1110", "1111"]


def test_known_bits():
    lengths = np.array([1, 2, 2])  # codes 0, 10, 11
    assert huffman.encode(np.array([0, 1, 2, 0]), lengths) == bytes([0b01011000])


def test_length_limit_on_fibonacci_counts():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    lengths = huffman.code_lengths(np.array(fib))
    assert lengths.max() == huffman.MAX_LEN
    symbols = np.repeat(np.arange(30), 3)
    assert np.array_equal(huffman.decode(huffman.encode(symbols, lengths), lengths, symbols.size), symbols)


def test_long_stream_crosses_chunks():
    rng = np.random.default_rng(0)
    symbols = rng.geometric(0.3, size=200_000).clip(max=255) - 1
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=256))
    assert len(huffman.encode(symbols, lengths)) * 8 > 2 * huffman.CHUNK_BITS
    assert np.array_equal(huffman.decode(huffman.encode(symbols, lengths), lengths, symbols.size), symbols)


def test_entropy_bound():
    assert huffman.entropy_bits(np.array([0, 1, 2, 3]), 4) == pytest.approx(8.0)
    assert huffman.entropy_bits(np.array([5, 5, 5]), 8) == 0.0


@pytest.mark.parametrize("lengths", [[1, 1, 1], [16, 1], [0, 0]])
def test_bad_tables_refused(lengths):
    with pytest.raises(KarukuError):
        huffman.decode(b"\x00", np.array(lengths), 1)


def test_bad_streams_refused():
    lengths = np.array([1, 2, 0, 0])  # 0, 10; "11" is not a code
    with pytest.raises(KarukuError, match="invalid Huffman code"):
        huffman.decode(bytes([0b11000000]), lengths, 1)
    with pytest.raises(KarukuError, match="cannot hold"):
        huffman.decode(b"\x00", lengths, 9)
    with pytest.raises(KarukuError, match="ends"):
        huffman.decode(bytes([0b00000001]), lengths, 8)  # the 8th code needs a bit past the end


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8).flatmap(lambda w: st.tuples(st.just(w), st.lists(st.integers(0, (1 << w) - 1), max_size=200))))
def test_fixed_width_round_trip(case):
    width, values = case
    data = pack_bits(np.array(values, dtype=np.int64), width)
    assert len(data) == (len(values) * width + 7) // 8
    assert unpack_fixed(data, len(values), width).tolist() == values
