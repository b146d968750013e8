"""Run folders: one per run; each step's output lives under a hash of its inputs (`karuku.io.once`)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karuku.config import digest
from karuku.io.atomic import ensure_writable_dir, write_text
from karuku.io.once import once


def key_of(*parts: Any) -> str:
    """The key of a step: a digest of everything that shapes its result."""
    return digest(list(parts))


class RunFolder:
    """One run's folder: the cached steps, `run.log` and the summary files."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        ensure_writable_dir(self.root / "steps" / "result.json")  # a bad --out fails before any work

    def step(self, key: str, label: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run `fn(step_dir)` unless its result exists; return the result (a JSON-able dict with key and label).

        The files a result names (`checkpoint`, `artifacts`) are stored relative to the run folder and handed
        back under it: a run folder copied or moved elsewhere resumes from its own files.
        """
        def run(folder: Path) -> dict[str, Any]:
            self.log(f"{label}: running ({key})")
            return self._paths(dict(fn(folder), key=key, label=label), self._relative)

        result, cached = once(self.root / "steps" / key, run)
        self.log(f"{label}: done before, skipped ({key})" if cached else f"{label}: finished")
        return self._paths(result, self._absolute)

    @staticmethod
    def _paths(result: dict[str, Any], convert: Callable[[str], str]) -> dict[str, Any]:
        out = dict(result)
        if isinstance(out.get("checkpoint"), str):
            out["checkpoint"] = convert(out["checkpoint"])
        if isinstance(out.get("artifacts"), dict):
            out["artifacts"] = {k: convert(v) if isinstance(v, str) else v for k, v in out["artifacts"].items()}
        return out

    def _relative(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path  # outside the run folder: kept as given

    def _absolute(self, path: str) -> str:
        return path if Path(path).is_absolute() else str(self.root / path)

    def log(self, line: str) -> None:
        """Append a time-stamped line to run.log."""
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.root / "run.log", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")

    def write_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as JSON to `name` in the run folder, atomically."""
        return write_text(self.root / name, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
