"""BERT's uncased WordPiece tokenizer: a plain-Python one (the core needs nothing more), and Hugging Face
`tokenizers` reading the shipped tokenizer.json when the `karuku[transformers]` extra is installed.

Both give the same ids (tests check them against each other on real text): text is cleaned (control
characters dropped, whitespace unified), CJK characters split apart, lower-cased with accents stripped, split on
whitespace and punctuation, then each word split greedily into the longest vocabulary pieces ("##" marks a
continuation; a word that cannot be split, or is over 100 characters, becomes [UNK]). A sentence is
[CLS] pieces [SEP], truncated to `max_length` tokens; a batch is padded with [PAD] to its longest sentence.
"""

from __future__ import annotations

import copy
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch

from karuku.errors import KarukuError

MAX_WORD_CHARS = 100


@dataclass
class Batch:
    """Token ids and attention mask, (batch, tokens) int64, padded to the longest sentence."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx) -> Batch:
        ids, mask = self.input_ids[idx], self.attention_mask[idx]
        width = max(1, int(mask.sum(1).max())) if len(mask) else 1
        return Batch(ids[:, :width], mask[:, :width])  # drop columns that are padding in every row

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids, self.attention_mask


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def normalise(text: str) -> str:
    """Clean, space out CJK characters, strip accents, lower-case (BERT's uncased normaliser)."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            continue
        cat = unicodedata.category(ch)
        if ch in "\t\n\r" or cat == "Zs":
            out.append(" ")
        elif cat in ("Cc", "Cf"):
            continue
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFD", "".join(out))
    return "".join(c for c in text if unicodedata.category(c) != "Mn").lower()


def words(text: str) -> list[str]:
    """Whitespace- and punctuation-separated words of normalised text (each punctuation mark a word)."""
    out: list[str] = []
    for chunk in text.split():
        cur = ""
        for ch in chunk:
            if _is_punctuation(ch):
                if cur:
                    out.append(cur)
                out.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            out.append(cur)
    return out


def wordpiece(word: str, vocab: dict[str, int], unk: str = "[UNK]") -> list[str]:
    """Greedy longest-match-first split of one word into vocabulary pieces."""
    if len(word) > MAX_WORD_CHARS:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


class Tokenizer:
    """Text → `Batch`. `backend`: "python", "tokenizers" (needs the package and tokenizer.json), or "auto"."""

    def __init__(self, vocab: dict[str, int], max_length: int = 256, tokenizer_json: str | None = None,
                 backend: str = "auto"):
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if special not in vocab:
                raise KarukuError(f"the vocabulary has no {special} token", "give a BERT WordPiece vocabulary")
        if max_length < 2:
            raise KarukuError(f"max_length {max_length} leaves no room for text", "use max_length ≥ 3")
        self.vocab, self.max_length = vocab, max_length
        self.pad, self.unk, self.cls, self.sep = (vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"))
        self._fast = None
        if backend not in ("auto", "python", "tokenizers"):
            raise KarukuError(f"unknown tokenizer backend '{backend}'", "use auto, python or tokenizers")
        if backend != "python" and tokenizer_json is not None:
            try:
                from tokenizers import Tokenizer as Fast
            except ImportError:
                if backend == "tokenizers":
                    raise KarukuError("the tokenizers package is not installed",
                                      "pip install 'karuku[transformers]', or use backend python") from None
            else:
                self._fast = Fast.from_file(tokenizer_json)
                self._fast.enable_truncation(max_length)
                self._fast.no_padding()
        elif backend == "tokenizers":
            raise KarukuError("backend tokenizers needs tokenizer.json", "give a folder with tokenizer.json")
        self.backend = "tokenizers" if self._fast is not None else "python"

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, max_length: int = 256, backend: str = "auto") -> Tokenizer:
        """From vocab.txt (one token per line) or tokenizer.json (its WordPiece vocabulary)."""
        folder = Path(folder)
        vocab_txt, tok_json = folder / "vocab.txt", folder / "tokenizer.json"
        if vocab_txt.is_file():
            lines = vocab_txt.read_text(encoding="utf-8").splitlines()
            vocab = {tok: i for i, tok in enumerate(lines)}
        elif tok_json.is_file():
            try:
                vocab = json.loads(tok_json.read_text(encoding="utf-8"))["model"]["vocab"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise KarukuError(f"{tok_json} has no WordPiece vocabulary ({exc})") from None
        else:
            raise KarukuError(f"no tokenizer in {folder} (neither vocab.txt nor tokenizer.json)",
                              "fetch the model again (karuku text fetch) or copy its tokenizer files there")
        return cls(vocab, max_length, str(tok_json) if tok_json.is_file() else None, backend)

    def with_max_length(self, max_length: int) -> Tokenizer:
        """The same tokenizer truncating at `max_length` tokens."""
        new = copy.copy(self)
        new.max_length = max_length
        if self._fast is not None:
            new._fast = copy.deepcopy(self._fast)
            new._fast.enable_truncation(max_length)
        return new

    def ids(self, text: str) -> list[int]:
        """[CLS] pieces [SEP] of one text, truncated to max_length."""
        if self._fast is not None:
            return list(self._fast.encode(text).ids)
        pieces = [p for w in words(normalise(text)) for p in wordpiece(w, self.vocab)]
        body = [self.vocab.get(p, self.unk) for p in pieces][: self.max_length - 2]
        return [self.cls, *body, self.sep]

    def __call__(self, texts: list[str] | str) -> Batch:
        if isinstance(texts, str):
            texts = [texts]
        rows = [self.ids(t) for t in texts]
        width = max((len(r) for r in rows), default=2)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.int64)
        mask = torch.zeros((len(rows), width), dtype=torch.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return Batch(ids, mask)
