"""Int8 figures for `karuku evaluate`: integer-engine accuracy, int8 size and ONNX Runtime int8 speed."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from karuku.quant.model import QuantModel


def float_view(qm: QuantModel) -> QuantModel:
    """A copy of `qm` that computes in float (BN stays folded): the fp32 model the int8 one is compared with."""
    fp = copy.deepcopy(qm)
    for a in fp.acts.values():
        a.enabled.fill_(False)
        a.dynamic = False
    for layer in fp.layers.values():
        layer.bits = None
    return fp.eval()


def int8_figures(qm: QuantModel, meta: dict[str, Any], splits, threads: int = 2, latency: bool = True,
                 runs: int = 30) -> dict[str, Any]:
    """Rows for Evaluation.extra (keys ending in `bytes` are shown as sizes)."""
    from karuku.training.evaluate import score

    out: dict[str, Any] = {"quantization": f"{qm.cfg.mode}, weights {qm.cfg.bits}-bit per-"
                                           f"{'channel' if qm.cfg.per_channel else 'tensor'}, activations "
                                           f"{qm.cfg.act_dtype if qm.cfg.mode != 'dynamic' else 'dynamic'}"}
    out["int8 weights+biases bytes"] = int(meta.get("int_weight_bytes", 0))
    if splits is not None:
        out["fake-quant test accuracy"] = f"{100 * score(qm, splits.test).accuracy:.2f} %"
    if qm.float_layers:
        out["integer engine"] = "not available (layers kept in float)"
        return out
    if qm.cfg.mode == "dynamic":
        from karuku.quant.onnx_dynamic import export_dynamic

        onnx_bytes = export_dynamic(qm)
        shape = next(n.shape for n in qm.nodes if n.op == "input")
    else:
        from karuku.quant.engine import to_integer
        from karuku.quant.onnx_export import export_qdq

        im = to_integer(qm)
        if splits is not None:
            x, y = splits.test.tensors
            acc = float((im.run(x, fast=True).argmax(1) == y).float().mean())
            out["int8 test accuracy (integer engine)"] = f"{100 * acc:.2f} %"
        onnx_bytes = export_qdq(im)
        shape = im.values[im.input].shape
    out["int8 ONNX bytes"] = len(onnx_bytes)
    if latency:
        from karuku.measure import onnx_runtime
        from karuku.measure.timing import time_call

        sess = onnx_runtime.session(onnx_bytes, threads)
        x1, x64 = np.random.randn(1, *shape).astype(np.float32), np.random.randn(64, *shape).astype(np.float32)
        b1 = time_call(lambda: onnx_runtime.run(sess, x1), runs=runs)
        b64 = time_call(lambda: onnx_runtime.run(sess, x64), runs=max(5, runs // 3))
        out["onnxruntime int8 latency b1"] = f"{b1.median_ms:.3f} ms median, {b1.p90_ms:.3f} p90"
        out["onnxruntime int8 throughput b64"] = f"{b64.throughput(64):,.0f} samples/s"
    return out


def is_quantized(meta: dict[str, Any]) -> bool:
    return bool(meta.get("quant")) and any(t.get("name") == "quantize" for t in meta.get("transforms", []))


def split_for_evaluation(model: torch.nn.Module, meta: dict[str, Any]):
    """(model to measure as fp32, QuantModel or None)."""
    if isinstance(model, QuantModel) and is_quantized(meta):
        return float_view(model), model
    return model, None
