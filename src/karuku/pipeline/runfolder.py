"""Run folders: one per run; each step's output lives under a hash of its inputs (`karuku.io.once`)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karuku.config import digest
from karuku.io.atomic import write_text
from karuku.io.once import once


def key_of(*parts: Any) -> str:
    """The key of a step: a digest of everything that shapes its result."""
    return digest(list(parts))


class RunFolder:
    """One run's folder: the cached steps, `run.log` and the summary files."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "steps").mkdir(parents=True, exist_ok=True)

    def step(self, key: str, label: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run `fn(step_dir)` unless its result exists; return the result (a JSON-able dict with key and label)."""
        def run(folder: Path) -> dict[str, Any]:
            self.log(f"{label}: running ({key})")
            return dict(fn(folder), key=key, label=label)

        result, cached = once(self.root / "steps" / key, run)
        self.log(f"{label}: done before, skipped ({key})" if cached else f"{label}: finished")
        return result

    def log(self, line: str) -> None:
        """Append a time-stamped line to run.log."""
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.root / "run.log", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")

    def write_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as JSON to `name` in the run folder, atomically."""
        return write_text(self.root / name, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
