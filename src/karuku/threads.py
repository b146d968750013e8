"""How many threads karuku computes with, chosen from the cores this process may really use.

`os.cpu_count()` counts the machine's cores, not this process's: CPU affinity (taskset, cpusets) and a cgroup
CPU quota (containers, `docker --cpus`) both leave fewer. `usable_cores()` takes the smallest of the three.

OpenMP threads spin while they wait for work, which makes them fast on an idle machine and ruinous on a busy
one: every parallel region waits for the slowest of its threads to get a core. Measured side by side on the
shared 2-core VM (docs/bench/threads.md): with the other jobs there (load 14-16), one LeNet-300-100 training
step took 515 ms with 2 spinning threads and 9 ms with 1; with this process given priority (as if the machine
were idle), 2 spinning threads were the fastest choice (LeNet-5 1.3× faster than 1 thread), while passive
waiting (`OMP_WAIT_POLICY=PASSIVE`) with 2 threads was slower than 1 thread there. So when you name no thread
count, karuku uses every usable core while the CPU is free and 1 thread while other work contends for it
(`busy`: CPU pressure, else the load average), chosen when the command starts; long training re-checks
(`adapt`) and steps down to 1 thread, once, if the machine gets busy later.

Threads also change results a little: float sums are reduced in another order, so a prune + fine-tune run with
1 thread and one with 2 differ in their last digits. So a run never steps back up, and every result records the
threads it ran with (and the iteration where a training run stepped down). `--threads N` fixes the count.
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

from karuku.errors import KarukuError

PRESSURE_BUSY = 25.0  # % of the last 10 s in which some runnable task waited for a CPU (Linux PSI)
CHECK_EVERY = 5.0  # seconds between checks of the machine while training with an automatic thread count


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Cores allowed by a cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`)."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


@functools.cache
def usable_cores() -> int:
    """The cores this process may run on: machine cores, narrowed by CPU affinity and a cgroup quota."""
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def machine_load() -> float | None:
    """The 1-minute load average (runnable processes, the whole machine), or None where the system has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def cpu_pressure(path: Path = Path("/proc/pressure/cpu")) -> float | None:
    """Linux pressure stall information: % of the last 10 s in which some runnable task waited for a CPU."""
    try:
        first = path.read_text().splitlines()[0].split()
        return float(dict(f.split("=") for f in first[1:])["avg10"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def busy(own: int = 0, pressure: float | None = ..., load: float | None = ...) -> bool:
    """Whether other work contends for the CPU: CPU pressure above PRESSURE_BUSY, or a load average (less this
    process's `own` running threads) that fills the machine's cores."""
    pressure = cpu_pressure() if pressure is ... else pressure
    load = machine_load() if load is ... else load
    if pressure is not None and pressure >= PRESSURE_BUSY:
        return True
    return load is not None and load - own >= (os.cpu_count() or 1) - 0.5


def default_threads(cores: int | None = None, machine_busy: bool | None = None) -> int:
    """Every usable core while the CPU is free; 1 while other work contends for it (see the module's note)."""
    cores = usable_cores() if cores is None else cores
    machine_busy = busy() if machine_busy is None else machine_busy
    return 1 if cores > 1 and machine_busy else cores


_auto = {"on": False, "checked": 0.0}


def use_threads(threads: int | None = None) -> int:
    """Set torch's thread count: `threads`, or (None) `default_threads()`, then kept suited to the machine by
    `adapt`. Returns the count now in use."""
    import torch

    n = threads or default_threads()
    _auto.update(on=threads is None and n > 1, checked=time.monotonic())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def adapt(now: float | None = None) -> int | None:
    """While an automatic thread count (`use_threads(None)`) is above 1: every CHECK_EVERY seconds, step down to
    1 thread if the machine got busy (once; never back up, so a run's numerics change at most once). Cheap enough
    to call at every training step; returns the new count when it changed."""
    if not _auto["on"]:
        return None
    now = time.monotonic() if now is None else now
    if now - _auto["checked"] < CHECK_EVERY:
        return None
    _auto["checked"] = now
    import torch

    current = torch.get_num_threads()
    if current > 1 and busy(own=current):
        torch.set_num_threads(1)
        _auto["on"] = False
        return 1
    return None


def check_threads(threads: int | None, flag: str = "--threads") -> int | None:
    """`threads` if this process may run that many threads on its own cores, else one KarukuError line."""
    if threads is None:
        return None
    cores = usable_cores()
    if not 1 <= threads <= cores:
        raise KarukuError(f"invalid {flag} {threads}: this process may use {cores} core(s)",
                          f"give {flag} between 1 and {cores}, or leave it out to choose automatically")
    return threads


def current_threads() -> int:
    """The threads torch computes with in this process now (what `use_threads` set)."""
    import torch

    return torch.get_num_threads()


def passive_waiting() -> bool:
    """Whether OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
