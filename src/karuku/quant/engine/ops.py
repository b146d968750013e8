"""The integer operators: int32 tensors in, int32 tensors (holding int8 / uint8 values) out.

Each function is the executable form of one op of docs/QUANTIZATION.md ("The integer engine"):
accumulators are int32, requantization is `requantize` (fixed point, by the model's rounding rule),
and no float is used.
Layout is NCHW; a conv's padding contributes the input zero point, i.e. nothing to the sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from karuku.quant.primitives import requantize, rescale


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(1, -1, *[1] * (ndim - 2))


def conv2d(x: torch.Tensor, zx: int, weight: torch.Tensor, bias: torch.Tensor, m0: torch.Tensor,
           shift: torch.Tensor, zy: int, lo: int, hi: int, stride: list[int], padding: list[int],
           groups: int, fast: bool = False, rounding: str = "single") -> torch.Tensor:
    """acc = bias + Σ (x − zx)·w over each window (zero padding of x − zx); y = requantize(acc).

    `fast`: the same integer sums through float64 BLAS. Exact, not approximate: every product and
    partial sum is an integer below 2^31 < 2^53, which float64 holds exactly in any summation order.
    """
    if fast:
        xs = (x.to(torch.int32) - zx).to(torch.float64)
        acc = F.conv2d(xs, weight.to(torch.float64), None, stride, padding, 1, groups).to(torch.int32)
        acc = acc + _per_channel(bias.to(torch.int32), 4)
        return requantize(acc, _per_channel(m0, 4), _per_channel(shift, 4), zy, lo, hi, rounding)
    n, c, _, _ = x.shape
    cout, cg, kh, kw = weight.shape
    xs = F.pad(x.to(torch.int32) - zx, (padding[1], padding[1], padding[0], padding[0]))
    cols = xs.unfold(2, kh, stride[0]).unfold(3, kw, stride[1])  # N, C, OH, OW, kh, kw
    oh, ow = cols.shape[2], cols.shape[3]
    g = groups
    cols = cols.reshape(n, g, cg, oh, ow, kh, kw).permute(0, 1, 3, 4, 2, 5, 6).reshape(n, g, oh * ow, cg * kh * kw)
    w = weight.to(torch.int32).reshape(g, cout // g, cg * kh * kw)
    if cg == 1 and cout == g:  # depthwise: one window per channel, an elementwise product-sum
        acc = (cols * w.reshape(1, g, 1, kh * kw)).sum(-1, dtype=torch.int32).reshape(n, cout, oh, ow)
    else:
        acc = (cols @ w.transpose(1, 2))  # N, G, P, Cout/G
        acc = acc.permute(0, 1, 3, 2).reshape(n, cout, oh, ow)
    acc = acc + _per_channel(bias.to(torch.int32), 4)
    return requantize(acc, _per_channel(m0, 4), _per_channel(shift, 4), zy, lo, hi, rounding)


def linear(x: torch.Tensor, zx: int, weight: torch.Tensor, bias: torch.Tensor, m0: torch.Tensor,
           shift: torch.Tensor, zy: int, lo: int, hi: int, fast: bool = False,
           rounding: str = "single") -> torch.Tensor:
    """acc = bias + (x − zx)·wᵀ; y = requantize(acc) per output feature (`fast`: as in conv2d)."""
    if fast:
        acc = ((x.to(torch.int32) - zx).to(torch.float64) @ weight.to(torch.float64).t()).to(torch.int32)
    else:
        acc = (x.to(torch.int32) - zx) @ weight.to(torch.int32).t()
    acc = acc + bias.to(torch.int32)
    return requantize(acc, m0.reshape(1, -1), shift.reshape(1, -1), zy, lo, hi, rounding)


def maxpool2d(x: torch.Tensor, kernel: list[int], stride: list[int], padding: list[int], qmin: int) -> torch.Tensor:
    """Window maximum of the integers; padding holds the type's minimum, so it never wins."""
    xs = F.pad(x.to(torch.int32), (padding[1], padding[1], padding[0], padding[0]), value=qmin)
    cols = xs.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    return cols.amax((-1, -2))


def avgpool2d(x: torch.Tensor, zx: int, kernel: list[int], stride: list[int], m0: int, shift: int, zy: int,
              lo: int, hi: int, rounding: str = "single") -> torch.Tensor:
    """acc = Σ (x − zx) over the window; y = requantize(acc) with M = s_x / (s_y · window size)."""
    xs = x.to(torch.int32) - zx
    cols = xs.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    acc = cols.sum((-1, -2), dtype=torch.int32)
    return requantize(acc, m0, shift, zy, lo, hi, rounding)


def add(a: torch.Tensor, za: int, b: torch.Tensor, zb: int, left_shift: int, a_m0: int, a_shift: int,
        b_m0: int, b_shift: int, m0: int, shift: int, zy: int, lo: int, hi: int,
        rounding: str = "single") -> torch.Tensor:
    """TFLite's quantized add: both inputs scaled by 2^left_shift, rescaled to a common scale, summed."""
    a1 = rescale((a.to(torch.int32) - za) << left_shift, a_m0, a_shift, rounding)
    b1 = rescale((b.to(torch.int32) - zb) << left_shift, b_m0, b_shift, rounding)
    return requantize(a1 + b1, m0, shift, zy, lo, hi, rounding)


def clamp(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """A standalone ReLU / ReLU6 on the integers."""
    return torch.clamp(x.to(torch.int32), lo, hi)


def flatten(x: torch.Tensor) -> torch.Tensor:
    """NCHW → N, C·H·W (C-major order; no arithmetic)."""
    return x.reshape(x.shape[0], -1)
