"""Pruned checkpoints: the mask in the `mask` section, structural edits in `transforms`.

`meta["pruning"]` records the config and the mask summary; `load_model` on the file
rebuilds the shrunk architecture (the `prune_channels` transform) before loading weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from karuku.io.checkpoint import Checkpoint, save_checkpoint
from karuku.models.spec import ModelSpec
from karuku.pruning.mask import SECTION, Mask


def save_pruned(path: str | os.PathLike, model: nn.Module, spec: ModelSpec, mask: Mask | None = None,
                transforms: list[dict[str, Any]] = (), meta: dict[str, Any] | None = None,
                base: Checkpoint | None = None) -> Path:
    """Write a pruned model; `base` (the checkpoint it came from) contributes its metadata and transforms."""
    # the base's test metrics describe the unpruned model, so they are not carried over
    doc = {k: v for k, v in (base.meta if base else {}).items()
           if k not in ("format", "format_version", "karuku_version", "metrics")}
    doc["transforms"] = list(doc.get("transforms", [])) + list(transforms)
    doc.update(meta or {})
    sections = {k: v for k, v in (base.sections if base else {}).items() if k != SECTION}
    if mask is not None:
        mask.check(model)
        sections[SECTION] = mask.section()
        doc.setdefault("pruning", {})["mask"] = {"sparsity": mask.sparsity, "kept": mask.kept(),
                                                 "total": mask.total()}
    elif base is not None and SECTION in base.sections and transforms:
        sections.pop(SECTION, None)  # the old mask no longer fits the shrunk layers
    return save_checkpoint(path, model, spec, doc, sections)


def load_mask(ckpt: Checkpoint, model: nn.Module) -> Mask | None:
    """The checkpoint's mask, checked against `model` (None when it has none)."""
    tensors = ckpt.sections.get(SECTION)
    if not tensors:
        return None
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}  # files store names sorted
    mask = Mask.from_section(dict(sorted(tensors.items(), key=lambda kv: order.get(kv[0], len(order)))))
    mask.check(model, f"mask in {ckpt.path or 'the checkpoint'}")
    return mask
