"""ONNX Runtime's int8 requantization, as its x86 CPU kernels (MLAS) compute it: the engine's rule "onnxruntime".

ONNX Runtime does not requantize in fixed point. Its fused int8 kernels multiply the int32 accumulator by a
float32 multiplier and round half to even:

- QLinearConv, QGemm, QLinearMatMul (`MlasRequantizeOutput`, and the same steps fused into the VNNI / AMX conv
  kernels): m = float32(float32(s_x · s_w[c]) / s_y); y = round_half_even(float32(float32(acc) · m)) + z_y,
  clamped to the output type. float32(acc) itself rounds once |acc| > 2^24.
- QLinearGlobalAveragePool: acc = Σ x − z_x·n, m = float32(s_x / float32(s_y · n)), then as above.
- QLinearAveragePool works in float32 throughout: each input dequantized (s_x · (x − z_x)), the window summed
  in row order, divided by its size, then round_half_even(v / s_y + z_y).
- QLinearAdd (the AVX2 kernel, which AVX-512 machines run too): with r_a = float32(s_a / s_c),
  r_b = float32(s_b / s_c) and f = float32(z_c − fma(r_a, z_a, float32(r_b · z_b))) (the compiler fuses that
  multiply-add), c = fma(a, r_a, fma(b, r_b, f)) on the stored bytes, rounded half to even, saturated to uint8.

The engine's own rules ("single", "double") compute acc · M exactly and round once or twice, ties up. Both
are right to within one step, but they differ wherever float32 rounding lands on the other side of a half —
about 2 outputs in a million — and a deep network amplifies such a step: EfficientNet-Lite0's first depthwise
conv turns one step of its input into up to 18 steps of its output (BatchNorm folded into weights of 17 · s_y /
s_x). No choice of integers avoids it: exactness under float32 would need every multiplier to be a multiple of
2^−16 (the spacing of float32 at 256), and most are far smaller. So the int8 ONNX export is checked against
the engine computing ONNX Runtime's rule, which these functions state bit for bit (tests compare them with
ONNX Runtime itself). Activations are the stored bytes here: uint8, int8 values moved up by 128 as the
QDQ file stores them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

F32 = torch.float32


def _f32(v) -> torch.Tensor:
    return torch.as_tensor(v, dtype=F32)


def multiplier(s_x: float, s_w: torch.Tensor, s_y: float) -> torch.Tensor:
    """QLinearConv's / QGemm's per-channel float32 multiplier: float32(float32(s_x · s_w) / s_y)."""
    return (_f32(s_x) * s_w.to(F32)) / _f32(s_y)


def pool_multiplier(s_x: float, s_y: float, n: int) -> torch.Tensor:
    """QLinearGlobalAveragePool's multiplier over n elements: float32(s_x / float32(s_y · n))."""
    return _f32(s_x) / (_f32(s_y) * _f32(float(n)))


def requantize(acc: torch.Tensor, m: torch.Tensor, zero_point: int, lo: int, hi: int) -> torch.Tensor:
    """clamp(round_half_even(float32(float32(acc) · m)) + zero_point, lo, hi): MLAS's requantization.

    MLAS clamps the float to the output type before rounding; rounding is monotone and the bounds are
    integers, so clamping after it gives the same integers.
    """
    p = acc.to(torch.int32).to(F32) * m.to(F32)
    y = torch.round(p).clamp(-(1 << 24), 1 << 24).to(torch.int32) + zero_point
    return torch.clamp(y, lo, hi)


def fma32(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add x·y + z, rounded once.

    x·y of two float32 values is exact in float64; the sum is made exact by TwoSum's error term; the only
    case where rounding the float64 sum to float32 differs from rounding the exact value is a float64 sum
    exactly halfway between two float32 values with a nonzero error, which is nudged one float64 step
    toward the error first.
    """
    x64, y64, z64 = (torch.as_tensor(v, dtype=F32).to(torch.float64) for v in (x, y, z))
    p = x64 * y64
    s = p + z64
    bb = s - p
    err = (p - (s - bb)) + (z64 - bb)
    r = s.to(F32)
    other = torch.nextafter(r, torch.where(s > r.to(torch.float64), _f32(float("inf")), _f32(float("-inf"))))
    halfway = (r.to(torch.float64) + other.to(torch.float64)) / 2 == s
    nudge = halfway & (err != 0)
    if bool(nudge.any()):
        toward = torch.where(err > 0, torch.tensor(float("inf"), dtype=torch.float64),
                             torch.tensor(float("-inf"), dtype=torch.float64))
        s = torch.where(nudge, torch.nextafter(s, toward), s)
        r = s.to(F32)
    return r


def add(a: torch.Tensor, za: int, sa: float, b: torch.Tensor, zb: int, sb: float, zc: int, sc: float
        ) -> torch.Tensor:
    """QLinearAdd of stored uint8 bytes a, b (zero points za, zb) into bytes of zero point zc (uint8 range)."""
    ra, rb = _f32(sa) / _f32(sc), _f32(sb) / _f32(sc)
    fixed = _f32(float(zc)) - fma32(ra, _f32(float(za)), rb * _f32(float(zb)))
    c = fma32(a.to(F32), ra, fma32(b.to(F32), rb, fixed))
    # _mm256_cvtps_epi32 then saturating packs: |c| stays far below 2^31 for any real pair of scales
    return torch.round(c).clamp(0, 255).to(torch.int32)


def global_average_pool(x: torch.Tensor, zx: int, sx: float, sy: float, zy: int) -> torch.Tensor:
    """QLinearGlobalAveragePool of stored bytes x [N, C, H, W] → bytes [N, C, 1, 1] (uint8 range)."""
    n = x.shape[2] * x.shape[3]
    acc = x.to(torch.int32).sum((2, 3), keepdim=True, dtype=torch.int32) - zx * n
    return requantize(acc, pool_multiplier(sx, sy, n), zy, 0, 255)


def average_pool(x: torch.Tensor, zx: int, sx: float, kernel: list[int], stride: list[int], pads: list[int],
                 sy: float, zy: int) -> torch.Tensor:
    """QLinearAveragePool (count_include_pad) of stored bytes x [N, C, H, W]; `pads` [top, left, bottom, right].

    Positions in the padding are skipped by ONNX Runtime; adding 0.0 instead changes no float32 sum.
    """
    xf = _f32(sx) * (x.to(torch.int32) - zx).to(F32)
    top, left, bottom, right = pads
    cols = F.pad(xf, (left, right, top, bottom)).unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    acc = torch.zeros(cols.shape[:4], dtype=F32)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            acc = acc + cols[..., i, j]
    v = acc / _f32(float(kernel[0] * kernel[1]))
    return torch.round(v / _f32(sy) + _f32(float(zy))).clamp(0, 255).to(torch.int32)


def stored(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """Engine integers as the QDQ file stores them (uint8: int8 values move up by 128)."""
    return x.to(torch.int32) + (128 if dtype == "int8" else 0)
