"""Pruning's stage in the compression loop: prune (masks or channels), back off by keeping more, keep the mask."""

from __future__ import annotations

from torch import nn

from karuku.pipeline.stage import Stage, StageOutput, StageRun, register_stage
from karuku.pruning.config import PruneConfig
from karuku.pruning.mask import Mask
from karuku.pruning.masked import MaskedTraining
from karuku.pruning.prune import prune
from karuku.pruning.store import load_mask


@register_stage("prune", PruneConfig)
class PruneStage(Stage):
    """Pruning (masks or channels); back-off keeps more, recovery keeps the mask."""

    def apply(self, model: nn.Module, cfg: PruneConfig, run: StageRun) -> StageOutput:
        if cfg.finetune is not None or cfg.kind != "oneshot":
            cfg = cfg.model_copy(update={"finetune": run.train_config(cfg.finetune)})
        previous = load_mask(run.parent, model)
        res = prune(model, cfg, data=run.splits, mask=previous, verbose=run.verbose)  # structured: on the data's inputs
        meta = {"rounds": res.rounds, "structured": cfg.structured}
        if res.mask is not None:
            meta["sparsity"] = res.mask.sparsity
        return StageOutput(res.model, transforms=list(res.transforms),
                           sections={"mask": res.mask.section()} if res.mask is not None else {}, meta=meta,
                           hooks=[MaskedTraining(res.mask)] if res.mask is not None else [])

    def backoff(self, cfg: PruneConfig, round_: int) -> PruneConfig:
        """Each round keeps 1.5× as many weights (channels) as the last, in every layer.

        Per-layer overrides ease by the same factor: left alone, a recipe that sets every layer's rate
        (Deep Compression's) would retry with the very same masks.
        """
        def ease(rate: float) -> float:
            return round(max(0.0, 1 - (1 - rate) * 1.5), 4)

        return cfg.model_copy(update={"sparsity": ease(cfg.sparsity),
                                      "overrides": {k: ease(v) for k, v in cfg.overrides.items()}})

    def keep_hooks(self, model: nn.Module, ckpt) -> list:
        """The saved mask keeps pruned weights at zero; mapped onto a quantized model's layer names when needed."""
        mask = _mask_for(model, ckpt)
        return [MaskedTraining(mask)] if mask is not None else []


def _mask_for(model: nn.Module, ckpt) -> Mask | None:
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
