"""Structured pruning: the shrunk model computes what the channel-zeroed model computes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.io.checkpoint import load_model
from karuku.measure.counts import layer_counts
from karuku.models import ModelSpec, build
from karuku.pruning import PruneConfig, prune, save_pruned
from karuku.pruning.structured import apply_edits, plan_channels, zero_channels


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Fresh BatchNorms are identities; random statistics make the comparison meaningful."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def _check_equal(model: nn.Module, shape, **options):
    plan = plan_channels(model, shape, options.pop("amount", 0.5), **options)
    shrunk = apply_edits(copy.deepcopy(model), plan.edits)
    zeroed = zero_channels(copy.deepcopy(model), plan.edits)
    x = torch.randn(8, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        diff = (shrunk(x) - zeroed(x)).abs().max().item()
        moved = (zeroed(x) - model(x)).abs().max().item()
    assert diff <= 1e-5, diff
    assert moved > 1e-3, "the plan removed nothing that mattered: the test would prove nothing"
    assert sum(p.numel() for p in shrunk.parameters()) < sum(p.numel() for p in model.parameters())
    return plan, shrunk


@pytest.mark.parametrize("name", ["resnet-s", "mobilenetv2-s", "lenet5", "lenet300"])
@pytest.mark.parametrize("scope,method,target", [("layer", "l1", "channels"), ("global", "bn", "macs"),
                                                 ("layer", "group", "channels")])
def test_zoo_shrunk_equals_zeroed(name, scope, method, target):
    torch.manual_seed(0)
    model = _randomise_bn(build(name, (1, 28, 28), 10))
    plan, _ = _check_equal(model, (1, 28, 28), scope=scope, method=method, target=target)
    if target == "macs":
        assert plan.macs_removed >= 0.5 and plan.macs_removed < 0.6


def _widths(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["resnet-s", "mobilenetv2-s"])
@pytest.mark.parametrize("method", ["l1", "group"])
def test_budget_allocation_lands_on_the_mac_target_with_round_to(name, method):
    """One uniform ratio in multiples of 16 overshoots half the MACs by far; the budget lands within 2 points."""
    torch.manual_seed(0)
    model = _randomise_bn(build(name, (1, 28, 28), 10))
    uniform = plan_channels(model, (1, 28, 28), 0.5, method=method, target="macs", round_to=16)
    plan, shrunk = _check_equal(model, (1, 28, 28), method=method, target="macs", round_to=16, allocation="budget")
    assert 0.5 <= plan.macs_removed <= 0.52, plan.macs_removed
    assert plan.macs_removed < uniform.macs_removed
    if name == "resnet-s":
        assert uniform.macs_removed > 0.6  # the coarse steps the budget allocation exists for
    full = _widths(model)
    assert all(w % 16 == 0 or w == f for w, f in zip(_widths(shrunk), full))  # depthwise follow their groups
    assert plan.macs_after == sum(r.macs for r in layer_counts(shrunk, (1, 28, 28)))


def test_budget_allocation_through_prune_and_errors():
    torch.manual_seed(0)
    spec = ModelSpec(name="resnet-s", input_shape=(1, 28, 28), num_classes=10, kwargs={"widths": [16, 32, 64]})
    model = _randomise_bn(spec.build())
    cfg = PruneConfig(structured=True, sparsity=0.4, target="macs", round_to=8, allocation="budget", method="group")
    result = prune(model, cfg, input_shape=(1, 28, 28))
    before, after = result.rounds[0]["macs"]
    assert 0.4 <= 1 - after / before <= 0.42
    with pytest.raises(KarukuError, match="allocation=budget needs target=macs"):
        plan_channels(model, (1, 28, 28), 0.5, allocation="budget")


class Gated(nn.Module):
    """Concatenation, a depthwise conv on it, and an SE-style gate reshaped with .view()."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 6, 1)
        self.bn = nn.BatchNorm2d(14)
        self.dw = nn.Conv2d(14, 14, 3, padding=1, groups=14)
        self.pw = nn.Conv2d(14, 14, 1)
        self.gate = nn.Linear(14, 14)
        self.fc1, self.fc2 = nn.Linear(14 * 4 * 4, 20), nn.Linear(20, 5)

    def forward(self, x):
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
        z = torch.relu(self.dw(y))
        s = torch.sigmoid(self.gate(z.mean((2, 3))))
        z = self.pw(z) * s.view(s.size(0), s.size(1), 1, 1)
        z = torch.flatten(nn.functional.adaptive_avg_pool2d(z, 4), 1)
        return self.fc2(torch.relu(self.fc1(z)))


def test_unsupported_op_is_named_or_left_untouched():
    model = _randomise_bn(Gated())
    with pytest.raises(KarukuError, match=r"cannot rewrite around method \.view\(\) to shape") as info:
        plan_channels(model, (3, 8, 8), 0.5)
    assert "\n" not in str(info.value) and "on_unsupported" in str(info.value)
    with pytest.warns(UserWarning, match="left untouched"):
        plan, shrunk = _check_equal(model, (3, 8, 8), on_unsupported="skip")
    assert plan.skipped
    assert shrunk.pw.out_channels == 14 and shrunk.gate.out_features == 14  # tied to the view: untouched
    assert shrunk.bn.num_features < 14 and shrunk.fc1.out_features < 20  # the rest still shrinks


class Functional(nn.Module):
    """A user's CNN written with functional ops, in the spellings people use (issue 19)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(12, 16, 1)
        self.fc1, self.fc2 = nn.Linear(16 * 4, 24), nn.Linear(24, 10)

    def forward(self, x):
        F = nn.functional
        x = F.max_pool2d(F.relu(self.c1(x)), 2)  # 8x8 -> 4x4
        x = torch.max_pool2d(torch.relu_(self.c2(x)), kernel_size=1)
        x = F.avg_pool2d(F.hardtanh(x.clamp(min=-3.0)), 1)
        x = F.adaptive_avg_pool2d(F.relu6(self.c3(F.dropout2d(x, 0.1, training=self.training))), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x), inplace=True))


def test_functional_forms_prune_like_their_modules():
    plan, shrunk = _check_equal(Functional().eval(), (1, 8, 8), scope="layer", method="l1")
    assert not plan.skipped and shrunk.c2.out_channels < 12 and shrunk.fc1.in_features < 64


class Cumulative(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.cumsum(self.c1(x), dim=1).mean((2, 3)))


def test_an_unsupported_functional_op_is_one_line_naming_the_node():
    with pytest.raises(KarukuError, match=r"cannot rewrite around function cumsum \(node 'cumsum'\)") as info:
        plan_channels(Cumulative(), (1, 8, 8), 0.5)
    assert "\n" not in str(info.value) and "--on-unsupported skip" in str(info.value)


class CatOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 6, 1)
        self.bn = nn.BatchNorm2d(14)
        self.dw = nn.Conv2d(14, 14, 3, padding=1, groups=14, bias=False)
        self.pw = nn.Conv2d(14, 14, 1)
        self.fc1, self.fc2 = nn.Linear(14 * 16, 20), nn.Linear(20, 5)

    def forward(self, x):
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))
        z = self.pw(torch.relu(self.dw(y)) + y)  # the residual ties the depthwise output to the concatenation
        z = nn.functional.max_pool2d(z, 2).view(z.size(0), -1)
        return self.fc2(torch.relu(self.fc1(z)))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_concat_depthwise_residual_flatten_linear(scope):
    model = _randomise_bn(CatOnly())
    plan, shrunk = _check_equal(model, (3, 8, 8), scope=scope, amount=0.4)
    assert shrunk.dw.groups == shrunk.dw.in_channels == shrunk.dw.out_channels == shrunk.bn.num_features
    assert shrunk.a.out_channels + shrunk.b.out_channels == shrunk.bn.num_features < 14
    assert shrunk.pw.in_channels == shrunk.bn.num_features and shrunk.pw.out_channels < 14
    assert shrunk.fc1.in_features == shrunk.pw.out_channels * 16 and shrunk.fc1.out_features < 20
    assert shrunk.fc2.out_features == 5  # the output stays


def test_exclude_and_output_layer_kept():
    model = build("lenet300", (1, 28, 28), 10)
    plan = plan_channels(model, (1, 28, 28), 0.5, exclude=["fc2"])
    assert set(plan.edits) == {"fc1", "fc2"} and set(plan.edits["fc2"]) == {"in"}  # fc2's outputs stay
    assert len(plan.edits["fc1"]["out"]) == 150
    with pytest.raises(KarukuError, match="exclude pattern 'fc9' matches no layer"):
        plan_channels(model, (1, 28, 28), 0.5, exclude=["fc9"])


def test_nothing_prunable_and_grouped_conv_errors():
    with pytest.raises(KarukuError, match="no channels that structured pruning can remove"):
        plan_channels(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), (4,), 0.5)
    grouped = nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.Flatten())
    with pytest.raises(KarukuError, match="grouped convolution '1'"):
        plan_channels(grouped, (4, 8, 8), 0.5)


def test_checkpoint_round_trip_rebuilds_the_shrunk_architecture(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(name="resnet-s", input_shape=(1, 28, 28), num_classes=10, kwargs={"widths": [8, 16, 32]})
    model = _randomise_bn(spec.build())
    result = prune(model, PruneConfig(structured=True, sparsity=0.5, target="macs"), input_shape=(1, 28, 28))
    path = save_pruned(tmp_path / "s.safetensors", model, spec, transforms=result.transforms)
    loaded, ckpt = load_model(path)
    assert ckpt.meta["transforms"][0]["name"] == "prune_channels"
    assert [p.shape for p in loaded.parameters()] == [p.shape for p in model.parameters()]
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    # a second structured round appends a second transform, and still rebuilds
    again = prune(loaded, PruneConfig(structured=True, sparsity=0.3), input_shape=(1, 28, 28))
    path2 = save_pruned(tmp_path / "s2.safetensors", loaded, spec, transforms=again.transforms, base=ckpt)
    twice, ck2 = load_model(path2)
    assert len(ck2.meta["transforms"]) == 2
    with torch.no_grad():
        assert torch.equal(twice(x), loaded.eval()(x))


def test_loading_registers_the_transform_on_demand(tmp_path, monkeypatch):
    """A process that never imported karuku.pruning (e.g. `karuku evaluate`) still rebuilds the model."""
    import sys

    from karuku.io import checkpoint

    model = build("lenet300", (1, 28, 28), 10)
    result = prune(model, PruneConfig(structured=True, sparsity=0.5), input_shape=(1, 28, 28))
    spec = ModelSpec(name="lenet300", input_shape=(1, 28, 28), num_classes=10)
    path = save_pruned(tmp_path / "s.safetensors", model, spec, transforms=result.transforms)
    monkeypatch.delitem(checkpoint.TRANSFORMS, "prune_channels")
    monkeypatch.delitem(sys.modules, "karuku.pruning.structured.rewrite")
    loaded, _ = load_model(path)
    assert loaded.fc1.out_features == 150 and "prune_channels" in checkpoint.TRANSFORMS
