"""Elementwise activations that the integer engine runs as 256-entry lookup tables.

One registry, used by the tracer (which modules / functions are which), the fake-quant model (the
float function between two quantizers), the engine (the table: every 8-bit input through the function,
quantized to the output's scale) and the exporters (ONNX op, C float function). Adding an activation is
one entry here plus its C float expression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from karuku.errors import KarukuError, closest


@dataclass(frozen=True)
class Unary:
    """`fn(x, attrs)` in float32; `c_float`: the same in C (`x`, `a` = attrs["slope"]) for the float build."""

    name: str
    fn: Callable[[torch.Tensor, dict], torch.Tensor]
    c_float: str
    onnx_op: str | None = None  # an ONNX op ONNX Runtime fuses into an int8 kernel (QLinearSigmoid, ...)


UNARY: dict[str, Unary] = {u.name: u for u in (
    Unary("sigmoid", lambda x, a: torch.sigmoid(x), "1.0f / (1.0f + expf(-x))", "Sigmoid"),
    Unary("tanh", lambda x, a: torch.tanh(x), "tanhf(x)"),
    Unary("hardswish", lambda x, a: F.hardswish(x), "x * (x <= -3.0f ? 0.0f : x >= 3.0f ? 6.0f : x + 3.0f) / 6.0f"),
    Unary("hardsigmoid", lambda x, a: F.hardsigmoid(x), "(x <= -3.0f ? 0.0f : x >= 3.0f ? 6.0f : x + 3.0f) / 6.0f"),
    Unary("silu", lambda x, a: F.silu(x), "x / (1.0f + expf(-x))"),
    Unary("gelu", lambda x, a: F.gelu(x), "0.5f * x * (1.0f + erff(x * 0.70710678f))"),
    Unary("leaky_relu", lambda x, a: F.leaky_relu(x, a["slope"]), "x >= 0.0f ? x : a * x", "LeakyRelu"),
)}


def get_unary(name: str) -> Unary:
    """The activation `name`, or one line listing the known ones."""
    if name not in UNARY:
        known = sorted(UNARY)
        raise KarukuError(f"unknown activation '{name}'{closest(name, known)}", f"known: {', '.join(known)}")
    return UNARY[name]


def apply(name: str, x: torch.Tensor, attrs: dict) -> torch.Tensor:
    """The float activation (float32 in, float32 out)."""
    return get_unary(name).fn(x, attrs)
