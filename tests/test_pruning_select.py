"""Exact selection, as properties: counts, thresholds, and masks that only shrink."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from karuku.errors import KarukuError
from karuku.pruning import select
from karuku.pruning.mask import Mask

# small integer-valued scores so ties are frequent
scores_st = st.lists(st.integers(-5, 5), min_size=1, max_size=200).map(lambda v: torch.tensor(v, dtype=torch.float))
rate_st = st.floats(0, 0.999)


@settings(max_examples=150, deadline=None)
@given(scores_st, rate_st)
def test_bottom_k_prunes_exactly_and_threshold_separates(s, rate):
    kept = select.bottom_k(s, select.count(rate, s.numel()))
    assert int((~kept).sum()) == round(rate * s.numel())
    hi, lo = select.threshold(s, kept)
    assert hi <= lo


@settings(max_examples=100, deadline=None)
@given(scores_st, rate_st, rate_st, st.integers(0, 2**31 - 1))
def test_masks_only_shrink(s, r1, r2, seed):
    first = select.bottom_k(torch.rand(s.shape, generator=torch.Generator().manual_seed(seed)),
                            select.count(r1, s.numel()))
    second = select.bottom_k(s, select.count(r2, s.numel()), keep=first)
    assert not (second & ~first).any(), "a pruned weight came back"
    assert int((~second).sum()) == max(round(r2 * s.numel()), int((~first).sum()))


@settings(max_examples=80, deadline=None)
@given(st.lists(scores_st, min_size=1, max_size=4), rate_st)
def test_global_exact_count_and_one_threshold(layers, rate):
    scores = {f"l{i}.weight": s for i, s in enumerate(layers)}
    mask = select.global_(scores, rate)
    total = sum(s.numel() for s in layers)
    assert mask.total() - mask.kept() == round(rate * total)
    flat_s = torch.cat([scores[n] for n in scores])
    flat_k = torch.cat([mask[n] for n in scores])
    hi, lo = select.threshold(flat_s, flat_k)
    assert hi <= lo


def test_global_respects_current_mask():
    scores = {"a.weight": torch.arange(10.0), "b.weight": torch.arange(10.0)}
    current = Mask({"a.weight": torch.arange(10) != 9, "b.weight": torch.ones(10, dtype=torch.bool)})
    mask = select.global_(scores, 0.1, current)  # 2 to prune: the already-pruned a[9], then the lowest (a[0])
    assert not mask["a.weight"][9] and not mask["a.weight"][0] and bool(mask["b.weight"].all())


def test_layer_rates_overrides_first_match_and_unknown_pattern():
    names = ["fc1.weight", "fc2.weight", "fc3.weight"]
    rates = select.layer_rates(names, 0.9, {"fc3": 0.45, "fc*": 0.8})
    assert rates == {"fc1.weight": 0.8, "fc2.weight": 0.8, "fc3.weight": 0.45}
    with pytest.raises(KarukuError, match="pattern 'conv9' matches no layer"):
        select.layer_rates(names, 0.9, {"conv9": 0.5})


def test_layerwise_exact_per_layer():
    scores = {"a.weight": torch.randn(30, 7), "b.weight": torch.zeros(11)}  # all ties in b
    mask = select.layerwise(scores, {"a.weight": 0.5, "b.weight": 0.37})
    assert mask.total("a.weight") - mask.kept("a.weight") == 105
    assert mask.total("b.weight") - mask.kept("b.weight") == round(0.37 * 11)
