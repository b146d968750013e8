"""Weight sharing (Deep Compression's trained quantization): per layer, k = 2^b centroids by k-means.

The clustering uses scikit-learn's `KMeans` (Lloyd, one run from an explicit initialisation)
rather than an exact 1-D method: the paper's result depends on the *initialisation* (linear
beats density and random), which Lloyd from a given start reproduces, while an optimal 1-D
k-means (dynamic programming) would make the initialisation meaningless and needs code we
would have to keep ourselves; scikit-learn's is well tested and fast enough (LeNet's largest
pruned layer, ~32K weights and 32 centroids, takes a few seconds of Lloyd iterations at most).

Pruned weights (exactly 0) take no part: they keep the index -1 and stay exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from karuku.codec.config import ClusterConfig
from karuku.codec.finetune import CentroidTuning
from karuku.errors import KarukuError


def shareable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Modules whose weight is shared: convolutions and linear layers (any nn.Module model)."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.modules.conv._ConvNd) and m.weight is not None}


def init_centroids(values: np.ndarray, k: int, how: str, seed: int = 0) -> np.ndarray:
    """Starting centroids: linear over [min, max], density (quantiles), or k random weights."""
    if how == "linear":
        return np.linspace(values.min(), values.max(), k)
    if how == "density":
        # the paper's density init: equal steps of the CDF, i.e. quantiles at bin centres
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    if how == "random":
        return np.random.default_rng(seed).choice(values, size=k, replace=values.size < k)
    raise KarukuError(f"unknown centroid initialisation '{how}'", "use linear, density or random")


def kmeans_1d(values: np.ndarray, k: int, how: str = "linear", seed: int = 0,
              max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (float32, k) and each value's cluster (int64) by Lloyd's k-means from `how`."""
    distinct = np.unique(values)
    if distinct.size <= k:
        # already shares at most k values: each is its own centroid, no error at all
        centroids = np.zeros(k, dtype=np.float32)
        centroids[: distinct.size] = distinct
        return centroids, np.searchsorted(distinct, values).astype(np.int64)
    from sklearn.cluster import KMeans

    x = values.astype(np.float64).reshape(-1, 1)
    start = init_centroids(values.astype(np.float64), k, how, seed).reshape(-1, 1)
    km = KMeans(n_clusters=k, init=start, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd",
                random_state=seed).fit(x)
    centroids = km.cluster_centers_.reshape(-1).astype(np.float32)
    labels = km.labels_.astype(np.int64)
    # a centroid may round to 0 in float32 only in degenerate layers; keep survivors nonzero
    centroids[centroids == 0] = np.float32(np.finfo(np.float32).tiny)
    return centroids, labels


@dataclass
class SharedLayer:
    """One layer's codebook and the cluster index of every weight (-1 where pruned)."""

    name: str  # module name, e.g. 'fc1'
    bits: int
    centroids: torch.Tensor  # float32 (2^bits,)
    assign: torch.Tensor  # int64, the weight's shape

    def weight(self) -> torch.Tensor:
        """The shared weight: centroid of each member, exactly 0 where pruned."""
        w = self.centroids[self.assign.clamp(min=0)]
        return torch.where(self.assign >= 0, w, torch.zeros((), dtype=w.dtype))


@dataclass
class WeightSharing:
    """The result of `cluster`: a shared layer per module, applied to the model in place."""

    layers: dict[str, SharedLayer] = field(default_factory=dict)
    config: ClusterConfig | None = None

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Write the shared weights into `model`."""
        modules = dict(model.named_modules())
        for name, layer in self.layers.items():
            modules[name].weight.copy_(layer.weight())

    def bits(self) -> dict[str, int]:
        """Weight bits by parameter name (what checkpoints store under meta['cluster']['bits'])."""
        return {f"{n}.weight": x.bits for n, x in self.layers.items()}

    def meta(self) -> dict:
        """Metadata for a checkpoint (meta['cluster']); packed `.krk` files keep it, so only what describes the
        codebooks: how they were tuned is the checkpoint's `tuning`, not part of every packed file."""
        cfg = self.config.model_dump(mode="json", exclude={"finetune", "distill"}) if self.config else {}
        return {"bits": self.bits(), "config": cfg}

    def hook(self) -> CentroidTuning:
        """A training hook that fine-tunes the centroids (see `CentroidTuning`)."""
        return CentroidTuning(self)


def cluster(model: nn.Module, cfg: ClusterConfig | None = None) -> WeightSharing:
    """Share the weights of every conv and linear layer of `model` in place; return the codebooks.

    Positions of surviving weights are `weight != 0` (pruning leaves exact zeros).
    """
    cfg = cfg or ClusterConfig()
    sharing = WeightSharing(config=cfg)
    layers = shareable_layers(model)
    if not layers:
        raise KarukuError("the model has no convolution or linear layer to share", "pass a model with nn.Linear/Conv")
    for name, module in layers.items():
        w = module.weight.detach().cpu().float()
        alive = w != 0
        if not alive.any():
            raise KarukuError(f"layer {name} has no surviving weights",
                              "every weight of it was pruned, which cuts the network; prune this layer less")
        bits = cfg.bits_for(name)
        centroids, labels = kmeans_1d(w[alive].numpy(), 1 << bits, cfg.init, cfg.seed, cfg.max_iter)
        assign = torch.full(w.shape, -1, dtype=torch.int64)
        assign[alive] = torch.from_numpy(labels)
        sharing.layers[name] = SharedLayer(name, bits, torch.from_numpy(centroids), assign)
    sharing.apply(model)
    return sharing
