"""The whole job behind `karuku distill`: teacher checkpoint + student → distilled checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku.data.config import DataConfig
from karuku.data.splits import load_splits
from karuku.distillation.api import distill
from karuku.distillation.config import DistillConfig
from karuku.errors import KarukuError
from karuku.io.atomic import ensure_writable_dir
from karuku.io.checkpoint import Checkpoint, load_model, save_checkpoint
from karuku.models.registry import resolve_factory
from karuku.models.spec import ModelSpec
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
        spec = spec_for.model_copy(update={"name": student, "kwargs": {}})
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


def distill_checkpoint(teacher: str | os.PathLike, student: str, data: DataConfig, cfg: DistillConfig,
                       out: str | os.PathLike, verbose: bool = True) -> dict[str, Any] | None:
    """Distil `teacher` (a checkpoint) into `student` on `data`; write the student to `out`.

    Resumes from `<out>.state` after a crash. Returns the checkpoint's metadata (None on
    non-zero ranks of a multi-process run).
    """
    out = ensure_writable_dir(out)
    teacher_model, teacher_ckpt = load_teacher(teacher)
    splits = load_splits(data)
    if tuple(splits.input_shape) != tuple(teacher_ckpt.spec.input_shape):
        raise KarukuError(f"dataset '{data.name}' has inputs {splits.input_shape} but the teacher expects "
                          f"{tuple(teacher_ckpt.spec.input_shape)}", "pass the dataset the teacher was trained on")
    torch.manual_seed(cfg.train.seed)
    net, spec, keep = student_from(student, ModelSpec(name="_", input_shape=splits.input_shape,
                                                      num_classes=splits.num_classes))
    result = distill(teacher_model, net, splits, cfg, state_path=Path(f"{out}.state"), verbose=verbose)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank = torch.distributed.get_rank()
        torch.distributed.destroy_process_group()
        if rank != 0:
            return None
    test, teacher_test = score(net, splits.test), score(teacher_model, splits.test)
    settings = cfg.model_dump(mode="json", exclude={"train"})
    meta = {**keep, "data": data.model_dump(mode="json"), "training": cfg.train.model_dump(mode="json"),
            "distillation": {**settings, "teacher": str(teacher), "teacher_test": teacher_test.as_dict()},
            "result": result.as_dict(), "history": result.history, "metrics": {"test": test.as_dict()}}
    save_checkpoint(out, net, spec, meta)
    return meta
