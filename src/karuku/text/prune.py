"""Structured pruning of sentence encoders that physically shrinks them: attention heads and FFN neurons are
removed from the weights, so every later step (distillation, int8, ONNX) sees a smaller dense model.

Importance (the criterion, documented in docs/TEXT.md): how much a head or neuron adds to the residual stream,
on average over the real tokens of calibration texts —
- head h of a layer: mean ‖ctx_h · W_O[:, h]ᵀ‖₂, the norm of its share of the attention output projection;
- FFN neuron j: mean |GELU(a_j)| · ‖W_down[:, j]‖₂, the norm of its share of the FFN output.
Both are contributions to the same residual vector, so heads (and neurons) compare across layers in the
"global" scope; the "layer" scope removes the same share from every layer. Removal is consistent: a head's
rows of Q, K and V and its columns of O go together; a neuron's row of the FFN input and column of its output.
No layer loses every head (a ratio asking for that is an error; the global scope keeps each layer's best).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from karuku.config import Config
from karuku.errors import KarukuError
from karuku.text.encoder import SentenceEncoder
from karuku.text.tokenizer import Batch


class HeadPruneConfig(Config):
    """How much of a sentence encoder's attention and FFN to remove."""

    heads: float = Field(0.0, ge=0, le=1, description="share of attention heads to remove")
    ffn: float = Field(0.0, ge=0, le=1, description="share of FFN neurons to remove")
    scope: Literal["layer", "global"] = Field("layer", description="layer: the same share in every layer; "
                                                                   "global: the least important anywhere")
    round_to: int = Field(16, ge=1, description="FFN widths kept in multiples of this (fast int8 / fp32 kernels)")
    calibration: int = Field(256, gt=0, description="calibration texts for the importance scores")


@dataclass
class Importance:
    """Per-layer importance scores of heads and FFN neurons (mean contribution norms)."""
    heads: list[torch.Tensor]  # per layer: (heads,)
    neurons: list[torch.Tensor]  # per layer: (intermediate,)


@torch.no_grad()
def importance(model: SentenceEncoder, batch: Batch, batch_size: int = 32) -> Importance:
    """Mean contribution norms of every head and FFN neuron over the real tokens of `batch`."""
    model.eval()
    n_layers = len(model.layers)
    head_sum = [torch.zeros(layer.attn.heads, dtype=torch.float64) for layer in model.layers]
    neuron_sum = [torch.zeros(layer.ffn.up.out_features, dtype=torch.float64) for layer in model.layers]
    tokens = 0
    for i in range(0, len(batch), batch_size):
        b = batch[i:i + batch_size]
        mask = b.attention_mask.to(torch.float32)
        real = mask.bool()
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        x = model.embed(b.input_ids)
        for li in range(n_layers):
            layer = model.layers[li]
            a = layer.attn
            ctx, _ = a.context(x, bias)  # (B, T, heads·d)
            w_o = a.o.weight.view(a.o.out_features, a.heads, a.head_dim)  # (hidden, heads, d)
            per_head = torch.einsum("bthd,ohd->btho", ctx.view(*ctx.shape[:2], a.heads, a.head_dim), w_o)
            head_sum[li] += per_head.norm(dim=-1)[real].sum(0).double()
            x = a.norm(x + a.o(ctx))
            act = F.gelu(layer.ffn.up(x))
            neuron_sum[li] += (act.abs()[real].sum(0) * layer.ffn.down.weight.norm(dim=0)).double()
            x = layer.ffn.norm(x + layer.ffn.down(act))
        tokens += int(real.sum())
    return Importance([h / tokens for h in head_sum], [n / tokens for n in neuron_sum])


def _keep_counts(scores: list[torch.Tensor], share: float, scope: str, minimum: int, multiple: int,
                 what: str) -> list[int]:
    sizes = [len(s) for s in scores]
    if scope == "layer":
        keep = [n - round(share * n) for n in sizes]
        if what == "heads" and any(k < 1 for k in keep):
            raise KarukuError(f"removing {share:.0%} of the heads would leave a layer with none",
                              "keep at least one head per layer (a smaller `heads` share in the recipe), or drop "
                              "whole layers with distillation instead")
    else:
        flat = torch.cat(scores)
        n_remove = round(share * len(flat))
        order = torch.argsort(flat, stable=True)[:n_remove]
        layer_of = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
        keep = [n - int((layer_of[order] == i).sum()) for i, n in enumerate(sizes)]
    keep = [max(minimum, k) for k in keep]
    if multiple > 1:
        keep = [min(n, max(multiple, int(math.ceil(k / multiple)) * multiple)) for k, n in zip(keep, sizes)]
    return keep


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.argsort(scores, descending=True, stable=True)[:k]).values


def prune(model: SentenceEncoder, cfg: HeadPruneConfig, calibration: Batch) -> tuple[SentenceEncoder, dict]:
    """A smaller copy of `model` without its least important heads and FFN neurons; and what was kept."""
    if not isinstance(model, SentenceEncoder):
        raise KarukuError(f"head pruning needs a SentenceEncoder, got {type(model).__name__}",
                          "use karuku.prune for other models")
    if model.cfg.ffn_rank:
        raise KarukuError("this encoder's FFN is already factorised (low rank); pruning reads full FFN matrices",
                          "prune first, then factorize_ffn")
    imp = importance(model, calibration[: cfg.calibration])
    keep_h = _keep_counts(imp.heads, cfg.heads, cfg.scope, 1, 1, "heads")
    keep_f = _keep_counts(imp.neurons, cfg.ffn, cfg.scope, 1, cfg.round_to, "neurons")
    heads = [_top(s, k) for s, k in zip(imp.heads, keep_h)]
    neurons = [_top(s, k) for s, k in zip(imp.neurons, keep_f)]
    return shrink(model, heads, neurons), {"heads": [h.tolist() for h in heads], "ffn_widths": keep_f,
                                           "ffn_kept": [n.tolist() for n in neurons],
                                           "head_importance": [s.tolist() for s in imp.heads]}


@torch.no_grad()
def shrink(model: SentenceEncoder, heads: list[torch.Tensor], neurons: list[torch.Tensor]) -> SentenceEncoder:
    """A copy keeping, per layer, the heads and FFN neurons with these indices (pure weight slicing)."""
    c = model.cfg
    new = SentenceEncoder(replace(c, heads=tuple(len(h) for h in heads), intermediate=tuple(len(n) for n in neurons),
                                  extra=copy.deepcopy(c.extra)))
    new.embed.load_state_dict(model.embed.state_dict())
    d = c.head_dim
    for old, layer, h, n in zip(model.layers, new.layers, heads, neurons):
        rows = torch.cat([torch.arange(int(i) * d, (int(i) + 1) * d) for i in h])
        for name in ("q", "k", "v"):
            src, dst = getattr(old.attn, name), getattr(layer.attn, name)
            dst.weight.copy_(src.weight[rows])
            dst.bias.copy_(src.bias[rows])
        layer.attn.o.weight.copy_(old.attn.o.weight[:, rows])
        layer.attn.o.bias.copy_(old.attn.o.bias)
        layer.attn.norm.load_state_dict(old.attn.norm.state_dict())
        layer.ffn.up.weight.copy_(old.ffn.up.weight[n])
        layer.ffn.up.bias.copy_(old.ffn.up.bias[n])
        layer.ffn.down.weight.copy_(old.ffn.down.weight[:, n])
        layer.ffn.down.bias.copy_(old.ffn.down.bias)
        layer.ffn.norm.load_state_dict(old.ffn.norm.state_dict())
    return new.eval()


@torch.no_grad()
def factorize_ffn(model: SentenceEncoder, rank: int | list[int]) -> SentenceEncoder:
    """A copy whose FFN matrices are each replaced by two Linears through `rank` (one for every layer, or one
    per layer; 0 keeps a layer full): W ≈ (U_r √S_r)(√S_r V_rᵀ), truncated SVD, the singular values split evenly
    so neither factor carries all the range int8 must cover. The first factor's bias is zero, the second keeps
    W's. MACs per matrix: r·(in + out) instead of in·out."""
    c = model.cfg
    if c.ffn_rank:
        raise KarukuError("this encoder's FFN is already factorised", "factorise the full-rank model")
    ranks = list(rank) if isinstance(rank, (list, tuple)) else [rank] * c.layers
    if len(ranks) != c.layers:
        raise KarukuError(f"{len(ranks)} FFN ranks for {c.layers} layers", "give one rank, or one per layer")
    new = SentenceEncoder(replace(c, ffn_rank=tuple(ranks), extra=copy.deepcopy(c.extra)))
    new.embed.load_state_dict(model.embed.state_dict())
    for old, layer, r in zip(model.layers, new.layers, ranks):
        layer.attn.load_state_dict(old.attn.state_dict())
        layer.ffn.norm.load_state_dict(old.ffn.norm.state_dict())
        for name in ("up", "down"):
            src, dst = getattr(old.ffn, name), getattr(layer.ffn, name)
            if not r:
                dst.load_state_dict(src.state_dict())
                continue
            u, s, vh = torch.linalg.svd(src.weight.double(), full_matrices=False)
            root = s[:r].sqrt()
            dst[0].weight.copy_((root[:, None] * vh[:r]).float())
            dst[0].bias.zero_()
            dst[1].weight.copy_((u[:, :r] * root[None, :]).float())
            dst[1].bias.copy_(src.bias)
    return new.eval()
