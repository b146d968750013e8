"""The compression loop: recipes, stages, run folders, budget.

>>> from karuku.pipeline import load_recipe, compress
>>> outcome = compress(load_recipe("recipes/mnist1d-quick.yaml"))
"""

from karuku.pipeline.loop import Outcome, compress
from karuku.pipeline.recipe import Recipe, load_recipe, parse_recipe

__all__ = ["Outcome", "Recipe", "compress", "load_recipe", "parse_recipe"]
