"""Int8 QDQ ONNX from the integer model: one self-contained file ONNX Runtime fuses into int8 kernels.

Every integer value becomes a QuantizeLinear output (uint8 or int8, the engine's scale and zero point);
each op reads DequantizeLinear of its inputs, weights are int8 initializers behind a per-channel
DequantizeLinear (axis 0), biases int32 behind one with scale s_in·s_w. This is the pattern ONNX
Runtime rewrites into QLinearConv / QGemm / QLinearAdd / QLinearGlobalAveragePool (and MaxPool,
Flatten on the integers directly). A fused ReLU / ReLU6 needs no node when the output range already
saturates at 0 (and 6); otherwise an explicit Relu / Clip is written.
"""

from __future__ import annotations

import numpy as np

from karuku.errors import KarukuError
from karuku.quant.engine.graph import DTYPES, IntegerModel, Value

OPSET = 17


class _Builder:
    def __init__(self, im: IntegerModel):
        from onnx import TensorProto, helper, numpy_helper

        self.im, self.helper, self.nh, self.tp = im, helper, numpy_helper, TensorProto
        self.nodes, self.inits = [], []

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.nh.from_array(np.array(arr, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=f"{op}_{len(self.nodes)}", **attrs))
        return output

    def qparams(self, name: str, v: Value) -> tuple[str, str]:
        zdtype = np.uint8 if v.dtype == "uint8" else np.int8
        return (self.init(f"{name}.scale", np.array(v.scale, np.float32)),
                self.init(f"{name}.zero_point", np.array(v.zero_point, zdtype)))

    def quant(self, fin: str, name: str) -> str:
        s, z = self.qparams(name, self.im.values[name])
        return self.node("QuantizeLinear", [fin, s, z], f"q:{name}")

    def dequant(self, name: str) -> str:
        s, z = f"{name}.scale", f"{name}.zero_point"
        out = f"f:{name}:{len(self.nodes)}"
        return self.node("DequantizeLinear", [f"q:{name}", s, z], out)

    def weights(self, key: str, s_in: float) -> tuple[str, str]:
        arr = self.im.arrays
        w, b = arr[f"{key}.weight"].numpy(), arr[f"{key}.bias"].numpy()
        s_w = arr[f"{key}.weight_scale"].numpy().astype(np.float32)
        cout = w.shape[0]
        wq = self.init(f"{key}.w_int8", w.astype(np.int8))
        ws = self.init(f"{key}.w_scale", s_w)
        wz = self.init(f"{key}.w_zero_point", np.zeros(cout, np.int8))
        bq = self.init(f"{key}.b_int32", b.astype(np.int32))
        bs = self.init(f"{key}.b_scale", (s_w * np.float32(s_in)).astype(np.float32))
        bz = self.init(f"{key}.b_zero_point", np.zeros(cout, np.int32))
        return (self.node("DequantizeLinear", [wq, ws, wz], f"{key}.w", axis=0),
                self.node("DequantizeLinear", [bq, bs, bz], f"{key}.b", axis=0))

    def clamp(self, y: str, out: Value, lo: int, hi: int) -> str:
        """An explicit Relu / Clip only where the output type's saturation does not already clamp."""
        qmin, qmax = DTYPES[out.dtype]
        if lo <= qmin and hi >= qmax:
            return y
        fmin = self.init(f"{y}.min", np.array(out.scale * (lo - out.zero_point), np.float32))
        fmax = self.init(f"{y}.max", np.array(out.scale * (hi - out.zero_point), np.float32))
        return self.node("Clip", [y, fmin, fmax], f"{y}:clamped")


def export_qdq(im: IntegerModel, opset: int = OPSET) -> bytes:
    """The QDQ ONNX bytes of `im` (checked with onnx.checker); input `input`, output `logits`, batch dynamic."""
    import onnx

    b = _Builder(im)
    vin = im.values[im.input]
    b.quant("input", im.input)
    for op in im.ops:
        out, a = im.values[op.output], op.attrs
        x = b.dequant(op.inputs[0])
        y = f"y:{op.output}"
        if op.kind in ("conv2d", "linear"):
            w, bias = b.weights(op.arrays["weight"].rsplit(".", 1)[0], im.values[op.inputs[0]].scale)
            if op.kind == "conv2d":
                ph, pw = a["padding"]
                b.node("Conv", [x, w, bias], y, strides=a["stride"], pads=[ph, pw, ph, pw], group=a["groups"])
            else:
                b.node("Gemm", [x, w, bias], y, transB=1)
            y = b.clamp(y, out, a["lo"], a["hi"])
        elif op.kind == "add":
            b.node("Add", [x, b.dequant(op.inputs[1])], y)
            y = b.clamp(y, out, a["lo"], a["hi"])
        elif op.kind == "maxpool2d":
            ph, pw = a["padding"]
            b.node("MaxPool", [x], y, kernel_shape=a["kernel"], strides=a["stride"], pads=[ph, pw, ph, pw])
        elif op.kind == "avgpool2d":
            h, w_ = im.values[op.inputs[0]].shape[1:]
            if list(a["kernel"]) == [h, w_]:
                b.node("GlobalAveragePool", [x], y)
            else:
                b.node("AveragePool", [x], y, kernel_shape=a["kernel"], strides=a["stride"])
        elif op.kind == "flatten":
            b.node("Flatten", [x], y, axis=1)
        elif op.kind == "clamp":
            y = b.clamp(x, out, a["lo"], a["hi"])
        else:
            raise KarukuError(f"op '{op.kind}' has no ONNX form")
        b.quant(y, op.output)
    b.node("DequantizeLinear", [f"q:{im.output}", f"{im.output}.scale", f"{im.output}.zero_point"], "logits")
    h = b.helper
    graph = h.make_graph(b.nodes, "karuku_int8",
                         [h.make_tensor_value_info("input", b.tp.FLOAT, ["batch", *vin.shape])],
                         [h.make_tensor_value_info("logits", b.tp.FLOAT, ["batch", *im.values[im.output].shape])],
                         b.inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="karuku")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()
