"""Progress of long steps: a Rich bar on a terminal, a line per step otherwise, with elapsed time and an estimate.

One `Progress` per long step (a training run, a lottery experiment, a schedule of prune rounds). A step that
runs inside another — the trainings of a lottery experiment or of iterative pruning — joins it
(`Progress.current()` → `part`): its iterations count toward the outer total, so the estimate is the whole
job's, and its lines carry the outer step's label. Without a terminal (logs, CI, a pipe) a line is printed at
each step the caller reports (`line`, e.g. every epoch) and at least every `KARUKU_PROGRESS_EVERY` seconds
(default 30) in between, so a long epoch never leaves the console silent.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from collections.abc import Callable

_CURRENT: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("karuku_progress", default=None)


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 14 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def every() -> float:
    """Seconds between progress lines when there is no terminal ($KARUKU_PROGRESS_EVERY, default 30)."""
    try:
        return max(0.0, float(os.environ.get("KARUKU_PROGRESS_EVERY", "30")))
    except ValueError:
        return 30.0


class Progress:
    """`total` units of work (iterations) under `label`; `update(done)` as they finish, `line(text)` per step.

    Use it as a context manager so steps started inside join it; `estimate()` is the seconds left, from the
    rate since the first update (a resumed run's earlier iterations do not count as fast ones).
    """

    long_said = False  # a training inside said the job will take hours (karuku.training.loop): once per job

    def __init__(self, total: int, label: str, enabled: bool = True, unit: str = "iterations", done: int = 0,
                 echo: Callable[[str], None] | None = None):
        self.total, self.label, self.enabled, self.unit = max(0, int(total)), label, enabled, unit
        self.echo = echo or (lambda line: print(line, flush=True))  # where lines go when there is no bar
        self.done = done  # a resumed step starts with some done: they do not count toward the rate
        self.start = time.perf_counter()
        self._first = (done, self.start)
        self._last_line = self.start
        self._bar = None
        self._token = None
        if enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), transient=False)
            self._task = self._bar.add_task(label, total=self.total, completed=done, info="")
            self._bar.start()

    # -- the job's parts ------------------------------------------------------------------------------------
    @staticmethod
    def current() -> Progress | None:
        """The step running now (the innermost `with Progress(...)`), if any."""
        return _CURRENT.get()

    @staticmethod
    @contextlib.contextmanager
    def apart():
        """Run something that is no part of the current step (a timing probe): its trainings count for none."""
        token = _CURRENT.set(None)
        try:
            yield
        finally:
            _CURRENT.reset(token)

    def part(self, total: int, label: str, done: int = 0, lines: bool = True) -> Progress:
        """A step inside this one: `total` of this one's units (`done` of them finished before), reported as
        `<label>` lines (`lines=False`: it only advances this one, e.g. the many trainings of an experiment)."""
        return _Part(self, total, label, done, lines)

    def __enter__(self) -> Progress:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        self.close()

    # -- reporting ------------------------------------------------------------------------------------------
    def estimate(self) -> float | None:
        """Seconds left at the rate measured so far; None until some work was timed."""
        if self.done <= self._first[0]:
            return None
        rate = (time.perf_counter() - self._first[1]) / (self.done - self._first[0])
        return max(0, self.total - self.done) * rate

    def timing(self) -> str:
        """'12 s elapsed, about 1 min 03 s left'."""
        left = self.estimate()
        out = f"{duration(time.perf_counter() - self.start)} elapsed"
        return out + (f", about {duration(left)} left" if left is not None and self.done < self.total else "")

    def update(self, done: int, info: str = "") -> None:
        """`done` units of `total` are finished; without a terminal, a line when the last is `every()` old."""
        now = time.perf_counter()
        self.done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done, info=info)
        elif self.enabled and now - self._last_line >= every() and done < self.total:
            pct = 100 * done / self.total if self.total else 100.0
            self._print(f"{self.label}: {done:,}/{self.total:,} {self.unit} ({pct:.0f} %)"
                        + (f"  {info}" if info else "") + f"  [{self.timing()}]")

    def line(self, text: str) -> None:
        """A step's summary (an epoch, a finished unit) with the elapsed time and the estimate."""
        self._print(f"{self.label}: {text}  [{self.timing()}]")

    def note(self, text: str) -> None:
        """A line without timing (what is about to run, an estimate made in advance)."""
        self._print(f"{self.label}: {text}")

    def _print(self, msg: str) -> None:
        if not self.enabled:
            return
        self._last_line = time.perf_counter()
        if self._bar is not None:
            self._bar.console.print(msg, soft_wrap=True, highlight=False, markup=False)
        else:
            self.echo(msg)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class _Part(Progress):
    """A step inside another: its units advance the outer one, its lines are the outer one's."""

    def __init__(self, outer: Progress, total: int, label: str, done: int = 0, lines: bool = True):
        self.outer, self.base = outer, outer.done
        outer.done += done  # finished before this process ran: part of the total, not of the measured rate
        outer._first = (outer._first[0] + done, outer._first[1])
        self.total, self.label, self.enabled, self.unit = max(0, int(total)), label, outer.enabled and lines, outer.unit
        self.done, self.start, self._first, self._bar, self._token = done, time.perf_counter(), (done, 0.0), None, None
        self._last_line = self.start

    def estimate(self) -> float | None:
        return self.outer.estimate()

    def timing(self) -> str:
        return self.outer.timing()

    def update(self, done: int, info: str = "") -> None:
        self.done = done
        self.outer.update(self.base + done, f"{self.label} {info}".strip())

    def _print(self, msg: str) -> None:
        if self.enabled:
            self.outer._print(f"{self.outer.label}: {msg}")

    def close(self) -> None:
        pass
