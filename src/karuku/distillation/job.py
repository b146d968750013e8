"""The whole job behind `karuku distill`: teacher checkpoint + student → distilled checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku.data.checkpoint import for_checkpoint
from karuku.data.config import DataConfig
from karuku.distillation.config import DistillConfig
from karuku.distillation.distill import distill
from karuku.errors import KarukuError
from karuku.io.atomic import ensure_writable_dir
from karuku.io.checkpoint import Checkpoint, load_model, save_checkpoint
from karuku.models.registry import resolve_factory
from karuku.models.spec import ModelSpec
from karuku.training import distributed, resume
from karuku.training.evaluate import score


def load_teacher(path: str | os.PathLike) -> tuple[nn.Module, Checkpoint]:
    """A teacher checkpoint, or one line saying why it does not load."""
    try:
        return load_model(path)
    except KarukuError as exc:
        raise KarukuError(f"cannot load the teacher: {exc.message}",
                          exc.hint or "pass a checkpoint written by `karuku train`") from None


def student_from(student: str, spec_for: ModelSpec) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """A zoo name / import path (fresh weights), or a checkpoint to start from; returns extra metadata to keep."""
    looks_like_file = student.endswith(".safetensors") or os.sep in student or Path(student).is_file()
    if not looks_like_file:
        resolve_factory(student)  # one clear line for an unknown name, before any training
        spec = spec_for.model_copy(update={"name": student})
        return spec.build(), spec, {}
    try:
        model, ckpt = load_model(student)
    except KarukuError as exc:
        raise KarukuError(f"cannot load the student: {exc.message}", exc.hint) from None
    if ckpt.sections:
        # plain distillation would move masked or quantized weights off their constraints
        raise KarukuError(f"student {student} carries {', '.join(sorted(ckpt.sections))} tensors that plain "
                          "distillation would not preserve", "recover it with the compression pipeline instead")
    keep = {"transforms": ckpt.meta["transforms"]} if ckpt.meta.get("transforms") else {}
    return model, ckpt.spec, keep


def distill_checkpoint(teacher: str | os.PathLike, cfg: DistillConfig, out: str | os.PathLike,
                       data: DataConfig | dict[str, Any] | None = None, *,
                       verbose: bool = True) -> dict[str, Any] | None:
    """Distil `teacher` (a checkpoint) into `cfg.student` on the teacher's data (or `data`); write the student to `out`.

    Resumes from `<out>.state` after a crash. Returns the checkpoint's metadata (None on
    non-zero ranks of a multi-process run).
    """
    if not cfg.student:
        raise KarukuError("distillation needs a student", "give DistillConfig(student=...) (CLI: --student NAME)")
    out = ensure_writable_dir(out)
    teacher_model, teacher_ckpt = load_teacher(teacher)
    splits = for_checkpoint(teacher_ckpt, data)
    torch.manual_seed(cfg.train.seed)
    net, spec, keep = student_from(cfg.student, ModelSpec(name="_", input_shape=splits.input_shape,
                                                          num_classes=teacher_ckpt.spec.num_classes,
                                                          kwargs=cfg.student_kwargs))
    state = Path(f"{out}.state")
    result = distill(teacher_model, net, splits, cfg, state_path=state, verbose=verbose)
    if not distributed.finish():
        return None
    test, teacher_test = score(net, splits.test), score(teacher_model, splits.test)
    settings = cfg.model_dump(mode="json", exclude={"train"})
    meta = {**keep, "data": splits.config.model_dump(mode="json"), "training": cfg.train.model_dump(mode="json"),
            "distillation": {**settings, "teacher": str(teacher), "teacher_test": teacher_test.as_dict()},
            "result": result.as_dict(), "history": result.history, "metrics": {"test": test.as_dict()}}
    save_checkpoint(out, net, spec, meta)
    resume.discard(state)  # only now: a kill before the student is written resumes from the last epoch's end
    return meta
