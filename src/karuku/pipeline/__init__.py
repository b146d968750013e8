"""The compression loop: recipes, stages, run folders, budget.

>>> from karuku.pipeline import load_recipe, compress
>>> outcome = compress(load_recipe("recipes/mnist1d-quick.yaml"))

Imported lazily: the technique packages import `karuku.pipeline.stage` to register their stages.
"""

from __future__ import annotations

import importlib

_LAZY = {"Outcome": "karuku.pipeline.loop", "compress": "karuku.pipeline.loop", "Recipe": "karuku.pipeline.recipe",
         "load_recipe": "karuku.pipeline.recipe", "parse_recipe": "karuku.pipeline.recipe"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'karuku.pipeline' has no attribute {name!r}")
