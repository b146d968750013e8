"""Fake-quantization modules: float tensors rounded to what the integer model will hold.

Gradients pass with the straight-through estimator (the rounding counts as the identity inside the
range, zero outside it). `ActQuant` keeps one activation's range as buffers: set by a calibration
observer, or tracked as a moving average during QAT, quantizing only once `enabled`. `QLayer` is a
conv / linear with per-channel symmetric weights and an int32-grid bias; during QAT it may carry its
BatchNorm and fold it on the fly (running-variance scaling, as in Jacob et al. §3.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from karuku.quant.observers import Observer, weight_range
from karuku.quant.primitives import choose_qparams, qrange

BIAS_LIMIT = float(1 << 30)  # the largest int32 bias a layer gets (see QLayer.weight_scale)


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def ste_fake_quant(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """fake_quantize with straight-through gradients (zero where x is clipped)."""
    q = torch.clamp(_ste_round(x / scale) + zp, qmin, qmax)
    return (q - zp) * scale


class ActQuant(nn.Module):
    """Fake quantization of one activation tensor with range buffers `lo`, `hi`."""

    def __init__(self, bits: int = 8, signed: bool = False, momentum: float = 0.01):
        super().__init__()
        self.bits, self.signed, self.momentum = bits, signed, momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("enabled", torch.tensor(False))
        self.register_buffer("seen", torch.tensor(False))
        self.observer: Observer | None = None  # set during calibration only
        self.track = False  # QAT: moving-average ranges while training
        self.dynamic = False  # dynamic quantization: the range of each batch, at run time

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero_point) of the current range."""
        return choose_qparams(self.lo, self.hi, self.bits, self.signed)

    @property
    def qlimits(self) -> tuple[int, int]:
        return qrange(self.bits, self.signed)

    def set_range(self, lo: float, hi: float) -> None:
        self.lo.fill_(min(lo, 0.0))
        self.hi.fill_(max(hi, 0.0))
        self.seen.fill_(True)
        self.enabled.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer is not None:
            self.observer.update(x)
            return x
        if self.training and self.track:
            with torch.no_grad():
                lo, hi = x.detach().min().clamp(max=0), x.detach().max().clamp(min=0)
                if not bool(self.seen):
                    self.lo.copy_(lo)
                    self.hi.copy_(hi)
                    self.seen.fill_(True)
                else:
                    self.lo.add_(self.momentum * (lo - self.lo))
                    self.hi.add_(self.momentum * (hi - self.hi))
        if self.dynamic:
            scale, zp = choose_qparams(x.detach().min(), x.detach().max(), self.bits, self.signed)
            return ste_fake_quant(x, scale, zp.float(), *self.qlimits)
        if not bool(self.enabled):
            return x
        scale, zp = self.qparams()
        return ste_fake_quant(x, scale, zp.float(), *self.qlimits)


class QLayer(nn.Module):
    """A conv2d or linear whose weights (and int32 bias) are fake-quantized; `bits=None` stays float."""

    def __init__(self, module: nn.Module, op: str, attrs: dict, bits: int | None, per_channel: bool = True,
                 weight_method: str = "minmax", bn: nn.BatchNorm2d | None = None):
        super().__init__()
        self.op, self.attrs, self.bits = op, dict(attrs), bits
        self.per_channel, self.weight_method = per_channel, weight_method
        self.weight = nn.Parameter(module.weight.detach().clone())
        bias = module.bias.detach().clone() if module.bias is not None else torch.zeros(self.weight.shape[0])
        self.bias = nn.Parameter(bias)
        self.bn = bn  # QAT only: folded on the fly, removed by `fold_bn_`
        self.bn_frozen = False  # QAT: late in training, BN uses its running statistics
        self.in_mean: torch.Tensor | None = None  # calibration: per-input-channel mean (bias correction)

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Weight and bias with BN folded by running statistics, and the per-channel factor (None: no BN)."""
        if self.bn is None:
            return self.weight, self.bias, None
        std = torch.sqrt(self.bn.running_var + self.bn.eps)
        factor = self.bn.weight / std
        w = self.weight * factor.reshape(-1, *[1] * (self.weight.dim() - 1))
        return w, (self.bias - self.bn.running_mean) * factor + self.bn.bias, factor

    def weight_scale(self, w: torch.Tensor | None = None, in_scale: torch.Tensor | float | None = None
                     ) -> torch.Tensor:
        """Per-output-channel scale of the symmetric narrow-range weights (one value repeated if per tensor).

        With the input's scale known, no channel's scale is so small that its int32 bias b / (s_w · s_in)
        exceeds ±2^30 (room left for the sum of products): BatchNorm folded into a channel it nearly
        switched off leaves tiny weights beside a large bias, and such a channel gets a coarser scale.
        """
        folded_w, folded_b, _ = self._folded()
        w = folded_w if w is None else w
        amax = weight_range(w, self.bits, self.weight_method)
        # a channel whose weights are all zero (pruned away) would get scale 0 and an int32 bias scale of 0;
        # any scale represents its zeros exactly, so borrow the largest channel's (or 1) to keep its bias finite
        zero = (w.detach().reshape(w.shape[0], -1) == 0).all(1)
        if bool(zero.any()):
            fallback = amax[~zero].max() if bool((~zero).any()) else torch.ones((), dtype=amax.dtype)
            amax = torch.where(zero, fallback, amax)
        if in_scale is not None:
            need = folded_b.detach().abs().float() * qrange(self.bits, True, narrow=True)[1] / (
                torch.as_tensor(in_scale, dtype=torch.float32) * BIAS_LIMIT)
            amax = torch.maximum(amax, need)
        if not self.per_channel:
            amax = amax.max().expand_as(amax)
        return amax / qrange(self.bits, True, narrow=True)[1]

    def quant_weight(self, w: torch.Tensor, in_scale: torch.Tensor | None = None) -> torch.Tensor:
        if self.bits is None:
            return w
        qmin, qmax = qrange(self.bits, True, narrow=True)
        s = self.weight_scale(w.detach(), in_scale).reshape(-1, *[1] * (w.dim() - 1))
        return torch.clamp(_ste_round(w / s), qmin, qmax) * s

    def quant_bias(self, b: torch.Tensor, w: torch.Tensor, in_scale: torch.Tensor | None) -> torch.Tensor:
        if self.bits is None or in_scale is None:
            return b
        s = self.weight_scale(w.detach(), in_scale) * in_scale
        return _ste_round(b / s) * s

    def _conv_or_linear(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.op == "conv":
            pad = self.attrs["padding"]
            if len(pad) == 4:  # [top, left, bottom, right]: asymmetric (TF "same"), zero-padded first
                x, pad = F.pad(x, (pad[1], pad[3], pad[0], pad[2])), [0, 0]
            return F.conv2d(x, w, b, self.attrs["stride"], pad, 1, self.attrs["groups"])
        return F.linear(x, w, b)

    def forward(self, x: torch.Tensor, in_scale: torch.Tensor | None = None) -> torch.Tensor:
        if self.in_mean is not None:  # calibration: remember E[x] per input channel (dim 1 of a conv's
            # input, the last of a linear's: inputs may have any number of leading dimensions)
            keep = 1 if self.op == "conv" else x.dim() - 1
            dims = [d for d in range(x.dim()) if d != keep]
            self.in_mean = self.in_mean + x.detach().mean(dims)
            self.in_count += 1
        w, b, factor = self._folded()
        if self.bn is not None and self.training and not self.bn_frozen:
            # Train with batch statistics: undo the running-std scaling after the quantized conv, then BN.
            y = self._conv_or_linear(x, self.quant_weight(w, in_scale), None) / factor.reshape(
                1, -1, *[1] * (x.dim() - 2))
            y = self.bn(y + self.bias.reshape(1, -1, *[1] * (x.dim() - 2)))
        else:
            y = self._conv_or_linear(x, self.quant_weight(w, in_scale), self.quant_bias(b, w, in_scale))
        return self.activation(y)

    def activation(self, y: torch.Tensor) -> torch.Tensor:
        """The activation fused into this layer (relu, relu6 or none) applied to its output `y`."""
        act = self.attrs.get("act")
        if act == "relu":
            return F.relu(y)
        if act == "relu6":
            return F.relu6(y)
        return y

    @torch.no_grad()
    def fold_bn_(self) -> None:
        """Fold the carried BatchNorm into weight and bias for good (after QAT)."""
        if self.bn is not None:
            w, b, _ = self._folded()
            self.weight.copy_(w)
            self.bias.copy_(b)
            self.bn = None
