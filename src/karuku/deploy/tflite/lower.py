"""IntegerModel → TFLite `Graph`: the same integers in TFLite's int8 operators, NHWC.

Every engine value becomes an int8 tensor (`placement.py`: uint8 values q − 128). Where a value's integers lie
in its tensor is its layout (`karuku.deploy.layout`): [C, H, W] values are [1, H, W, C] at the model's edges and for
convolutions and pools, other values keep the engine's order; a transpose only changes the layout, a reshape
moves data only when the dimensions it merges are out of order. Padding that TFLite's SAME does not reproduce
(it pads less at the top/left when the total is odd) is an explicit PAD (PADV2 with the minimum before a max
pool). A flatten feeding linear layers permutes their weight columns instead of transposing at run time.
Fused ReLU / ReLU6 are used where the range TFLite derives for them is the engine's clamp; any other clamp is
a MAXIMUM + MINIMUM with constants. TFLite derives every requantization multiplier from the scales in the
file; where it would not arrive at the engine's integers the export refuses (docs/EDGE.md), so what is
written computes the engine's bytes. Tables: `tables.py`.
"""

from __future__ import annotations

import math

import numpy as np

from karuku.deploy import layout as lay
from karuku.deploy.tflite.graph import ACTIVATIONS, PADDING, Graph, Tensor
from karuku.deploy.tflite.placement import Placement, Rep, offset
from karuku.deploy.tflite.tables import Probe, emit_table, stored_table
from karuku.errors import KarukuError
from karuku.quant.engine.graph import INTEGER_INPUT, IntegerModel, Op, Value
from karuku.quant.engine.ops import pads4
from karuku.quant.primitives import mean_multiplier, pool_multiplier, quantize_multiplier

SUPPORTED = ("conv2d", "linear", "maxpool2d", "avgpool2d", "add", "flatten", "clamp", "concat", "lut", "reshape",
             "transpose", "upsample", "pad", "gather", "quantize")
NHWC = lay.canonical(4)
__all__ = ["lower", "offset", "same_padding", "tflite_activation_range"]


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


def same_padding(size: int, k: int, s: int, before: int, after: int | None = None) -> bool:
    """Whether TFLite's SAME padding gives the engine's windows (`before` / `after` padding, floor output size)."""
    after = before if after is None else after
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out == (size + before + after - k) // s + 1 and total // 2 == before


def is_global(op: Op, vin: Value) -> bool:
    """An average pool over the whole of each channel (TFLite's MEAN)."""
    a = op.attrs
    return (list(a["kernel"]) == list(vin.shape[1:]) and list(a["stride"]) == list(vin.shape[1:])
            and list(a.get("padding", [0, 0])) == [0, 0])

class _Lowering(Placement):
    # ---- clamps --------------------------------------------------------------------------------
    def activation(self, op: Op, out: int, vout: Value) -> tuple[str, int]:
        """(fused activation, tensor the op writes): a fused one when TFLite derives the engine's clamp exactly,
        otherwise NONE into a fresh tensor that `finish` clamps into `out` with MAXIMUM / MINIMUM."""
        lo, hi = op.attrs["lo"] - offset(vout), op.attrs["hi"] - offset(vout)
        zp = vout.zero_point - offset(vout)
        for act in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            if tflite_activation_range(act, vout.scale, zp) == (lo, hi):
                return act, out
        return "NONE", self.like(f"{op.name}/raw", out)

    def finish(self, op: Op, written: int, out: int, vout: Value) -> None:
        if written != out:
            self.clamp(op.name, written, out, op.attrs["lo"] - offset(vout), op.attrs["hi"] - offset(vout))

    def clamp(self, name: str, x: int, out: int, lo: int, hi: int) -> None:
        mid = self.like(f"{name}/max", out)
        self.g.emit("MAXIMUM", [x, self.const_like(f"{name}/lo", x, lo)], [mid], name)
        self.g.emit("MINIMUM", [mid, self.const_like(f"{name}/hi", x, hi)], [out], name)

    # ---- convolutions, linear layers, pools ------------------------------------------------------
    def padded(self, op: Op, x: int, vin: Value, kernel, stride, padding, fill: int | None) -> tuple[int, int]:
        """(input tensor, TFLite padding): SAME or VALID where they reproduce the engine's padding, else an
        explicit PAD (zero point) / PADV2 (`fill`) and VALID."""
        c, h, w = vin.shape
        top, left, bottom, right = pads4(padding)
        if top == left == bottom == right == 0:
            return x, PADDING["VALID"]
        if same_padding(h, kernel[0], stride[0], top, bottom) and same_padding(w, kernel[1], stride[1], left, right):
            return x, PADDING["SAME"]
        out = self.like(f"{op.name}/pad", x, [1, h + top + bottom, w + left + right, c])
        pads = self.g.const(f"{op.name}/paddings", np.array([[0, 0], [top, bottom], [left, right], [0, 0]],
                                                            dtype=np.int32))
        if fill is None:
            self.g.emit("PAD", [x, pads], [out], op.name)
        else:
            self.g.emit("PADV2", [x, pads, self.const_like(f"{op.name}/fill", x, fill)], [out], op.name)
        return out, PADDING["VALID"]

    def weights(self, op: Op, vin: Value, vout: Value, weight: np.ndarray, axis: int) -> tuple[int, int]:
        arr = {r: self.im.arrays[k] for r, k in op.arrays.items()}
        s_w = arr["weight_scale"].numpy().astype(np.float32)
        w = self.g.const(f"{op.name}/weight", np.ascontiguousarray(weight.astype(np.int8)), scale=s_w.tolist(),
                         zero_point=[0] * len(s_w), axis=axis)
        s_b = (np.float32(vin.scale) * s_w).astype(np.float32)
        b = self.g.const(f"{op.name}/bias", arr["bias"].numpy().astype(np.int32), scale=s_b.tolist(),
                         zero_point=[0] * len(s_w))
        derived = [quantize_multiplier(float(vin.scale) * float(s) / float(vout.scale)) for s in s_w]
        if derived != list(zip(arr["m0"].tolist(), arr["shift"].tolist())):
            raise KarukuError(f"layer '{op.name}': TFLite would derive other requantization multipliers from the "
                              "scales than the integer engine holds", "re-convert the model with this karuku")
        return w, b

    def conv2d(self, op: Op, vin: Value, vout: Value) -> None:
        a = op.attrs
        weight = self.im.arrays[op.arrays["weight"]].numpy()  # [Cout, Cin/g, kh, kw]
        cin, cout, kh, kw = vin.shape[0], weight.shape[0], weight.shape[2], weight.shape[3]
        version = None
        if a["groups"] != 1 and a["groups"] == cin and cout % cin == 0:
            kind, filt, axis = "DEPTHWISE_CONV_2D", weight.transpose(1, 2, 3, 0), 3  # 1HWO
        else:  # grouped convolutions too: LiteRT's reference kernels and TFLite Micro run CONV_2D with groups
            kind, filt, axis = "CONV_2D", weight.transpose(0, 2, 3, 1), 0  # OHWI
            version = 6 if a["groups"] > 1 else None
        x, padding = self.padded(op, self.get(op.inputs[0], NHWC).tensor, vin, (kh, kw), a["stride"], a["padding"],
                                 None)
        w, b = self.weights(op, vin, vout, filt, axis)
        y = self.out(op, NHWC)
        act, target = self.activation(op, y, vout)
        opts = {"Padding": padding, "StrideW": a["stride"][1], "StrideH": a["stride"][0],
                "FusedActivationFunction": ACTIVATIONS[act], "DilationWFactor": 1, "DilationHFactor": 1}
        if kind == "DEPTHWISE_CONV_2D":
            opts["DepthMultiplier"] = cout // cin
        self.g.emit(kind, [x, w, b], [target], op.name, version, **opts)
        self.finish(op, target, y, vout)

    def linear(self, op: Op, vin: Value, vout: Value) -> None:
        """A 1×1 CONV_2D over the rows of the last dimension: LiteRT's reference FULLY_CONNECTED requantizes
        per-channel int8 in double-precision float (round(acc · scale)); CONV_2D uses TFLite's fixed-point rule."""
        weight = self.im.arrays[op.arrays["weight"]].numpy()
        if op.inputs[0] in self.perm:  # the input is a flatten in tensor order: read the same columns there
            weight = weight[:, self.perm[op.inputs[0]]]
        rank = len(vin.shape) + 1
        r = self.rep[op.inputs[0]]
        keep = r.layout if r.layout[-1] == rank - 1 else lay.identity(rank)  # the features innermost
        x = self.get(op.inputs[0], keep, max(4 - rank, 0)).tensor
        w, b = self.weights(op, vin, vout, weight[:, None, None, :], 0)
        y = self.out(op, keep, max(4 - rank, 0))
        if rank > 4:  # rows as the width of one image, and back
            k, n = vin.shape[-1], vout.shape[-1]
            rows = math.prod(vin.shape[:-1])
            x = self.reshape(f"{op.name}/rows", x, self.like(f"{op.name}/rows", x, [1, 1, rows, k]))
            conv_out = self.like(f"{op.name}/conv", y, [1, 1, rows, n])
        else:
            conv_out = y
        act, target = self.activation(op, conv_out, vout)
        self.g.emit("CONV_2D", [x, w, b], [target], op.name, Padding=PADDING["VALID"], StrideW=1, StrideH=1,
                    FusedActivationFunction=ACTIVATIONS[act], DilationWFactor=1, DilationHFactor=1)
        self.finish(op, target, conv_out, vout)
        if conv_out != y:
            self.reshape(op.name, conv_out, y)

    def maxpool2d(self, op: Op, vin: Value) -> None:
        a = op.attrs
        x, padding = self.padded(op, self.get(op.inputs[0], NHWC).tensor, vin, a["kernel"], a["stride"],
                                 a["padding"], vin.qmin - offset(vin))
        self.g.emit("MAX_POOL_2D", [x], [self.out(op, NHWC)], op.name, Padding=padding, StrideW=a["stride"][1],
                    StrideH=a["stride"][0], FilterWidth=a["kernel"][1], FilterHeight=a["kernel"][0],
                    FusedActivationFunction=0)

    def avgpool2d(self, op: Op, vin: Value, vout: Value) -> None:
        """Global: MEAN (keep_dims), whose multiplier the engine holds. Over windows: a DEPTHWISE_CONV_2D with
        weights 1 and weight scale float32(1 / window) — its multiplier s_x·s_w / s_y is the engine's
        (`primitives.pool_multiplier`), padding adds x − z_x = 0 and counts in the window size, as in the engine.
        (TFLite's AVERAGE_POOL_2D keeps the input's scale and rounds its own way: not the engine's integers.)"""
        a = op.attrs
        n = math.prod(a["kernel"])
        lo, hi = a["lo"] - offset(vout), a["hi"] - offset(vout)
        if (lo, hi) != (-128, 127):
            raise KarukuError(f"layer '{op.name}': a clamped average pool has no TFLite equivalent")
        x = self.get(op.inputs[0], NHWC).tensor
        if is_global(op, vin):
            if mean_multiplier(vin.scale / vout.scale, n) != (a["m0"], a["shift"]):
                raise KarukuError(f"layer '{op.name}': the average pool's multiplier is not the one TFLite's MEAN "
                                  "derives", "re-convert the model with this karuku (to_integer)")
            axes = self.g.const(f"{op.name}/axes", np.array([1, 2], dtype=np.int32))
            self.g.emit("MEAN", [x, axes], [self.out(op, NHWC)], op.name, KeepDims=True)
            return
        s_w = float(np.float32(1.0 / n))
        if pool_multiplier(vin.scale, vout.scale, n) != (a["m0"], a["shift"]):
            raise KarukuError(f"layer '{op.name}': the average pool's multiplier is not s_x · float32(1/{n}) / s_y, "
                              "which TFLite derives for it", "re-convert the model with this karuku (to_integer)")
        c = vin.shape[0]
        x, padding = self.padded(op, x, vin, a["kernel"], a["stride"], a.get("padding", [0, 0]), None)
        w = self.g.const(f"{op.name}/ones", np.ones((1, *a["kernel"], c), dtype=np.int8), scale=[s_w],
                         zero_point=[0], axis=3)
        b = self.g.const(f"{op.name}/zero", np.zeros(c, dtype=np.int32), scale=[float(np.float32(vin.scale * s_w))],
                         zero_point=[0])
        self.g.emit("DEPTHWISE_CONV_2D", [x, w, b], [self.out(op, NHWC)], op.name, Padding=padding,
                    StrideW=a["stride"][1], StrideH=a["stride"][0], FusedActivationFunction=0, DilationWFactor=1,
                    DilationHFactor=1, DepthMultiplier=1)

    def add(self, op: Op, va: Value, vb: Value, vout: Value) -> None:
        a = op.attrs
        twice = 2 * max(va.scale, vb.scale)
        derived = (*quantize_multiplier(va.scale / twice), *quantize_multiplier(vb.scale / twice),
                   *quantize_multiplier(twice / ((1 << 20) * vout.scale)))
        engine = (a["a_m0"], a["a_shift"], a["b_m0"], a["b_shift"], a["m0"], a["shift"])
        if a["left_shift"] != 20 or derived != engine:
            raise KarukuError(f"layer '{op.name}': this add is not TFLite's ADD of the same scales",
                              "re-convert the model with this karuku (to_integer)")
        ra = self.rep[op.inputs[0]]
        b_t = self.get(op.inputs[1], ra.layout, ra.pad).tensor
        y = self.out(op, ra.layout, ra.pad)
        act, target = self.activation(op, y, vout)
        self.g.emit("ADD", [ra.tensor, b_t], [target], op.name, FusedActivationFunction=ACTIVATIONS[act])
        self.finish(op, target, y, vout)

    def standalone_clamp(self, op: Op, vout: Value) -> None:
        r = self.rep[op.inputs[0]]
        y = self.out(op, r.layout, r.pad)
        lo, hi = op.attrs["lo"] - offset(vout), op.attrs["hi"] - offset(vout)
        zp = vout.zero_point - offset(vout)
        if op.inputs[0] in self.perm:  # elementwise: the order it reads is the order it writes
            self.perm[op.output] = self.perm[op.inputs[0]]
        for act in ("RELU", "RELU6"):
            if tflite_activation_range(act, vout.scale, zp) == (lo, hi):
                self.g.emit(act, [r.tensor], [y], op.name)
                return
        self.clamp(op.name, r.tensor, y, lo, hi)

    # ---- tables and data movement ----------------------------------------------------------------
    def lut(self, op: Op, vin: Value, vout: Value) -> None:
        r = self.rep[op.inputs[0]]
        table = stored_table(self.im.arrays[op.arrays["table"]], vin, vout)
        emit_table(self.g, op.name, r.tensor, self.out(op, r.layout, r.pad), table, op.attrs, self.probe)

    def concat(self, op: Op, vout: Value) -> None:
        """CONCATENATION of inputs on the output's scale and zero point (TFLite's int8 rule); an input on others
        first through its table (QUANTIZE where TFLite's requantization gives the table, else a lookup)."""
        first = self.rep[op.inputs[0]]
        ins = []
        for j, name in enumerate(op.inputs):
            x = self.get(name, first.layout, first.pad).tensor
            key = op.arrays.get(f"table{j}")
            vin = self.im.values[name]
            if self.quant(vin) != self.quant(vout):  # (uint8 and int8 values can be the same int8 integers)
                table = stored_table(self.im.arrays[key] if key else None, vin, vout)
                y = self.g.add(Tensor(f"{op.name}/in{j}", list(self.g.tensors[x].shape), "int8", *self.quant(vout)))
                x = emit_table(self.g, f"{op.name}/in{j}", x, y, table, None, self.probe)
            ins.append(x)
        y = self.out(op, first.layout, first.pad)
        axis = first.pad + first.layout.index(op.attrs["axis"])
        self.g.emit("CONCATENATION", ins, [y], op.name, Axis=axis, FusedActivationFunction=0)

    def reshape_op(self, op: Op, vin: Value) -> None:
        """flatten / reshape: a RESHAPE of the tensor as it lies when the merged dimensions are in order
        (otherwise one TRANSPOSE first); none at all when the tensor's shape does not change."""
        r, src, dst = self.rep[op.inputs[0]], self.batched(op.inputs[0]), self.batched(op.output)
        if len(dst) == 2 and op.output != self.im.output and r.layout != lay.identity(len(src)) and \
                all(o.kind == "linear" for o in self.consumers.get(op.output, [])):
            # read only by linear layers: keep the tensor's order and permute their weight columns
            order = np.arange(dst[1]).reshape(src[1:]).transpose([d - 1 for d in r.layout[1:]]).reshape(-1)
            base = self.perm.get(op.inputs[0])
            self.perm[op.output] = order if base is None else base[order]
            self.alias_or_reshape(op, r, (0, 1))
            return
        need, out_layout = lay.reshape_plan(r.layout, src, dst)
        if op.inputs[0] in self.perm and need == r.layout and len(dst) == 2:
            self.perm[op.output] = self.perm[op.inputs[0]]
        self.alias_or_reshape(op, self.get(op.inputs[0], need, None), out_layout)

    def alias_or_reshape(self, op: Op, r: Rep, out_layout: lay.Layout) -> None:
        core = lay.shape_in(out_layout, self.batched(op.output))[1:]
        have = self.g.tensors[r.tensor].shape[1:]
        lead = len(have) - len(core)
        if lead >= 0 and have[lead:] == core and all(d == 1 for d in have[:lead]):
            self.rep[op.output] = Rep(r.tensor, tuple(out_layout), lead)
            return
        # a vector as [1, 1, 1, K]: what the linear layers that usually read it take
        self.reshape(op.name, r.tensor, self.out(op, out_layout, 2 if len(out_layout) == 2 else 0))

    def transpose(self, op: Op) -> None:
        """No operator: the same tensor holds the transposed value in another layout."""
        r = self.rep[op.inputs[0]]
        perm = (0, *[p + 1 for p in op.attrs["perm"]])
        self.rep[op.output] = Rep(r.tensor, lay.after_transpose(r.layout, perm), r.pad)

    def upsample(self, op: Op, vout: Value) -> None:
        """RESIZE_NEAREST_NEIGHBOR (no corner alignment, no half-pixel centres): source ⌊i · in / out⌋."""
        x = self.get(op.inputs[0], NHWC).tensor
        size = self.g.const(f"{op.name}/size", np.array(vout.shape[1:], dtype=np.int32))
        self.g.emit("RESIZE_NEAREST_NEIGHBOR", [x, size], [self.out(op, NHWC)], op.name, AlignCorners=False,
                    HalfPixelCenters=False)

    def pad(self, op: Op) -> None:
        """PAD fills with the tensor's zero point: the engine's z_x (real 0)."""
        top, left, bottom, right = op.attrs["pads"]
        x = self.get(op.inputs[0], NHWC).tensor
        pads = self.g.const(f"{op.name}/paddings", np.array([[0, 0], [top, bottom], [left, right], [0, 0]],
                                                            dtype=np.int32))
        self.g.emit("PAD", [x, pads], [self.out(op, NHWC)], op.name)

    # ---- token inputs ----------------------------------------------------------------------------
    def gather(self, op: Op, vout: Value) -> None:
        """GATHER of the output's int8 rows by the int32 token ids: the engine's lookup, byte for byte."""
        rows = self.im.arrays[op.arrays["rows"]].numpy().astype(np.int16) - offset(vout)
        scale, zp = self.quant(vout)
        params = self.g.const(f"{op.name}/rows", rows.astype(np.int8), scale=scale, zero_point=zp)
        ids = self.rep[op.inputs[0]].tensor
        self.g.emit("GATHER", [params, ids], [self.out(op, lay.identity(len(vout.shape) + 1))], op.name, Axis=0,
                    BatchDims=0)

    def quantize(self, op: Op, vout: Value) -> None:
        """CAST of the int32 integers to float32, then QUANTIZE on the value's scale: the engine's input step
        (TFLite rounds halves away from zero, the engine to even: the export's byte check catches a tie)."""
        ids = self.rep[op.inputs[0]].tensor
        wide = self.g.add(Tensor(f"{op.name}/float", list(self.g.tensors[ids].shape), "float32"))
        self.g.emit("CAST", [ids], [wide], op.name)
        self.g.emit("QUANTIZE", [wide], [self.out(op, lay.identity(len(vout.shape) + 1))], op.name)

    # ---- the graph -------------------------------------------------------------------------------
    def run(self) -> Graph:
        im = self.im
        for name in im.inputs:  # int8 (quantized) inputs, and token ids as int32
            rank = len(im.values[name].shape) + 1
            if im.values[name].dtype == INTEGER_INPUT:
                t = self.g.add(Tensor(name, self.batched(name), "int32"))
                self.rep[name] = Rep(t, lay.identity(rank))
            else:
                t = self.tensor(name, name, lay.canonical(rank))
                self.rep[name] = Rep(t, lay.canonical(rank))
            self.g.inputs.append(t)
        for op in im.ops:
            if op.kind not in SUPPORTED:
                raise KarukuError(f"layer '{op.name}': op '{op.kind}' has no TFLite equivalent in this exporter",
                                  f"supported: {', '.join(SUPPORTED)}")
            vin, vout = im.values[op.inputs[0]], im.values[op.output]
            if op.kind == "gather":
                self.gather(op, vout)
            elif op.kind == "quantize":
                self.quantize(op, vout)
            elif op.kind == "conv2d":
                self.conv2d(op, vin, vout)
            elif op.kind == "linear":
                self.linear(op, vin, vout)
            elif op.kind == "maxpool2d":
                self.maxpool2d(op, vin)
            elif op.kind == "avgpool2d":
                self.avgpool2d(op, vin, vout)
            elif op.kind == "add":
                self.add(op, vin, im.values[op.inputs[1]], vout)
            elif op.kind == "clamp":
                self.standalone_clamp(op, vout)
            elif op.kind == "lut":
                self.lut(op, vin, vout)
            elif op.kind == "concat":
                self.concat(op, vout)
            elif op.kind in ("flatten", "reshape"):
                self.reshape_op(op, vin)
            elif op.kind == "transpose":
                self.transpose(op)
            elif op.kind == "upsample":
                self.upsample(op, vout)
            else:
                self.pad(op)
        out_rank = len(im.values[im.output].shape) + 1
        r = self.get(im.output, lay.canonical(out_rank), None)
        if r.pad or r.tensor in self.g.inputs:  # [1, 1, 1, K] -> [1, K], what a classifier's user reads
            r = Rep(self.reshape("output", r.tensor, self.tensor(f"{im.output}/output", im.output, r.layout)),
                    r.layout)
        self.g.outputs = [r.tensor]
        return self.g

def lower(im: IntegerModel, probe: Probe | None = None) -> Graph:
    """The TFLite graph computing `im`'s integers (int8, NHWC); refuses what TFLite cannot compute exactly.

    `probe` (verify.probe: it runs both interpreters) lets a table be TFLite's own operator where that gives
    the engine's 256 values; without it every table is a lookup (GATHER)."""
    return _Lowering(im, probe).run()
