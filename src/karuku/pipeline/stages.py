"""The loop's view of the stage registry: the built-in stages, parsing a recipe's stage settings, back-off
rounds and the hooks that keep earlier stages' compression. Stages live in their techniques' packages."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from torch import nn

from karuku.config import Config
from karuku.errors import KarukuError
from karuku.pipeline.stage import BY_CONFIG, STAGES, Stage
from karuku.registry import Registry

_loaded = False


def stages() -> Registry[Stage]:
    """Every registered stage, the built-in ones included (each registers itself when its module loads)."""
    global _loaded
    if not _loaded:
        _loaded = True
        import karuku.codec.stage  # noqa: F401  (cluster, pack)
        import karuku.deploy.stage  # noqa: F401  (export)
        import karuku.distillation.stage  # noqa: F401  (distill)
        import karuku.pipeline.recovery  # noqa: F401  (finetune)
        import karuku.pruning.stage  # noqa: F401  (prune)
        import karuku.quant.stage  # noqa: F401  (quantize)
    return STAGES


def get_stage(kind: str) -> Stage:
    """The stage a recipe calls `kind`; an unknown kind is one error with the closest known one."""
    return stages().find(kind)


def stage_for(cfg: Config) -> Stage:
    """The stage whose settings `cfg` is, by its type (as torchao dispatches on a config's type)."""
    stages()
    if type(cfg) not in BY_CONFIG:
        raise KarukuError(f"no stage takes {type(cfg).__name__} settings", "register one with @register_stage")
    return BY_CONFIG[type(cfg)]


def parse_settings(kind: str, settings: dict[str, Any]) -> Config:
    """A recipe stage's settings as its technique's config (validated)."""
    return get_stage(kind).config.model_validate(settings)


def backoffs(kind: str, settings: dict[str, Any], max_rounds: int) -> list[Config]:
    """The stage's settings, then up to `max_rounds` less aggressive ones."""
    stage = get_stage(kind)
    out = [parse_settings(kind, settings)]
    for r in range(1, max_rounds + 1):
        nxt = stage.backoff(out[-1], r)
        if nxt is None or nxt == out[-1]:
            break
        out.append(nxt)
    return out


def keep_hooks(model: nn.Module, ckpt) -> list:
    """The training hooks every stage applied so far needs to keep its compression on `model`."""
    hooks = []
    for kind in ckpt.meta.get("stages", []):
        stage = stages().get_or_none(kind)
        if stage is not None:
            hooks += stage.keep_hooks(model, ckpt)
    return hooks


def problems(kind: Any, settings: Any) -> list[tuple[tuple, str]]:
    """Every problem of one recipe stage, as (path below the stage, message): its kind, then its settings."""
    msg = stages().problem(kind) if isinstance(kind, str) else f"a stage name must be text, got {kind!r}"
    if msg is not None:
        return [((), msg)]
    if settings is not None and not isinstance(settings, dict):
        return [((), f"settings must be a mapping, got {type(settings).__name__}")]
    stage = get_stage(kind)
    found: list[tuple[tuple, str]] = []
    try:
        cfg = stage.config.model_validate(settings or {})
    except ValidationError as exc:
        from karuku.config import problems as report

        return [(loc, text) for loc, text in report(exc)]
    for name in stage.needs:
        if getattr(cfg, name) in (None, "", {}, []):
            found.append(((name,), "Field required"))
    return found
