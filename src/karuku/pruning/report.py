"""What pruning bought: per-layer counts before and after, and a verdict on the whole-model figures.

Unstructured sparsity leaves every dense kernel the same size, so its MACs on a CPU and
its fp32 file do not shrink: `verdict` says so plainly. The packed file of the Deep
Compression codec is where that sparsity becomes bytes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from karuku.measure.counts import layer_counts
from karuku.measure.evaluation import Evaluation


def layer_rows(before: nn.Module, after: nn.Module, inputs) -> list[dict[str, Any]]:
    """One row per layer with parameters: params before/after, nonzeros, sparsity, dense and effective MACs;
    `inputs`: what the model takes (an input shape, or example inputs: token ids and a mask)."""
    old = {r.name: r for r in layer_counts(before, inputs)}
    rows = []
    for r in layer_counts(after, inputs):
        if not r.params:
            continue
        o = old.get(r.name, r)
        rows.append({"layer": r.name, "kind": r.kind, "params_before": o.params, "params": r.params,
                     "nonzeros": r.nonzeros, "sparsity": 1 - r.nonzeros / o.params if o.params else 0.0,
                     "macs_before": o.macs, "macs": r.macs, "effective_macs": r.effective_macs})
    return rows


def verdict(before: Evaluation, after: Evaluation, structured: bool) -> str:
    """One plain sentence on what the pruning buys on this machine."""
    if not structured:
        return ("no speed-up and no smaller fp32 file: unstructured sparsity keeps every layer's dense shape, so "
                "dense kernels do the same work (latency differences above are measurement noise) and effective "
                "MACs only count for sparse kernels; the packed file of the Deep Compression codec is where the "
                "size gain shows")
    speed = ""
    lat_b, lat_a = before.latency, after.latency
    if "onnxruntime" in lat_b and "onnxruntime" in lat_a:
        speed = (f", ONNX Runtime batch-64 throughput ×"
                 f"{lat_a['onnxruntime']['b64_per_s'] / lat_b['onnxruntime']['b64_per_s']:.2f}")
    return (f"structured: the model is physically smaller, {before.macs / max(1, after.macs):.2f}× fewer MACs, "
            f"{before.sizes['fp32'] / max(1, after.sizes['fp32']):.2f}× smaller fp32 file{speed}")
