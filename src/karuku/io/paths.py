"""Files a command is given to read: a regular file, or one error line saying what the path is instead."""

from __future__ import annotations

import os
from pathlib import Path

from karuku.errors import KarukuError


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path when it is a regular file. A FIFO or device is never opened (reading one can hang or never
    end), and a folder or special file is named as such rather than 'not found'."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise KarukuError(f"{what} {path} not found")
    kind = "a folder" if path.is_dir() else "not a regular file (a FIFO, device or socket)"
    raise KarukuError(f"{what} {path} is {kind}", f"give the path of the {what} itself")
