"""`karuku export --format tflite`: write the .tflite and prove it in LiteRT and TFLite Micro first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from karuku.deploy.tflite.flatbuf import COMPACT, serialize
from karuku.deploy.tflite.lower import lower
from karuku.deploy.tflite.verify import agreement, probe
from karuku.errors import KarukuError
from karuku.quant.engine.graph import IntegerModel


def description(im: IntegerModel) -> str:
    """The model description karuku writes into the file."""
    return f"karuku int8 model ({len(im.ops)} integer-engine ops)"


def to_tflite(im: IntegerModel, compact: bool = False) -> tuple[IntegerModel, bytes, int]:
    """(the engine the file matches, the .tflite bytes, bytes of its constant data).

    Both interpreters requantize with gemmlowp's two roundings, so the file computes what the engine
    computes with rounding "double": same integers (weights, multipliers), that rule. Tables become TFLite's
    own operators where both interpreters compute them exactly (`verify.probe`), else lookups. `compact`:
    without what neither interpreter reads (`flatbuf.serialize`).
    """
    im = replace(im, rounding="double")
    graph = lower(im, probe)
    return im, serialize(graph, description(im), **(COMPACT if compact else {})), graph.data_bytes()


def export_tflite(im: IntegerModel, out: Path, inputs, check: int = 256, compact: bool = False) -> str:
    """Write `out` after checking every output byte in both interpreters on `check` of `inputs` (a tensor, or a
    tuple / dict of the inputs of a model of token ids: the file takes those as int32)."""
    from karuku.io.atomic import write_bytes

    im.need_examples(inputs, "a .tflite")
    im, raw, data = to_tflite(im, compact)
    x = im.slice_inputs(inputs, 0, check)
    res = agreement(im, raw, x)
    n = im.n_examples(x)
    if res["litert"] != n or res["tflm"] != n:
        raise KarukuError(f"the .tflite differs from the integer engine: identical outputs on {res['litert']} of {n} "
                          f"inputs in LiteRT, {res['tflm']} of {n} in TFLite Micro",
                          "this is a karuku bug; please report it with the model")
    write_bytes(out, raw)
    kind = "compact int8 .tflite" if compact else "int8 .tflite"
    return (f"wrote {out} ({len(raw):,} bytes, {kind}; weights, biases and shapes {data:,} B); outputs "
            f"identical to the integer engine (rounding double) on {n} inputs in LiteRT (reference kernels) and "
            f"TensorFlow Lite Micro")
