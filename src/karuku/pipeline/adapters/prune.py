"""`prune`: karuku.pruning with its own PruneConfig as the stage settings."""

from __future__ import annotations

from karuku.pipeline.stages import StageOutput
from karuku.pruning import MaskedTraining, PruneConfig, load_mask, prune
from karuku.pruning.mask import Mask


class Settings(PruneConfig):
    pass


def apply(model, s: Settings, ctx) -> StageOutput:
    cfg = PruneConfig(**s.model_dump())
    if cfg.finetune is not None or cfg.kind != "oneshot":
        cfg = cfg.model_copy(update={"finetune": ctx.train_config(cfg.finetune)})
    previous = load_mask(ctx.current_ckpt, model) if ctx.current_ckpt is not None else None
    res = prune(model, cfg, data=ctx.splits, mask=previous, input_shape=ctx.input_shape, verbose=ctx.verbose)
    meta = {"rounds": res.rounds, "structured": cfg.structured}
    if res.mask is not None:
        meta["sparsity"] = res.mask.sparsity
    return StageOutput(res.model, transforms=list(res.transforms),
                       sections={"mask": res.mask.section()} if res.mask is not None else {}, meta=meta,
                       hooks=[MaskedTraining(res.mask)] if res.mask is not None else [])


def backoff(s: Settings, attempt: int) -> Settings:
    """Each round keeps 1.5× as many weights (channels) as the last, in every layer.

    Per-layer overrides ease by the same factor: left alone, a recipe that sets every layer's rate
    (Deep Compression's) would retry with the very same masks.
    """
    def ease(rate: float) -> float:
        return round(max(0.0, 1 - (1 - rate) * 1.5), 4)

    return s.model_copy(update={"sparsity": ease(s.sparsity),
                                "overrides": {k: ease(v) for k, v in s.overrides.items()}})


def restore_hooks(model, ckpt) -> list:
    """The saved mask keeps pruned weights at zero; mapped onto a quantized model's layer names when needed."""
    mask = _mask_for(model, ckpt)
    return [MaskedTraining(mask)] if mask is not None else []


def _mask_for(model, ckpt) -> Mask | None:
    tensors = ckpt.sections.get("mask")
    if not tensors:
        return None
    params = dict(model.named_parameters())
    if all(n in params for n in tensors):
        return load_mask(ckpt, model)
    # a QuantModel holds layer `a.b` as `layers.a__b`
    mapped = {f"layers.{n.rsplit('.', 1)[0].replace('.', '__')}.{n.rsplit('.', 1)[1]}": t for n, t in tensors.items()}
    if all(n in params and params[n].shape == t.shape for n, t in mapped.items()):
        return Mask(mapped)
    return None
