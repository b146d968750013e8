"""The engine's 256-entry tables (activations, a concatenation input on another scale) in a .tflite.

TFLite has no table operator, and its int8 activation kernels compute their own values: LOGISTIC wants the
output scale 1/256 and in TensorFlow Lite Micro is a fixed-point approximation, TFLite Micro's TANH assumes
the output scale 1/128, HARD_SWISH and LEAKY_RELU requantize in fixed point, QUANTIZE (int8 → int8) rounds
twice as gemmlowp does (1 · 0.31 → 0.5 → 1), GELU is not in TFLite Micro — while the engine's table is the
fake-quant model's float32 function rounded half to even. So a table is written as TFLite's own operator only
where that operator, run on all 256 inputs in both interpreters (`verify.probe`), gives exactly the engine's
table; otherwise as an exact lookup both interpreters run: CAST (int8 → int32), ADD 128, GATHER from the table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from karuku.deploy.tflite.graph import Graph, Tensor
from karuku.quant.engine.graph import Value

# (operator, its options) → the 256 int8 outputs of stored inputs −128..127 in both interpreters, or None
Probe = Callable[[str, tuple, tuple[float, int], tuple[float, int]], "np.ndarray | None"]

# the TFLite operator that may compute an activation's table, with its options
# (GELU: TFLite Micro has no kernel for it; hard-sigmoid and SiLU: TFLite has no operator for them)
BUILTIN = {"sigmoid": ("LOGISTIC", ()), "tanh": ("TANH", ()), "hardswish": ("HARD_SWISH", ())}


def stored_table(table: torch.Tensor | None, vin: Value, vout: Value) -> np.ndarray:
    """The table as the .tflite stores values: entry v + 128 is the int8 output of the int8 input v (engine
    integer v + 128 for uint8 values, read from the engine's table by its byte); None: the identity."""
    off_in = 128 if vin.dtype == "uint8" else 0
    off_out = 128 if vout.dtype == "uint8" else 0
    q = np.arange(-128, 128) + off_in  # the engine integer each stored input stands for
    out = q if table is None else table.numpy().astype(np.int64)[q & 0xFF]
    return (out - off_out).astype(np.int8)


def candidate(attrs: dict | None) -> tuple[str, tuple] | None:
    """The TFLite operator that could compute this table (None: none has the function)."""
    if attrs is None:
        return "QUANTIZE", ()  # a concatenation input: the identity on another scale
    if attrs.get("fn") == "leaky_relu":
        return "LEAKY_RELU", (("Alpha", float(attrs["slope"])),)
    return BUILTIN.get(attrs.get("fn"))


def emit_table(g: Graph, name: str, x: int, y: int, table: np.ndarray, attrs: dict | None,
               probe: Probe | None) -> int:
    """Write `y = table(x)` into `g` (TFLite's operator where it computes `table`, else a lookup); returns y."""
    tx, ty = g.tensors[x], g.tensors[y]
    cand = candidate(attrs)
    if cand is not None and probe is not None:
        got = probe(cand[0], cand[1], (tx.scale[0], tx.zero_point[0]), (ty.scale[0], ty.zero_point[0]))
        if got is not None and np.array_equal(got, table):
            g.emit(cand[0], [x], [y], name, **dict(cand[1]))
            return y
    shape = list(tx.shape)
    flat = len(shape) > 4  # TFLite Micro broadcasts ADD over at most 4 dimensions
    if flat:
        n = int(np.prod(shape))
        x = _reshape(g, f"{name}/flat", x, g.add(Tensor(f"{name}/flat", [1, n], "int8", list(tx.scale),
                                                        list(tx.zero_point))))
        shape = [1, n]
    wide = g.add(Tensor(f"{name}/int32", shape, "int32"))
    g.emit("CAST", [x], [wide], name)
    index = g.add(Tensor(f"{name}/index", shape, "int32"))
    g.emit("ADD", [wide, g.const(f"{name}/128", np.array([128], dtype=np.int32))], [index], name, version=1,
           FusedActivationFunction=0)
    params = g.const(f"{name}/table", table.astype(np.int8), scale=list(ty.scale), zero_point=list(ty.zero_point))
    target = g.add(Tensor(f"{name}/looked-up", shape, "int8", list(ty.scale), list(ty.zero_point))) if flat else y
    g.emit("GATHER", [params, index], [target], name, Axis=0, BatchDims=0)
    if flat:
        _reshape(g, name, target, y)
    return y


def _reshape(g: Graph, name: str, x: int, y: int) -> int:
    shape = [-1, *g.tensors[y].shape[1:]]
    g.emit("RESHAPE", [x, g.const(f"{name}/shape", np.array(shape, dtype=np.int32))], [y], name)
    return y
