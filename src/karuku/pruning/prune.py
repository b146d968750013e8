"""`prune(model, PruneConfig(...))`: the one verb. Score → select → apply → (fine-tune), per schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from karuku.data.splits import DataSplits
from karuku.distillation.recovery import finetune as tune_model
from karuku.distillation.recovery import frozen_copy
from karuku.errors import KarukuError
from karuku.progress import Progress
from karuku.pruning.config import PruneConfig
from karuku.pruning.mask import Mask
from karuku.pruning.masked import MaskedTraining, bake
from karuku.pruning.schedules import AGP, iterative_sparsity
from karuku.pruning.unstructured import compute_mask
from karuku.training.evaluate import score
from karuku.training.loop import planned_iterations


@dataclass
class PruneResult:
    """The pruned model (changed in place), its mask (unstructured) and structural edits (structured)."""

    model: nn.Module
    config: PruneConfig
    mask: Mask | None = None
    transforms: list[dict[str, Any]] = field(default_factory=list)  # to append to a checkpoint's transforms
    rounds: list[dict[str, Any]] = field(default_factory=list)  # per round: sparsity, MACs, validation


def _check(cfg: PruneConfig, data: DataSplits | None) -> None:
    if cfg.kind != "oneshot" and cfg.finetune is None:
        raise KarukuError(f"schedule '{cfg.schedule}' fine-tunes between steps but no fine-tuning was given",
                          "add fine-tuning: PruneConfig(finetune=TrainConfig(...)), or --finetune-epochs N")
    if cfg.finetune is not None and data is None:
        raise KarukuError("fine-tuning needs data", "pass data=load_splits(...)")


def _val(model: nn.Module, data: DataSplits | None) -> float | None:
    if data is None or not getattr(data, "labelled", True):
        return None
    split = data.val if data.val is not None else data.test
    return score(model, split).accuracy if split is not None else None


def prune(model: nn.Module, config: PruneConfig | None = None, data: DataSplits | None = None,
          mask: Mask | None = None, input_shape: tuple[int, ...] | None = None, verbose: bool = False,
          inputs=None) -> PruneResult:
    """Prune `model` in place as `config` says and return what was done.

    `config.finetune` fine-tunes on `data` (iterative and agp schedules need it);
    `mask` is an existing mask (from an earlier pruning) that is only ever tightened;
    structured pruning needs what the model takes: `input_shape`, or for a model of several or integer inputs
    `inputs` (example inputs or a `karuku.measure.inputs.Signature`), else `data`'s.
    """
    cfg = config or PruneConfig()
    _check(cfg, data)
    what = inputs if inputs is not None else input_shape
    if cfg.finetune is None or cfg.rounds == 1:
        return _prune(model, cfg, data, mask, what, verbose)
    # several rounds of fine-tuning: one progress over all of them, so the estimate is the whole schedule's
    with Progress(cfg.rounds * planned_iterations(cfg.finetune, data), "prune", enabled=verbose):
        return _prune(model, cfg, data, mask, what, verbose)


def _prune(model, cfg, data, mask, inputs, verbose) -> PruneResult:
    finetune = cfg.finetune
    teacher = frozen_copy(model) if cfg.distill and finetune is not None else None

    def tune(hooks, label):
        tune_model(model, data, finetune, hooks=hooks, teacher=teacher, verbose=verbose, label=label)

    if cfg.structured:
        return _structured(model, cfg, data, finetune, mask,
                           inputs if inputs is not None else (data.model_inputs() if data else None), tune)
    result = PruneResult(model, cfg)
    if mask is not None:
        mask.check(model, "the given mask")
    if cfg.kind == "agp":
        hook = AGP(cfg, mask)
        tune([hook], "prune (agp)")
        mask = hook.mask
        result.rounds.append({"round": 1, "sparsity": mask.sparsity, "val_acc": _val(model, data)})
    else:
        for k in range(1, cfg.rounds + 1):
            mask = compute_mask(model, cfg, current=mask,
                                at=lambda r, k=k: iterative_sparsity(r, k, cfg.rounds))
            mask.apply(model)
            if finetune is not None:
                tune([MaskedTraining(mask)], f"fine-tuning round {k}/{cfg.rounds} ({100 * mask.sparsity:.1f} % sparse)")
            result.rounds.append({"round": k, "sparsity": mask.sparsity, "val_acc": _val(model, data)})
    bake(model, mask)
    result.mask = mask
    return result


def _structured(model, cfg, data, finetune, mask, inputs, tune) -> PruneResult:
    from karuku.pruning.structured import TRANSFORM, prune_channels

    if inputs is None:
        raise KarukuError("structured pruning needs what the model takes", "pass input_shape=, inputs= or data=")
    method = "l1" if cfg.method == "magnitude" else cfg.method
    result = PruneResult(model, cfg)
    step = 1 - (1 - cfg.sparsity) ** (1 / cfg.rounds)  # each round removes the same share of what is left
    for k in range(1, cfg.rounds + 1):
        plan = prune_channels(model, inputs, step, scope=cfg.scope, method=method, target=cfg.target,
                              exclude=cfg.exclude, on_unsupported=cfg.on_unsupported, seed=cfg.seed,
                              round_to=cfg.round_to, allocation=cfg.allocation)
        result.transforms.append({"name": TRANSFORM, "module": "karuku.pruning.structured.rewrite",
                                  "params": {"edits": plan.edits}})
        if mask is not None:  # an earlier unstructured mask: keep its zeros in the shrunk layers
            mask = Mask.from_model(model, [n for n in mask if n in dict(model.named_parameters())])
        if finetune is not None:
            tune([MaskedTraining(mask)] if mask else [],
                 f"fine-tuning round {k}/{cfg.rounds} ({plan.channels_after:,} channels)")
        result.rounds.append({"round": k, "channels": [plan.channels_before, plan.channels_after],
                              "macs": [plan.macs_before, plan.macs_after], "skipped": plan.skipped,
                              "val_acc": _val(model, data)})
    result.mask = mask
    return result
