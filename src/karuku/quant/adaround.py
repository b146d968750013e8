"""AdaRound: each weight rounded up or down as calibration data says, not to nearest (Nagel et al. 2020).

Fine-tuning-free PTQ: the float weights stay where they are; for the layers named in
`QuantConfig.adaround` only the choice floor(w/s) or floor(w/s) + 1 is learnt, layer by layer, so that the
layer's output on its *quantized* input (what the earlier layers really hand it) comes close to the float
model's output on the float input. A soft rounding h(V) = clip(σ(V)·1.2 − 0.1, 0, 1) is optimised with the
reconstruction error plus a regulariser that pushes h to 0 or 1 (β annealed 20 → 2), then hardened. The
layer's weights are then the grid values s·q themselves, so everything downstream (integer engine, ONNX, C,
checkpoints) rounds them to exactly those integers. Each channel's largest weight keeps its nearest rounding so
the channel's scale stays; a channel whose scale would still move (all its weights round to zero and it would
borrow another channel's scale) keeps its float weights, i.e. nearest rounding.
"""

from __future__ import annotations

import fnmatch

import torch

from karuku.errors import KarukuError, closest
from karuku.quant.form import float_view
from karuku.quant.fuse import WEIGHTED
from karuku.quant.model import QuantModel, key
from karuku.quant.primitives import qrange

ZETA, GAMMA = 1.1, -0.1


class _Stop(Exception):
    pass


def _inputs(qm: QuantModel, name: str, x: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The input layer `name` receives over `x` (run up to that layer only) and its input scale."""
    got: list[torch.Tensor] = []
    scale: list = [None]

    def hook(_, args):
        got.append(args[0].detach())
        scale[0] = args[1] if len(args) > 1 else None
        raise _Stop

    h = qm.layers[key(name)].register_forward_pre_hook(hook)
    try:
        for i in range(0, len(x), batch):
            try:
                qm(x[i:i + batch])
            except _Stop:
                pass
    finally:
        h.remove()
    return torch.cat(got), scale[0]


def selected(qm: QuantModel, patterns: list[str]) -> list[str]:
    """Quantized conv / linear node names matching any pattern, in model order; a pattern matching none fails."""
    names = [n.name for n in qm.nodes if n.op in WEIGHTED and qm.layers[key(n.name)].bits is not None]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise KarukuError(f"adaround: no quantized conv or linear layer matches '{p}'{closest(p, names)}",
                              f"name layers of the model (e.g. {', '.join(names[:3])})")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def adaround(qm: QuantModel, x: torch.Tensor, patterns: list[str], iters: int, batch: int = 8,
             seed: int = 0) -> dict[str, float]:
    """Learn the rounding of the layers matching `patterns` in order; returns name → fraction of weights
    rounded away from nearest."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    names = selected(qm, patterns)
    # bias correction's running input means must not see these extra passes
    means = {k: (layer.in_mean, getattr(layer, "in_count", 0)) for k, layer in qm.layers.items()}
    for layer in qm.layers.values():
        layer.in_mean = None
    try:
        for name in names:
            out[name] = _one(qm, name, x, iters, batch, g)
    finally:
        for k, layer in qm.layers.items():
            layer.in_mean, layer.in_count = means[k]
    return out


def _one(qm: QuantModel, name: str, x: torch.Tensor, iters: int, batch: int, g: torch.Generator) -> float:
    """One layer: its quantized inputs, the float model's outputs, the learnt rounding."""
    layer = qm.layers[key(name)]
    with torch.no_grad():
        xq, in_scale = _inputs(qm, name, x, batch * 4)
        xf, _ = _inputs(float_view(qm), name, x, batch * 4)
        target = torch.cat([layer.activation(layer._conv_or_linear(xf[i:i + 64], *layer._folded()[:2]))
                            for i in range(0, len(xf), 64)])
    return _learn(layer, xq, target, in_scale, iters, batch, g)


@torch.enable_grad()  # calibration runs under no_grad
def _learn(layer, xq: torch.Tensor, target: torch.Tensor, in_scale, iters: int, batch: int,
           g: torch.Generator) -> float:
    w, b, _ = layer._folded()
    w, b = w.detach(), b.detach()
    shape = (-1, *[1] * (w.dim() - 1))
    s = layer.weight_scale(w, in_scale).detach().reshape(shape)
    qmin, qmax = qrange(layer.bits, True, narrow=True)
    floor = torch.floor(w / s)
    rest = (w / s - floor).clamp(0.01, 0.99)
    v = torch.nn.Parameter(-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1))
    opt = torch.optim.Adam([v], lr=1e-2)
    bq = layer.quant_bias(b, w, in_scale).detach()
    warm = iters // 5
    for it in range(iters):
        idx = torch.randint(0, len(xq), (min(batch, len(xq)),), generator=g)
        h = (torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)
        wq = torch.clamp(floor + h, qmin, qmax) * s
        y = layer.activation(layer._conv_or_linear(xq[idx], wq, bq))
        loss = ((y - target[idx]) ** 2).sum() / len(idx)
        if it >= warm:
            beta = 20 + (2 - 20) * (it - warm) / max(1, iters - warm)
            loss = loss + 0.01 * (1 - (2 * h - 1).abs() ** beta).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        q = torch.clamp(floor + (v >= 0).to(w.dtype), qmin, qmax)
        nearest = torch.clamp(torch.round(w / s), qmin, qmax)
        # the channel's largest |q| sets its scale: keep it (rounded to nearest) so the scale stays the same
        flat_n, flat_q = nearest.reshape(len(q), -1), q.reshape(len(q), -1)
        top = flat_n.abs().argmax(1)
        flat_q[torch.arange(len(q)), top] = flat_n[torch.arange(len(q)), top]
        new = flat_q.reshape(w.shape) * s
        # a channel whose scale would still move (all its weights round to 0 and it borrows another channel's
        # scale; mse weight ranges) keeps its float weights: nearest rounding, as without AdaRound
        moved = ~torch.isclose(layer.weight_scale(new, in_scale), s.flatten(), rtol=1e-5, atol=0)
        new[moved] = w[moved]
        flat_q[moved] = flat_n[moved]
        if not torch.allclose(layer.weight_scale(new, in_scale).reshape(shape), s, rtol=1e-5, atol=0):
            return 0.0  # per-tensor scales or such: the whole layer keeps nearest rounding
        layer.weight.copy_(new)
        return float((flat_q != flat_n).float().mean())
