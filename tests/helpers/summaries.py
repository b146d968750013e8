"""A compression run's summary.json, made without running anything: what the report tests render.

The run it describes is the one a newcomer met (issue 19): every attempt at 100 % test accuracy (the accuracy
axis once ran 96-104 %), a structured prune that removed 73 % of the parameters (the per-layer table once said
"100.0 % kept"), a quantize and an export on one point (their labels once printed over each other), a
back-off beside them, and the rpi4 profile (its storage once showed as 16,384 MiB).
"""

from __future__ import annotations

import copy
from typing import Any

from karuku.measure.energy import estimate
from karuku.measure.evaluation import Evaluation
from karuku.measure.profiles import PROFILES
from karuku.pipeline.budget import judge, profile_fits
from karuku.pipeline.recipe import Budget
from karuku.tasks import TASKS

BASE_LAYERS = [("conv1", "Conv2d", 156), ("conv2", "Conv2d", 2416), ("fc1", "Linear", 30840),
               ("fc2", "Linear", 10164), ("fc3", "Linear", 850)]


def evaluation(accuracy: float, layers: list[tuple[str, str, int, int]], sizes: dict[str, int],
               deploy_kind: str = "fp32", total: int = 10_000) -> Evaluation:
    """An Evaluation with these figures (layers: name, kind, params, nonzeros)."""
    params = sum(p for _, _, p, _ in layers)
    nonzeros = sum(n for _, _, _, n in layers)
    macs = 40 * params
    integer = deploy_kind == "int8"
    en = estimate(macs, sizes[deploy_kind], 20_000, integer=integer)
    ev = Evaluation(params, nonzeros, macs, macs * nonzeros // params, sizes, deploy_kind, integer, 9_408,
                    20_000, en.as_dict(), 2, accuracy=accuracy, errors=round((1 - accuracy) * total), total=total,
                    loss=0.01, layers=[{"name": n, "kind": k, "params": p, "nonzeros": z, "macs": 40 * p,
                                        "effective_macs": 40 * z} for n, k, p, z in layers],
                    latency={"onnxruntime": {"b1_median_ms": 0.05, "b1_p90_ms": 0.06, "b64_per_s": 90_000.0}})
    return ev


def attempt(kind: str, ev: Evaluation, key: str, index: int | None = None, rnd: int = 0,
            base: Evaluation | None = None) -> dict[str, Any]:
    label = "baseline" if index is None else f"stage {index + 1}/3 {kind}" + (f" (back-off {rnd})" if rnd else "")
    drop = 100 * (base.accuracy - ev.accuracy) if base else 0.0
    return {"kind": kind, "checkpoint": f"steps/{key}/model.safetensors", "measure": ev.as_dict(), "key": key,
            "label": label, "index": index, "round": rnd, "settings": {}, "settings_changed": {},
            "before_recovery": None, "recovered": False, "drop": drop, "within_budget": True,
            "stage_meta": {}, "artifacts": {}}


def summary(name: str = "newcomer", max_size_kb: float = 200.0) -> dict[str, Any]:
    """The run above, judged against a budget of `max_size_kb` (the result is 119.4 KB)."""
    full = [(n, k, p, p) for n, k, p in BASE_LAYERS]
    kept = {"conv1": 78, "conv2": 612, "fc1": 7710, "fc2": 2541, "fc3": 850}  # 27 % of the baseline's params
    shrunk = [(n, k, kept[n], kept[n]) for n, k, _ in BASE_LAYERS]
    base = evaluation(1.0, full, {"fp32": 177_704})
    pruned = evaluation(1.0, shrunk, {"fp32": 47_164})
    wider = evaluation(0.9999, [(n, k, int(p * 1.5), int(p * 1.5)) for n, k, p, _ in shrunk], {"fp32": 70_746})
    quant = evaluation(1.0, shrunk, {"fp32": 47_164, "int8": 11_944}, "int8")
    attempts = [attempt("baseline", base, "b0"), attempt("prune", wider, "p0", 0, 0, base),
                attempt("prune", pruned, "p1", 0, 1, base), attempt("quantize", quant, "q0", 1, 0, base),
                attempt("export", copy.deepcopy(quant), "e0", 2, 0, base)]
    budget = Budget(max_drop=0.5, max_size_kb=max_size_kb, profile="rpi4")
    checks = judge(quant, base, budget, TASKS["classification"].metric())
    assert "rpi4" in PROFILES
    return {"recipe": {"name": name, "model": {"name": "mymodels:factory"}, "data": {"name": "digits"}},
            "baseline": attempts[0], "final": attempts[-1], "attempts": attempts, "checks": checks,
            "ok": all(c["ok"] for c in checks), "profiles": profile_fits(quant), "side_by_side": True,
            "cpu": {"summary": "a test CPU"}}
