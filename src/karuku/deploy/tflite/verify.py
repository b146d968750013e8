"""Run a .tflite in the real interpreters and compare every output byte with the integer engine.

LiteRT (`ai-edge-litert`) by default hands int8 graphs to its XNNPACK delegate, which requantizes in
float (acc · scale, rounded to nearest even): close to the engine, not equal. The exactness check runs
LiteRT with its builtin *reference* kernels (OpResolverType.BUILTIN_REF), which requantize in fixed
point like TFLite Micro. Both interpreters round twice (gemmlowp's rule; neither wheel is built with
TFLITE_SINGLE_ROUNDING), so the outputs equal an engine converted with rounding "double".
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from karuku.deploy.tflite.lower import offset
from karuku.errors import KarukuError
from karuku.quant.engine.graph import IntegerModel

INSTALL = "pip install 'karuku[tflite]'"


def to_tflite(im: IntegerModel, q: torch.Tensor) -> np.ndarray:
    """The engine's input integers (N, C, H, W or N, K) as the .tflite's int8 input (N, H, W, C or N, K)."""
    x = (q.to(torch.int32) - offset(im.values[im.input])).numpy().astype(np.int8)
    return x.transpose(0, 2, 3, 1).copy() if x.ndim == 4 else x.reshape(len(x), -1)


def expected(im: IntegerModel, q: torch.Tensor, batch: int = 256) -> np.ndarray:
    """The engine's output integers for input integers `q`, in the .tflite's int8 layout, one row per input
    (in batches: the engine's exact float64 convolutions hold every window of a batch)."""
    rows = []
    for i in range(0, len(q), batch):
        y = im.run_int(q[i:i + batch], fast=True).to(torch.int32) - offset(im.values[im.output])
        y = y.numpy().astype(np.int8)
        rows.append((y.transpose(0, 2, 3, 1) if y.ndim == 4 else y).reshape(len(y), -1))
    return np.concatenate(rows)


KERNELS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "AUTO"}


def litert(model: bytes, batch: int = 1, kernels: str = "reference", threads: int = 1):
    """A LiteRT interpreter for `model` with the input resized to `batch`: its `kernels` are "reference" (the
    builtin reference kernels), "optimized" (builtin optimized kernels, no delegate) or "xnnpack" (the default)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise KarukuError("running a .tflite needs LiteRT (ai-edge-litert)", INSTALL) from None
    resolver = getattr(OpResolverType, KERNELS[kernels])
    interp = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=resolver)
    shape = list(interp.get_input_details()[0]["shape"])
    if shape[0] != batch:
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], [batch, *shape[1:]])
    interp.allocate_tensors()
    return interp


def run_litert(model: bytes, x: np.ndarray, kernels: str = "reference", batch: int = 256) -> np.ndarray:
    """Outputs (one row per input) of LiteRT on int8 inputs `x`, in batches."""
    outs, interp, size = [], None, 0
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        if interp is None or len(chunk) != size:
            interp, size = litert(model, len(chunk), kernels), len(chunk)
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], chunk.reshape(len(chunk), *detail["shape"][1:]))
        interp.invoke()
        outs.append(interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(len(chunk), -1))
    return np.concatenate(outs)


def run_tflm(model: bytes, x: np.ndarray, arena: int | None = None) -> np.ndarray:
    """Outputs of TensorFlow Lite Micro's Python interpreter on int8 inputs `x`, one inference at a time."""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise KarukuError("running a .tflite on TensorFlow Lite Micro needs tflite-micro", INSTALL) from None
    interp = runtime.Interpreter.from_bytes(model, arena_size=arena or max(1 << 20, 10 * len(model)))
    shape = interp.get_input_details(0)["shape"]
    outs = []
    for row in x:
        interp.set_input(row.reshape(shape), 0)
        interp.invoke()
        outs.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(outs)


def agreement(im: IntegerModel, model: bytes, inputs: torch.Tensor, tflm_limit: int | None = None) -> dict[str, int]:
    """Identical output rows in each interpreter (LiteRT reference kernels, TFLite Micro) of `len(inputs)`."""
    q = im.quantize_input(inputs)
    x, ref = to_tflite(im, q), expected(im, q)
    n_tflm = len(x) if tflm_limit is None else min(tflm_limit, len(x))
    return {"inputs": len(x),
            "litert": int((run_litert(model, x) == ref).all(1).sum()),
            "tflm_inputs": n_tflm,
            "tflm": int((run_tflm(model, x[:n_tflm]) == ref[:n_tflm]).all(1).sum())}


@functools.lru_cache(maxsize=256)
def probe(op: str, options: tuple, quant_in: tuple[float, int], quant_out: tuple[float, int]) -> np.ndarray | None:
    """The int8 outputs of TFLite operator `op` (`options`: its BuiltinOptions fields) for every int8 input −128..127
    on the given (scale, zero point) pairs, where LiteRT's reference kernels and TFLite Micro agree; else None
    (they differ, or one refuses the operator on these scales)."""
    from karuku.deploy.tflite.flatbuf import serialize
    from karuku.deploy.tflite.graph import Graph, Tensor

    g = Graph()
    x = g.add(Tensor("x", [1, 256], "int8", [float(quant_in[0])], [int(quant_in[1])]))
    y = g.add(Tensor("y", [1, 256], "int8", [float(quant_out[0])], [int(quant_out[1])]))
    g.emit(op, [x], [y], op, **dict(options))
    g.inputs, g.outputs = [x], [y]
    raw = serialize(g, "karuku probe")
    values = np.arange(-128, 128, dtype=np.int8)[None]
    try:
        a = run_litert(raw, values)[0]
        b = run_tflm(raw, values, arena=1 << 16)[0]
    except (RuntimeError, ValueError):
        return None
    return a if np.array_equal(a, b) else None
