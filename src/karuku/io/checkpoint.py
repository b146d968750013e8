"""Checkpoints: one `.safetensors` file, tensors plus a JSON spec (see docs/FORMAT.md).

Tensors are grouped in sections by a prefix: `model.<state-dict key>` for the weights;
later techniques add their own sections (e.g. `mask.`). The JSON document holds the model
spec, training settings, metrics, and an ordered list of `transforms` (structural edits
such as removed channels) that rebuilding replays before the weights are loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from karuku import __version__
from karuku.errors import KarukuError
from karuku.io import safefile
from karuku.io.allocation import AllocationBudget, budget_for
from karuku.io.paths import regular_file
from karuku.models.spec import ModelSpec
from karuku.registry import Registry

FORMAT = "karuku.checkpoint"
FORMAT_VERSION = 1

# name -> function(model, params) -> model; replayed in order when a checkpoint is rebuilt
TRANSFORMS: Registry[Callable[[nn.Module, dict[str, Any]], nn.Module]] = Registry("checkpoint transform")

# Each transform a checkpoint records names the module that registers it ("module"); files written before
# that was recorded name none for `quantize`, whose module is this (docs/FORMAT.md).
FORMAT1_MODULES = {"quantize": "karuku.quant.store"}


def register_transform(name: str):
    """Register a structural edit `(model, params) -> model` that `Checkpoint.build_model` can replay; the entry
    a technique appends to a checkpoint's `transforms` is {"name": name, "module": its module, "params": ...}."""
    return TRANSFORMS.register(name)


def _transform(step: dict[str, Any], source: str) -> Callable[[nn.Module, dict[str, Any]], nn.Module]:
    """The registered function of a recorded transform, importing its karuku module when it is not loaded yet."""
    name = step.get("name")
    module = str(step.get("module") or FORMAT1_MODULES.get(name, ""))
    if name not in TRANSFORMS and module.startswith("karuku."):  # only karuku's own modules load from a file
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if name not in TRANSFORMS:
        raise KarukuError(f"{source}: unknown transform '{name}'", "it was written by a newer karuku; upgrade")
    return TRANSFORMS[name]


# What code handed values it was not written for raises: from a file, that is damage, reported as such.
_DAMAGE = (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, ArithmeticError,
           RecursionError, MemoryError)


def _first(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model spec, its weights, other tensor sections and metadata."""

    spec: ModelSpec
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    path: Path | None = None

    def build_model(self) -> nn.Module:
        """Rebuild the architecture from the spec, replay the transforms, load the weights.

        A checkpoint read from a file builds within a budget of what the file holds (`io.allocation`), and a
        transform its parameters do not fit (a damaged or hand-edited file) is one KarukuError naming it.
        """
        source = str(self.path or "checkpoint")
        check_trusted(self.spec, source)
        budget = contextlib.nullcontext()
        if self.path is not None:
            elements = sum(t.numel() for t in self.state.values())
            budget = AllocationBudget(budget_for(elements), source, "the spec does not match the stored weights")
        with budget:
            try:
                model = self.spec.build()
            except KarukuError:
                raise
            except _DAMAGE as exc:  # the spec's arguments come from the file
                raise KarukuError(f"{source}: cannot build model '{self.spec.name}' from its spec ({_first(exc)})",
                                  "the file is damaged or was edited; re-create it") from None
            for i, step in enumerate(self.meta.get("transforms", [])):
                fn = _transform(step, source)
                try:
                    model = fn(model, step.get("params", {}))
                except KarukuError:
                    raise
                except _DAMAGE as exc:
                    raise KarukuError(f"{source}: transform {i} ('{step.get('name')}') does not fit the model "
                                      f"({_first(exc)})", "the file is damaged or was edited; re-create it") from None
        load_state(model, self.state, source, self.spec.name)
        return model


_TRUSTED: set[str] = set()  # modules whose factories this process was asked to use directly


def trust_import(name: str) -> None:
    """Trust the module of a `package.module:factory` a user named directly (CLI, recipe, API call)."""
    if ":" in name:
        _TRUSTED.add(name.partition(":")[0])


def check_trusted(spec: ModelSpec, source: str) -> None:
    """A file whose spec names an import path would run that code when loaded: only trusted modules load.

    Trusted: modules named directly in this process (`trust_import`) and those listed in
    $KARUKU_TRUSTED_IMPORTS (comma-separated module prefixes; `*` trusts every module).
    """
    from karuku.models.registry import MODELS

    if spec.name in MODELS or ":" not in spec.name:
        return
    check_trusted_name(spec.name, f"{source} builds its model")


def check_trusted_name(name: str, doing: str) -> None:
    """`package.module:function` read from a file (a model, a data factory, a metric) is imported only when its
    module is trusted; else one error saying how to trust it. `doing`: who imports it ("X reads its data")."""
    module = name.partition(":")[0]
    listed = [p.strip() for p in os.environ.get("KARUKU_TRUSTED_IMPORTS", "").split(",") if p.strip()]
    if "*" in listed or any(module == p or module.startswith(p + ".") for p in [*listed, *_TRUSTED]):
        return
    raise KarukuError(f"{doing} by importing '{name}', which would run that code",
                      f"if you trust it, set KARUKU_TRUSTED_IMPORTS={module}: export it or put it before the "
                      f"command, comma-separated for several modules; run from the folder that holds {module}")


def trust_note(name: str) -> str | None:
    """What a person must know after writing a checkpoint of their own model (`package.module:factory`): later
    commands load it only where that module is trusted. None for zoo models."""
    from karuku.models.registry import MODELS

    if name in MODELS or ":" not in name:
        return None
    module = name.partition(":")[0]
    return (f"this checkpoint builds its model by importing '{module}': later commands load it only with "
            f"KARUKU_TRUSTED_IMPORTS={module} set (e.g. KARUKU_TRUSTED_IMPORTS={module} karuku evaluate CKPT), "
            "run from this folder")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str = "") -> None:
    """load_state_dict(strict) with one clear line when the architecture does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in own if k in state
             and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}" + ("…" if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}" + ("…" if len(unexpected) > 3 else ""))
        if wrong:
            parts.append(f"shape {', '.join(wrong[:3])}" + ("…" if len(wrong) > 3 else ""))
        target = f"model '{arch}'" if arch else "the model"
        raise KarukuError(f"{source} does not fit {target}: {'; '.join(parts)}",
                          "it was saved for another architecture")
    model.load_state_dict(state, strict=True)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, spec: ModelSpec,
                    meta: dict[str, Any] | None = None,
                    sections: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write `model`'s weights, its spec and metadata (atomically)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for section, items in (sections or {}).items():
        if "." in section or section == "model":
            raise ValueError(f"bad section name {section!r}")
        tensors.update({f"{section}.{k}": v for k, v in items.items()})
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "karuku_version": __version__,
           # the threads this process computed with: float sums, and so a result's last digits, depend on them
           "threads": torch.get_num_threads(), "model": spec.model_dump(mode="json"), **(meta or {})}
    return safefile.write(path, tensors, doc)


class _Transform(BaseModel):
    name: str
    module: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class _Document(BaseModel):
    """The keys of a checkpoint's JSON document that karuku itself reads (docs/FORMAT.md); techniques' own
    keys (`quantization`, `cluster`, ...) pass through and are read by their techniques."""

    model_config = ConfigDict(extra="allow")

    format: str
    format_version: int = Field(ge=1, strict=True)
    model: ModelSpec
    transforms: list[_Transform] = Field(default_factory=list)
    data: dict[str, Any] | None = None
    stages: list[str] = Field(default_factory=list)
    sizes: dict[str, int] = Field(default_factory=dict)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`; never unpickles. The document is checked against its
    schema: a wrong type anywhere karuku reads is one KarukuError naming the key."""
    tensors, doc = safefile.read(path)
    if doc.get("format") != FORMAT:
        raise KarukuError(f"{path} is not a karuku checkpoint (format {str(doc.get('format'))[:80]!r})")
    version = doc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise KarukuError(f"{path} has format version {version}, newer than this karuku reads", "upgrade karuku")
    try:
        checked = _Document.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "document"
        raise KarukuError(f"{path}: invalid checkpoint document at '{where[:120]}': {err['msg'][:160]}",
                          "the file is damaged or was edited; re-create it") from None
    spec = checked.model
    sections: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        section, _, key = name.partition(".")
        sections.setdefault(section, {})[key] = t
    state = sections.pop("model", {})
    meta = {k: v for k, v in doc.items() if k not in ("model", "tensors_sha256")}
    return Checkpoint(spec, state, meta, sections, Path(path))


def load_model(path: str | os.PathLike) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model stored in a checkpoint, in eval mode."""
    ckpt = load_checkpoint(path)
    model = ckpt.build_model()
    model.eval()
    return model, ckpt


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A user's weights: a state dict in `.pt`/`.pth` (read with weights_only=True) or `.safetensors`."""
    path = regular_file(path, "weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:
            raise KarukuError(f"{path} is not a readable safetensors file ({exc})") from None
        if any(k.startswith("model.") for k in state) and all("." in k for k in state):
            return load_checkpoint(path).state
        return state
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise KarukuError(f"cannot read {path} as a state dict ({str(exc).splitlines()[0][:200]})",
                          "only plain state dicts load; pickled models are refused on purpose") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise KarukuError(f"{path} does not hold a state dict of tensors")
    return obj
