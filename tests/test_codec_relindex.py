"""Relative indices: exact round trips, filler counts, and refusal of inconsistent streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from karuku.codec import relindex
from karuku.errors import KarukuError


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.sets(st.integers(0, 5000), min_size=1, max_size=300))
def test_round_trip_is_exact(p, positions):
    pos = np.array(sorted(positions))
    codes = relindex.encode(pos, p)
    assert codes.max() < 1 << p and codes[-1] != 0
    assert codes.size == relindex.count(pos, p)
    assert np.array_equal(relindex.decode(codes, p, 5001, pos.size), pos)


def test_paper_example_with_fillers():
    # 3-bit gaps (M = 7): positions 1, 4, 15 → gaps 2, 3, 11 = filler (7) + 4
    assert relindex.encode(np.array([1, 4, 15]), 3).tolist() == [2, 3, 0, 4]
    # a gap of exactly M needs no filler
    assert relindex.encode(np.array([6]), 3).tolist() == [7]
    assert relindex.encode(np.array([7]), 3).tolist() == [0, 1]


def test_bad_streams_refused():
    with pytest.raises(KarukuError, match="filler"):
        relindex.decode(np.array([3, 0]), 3, 100, 1)
    with pytest.raises(KarukuError, match="past the tensor"):
        relindex.decode(np.array([7, 7]), 3, 10, 2)
    with pytest.raises(KarukuError, match="declared"):
        relindex.decode(np.array([1, 1]), 3, 10, 3)
    with pytest.raises(KarukuError, match="1..8"):
        relindex.encode(np.array([1]), 9)
