"""The stage registry: each kind of stage is an adapter module with a small, fixed interface.

An adapter module (karuku/pipeline/adapters/<kind>.py) defines
- `Settings`: a pydantic config class (extra keys forbidden) — the stage's YAML settings;
- `apply(model, settings, ctx) -> StageOutput`: compress `model` (already a copy);
- `backoff(settings, attempt) -> Settings | None`: less aggressive settings for back-off round ≥ 1;
- optionally `restore_hooks(model, ckpt) -> list[Hook]`: hooks that keep this stage's compression
  (masks, fake quantization) while later stages fine-tune, rebuilt from a saved checkpoint.
Adapters import their technique lazily, so a recipe naming a technique that is not in this
build fails validation with a clear message instead of at run time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from karuku.errors import KarukuError, closest

ADAPTERS = {
    "finetune": "karuku.pipeline.adapters.finetune",
    "prune": "karuku.pipeline.adapters.prune",
    "quantize": "karuku.pipeline.adapters.quantize",
    "cluster": "karuku.pipeline.adapters.cluster",
    "distill": "karuku.pipeline.adapters.distill",
    "pack": "karuku.pipeline.adapters.pack",
    "export": "karuku.pipeline.adapters.export",
}


@dataclass
class StageOutput:
    """What a stage produced: the model plus everything needed to save, resume and recover it."""

    model: nn.Module
    transforms: list[dict[str, Any]] = field(default_factory=list)  # appended to the checkpoint's
    sections: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # shown in the report (per-layer sparsity, bits...)
    sizes: dict[str, int] = field(default_factory=dict)  # deployable representations, e.g. {"int8": bytes}
    hooks: list = field(default_factory=list)  # keep the compression during recovery fine-tuning
    artifacts: dict[str, str] = field(default_factory=dict)  # files written (ONNX, .krk, C)
    recover: bool = True  # False for stages that change nothing trainable (export, pack)
    spec: Any = None  # a new ModelSpec when the stage replaces the architecture (distillation into a student)


def adapter(kind: str) -> ModuleType:
    if kind not in ADAPTERS:
        known = sorted(ADAPTERS)
        raise KarukuError(f"unknown stage '{kind}'{closest(kind, known)}", f"allowed: {', '.join(known)}")
    try:
        return importlib.import_module(ADAPTERS[kind])
    except ImportError as exc:
        raise KarukuError(f"stage '{kind}' is not available in this build ({exc})") from None


def validate_stage(stage) -> list[str]:
    """Problems with one stage's settings, as ('.key: message') suffixes of its YAML path."""
    try:
        mod = adapter(stage.kind)
    except KarukuError as exc:
        return [f": {exc.message}" + (f" ({exc.hint})" if exc.hint else "")]
    try:
        mod.Settings.model_validate(stage.settings)
    except ValidationError as exc:
        return ["." + ".".join(map(str, e["loc"])) + f": {e['msg'].removeprefix('Value error, ')}"
                if e["loc"] else f": {e['msg']}" for e in exc.errors()]
    except KarukuError as exc:  # configs that report their own one-line errors (e.g. PruneConfig)
        field_ = getattr(exc, "field", "")
        return [f".{field_}: {getattr(exc, 'reason', exc.message)}" if field_ else f": {exc}"]
    return []


def settings_of(stage) -> Any:
    return adapter(stage.kind).Settings.model_validate(stage.settings)


def backoffs(stage, max_rounds: int) -> list[Any]:
    """The stage's settings, then up to `max_rounds` less aggressive ones."""
    mod = adapter(stage.kind)
    out = [mod.Settings.model_validate(stage.settings)]
    for r in range(1, max_rounds + 1):
        nxt = mod.backoff(out[-1], r)
        if nxt is None or nxt == out[-1]:
            break
        out.append(nxt)
    return out


def restore_hooks(model: nn.Module, ckpt) -> list:
    """Hooks every stage applied so far needs to keep its compression during fine-tuning."""
    hooks = []
    for kind in ckpt.meta.get("stages", []):
        try:
            mod = adapter(kind)
        except KarukuError:
            continue
        fn = getattr(mod, "restore_hooks", None)
        if fn is not None:
            hooks += fn(model, ckpt)
    return hooks
