"""Pure quantization functions: affine quantize / dequantize and fixed-point requantization.

Affine scheme of Jacob et al. (2018): a real value r is represented by an integer q with
r = scale · (q − zero_point). Integer ranges come from `qrange(bits, signed, narrow)`.
Requantization multiplies an int32 accumulator by a real M written as M = M0 · 2^−31 · 2^−shift
with M0 an int32 in [2^30, 2^31). Two rounding rules are provided. "double" is Jacob et al.'s
(gemmlowp / TFLite's reference): a saturating rounding doubling high multiply, then a rounding (half
away from zero) arithmetic right shift. "single" rounds the 64-bit product acc·M0 once, half up
(TFLite's TFLITE_SINGLE_ROUNDING and CMSIS-NN's single-rounding build compute exactly this). The
engine uses "single" by default: the fake-quant model rounds once, and the second rounding of
"double" flips about one value in 3,000 by one step, which compounds through deep nets.
docs/QUANTIZATION.md specifies every rounding; tests check these functions bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from karuku.errors import KarukuError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def check_bits(bits: int) -> int:
    """Bits must be 2..8; anything else is a one-line error."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise KarukuError(f"bits must be an integer from 2 to 8, got {bits!r}", "use --bits 8 (or 6, 4)")
    return bits


def qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """(qmin, qmax) of a `bits`-wide integer; narrow drops the most negative value (−127..127)."""
    check_bits(bits)
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return int(narrow), (1 << bits) - 1


def round_half_even(x: torch.Tensor) -> torch.Tensor:
    """torch.round: ties to even (what ONNX QuantizeLinear does too)."""
    return torch.round(x)


def choose_qparams(lo: torch.Tensor | float, hi: torch.Tensor | float, bits: int = 8, signed: bool = False,
                   symmetric: bool = False, narrow: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero_point) covering [lo, hi] (widened to contain 0, so 0 is exact).

    Symmetric: zero_point is 0 (signed) or the mid-point 2^(bits−1) (unsigned), and the scale is
    max(|lo|, |hi|) / qmax_side. Works per tensor (scalars) or per channel (1-D tensors).
    """
    qmin, qmax = qrange(bits, signed, narrow)
    lo = torch.minimum(torch.as_tensor(lo, dtype=torch.float64), torch.zeros(()))
    hi = torch.maximum(torch.as_tensor(hi, dtype=torch.float64), torch.zeros(()))
    tiny = torch.finfo(torch.float32).tiny
    if symmetric:
        amax = torch.maximum(-lo, hi)
        half = (qmax - qmin) / 2 if signed else (qmax - qmin) // 2
        scale = torch.clamp(amax / half, min=tiny)
        zp = torch.zeros_like(scale) if signed else torch.full_like(scale, (qmax + qmin + 1) // 2)
    else:
        scale = torch.clamp((hi - lo) / (qmax - qmin), min=tiny)
        zp = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax)
    return scale.float(), zp.to(torch.int32)


def _broadcast(p: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    p = torch.as_tensor(p)
    if axis is None or p.dim() == 0:
        return p
    shape = [1] * x.dim()
    shape[axis] = -1
    return p.reshape(shape)


def quantize(x: torch.Tensor, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> torch.Tensor:
    """q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax), as int32 (per channel on `axis`)."""
    s = _broadcast(scale, x, axis).to(torch.float32)
    z = _broadcast(zero_point, x, axis).to(torch.int32)
    q = round_half_even(x.to(torch.float32) / s).to(torch.int32) + z
    return torch.clamp(q, qmin, qmax)


def dequantize(q: torch.Tensor, scale, zero_point, axis: int | None = None) -> torch.Tensor:
    """r = scale · (q − zero_point), float32."""
    s = _broadcast(scale, q, axis).to(torch.float32)
    z = _broadcast(zero_point, q, axis).to(torch.int32)
    return (q.to(torch.int32) - z).to(torch.float32) * s


def fake_quantize(x: torch.Tensor, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> torch.Tensor:
    """dequantize(quantize(x)) — what the integer model sees, in float."""
    return dequantize(quantize(x, scale, zero_point, qmin, qmax, axis), scale, zero_point, axis)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(M0, shift) with m ≈ M0 · 2^−31 · 2^−shift, M0 in [2^30, 2^31) (0, 0 for m = 0).

    shift is in −31..31; it is negative (a left shift) when m ≥ 1. M0 = frac · 2^31 rounded half away from
    zero, as TFLite's QuantizeMultiplier does, so that an interpreter deriving multipliers from a .tflite's
    scales arrives at the same integers (frac · 2^31 is exact in a double; + ½ too).
    """
    if not math.isfinite(m) or m < 0:
        raise KarukuError(f"requantization multiplier must be finite and ≥ 0, got {m}",
                          "a scale is zero or not finite; recalibrate")
    if m == 0:
        return 0, 0
    frac, exp = math.frexp(m)  # m = frac · 2^exp, frac in [0.5, 1)
    m0 = math.floor(frac * (1 << 31) + 0.5)
    if m0 == 1 << 31:  # frac rounded up to 1.0
        m0 //= 2
        exp += 1
    shift = -exp
    if shift > 31:  # |acc · m| < 2^31 · 2^−32 < 1/2: every int32 accumulator rounds to zero
        return 0, 0
    if shift < -31:
        raise KarukuError(f"requantization multiplier {m:.3g} is too large", "a scale is degenerate; recalibrate")
    return m0, shift


def mean_multiplier(m: float, n: int) -> tuple[int, int]:
    """(M0, shift) of m / n the way TFLite's quantized MEAN derives it (reference_ops::QuantizedMeanOrSum).

    m (= s_x / s_y) is quantized first; then, with p = floor(log2 n) (at most 32, and at most 31 + TFLite's
    exponent −shift), M0' = floor(M0 · 2^p / n) and shift' = shift + p. M0' lies in (2^29, 2^31): one bit less
    precise than `quantize_multiplier(m / n)`, and the integers TFLite Micro and LiteRT compute a mean with.
    """
    if n < 1:
        raise KarukuError(f"a mean over {n} elements", "the pooling window is empty")
    m0, shift = quantize_multiplier(m)
    if m0 == 0:
        return 0, 0
    p = min(n.bit_length() - 1, 32, 31 - shift)
    return (m0 << p) // n, shift + p


def pool_multiplier(s_x: float, s_y: float, n: int) -> tuple[int, int]:
    """(M0, shift) of an average over windows of `n` values: quantize_multiplier(s_x · w / s_y), w = float32(1 / n),
    in double precision as TFLite derives a convolution's multiplier from its scales (float32 each). A depthwise
    convolution with weights 1 of scale w then computes the engine's integers in a .tflite."""
    if n < 1:
        raise KarukuError(f"a mean over {n} elements", "the pooling window is empty")
    w = float(np.float32(1.0 / n))
    return quantize_multiplier(float(np.float32(s_x)) * w / float(np.float32(s_y)))


def srdhm(a: torch.Tensor, b: torch.Tensor | int) -> torch.Tensor:
    """Saturating rounding doubling high multiply of int32 values: floor((a·b + 2^30) / 2^31).

    gemmlowp's SaturatingRoundingDoublingHighMul: the only overflow, a = b = −2^31, gives 2^31 − 1.
    """
    a64 = a.to(torch.int64)
    b64 = torch.as_tensor(b, dtype=torch.int64)
    ab = a64 * b64
    nudge = torch.where(ab >= 0, torch.tensor(1 << 30), torch.tensor(1 - (1 << 30)))
    num = ab + nudge
    # C's int64 division truncates toward zero; torch's `//` floors, so divide magnitudes
    q = torch.where(num >= 0, num // (1 << 31), -((-num) // (1 << 31)))
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return torch.where(overflow, torch.tensor(INT32_MAX), q).to(torch.int32)


def rounding_shift_right(x: torch.Tensor, exponent: torch.Tensor | int) -> torch.Tensor:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded half away from zero (exponent 0..31)."""
    x64 = x.to(torch.int64)
    e = torch.as_tensor(exponent, dtype=torch.int64)
    mask = (torch.ones_like(e) << e) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0).to(torch.int64)
    return ((x64 >> e) + (remainder > threshold).to(torch.int64)).to(torch.int32)


def multiply_by_quantized_multiplier(acc: torch.Tensor, m0, shift) -> torch.Tensor:
    """acc · M0 · 2^−31 · 2^−shift in int32, as TFLite's MultiplyByQuantizedMultiplier.

    A negative shift is a left shift of the accumulator first (int64, saturated to int32); a positive
    one is a rounding right shift after the high multiply. `m0` and `shift` broadcast (per channel).
    """
    shift = torch.as_tensor(shift, dtype=torch.int64)
    left = torch.clamp(-shift, min=0)
    right = torch.clamp(shift, min=0)
    x = torch.clamp(acc.to(torch.int64) << left, INT32_MIN, INT32_MAX)
    return rounding_shift_right(srdhm(x, m0), right)


def multiply_by_quantized_multiplier_single(acc: torch.Tensor, m0, shift) -> torch.Tensor:
    """acc · M0 · 2^−(31+shift) rounded once, half up, saturated to int32.

    With k = 31 + shift (0..62) and p = acc·M0 in int64 (|p| < 2^62, so p + 2^(k−1) cannot
    overflow): floor((p + 2^(k−1)) / 2^k), an arithmetic shift; k = 0 is no rounding at all. Ties
    go up rather than away from zero because that costs nothing: on a Cortex-M4 the whole rule is
    one SMLAL and one shift (half away from zero needs three more instructions per output).
    """
    p = acc.to(torch.int64) * torch.as_tensor(m0, dtype=torch.int64)
    k = torch.as_tensor(shift, dtype=torch.int64) + 31
    nudge = torch.where(k > 0, torch.ones_like(k) << (k - 1).clamp(min=0), torch.zeros_like(k))
    return torch.clamp((p + nudge) >> k, INT32_MIN, INT32_MAX).to(torch.int32)


ROUNDINGS = ("single", "double")


def check_rounding(rounding: str) -> str:
    """`rounding` itself when it is a known requantization rule, else an error naming them."""
    if rounding not in ROUNDINGS:
        raise KarukuError(f"unknown requantization rounding {rounding!r}", f"use one of: {', '.join(ROUNDINGS)}")
    return rounding


def rescale(acc: torch.Tensor, m0, shift, rounding: str = "single") -> torch.Tensor:
    """acc · M in int32 by the named rounding rule ("single" or "double", see the module docstring)."""
    if check_rounding(rounding) == "double":
        return multiply_by_quantized_multiplier(acc, m0, shift)
    return multiply_by_quantized_multiplier_single(acc, m0, shift)


def requantize(acc: torch.Tensor, m0, shift, zero_point: int, lo: int, hi: int,
               rounding: str = "single") -> torch.Tensor:
    """Output integers: clamp(zero_point + acc·M, lo, hi) (lo/hi also implement ReLU / ReLU6)."""
    y = rescale(acc, m0, shift, rounding).to(torch.int64) + zero_point
    return torch.clamp(y, lo, hi).to(torch.int32)
