"""`prune_checkpoint`: the whole job behind `karuku prune` — prune a checkpoint, measure before and after, save."""

from __future__ import annotations

import copy
import os
from typing import Any

from karuku.data.checkpoint import for_checkpoint, recorded_inputs
from karuku.data.config import DataConfig
from karuku.io.atomic import ensure_writable_dir
from karuku.io.checkpoint import load_model
from karuku.measure.config import MeasureConfig
from karuku.measure.evaluation import evaluate
from karuku.pruning.config import PruneConfig
from karuku.pruning.prune import prune
from karuku.pruning.report import layer_rows, verdict
from karuku.pruning.store import load_mask, save_pruned


def prune_checkpoint(path: str | os.PathLike, cfg: PruneConfig, out: str | os.PathLike,
                     data: DataConfig | dict[str, Any] | None = None, *, measure: MeasureConfig | None = None,
                     verbose: bool = True) -> dict[str, Any]:
    """Prune the checkpoint `path` as `cfg` says (an earlier mask only tightens), write `out` and `<out>.mask.json`.

    Data: the checkpoint's own unless `data` is given; needed to fine-tune, optional otherwise (then no accuracy).
    Returns the figures: `before` / `after` (Evaluation dicts), per-`layers` rows, `rounds`, a `verdict`.
    """
    measure = measure or MeasureConfig()
    out = ensure_writable_dir(out)
    model, ckpt = load_model(path)
    mask = load_mask(ckpt, model)
    shape = tuple(ckpt.spec.input_shape)
    splits = for_checkpoint(ckpt, data, required=cfg.finetune is not None)
    # what the model takes: the data's examples (token ids and a mask), else one input of the recorded shape
    inputs = splits.model_inputs() if splits is not None else recorded_inputs(model, shape, path)
    before = copy.deepcopy(model)
    result = prune(model, cfg, splits, mask=mask, inputs=inputs, verbose=verbose)
    model.eval()
    ev = {k: evaluate(net, splits, shape, inputs=inputs, engines=measure.engines, runs=measure.runs)
          for k, net in (("before", before), ("after", model))}
    figures: dict[str, Any] = {k: e.as_dict() for k, e in ev.items()}
    figures["layers"] = layer_rows(before, model, inputs)
    figures["rounds"] = result.rounds
    figures["verdict"] = verdict(ev["before"], ev["after"], cfg.structured)
    meta = {"pruning": {"config": cfg.model_dump(mode="json"), "rounds": result.rounds},
            "metrics": {"test": ev["after"].test_score()} if splits is not None else {}}
    save_pruned(out, model, ckpt.spec, result.mask, result.transforms, meta, base=ckpt)
    if result.mask is not None:
        result.mask.write_summary(out.with_suffix(".mask.json"))
    return figures
