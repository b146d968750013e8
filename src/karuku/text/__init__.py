"""Sentence encoders (BERT-style transformers) made small and fast: the model in plain torch, its tokenizer,
real pretrained weights loaded offline, a text corpus, and the sentence-embedding task that measures them.

>>> from karuku.text import load_pretrained
>>> model, tok = load_pretrained("all-minilm-l6-v2")      # fetched once, sha256-verified
>>> emb = model(*tok(["a sentence", "another one"]).inputs())

docs/TEXT.md has the whole story (int8, pruning heads and FFN neurons, layer dropping with distillation).
"""

from karuku.text import form as _form  # noqa: F401  (a quantized encoder's int8 file, for karuku.measure)
from karuku.text.encoder import BertConfig, SentenceEncoder, bert, minilm_l6
from karuku.text.pretrained import PRETRAINED, fetch, load_folder, load_pretrained
from karuku.text.tokenizer import Batch, Tokenizer

__all__ = ["PRETRAINED", "Batch", "BertConfig", "SentenceEncoder", "Tokenizer", "bert", "fetch", "load_folder",
           "load_pretrained", "minilm_l6"]
