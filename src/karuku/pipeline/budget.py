"""The budget: every limit of a recipe judged on the result's Evaluation, and the device profiles it fits.

Quality is judged in the task's terms (`karuku.tasks`): `max_drop` on how much its metric worsened from the
baseline (points for a percentage), `min_fidelity` on the fidelity task's own figure.
"""

from __future__ import annotations

from typing import Any

from karuku.errors import KarukuError
from karuku.measure.evaluation import Evaluation
from karuku.measure.profiles import PROFILES
from karuku.tasks.registry import Metric


def limit_check(limit: str, allowed: float, value: float, unit: str, metric: str | None = None) -> dict[str, Any]:
    """One limit with its measured value: `min_*` limits are floors, every other one a ceiling."""
    ok = value >= allowed - 1e-9 if limit.startswith("min_") else value <= allowed + 1e-9
    return {"limit": limit, **({"metric": metric} if metric is not None else {}), "allowed": allowed,
            "value": round(value, 6), "unit": unit, "ok": ok}


def speedup_check(allowed: float, per_s: float | None, baseline_per_s: float | None, what: str) -> dict[str, Any]:
    """`min_speedup`: the result's throughput over the fp32 baseline's (samples per second, both ONNX files timed
    side by side, `what` says at which batch)."""
    if not per_s or not baseline_per_s:
        raise KarukuError("budget.min_speedup needs the result and the baseline timed side by side",
                          "measure speed (an ONNX file for the result) or drop min_speedup")
    return limit_check("min_speedup", allowed, per_s / baseline_per_s, f"× fp32 throughput ({what})")


def quality_checks(m: Evaluation, baseline: Evaluation, budget, metric: Metric) -> list[dict[str, Any]]:
    """The quality limits with their measured values: the metric's worsening, and the fidelity floor."""
    checks = []
    limit = budget.drop_limit(metric)
    if limit is not None:
        drop = metric.worse_by(baseline.quality, m.quality)
        checks.append(limit_check("max_drop", limit, drop, metric.unit or metric.name, metric.name))
    if budget.min_fidelity is not None:
        checks.append(limit_check("min_fidelity", budget.min_fidelity, m.quality, metric.name, metric.name))
    return checks


def judge(m: Evaluation, baseline: Evaluation, budget, metric: Metric) -> list[dict[str, Any]]:
    """Every budget limit with its measured value, whether it passed, and by how much."""
    checks = quality_checks(m, baseline, budget, metric)
    if budget.max_size_kb is not None:
        checks.append(limit_check("max_size_kb", budget.max_size_kb, round(m.deploy_bytes / 1000, 2), "KB"))
    if budget.max_latency_ms is not None:
        if m.latency_ms is None:
            raise KarukuError("budget.max_latency_ms needs the result timed",
                              "measure speed (an ONNX file or torch) or drop max_latency_ms")
        checks.append(limit_check("max_latency_ms", budget.max_latency_ms, round(m.latency_ms, 4), "ms"))
    if budget.min_speedup is not None:
        checks.append(speedup_check(budget.min_speedup, m.throughput_b64, baseline.throughput_b64, "batch 64"))
    if budget.profile is not None:
        fit = m.fit(budget.profile)
        checks.append({"limit": "profile", "allowed": budget.profile, "value": "; ".join(fit.reasons), "unit": "",
                       "ok": fit.fits, "fit": fit.as_dict()})
    return checks


def profile_fits(m: Evaluation) -> list[dict[str, Any]]:
    """Which device profiles this candidate fits, and why."""
    out = []
    for p in PROFILES.values():
        fit = m.fit(p)
        out.append({"profile": p.name, "description": p.description, **fit.as_dict()})
    return out
