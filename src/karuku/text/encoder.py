"""A BERT encoder with mean pooling and L2 normalisation, in plain torch: what sentence-transformers runs.

Written out (no `transformers` import) so every karuku technique can see and edit its pieces: per-layer head
counts and FFN widths are settings (structured pruning shrinks them), and `layers` is a plain ModuleList
(layer dropping keeps a subset). Inputs are token ids and an attention mask (1 for tokens, 0 for padding);
the output is one unit-length embedding per sentence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from karuku.errors import KarukuError
from karuku.measure.inputs import Input, Signature, register_inputs


@dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT encoder; `heads` and `intermediate` per layer (pruning makes them differ)."""

    vocab_size: int = 30522
    hidden: int = 384
    heads: tuple[int, ...] = (12,) * 6
    head_dim: int = 32
    intermediate: tuple[int, ...] = (1536,) * 6
    max_positions: int = 512
    type_vocab: int = 2
    eps: float = 1e-12
    extra: dict = field(default_factory=dict)  # free-form notes kept with the model (e.g. its source)
    ffn_rank: tuple[int, ...] = ()  # per layer: 0 = FFN matrices full, r = each one a pair of Linears via rank r

    def __post_init__(self):
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        object.__setattr__(self, "intermediate", tuple(int(i) for i in self.intermediate))
        ranks = tuple(int(r) for r in self.ffn_rank)
        object.__setattr__(self, "ffn_rank", ranks if any(ranks) else ())  # all full: stored as none
        if len(self.heads) != len(self.intermediate):
            raise KarukuError(f"BERT config: {len(self.heads)} layers of heads but {len(self.intermediate)} of "
                              "FFN widths", "give one head count and one FFN width per layer")
        if self.ffn_rank and len(self.ffn_rank) != len(self.heads):
            raise KarukuError(f"BERT config: {len(self.heads)} layers but {len(self.ffn_rank)} FFN ranks",
                              "give one FFN rank per layer (0: full), or none")
        for r, w in zip(self.ffn_rank, self.intermediate):
            if r < 0 or r > min(self.hidden, w):
                raise KarukuError(f"BERT config: FFN rank {r} is above min(hidden {self.hidden}, width {w})",
                                  "use a rank of 1 up to the smaller side, or 0 for the full matrix")
        if any(h < 1 for h in self.heads):
            raise KarukuError("BERT config: a layer with no attention heads", "every layer keeps at least one head")

    @property
    def layers(self) -> int:
        return len(self.heads)

    def rank(self, i: int) -> int:
        """Layer i's FFN rank (0: full matrices)."""
        return self.ffn_rank[i] if self.ffn_rank else 0

    def as_kwargs(self) -> dict:
        """The zoo factory's arguments (JSON-friendly) that rebuild this shape (`ffn_rank` only when set, so
        full-rank shapes, and the teacher-cache keys hashed from them, stay as they were)."""
        d = asdict(self)
        d["heads"], d["intermediate"] = list(self.heads), list(self.intermediate)
        if self.ffn_rank:  # () when every layer is full (__post_init__)
            d["ffn_rank"] = list(self.ffn_rank)
        else:
            d.pop("ffn_rank")
        return d


class Embeddings(nn.Module):
    """Word + position + token-type-0 embeddings, then LayerNorm."""
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type = nn.Embedding(cfg.type_vocab, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        if t > self.position.num_embeddings:
            raise KarukuError(f"sequence of {t} tokens is longer than the position table "
                              f"({self.position.num_embeddings})",
                              f"truncate to at most {self.position.num_embeddings} tokens (max_length)")
        pos = torch.arange(t, device=input_ids.device)
        # single-segment inputs: token type 0 everywhere, as sentence-transformers feeds it
        return self.norm(self.word(input_ids) + self.position(pos)[None] + self.token_type.weight[0])


class Attention(nn.Module):
    """Multi-head self-attention; q/k/v/o keep heads in blocks of `head_dim` (so heads can be removed)."""

    def __init__(self, hidden: int, heads: int, head_dim: int, eps: float):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.q, self.k, self.v = nn.Linear(hidden, inner), nn.Linear(hidden, inner), nn.Linear(hidden, inner)
        self.o = nn.Linear(inner, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def context(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-head context (B, T, heads·head_dim) before the output projection, attention probabilities)."""
        b, t, _ = x.shape

        def split(y):
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias).softmax(-1)
        return (probs @ v).transpose(1, 2).reshape(b, t, -1), probs

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, probs = self.context(x, bias)
        return self.norm(x + self.o(ctx)), probs


def _linear(n_in: int, n_out: int, rank: int) -> nn.Module:
    """A Linear, or at rank r two (n_in → r → n_out; r·(n_in + n_out) MACs instead of n_in·n_out). Both keep a
    bias (the first's stays zero from `factorize_ffn`) so each quantizes and exports as any Linear."""
    return nn.Linear(n_in, n_out) if not rank else nn.Sequential(nn.Linear(n_in, rank), nn.Linear(rank, n_out))


class FeedForward(nn.Module):
    """LayerNorm(x + W_down · GELU(W_up · x)): the FFN block with its residual (W_up, W_down low-rank pairs at
    `rank` > 0)."""
    def __init__(self, hidden: int, width: int, eps: float, rank: int = 0):
        super().__init__()
        self.up, self.down = _linear(hidden, width, rank), _linear(width, hidden, rank)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.down(F.gelu(self.up(x))))


class Layer(nn.Module):
    """One encoder layer: attention block, then FFN block."""
    def __init__(self, cfg: BertConfig, i: int):
        super().__init__()
        self.attn = Attention(cfg.hidden, cfg.heads[i], cfg.head_dim, cfg.eps)
        self.ffn = FeedForward(cfg.hidden, cfg.intermediate[i], cfg.eps, cfg.rank(i))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, probs = self.attn(x, bias)
        return self.ffn(x), probs


@dataclass
class Trace:
    """Everything a forward pass computed that distillation and pruning read: the hidden state after the
    embeddings and after each layer, each layer's attention probabilities, and the pooled embedding."""

    hidden: list[torch.Tensor]
    attentions: list[torch.Tensor]
    embedding: torch.Tensor


class SentenceEncoder(nn.Module):
    """BERT → mean pooling over the attention mask → L2 normalisation (sentence-transformers' pipeline)."""

    def __init__(self, cfg: BertConfig | None = None):
        super().__init__()
        self.cfg = cfg or BertConfig()
        self.embed = Embeddings(self.cfg)
        self.layers = nn.ModuleList(Layer(self.cfg, i) for i in range(self.cfg.layers))

    def trace(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Trace:
        check_inputs(input_ids, attention_mask, self.cfg.vocab_size)
        mask = attention_mask.to(torch.float32)
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min  # HF's additive mask
        x = self.embed(input_ids)
        hidden, attns = [x], []
        for layer in self.layers:
            x, probs = layer(x, bias)
            hidden.append(x)
            attns.append(probs)
        return Trace(hidden, attns, pool(x, mask))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.trace(input_ids, attention_mask).embedding


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens, then unit length (sentence-transformers' Pooling + Normalize)."""
    m = mask.to(hidden.dtype)[..., None]
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(mean, p=2, dim=1)


def check_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int) -> None:
    """Token ids and mask must be integer (B, T) tensors of one shape, ids inside the vocabulary."""
    if input_ids.is_floating_point():
        raise KarukuError(f"token ids must be integers, got {input_ids.dtype}",
                          "tokenize the text (karuku.text.Tokenizer) instead of passing float features")
    if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
        raise KarukuError(f"token ids {tuple(input_ids.shape)} and attention mask {tuple(attention_mask.shape)} "
                          "must both be (batch, tokens)", "pass the tokenizer's input_ids and attention_mask")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise KarukuError(f"token id {int(input_ids.max())} outside the vocabulary of {vocab_size}",
                          "use the tokenizer that belongs to this model")


MEASURE_TOKENS = 128  # the sequence length an encoder is measured at when nothing says otherwise


@register_inputs(SentenceEncoder)
def measured_inputs(model: SentenceEncoder, input_shape: tuple[int, ...] | None = None) -> Signature:
    """What `karuku.measure` feeds an encoder: token ids from its vocabulary and an all-ones attention mask (every
    token real, as at a fixed length), `input_shape[0]` tokens (a checkpoint's: the position table) or 128."""
    t = min(input_shape[0] if input_shape else MEASURE_TOKENS, model.cfg.max_positions)
    return Signature((Input("input_ids", (t,), torch.int64, 0, model.cfg.vocab_size),
                      Input("attention_mask", (t,), torch.int64, 1, 2)))


def bert(vocab_size: int = 30522, hidden: int = 384, layers: int = 6, heads: int | list[int] = 12,
         head_dim: int = 32, intermediate: int | list[int] = 1536, max_positions: int = 512, type_vocab: int = 2,
         eps: float = 1e-12, extra: dict | None = None, ffn_rank: int | list[int] = 0,
         **_ignored) -> SentenceEncoder:
    """Zoo factory: a sentence encoder of this shape (random weights; `karuku.text.load_pretrained` fills
    in real ones). `heads` / `intermediate` / `ffn_rank`: one number for every layer, or one per layer."""
    h = list(heads) if isinstance(heads, (list, tuple)) else [heads] * layers
    w = list(intermediate) if isinstance(intermediate, (list, tuple)) else [intermediate] * layers
    r = list(ffn_rank) if isinstance(ffn_rank, (list, tuple)) else [ffn_rank] * len(h)
    return SentenceEncoder(BertConfig(vocab_size, hidden, tuple(h), head_dim, tuple(w), max_positions, type_vocab,
                                      eps, dict(extra or {}), tuple(r)))


def minilm_l6(**kwargs) -> SentenceEncoder:
    """Zoo factory: all-MiniLM-L6-v2's shape (6 layers, hidden 384, 12 heads, FFN 1536, vocabulary 30,522)."""
    return bert(**kwargs)
