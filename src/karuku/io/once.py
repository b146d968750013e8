"""Steps that run once: a folder holds a step's outputs and, written last and atomically, its `result.json`.

A step whose `result.json` exists is done and returns it; otherwise it runs and writes it. A run killed at
any moment (even kill -9) restarts by skipping finished steps and redoing the partial one, resuming its
training from the `*.state` files it left (`karuku.training.resume`), which are removed only once the
result is written. The compression loop's run folders and lottery experiments are both built on this.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karuku.errors import KarukuError
from karuku.io.atomic import write_text

RESULT = "result.json"


def read_object(path: str | Path, hint: str) -> dict[str, Any]:
    """A JSON object karuku wrote into a folder (a result, settings), or one KarukuError when it was damaged or
    edited into something else (`hint`: how to redo it)."""
    try:
        doc = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        doc = exc
    if not isinstance(doc, dict):
        raise KarukuError(f"{path} is damaged (not the JSON object karuku writes)", hint)
    return doc


def done(folder: str | Path) -> dict[str, Any] | None:
    """The result of the step in `folder`, or None when it has not finished."""
    marker = Path(folder) / RESULT
    if not marker.is_file():
        return None
    return read_object(marker, f"delete the folder {marker.parent} to redo that step")


def once(folder: str | Path, fn: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(`fn(folder)`'s JSON-able result, False), or (the stored result, True) when the step ran before."""
    folder = Path(folder)
    cached = done(folder)
    if cached is not None:
        return cached, True
    folder.mkdir(parents=True, exist_ok=True)
    result = fn(folder)
    write_text(folder / RESULT, json.dumps(result, indent=2, sort_keys=True, default=str))
    for state in folder.rglob("*.state"):  # resume states of the step's training: the result is durable now
        state.unlink(missing_ok=True)
    return result, False
