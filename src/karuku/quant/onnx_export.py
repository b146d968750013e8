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
from karuku.quant.engine.graph import DTYPES, INTEGER_INPUT, ONNXRUNTIME, IntegerModel, Op, Value
from karuku.quant.engine.ops import pads4
from karuku.quant.representation import REPRESENTATIONS
from karuku.quant.unary import get_unary

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

    def on_integers(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        """An op that reads and writes the integers themselves (no DequantizeLinear / QuantizeLinear): its
        output is the value `name` (scale and zero point as a QuantizeLinear would have)."""
        self.qparams(name, self.im.values[name])
        return self.node(op, inputs, f"q:{name}", **attrs)

    def ints(self, name: str, values) -> str:
        return self.init(name, np.array(values, np.int64))

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
    """The QDQ ONNX bytes of `im` (checked with onnx.checker); input `input` (several: forward's names, token
    inputs int64), output `logits`, batch dynamic.

    `representation` (karuku.quant.representation) says how the integers are stored; it and `target_isa`, the
    CPU the file is made for, are written into the file's metadata. `debug_outputs` also outputs every
    quantized value (`q:<name>`, for a layer-by-layer comparison with the engine).
    """
    import onnx

    if representation not in REPRESENTATIONS:
        raise KarukuError(f"unknown int8 representation '{representation}'",
                          f"known: {', '.join(REPRESENTATIONS)}")
    b = _Builder(im, representation)
    names = input_names(im)
    for name, graph_input in zip(im.inputs, names):
        if im.values[name].dtype != INTEGER_INPUT:
            b.quant(graph_input, name)
    for op in im.ops:
        out, a = im.values[op.output], op.attrs
        y = f"y:{op.output}"
        if op.kind == "gather":  # the rows as the file stores them, looked up by the token ids themselves
            rows = im.arrays[op.arrays["rows"]].numpy().astype(np.int16) + _offset(out)
            b.on_integers("Gather", [b.init(f"{op.output}.rows", rows.astype(np.uint8)),
                                     names[im.inputs.index(op.inputs[0])]], op.output, axis=0)
            continue
        if op.kind == "gather_mean":
            _bag(b, op, names[im.inputs.index(op.inputs[0])])
            continue
        if op.kind == "quantize":  # integers as float32, then the value's QuantizeLinear (the engine's step)
            b.quant(b.node("Cast", [names[im.inputs.index(op.inputs[0])]], y, to=b.tp.FLOAT), op.output)
            continue
        x = b.dequant(op.inputs[0])
        if op.kind == "linear" and len(im.values[op.inputs[0]].shape) > 1:
            _linear_nd(b, op)  # Gemm takes two dimensions: the rows of every sample, reshaped on the integers
            continue
        if op.kind in ("conv2d", "linear"):
            w, bias = b.weights(op.arrays["weight"].rsplit(".", 1)[0], im.values[op.inputs[0]].scale)
            if op.kind == "conv2d":
                b.node("Conv", [x, w, bias], y, strides=a["stride"], pads=pads4(a["padding"]), group=a["groups"])
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
            pads = pads4(a.get("padding", [0, 0]))
            if list(a["kernel"]) == [h, w_] and not any(pads):
                b.node("GlobalAveragePool", [x], y)
            else:
                b.node("AveragePool", [x], y, kernel_shape=a["kernel"], strides=a["stride"], pads=pads,
                       count_include_pad=1)
        elif op.kind == "flatten":
            b.node("Flatten", [x], y, axis=1)
        elif op.kind == "clamp":
            y = b.clamp(x, out, a["lo"], a["hi"])
        elif op.kind == "concat":  # QLinearConcat (its tables are the engine's: dequantize, quantize in float32)
            b.node("Concat", [x, *(b.dequant(i) for i in op.inputs[1:])], y, axis=a["axis"])
        elif op.kind == "lut" and get_unary(a["fn"]).onnx_op:  # QLinearSigmoid / QLinearLeakyRelu
            extra = {"alpha": float(a["slope"])} if a["fn"] == "leaky_relu" else {}
            b.node(get_unary(a["fn"]).onnx_op, [x], y, **extra)
        elif op.kind == "lut":  # no int8 kernel in ONNX Runtime: the engine's table itself, indexed by the byte
            _table_lookup(b, op)
            continue
        elif op.kind == "reshape":
            b.node("Reshape", [x, b.ints(f"{op.output}.shape", [0, *out.shape])], y)
        elif op.kind == "transpose":
            b.node("Transpose", [x], y, perm=[0, *(p + 1 for p in a["perm"])])
        elif op.kind == "upsample":  # PyTorch's nearest: source index floor(i / scale)
            scales = b.init(f"{op.output}.scales", np.array([1, 1, *a["scale"]], np.float32))
            b.node("Resize", [x, "", scales], y, mode="nearest", coordinate_transformation_mode="asymmetric",
                   nearest_mode="floor")
        elif op.kind == "pad":  # on the integers: the padding holds the zero point (real 0)
            src = im.values[op.inputs[0]]
            zp = b.init(f"{op.output}.pad_value", np.array(src.zero_point + _offset(src), np.uint8))
            top, left, bottom, right = pads4(a["pads"])
            b.on_integers("Pad", [f"q:{op.inputs[0]}", b.ints(f"{op.output}.pads", [0, 0, top, left, 0, 0, bottom,
                                                                                    right]), zp], op.output)
            continue
        else:
            raise KarukuError(f"op '{op.kind}' has no ONNX form")
        b.quant(y, op.output)
    b.node("DequantizeLinear", [f"q:{im.output}", f"{im.output}.scale", f"{im.output}.zero_point"], "logits")
    used = {"logits"}  # drop what nothing reads (the DequantizeLinear of an op that works on the integers)
    for node in reversed(b.nodes):
        if any(o in used for o in node.output):
            used.update(node.input)
    b.nodes = [node for node in b.nodes if any(o in used for o in node.output)]
    b.inits = [t for t in b.inits if t.name in used]
    h = b.helper
    graph_inputs = [h.make_tensor_value_info(g, b.tp.INT64 if im.values[n].dtype == INTEGER_INPUT else b.tp.FLOAT,
                                             ["batch", *im.values[n].shape]) for n, g in zip(im.inputs, names)]
    graph = h.make_graph(b.nodes, "karuku_int8", graph_inputs,
                         [h.make_tensor_value_info("logits", b.tp.FLOAT, ["batch", *im.values[im.output].shape])],
                         b.inits)
    if debug_outputs:
        graph.output.extend(h.make_tensor_value_info(f"q:{name}", b.tp.UINT8, ["batch", *v.shape])
                            for name, v in im.values.items() if v.dtype != INTEGER_INPUT)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="karuku")
    model.ir_version = 8
    # the file requantizes as its runtime does (ONNX Runtime: float32, karuku.quant.ort_requant), whatever the
    # integer model's fixed-point rule (what its C / .tflite builds compute): both are recorded
    meta = {"karuku.representation": representation, "karuku.target_isa": target_isa or "unspecified",
            "karuku.rounding": ONNXRUNTIME, "karuku.engine_rounding": im.rounding}
    h.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def input_names(im: IntegerModel) -> list[str]:
    """The file's input names: `input` for one float input (as every fp32 export), else forward's names."""
    return ["input"] if not im.several else list(im.inputs)


def _offset(v: Value) -> int:
    """What the file adds to the engine's integers of `v` to store them as uint8 (see `_Builder.qparams`)."""
    return 128 if v.dtype == "int8" else 0


def _table_lookup(b: _Builder, op: Op) -> None:
    """y = table[x] as Gather on the stored uint8 integers: exactly the engine's op (its table, indexed by the
    engine's byte, re-indexed by the stored byte and re-encoded as stored)."""
    vin, out = b.im.values[op.inputs[0]], b.im.values[op.output]
    stored = np.arange(256) - _offset(vin)  # the engine value each stored byte holds
    table = (b.im.arrays[op.arrays["table"]].numpy()[stored & 0xFF] + _offset(out)).astype(np.uint8)
    idx = b.node("Cast", [f"q:{op.inputs[0]}"], f"{op.output}:index", to=b.tp.INT32)
    b.on_integers("Gather", [b.init(f"{op.output}.table", table), idx], op.output, axis=0)


def _bag(b: _Builder, op: Op, ids: str) -> None:
    """A bag of int8 rows: Gather, Cast to int32, times the mask of the ids that are not pads, ReduceSum over the
    tokens (exact), then in float32 times s_w, divided by the count (at least 1), and the value's QuantizeLinear:
    what the engine's rule "onnxruntime" computes (ONNX Runtime has no integer op for it)."""
    arr, a, y = b.im.arrays, op.attrs, op.output
    rows = b.node("Gather", [b.init(f"{y}.rows", arr[op.arrays["rows"]].numpy()), ids], f"{y}:rows", axis=0)
    wide = b.node("Cast", [rows], f"{y}:rows32", to=b.tp.INT32)
    kept = b.node("Cast", [b.node("Not", [b.node("Equal", [ids, b.ints(f"{y}.pad", a["pad"])], f"{y}:is_pad")],
                                  f"{y}:kept_bool")], f"{y}:kept", to=b.tp.INT32)
    masked = b.node("Mul", [wide, b.node("Unsqueeze", [kept, b.ints(f"{y}.last", [2])], f"{y}:kept3")], f"{y}:masked")
    acc = b.node("ReduceSum", [masked, b.ints(f"{y}.tokens", [1])], f"{y}:acc", keepdims=0)
    scale = np.asarray(arr[op.arrays["weight_scale"]].numpy(), np.float32).reshape(())
    v = b.node("Mul", [b.node("Cast", [acc], f"{y}:accf", to=b.tp.FLOAT), b.init(f"{y}.w_scale", scale)], f"{y}:v")
    if not a["sum"]:
        n = b.node("ReduceSum", [kept, b.ints(f"{y}.tokens_n", [1])], f"{y}:n", keepdims=1)
        n = b.node("Cast", [b.node("Max", [n, b.init(f"{y}.one", np.array(1, np.int32))], f"{y}:n1")], f"{y}:nf",
                   to=b.tp.FLOAT)
        v = b.node("Div", [v, n], f"{y}:mean")
    b.quant(v, y)


def _linear_nd(b: _Builder, op: Op) -> None:
    """A linear layer on [..., K] inputs: reshaped to rows on the integers, QGemm, reshaped back."""
    vin, out, a = b.im.values[op.inputs[0]], b.im.values[op.output], op.attrs
    rows = b.node("Reshape", [f"q:{op.inputs[0]}", b.ints(f"{op.output}.rows", [-1, vin.shape[-1]])],
                  f"q:{op.inputs[0]}:rows:{len(b.nodes)}")
    x = b.node("DequantizeLinear", [rows, f"{op.inputs[0]}.scale", f"{op.inputs[0]}.zero_point"], f"{rows}:f")
    w, bias = b.weights(op.arrays["weight"].rsplit(".", 1)[0], vin.scale)
    y = b.clamp(b.node("Gemm", [x, w, bias], f"y:{op.output}", transB=1), out, a["lo"], a["hi"])
    s, z = b.qparams(op.output, out)
    q = b.node("QuantizeLinear", [y, s, z], f"q:{op.output}:rows")
    b.node("Reshape", [q, b.ints(f"{op.output}.shape", [-1, *out.shape])], f"q:{op.output}")
