"""A tiny BERT-style sentence encoder, its vocabulary and texts, made by the tests (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from karuku.text.encoder import bert
from karuku.text.tokenizer import Tokenizer

WORDS = ("the a cat dog sat on mat and ran to park in sun rain big small red blue fox quick brown jump over lazy "
         "is was it what why how , . ! ? ' un ##s ##ed ##ing ##ly ##er caf ##e")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split()]
TEXTS = [
    "The cat sat on the mat.", "A dog ran to the park!", "The quick brown fox jumped over the lazy dog.",
    "It was big and red.", "Why is the sun blue?", "A small cat ran in the rain.", "How quickly the dog sat!",
    "The mat was small, the park was big.", "Café in the sun.", "What ran over the red mat?",
    "The lazy dogs sat in the park.", "A blue fox jumps over the small cat.", "Rain, rain, rain.",
    "It is what it is.", "The big dog and the small cat.", "How was the park in the rain?",
]


def tiny_encoder(seed: int = 0, layers: int = 2, hidden: int = 32, heads: int = 2, ffn: int = 64,
                 max_positions: int = 40):
    torch.manual_seed(seed)
    m = bert(vocab_size=len(VOCAB), hidden=hidden, layers=layers, heads=heads, head_dim=hidden // heads,
             intermediate=ffn, max_positions=max_positions).eval()
    with torch.no_grad():  # BERT's initialisation scale, so activations look like a trained model's
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    return m


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return folder


def tiny_tokenizer(folder: Path, max_length: int = 32) -> Tokenizer:
    return Tokenizer.from_folder(write_vocab(folder), max_length=max_length, backend="python")


def hf_config(model) -> str:
    c = model.cfg
    return json.dumps({"hidden_size": c.hidden, "num_attention_heads": c.heads[0], "num_hidden_layers": c.layers,
                       "intermediate_size": c.intermediate[0], "vocab_size": c.vocab_size,
                       "max_position_embeddings": c.max_positions, "type_vocab_size": c.type_vocab,
                       "layer_norm_eps": c.eps, "hidden_act": "gelu"})


def register_tiny_pretrained(model, folder: Path, monkeypatch) -> Path:
    """Write `model` as a pretrained folder (safetensors, config, vocabulary) and register it as the pretrained
    name "tiny" with those files' hashes, so recipes with `model: {pretrained: tiny}` load it."""
    import hashlib

    from safetensors.torch import save_file

    from karuku.text import pretrained
    from karuku.text.pretrained import Pretrained, state_dict_hf

    folder = write_vocab(folder)
    save_file({k: v.contiguous() for k, v in state_dict_hf(model).items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(hf_config(model))
    files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
             for n in ("model.safetensors", "config.json", "vocab.txt")}
    monkeypatch.setitem(pretrained.PRETRAINED, "tiny", Pretrained("tiny", "tiny==1", "m", files, 64, "test"))
    return folder
