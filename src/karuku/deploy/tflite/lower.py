"""IntegerModel → TFLite `Graph`: the same integers in TFLite's int8 operators, NHWC.

Every engine value becomes an int8 tensor: uint8 values q with zero point z are stored as q − 128 with
zero point z − 128 (each op's sums use q − z, so nothing else changes). 3-d values [C, H, W] become
[1, H, W, C]; 1-d values [K] become [1, K]. Padding that TFLite's SAME does not reproduce (it pads less at
the top/left when the total is odd) is an explicit PAD (PADV2 with the minimum before a max pool). A
flatten of H×W > 1 pixels feeding linear layers permutes their weight columns to NHWC order instead of
transposing at run time. Fused ReLU / ReLU6 are used where the range TFLite derives for them is the
engine's clamp; any other clamp is a MAXIMUM + MINIMUM with constants. TFLite derives every
requantization multiplier from the scales in the file; where it would not arrive at the engine's
integers the export refuses (docs/EDGE.md), so what is written computes the engine's bytes.
"""

from __future__ import annotations

import math

import numpy as np

from karuku.deploy.tflite.graph import ACTIVATIONS, PADDING, Graph, Tensor
from karuku.errors import KarukuError
from karuku.quant.engine.graph import IntegerModel, Op, Value
from karuku.quant.primitives import mean_multiplier, quantize_multiplier

SUPPORTED = ("conv2d", "linear", "maxpool2d", "avgpool2d", "add", "flatten", "clamp")


def offset(v: Value) -> int:
    """What the int8 tensor subtracts from the engine's integers: 128 for uint8 values, 0 for int8."""
    return 128 if v.dtype == "uint8" else 0


def tflite_activation_range(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp TFLite derives for a fused activation (CalculateActivationRangeQuantized):
    zero_point + round(f / scale), the division in float32, rounded half away from zero."""
    def quantize(f: float) -> int:
        q = float(np.float32(f) / np.float32(scale))
        return zero_point + int(math.copysign(math.floor(abs(q) + 0.5), q))

    lo, hi = -128, 127
    if act == "RELU":
        return max(lo, quantize(0.0)), hi
    if act == "RELU6":
        return max(lo, quantize(0.0)), min(hi, quantize(6.0))
    if act == "RELU_N1_TO_1":
        return max(lo, quantize(-1.0)), min(hi, quantize(1.0))
    return lo, hi


def same_padding(size: int, k: int, s: int, p: int) -> bool:
    """Whether TFLite's SAME padding gives the engine's windows (p on both sides, floor output size)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out == (size + 2 * p - k) // s + 1 and total // 2 == p


class _Lowering:
    def __init__(self, im: IntegerModel):
        self.im, self.g = im, Graph()
        self.tensor: dict[str, int] = {}  # engine value -> tensor index
        self.perm: dict[str, np.ndarray] = {}  # flat values in NHWC order: engine index of each position
        self.consumers: dict[str, list[Op]] = {}
        for op in im.ops:
            for v in op.inputs:
                self.consumers.setdefault(v, []).append(op)

    # ---- tensors -------------------------------------------------------------------------------
    def act_tensor(self, name: str, v: Value, shape: list[int] | None = None) -> int:
        if shape is None:  # [C, H, W] -> [1, H, W, C]; [K] -> [1, 1, 1, K] (a 1×1 image: see `linear`)
            shape = [1, v.shape[1], v.shape[2], v.shape[0]] if len(v.shape) == 3 else [1, 1, 1, v.shape[0]]
        return self.g.add(Tensor(name, shape, "int8", [float(v.scale)], [v.zero_point - offset(v)]))

    def value(self, name: str) -> int:
        if name not in self.tensor:
            v = self.im.values[name]
            if len(v.shape) not in (1, 3):
                raise KarukuError(f"value '{name}' has shape {v.shape}; the .tflite export takes [C, H, W] or [K]",
                                  "flatten the model's input to one of these")
            shape = [1, v.shape[0]] if name == self.im.input and len(v.shape) == 1 else None
            self.tensor[name] = self.act_tensor(name, v, shape)
        return self.tensor[name]

    def is_4d(self, name: str) -> bool:
        return len(self.g.tensors[self.value(name)].shape) == 4

    def const_like(self, name: str, like: int, value: int) -> int:
        t = self.g.tensors[like]
        return self.g.const(name, np.array([value], dtype=np.int8), scale=list(t.scale), zero_point=list(t.zero_point))

    # ---- clamps --------------------------------------------------------------------------------
    def activation(self, op: Op, out: int, vout: Value) -> tuple[str, int]:
        """(fused activation, tensor the op writes): a fused one when TFLite derives the engine's clamp exactly,
        otherwise NONE into a fresh tensor that `finish` clamps into `out` with MAXIMUM / MINIMUM."""
        lo, hi = op.attrs["lo"] - offset(vout), op.attrs["hi"] - offset(vout)
        zp = vout.zero_point - offset(vout)
        for act in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            if tflite_activation_range(act, vout.scale, zp) == (lo, hi):
                return act, out
        return "NONE", self.act_tensor(f"{op.name}/raw", vout, list(self.g.tensors[out].shape))

    def finish(self, op: Op, written: int, out: int, vout: Value) -> None:
        if written != out:
            self.clamp(op.name, written, out, op.attrs["lo"] - offset(vout), op.attrs["hi"] - offset(vout), vout)

    def clamp(self, name: str, x: int, out: int, lo: int, hi: int, vout: Value) -> None:
        mid = self.act_tensor(f"{name}/max", vout, list(self.g.tensors[out].shape))
        self.g.emit("MAXIMUM", [x, self.const_like(f"{name}/lo", x, lo)], [mid], name)
        self.g.emit("MINIMUM", [mid, self.const_like(f"{name}/hi", x, hi)], [out], name)

    # ---- ops -----------------------------------------------------------------------------------
    def padded(self, op: Op, x: int, vin: Value, kernel, stride, padding, fill: int | None) -> tuple[int, int]:
        """(input tensor, TFLite padding): SAME or VALID where they reproduce the engine's symmetric padding,
        else an explicit PAD (zero point) / PADV2 (`fill`) and VALID."""
        c, h, w = vin.shape
        ph, pw = padding
        if ph == pw == 0:
            return x, PADDING["VALID"]
        if same_padding(h, kernel[0], stride[0], ph) and same_padding(w, kernel[1], stride[1], pw):
            return x, PADDING["SAME"]
        t = self.g.tensors[x]
        out = self.g.add(Tensor(f"{op.name}/pad", [1, h + 2 * ph, w + 2 * pw, c], "int8", list(t.scale),
                                list(t.zero_point)))
        pads = self.g.const(f"{op.name}/paddings", np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], dtype=np.int32))
        if fill is None:
            self.g.emit("PAD", [x, pads], [out], op.name)
        else:
            self.g.emit("PADV2", [x, pads, self.const_like(f"{op.name}/fill", x, fill)], [out], op.name)
        return out, PADDING["VALID"]

    def weights(self, op: Op, x: int, vin: Value, vout: Value, weight: np.ndarray, axis: int) -> tuple[int, int]:
        arr = {r: self.im.arrays[k] for r, k in op.arrays.items()}
        s_w = arr["weight_scale"].numpy().astype(np.float32)
        w = self.g.const(f"{op.name}/weight", np.ascontiguousarray(weight.astype(np.int8)), scale=s_w.tolist(),
                         zero_point=[0] * len(s_w), axis=axis)
        s_b = (np.float32(vin.scale) * s_w).astype(np.float32)
        b = self.g.const(f"{op.name}/bias", arr["bias"].numpy().astype(np.int32), scale=s_b.tolist(),
                         zero_point=[0] * len(s_w))
        self.check_multipliers(op, vin, vout, s_w, arr)
        return w, b

    def check_multipliers(self, op: Op, vin: Value, vout: Value, s_w: np.ndarray, arr) -> None:
        derived = [quantize_multiplier(float(vin.scale) * float(s) / float(vout.scale)) for s in s_w]
        engine = list(zip(arr["m0"].tolist(), arr["shift"].tolist()))
        if derived != engine:
            raise KarukuError(f"layer '{op.name}': TFLite would derive other requantization multipliers from the "
                              "scales than the integer engine holds", "re-convert the model with this karuku")

    def conv2d(self, op: Op, x: int, y: int, vin: Value, vout: Value) -> None:
        a = op.attrs
        weight = self.im.arrays[op.arrays["weight"]].numpy()  # [Cout, Cin/g, kh, kw]
        cin, cout, kh, kw = vin.shape[0], weight.shape[0], weight.shape[2], weight.shape[3]
        if a["groups"] == 1:
            kind, filt, axis = "CONV_2D", weight.transpose(0, 2, 3, 1), 0  # OHWI
        elif a["groups"] == cin and cout % cin == 0:
            kind, filt, axis = "DEPTHWISE_CONV_2D", weight.transpose(1, 2, 3, 0), 3  # 1HWO
        else:
            raise KarukuError(f"layer '{op.name}': a convolution with {a['groups']} groups of {cin} channels has no "
                              "TFLite equivalent (CONV_2D takes 1 group, DEPTHWISE_CONV_2D one per channel)",
                              "use groups 1 or one group per input channel")
        x, padding = self.padded(op, x, vin, (kh, kw), a["stride"], a["padding"], None)
        w, b = self.weights(op, x, vin, vout, filt, axis)
        act, target = self.activation(op, y, vout)
        opts = {"Padding": padding, "StrideW": a["stride"][1], "StrideH": a["stride"][0],
                "FusedActivationFunction": ACTIVATIONS[act], "DilationWFactor": 1, "DilationHFactor": 1}
        if kind == "DEPTHWISE_CONV_2D":
            opts["DepthMultiplier"] = cout // cin
        self.g.emit(kind, [x, w, b], [target], op.name, **opts)
        self.finish(op, target, y, vout)

    def linear(self, op: Op, x: int, y: int, vin: Value, vout: Value) -> None:
        """A 1×1 CONV_2D over the [1, 1, 1, K] vector: LiteRT's reference FULLY_CONNECTED requantizes per-channel
        int8 in double-precision float (round(acc · scale)); CONV_2D uses TFLite's fixed-point rule everywhere."""
        weight = self.im.arrays[op.arrays["weight"]].numpy()
        if op.inputs[0] in self.perm:  # the input is a flatten in NHWC order: read the same columns there
            weight = weight[:, self.perm[op.inputs[0]]]
        w, b = self.weights(op, x, vin, vout, weight[:, None, None, :], 0)
        act, target = self.activation(op, y, vout)
        self.g.emit("CONV_2D", [x, w, b], [target], op.name, Padding=PADDING["VALID"], StrideW=1, StrideH=1,
                    FusedActivationFunction=ACTIVATIONS[act], DilationWFactor=1, DilationHFactor=1)
        self.finish(op, target, y, vout)

    def maxpool2d(self, op: Op, x: int, y: int, vin: Value) -> None:
        a = op.attrs
        x, padding = self.padded(op, x, vin, a["kernel"], a["stride"], a["padding"], vin.qmin - offset(vin))
        self.g.emit("MAX_POOL_2D", [x], [y], op.name, Padding=padding, StrideW=a["stride"][1],
                    StrideH=a["stride"][0], FilterWidth=a["kernel"][1], FilterHeight=a["kernel"][0],
                    FusedActivationFunction=0)

    def avgpool2d(self, op: Op, x: int, vin: Value, vout: Value) -> int:
        a = op.attrs
        if list(a["kernel"]) != list(vin.shape[1:]) or list(a["stride"]) != list(vin.shape[1:]):
            raise KarukuError(f"layer '{op.name}': an average pool over part of the input has no exact TFLite "
                              "equivalent (AVERAGE_POOL_2D keeps the input's scale and rounds its own way)",
                              "use global average pooling (AdaptiveAvgPool2d(1)) before the classifier")
        if mean_multiplier(vin.scale / vout.scale, math.prod(a["kernel"])) != (a["m0"], a["shift"]):
            raise KarukuError(f"layer '{op.name}': the average pool's multiplier is not the one TFLite's MEAN derives",
                              "re-convert the model with this karuku (to_integer)")
        lo, hi = a["lo"] - offset(vout), a["hi"] - offset(vout)
        if (lo, hi) != (-128, 127):
            raise KarukuError(f"layer '{op.name}': a clamped average pool has no TFLite equivalent")
        y = self.act_tensor(op.output, vout)  # [1, 1, 1, C]
        axes = self.g.const(f"{op.name}/axes", np.array([1, 2], dtype=np.int32))
        self.g.emit("MEAN", [x, axes], [y], op.name, KeepDims=True)
        return y

    def add(self, op: Op, a_t: int, b_t: int, y: int, va: Value, vb: Value, vout: Value) -> None:
        a = op.attrs
        twice = 2 * max(va.scale, vb.scale)
        derived = (*quantize_multiplier(va.scale / twice), *quantize_multiplier(vb.scale / twice),
                   *quantize_multiplier(twice / ((1 << 20) * vout.scale)))
        engine = (a["a_m0"], a["a_shift"], a["b_m0"], a["b_shift"], a["m0"], a["shift"])
        if a["left_shift"] != 20 or derived != engine or self.g.tensors[a_t].shape != self.g.tensors[b_t].shape:
            raise KarukuError(f"layer '{op.name}': this add is not TFLite's ADD of the same scales",
                              "re-convert the model with this karuku (to_integer)")
        act, target = self.activation(op, y, vout)
        self.g.emit("ADD", [a_t, b_t], [target], op.name, FusedActivationFunction=ACTIVATIONS[act])
        self.finish(op, target, y, vout)

    def flatten(self, op: Op, x: int, vin: Value) -> int:
        if len(vin.shape) == 1 or vin.shape[1] * vin.shape[2] == 1:
            if op.inputs[0] in self.perm:
                self.perm[op.output] = self.perm[op.inputs[0]]
            if op.inputs[0] != self.im.input:
                return x  # [1, 1, 1, K] already: the same tensor
        c, h, w = vin.shape if len(vin.shape) == 3 else (vin.shape[0], 1, 1)
        k = c * h * w
        if c > 1 and h * w > 1:
            if all(o.kind == "linear" for o in self.consumers.get(op.output, [])) and op.output != self.im.output:
                # NHWC position (y, x, ch) holds the engine's element ch·H·W + y·W + x
                self.perm[op.output] = np.arange(k).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
            else:
                t = self.g.tensors[x]
                nchw = self.g.add(Tensor(f"{op.name}/nchw", [1, c, h, w], "int8", list(t.scale), list(t.zero_point)))
                perm = self.g.const(f"{op.name}/perm", np.array([0, 3, 1, 2], dtype=np.int32))
                self.g.emit("TRANSPOSE", [x, perm], [nchw], op.name)
                x = nchw
        return self.reshape(op.name, x, self.act_tensor(op.output, self.im.values[op.output]))

    def reshape(self, name: str, x: int, y: int) -> int:
        shape = [-1, *self.g.tensors[y].shape[1:]]
        self.g.emit("RESHAPE", [x, self.g.const(f"{name}/shape", np.array(shape, dtype=np.int32))], [y], name)
        return y

    def standalone_clamp(self, op: Op, x: int, y: int, vout: Value) -> None:
        lo, hi = op.attrs["lo"] - offset(vout), op.attrs["hi"] - offset(vout)
        zp = vout.zero_point - offset(vout)
        for act in ("RELU", "RELU6"):
            if tflite_activation_range(act, vout.scale, zp) == (lo, hi):
                self.g.emit(act, [x], [y], op.name)
                return
        self.clamp(op.name, x, y, lo, hi, vout)

    def run(self) -> Graph:
        im = self.im
        self.g.inputs = [self.value(im.input)]
        for op in im.ops:
            if op.kind not in SUPPORTED:
                raise KarukuError(f"layer '{op.name}': op '{op.kind}' has no TFLite equivalent in this exporter",
                                  f"supported: {', '.join(SUPPORTED)}")
            vin, vout = im.values[op.inputs[0]], im.values[op.output]
            x = self.value(op.inputs[0])
            if op.kind in ("linear", "add", "clamp") and not self.is_4d(op.inputs[0]):
                x = self.to_4d(op, x, vin)
            if op.kind == "avgpool2d":
                self.tensor[op.output] = self.avgpool2d(op, x, vin, vout)
                continue
            if op.kind == "flatten":
                self.tensor[op.output] = self.flatten(op, x, vin)
                continue
            y = self.value(op.output)
            if op.kind == "conv2d":
                self.conv2d(op, x, y, vin, vout)
            elif op.kind == "linear":
                self.linear(op, x, y, vin, vout)
            elif op.kind == "maxpool2d":
                self.maxpool2d(op, x, y, vin)
            elif op.kind == "add":
                self.add(op, x, self.value(op.inputs[1]), y, vin, im.values[op.inputs[1]], vout)
            elif op.kind == "clamp":
                self.standalone_clamp(op, x, y, vout)
                if op.inputs[0] in self.perm:  # elementwise: the order it reads is the order it writes
                    self.perm[op.output] = self.perm[op.inputs[0]]
        out = self.value(im.output)
        if len(im.values[im.output].shape) == 1:  # [1, 1, 1, K] -> [1, K], what a classifier's user reads
            v = im.values[im.output]
            out = self.reshape("output", out, self.act_tensor(f"{im.output}/output", v, [1, v.shape[0]]))
        self.g.outputs = [out]
        return self.g

    def to_4d(self, op: Op, x: int, vin: Value) -> int:
        """The model's [1, K] input read by a 4-d op: RESHAPE to [1, 1, 1, K]."""
        t = self.g.tensors[x]
        y = self.g.add(Tensor(f"{op.name}/4d", [1, 1, 1, vin.shape[0]], "int8", list(t.scale), list(t.zero_point)))
        return self.reshape(f"{op.name}/4d", x, y)


def lower(im: IntegerModel) -> Graph:
    """The TFLite graph computing `im`'s integers (int8, NHWC); refuses what TFLite cannot compute exactly."""
    return _Lowering(im).run()
