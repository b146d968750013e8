"""Self-distillation while a technique fine-tunes (`distill: true` on prune and cluster): the model as it was
before the technique teaches its compressed version, so labels that would pull it away are outweighed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from karuku.codec import ClusterConfig
from karuku.data import DataConfig, from_torch, load_splits
from karuku.pruning import PruneConfig, prune
from karuku.training import TrainConfig, train


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    splits = load_splits(DataConfig(name="digits", val_size=100))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    train(model, splits, TrainConfig(epochs=8, lr=0.05, batch_size=32), verbose=False)
    return model, splits


class TenClasses(TensorDataset):
    num_classes = 10


def _agreement(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a(x).argmax(1) == b(x).argmax(1)).float().mean().item()


@pytest.mark.parametrize("distill", [False, True])
def test_pruning_fine_tuned_with_distill_keeps_the_dense_models_answers(trained, distill):
    # every label says class 0: plain fine-tuning learns that, the dense teacher's soft targets outweigh it
    model, splits = trained
    x = splits.train.tensors[0]
    wrong = from_torch(TenClasses(x, torch.zeros(len(x), dtype=torch.long)), TenClasses(*splits.test.tensors),
                       val_size=50)
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    student = copy.deepcopy(model)
    cfg = PruneConfig(sparsity=0.5, distill=distill,
                      finetune=TrainConfig(epochs=4, lr=0.05, batch_size=32, schedule="constant"))
    res = prune(student, cfg, data=wrong)
    agree = _agreement(student, model, splits.test.tensors[0])
    assert res.mask.sparsity == pytest.approx(0.5, abs=0.01)  # the mask held through the teacher's training
    assert all((m.weight != 0).float().mean() <= 0.51 for m in student.modules() if isinstance(m, nn.Linear))
    assert dense[0].weight.count_nonzero() == dense[0].weight.numel()  # the teacher was a copy, left dense
    if distill:
        assert agree > 0.8, agree
    else:
        assert agree < 0.3, agree


def test_distill_without_fine_tuning_is_refused():
    with pytest.raises(ValueError, match="distill"):
        PruneConfig(sparsity=0.5, distill=True)
    with pytest.raises(ValueError, match="distill"):
        ClusterConfig(bits=4, distill=True)
    PruneConfig(sparsity=0.5, schedule="iterative:2", distill=True)  # the loop gives iterative rounds training


def test_pruning_without_labels_fine_tunes_on_the_dense_models_outputs():
    # unlabelled data: the teacher alone is the target (α 1); its outputs, not soft targets, for a model that
    # gives no classes
    torch.manual_seed(1)
    x = torch.randn(256, 12)
    data = from_torch(TensorDataset(x), TensorDataset(torch.randn(64, 12)), val_size=0)
    assert not data.labelled
    dense = nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 8))
    pruned = {}
    for distill in (False, True):
        model = copy.deepcopy(dense)
        ft = TrainConfig(epochs=30, lr=0.05, batch_size=32) if distill else None
        prune(model, PruneConfig(sparsity=0.7, exclude=["2"], distill=distill, finetune=ft), data=data)
        pruned[distill] = model
    t = data.test.tensors[0]
    with torch.no_grad():
        err = {k: (m(t) - dense(t)).pow(2).mean().item() for k, m in pruned.items()}
    assert err[True] < 0.5 * err[False], err  # fine-tuning on the teacher's outputs won back most of the error
