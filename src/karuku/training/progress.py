"""Progress: a Rich bar on a terminal, one line per epoch otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time


class Progress:
    """A Rich progress bar on a terminal, one line per epoch otherwise."""

    def __init__(self, total: int, enabled: bool = True, label: str = "train"):
        self.total, self.enabled, self.label = total, enabled, label
        self.start = time.perf_counter()
        self._bar = None
        if enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self._task = self._bar.add_task(label, total=total, info="")
            self._bar.start()

    def advance(self, iteration: int, info: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=iteration, info=info)

    def line(self, text: str) -> None:
        """An epoch summary: printed above the bar, or as a plain line."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        msg = f"{text}  [{elapsed:.1f}s]"
        if self._bar is not None:
            self._bar.console.print(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
