"""The weight-only quantized word embedding (karuku.text.quantize uses it for `embed.word`; distillation with
`word_bits` trains against its rounding, so it lives apart from both)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from karuku.errors import KarukuError


class QEmbedding(nn.Module):
    """A weight-only quantized embedding table: `bits` (8 or 4) per row block of `block` values, symmetric.

    The block scales are float16 (a row's values are looked up as float16 and cast to float32, as the ONNX file
    computes them): fp32 scales of 4-bit blocks of 32 add a quarter to the table's bytes (1.47 MB of 7.3 on
    all-MiniLM-L6-v2), float16 halves that, and its 11-bit rounding is far below the 4-bit step."""

    def __init__(self, emb: nn.Embedding, bits: int, block: int = 32):
        super().__init__()
        w = emb.weight.detach().float()
        n, d = w.shape
        if d % block:
            raise KarukuError(f"embedding width {d} is not a multiple of the block size {block}",
                              "use a block size that divides it")
        self.bits, self.block = bits, block
        blocks = w.view(n, d // block, block)
        qmax = (1 << (bits - 1)) - 1
        # rounded to float16 first, so the integers are the ones the stored scale gives back
        scale = (blocks.abs().amax(-1) / qmax).clamp(min=2.0 ** -24, max=65504.0).half()
        self.register_buffer("w_int", torch.clamp(torch.round(blocks / scale.float()[..., None]), -qmax, qmax)
                             .to(torch.int8).view(n, d))
        self.register_buffer("scale", scale)  # (rows, blocks), float16
        self.num_embeddings, self.embedding_dim = n, d

    def grid(self) -> torch.Tensor:
        """integer × scale, exact in float32 (a ≤ 8-bit integer times a float16 scale). Rounding this table again
        gives back the same integers and scales (its block maximum is exactly qmax × scale)."""
        n, d = self.w_int.shape
        return (self.w_int.view(n, d // self.block, self.block).float() * self.scale.float()[..., None]).view(n, d)

    @property
    def weight(self) -> torch.Tensor:
        # rounded to float16: what GatherBlockQuantized's float16 output holds
        return self.grid().half().float()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)
