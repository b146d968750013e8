"""Run folders: one per run; each step's output lives under a hash of its inputs.

A step is complete when its `result.json` exists — written last, atomically — so a run killed
at any moment (even kill -9) restarts by skipping complete steps and redoing the partial one.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karuku.config import digest
from karuku.io.atomic import write_text


def key_of(*parts: Any) -> str:
    """The key of a step: a digest of everything that shapes its result."""
    return digest(list(parts))


class RunFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "steps").mkdir(parents=True, exist_ok=True)

    def step_dir(self, key: str) -> Path:
        path = self.root / "steps" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def done(self, key: str) -> dict[str, Any] | None:
        marker = self.root / "steps" / key / "result.json"
        return json.loads(marker.read_text()) if marker.is_file() else None

    def step(self, key: str, label: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run `fn(step_dir)` unless its result exists; return the result (a JSON-able dict)."""
        cached = self.done(key)
        if cached is not None:
            self.log(f"{label}: done before, skipped ({key})")
            return cached
        self.log(f"{label}: running ({key})")
        result = fn(self.step_dir(key))
        result = dict(result, key=key, label=label)
        write_text(self.root / "steps" / key / "result.json", json.dumps(result, indent=2, sort_keys=True,
                                                                          default=str))
        self.log(f"{label}: finished")
        return result

    def log(self, line: str) -> None:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.root / "run.log", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")

    def write_json(self, name: str, obj: Any) -> Path:
        return write_text(self.root / name, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
