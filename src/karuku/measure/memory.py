"""Activation memory at batch 1, read off a forward pass.

Estimate: the largest (inputs + output) of any leaf module, plus tensors that stay live
across it (a residual branch's input) approximated by the largest module input seen
before it in an enclosing block. It is what a static arena must hold for a sequential
net and a close upper bound for residual ones; the C generator sizes its real arena.
"""

from __future__ import annotations

import torch
from torch import nn

from karuku.measure import inputs


def _nbytes(obj, float_scale: float = 1.0) -> int:
    """Bytes of the tensors in `obj`; float values scaled to the deployed width (integers stay as they are)."""
    if isinstance(obj, torch.Tensor):
        return int(obj.numel() * obj.element_size() * (float_scale if obj.is_floating_point() else 1))
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o, float_scale) for o in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(o, float_scale) for o in obj.values())
    return 0


@torch.no_grad()
def activation_bytes(model: nn.Module, input_shape, bytes_per_value: int = 4) -> dict[str, int]:
    """{"peak": bytes, "total": bytes written by all leaf modules} for one sample; `input_shape`: what the model
    takes (an input shape, a `inputs.Signature` or example inputs). Float values count `bytes_per_value` bytes,
    integer ones (token ids) their own width."""
    sig = inputs.signature(model, input_shape)
    peak, total = 0, 0
    scale = bytes_per_value / 4

    def hook(_module, args, output):
        nonlocal peak, total
        size = _nbytes(args, scale) + _nbytes(output, scale)
        peak = max(peak, size)
        total += _nbytes(output, scale)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        sig.call(model, sig.fixed(1))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {"peak": int(peak), "total": int(total)}


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes): what reading the data
    cost, recorded with evaluations and runs (a streamed dataset keeps it flat).

    On Linux the high-water mark of this program's own memory (`VmHWM`): `ru_maxrss` survives `exec`, so a
    process started by a large parent would report the parent's peak (a benchmark that wrote a million files
    before starting its reader saw 765 MB for a reader that never held it)."""
    import resource
    import sys

    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
