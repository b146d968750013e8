"""Pruning that really shrinks: masks, masked training, unstructured and structured pruning.

>>> from karuku.pruning import prune, PruneConfig
>>> result = prune(model, PruneConfig(sparsity=0.9, scope="global", finetune=TrainConfig(epochs=3)), data=splits)
>>> result.mask.sparsity
"""

from karuku.pruning.config import PruneConfig
from karuku.pruning.mask import Mask
from karuku.pruning.masked import MaskedTraining, bake
from karuku.pruning.prune import PruneResult, prune
from karuku.pruning.schedules import AGP, agp_sparsity, iterative_sparsity
from karuku.pruning.scores import SCORES, get_score, register_score
from karuku.pruning.store import load_mask, save_pruned
from karuku.pruning.unstructured import compute_mask

__all__ = ["AGP", "SCORES", "Mask", "MaskedTraining", "PruneConfig", "PruneResult", "agp_sparsity", "bake",
           "compute_mask", "get_score", "iterative_sparsity", "load_mask", "prune", "register_score",
           "save_pruned"]
