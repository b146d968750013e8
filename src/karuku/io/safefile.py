"""Safetensors files with one JSON document in the metadata and a checksum over all tensors.

The building block of checkpoints and training state: tensors only, never pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes
from karuku.io.paths import regular_file

META_KEY = "karuku"
MAX_FILE_BYTES = 8 << 30  # refuse to read anything larger (8 GiB) into memory


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def encode(tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> bytes:
    """Serialise tensors and a JSON document (which gains `tensors_sha256`)."""
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    doc = dict(doc, tensors_sha256=tensor_digest(clean))
    return st_save(clean, metadata={META_KEY: json.dumps(doc, sort_keys=True)})


def write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> Path:
    """Write atomically."""
    return write_bytes(path, encode(tensors, doc))


def read(path: str | os.PathLike, what: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and the JSON document; every kind of damage is one KarukuError."""
    path = regular_file(path, what)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise KarukuError(f"{what} {path} is larger than {MAX_FILE_BYTES >> 30} GiB")
    raw = path.read_bytes()
    try:
        tensors = st_load(raw)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, ValueError, OSError) as exc:
        raise KarukuError(f"{path} is not a readable safetensors {what} (truncated or corrupt: {exc})") from None
    if META_KEY not in meta:
        raise KarukuError(f"{path} has no karuku metadata",
                          "it is a plain safetensors file: train from it with karuku train --model NAME --init FILE")
    try:
        doc = json.loads(meta[META_KEY])
    except json.JSONDecodeError:
        raise KarukuError(f"{path}: corrupt karuku metadata (not JSON)") from None
    except RecursionError:
        raise KarukuError(f"{path}: corrupt karuku metadata (nested deeper than JSON readers go)") from None
    if not isinstance(doc, dict):
        raise KarukuError(f"{path}: corrupt karuku metadata (a JSON {type(doc).__name__}, not an object)")
    if doc.get("tensors_sha256") != tensor_digest(tensors):
        raise KarukuError(f"{path} is corrupt: tensor checksum mismatch", "re-create or re-copy the file")
    return tensors, doc
