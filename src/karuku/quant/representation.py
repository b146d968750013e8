"""Int8 representations: how the integer engine's values are stored in ONNX so every CPU computes them exactly.

The engine's arithmetic is fixed (docs/QUANTIZATION.md); a representation only says which ONNX integer types
carry it, and is an exact re-encoding:

| name | activations | weights | exact on | speed in ONNX Runtime |
|---|---|---|---|---|
| u8s8 | uint8 | int8 | VNNI / AMX x86, Arm | the fast kernels |
| u8s7 | uint8 | int8 with \\|w\\| ≤ 63 (7-bit weights) | every CPU | the fast kernels |
| u8u8 | uint8 | uint8 (w + 128, zero point 128) | every CPU | int16 kernels, slower |

Why: x86 CPUs without VNNI add each *pair* of uint8 · int8 products into a saturating int16
(`vpmaddubsw`). A pair stays exact when 2 · 255 · |w| ≤ 32767, i.e. |w| ≤ 64: 7-bit weights
(−63..63) never saturate, and uint8 weights go through kernels that widen both sides to int16 first.
`pair_saturating_dot` is a NumPy model of that multiply (tests check the claims above with it).

A target ISA (karuku.cpu) picks the representation: targets whose kernels are exact keep u8s8; for the
others, quantizing with `target_isa` caps weights at 7 bits (u8s7: full speed, a little accuracy), and
exporting a model that already has 8-bit weights stores them as u8u8 (exact, slower, no requantization).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from karuku.cpu import PORTABLE, TARGETS, get_target

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
SAFE_WEIGHT = 64  # 2 · 255 · 64 = 32640 ≤ 32767: any pair of products with |w| ≤ 64 fits int16


@dataclass(frozen=True)
class Representation:
    """How the integer engine's values are stored in ONNX, and on which CPUs that is exact."""

    name: str
    weights: str  # ONNX type of the stored weights: "int8" or "uint8"
    max_weight: int  # the largest |w| the engine's weights may have in it
    exact_everywhere: bool
    description: str


REPRESENTATIONS: dict[str, Representation] = {r.name: r for r in (
    Representation("u8s8", "int8", 127, False, "uint8 activations × int8 weights: exact on VNNI / AMX x86 and Arm"),
    Representation("u8s7", "int8", 63, True, "uint8 activations × 7-bit weights in int8: exact on every CPU, fast"),
    Representation("u8u8", "uint8", 127, True, "uint8 activations × uint8 weights (w + 128): exact on every CPU, "
                                               "slower kernels"),
)}


def exact_on(rep: str, target: str) -> bool:
    """Does ONNX Runtime on `target` compute representation `rep` exactly?"""
    r = REPRESENTATIONS[rep]
    if r.exact_everywhere:
        return True
    return target != PORTABLE and TARGETS[get_target(target)].u8s8_exact


def weight_bits_for(target: str) -> int:
    """The most weight bits a model quantized for `target` may use (7 where u8 × s8 kernels saturate)."""
    t = get_target(target)
    return 8 if t != PORTABLE and TARGETS[t].u8s8_exact else 7


def choose(max_weight: int, target: str) -> str:
    """The fastest representation exact on `target` for weights up to ±`max_weight`: u8s7 whenever the weights
    fit it (the same bytes as u8s8, exact everywhere), else u8s8 where that is exact, else u8u8."""
    if max_weight <= REPRESENTATIONS["u8s7"].max_weight:
        return "u8s7"
    return "u8s8" if exact_on("u8s8", target) else "u8u8"


def pair_saturating_dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (…, K) uint8 · w (N, K) int8 as x86 without VNNI computes it: each pair of adjacent products
    (k, k + 1) summed and saturated to int16, then the pairs summed exactly (odd K: a zero pads)."""
    x = np.asarray(x, np.int32)
    w = np.asarray(w, np.int32)
    lead, k = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, k)
    if k % 2:
        x, w = np.pad(x, ((0, 0), (0, 1))), np.pad(w, ((0, 0), (0, 1)))
    xe, xo, we, wo = x[:, 0::2], x[:, 1::2], w[:, 0::2], w[:, 1::2]
    out = np.empty((len(x), len(w)), np.int64)
    rows = max(1, (1 << 24) // max(1, we.size))  # bounded memory: about 16 M pairs at a time
    for i in range(0, len(x), rows):
        pairs = xe[i:i + rows, None, :] * we + xo[i:i + rows, None, :] * wo  # int32: |2 · 255 · 128| fits
        out[i:i + rows] = np.clip(pairs, INT16_MIN, INT16_MAX).sum(-1)
    return out.reshape(*lead, len(w))


def max_abs_weight(model) -> int:
    """The largest |weight integer| of an IntegerModel, or that a QuantModel's weight bits allow (per-channel
    symmetric scales put some weight of every channel on the end of its range)."""
    from karuku.quant.engine import IntegerModel

    if isinstance(model, IntegerModel):
        return max((int(model.arrays[op.arrays["weight"]].abs().max()) for op in model.ops
                    if "weight" in op.arrays and model.arrays[op.arrays["weight"]].numel()), default=0)
    return max(((1 << (layer.bits - 1)) - 1 for layer in model.layers.values() if layer.bits is not None), default=0)
