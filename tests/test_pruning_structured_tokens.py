"""Structured pruning of models of token ids and a mask, and of a transformer's FFN (Linear on tokens × features):
the shrunk model computes what the channel-zeroed model computes, and what may not shrink stays."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.pruning import PruneConfig, prune
from karuku.pruning.structured import apply_edits, plan_channels, zero_channels


class Encoder(nn.Module):
    """A small post-LayerNorm transformer encoder written by hand (fx-traceable): token and position embeddings,
    optionally self-attention, an FFN, masked mean pooling over the tokens, a classifier on top."""

    def __init__(self, attention: bool, vocab=40, tokens=10, dim=16, ffn=48, heads=2, classes=3):
        super().__init__()
        self.attention, self.heads = attention, heads
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(tokens, dim) * 0.1)
        self.norm0 = nn.LayerNorm(dim)
        if attention:
            self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
            self.norm1 = nn.LayerNorm(dim)
        self.up, self.act, self.down = nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pre, self.head = nn.Linear(dim, 24), nn.Linear(24, classes)

    def _attend(self, x, mask):
        b, t, d = x.shape
        split = [b, t, self.heads, d // self.heads]
        q, k, v = (f(x).view(*split).transpose(1, 2) for f in (self.q, self.k, self.v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e4)
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.norm1(x + self.o(ctx))

    def forward(self, input_ids, attention_mask):
        x = self.norm0(self.embed(input_ids) + self.pos)
        if self.attention:
            x = self._attend(x, attention_mask)
        x = self.norm2(x + self.down(self.act(self.up(x))))
        m = attention_mask.unsqueeze(-1).float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(torch.relu(self.pre(pooled)))


def _batch(n=6, seed=2):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(3, 11, (n,), generator=g)
    mask = (torch.arange(10)[None] < lens[:, None]).long()
    return torch.randint(1, 40, (n, 10), generator=g) * mask, mask


def _check_equal(model, amount=0.5, **options):
    ids, mask = _batch()
    plan = plan_channels(model, (ids, mask), amount, **options)
    shrunk = apply_edits(copy.deepcopy(model), plan.edits)
    zeroed = zero_channels(copy.deepcopy(model), plan.edits)
    with torch.no_grad():
        diff = (shrunk(ids, mask) - zeroed(ids, mask)).abs().max().item()
        moved = (zeroed(ids, mask) - model(ids, mask)).abs().max().item()
    assert diff <= 1e-5, diff
    assert moved > 1e-3, "the plan removed nothing that mattered: the test would prove nothing"
    return plan, shrunk


def test_a_transformers_ffn_shrinks_on_token_inputs_and_its_width_stays():
    torch.manual_seed(0)
    model = Encoder(attention=False).eval()
    plan, shrunk = _check_equal(model)
    assert not plan.skipped  # embeddings, LayerNorms, the mask's pooling: all understood, nothing left untouched
    assert shrunk.up.out_features == shrunk.down.in_features == 24  # the FFN's neurons, half of them
    assert shrunk.pre.out_features == shrunk.head.in_features == 12
    # the model's width (embeddings, LayerNorms, the residual stream) and its outputs stay
    assert shrunk.embed.embedding_dim == 16 and shrunk.down.out_features == shrunk.up.in_features == 16
    assert shrunk.norm2.normalized_shape == (16,) and shrunk.head.out_features == 3
    # MACs counted on the token inputs: the FFN's two products over 10 tokens shrink by half
    assert plan.macs_before == 2 * 10 * 16 * 48 + 16 * 24 + 24 * 3
    assert plan.macs_before - plan.macs_after == 2 * 10 * 16 * 24 + 16 * 12 + 12 * 3


def test_attention_is_named_when_it_cannot_be_followed_and_left_whole_when_asked():
    torch.manual_seed(0)
    model = Encoder(attention=True).eval()
    with pytest.raises(KarukuError, match=r"cannot rewrite around method \.view\(\) to shape") as info:
        plan_channels(model, _batch(), 0.5)
    assert "\n" not in str(info.value) and "on_unsupported" in str(info.value)
    with pytest.warns(UserWarning, match="left untouched"):
        plan, shrunk = _check_equal(model, on_unsupported="skip")
    assert plan.skipped
    assert all(getattr(shrunk, n).out_features == 16 for n in "qkvo")  # heads are karuku.text's to prune
    assert shrunk.up.out_features == 24 and shrunk.pre.out_features == 12


class Channels(nn.Module):
    """A Conv1d over the tokens (channels along dimension 1), then a Linear over its positions (the last
    dimension), then a head: the Linear does not follow the conv's channels."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.conv = nn.Conv1d(8, 12, 3, padding=1)
        self.lin = nn.Linear(6, 10)
        self.fc1, self.fc2 = nn.Linear(10, 16), nn.Linear(16, 4)

    def forward(self, input_ids):
        x = torch.relu(self.lin(self.conv(self.embed(input_ids).transpose(1, 2))))  # (N, 12, 10)
        return self.fc2(torch.relu(self.fc1(x.mean(1))))


def test_a_linear_over_another_dimension_than_the_channels_is_named_or_left_whole():
    ids = torch.randint(0, 20, (4, 6), generator=torch.Generator().manual_seed(0))
    with pytest.raises(KarukuError, match="Linear 'lin' on channels along another dimension"):
        plan_channels(Channels(), (ids,), 0.5)
    with pytest.warns(UserWarning, match="left untouched"):
        plan = plan_channels(Channels(), (ids,), 0.5, on_unsupported="skip")
    assert set(plan.edits) == {"fc1", "fc2"} and len(plan.edits["fc1"]["out"]) == 8  # conv and lin stay whole
    per_token = nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 6), nn.Flatten(), nn.Linear(36, 4))
    with pytest.raises(KarukuError, match=r"flatten\(1, -1\) of channels along the last dimension"):
        plan_channels(per_token, (ids,), 0.5)  # flattening interleaves a token's features with the tokens


def test_prune_takes_token_inputs_as_given():
    torch.manual_seed(0)
    ids, mask = _batch(40, 3)
    model = Encoder(attention=False).eval()
    by_name = plan_channels(model, {"attention_mask": mask, "input_ids": ids}, 0.25)  # traced by name
    res = prune(model, PruneConfig(sparsity=0.25, structured=True), inputs=(ids, mask))
    assert res.transforms[0]["params"]["edits"] == by_name.edits
    assert model.up.out_features == 36 and res.rounds[0]["channels"][1] < res.rounds[0]["channels"][0]
    training = Encoder(attention=False).train()
    plan_channels(training, (ids, mask), 0.5)  # run once on the inputs to check them, in eval mode, then put back
    assert training.training and all(m.training for m in training.modules())
    with pytest.raises(KarukuError, match="structured pruning needs what the model takes"):
        prune(Encoder(attention=False), PruneConfig(sparsity=0.25, structured=True))
    with pytest.raises(KarukuError, match=r"Encoder does not run on the inputs input \(10,\) float32.*inputs=") as e:
        prune(Encoder(attention=False), PruneConfig(sparsity=0.25, structured=True), input_shape=(10,))
    assert "\n" not in str(e.value)  # an input shape means one float input: a token model says so in one line
