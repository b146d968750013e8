"""The sentence-embedding task: how faithfully a compressed encoder reproduces the fp32 one on held-out text.

- fidelity: cosine between each text's compressed and reference embedding (mean, and the 1st percentile, the
  worst 1 % that users notice);
- retrieval agreement: for every held-out text, its 10 nearest neighbours among the other held-out texts (by
  cosine), found with each model; the share of the reference's top 10 that the compressed model also returns.

`encode` runs any encoder (a torch module or an ONNX Runtime session) over texts in length-sorted batches, so
padding costs little and results come back in the input order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from karuku.errors import KarukuError
from karuku.text.tokenizer import Batch, Tokenizer

EncodeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, attention_mask) -> embeddings


@dataclass(frozen=True)
class Fidelity:
    """Fidelity of a compressed encoder to the reference on held-out texts."""
    mean_cosine: float
    p1_cosine: float
    top10_overlap: float
    texts: int

    def as_dict(self) -> dict:
        return asdict(self)


def torch_fn(model: torch.nn.Module) -> EncodeFn:
    """An EncodeFn running a torch encoder in inference mode."""
    def fn(ids, mask):
        with torch.inference_mode():
            return model(torch.as_tensor(ids), torch.as_tensor(mask)).numpy()
    return fn


def onnx_fn(onnx_bytes: bytes, threads: int = 1) -> EncodeFn:
    """An EncodeFn running an ONNX file in ONNX Runtime with `threads` threads."""
    from karuku.measure.onnx_runtime import session

    sess = session(onnx_bytes, threads)
    return lambda ids, mask: sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def encode(fn: EncodeFn | torch.nn.Module, texts: list[str] | Batch, tokenizer: Tokenizer | None = None,
           batch_size: int = 32) -> np.ndarray:
    """Embeddings (N, hidden) of `texts` (strings with a tokenizer, or a tokenized Batch), in input order."""
    if isinstance(fn, torch.nn.Module):
        fn = torch_fn(fn.eval())
    if not isinstance(texts, Batch):
        if tokenizer is None:
            raise KarukuError("encoding raw texts needs a tokenizer", "pass tokenizer=Tokenizer.from_folder(...)")
        texts = tokenizer(list(texts))
    if len(texts) == 0:
        raise KarukuError("no texts to encode", "give at least one text")
    order = torch.argsort(texts.attention_mask.sum(1), stable=True)
    out = [None] * len(texts)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        b = texts[idx]
        emb = fn(b.input_ids.numpy(), b.attention_mask.numpy())
        for j, k in enumerate(idx.tolist()):
            out[k] = emb[j]
    return np.stack(out).astype(np.float32)


def neighbours(emb: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices (N, k) of each row's k nearest other rows by cosine (rows are unit length)."""
    if len(emb) <= k:
        raise KarukuError(f"retrieval over {len(emb)} texts cannot return {k} neighbours", f"use more than {k} texts")
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def fidelity(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> Fidelity:
    """Cosine fidelity and top-k retrieval agreement of `candidate` embeddings to `reference` ones."""
    if reference.shape != candidate.shape:
        raise KarukuError(f"embeddings of different shapes {reference.shape} and {candidate.shape}",
                          "encode the same texts with both models")
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True).clip(1e-12)
    cand = candidate / np.linalg.norm(candidate, axis=1, keepdims=True).clip(1e-12)
    cos = (ref * cand).sum(1)
    a, b = neighbours(ref, k), neighbours(cand, k)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])
    return Fidelity(float(cos.mean()), float(np.percentile(cos, 1)), float(overlap), len(ref))


def fixed_batch(tokenizer: Tokenizer, texts: list[str], batch: int, tokens: int) -> Batch:
    """`batch` rows of exactly `tokens` real tokens each ([CLS] text… [SEP], texts run together): the
    fixed-shape input that throughput is measured on."""
    stream = [i for t in texts for i in tokenizer.ids(t)[1:-1]]
    need = batch * (tokens - 2)
    if len(stream) < need:
        raise KarukuError(f"{len(texts)} texts give {len(stream)} tokens, {need} needed", "give more text")
    body = torch.tensor(stream[:need]).view(batch, tokens - 2)
    ids = torch.cat([torch.full((batch, 1), tokenizer.cls), body, torch.full((batch, 1), tokenizer.sep)], 1)
    return Batch(ids, torch.ones_like(ids))
