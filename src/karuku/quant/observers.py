"""Observers: watch activations during calibration and choose a clipping range [lo, hi].

Each observer has `update(x)` (one batch) and `range(bits, signed) -> (lo, hi)`; `OBSERVERS` is the
registry and `get_observer(name)` builds one by name. Histogram observers keep 2048 bins whose range
grows (re-binned) as batches arrive, so memory stays constant over any number of batches.
`weight_range` chooses per-channel weight ranges (min/max or MSE-optimal clipping).
"""

from __future__ import annotations

import torch

from karuku.errors import KarukuError
from karuku.quant.primitives import choose_qparams, fake_quantize, qrange
from karuku.registry import Registry

BINS = 2048
OBSERVERS: Registry[type[Observer]] = Registry("observer")


def register_observer(name: str):
    """Register an `Observer` subclass: `QuantConfig(observer=name)` (CLI `--observer`, recipes) then uses it."""
    return OBSERVERS.register(name)


class Observer:
    """Base: the running min and max of everything seen. Subclass it and override `update` / `range`."""

    def __init__(self) -> None:
        self.lo_: float | None = None
        self.hi_: float | None = None

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float()
        if x.numel() == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        self.lo_ = lo if self.lo_ is None else min(self.lo_, lo)
        self.hi_ = hi if self.hi_ is None else max(self.hi_, hi)

    def _checked(self) -> tuple[float, float]:
        if self.lo_ is None or self.hi_ is None:
            raise KarukuError("an observer saw no data", "give at least one calibration batch")
        return self.lo_, self.hi_

    def range(self, bits: int = 8, signed: bool = False) -> tuple[float, float]:
        """The clipping range to quantize with."""
        return self._checked()


@register_observer("minmax")
class MinMax(Observer):
    """The full range seen (never clips)."""


@register_observer("moving_average")
class MovingAverage(Observer):
    """Exponential moving average of each batch's min and max (Jacob et al.), momentum `momentum`."""

    def __init__(self, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float()
        if x.numel() == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        if self.lo_ is None:
            self.lo_, self.hi_ = lo, hi
        else:
            self.lo_ += self.momentum * (lo - self.lo_)
            self.hi_ += self.momentum * (hi - self.hi_)


class Histogram(Observer):
    """Min/max plus a histogram of the values; subclasses choose the range from it."""

    def __init__(self) -> None:
        super().__init__()
        self.hist_: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float().reshape(-1)
        if x.numel() == 0:
            return
        old = (self.lo_, self.hi_)
        super().update(x)
        lo, hi = self.lo_, max(self.hi_, self.lo_ + 1e-12)
        if self.hist_ is not None and old != (self.lo_, self.hi_):
            # re-bin: each old bin's count moves to the new bin holding its centre
            olo, ohi = old
            centres = olo + (torch.arange(BINS, dtype=torch.float64) + 0.5) * (max(ohi, olo + 1e-12) - olo) / BINS
            idx = ((centres - lo) / (hi - lo) * BINS).long().clamp(0, BINS - 1)
            self.hist_ = torch.zeros(BINS, dtype=torch.float64).index_add_(0, idx, self.hist_)
        h = torch.histc(x.double(), BINS, lo, hi)
        self.hist_ = h if self.hist_ is None else self.hist_ + h

    def _centres(self) -> torch.Tensor:
        lo, hi = self._checked()
        return lo + (torch.arange(BINS, dtype=torch.float64) + 0.5) * (max(hi, lo + 1e-12) - lo) / BINS

    def _error(self, lo: float, hi: float, bits: int, signed: bool) -> float:
        """Expected squared quantization error of the histogram under range [lo, hi]."""
        c = self._centres()
        scale, zp = choose_qparams(lo, hi, bits, signed)
        qmin, qmax = qrange(bits, signed)
        err = (fake_quantize(c.float(), scale, zp, qmin, qmax).double() - c) ** 2
        return float((err * self.hist_).sum())


@register_observer("percentile")
class Percentile(Histogram):
    """Clip to the `percentile`-th percentile at the top (and 100 − it at the bottom)."""

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        if not 50 < percentile <= 100:
            raise KarukuError(f"percentile must be in (50, 100], got {percentile}", "use e.g. 99.99")
        self.percentile = percentile

    def range(self, bits: int = 8, signed: bool = False) -> tuple[float, float]:
        lo, hi = self._checked()
        cdf = torch.cumsum(self.hist_, 0) / self.hist_.sum()
        c = self._centres()
        q = self.percentile / 100
        top = float(c[int(torch.searchsorted(cdf, torch.tensor(q, dtype=torch.float64)).clamp(max=BINS - 1))])
        bottom = float(c[int(torch.searchsorted(cdf, torch.tensor(1 - q, dtype=torch.float64)).clamp(max=BINS - 1))])
        low = lo if lo >= 0 else min(bottom, 0.0)  # a one-sided (e.g. post-ReLU) tensor keeps its exact 0
        high = max(min(top, hi), 0.0) if hi > 0 else hi
        return low, high


@register_observer("mse")
class MSE(Histogram):
    """The range, shrunk by a common factor, that minimises the expected squared error."""

    def range(self, bits: int = 8, signed: bool = False) -> tuple[float, float]:
        lo, hi = self._checked()
        best, best_err = (lo, hi), float("inf")
        for k in range(100, 19, -2):
            cand = (lo * k / 100, hi * k / 100)
            err = self._error(*cand, bits, signed)
            if err < best_err:
                best, best_err = cand, err
        return best


@register_observer("kl")
class KL(Histogram):
    """TensorRT's entropy calibration: the threshold minimising KL(P ‖ Q) of the clipped histogram."""

    def range(self, bits: int = 8, signed: bool = False) -> tuple[float, float]:
        lo, hi = self._checked()
        if lo < 0 < hi and -lo > 0.05 * hi:  # two-sided: fall back to MSE (entropy calibration is one-sided)
            return MSE.range(self, bits, signed)  # type: ignore[arg-type]
        p_full = self.hist_.clone()
        levels = qrange(bits, False)[1] + 1
        best_i, best_kl = BINS, float("inf")
        for i in range(max(levels, BINS // 16), BINS + 1, 16):
            p = p_full[:i].clone()
            p[-1] += p_full[i:].sum()
            # Q: p merged into `levels` groups, each spread back over its nonzero bins
            groups = torch.arange(i) * levels // i
            sums = torch.zeros(levels, dtype=torch.float64).index_add_(0, groups, p_full[:i])
            nonzero = torch.zeros(levels, dtype=torch.float64).index_add_(0, groups, (p_full[:i] > 0).double())
            q = torch.where(p_full[:i] > 0, sums[groups] / nonzero[groups].clamp(min=1), torch.zeros(()))
            ps, qs = p / p.sum(), q / q.sum().clamp(min=1e-30)
            mask = ps > 0
            kl = float((ps[mask] * torch.log(ps[mask] / qs[mask].clamp(min=1e-12))).sum())
            if kl < best_kl:
                best_i, best_kl = i, kl
        width = (hi - lo) / BINS
        return lo, lo + best_i * width


def get_observer(name: str, **kwargs) -> Observer:
    """A new observer by registry name (`minmax`, `moving_average`, `percentile`, `mse`, `kl`, and yours)."""
    return OBSERVERS.find(name)(**kwargs)


def weight_range(w: torch.Tensor, bits: int, method: str = "minmax", axis: int = 0) -> torch.Tensor:
    """Per-channel symmetric clipping magnitude |w| ≤ amax[c] for signed narrow-range weights.

    `mse`: per channel, the fraction of max|w| (from 1.0 down to 0.5) that minimises the squared error.
    """
    flat = w.detach().float().transpose(0, axis).reshape(w.shape[axis], -1)
    amax = flat.abs().amax(1).clamp(min=1e-12)
    if method == "minmax" or bits >= 8 and method != "mse":
        return amax
    qmin, qmax = qrange(bits, True, narrow=True)
    best, best_err = amax.clone(), torch.full_like(amax, float("inf"))
    for k in range(100, 49, -1):
        a = amax * k / 100
        s = (a / qmax)[:, None]
        err = ((torch.clamp(torch.round(flat / s), qmin, qmax) * s - flat) ** 2).sum(1)
        better = err < best_err
        best, best_err = torch.where(better, a, best), torch.where(better, err, best_err)
    return best
