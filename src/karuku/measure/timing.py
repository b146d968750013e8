"""The one timer: warm-up, then the median (and p90) of repeated timed runs, per engine and batch size.

`time_call` times one function; `time_engines` times several engines at batch 1 and batch 64, once or in
interleaved rounds (`rounds > 1`): figures measured minutes apart on a machine whose load changes are not
comparable, while round-robin timing lets load shifts hit every engine alike. Every latency figure of
karuku (evaluate, the loop's side-by-side timing, `karuku bench`) comes from here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Timing:
    """Median and p90 of timed runs (ms), and how many ran."""

    median_ms: float
    p90_ms: float
    runs: int

    def throughput(self, batch: int) -> float:
        """Samples per second at this batch size (from the median)."""
        return batch / (self.median_ms / 1000)


def time_call(fn: Callable[[], object], warmup: int = 5, runs: int = 30, min_seconds: float = 0.0) -> Timing:
    """Time `fn` after `warmup` calls; at least `runs` runs (more until `min_seconds` passed)."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
    return Timing(statistics.median(samples), p90, len(samples))


@dataclass(frozen=True)
class Speed:
    """Batch-1 latency and batch-64 throughput of one engine."""

    b1_median_ms: float
    b1_p90_ms: float
    b64_median_ms: float
    b64_per_s: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# An engine: batch size -> a zero-argument call that runs one batch of that size.
Engine = Callable[[int], Callable[[], object]]


def time_engines(engines: dict[str, Engine], runs: int = 30, rounds: int = 1) -> dict[str, Speed]:
    """Batch-1 latency and batch-64 throughput of each engine; medians over `rounds` interleaved rounds."""
    # one round warms up fully; interleaved rounds re-warm each round, so each needs fewer runs
    w1, w64, r64 = (5, 5, max(5, runs // 3)) if rounds == 1 else (2, 1, max(3, runs // 4))
    calls = {k: (make(1), make(64)) for k, make in engines.items()}
    b1: dict[str, list[Timing]] = {k: [] for k in calls}
    b64: dict[str, list[Timing]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, (one, many) in calls.items():
            b1[k].append(time_call(one, warmup=w1, runs=runs))
            b64[k].append(time_call(many, warmup=w64, runs=r64))
    out = {}
    for k in calls:
        med64 = statistics.median(t.median_ms for t in b64[k])
        out[k] = Speed(statistics.median(t.median_ms for t in b1[k]), statistics.median(t.p90_ms for t in b1[k]),
                       med64, 64_000 / med64)
    return out
