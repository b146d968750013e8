"""karuku (軽く, "make it light"): compress trained PyTorch models for edge devices.

Imports stay light: submodules load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "train": "karuku.training",
    "TrainConfig": "karuku.training",
    "evaluate": "karuku.measure",
    "measure": "karuku.measure",
    "DataConfig": "karuku.data",
    "load_splits": "karuku.data",
    "ModelSpec": "karuku.models",
    "build_model": "karuku.models",
    "save_checkpoint": "karuku.io.checkpoint",
    "load_checkpoint": "karuku.io.checkpoint",
    "load_model": "karuku.io.checkpoint",
    "KarukuError": "karuku.errors",
    # one verb and one config per technique; each lives in its own package
    "prune": "karuku.pruning",
    "PruneConfig": "karuku.pruning",
    "quantize": "karuku.quant",
    "QuantConfig": "karuku.quant",
    "distill": "karuku.distillation",
    "DistillConfig": "karuku.distillation",
    "cluster": "karuku.codec",
    "ClusterConfig": "karuku.codec",
}
_ALIASES = {"build_model": "build"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, _ALIASES.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'karuku' has no attribute {name!r}")
