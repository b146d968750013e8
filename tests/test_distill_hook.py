"""DistillHook on karuku's loop: frozen teacher, cached logits, hint adapters, recovery with a mask hook."""

import copy

import pytest
import torch

from karuku.data import DataConfig, load_splits
from karuku.distillation import DistillConfig, DistillHook, distill, make_hook, recover
from karuku.errors import KarukuError
from karuku.models import build
from karuku.models.mlp import MLP
from karuku.training import Hook, TrainConfig, score, train

QUICK = TrainConfig(epochs=1, lr=0.05, batch_size=32)


@pytest.fixture(scope="module")
def splits():
    return load_splits(DataConfig(name="digits", val_size=200))


@pytest.fixture(scope="module")
def trained_teacher(splits):
    torch.manual_seed(1)
    teacher = MLP((1, 8, 8), 10, (128, 128), dropout=0.2)  # small, with dropout that eval mode must switch off
    train(teacher, splits, TrainConfig(epochs=3, lr=0.05, batch_size=32), verbose=False)
    return teacher


def _student(seed=0, name="lenet300"):
    torch.manual_seed(seed)
    return build(name, (1, 8, 8), 10)


def test_teacher_stays_frozen_and_the_student_learns(splits, trained_teacher):
    teacher = copy.deepcopy(trained_teacher).train()  # handed over in training mode on purpose
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = _student()
    seen_modes = []

    class Spy(Hook):
        def after_step(self, state):
            seen_modes.append(teacher.training)

    distill(teacher, student, splits, DistillConfig(temperature=4, alpha=0.9, train=QUICK), hooks=[Spy()],
            verbose=False)
    assert seen_modes and not any(seen_modes)
    assert not teacher.training and all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert score(student, splits.test).accuracy > 0.85


def test_cached_and_live_teacher_give_the_same_losses(splits, trained_teacher):
    student = _student()
    state = type("S", (), {"config": QUICK})()
    cached = DistillHook(copy.deepcopy(trained_teacher), student, splits.train.tensors[0], 4.0, 0.7, cache=True)
    live = DistillHook(copy.deepcopy(trained_teacher), student, splits.train.tensors[0], 4.0, 0.7, cache=False)
    cached.on_start(state)
    live.on_start(state)
    x_all, y_all = splits.train.tensors
    g = torch.Generator().manual_seed(3)
    for _ in range(3):  # arbitrary examples in arbitrary order, as any rank's slice of a batch would be
        idx = torch.randperm(len(y_all), generator=g)[:37]
        x, y = x_all[idx], y_all[idx]
        out = student(x)
        assert torch.allclose(cached.loss(None, x, y, out), live.loss(None, x, y, out), rtol=1e-6, atol=1e-7)
    assert cached.cache.hits == 3 and cached.cache.misses == 0 and live.cache is None
    shifted = x_all[:8] + 0.01  # not in the training set: served live, still right
    out = student(shifted)
    assert torch.allclose(cached.loss(None, shifted, y_all[:8], out), live.loss(None, shifted, y_all[:8], out))
    assert cached.cache.misses == 1


def test_augmented_data_is_not_cached(trained_teacher):
    jittered = load_splits(DataConfig(name="digits", val_size=200, augment_shift=1))
    hook = make_hook(copy.deepcopy(trained_teacher), _student(), jittered, DistillConfig())
    assert not hook.cache_enabled


def test_hint_adapter_trains_and_pulls_features_together(splits, trained_teacher):
    teacher, student = copy.deepcopy(trained_teacher), _student()
    cfg = DistillConfig(hints={"fc2": "fc2"}, hint_weight=10.0, train=TrainConfig(epochs=2, lr=0.05, batch_size=32))
    hook = make_hook(teacher, student, splits, cfg)
    assert isinstance(hook.adapters[0], torch.nn.Linear) and hook.adapters[0].weight.shape == (128, 100)
    assert not hook.cache_enabled  # the teacher's features are needed live

    def hint_mse():
        x = splits.val.tensors[0]
        with torch.no_grad():
            teacher(x), student.eval()(x)
            return float(torch.nn.functional.mse_loss(hook.adapters[0](hook.student_taps[0].value),
                                                      hook.teacher_taps[0].value))

    adapter_before, mse_before = copy.deepcopy(hook.adapters[0].state_dict()), hint_mse()
    train(student, splits, cfg.train, hooks=[hook], verbose=False)
    assert not torch.equal(adapter_before["weight"], hook.adapters[0].weight)
    assert hint_mse() < 0.2 * mse_before
    hook.close()
    student(splits.val.tensors[0][:2])
    assert hook.student_taps[0].value is None  # taps removed


class ZeroMask(Hook):
    """What a pruning package's mask hook does: no gradient and no value for pruned weights."""

    def __init__(self, model, fraction=0.9):
        w = model.fc1.weight
        self.weight = w
        self.mask = (w.abs() > w.abs().flatten().kthvalue(int(fraction * w.numel())).values).float()
        with torch.no_grad():
            w.mul_(self.mask)

    def after_backward(self, state):
        self.weight.grad.mul_(self.mask)

    def after_step(self, state):
        with torch.no_grad():
            self.weight.mul_(self.mask)  # momentum would otherwise revive pruned weights


def test_recovery_keeps_pruned_weights_at_zero(splits, trained_teacher):
    dense = _student()
    train(dense, splits, QUICK, verbose=False)
    pruned = copy.deepcopy(dense)
    mask_hook = ZeroMask(pruned)
    kept_before = pruned.fc1.weight[mask_hook.mask.bool()].clone()
    result = recover(dense, pruned, splits, QUICK, hooks=[mask_hook], verbose=False)  # as the compression loop calls it
    zeros = pruned.fc1.weight[~mask_hook.mask.bool()]
    assert result.iterations > 0 and torch.count_nonzero(zeros) == 0 and zeros.numel() >= 0.89 * 300 * 64
    assert not torch.equal(kept_before, pruned.fc1.weight[mask_hook.mask.bool()])  # the survivors trained
    assert score(pruned, splits.test).accuracy > 0.8


def test_teacher_and_student_must_differ(splits, trained_teacher):
    with pytest.raises(KarukuError, match="the same model"):
        distill(trained_teacher, trained_teacher, splits, DistillConfig(train=QUICK), verbose=False)


def test_output_shapes_that_differ_fail_before_training(splits, trained_teacher):
    torch.manual_seed(0)
    five = build("lenet300", (1, 8, 8), 5)
    with pytest.raises(KarukuError, match=r"student outputs \(5,\) per example but the teacher \(10,\)") as err:
        distill(copy.deepcopy(trained_teacher), five, splits, DistillConfig(train=QUICK), verbose=False)
    assert "\n" not in str(err.value)


def test_unknown_hint_layer_is_one_line(splits, trained_teacher):
    cfg = DistillConfig(hints={"fc9": "fc2"}, train=QUICK)
    with pytest.raises(KarukuError, match="the student has no layer 'fc9'; did you mean"):
        make_hook(copy.deepcopy(trained_teacher), _student(), splits, cfg)


def test_resume_with_other_settings_is_refused(splits, trained_teacher):
    hook = make_hook(copy.deepcopy(trained_teacher), _student(), splits, DistillConfig(temperature=4))
    other = make_hook(copy.deepcopy(trained_teacher), _student(), splits, DistillConfig(temperature=8))
    with pytest.raises(KarukuError, match="temperature 4, alpha 0.9"):
        other.load_state_dict(hook.state_dict())
