"""Real text, offline, from Debian packages pinned by version and sha256.

- "fortunes": the fortune-cookie database of Debian's `fortunes` package — about 14,000 quotations, jokes and
  definitions (fortune-mod 1.99.1; BSD-licensed, Debian's non-offensive set). Each fortune is one text.
- "python-docs": the prose of the Python 3.11 documentation (`python3.11-doc`, its reStructuredText sources under
  html/_sources; PSF licence): paragraphs with code, directives, headings and tables left out, markup removed,
  cut at sentence ends into texts of at most ~300 characters (a fortune's length) — 36,846 texts of
  technical English, more and more varied text for distillation than the fortunes alone.

`load_corpus()` takes the .deb from the cache, else from `source` (a .deb, or for the fortunes a folder of
fortune files), else from `apt-get download` of the pinned version; the .deb must hash to the pinned sha256 (a
folder: the texts it yields must). A stable hash of each text puts one in ten into the held-out split, whatever
the order or the machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes

DEB = "fortunes_1.99.1-7.3_all.deb"
DEB_VERSION = "fortunes=1:1.99.1-7.3"
DEB_SHA256 = "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5"
TEXTS_SHA256 = "b8b5cb77721f23d856790f263f4c46414611a9b86289c8ce40b9f6658e6b57e7"  # texts_from_files of the .deb
FORTUNE_DIR = "usr/share/games/fortunes/"
SKIP = {"ascii-art"}  # pictures, not text
HELD_OUT_EVERY = 10
MIN_CHARS = 20

PYDOC_DEB = "python3.11-doc_3.11.2-6+deb12u9_all.deb"
PYDOC_VERSION = "python3.11-doc=3.11.2-6+deb12u9"
PYDOC_SHA256 = "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"
PYDOC_DIR = "usr/share/doc/python3.11/html/_sources/"
PYDOC_SKIP = ("whatsnew/changelog",)  # issue titles, not prose
MAX_CHARS = 300  # longer paragraphs are cut at sentence ends (a fortune is ~150 characters)
CORPORA = ("fortunes", "python-docs")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Corpus:
    """Train and held-out texts, and where they came from."""

    train: list[str]
    held_out: list[str]
    source: str


def read_deb(data: bytes) -> dict[str, bytes]:
    """The regular files of a Debian package (an `ar` archive holding data.tar.xz / .gz), by path."""
    if not data.startswith(b"!<arch>\n"):
        raise KarukuError("not a Debian package (no ar header)", "give the fortunes .deb file")
    pos, members = 8, {}
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise KarukuError("corrupt Debian package (bad ar member size)") from None
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    inner = next((k for k in members if k.startswith("data.tar")), None)
    if inner is None:
        raise KarukuError("the Debian package has no data.tar member")
    try:
        with tarfile.open(fileobj=io.BytesIO(members[inner]), mode="r:*") as tar:
            return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise KarukuError(f"corrupt Debian package data ({exc})") from None


def parse_fortunes(text: str) -> list[str]:
    """The entries of one fortune file (separated by lines holding only '%'), whitespace collapsed."""
    entries, cur = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            entries.append(" ".join(" ".join(cur).split()))
            cur = []
        else:
            cur.append(line)
    entries.append(" ".join(" ".join(cur).split()))
    return [e for e in entries if len(e) >= MIN_CHARS]


def texts_from_files(files: dict[str, bytes]) -> list[str]:
    """Every fortune of the fortune files among `files` (paths), in file-name order, duplicates dropped."""
    def wanted(path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return path.startswith(FORTUNE_DIR) and "." not in name and name not in SKIP

    return _unique_texts(files, wanted, parse_fortunes)


def _unique_texts(files: dict[str, bytes], wanted, parse) -> list[str]:
    """The texts `parse` finds in the `wanted` files (by path, in path order), each text once."""
    seen, out = set(), []
    for path in sorted(files):
        if not wanted(path):
            continue
        for t in parse(files[path].decode("utf-8", errors="replace")):
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def texts_digest(texts: list[str]) -> str:
    """sha256 of the texts joined by newlines (what TEXTS_SHA256 pins)."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def split(texts: list[str], every: int = HELD_OUT_EVERY) -> tuple[list[str], list[str]]:
    """(train, held-out): a text is held out when its sha256, read as a number, is divisible by `every`."""
    held = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) % every == 0 for t in texts]
    return [t for t, h in zip(texts, held) if not h], [t for t, h in zip(texts, held) if h]


def _cache(deb: str = DEB) -> Path:
    from karuku.data.fetch import cache_dir

    return cache_dir() / "text" / deb


def _apt_download(log: Log, deb: str = DEB, version: str = DEB_VERSION) -> bytes:
    if shutil.which("apt-get") is None:
        raise KarukuError(f"{deb} is not cached and apt-get is not available",
                          f"download {deb} (Debian package {version}) and pass it with --corpus-from")
    with tempfile.TemporaryDirectory(prefix="karuku-corpus-") as scratch:
        log(f"downloading Debian package {version} with apt-get (once)")
        try:
            proc = subprocess.run(["apt-get", "download", version], cwd=scratch, capture_output=True, text=True,
                                  timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KarukuError(f"apt-get download {version} failed: {exc}",
                              f"download {deb} yourself and pass it with --corpus-from") from None
        debs = sorted(Path(scratch).glob(deb.split("_", 1)[0] + "_*.deb"))
        if not debs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["nothing downloaded"]
            raise KarukuError(f"apt-get download {version}: {tail[0][:200]}",
                              f"run apt-get update first, or download {deb} and pass it with --corpus-from")
        return debs[0].read_bytes()


def pinned_deb(deb: str, version: str, sha256: str, source: str | os.PathLike | None, log: Log) -> tuple[bytes, str]:
    """(the .deb's bytes, where they came from): `source`, else the cache, else apt-get; checked against the pin
    and cached once checked."""
    cached = _cache(deb)
    if source is not None:
        data, where = Path(source).read_bytes(), str(source)
    elif cached.is_file():
        data, where = cached.read_bytes(), str(cached)
    else:
        data, where = _apt_download(log, deb, version), f"apt-get download {version}"
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise KarukuError(f"{where} has sha256 {got[:12]}…, not the pinned {sha256[:12]}… of {deb}",
                          f"give the genuine {deb} (Debian package {version})")
    if not cached.is_file():
        write_bytes(cached, data)
    return data, where


_ROLE = re.compile(r":(?:[\w-]+:)*`!?~?([^`<]*?)\s*(?:<[^`]*>)?`")  # :func:`~a.b <t>` -> ~a.b's text
_LITERAL = re.compile(r"``([^`]*)``")
_LINK = re.compile(r"`([^`<]*?)\s*(?:<[^`]*>)?`_{1,2}")
_EMPH = re.compile(r"(?<![\w*])\*{1,2}([^*\s][^*]*?)\*{1,2}(?![\w*])")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_FOOTNOTE = re.compile(r"\s*\[(?:#|\*|\d+)\w*\]_")
_BULLET = re.compile(r"^(?:[-*+•]|#\.|\d+\.|\(\w\))\s+")
_HEADING = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")


def strip_markup(text: str) -> str:
    """reStructuredText inline markup removed: roles, literals, links, emphasis, footnote references, a leading
    list bullet; '::' becomes ':'."""
    text = _FOOTNOTE.sub("", _BULLET.sub("", text.strip()))
    text = _ROLE.sub(lambda m: m.group(1).lstrip("~"), text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _EMPH.sub(r"\1", text)
    return " ".join(text.replace("::", ":").split())


def _prose(block: list[str]) -> bool:
    """A paragraph of running text: not a directive, comment, heading, table, list of fields, or code."""
    first = block[0].strip()
    if first.startswith(("..", ">>>", "|", "+-", "$ ", "%", "#", ":")) or any(_HEADING.match(x.strip()) for x in block):
        return False
    text = strip_markup(" ".join(block))
    return sum(c.isalpha() or c.isspace() for c in text) >= 0.85 * len(text)


def chunks(paragraph: str, max_chars: int = MAX_CHARS) -> list[str]:
    """A paragraph cut at sentence ends into pieces of at most `max_chars` (a longer sentence stays whole)."""
    out, cur = [], ""
    for sentence in _SENTENCE_END.split(paragraph):
        if cur and len(cur) + 1 + len(sentence) > max_chars:
            out.append(cur)
            cur = sentence
        else:
            cur = f"{cur} {sentence}" if cur else sentence
    return out + [cur] if cur else out


def rst_texts(text: str) -> list[str]:
    """The prose texts of one reStructuredText file: paragraphs (blank-line separated, at any indent) that are
    running text, minus the literal block after a paragraph ending in '::', markup removed, cut by `chunks`."""
    out, block, literal_indent = [], [], None
    lines = text.splitlines() + [""]
    for line in lines:
        if line.strip():
            indent = len(line) - len(line.lstrip())
            if literal_indent is not None and indent > literal_indent:
                continue  # the code under "Example::"
            literal_indent = None
            block.append(line)
            continue
        if block:
            if _prose(block):
                para = strip_markup(" ".join(x.strip() for x in block))
                if len(para) >= 2 * MIN_CHARS and "`" not in para:
                    out += [c for c in chunks(para) if len(c) >= MIN_CHARS]
            if block[-1].rstrip().endswith("::"):
                literal_indent = len(block[0]) - len(block[0].lstrip())
            block = []
    return out


def pydoc_texts(files: dict[str, bytes]) -> list[str]:
    """The prose texts of the Python documentation's sources among `files`, in path order, duplicates dropped."""
    return _unique_texts(files, lambda path: path.startswith(PYDOC_DIR) and path.endswith(".rst.txt")
                         and not any(k in path for k in PYDOC_SKIP), rst_texts)


def load_texts(source: str | os.PathLike | None = None, log: Log = print) -> tuple[list[str], str]:
    """(all texts, where they came from), verified against the pins."""
    if source is not None and Path(source).is_dir():
        folder = Path(source)
        files = {FORTUNE_DIR + p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        texts = texts_from_files(files)
        if texts_digest(texts) != TEXTS_SHA256:
            raise KarukuError(f"the fortune files in {folder} are not the pinned {DEB_VERSION} texts",
                              f"give the files of {DEB} (or the .deb itself)")
        return texts, str(folder)
    data, where = pinned_deb(DEB, DEB_VERSION, DEB_SHA256, source, log)
    return texts_from_files(read_deb(data)), where


def load_corpus(name: str = "fortunes", source: str | os.PathLike | None = None, log: Log = print) -> Corpus:
    """The train / held-out split of a pinned real corpus (CORPORA)."""
    if name == "fortunes":
        texts, where = load_texts(source, log)
    elif name == "python-docs":
        data, where = pinned_deb(PYDOC_DEB, PYDOC_VERSION, PYDOC_SHA256, source, log)
        texts = pydoc_texts(read_deb(data))
    else:
        raise KarukuError(f"unknown text corpus '{name}'", f"known: {', '.join(CORPORA)}")
    train, held_out = split(texts)
    return Corpus(train, held_out, where)


def mix_texts(train: list[str], extra: list[list[str]], count: int | None = None) -> list[str]:
    """Distillation's texts: `train`, then each extra corpus's training texts — all of them, or `count` drawn
    without replacement by a fixed seed (the same draw every run, so cached teacher outputs and runs repeat)."""
    out = list(train)
    for texts in extra:
        out += list(texts) if not count else random.Random(0).sample(list(texts), min(count, len(texts)))
    return out


def augment_texts(train: list[str], count: int, seed: int = 0) -> list[str]:
    """`count` new texts made only from the training texts, for distillation (the teacher labels them, so any
    text is a target): half are a contiguous run of one text's words (a third of it or more, never all), half
    join the start of one text to the end of another. The same seed gives the same texts, so cached teacher
    outputs repeat. Why: a student distilled long on ~12,600 short texts fits them (training cosine 0.993) far
    better than unseen ones (0.94); these put the same words in contexts it has not seen, from the same source
    (held-out texts are never used)."""
    if count <= 0:
        return []
    pool = [t.split() for t in train]
    pool = [w for w in pool if len(w) >= 2]
    if not pool:
        raise KarukuError("no training text has two words to augment from", "give longer training texts")
    seen = {" ".join(w) for w in pool}  # a join can give back a whole training text: drawn again
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(count * 20):  # bounded: texts under MIN_CHARS or copies are drawn again
        if len(out) == count:
            break
        a = rng.choice(pool)
        if rng.random() < 0.5:
            n = rng.randint(max(1, len(a) // 3), len(a) - 1)
            start = rng.randint(0, len(a) - n)
            words = a[start:start + n]
        else:
            b = rng.choice(pool)
            words = a[:rng.randint(1, len(a) - 1)] + b[rng.randint(1, len(b) - 1):]
        text = " ".join(words)
        if len(text) >= MIN_CHARS and text not in seen:
            out.append(text)
    return out
