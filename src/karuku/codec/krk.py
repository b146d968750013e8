"""Pack a shared-weight model into a `.krk` file and load it back (docs/FORMAT.md, "Packed model").

`pack_state` codes every float32 weight tensor (2-D and up) whose nonzeros take at most 256
values; biases, buffers and anything else stay dense. `load_packed` rebuilds the model from the
file's ModelSpec through the checkpoint machinery (transforms replayed, strict weight loading),
so its outputs equal the shared-weight model's bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku import __version__
from karuku.codec import container
from karuku.codec.coded import CodedTensor, code_tensor
from karuku.codec.config import PackConfig
from karuku.codec.sizes import SizeReport, coded_size, dense_size
from karuku.errors import KarukuError
from karuku.io.allocation import AllocationBudget, budget_for
from karuku.io.atomic import write_bytes
from karuku.io.checkpoint import Checkpoint
from karuku.io.paths import regular_file
from karuku.models.spec import ModelSpec

KEEP_META = ("transforms", "data", "metrics", "cluster")  # checkpoint metadata worth its bytes


@dataclass
class Packed:
    """A packed model: its bytes, spec, metadata, the coded tensors and the size report."""

    data: bytes
    spec: ModelSpec
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]  # dense form of every tensor
    coded: dict[str, CodedTensor]

    def sizes(self) -> SizeReport:
        layers = [coded_size(n, self.coded[n]) if n in self.coded else dense_size(n, t)
                  for n, t in self.tensors.items()]
        return SizeReport(layers, len(self.data))

    def extra(self) -> dict[str, Any]:
        """Figures for `Evaluation.extra`: real file bytes, the paper's count, the ratio to dense fp32."""
        d = self.sizes().as_dict()
        return {"packed_file_bytes": d["packed_file_bytes"], "packed_paper_bytes": d["paper_huffman_bytes"],
                "packed_ratio": f"{d['ratio_file']}× file, {d['ratio_huffman']}× paper count, vs dense fp32"}

    def build_model(self, source: str = "packed model") -> nn.Module:
        """The model, rebuilt from the spec with the transforms replayed, in eval mode."""
        # the spec comes from the file: cap what building it may allocate by what the file holds
        elements = sum(t.numel() for t in self.tensors.values())
        with AllocationBudget(budget_for(elements), source, "the spec does not match the packed weights; re-pack "
                              "the model"):
            model = Checkpoint(self.spec, self.tensors, self.meta, {}, Path(source)).build_model()
        return model.eval()


def _shareable(name: str, t: torch.Tensor, meta_bits: dict[str, int]) -> bool:
    if name in meta_bits:
        return True
    if t.dtype != torch.float32 or t.dim() < 2 or not name.endswith("weight"):
        return False
    return torch.unique(t[t != 0]).numel() <= 256


def pack_state(state: dict[str, torch.Tensor], spec: ModelSpec, meta: dict[str, Any] | None = None,
               cfg: PackConfig | None = None) -> Packed:
    """Code a state dict (weights already shared) into `.krk` bytes."""
    cfg, meta = cfg or PackConfig(), dict(meta or {})
    meta_bits = (meta.get("cluster") or {}).get("bits", {})
    kept = {k: meta[k] for k in KEEP_META if k in meta}
    tensors: dict[str, torch.Tensor | CodedTensor] = {}
    coded: dict[str, CodedTensor] = {}
    for name, t in sorted(state.items()):  # name order: the same state gives the same bytes
        t = t.detach().cpu()
        if _shareable(name, t, meta_bits):
            coded[name] = code_tensor(name, t.float().numpy(), meta_bits.get(name), cfg.index_bits, cfg.huffman)
            tensors[name] = coded[name]
        else:
            tensors[name] = t
    doc = {"format": "karuku.krk", "karuku_version": __version__, "model": spec.model_dump(mode="json"),
           "meta": kept}
    data = container.write_bytes(doc, tensors)
    # the coded tensors rebuild these exactly (tested), so the originals stand for them
    dense = {n: state[n].detach().cpu() for n in tensors}
    return Packed(data, spec, kept, dense, coded)


def pack_model(model: nn.Module, spec: ModelSpec, out: str | os.PathLike, meta: dict[str, Any] | None = None,
               cfg: PackConfig | None = None) -> Packed:
    """Pack `model` (weights already shared) to the file `out`, atomically."""
    packed = pack_state(model.state_dict(), spec, meta, cfg)
    write_bytes(out, packed.data)
    return packed


def read_packed(path: str | os.PathLike, max_elements: int = container.MAX_ELEMENTS) -> Packed:
    """Read and check a `.krk` file (every kind of damage is one KarukuError)."""
    path = regular_file(path, "packed model")
    if path.stat().st_size > container.MAX_FILE_BYTES:
        raise KarukuError(f"{path} is larger than {container.MAX_FILE_BYTES >> 30} GiB", "not a karuku .krk file")
    return from_bytes(path.read_bytes(), str(path), max_elements)


def from_bytes(data: bytes, source: str = "packed model", max_elements: int = container.MAX_ELEMENTS) -> Packed:
    """Parse `.krk` bytes into a `Packed`."""
    doc, tensors, coded = container.read_bytes(data, source, max_elements)
    try:
        spec = ModelSpec.model_validate(doc.get("model"))
    except Exception as exc:  # pydantic.ValidationError
        raise KarukuError(f"{source}: invalid model spec ({str(exc).splitlines()[0]})", container.CORRUPT) from None
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    return Packed(data, spec, meta, tensors, coded)


def load_packed(path: str | os.PathLike) -> tuple[nn.Module, Packed]:
    """Rebuild the model stored in a `.krk` file, in eval mode."""
    packed = read_packed(path)
    return packed.build_model(str(path)), packed


def is_packed(path: str | os.PathLike) -> bool:
    """True when `path` is a regular file starting with the `.krk` magic (a FIFO or device is never opened)."""
    if not Path(path).is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(len(container.MAGIC)) == container.MAGIC
    except OSError:
        return False
