"""The integer operators: int32 tensors in, int32 tensors (holding int8 / uint8 values) out.

Each function is the executable form of one op of docs/QUANTIZATION.md ("The integer engine"):
accumulators are int32, requantization is `requantize` (fixed point, by the model's rounding rule) or a
256-entry table indexed by the input's byte, and no float is used.
Layout is NCHW; a conv's padding contributes the input zero point, i.e. nothing to the sum. Padding is
[ph, pw] (both sides) or [top, left, bottom, right].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from karuku.errors import KarukuError
from karuku.quant import ort_requant
from karuku.quant.primitives import quantize, requantize, rescale


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(1, -1, *[1] * (ndim - 2))


def pads4(padding: list[int]) -> list[int]:
    """[top, left, bottom, right] from [ph, pw] or four values."""
    return list(padding) * 2 if len(padding) == 2 else list(padding)


def _torch_pad(padding: list[int]) -> tuple[int, int, int, int]:
    top, left, bottom, right = pads4(padding)
    return left, right, top, bottom


def _requantize(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, zy: int, lo: int, hi: int,
                rounding: str, multiplier: torch.Tensor | None) -> torch.Tensor:
    """Per-channel requantization (channels on dimension 1): fixed point by `rounding`, or ONNX Runtime's
    float32 rule (karuku.quant.ort_requant) when a float32 `multiplier` is given."""
    if multiplier is not None:
        return ort_requant.requantize(acc, _per_channel(multiplier, acc.dim()), zy, lo, hi)
    return requantize(acc, _per_channel(m0, acc.dim()), _per_channel(shift, acc.dim()), zy, lo, hi, rounding)


def conv2d(x: torch.Tensor, zx: int, weight: torch.Tensor, bias: torch.Tensor, m0: torch.Tensor,
           shift: torch.Tensor, zy: int, lo: int, hi: int, stride: list[int], padding: list[int],
           groups: int, fast: bool = False, rounding: str = "single",
           multiplier: torch.Tensor | None = None) -> torch.Tensor:
    """acc = bias + Σ (x − zx)·w over each window (zero padding of x − zx); y = requantize(acc).

    `fast`: the same integer sums through float64 BLAS. Exact, not approximate: every product and
    partial sum is an integer below 2^31 < 2^53, which float64 holds exactly in any summation order.
    """
    if fast:
        xs = F.pad((x.to(torch.int32) - zx).to(torch.float64), _torch_pad(padding))
        acc = F.conv2d(xs, weight.to(torch.float64), None, stride, 0, 1, groups).to(torch.int32)
        acc = acc + _per_channel(bias.to(torch.int32), 4)
        return _requantize(acc, m0, shift, zy, lo, hi, rounding, multiplier)
    n, c, _, _ = x.shape
    cout, cg, kh, kw = weight.shape
    xs = F.pad(x.to(torch.int32) - zx, _torch_pad(padding))
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
    return _requantize(acc, m0, shift, zy, lo, hi, rounding, multiplier)


def linear(x: torch.Tensor, zx: int, weight: torch.Tensor, bias: torch.Tensor, m0: torch.Tensor,
           shift: torch.Tensor, zy: int, lo: int, hi: int, fast: bool = False,
           rounding: str = "single", multiplier: torch.Tensor | None = None) -> torch.Tensor:
    """acc = bias + (x − zx)·wᵀ; y = requantize(acc) per output feature (`fast`: as in conv2d)."""
    if fast:
        acc = ((x.to(torch.int32) - zx).to(torch.float64) @ weight.to(torch.float64).t()).to(torch.int32)
    else:
        acc = (x.to(torch.int32) - zx) @ weight.to(torch.int32).t()
    acc = acc + bias.to(torch.int32)
    if multiplier is not None:  # features on the last dimension
        return ort_requant.requantize(acc, multiplier, zy, lo, hi)
    return requantize(acc, m0.reshape(1, -1), shift.reshape(1, -1), zy, lo, hi, rounding)


def maxpool2d(x: torch.Tensor, kernel: list[int], stride: list[int], padding: list[int], qmin: int) -> torch.Tensor:
    """Window maximum of the integers; padding holds the type's minimum, so it never wins."""
    xs = F.pad(x.to(torch.int32), (padding[1], padding[1], padding[0], padding[0]), value=qmin)
    cols = xs.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    return cols.amax((-1, -2))


def avgpool2d(x: torch.Tensor, zx: int, kernel: list[int], stride: list[int], m0: int, shift: int, zy: int,
              lo: int, hi: int, rounding: str = "single", padding: list[int] = (0, 0)) -> torch.Tensor:
    """acc = Σ (x − zx) over the window (padding adds 0: it counts, as PyTorch's count_include_pad);
    y = requantize(acc) with M = s_x / (s_y · window size)."""
    xs = F.pad(x.to(torch.int32) - zx, _torch_pad(padding))
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


def lut(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """y = table[byte of x]: 256 entries indexed by the stored byte (an int8 value v by v & 0xFF)."""
    return table.to(torch.int32)[(x.to(torch.int32) & 0xFF).long()]


def concat(xs: list[torch.Tensor], tables: list[torch.Tensor | None], axis: int) -> torch.Tensor:
    """Inputs on the output's scale copied, the others through their requantization table, joined on `axis`."""
    return torch.cat([x.to(torch.int32) if t is None else lut(x, t) for x, t in zip(xs, tables)], axis)


def reshape(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """The same integers in C order, viewed as N × `shape`."""
    return x.reshape(x.shape[0], *shape)


def transpose(x: torch.Tensor, perm: list[int]) -> torch.Tensor:
    """Dimensions of each sample permuted (`perm` over the dimensions after the batch)."""
    return x.permute(0, *[p + 1 for p in perm]).contiguous()


def upsample(x: torch.Tensor, scale: list[int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of NCHW by whole factors: y[c, i, j] = x[c, i // sh, j // sw]."""
    return x.repeat_interleave(scale[0], 2).repeat_interleave(scale[1], 3)


def pad(x: torch.Tensor, pads: list[int], value: int) -> torch.Tensor:
    """NCHW padded [top, left, bottom, right] with the integer `value` (the zero point: real 0)."""
    return F.pad(x.to(torch.int32), _torch_pad(pads), value=value)


def gather(ids: torch.Tensor, rows: torch.Tensor, name: str = "gather") -> torch.Tensor:
    """An embedding lookup: y[..., :] = rows[ids[...]] (the rows already on the output's grid); a token id
    outside the table is an error, as it is in the float model."""
    ids = ids.to(torch.int64)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(rows)):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise KarukuError(f"'{name}': token id {bad} is outside its table of {len(rows)} rows",
                          "give ids the model's vocabulary holds (0 .. rows - 1)")
    return rows.to(torch.int32)[ids]


def gather_mean(ids: torch.Tensor, rows: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, pad: int, zy: int,
                lo: int, hi: int, rounding: str = "single", weight_scale: torch.Tensor | None = None,
                sy: float = 1.0, name: str = "bag", total: bool = False) -> torch.Tensor:
    """A bag of token embeddings [N, L] -> [N, D] (karuku.quant.bag): acc = the sum of the int8 rows of the ids
    that are not `pad` (-1: none is), y = requantize(acc) by the multiplier of their count n; n = 0 gives zy.
    `weight_scale`: ONNX Runtime's float32 rule instead (the file's Cast, Mul by s_w, Div by n unless `total`
    — a bag's sum —, QuantizeLinear)."""
    kept = ids != pad
    acc = (gather(ids, rows, name) * kept.unsqueeze(-1)).sum(1, dtype=torch.int32)
    n = kept.sum(1).to(torch.int64)
    if weight_scale is not None:
        f32 = torch.float32
        v = acc.to(f32) * weight_scale.to(f32)
        v = v if total else v / n.clamp(min=1).to(f32).unsqueeze(1)
        return quantize(v, sy, zy, lo, hi)  # QuantizeLinear: the engine's own input step
    y = requantize(acc, m0[n].unsqueeze(1), shift[n].unsqueeze(1), zy, lo, hi, rounding)
    return torch.where(n.unsqueeze(1) > 0, y, torch.clamp(torch.tensor(zy, dtype=torch.int32), lo, hi))
