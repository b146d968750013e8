"""Weight sharing: k-means invariants, initialisations, centroid fine-tuning keeps every weight in its cluster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from karuku.codec import ClusterConfig, cluster
from karuku.codec.sharing import init_centroids, kmeans_1d
from karuku.data import DataConfig, load_splits
from karuku.errors import KarukuError
from karuku.models.spec import ModelSpec
from karuku.training import TrainConfig, train


def _pruned_mlp(keep: float = 0.3) -> nn.Module:
    torch.manual_seed(0)
    model = ModelSpec(name="lenet300", input_shape=(1, 8, 8), num_classes=10).build()
    with torch.no_grad():
        for m in (model.fc1, model.fc2, model.fc3):
            cut = m.weight.abs().flatten().kthvalue(int((1 - keep) * m.weight.numel())).values
            m.weight[m.weight.abs() <= cut] = 0
    return model


@pytest.mark.parametrize("bits", [0, 9])
def test_bits_outside_1_to_8_are_refused(bits):
    with pytest.raises(KarukuError, match="invalid ClusterConfig bits"):
        ClusterConfig(bits=bits)
    with pytest.raises(KarukuError, match="1..8"):
        ClusterConfig(layer_bits={"conv*": bits})


def test_unknown_config_keys_are_refused():
    with pytest.raises(KarukuError, match="bitz: Extra inputs are not permitted"):
        ClusterConfig(bitz=4)


def test_layer_bits_by_pattern_first_match_wins():
    cfg = ClusterConfig(bits=5, layer_bits={"conv1": 3, "conv*": 8})
    assert (cfg.bits_for("conv1"), cfg.bits_for("conv2"), cfg.bits_for("fc1")) == (3, 8, 5)


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_sharing_invariants(init):
    model = _pruned_mlp()
    zeros = {n: (p == 0).clone() for n, p in model.named_parameters() if n.endswith("weight")}
    sharing = cluster(model, ClusterConfig(bits=3, layer_bits={"fc3": 2}, init=init))
    for name, layer in sharing.layers.items():
        w = getattr(model, name).weight
        assert torch.equal(w == 0, zeros[f"{name}.weight"])  # pruned stay zero, survivors stay nonzero
        assert torch.unique(w[w != 0]).numel() <= 1 << layer.bits
        assert torch.equal(w, layer.weight())
        assert torch.equal(layer.assign < 0, zeros[f"{name}.weight"])
    assert sharing.bits() == {"fc1.weight": 3, "fc2.weight": 3, "fc3.weight": 2}


def test_lloyd_never_worse_than_its_start_and_linear_init_spans_the_range():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(3000).astype(np.float32)
    start = init_centroids(v.astype(np.float64), 8, "linear")
    assert start[0] == v.min() and start[-1] == v.max()
    c, labels = kmeans_1d(v, 8, "linear")
    before = ((v[:, None] - start[None, :]) ** 2).min(1).sum()
    after = ((v - c[labels]) ** 2).sum()
    assert after <= before
    # each value sits with its nearest centroid
    assert np.array_equal(np.abs(v[:, None] - c[None, :]).argmin(1), labels)


def test_few_distinct_values_are_kept_exactly():
    v = np.array([0.5, -1.0, 0.5, 2.0], dtype=np.float32)
    c, labels = kmeans_1d(v, 4)
    assert np.array_equal(c[labels], v)


def test_centroid_fine_tuning_keeps_clusters_and_sums_member_gradients():
    splits = load_splits(DataConfig(name="digits", val_size=200))
    model = _pruned_mlp()
    sharing = cluster(model, ClusterConfig(bits=2))
    hook = sharing.hook()
    start = {n: c.detach().clone() for n, c in hook.centroids.items()}

    # the centroid gradient is the sum of its members' weight gradients
    x, y = splits.train.tensors
    model.zero_grad()
    nn.functional.cross_entropy(model(x[:64]), y[:64]).backward()
    expected = {n: torch.stack([model.get_submodule(n).weight.grad[layer.assign == k].sum()
                                for k in range(4)]) for n, layer in sharing.layers.items()}

    class _State:
        pass

    state = _State()
    state.model = model
    hook.after_backward(state)
    for n in sharing.layers:
        assert torch.allclose(hook.centroids[n].grad, expected[n], atol=1e-6)
        assert model.get_submodule(n).weight.grad is None

    train(model, splits, TrainConfig(epochs=1, lr=0.01, batch_size=64), hooks=[hook], verbose=False)
    moved = False
    for name, layer in sharing.layers.items():
        w = model.get_submodule(name).weight
        c = hook.centroids[name].detach()
        assert torch.equal(w, torch.where(layer.assign >= 0, c[layer.assign.clamp(min=0)], 0.0))
        moved |= not torch.equal(c, start[name])
    assert moved


def test_cluster_of_a_model_without_layers_is_refused():
    from karuku.errors import KarukuError

    with pytest.raises(KarukuError, match="no convolution or linear layer"):
        cluster(nn.Sequential(nn.ReLU()), ClusterConfig())
