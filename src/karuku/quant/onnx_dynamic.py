"""ONNX for dynamically quantized models: int8 Linear weights, activations quantized per batch at run time.

Each quantized Linear becomes DynamicQuantizeLinear → MatMulInteger (uint8 × int8 per-column weights) →
Cast → Mul(s_x · s_w) → Add(bias), which ONNX Runtime fuses into DynamicQuantizeMatMul. Every other node
(convolutions included, as in torch's dynamic quantization) stays float.
"""

from __future__ import annotations

import numpy as np
import torch

from karuku.errors import KarukuError
from karuku.quant.engine.ops import pads4
from karuku.quant.model import QuantModel, key
from karuku.quant.primitives import qrange
from karuku.quant.representation import REPRESENTATIONS

OPSET = 17


def export_dynamic(qm: QuantModel, opset: int = OPSET, representation: str = "u8s8",
                   target_isa: str | None = None) -> bytes:
    """The ONNX bytes of a `mode="dynamic"` QuantModel (input `input`, or forward's names for several inputs or
    token ids, which stay int64 and feed a float32 embedding lookup; output `logits`, batch dynamic).

    `representation` (karuku.quant.representation) stores the weights as int8 (u8s8, u8s7) or as uint8 with
    zero point 128 (u8u8, exact where ONNX Runtime's u8 × s8 kernels saturate); it goes into the metadata.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if representation not in REPRESENTATIONS:
        raise KarukuError(f"unknown int8 representation '{representation}'", f"known: {', '.join(REPRESENTATIONS)}")
    rep = REPRESENTATIONS[representation]

    nodes, inits = [], []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{len(nodes)}", **attrs))
        return output

    def act(y: str, kind: str | None) -> str:
        if kind == "relu":
            return node("Relu", [y], f"{y}:relu")
        if kind == "relu6":
            return node("Clip", [y, init(f"{y}:0", np.array(0, np.float32)), init(f"{y}:6", np.array(6, np.float32))],
                        f"{y}:relu6")
        return y

    env: dict[str, str] = {}
    out_name = None
    inputs = sorted((n for n in qm.nodes if n.op == "input"), key=lambda n: n.attrs.get("index", 0))
    several = len(inputs) > 1 or any(n.attrs.get("integer") for n in inputs)
    graph_inputs = []
    for n in inputs:  # one float input is `input`, as every export; several keep forward's names
        env[n.name] = n.name if several else "input"
        graph_inputs.append(helper.make_tensor_value_info(env[n.name], TensorProto.INT64 if n.attrs.get("integer")
                                                          else TensorProto.FLOAT, ["batch", *n.shape]))
    for n in qm.nodes:
        ins = [env[i] for i in n.inputs]
        y = f"v:{n.name}"
        if n.op == "input":
            continue
        if n.attrs.get("integer_form") == "gather":  # the embedding stays float32, as in the dynamic model
            table = qm.floats[key(n.name)].owner.weight.detach().float().numpy()
            env[n.name] = node("Gather", [init(f"{key(n.name)}.table", table), ins[0]], y, axis=0)
            continue
        if n.attrs.get("integer_form") == "quantize":
            env[n.name] = node("Cast", [ins[0]], y, to=TensorProto.FLOAT)
            continue
        if n.op in ("conv", "linear"):
            layer = qm.layers[key(n.name)]
            w, b = layer.weight.detach(), layer.bias.detach()
            k = key(n.name)
            if n.op == "conv":
                node("Conv", [ins[0], init(f"{k}.w", w.numpy()), init(f"{k}.b", b.numpy())], y,
                     strides=n.attrs["stride"], pads=pads4(n.attrs["padding"]), group=n.attrs["groups"])
            elif layer.bits is None:
                node("Gemm", [ins[0], init(f"{k}.w", w.numpy()), init(f"{k}.b", b.numpy())], y, transB=1)
            else:
                s_w = layer.weight_scale(w)
                qmin, qmax = qrange(layer.bits, True, narrow=True)
                w_int = torch.clamp(torch.round(w / s_w[:, None]), qmin, qmax).to(torch.int16)
                if int(w_int.abs().max()) > rep.max_weight:
                    raise KarukuError(f"layer '{k}' has weights up to ±{int(w_int.abs().max())}, more than the "
                                      f"{rep.name} representation holds (±{rep.max_weight})",
                                      "quantize with 7-bit weights (--target-isa avx2) or export as u8s8 / u8u8")
                if rep.weights == "uint8":  # w + 128 with zero point 128: the same integers, u8 × u8 kernels
                    wq, wz = (w_int + 128).to(torch.uint8), np.full(w.shape[0], 128, np.uint8)
                else:
                    wq, wz = w_int.to(torch.int8), np.zeros(w.shape[0], np.int8)
                xq, xs, xz = f"{y}:xq", f"{y}:xs", f"{y}:xz"
                nodes.append(helper.make_node("DynamicQuantizeLinear", [ins[0]], [xq, xs, xz], name=f"dql_{k}"))
                acc = node("MatMulInteger", [xq, init(f"{k}.w_{rep.weights}", wq.t().contiguous().numpy()), xz,
                                             init(f"{k}.w_zero_point", wz)], f"{y}:acc")
                accf = node("Cast", [acc], f"{y}:accf", to=TensorProto.FLOAT)
                scale = node("Mul", [xs, init(f"{k}.w_scale", s_w.numpy().astype(np.float32))], f"{y}:scale")
                node("Add", [node("Mul", [accf, scale], f"{y}:mul"), init(f"{k}.b", b.numpy())], y)
            y = act(y, n.attrs.get("act"))
        elif n.op == "add":
            y = act(node("Add", ins, y), n.attrs.get("act"))
        elif n.op == "maxpool":
            ph, pw = n.attrs["padding"]
            node("MaxPool", ins, y, kernel_shape=n.attrs["kernel"], strides=n.attrs["stride"], pads=[ph, pw, ph, pw])
        elif n.op == "avgpool":
            if n.attrs["global"]:
                node("GlobalAveragePool", ins, y)
            else:
                node("AveragePool", ins, y, kernel_shape=n.attrs["kernel"], strides=n.attrs["stride"])
        elif n.op == "flatten":
            node("Flatten", ins, y, axis=1)
        elif n.op in ("relu", "relu6"):
            y = act(ins[0], n.op)
        else:
            raise KarukuError(f"layer '{n.name}' ({n.attrs.get('kind', n.op)}) has no ONNX form here",
                              "keep the model to supported layers")
        env[n.name] = y
        if n.attrs.get("is_output"):
            out_name = y
    nodes.append(helper.make_node("Identity", [out_name], ["logits"], name="output"))
    out_shape = next(n.shape for n in qm.nodes if n.attrs.get("is_output"))
    graph = helper.make_graph(nodes, "karuku_dynamic_int8", graph_inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", *out_shape])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="karuku")
    model.ir_version = 8
    helper.set_model_props(model, {"karuku.representation": representation,
                                   "karuku.target_isa": target_isa or "unspecified"})
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()
