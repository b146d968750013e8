"""The Mask value object, masked training, bake and the schedules."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from karuku.data import DataConfig, load_splits
from karuku.errors import KarukuError
from karuku.io.checkpoint import load_checkpoint, load_model
from karuku.models import ModelSpec, build
from karuku.pruning import (
    AGP,
    Mask,
    MaskedTraining,
    PruneConfig,
    agp_sparsity,
    bake,
    compute_mask,
    iterative_sparsity,
    load_mask,
    prune,
    save_pruned,
)
from karuku.training import Hook, TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    return load_splits(DataConfig(name="digits", val_size=200))


def _mlp():
    torch.manual_seed(0)
    return build("lenet300", (1, 8, 8), 10)


def test_mask_sparsity_summary_and_checks(tmp_path):
    m = Mask({"a.weight": torch.tensor([[1, 0], [0, 0]]), "b.weight": torch.ones(4)})
    assert m.sparsity == pytest.approx(3 / 8)
    assert m.layer_sparsity() == {"a.weight": 0.75, "b.weight": 0.0}
    path = m.write_summary(tmp_path / "mask.json")
    doc = json.loads(path.read_text())
    assert doc["kept"] == 5 and doc["layers"]["a.weight"]["kept"] == 1
    with pytest.raises(KarukuError, match="values other than 0 and 1"):
        Mask({"a": torch.tensor([0.5])})
    with pytest.raises(KarukuError, match="does not fit the model: no parameter a.weight"):
        m.check(nn.Linear(2, 2))
    with pytest.raises(KarukuError, match="shape"):
        Mask({"weight": torch.ones(3, 3)}).check(nn.Linear(2, 2))


def test_and_only_shrinks():
    a = Mask({"w": torch.tensor([1, 1, 0, 0])})
    b = Mask({"w": torch.tensor([1, 0, 1, 0])})
    assert (a & b)["w"].tolist() == [True, False, False, False]


def test_mask_round_trip_in_checkpoint(tmp_path, digits):
    model = _mlp()
    result = prune(model, PruneConfig(sparsity=0.8))
    spec = ModelSpec(name="lenet300", input_shape=(1, 8, 8), num_classes=10)
    path = save_pruned(tmp_path / "p.safetensors", model, spec, result.mask)
    loaded, ckpt = load_model(path)
    assert load_mask(ckpt, loaded) == result.mask
    assert ckpt.meta["pruning"]["mask"]["sparsity"] == pytest.approx(result.mask.sparsity)
    # a mask that does not fit the model is one clear error
    other = build("lenet300", (1, 28, 28), 10)
    with pytest.raises(KarukuError, match=r"mask in .*p\.safetensors does not fit the model: shape fc1\.weight"):
        load_mask(load_checkpoint(path), other)


@pytest.mark.parametrize("optimizer,wd", [("sgd", 0.01), ("adam", 0.0), ("adamw", 0.1)])
def test_masked_training_keeps_zeros_and_state(optimizer, wd, digits):
    model = _mlp()
    mask = compute_mask(model, PruneConfig(sparsity=0.7, scope="global"))
    hook = MaskedTraining(mask)
    seen = {}

    class Grab(Hook):
        def on_start(self, state):
            seen["opt"] = state.optimizer

    train(model, digits, TrainConfig(epochs=1, lr=0.01, optimizer=optimizer, weight_decay=wd, batch_size=256),
          hooks=[hook, Grab()], verbose=False)
    params = dict(model.named_parameters())
    for n, keep in mask.items():
        assert torch.equal(params[n][~keep], torch.zeros_like(params[n][~keep])), n
        assert params[n][keep].abs().sum() > 0
    # the optimiser's state for pruned weights is zero, so a plain step cannot revive them
    for n, keep in mask.items():
        buffers = [b for b in seen["opt"].state[params[n]].values() if isinstance(b, torch.Tensor) and b.dim()]
        assert buffers and all(torch.equal(b[~keep], torch.zeros_like(b[~keep])) for b in buffers)
        assert any(b[keep].abs().sum() > 0 for b in buffers)
    with torch.no_grad():
        seen["opt"].step()  # gradients were zeroed for pruned weights; weight decay sees zeros
    assert all(torch.equal(params[n][~keep], torch.zeros_like(params[n][~keep])) for n, keep in mask.items())


def test_without_the_hook_momentum_revives_weights(digits):
    """The control: zeroing once is not enough, which is why the hook exists."""
    model = _mlp()
    mask = compute_mask(model, PruneConfig(sparsity=0.7))
    mask.apply(model)
    train(model, digits, TrainConfig(epochs=1, lr=0.01, batch_size=256), verbose=False)
    assert Mask.from_model(model, mask.names()).sparsity < 0.1  # only weights of always-blank pixels stay 0


def test_bake_folds_torch_prune():
    lin = nn.Linear(4, 3)
    torch.nn.utils.prune.l1_unstructured(lin, "weight", amount=0.5)
    bake(lin)
    assert "weight_orig" not in dict(lin.named_parameters()) and not list(lin.buffers())
    assert int((lin.weight == 0).sum()) == 6


def test_iterative_never_revives_and_reaches_target(digits):
    model = _mlp()
    cfg = PruneConfig(sparsity=0.9, schedule="iterative:3", scope="global",
                      finetune=TrainConfig(epochs=1, batch_size=256, lr=0.05))
    result = prune(model, cfg, digits)
    sp = [r["sparsity"] for r in result.rounds]
    assert sp == sorted(sp) and sp[-1] == pytest.approx(0.9, abs=1e-6)
    assert sp[0] == pytest.approx(iterative_sparsity(0.9, 1, 3), abs=1e-4)
    assert Mask.from_model(model, result.mask.names()).sparsity >= 0.9 - 1e-9


def test_agp_formula_and_hook(digits):
    assert agp_sparsity(0.8, 0, 100) == 0
    assert agp_sparsity(0.8, 50, 100) == pytest.approx(0.8 + (0 - 0.8) * 0.5**3)
    assert agp_sparsity(0.8, 100, 100) == pytest.approx(0.8) == agp_sparsity(0.8, 500, 100)
    model = _mlp()
    cfg = PruneConfig(sparsity=0.8, schedule="agp:2", agp_end=0.5)
    seen = []

    class Watch(AGP):
        def after_step(self, state):
            super().after_step(state)
            seen.append(self.mask.sparsity)

    hook = Watch(cfg)
    train(model, digits, TrainConfig(epochs=2, batch_size=128), hooks=[hook], verbose=False)
    assert seen == sorted(seen), "sparsity must never fall"
    assert seen[-1] == pytest.approx(0.8, abs=1e-3)
    end = hook.end
    assert seen[end // 2 - 1] == pytest.approx(agp_sparsity(0.8, (end // 2) - (end // 2) % 2, end), abs=0.01)


@pytest.mark.parametrize("kwargs,msg", [
    ({"sparsity": 1.0}, "sparsity"), ({"sparsity": -0.1}, "sparsity"), ({"schedule": "weekly"}, "schedule"),
    ({"overrides": {"fc1": 1.5}}, "outside"), ({"target": "macs"}, "structured"),
    ({"structured": True, "schedule": "agp"}, "agp"), ({"bogus": 1}, "bogus"),
    ({"structured": True, "allocation": "budget"}, "target=macs"), ({"allocation": "greedy"}, "allocation"),
])
def test_bad_configs(kwargs, msg):
    with pytest.raises(KarukuError, match=msg) as info:
        PruneConfig(**kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith("invalid PruneConfig ")


def test_bad_inputs_are_one_line_errors(digits):
    cases = [
        (lambda: prune(_mlp(), PruneConfig(overrides={"conv9": 0.5})), "override pattern 'conv9' matches no layer"),
        (lambda: prune(_mlp(), PruneConfig(exclude=["nope*"])), "exclude pattern 'nope\\*' matches no layer"),
        (lambda: prune(nn.Sequential(nn.ReLU()), PruneConfig()), "nothing to prune"),
        (lambda: prune(_mlp(), PruneConfig(method="biggest")), "unknown pruning method 'biggest'"),
        (lambda: prune(_mlp(), PruneConfig(schedule="iterative:2")), "fine-tunes between steps"),
        (lambda: prune(_mlp(), PruneConfig(exclude=["fc*"])), "every prunable layer is excluded"),
    ]
    for fn, msg in cases:
        with pytest.raises(KarukuError, match=msg) as info:
            fn()
        assert "\n" not in str(info.value)
