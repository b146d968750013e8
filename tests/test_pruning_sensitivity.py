"""Sensitivity sweeps and the per-layer rates they choose."""

from __future__ import annotations

import pytest
import torch

from karuku.errors import KarukuError
from karuku.models import build
from karuku.pruning.sensitivity import Sensitivity, sweep


def test_sweep_restores_the_model_and_drops_grow():
    from karuku.data import DataConfig, load_splits

    splits = load_splits(DataConfig(name="digits", val_size=200))
    torch.manual_seed(0)
    model = build("lenet300", (1, 8, 8), 10)
    from karuku.training import TrainConfig, train

    train(model, splits, TrainConfig(epochs=3, batch_size=64, lr=0.05), verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = sweep(model, splits.val, rates=(0.5, 0.9, 0.99))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(result.accuracy) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    for layer in result.accuracy:
        d = result.drops(layer)
        assert d == sorted(d)
    assert result.drops("fc3.weight")[-1] > result.drops("fc1.weight")[0]  # 99 % of the output layer hurts
    with pytest.raises(KarukuError, match="sweep rates"):
        sweep(model, splits.val, rates=(0.5, 1.0))


def test_choose_rates_meets_the_target_exactly_and_spares_the_sensitive_layer():
    s = Sensitivity(rates=[0.5, 0.9], sizes={"a": 900, "b": 100}, base_accuracy=0.9,
                    accuracy={"a": [0.9, 0.89], "b": [0.8, 0.5]})
    rates = s.choose_rates(0.7)
    assert (rates["a"] * 900 + rates["b"] * 100) / 1000 == pytest.approx(0.7)
    assert rates["a"] > rates["b"]
    with pytest.raises(KarukuError, match="reaches at most 90.0 %"):
        s.choose_rates(0.95)
    with pytest.raises(KarukuError, match="outside"):
        s.choose_rates(1.0)
