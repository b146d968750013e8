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
from karuku.quant.engine.graph import INTEGER_INPUT, IntegerModel, Value

INSTALL = "pip install 'karuku[tflite]'"


def to_tflite(im: IntegerModel, q) -> np.ndarray | list[np.ndarray]:
    """The engine's input integers (N, C, H, W or N, K) as the .tflite's int8 input (N, H, W, C or N, K); for a
    model of several inputs (`im.several`) a list in the file's order, token ids as int32."""
    if im.several:
        return [t.numpy().astype(np.int32) if im.values[n].dtype == INTEGER_INPUT else
                _int8_input(im.values[n], t) for n, t in zip(im.inputs, im.split_inputs(q))]
    return _int8_input(im.values[im.input], q)


def _int8_input(v: Value, q: torch.Tensor) -> np.ndarray:
    x = (q.to(torch.int32) - offset(v)).numpy().astype(np.int8)
    return x.transpose(0, 2, 3, 1).copy() if x.ndim == 4 else x.reshape(len(x), -1)


def expected(im: IntegerModel, q, batch: int = 256) -> np.ndarray:
    """The engine's output integers for input integers `q`, in the .tflite's int8 layout, one row per input
    (in batches: the engine's exact float64 convolutions hold every window of a batch)."""
    rows_ = []
    for i in range(0, im.n_examples(q), batch):
        y = im.run_int(im.slice_inputs(q, i, i + batch), fast=True).to(torch.int32) - offset(im.values[im.output])
        y = y.numpy().astype(np.int8)
        rows_.append((y.transpose(0, 2, 3, 1) if y.ndim == 4 else y).reshape(len(y), -1))
    return np.concatenate(rows_)


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
    for detail in interp.get_input_details():
        shape = list(detail["shape"])
        if shape[0] != batch:
            interp.resize_tensor_input(detail["index"], [batch, *shape[1:]])
    interp.allocate_tensors()
    return interp


def run_litert(model: bytes, x: np.ndarray | list[np.ndarray], kernels: str = "reference",
               batch: int = 256) -> np.ndarray:
    """Outputs (one row per input) of LiteRT on int8 inputs `x` (a list of arrays for several inputs), in batches."""
    xs = x if isinstance(x, list) else [x]
    outs, interp, size = [], None, 0
    for i in range(0, len(xs[0]), batch):
        chunks = [a[i:i + batch] for a in xs]
        n = len(chunks[0])
        if interp is None or n != size:
            interp, size = litert(model, n, kernels), n
        for detail, chunk in zip(interp.get_input_details(), chunks):
            interp.set_tensor(detail["index"], chunk.reshape(n, *detail["shape"][1:]))
        interp.invoke()
        outs.append(interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(len(chunk), -1))
    return np.concatenate(outs)


def run_tflm(model: bytes, x: np.ndarray | list[np.ndarray], arena: int | None = None) -> np.ndarray:
    """Outputs of TensorFlow Lite Micro's Python interpreter on int8 inputs `x` (a list of arrays for several
    inputs), one inference at a time."""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise KarukuError("running a .tflite on TensorFlow Lite Micro needs tflite-micro", INSTALL) from None
    interp = runtime.Interpreter.from_bytes(model, arena_size=arena or max(1 << 20, 10 * len(model)))
    xs = x if isinstance(x, list) else [x]
    shapes = [interp.get_input_details(k)["shape"] for k in range(len(xs))]
    outs = []
    for i in range(len(xs[0])):
        for k, (a, shape) in enumerate(zip(xs, shapes)):
            interp.set_input(a[i].reshape(shape), k)
        interp.invoke()
        outs.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(outs)


def agreement(im: IntegerModel, model: bytes, inputs, tflm_limit: int | None = None) -> dict[str, int]:
    """Identical output rows in each interpreter (LiteRT reference kernels, TFLite Micro) of the inputs (a tensor,
    or a tuple for a model of several)."""
    q = im.quantize_input(inputs)
    x, ref = to_tflite(im, q), expected(im, q)
    n = im.n_examples(q)
    n_tflm = n if tflm_limit is None else min(tflm_limit, n)
    head = [a[:n_tflm] for a in x] if isinstance(x, list) else x[:n_tflm]
    return {"inputs": n,
            "litert": int((run_litert(model, x) == ref).all(1).sum()),
            "tflm_inputs": n_tflm,
            "tflm": int((run_tflm(model, head) == ref[:n_tflm]).all(1).sum())}


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
