"""Atomic file writes: a temp file in the target folder, fsync, then rename.

A reader never sees a half-written artifact, and a crash leaves the old file (or none). A temp file is named
`.<name>.<pid>.<random>.tmp`: one left by a killed writer (a process no longer running) is removed the next
time anything writes `<name>`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from karuku.errors import KarukuError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create the parent folder of `path` and check it is writable, before any long work."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KarukuError(f"cannot create folder {parent}: {exc.strerror}", "choose a writable --out path") from None
    if not parent.is_dir():
        raise KarukuError(f"output folder {parent} is not a folder", "choose a writable --out path")
    try:  # permissions say too little (root, /proc, read-only mounts): create a file to know
        fd, probe = tempfile.mkstemp(prefix=".karuku-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise KarukuError(f"output folder {parent} is not writable ({exc.strerror})",
                          "choose a writable --out path") from None
    if target.is_dir():
        raise KarukuError(f"output path {target} is a folder", "give a file name")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename."""
    target = ensure_writable_dir(path)
    _remove_stale(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can judge: leave its file alone
    return True


def _remove_stale(target: Path) -> None:
    """Remove temp files of `target` whose writers are gone (killed mid-write)."""
    prefix = f".{target.name}."
    for tmp in target.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))
