"""Real text, offline: the fortune-cookie database of Debian's `fortunes` package, pinned by sha256.

About 14,000 quotations, jokes and definitions (fortune-mod 1.99.1; BSD-licensed, Debian's non-offensive set).
`load_corpus()` takes the .deb from the cache, else from `source` (a .deb or a folder of fortune files), else
from `apt-get download` of the pinned version; the .deb must hash to the pinned sha256 (a folder: the texts it
yields must). Each fortune becomes one text (whitespace collapsed); a stable hash of the text puts one in ten
into the held-out split, whatever the order or the machine.
"""

from __future__ import annotations

import hashlib
import io
import os
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
    seen, out = set(), []
    for path in sorted(files):
        name = path.rsplit("/", 1)[-1]
        if not path.startswith(FORTUNE_DIR) or "." in name or name in SKIP:
            continue
        for t in parse_fortunes(files[path].decode("utf-8", errors="replace")):
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


def _cache() -> Path:
    from karuku.data.fetch import cache_dir

    return cache_dir() / "text" / DEB


def _apt_download(log: Log) -> bytes:
    if shutil.which("apt-get") is None:
        raise KarukuError("the fortunes corpus is not cached and apt-get is not available",
                          f"download {DEB} (Debian package {DEB_VERSION}) and pass it with --corpus-from")
    with tempfile.TemporaryDirectory(prefix="karuku-corpus-") as scratch:
        log(f"downloading Debian package {DEB_VERSION} with apt-get (850 KB, once)")
        try:
            proc = subprocess.run(["apt-get", "download", DEB_VERSION], cwd=scratch, capture_output=True, text=True,
                                  timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KarukuError(f"apt-get download {DEB_VERSION} failed: {exc}",
                              f"download {DEB} yourself and pass it with --corpus-from") from None
        debs = sorted(Path(scratch).glob("fortunes_*.deb"))
        if not debs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["nothing downloaded"]
            raise KarukuError(f"apt-get download {DEB_VERSION}: {tail[0][:200]}",
                              f"run apt-get update first, or download {DEB} and pass it with --corpus-from")
        return debs[0].read_bytes()


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
    cached = _cache()
    if source is not None:
        data, where = Path(source).read_bytes(), str(source)
    elif cached.is_file():
        data, where = cached.read_bytes(), str(cached)
    else:
        data, where = _apt_download(log), f"apt-get download {DEB_VERSION}"
    got = hashlib.sha256(data).hexdigest()
    if got != DEB_SHA256:
        raise KarukuError(f"{where} has sha256 {got[:12]}…, not the pinned {DEB_SHA256[:12]}… of {DEB}",
                          f"give the genuine {DEB} (Debian package {DEB_VERSION})")
    if not cached.is_file():
        write_bytes(cached, data)
    return texts_from_files(read_deb(data)), where


def load_corpus(name: str = "fortunes", source: str | os.PathLike | None = None, log: Log = print) -> Corpus:
    """The train / held-out split of a pinned real corpus (one so far: "fortunes")."""
    if name != "fortunes":
        raise KarukuError(f"unknown text corpus '{name}'", "known: fortunes")
    texts, where = load_texts(source, log)
    train, held_out = split(texts)
    return Corpus(train, held_out, where)
