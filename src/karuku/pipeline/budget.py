"""The budget: every limit of a recipe judged on the result's Evaluation, and the device profiles it fits."""

from __future__ import annotations

from typing import Any

from karuku.measure.evaluation import Evaluation
from karuku.measure.profiles import PROFILES


def judge(m: Evaluation, baseline: Evaluation, budget) -> list[dict[str, Any]]:
    """Every budget limit with its measured value, whether it passed, and by how much."""
    drop = 100 * (baseline.accuracy - m.accuracy)
    checks = [{"limit": "max_accuracy_drop", "allowed": budget.max_accuracy_drop, "value": round(drop, 3),
               "unit": "pt", "ok": drop <= budget.max_accuracy_drop + 1e-9}]
    if budget.max_size_kb is not None:
        kb = m.deploy_bytes / 1000
        checks.append({"limit": "max_size_kb", "allowed": budget.max_size_kb, "value": round(kb, 2), "unit": "KB",
                       "ok": kb <= budget.max_size_kb})
    if budget.max_latency_ms is not None:
        checks.append({"limit": "max_latency_ms", "allowed": budget.max_latency_ms,
                       "value": round(m.latency_ms, 4), "unit": "ms", "ok": m.latency_ms <= budget.max_latency_ms})
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
