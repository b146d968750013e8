import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from karuku.data.idx import encode_idx, parse_idx, read_idx
from karuku.errors import KarukuError


@given(arrays(st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
              st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)))
@settings(max_examples=60, deadline=None)
def test_round_trip_is_exact(arr):
    back = parse_idx(encode_idx(arr))
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_header_is_big_endian_mnist_layout():
    raw = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", raw[4:16]) == (2, 28, 28)
    assert len(raw) == 16 + 2 * 28 * 28


def test_gzip_files_are_read(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(encode_idx(arr)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)


@pytest.mark.parametrize("raw, needle", [
    (b"", "not an IDX"),
    (b"\x01\x02\x08\x01" + b"\x00" * 8, "bad magic"),
    (b"\x00\x00\x07\x01" + b"\x00" * 8, "bad magic"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 9, "holds 9"),
    # a hostile header declaring ~2^96 bytes must fail fast, without allocating
    (b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\x00" * 4, "truncated"),
])
def test_bad_files_give_one_clear_error(raw, needle):
    with pytest.raises(KarukuError, match=needle):
        parse_idx(raw, "x.idx")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "b.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(KarukuError, match="corrupt gzip"):
        read_idx(tmp_path / "b.gz")
