"""The distillation loss against a hand computation, its T² scaling, and its two limits (α = 0, α = 1)."""

import math

import pytest
import torch
import torch.nn.functional as F

from karuku.distillation import DistillationLoss, DistillConfig, soft_target_loss
from karuku.errors import KarukuError

S = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
T_ = [[1.5, 1.0, -2.0], [-1.0, 0.5, 2.0]]
Y = [0, 2]


def _softmax(row, t):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def _by_hand(temperature, alpha):
    kl = ce = 0.0
    for s, t, y in zip(S, T_, Y):
        ps, pt = _softmax(s, temperature), _softmax(t, temperature)
        kl += sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt))
        ce += -math.log(_softmax(s, 1.0)[y])
    n = len(Y)
    return alpha * temperature**2 * kl / n + (1 - alpha) * ce / n


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 0.7)])
def test_matches_hand_computation(temperature, alpha):
    f64 = dict(dtype=torch.float64)  # at T = 20 the KL term is small: float32 rounding would dominate
    got = DistillationLoss(temperature, alpha)(torch.tensor(S, **f64), torch.tensor(T_, **f64), torch.tensor(Y))
    assert got.item() == pytest.approx(_by_hand(temperature, alpha), rel=1e-9)


def test_alpha_zero_is_cross_entropy_whatever_the_teacher():
    s, y = torch.tensor(S), torch.tensor(Y)
    loss = DistillationLoss(4.0, 0.0)
    assert torch.allclose(loss(s, torch.tensor(T_), y), F.cross_entropy(s, y))
    assert torch.allclose(loss(s, torch.randn(2, 3) * 10, y), F.cross_entropy(s, y))


def test_alpha_one_is_pure_soft_targets_and_ignores_labels():
    s, t = torch.tensor(S), torch.tensor(T_)
    loss = DistillationLoss(4.0, 1.0)
    assert torch.allclose(loss(s, t, None), soft_target_loss(s, t, 4.0))
    assert torch.allclose(loss(s, t, torch.tensor([1, 1])), loss(s, t, torch.tensor([0, 2])))
    assert loss(t, t, None).item() == pytest.approx(0.0, abs=1e-6)  # a perfect student costs nothing


def test_t_squared_keeps_soft_gradients_constant_at_high_temperature():
    # Hinton et al.: at high T the soft-target gradient per logit is (1/T)(q - p) ≈ (z - v)/(C T²)
    # for zero-mean logits over C classes; multiplying by T² makes it (z - v)/C, independent of T.
    torch.manual_seed(0)
    z, v = torch.randn(4, 10, dtype=torch.float64), torch.randn(4, 10, dtype=torch.float64)
    z, v = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    expected = (z - v) / 10 / len(z)  # batchmean divides by the batch size
    errors = []
    for t in (20.0, 40.0, 80.0):
        s = z.clone().requires_grad_(True)
        soft_target_loss(s, v, t).backward()
        errors.append(float((s.grad - expected).norm() / expected.norm()))
    assert errors[0] < 0.1 and errors[2] < errors[1] < errors[0]  # converges to the T-free limit
    s = z.clone().requires_grad_(True)
    (soft_target_loss(s, v, 80.0) / 80.0**2).backward()  # without T²: 6400× smaller
    assert float(s.grad.norm() / expected.norm()) < 1e-3


@pytest.mark.parametrize("temperature, alpha, needle", [
    (0.0, 0.5, "temperature must be > 0"), (-1.0, 0.5, "temperature must be > 0"),
    (float("nan"), 0.5, "temperature must be > 0"),
    (4.0, -0.1, "alpha must be in [0, 1]"), (4.0, 1.5, "alpha must be in [0, 1]"),
])
def test_bad_temperature_or_alpha_is_one_line(temperature, alpha, needle):
    with pytest.raises(KarukuError) as err:
        DistillationLoss(temperature, alpha)
    assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(KarukuError, match="invalid DistillConfig (temperature|alpha):") as err:
        DistillConfig(temperature=temperature, alpha=alpha)
    assert "\n" not in str(err.value)


def test_shapes_that_differ_are_one_line():
    with pytest.raises(KarukuError, match=r"student outputs \(2, 3\) but teacher outputs \(2, 5\)") as err:
        DistillationLoss()(torch.zeros(2, 3), torch.zeros(2, 5), torch.tensor([0, 1]))
    assert "\n" not in str(err.value)


def test_config_rejects_unknown_and_out_of_range_fields():
    with pytest.raises(KarukuError, match="DistillConfig alpha: Input should be less than or equal to 1"):
        DistillConfig(alpha=1.01)
    with pytest.raises(KarukuError, match="DistillConfig temprature: Extra inputs are not permitted"):
        DistillConfig(temprature=3)
    with pytest.raises(KarukuError, match="DistillConfig train.epochs:"):  # 0 is allowed: the weights as given
        DistillConfig(train={"epochs": -1})
    cfg = DistillConfig(temperature=20, alpha=0.9, hints={"fc2": "fc2"})
    assert DistillConfig.model_validate(cfg.model_dump()) == cfg
