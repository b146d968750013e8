"""Latency and throughput: warm-up, then the median (and p90) of repeated timed runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
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
