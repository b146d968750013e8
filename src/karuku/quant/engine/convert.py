"""Lower a calibrated QuantModel to an IntegerModel: integer weights, biases and multipliers."""

from __future__ import annotations

import torch

from karuku.errors import KarukuError
from karuku.quant import bag
from karuku.quant.engine.graph import DTYPES, INTEGER_INPUT, IntegerModel, Op, Value
from karuku.quant.model import QuantModel, key
from karuku.quant.primitives import (
    INT32_MAX,
    INT32_MIN,
    mean_multiplier,
    pool_multiplier,
    qrange,
    quantize,
    quantize_multiplier,
)
from karuku.quant.unary import apply as apply_unary

ADD_LEFT_SHIFT = 20  # TFLite's: (x − z) · 2^20 keeps 8-bit inputs well inside int32 with headroom


def _value(qm: QuantModel, name: str, shape) -> Value:
    act = qm.act(name)
    if not bool(act.enabled):
        raise KarukuError(f"value '{name}' has no quantization range", "calibrate the model first")
    if act.bits != 8:
        raise KarukuError(f"the integer engine stores 8-bit activations; '{name}' has {act.bits}",
                          "use act_bits 8")
    scale, zp = act.qparams()
    return Value(list(shape), "int8" if act.signed else "uint8", int(zp), float(scale))


def _clamp(act: str | None, out: Value) -> tuple[int, int]:
    qmin, qmax = DTYPES[out.dtype]
    if act is None:
        return qmin, qmax
    lo = max(qmin, out.zero_point)
    if act == "relu6":
        return lo, min(qmax, out.zero_point + round(6.0 / out.scale))
    return lo, qmax


def _multipliers(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [quantize_multiplier(float(v)) for v in m.double()]
    return (torch.tensor([p[0] for p in pairs], dtype=torch.int32),
            torch.tensor([p[1] for p in pairs], dtype=torch.int32))


@torch.no_grad()
def to_integer(qm: QuantModel) -> IntegerModel:
    """The integer model computing what `qm` computes (to within rounding of the requantization)."""
    if qm.cfg.mode == "dynamic":
        raise KarukuError("a dynamically quantized model has no integer-only form (its activation ranges are "
                          "chosen at run time)", "quantize with mode ptq or qat")
    if qm.float_layers:
        raise KarukuError(f"layers kept in float: {', '.join(qm.float_layers[:4])}",
                          "the integer engine runs only fully quantized models; quantize every layer")
    values: dict[str, Value] = {}
    ops_: list[Op] = []
    arrays: dict[str, torch.Tensor] = {}
    inputs: dict[int, str] = {}
    out = None
    for n in qm.nodes:
        if n.op == "input" and n.attrs.get("integer"):  # token ids, a mask: integers as they come
            values[n.name] = Value(list(n.shape), INTEGER_INPUT, 0, 1.0)
        else:
            values[n.name] = _value(qm, n.name, n.shape)
        v = values[n.name]
        if n.attrs.get("is_output"):
            out = n.name
        if n.op == "input":
            inputs[n.attrs.get("index", 0)] = n.name
            continue
        vin = values[n.inputs[0]]
        if n.attrs.get("integer_form") == "gather":  # the lookup of the output's quantized rows
            k = key(n.name)
            rows = quantize(qm.floats[k].owner.weight.detach().float(), v.scale, v.zero_point, *DTYPES[v.dtype])
            arrays[f"{k}.rows"] = rows.to(torch.int8 if v.dtype == "int8" else torch.uint8)
            ops_.append(Op("gather", [n.inputs[0]], n.name, n.name, {}, {"rows": f"{k}.rows"}))
            continue
        if n.attrs.get("integer_form") == "bag":  # the int8 table's rows summed, requantized by their count
            k, owner = key(n.name), qm.floats[key(n.name)].owner
            s_w = bag.table_scale(owner.weight)
            m0, shift = bag.count_multipliers(float(s_w), v.scale, vin.shape[-1], owner.mode == "mean")
            arrays.update({f"{k}.rows": bag.int_table(owner.weight), f"{k}.m0": m0, f"{k}.shift": shift,
                           f"{k}.weight_scale": s_w.reshape(1)})
            pad = -1 if owner.padding_idx is None else int(owner.padding_idx)
            ops_.append(Op("gather_mean", [n.inputs[0]], n.name, n.name, {"pad": pad, "sum": int(owner.mode == "sum")},
                           {r: f"{k}.{r}" for r in ("rows", "m0", "shift", "weight_scale")}))
            continue
        if n.attrs.get("integer_form") == "quantize":
            ops_.append(Op("quantize", [n.inputs[0]], n.name, n.name))
            continue
        if n.op in ("conv", "linear"):
            layer = qm.layers[key(n.name)]
            w = layer.weight
            s_in = torch.tensor(vin.scale, dtype=torch.float32)
            s_w = layer.weight_scale(w, s_in).double()
            qmin, qmax = qrange(layer.bits, True, narrow=True)
            shape = (-1, *[1] * (w.dim() - 1))
            w_int = torch.clamp(torch.round(w / s_w.float().reshape(shape)), qmin, qmax).to(torch.int8)
            s_b = layer.weight_scale(w, s_in) * s_in
            b_int = torch.round(layer.bias / s_b).double()
            if (b_int.abs() > INT32_MAX).any():
                raise KarukuError(f"layer '{n.name}': bias does not fit int32", "recalibrate with a wider range")
            m0, shift = _multipliers(vin.scale * s_w / v.scale)
            k = key(n.name)
            arrays.update({f"{k}.weight": w_int, f"{k}.bias": b_int.clamp(INT32_MIN, INT32_MAX).to(torch.int32),
                           f"{k}.m0": m0, f"{k}.shift": shift,
                           # float metadata for exporters (QDQ ONNX); the executor never reads it
                           f"{k}.weight_scale": s_w.float()})
            lo, hi = _clamp(n.attrs.get("act"), v)
            attrs = {"lo": lo, "hi": hi}
            if n.op == "conv":
                attrs.update(stride=n.attrs["stride"], padding=n.attrs["padding"], groups=n.attrs["groups"])
            kind = "conv2d" if n.op == "conv" else "linear"
            ops_.append(Op(kind, [n.inputs[0]], n.name, n.name, attrs,
                           {r: f"{k}.{r}" for r in ("weight", "bias", "m0", "shift", "weight_scale")}))
        elif n.op == "add":
            vb = values[n.inputs[1]]
            twice = 2 * max(vin.scale, vb.scale)
            a_m0, a_shift = quantize_multiplier(vin.scale / twice)
            b_m0, b_shift = quantize_multiplier(vb.scale / twice)
            m0, shift = quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * v.scale))
            lo, hi = _clamp(n.attrs.get("act"), v)
            ops_.append(Op("add", list(n.inputs), n.name, n.name,
                           {"left_shift": ADD_LEFT_SHIFT, "a_m0": a_m0, "a_shift": a_shift, "b_m0": b_m0,
                            "b_shift": b_shift, "m0": m0, "shift": shift, "lo": lo, "hi": hi}))
        elif n.op == "maxpool":
            ops_.append(Op("maxpool2d", [n.inputs[0]], n.name, n.name, {k: n.attrs[k] for k in
                                                                         ("kernel", "stride", "padding")}))
        elif n.op == "avgpool":
            kernel = list(vin.shape[1:] if n.attrs["global"] else n.attrs["kernel"])
            stride = list(kernel if n.attrs["global"] else n.attrs["stride"])
            padding = list(n.attrs.get("padding", [0, 0]))
            # M = s_x / (s_y · window) in the integers a .tflite derives from the same scales, so that it computes
            # the same bytes: over the whole input TFLite's MEAN (one bit less precise than quantize_multiplier(M)),
            # over windows a depthwise convolution with weights 1 of scale float32(1 / window)
            if kernel == list(vin.shape[1:]) and stride == kernel and padding == [0, 0]:
                m0, shift = mean_multiplier(vin.scale / v.scale, kernel[0] * kernel[1])
            else:
                m0, shift = pool_multiplier(vin.scale, v.scale, kernel[0] * kernel[1])
            lo, hi = DTYPES[v.dtype]
            attrs = {"kernel": kernel, "stride": stride, "m0": m0, "shift": shift, "lo": lo, "hi": hi}
            if padding != [0, 0]:
                attrs["padding"] = padding
            ops_.append(Op("avgpool2d", [n.inputs[0]], n.name, n.name, attrs))
        elif n.op == "flatten":
            ops_.append(Op("flatten", [n.inputs[0]], n.name, n.name))
        elif n.op in ("relu", "relu6"):
            lo, hi = _clamp(n.op, v)
            ops_.append(Op("clamp", [n.inputs[0]], n.name, n.name, {"lo": lo, "hi": hi}))
        elif n.op == "cat":
            k, roles = key(n.name), {}
            for j, name in enumerate(n.inputs):
                vi = values[name]
                if (vi.scale, vi.zero_point, vi.dtype) != (v.scale, v.zero_point, v.dtype):
                    arrays[f"{k}.table{j}"] = table(vi, v)
                    roles[f"table{j}"] = f"{k}.table{j}"
            ops_.append(Op("concat", list(n.inputs), n.name, n.name, {"axis": n.attrs["axis"]}, roles))
        elif n.op == "unary":
            k = key(n.name)
            attrs = {a: n.attrs[a] for a in n.attrs if a not in ("is_output",)}
            arrays[f"{k}.table"] = table(vin, v, lambda x, a=attrs: apply_unary(a["fn"], x, a))
            ops_.append(Op("lut", [n.inputs[0]], n.name, n.name, attrs, {"table": f"{k}.table"}))
        elif n.op in ("reshape", "transpose", "upsample", "pad"):
            attrs = {a: n.attrs[a] for a in ("perm", "scale", "pads") if a in n.attrs}
            ops_.append(Op(n.op, [n.inputs[0]], n.name, n.name, attrs))
        else:
            raise KarukuError(f"layer '{n.name}' ({n.op}) has no integer op", "keep the model to supported layers")
    order = [inputs[i] for i in sorted(inputs)]
    return IntegerModel(order[0], out, values, ops_, arrays, qm.cfg.rounding, order)


def byte_values(dtype: str) -> torch.Tensor:
    """The integer each stored byte 0..255 stands for (two's complement for int8)."""
    b = torch.arange(256, dtype=torch.int32)
    return b if dtype == "uint8" else torch.where(b < 128, b, b - 256)


def table(vin: Value, vout: Value, fn=None) -> torch.Tensor:
    """256 output integers, by input byte: quantize(fn(s_in · (q − z_in))) on the output's grid, in float32
    exactly as the fake-quant model computes it (dequantize, the function, x / s rounded half to even)."""
    x = (byte_values(vin.dtype) - vin.zero_point).to(torch.float32) * torch.tensor(vin.scale, dtype=torch.float32)
    y = fn(x) if fn is not None else x
    return quantize(y, vout.scale, vout.zero_point, *DTYPES[vout.dtype])
