"""The teacher's outputs on the training texts, computed once and stored, so every distillation epoch costs
only the student (the teacher's forward pass was about a third of each step on all-MiniLM-L6-v2).

What is kept per text: the sentence embedding (float32) and, for each hint target, the teacher's hidden state
over the text's real tokens only (float16: hints are a mean squared error, float16's 1e-3 relative rounding is
far below what they pull on). Rows of all texts are stored end to end, with offsets, so a batch's targets are
exactly `hidden[real]` of a padded batch (real tokens come first in every row).

The file (safetensors) is named by a key over everything that shapes it: the teacher's weights and shape, the
texts, the tokenizer's vocabulary and length cut, the hint targets and the storage dtype. A file with another
key is never read; a changed teacher or corpus computes a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from karuku.errors import KarukuError
from karuku.io.atomic import atomic_path
from karuku.text.corpus import texts_digest
from karuku.text.encoder import SentenceEncoder
from karuku.text.tokenizer import Tokenizer

FORMAT = 1


@dataclass
class TeacherOutputs:
    """Cached teacher targets: embeddings (N, hidden), hint rows per teacher hidden-state index, row offsets."""
    embeddings: torch.Tensor
    hidden: dict[int, torch.Tensor]
    offsets: torch.Tensor  # (N + 1,) int64: text k's rows are offsets[k]:offsets[k + 1]

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The embeddings and the real-token hint rows (float32) of the texts `idx`, in that order."""
        rows = torch.cat([torch.arange(int(self.offsets[k]), int(self.offsets[k + 1])) for k in idx.tolist()])
        return self.embeddings[idx], {j: h[rows].float() for j, h in self.hidden.items()}


def cache_key(teacher: SentenceEncoder, texts: list[str], tok: Tokenizer, targets: list[int], dtype: str) -> str:
    """A digest of everything the cached outputs depend on."""
    h = hashlib.sha256()
    for name, t in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    vocab = hashlib.sha256(json.dumps(sorted(tok.vocab.items())).encode()).hexdigest()
    h.update(json.dumps({"format": FORMAT, "config": teacher.cfg.as_kwargs(), "texts": texts_digest(texts),
                         "vocab": vocab, "max_length": tok.max_length, "targets": sorted(set(targets)),
                         "dtype": dtype}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def compute(teacher: SentenceEncoder, texts: list[str], tok: Tokenizer, targets: list[int],
            batch_size: int = 64, dtype: torch.dtype = torch.float16) -> TeacherOutputs:
    """Run the teacher once over `texts` (length-sorted batches, little padding)."""
    teacher.eval()
    lengths = torch.tensor([len(tok.ids(t)) for t in texts])
    order = torch.argsort(lengths, stable=True)
    offsets = torch.zeros(len(texts) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    emb = torch.zeros(len(texts), teacher.cfg.hidden)
    hidden = {j: torch.zeros(int(offsets[-1]), teacher.cfg.hidden, dtype=dtype) for j in sorted(set(targets))}
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        b = tok([texts[int(k)] for k in idx])
        tr = teacher.trace(*b.inputs())
        emb[idx] = tr.embedding
        for r, k in enumerate(idx.tolist()):
            n = int(lengths[k])
            for j, h in hidden.items():
                h[offsets[k]:offsets[k] + n] = tr.hidden[j][r, :n].to(dtype)
    return TeacherOutputs(emb, hidden, offsets)


def teacher_outputs(teacher: SentenceEncoder, texts: list[str], tok: Tokenizer, targets: list[int],
                    folder: str | Path | None = None, log=print) -> TeacherOutputs:
    """The teacher's outputs on `texts`: read from `folder` when a file with the same key is there, else
    computed (and written there atomically when `folder` is given)."""
    from safetensors.torch import load_file, save_file

    if folder is None:
        return compute(teacher, texts, tok, targets)
    key = cache_key(teacher, texts, tok, targets, "float16")
    path = Path(folder) / f"teacher-{key}.safetensors"
    if path.is_file():
        try:
            d = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any unreadable file: recompute, say so
            log(f"teacher cache {path} unreadable ({exc}); computing it again")
        else:
            hidden = {int(k.split(".")[1]): v for k, v in d.items() if k.startswith("hidden.")}
            offsets, emb = d.get("offsets"), d.get("embeddings")
            if (offsets is not None and emb is not None and len(offsets) == len(texts) + 1 == len(emb) + 1
                    and sorted(hidden) == sorted(set(targets))
                    and all(len(h) == int(offsets[-1]) for h in hidden.values())):
                log(f"teacher outputs of {len(texts)} texts read from {path}")
                return TeacherOutputs(emb, hidden, offsets)
    log(f"teacher outputs of {len(texts)} texts (hints at hidden states {sorted(set(targets))}) -> {path}")
    out = compute(teacher, texts, tok, targets)
    Path(folder).mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"embeddings": out.embeddings.contiguous(), "offsets": out.offsets,
                   **{f"hidden.{j}": h.contiguous() for j, h in out.hidden.items()}}, str(tmp),
                  metadata={"key": key, "texts": str(len(texts))})
    return out


def check_lengths(cache: TeacherOutputs, idx: torch.Tensor, mask: torch.Tensor) -> None:
    """The batch's real-token counts must be the cached ones (same tokenizer, same cut)."""
    if not torch.equal(mask.sum(1).cpu(), cache.lengths[idx]):
        raise KarukuError("the cached teacher outputs do not match these texts' token counts",
                          "delete the run folder's teacher-*.safetensors (it was made with another tokenizer)")
