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
from karuku.quant.representation import REPRESENTATIONS

OPSET = 17


class _Builder:
    def __init__(self, im: IntegerModel, representation: str):
        from onnx import TensorProto, helper, numpy_helper

        self.im, self.helper, self.nh, self.tp = im, helper, numpy_helper, TensorProto
        self.nodes, self.inits = [], []
        self.rep = REPRESENTATIONS[representation]

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.nh.from_array(np.array(arr, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=f"{op}_{len(self.nodes)}", **attrs))
        return output

    def qparams(self, name: str, v: Value) -> tuple[str, str]:
        # Activations are always stored as uint8: int8 engine values move up by 128 with their zero point
        # (an exact re-encoding), because uint8 activations are what ONNX Runtime's int8 kernels fuse and run fast.
        offset = 128 if v.dtype == "int8" else 0
        return (self.init(f"{name}.scale", np.array(v.scale, np.float32)),
                self.init(f"{name}.zero_point", np.array(v.zero_point + offset, np.uint8)))

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
        if np.abs(w.astype(np.int16)).max(initial=0) > self.rep.max_weight:
            raise KarukuError(f"layer '{key}' has weights up to ±{np.abs(w.astype(np.int16)).max()}, more than the "
                              f"{self.rep.name} representation holds (±{self.rep.max_weight})",
                              "quantize with 7-bit weights (--target-isa avx2) or export as u8s8 / u8u8")
        if self.rep.weights == "uint8":  # the same integers shifted by 128: u8 × u8 kernels never saturate
            wq = self.init(f"{key}.w_uint8", (w.astype(np.int16) + 128).astype(np.uint8))
            wz = self.init(f"{key}.w_zero_point", np.full(cout, 128, np.uint8))
        else:
            wq = self.init(f"{key}.w_int8", w.astype(np.int8))
            wz = self.init(f"{key}.w_zero_point", np.zeros(cout, np.int8))
        ws = self.init(f"{key}.w_scale", s_w)
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


def export_qdq(im: IntegerModel, opset: int = OPSET, representation: str = "u8s8", target_isa: str | None = None,
               debug_outputs: bool = False) -> bytes:
    """The QDQ ONNX bytes of `im` (checked with onnx.checker); input `input`, output `logits`, batch dynamic.

    `representation` (karuku.quant.representation) says how the integers are stored; it and `target_isa`, the
    CPU the file is made for, are written into the file's metadata. `debug_outputs` also outputs every
    quantized value (`q:<name>`, for a layer-by-layer comparison with the engine).
    """
    import onnx

    if representation not in REPRESENTATIONS:
        raise KarukuError(f"unknown int8 representation '{representation}'",
                          f"known: {', '.join(REPRESENTATIONS)}")
    b = _Builder(im, representation)
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
    if debug_outputs:
        graph.output.extend(h.make_tensor_value_info(f"q:{name}", b.tp.UINT8, ["batch", *v.shape])
                            for name, v in im.values.items())
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="karuku")
    model.ir_version = 8
    meta = {"karuku.representation": representation, "karuku.target_isa": target_isa or "unspecified",
            "karuku.rounding": im.rounding}
    h.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()
