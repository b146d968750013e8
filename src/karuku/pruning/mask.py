"""Mask: a checked set of 0/1 tensors, one per pruned parameter, with its report and storage.

Stored in a checkpoint's `mask` section (`mask.<parameter name>`, bool tensors). Combining
masks only ever removes weights (`&`), so iterative pruning never revives a pruned weight.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.io.atomic import write_text

SECTION = "mask"


class Mask:
    """Parameter name → bool tensor (True = kept)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self._t: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            if t.dtype != torch.bool:
                if not bool(((t == 0) | (t == 1)).all()):
                    raise KarukuError(f"mask '{name}' holds values other than 0 and 1", "a mask is 0/1 per weight")
                t = t != 0
            self._t[name] = t.detach().to("cpu", torch.bool).clone()

    @classmethod
    def ones(cls, model: nn.Module, names: list[str]) -> Mask:
        """Everything kept, for the named parameters of `model`."""
        params = dict(model.named_parameters())
        return cls({n: torch.ones_like(params[n], dtype=torch.bool) for n in names})

    @classmethod
    def from_model(cls, model: nn.Module, names: list[str]) -> Mask:
        """The mask already present in the weights: zeros are pruned."""
        params = dict(model.named_parameters())
        return cls({n: params[n].detach() != 0 for n in names})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._t[name]

    def __contains__(self, name: str) -> bool:
        return name in self._t

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)

    def items(self):
        return self._t.items()

    def names(self) -> list[str]:
        return list(self._t)

    def __and__(self, other: Mask) -> Mask:
        """Kept only where both keep (names of either; a name in one only keeps its own)."""
        out = dict(self._t)
        for n, t in other.items():
            out[n] = out[n] & t if n in out else t
        return Mask(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask) and sorted(self.names()) == sorted(other.names()) and all(
            torch.equal(self[n], other[n]) for n in self)

    def kept(self, name: str | None = None) -> int:
        """Weights kept, in one parameter or in all."""
        ts = [self._t[name]] if name else self._t.values()
        return sum(int(t.sum()) for t in ts)

    def total(self, name: str | None = None) -> int:
        ts = [self._t[name]] if name else self._t.values()
        return sum(t.numel() for t in ts)

    @property
    def sparsity(self) -> float:
        """Fraction pruned over all masked parameters."""
        total = self.total()
        return 1 - self.kept() / total if total else 0.0

    def layer_sparsity(self) -> dict[str, float]:
        return {n: 1 - self.kept(n) / max(1, t.numel()) for n, t in self._t.items()}

    def check(self, model: nn.Module, source: str = "mask") -> None:
        """One clear error when the mask does not fit `model` (missing parameter or other shape)."""
        params = dict(model.named_parameters())
        missing = [n for n in self._t if n not in params]
        if missing:
            raise KarukuError(f"{source} does not fit the model: no parameter {', '.join(missing[:3])}",
                              "the mask was made for another architecture")
        wrong = [f"{n} {tuple(t.shape)}≠{tuple(params[n].shape)}" for n, t in self._t.items()
                 if t.shape != params[n].shape]
        if wrong:
            raise KarukuError(f"{source} does not fit the model: shape {', '.join(wrong[:3])}",
                              "the mask was made for another architecture")

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the pruned weights of `model` in place."""
        params = dict(model.named_parameters())
        for n, t in self._t.items():
            params[n].mul_(t.to(params[n].dtype))

    def section(self) -> dict[str, torch.Tensor]:
        """Tensors for a checkpoint's `mask` section."""
        return {n: t.contiguous() for n, t in self._t.items()}

    @classmethod
    def from_section(cls, tensors: dict[str, torch.Tensor]) -> Mask:
        return cls(tensors)

    def summary(self) -> dict[str, Any]:
        """A small JSON-friendly report: totals and per-parameter kept / total / sparsity."""
        return {"sparsity": round(self.sparsity, 6), "kept": self.kept(), "total": self.total(),
                "layers": {n: {"kept": self.kept(n), "total": t.numel(), "sparsity": round(1 - self.kept(n) / max(
                    1, t.numel()), 6)} for n, t in self._t.items()}}

    def write_summary(self, path: str | os.PathLike) -> Path:
        """Write `summary()` as JSON (atomically)."""
        return write_text(path, json.dumps(self.summary(), indent=2) + "\n")

    def __repr__(self) -> str:
        return f"Mask({len(self)} parameters, {100 * self.sparsity:.1f} % sparse)"
