"""What pruning bought: per-layer counts and whole-model figures before and after.

Unstructured sparsity leaves every dense kernel the same size, so its MACs on a CPU and
its fp32 file do not shrink: `verdict` says so plainly. The packed file of the Deep
Compression codec is where that sparsity becomes bytes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from karuku.measure.counts import layer_counts
from karuku.measure.evaluate import fp32_size, latency


def layer_rows(before: nn.Module, after: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per layer with parameters: params before/after, nonzeros, sparsity, dense and effective MACs."""
    old = {r.name: r for r in layer_counts(before, input_shape)}
    rows = []
    for r in layer_counts(after, input_shape):
        if not r.params:
            continue
        o = old.get(r.name, r)
        rows.append({"layer": r.name, "kind": r.kind, "params_before": o.params, "params": r.params,
                     "nonzeros": r.nonzeros, "sparsity": 1 - r.nonzeros / o.params if o.params else 0.0,
                     "macs_before": o.macs, "macs": r.macs, "effective_macs": r.effective_macs})
    return rows


def summary(model: nn.Module, input_shape: tuple[int, ...], threads: int = 2, runs: int = 20,
            measure_latency: bool = True) -> dict[str, Any]:
    """Whole-model figures: params, nonzeros, dense and effective MACs, fp32 size, latency."""
    rows = layer_counts(model, input_shape)
    out: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "nonzeros": sum(int((p != 0).sum()) for p in model.parameters()),
        "macs": sum(r.macs for r in rows), "effective_macs": sum(r.effective_macs for r in rows),
        "size_fp32_bytes": fp32_size(model)}
    if measure_latency:
        out["latency"] = latency(model, input_shape, threads=threads, runs=runs)
    return out


def verdict(before: dict[str, Any], after: dict[str, Any], structured: bool) -> str:
    """One plain sentence on what the pruning buys on this machine."""
    if not structured:
        return ("no speed-up and no smaller fp32 file: unstructured sparsity keeps every layer's dense shape, so "
                "dense kernels do the same work (latency differences above are measurement noise) and effective "
                "MACs only count for sparse kernels; the packed file of the Deep Compression codec is where the "
                "size gain shows")
    speed = ""
    lat_b, lat_a = before.get("latency", {}), after.get("latency", {})
    if "onnxruntime" in lat_b and "onnxruntime" in lat_a:
        speed = (f", ONNX Runtime batch-64 throughput ×"
                 f"{lat_a['onnxruntime']['b64_per_s'] / lat_b['onnxruntime']['b64_per_s']:.2f}")
    return (f"structured: the model is physically smaller, {before['macs'] / max(1, after['macs']):.2f}× fewer MACs, "
            f"{before['size_fp32_bytes'] / max(1, after['size_fp32_bytes']):.2f}× smaller fp32 file{speed}")
