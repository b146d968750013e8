"""Run folders: one per run; each step's output lives under a hash of its inputs (`karuku.io.once`)."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karuku.config import digest
from karuku.io.atomic import ensure_writable_dir, write_text
from karuku.io.once import once
from karuku.progress import duration


def key_of(*parts: Any) -> str:
    """The key of a step: a digest of everything that shapes its result."""
    return digest(list(parts))


class RunFolder:
    """One run's folder: the cached steps, `run.log` and the summary files.

    `echo`: where each logged line is announced too (the console, for `karuku compress`), so a person sees
    which step runs, how long each took and what it gave, not only run.log.
    """

    def __init__(self, root: str | Path, echo: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.echo = echo
        self.start = time.perf_counter()
        ensure_writable_dir(self.root / "steps" / "result.json")  # a bad --out fails before any work

    def step(self, key: str, label: str, fn: Callable[[Path], dict[str, Any]],
             describe: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any]:
        """Run `fn(step_dir)` unless its result exists; return the result (a JSON-able dict with key and label).

        `describe(result)`: a few words on the result for the finished line (accuracy, size). The files a result
        names (`checkpoint`, `artifacts`) are stored relative to the run folder and handed back under it: a run
        folder copied or moved elsewhere resumes from its own files.
        """
        def run(folder: Path) -> dict[str, Any]:
            self.log(f"{label}: running ({key})")
            return self._paths(dict(fn(folder), key=key, label=label), self._relative)

        start = time.perf_counter()
        result, cached = once(self.root / "steps" / key, run)
        said = f": {describe(result)}" if describe else ""
        self.log(f"{label}: done before, skipped ({key}){said}" if cached else
                 f"{label}: finished in {duration(time.perf_counter() - start)}{said}")
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
        """Append a time-stamped line to run.log (and announce it, with the run's elapsed time, to `echo`)."""
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.root / "run.log", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")
        if self.echo is not None:
            self.echo(f"compress: {line}  [{duration(time.perf_counter() - self.start)} elapsed]")

    def write_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as JSON to `name` in the run folder, atomically."""
        return write_text(self.root / name, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
