"""Measuring a candidate model the same way at every step, and judging it against the budget."""

from __future__ import annotations

from typing import Any

from torch import nn

from karuku.data.splits import DataSplits
from karuku.measure import counts, energy, memory
from karuku.measure.evaluate import fp32_size, latency
from karuku.measure.profiles import check_fit, get_profile
from karuku.training.evaluate import score


def measure(model: nn.Module, splits: DataSplits, sizes: dict[str, int], integer: bool = False,
            threads: int = 2, runs: int = 20, onnx_bytes: bytes | None = None) -> dict[str, Any]:
    """Accuracy, counts, sizes, batch-1 latency and energy of one candidate (JSON-able)."""
    model.eval()
    s = score(model, splits.test)
    rows = counts.layer_counts(model, splits.input_shape)
    tot = counts.totals(model, splits.input_shape, rows)
    acts = memory.activation_bytes(model, splits.input_shape, bytes_per_value=1 if integer else 4)
    all_sizes = {"fp32": fp32_size(model), **sizes}
    deploy_kind = min(all_sizes, key=all_sizes.get)
    weight_bytes = all_sizes[deploy_kind]
    lat = latency(model, splits.input_shape, threads, engines=("onnxruntime",), runs=runs,
                  onnx_bytes=onnx_bytes or deploy_onnx(model))
    en = energy.estimate(tot.effective_macs, weight_bytes, acts["total"], integer=integer)
    layers = [{"name": r.name, "kind": r.kind, "params": r.params, "nonzeros": r.nonzeros, "macs": r.macs}
              for r in rows if r.params]
    return {
        "accuracy": s.accuracy, "errors": s.errors, "total": s.total,
        "params": tot.params, "nonzeros": tot.nonzeros, "macs": tot.macs, "effective_macs": tot.effective_macs,
        "sizes": all_sizes, "deploy_kind": deploy_kind, "deploy_bytes": weight_bytes,
        "peak_activation_bytes": acts["peak"], "latency_ms": lat["onnxruntime"]["b1_median_ms"],
        "throughput_b64": lat["onnxruntime"]["b64_per_s"], "energy_uj": en.total_uj,
        "energy_assumptions": en.assumptions, "layers": layers,
    }


def deploy_onnx(model: nn.Module) -> bytes | None:
    """The ONNX that would be deployed: int8 QDQ for a statically quantized model, else None (fp32 export)."""
    from karuku.quant import QuantModel, export_qdq

    if isinstance(model, QuantModel) and model.cfg.mode != "dynamic" and not model.float_layers:
        return export_qdq(model)
    return None


def judge(m: dict[str, Any], baseline: dict[str, Any], budget) -> list[dict[str, Any]]:
    """Every budget limit with its measured value, whether it passed, and by how much."""
    drop = 100 * (baseline["accuracy"] - m["accuracy"])
    checks = [{"limit": "max_accuracy_drop", "allowed": budget.max_accuracy_drop, "value": round(drop, 3),
               "unit": "pt", "ok": drop <= budget.max_accuracy_drop + 1e-9}]
    if budget.max_size_kb is not None:
        kb = m["deploy_bytes"] / 1000
        checks.append({"limit": "max_size_kb", "allowed": budget.max_size_kb, "value": round(kb, 2), "unit": "KB",
                       "ok": kb <= budget.max_size_kb})
    if budget.max_latency_ms is not None:
        checks.append({"limit": "max_latency_ms", "allowed": budget.max_latency_ms,
                       "value": round(m["latency_ms"], 4), "unit": "ms",
                       "ok": m["latency_ms"] <= budget.max_latency_ms})
    if budget.profile is not None:
        fit = check_fit(get_profile(budget.profile), m["deploy_bytes"], m["peak_activation_bytes"])
        checks.append({"limit": "profile", "allowed": budget.profile, "value": "; ".join(fit.reasons), "unit": "",
                       "ok": fit.fits})
    return checks


def profile_fits(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Which device profiles this candidate fits, and why."""
    from karuku.measure.profiles import PROFILES

    out = []
    for p in PROFILES.values():
        fit = check_fit(p, m["deploy_bytes"], m["peak_activation_bytes"])
        out.append({"profile": p.name, "description": p.description, "fits": fit.fits, "reasons": list(fit.reasons)})
    return out
