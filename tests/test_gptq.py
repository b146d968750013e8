"""GPTQ rounding (karuku.quant.gptq): nearest rounding where inputs are uncorrelated, a lower layer output error
than nearest rounding where they are, on the caller's grid."""

from __future__ import annotations

import pytest
import torch

from karuku.errors import KarukuError
from karuku.quant.gptq import gptq_round


def _grid(w: torch.Tensor, qmax: int) -> torch.Tensor:
    return w.abs().amax(1) / qmax


def _output_error(x: torch.Tensor, w: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> float:
    return float(((x @ w.T - x @ (q * scale[:, None]).T) ** 2).sum())


def test_uncorrelated_inputs_give_nearest_rounding_exactly():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 20, generator=g)
    scale = _grid(w, 63)
    h = torch.diag(torch.rand(20, generator=g) + 0.1)  # a diagonal Σ xᵀx: no input predicts another
    nearest = torch.clamp(torch.round(w / scale[:, None]), -63, 63)
    assert torch.equal(gptq_round(w, scale, 63, h), nearest)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("qmax", [7, 63, 127])
def test_correlated_inputs_lose_less_output_than_nearest_rounding(seed, qmax):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(24, 24, generator=g)  # inputs correlated through a random mixing, as activations are
    x = torch.randn(500, 24, generator=g) @ mix
    w = torch.randn(16, 24, generator=g)
    scale = _grid(w, qmax)
    q = gptq_round(w, scale, qmax, x.double().T @ x.double())
    nearest = torch.clamp(torch.round(w / scale[:, None]), -qmax, qmax)
    assert torch.equal(q, torch.round(q)) and q.abs().max() <= qmax  # integers on the given grid
    assert _output_error(x, w, q, scale) < 0.8 * _output_error(x, w, nearest, scale)
    assert not torch.equal(q, nearest)


def test_an_input_that_never_fires_gets_a_zero_weight():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 10, generator=g)
    x[:, 4] = 0
    w = torch.randn(6, 10, generator=g)
    q = gptq_round(w, _grid(w, 127), 127, x.double().T @ x.double())
    assert torch.equal(q[:, 4], torch.zeros(6))


def test_shapes_that_do_not_fit_are_named():
    w = torch.randn(4, 8)
    with pytest.raises(KarukuError, match=r"H \(in × in\)"):
        gptq_round(w, _grid(w, 127), 127, torch.eye(4))
