"""Quantization primitives: exact values, and the fixed-point multiply against rational arithmetic."""

from fractions import Fraction
from math import floor

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from karuku.errors import KarukuError
from karuku.quant import observers as obs
from karuku.quant.primitives import (
    INT32_MAX,
    INT32_MIN,
    choose_qparams,
    dequantize,
    fake_quantize,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_single,
    qrange,
    quantize,
    quantize_multiplier,
    requantize,
    rescale,
    rounding_shift_right,
    srdhm,
)

int32s = st.integers(INT32_MIN, INT32_MAX)


def test_qrange():
    assert qrange(8, True) == (-128, 127)
    assert qrange(8, True, narrow=True) == (-127, 127)
    assert qrange(8, False) == (0, 255)
    assert qrange(4, True, narrow=True) == (-7, 7)
    assert qrange(2, False) == (0, 3)
    for bad in (1, 9, 0, 16):
        with pytest.raises(KarukuError, match="bits must be an integer from 2 to 8"):
            qrange(bad, True)


def test_quantize_dequantize_exact():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.375, 1.0, 3.0])
    q = quantize(x, 0.25, 2, 0, 15)
    # 0.375 / 0.25 = 1.5 → 2 (ties to even); -1 / .25 + 2 = -2 → clamped to 0; 3 → 14
    assert q.tolist() == [0, 0, 2, 3, 4, 6, 14]
    assert dequantize(q, 0.25, 2).tolist() == [-0.5, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0]


def test_per_channel_and_zero_exact():
    w = torch.tensor([[1.0, -2.0], [0.1, 0.05]])
    scale = torch.tensor([2 / 127, 0.1 / 127])
    q = quantize(w, scale, torch.zeros(2), -127, 127, axis=0)
    assert q.tolist() == [[64, -127], [127, 64]]
    for signed in (False, True):
        for lo, hi in ((-1.3, 2.7), (0.2, 5.0), (-4.0, -1.0)):
            s, z = choose_qparams(lo, hi, 8, signed)
            qmin, qmax = qrange(8, signed)
            assert qmin <= int(z) <= qmax
            assert fake_quantize(torch.zeros(1), s, z, qmin, qmax).item() == 0.0  # zero exactly representable
    s, z = choose_qparams(-1.0, 3.0, 8, signed=False, symmetric=True)
    assert int(z) == 128 and abs(float(s) - 3 / 127) < 1e-7


def test_fake_quantize_error_within_half_step():
    x = torch.linspace(-2, 3, 1001)
    s, z = choose_qparams(x.min(), x.max(), 8, False)
    assert (fake_quantize(x, s, z, 0, 255) - x).abs().max() <= float(s) / 2 + 1e-6


def test_srdhm_known_values():
    a = torch.tensor([INT32_MIN, 1 << 30, -(1 << 30), 3, -3, 100])
    b = torch.tensor([INT32_MIN, 1 << 30, 1 << 30, 1 << 30, 1 << 30, INT32_MAX])
    assert srdhm(a, b).tolist() == [INT32_MAX, 1 << 29, -(1 << 29), 2, -1, 100]


def test_rounding_shift_known_values():
    x = torch.tensor([5, -5, 6, -6, 7, -7, 4, -4])
    # /4: 1.25 1 | -1.25 -1 | 1.5 2 | -1.5 -2 | 1.75 2 | -1.75 -2 | 1 | -1
    assert rounding_shift_right(x, 2).tolist() == [1, -1, 2, -2, 2, -2, 1, -1]
    assert rounding_shift_right(torch.tensor([INT32_MAX, INT32_MIN]), 31).tolist() == [1, -1]


@settings(max_examples=200, deadline=None)
@given(int32s, int32s)
def test_srdhm_matches_rationals(a, b):
    expected = INT32_MAX if a == b == INT32_MIN else floor(Fraction(a * b, 1 << 31) + Fraction(1, 2))
    assert srdhm(torch.tensor([a]), torch.tensor([b])).item() == expected


def _round_half_away(f: Fraction) -> int:
    return floor(f + Fraction(1, 2)) if f >= 0 else -floor(-f + Fraction(1, 2))


@settings(max_examples=200, deadline=None)
@given(int32s, st.integers(0, 31))
def test_rounding_shift_matches_rationals(x, e):
    assert rounding_shift_right(torch.tensor([x]), e).item() == _round_half_away(Fraction(x, 1 << e))


@settings(max_examples=200, deadline=None)
@given(st.integers(-(1 << 24), 1 << 24), st.floats(1e-6, 0.999, allow_nan=False))
def test_requantization_close_to_exact(acc, m):
    m0, shift = quantize_multiplier(m)
    assert (1 << 30) <= m0 < (1 << 31) and 0 <= shift <= 31
    # the stored multiplier is within 2^-31 relative of m
    stored = Fraction(m0, 1 << 31) / (1 << shift)
    assert abs(stored - Fraction(m)) <= Fraction(m) / (1 << 30)
    got = multiply_by_quantized_multiplier(torch.tensor([acc]), m0, shift).item()
    # two roundings (high multiply, then shift) stay within one unit of the exact product
    assert abs(Fraction(got) - Fraction(acc) * stored) <= 1
    # and the result is exactly the documented two-stage formula
    stage1 = floor(Fraction(acc * m0, 1 << 31) + Fraction(1, 2))
    assert got == _round_half_away(Fraction(stage1, 1 << shift))


@settings(max_examples=200, deadline=None)
@given(st.integers(-(1 << 16), 1 << 16), st.floats(1.0, 1000.0, allow_nan=False))
def test_large_multipliers_shift_left(acc, m):
    m0, shift = quantize_multiplier(m)
    assert shift <= 0
    got = multiply_by_quantized_multiplier(torch.tensor([acc]), m0, shift).item()
    exact = max(INT32_MIN, min(INT32_MAX, acc << -shift))
    assert got == floor(Fraction(exact * m0, 1 << 31) + Fraction(1, 2))


@settings(max_examples=300, deadline=None)
@given(int32s, st.integers(1 << 30, (1 << 31) - 1), st.integers(-31, 31))
def test_single_rounding_matches_rationals(acc, m0, shift):
    exact = Fraction(acc * m0, 1 << 31) / Fraction(2) ** shift
    want = max(INT32_MIN, min(INT32_MAX, floor(exact + Fraction(1, 2))))  # one rounding, half up
    assert multiply_by_quantized_multiplier_single(torch.tensor([acc]), m0, shift).item() == want


def test_single_rounding_ties_and_per_channel():
    # M = 2^-31 · 2^30 · 2^-2 = 1/8: ±4/8 and ±12/8 are ties, rounded up (toward +inf)
    acc = torch.tensor([[4, -4, 12, -12, 3, -3, 5, -5, 0]])
    assert multiply_by_quantized_multiplier_single(acc, 1 << 30, 2).tolist() == [[1, 0, 2, -1, 0, 0, 1, -1, 0]]
    # per-channel multipliers broadcast along dim 1, shift 0 and a left shift included
    acc = torch.tensor([[1000, 1000, 1000]])
    m0 = torch.tensor([1 << 30, 1 << 30, 1 << 30])
    got = multiply_by_quantized_multiplier_single(acc, m0.reshape(1, -1), torch.tensor([[3, 0, -2]]))
    assert got.tolist() == [[63, 500, 2000]]  # 62.5 → 63, 500, 2000


def test_single_and_double_rounding_differ_where_the_first_rounding_crosses_a_half():
    # acc·M just below 0.5 at the final scale: one rounding gives 0, the high multiply rounds up to
    # exactly 1/2 and the shift then rounds that tie away from zero
    m0, shift, acc = (1 << 31) - 1, 1, 1
    assert Fraction(acc * m0, 1 << 32) == Fraction(1, 2) - Fraction(1, 1 << 32)
    assert rescale(torch.tensor([acc]), m0, shift).item() == 0
    assert rescale(torch.tensor([acc]), m0, shift, "double").item() == 1
    with pytest.raises(KarukuError, match="unknown requantization rounding 'triple'"):
        rescale(torch.tensor([acc]), m0, shift, "triple")


def test_requantize_clamps_and_zero_point():
    m0, shift = quantize_multiplier(0.5)
    for rounding in ("single", "double"):
        out = requantize(torch.tensor([-1000, -3, 0, 3, 1000]), m0, shift, 10, 10, 255, rounding)
        assert out.tolist() == [10, 10, 10, 12, 255]  # 3·0.5 = 1.5 → 2 (half away from zero)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1e-12) == (0, 0)
    with pytest.raises(KarukuError, match="multiplier"):
        quantize_multiplier(float("nan"))


def test_observers_ranges():
    torch.manual_seed(0)
    x = torch.randn(20000)
    x[0] = 40.0  # one outlier
    ranges = {}
    for name in obs.OBSERVERS:
        o = obs.get_observer(name)
        for chunk in x.split(5000):
            o.update(chunk)
        ranges[name] = o.range(8, True)
    assert ranges["minmax"] == (float(x.min()), 40.0)
    assert ranges["percentile"][1] < 10  # the outlier is clipped
    assert ranges["mse"][1] < 40.0
    relu = obs.get_observer("kl")
    relu.update(torch.relu(torch.randn(50000)))
    lo, hi = relu.range(8, False)
    assert lo == 0.0 and 1.0 < hi <= float(torch.relu(torch.randn(1)).max()) + 10
    ma = obs.get_observer("moving_average", momentum=0.5)
    ma.update(torch.tensor([0.0, 2.0]))
    ma.update(torch.tensor([0.0, 4.0]))
    assert ma.range() == (0.0, 3.0)


def test_histogram_rebins_when_range_grows():
    o = obs.get_observer("mse")
    o.update(torch.linspace(0, 1, 1000))
    o.update(torch.linspace(0, 4, 1000))
    assert float(o.hist_.sum()) == 2000.0 and o.range(8, False)[1] <= 4.0


def test_observer_errors():
    with pytest.raises(KarukuError, match="unknown observer 'mse2'; did you mean 'mse'"):
        obs.get_observer("mse2")
    with pytest.raises(KarukuError, match="saw no data"):
        obs.get_observer("minmax").range()


def test_weight_range_mse_clips_at_low_bits():
    torch.manual_seed(0)
    w = torch.randn(8, 64)
    w[:, 0] = 10.0
    full = obs.weight_range(w, 4, "minmax")
    mse = obs.weight_range(w, 4, "mse")
    assert torch.equal(full, torch.full((8,), 10.0)) and (mse <= full).all() and (mse < full).any()

    def err(amax):
        s = (amax / 7)[:, None]
        return float(((torch.clamp(torch.round(w / s), -7, 7) * s - w) ** 2).sum())

    assert err(mse) < err(full)
