"""Running the karuku CLI in a child process (under torchrun when asked) for the multi-process tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def karuku_cli(args, nproc: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m karuku ARGS` (via torchrun with `nproc` processes when > 0), one thread per process.

    The child gets its own session, so a timeout kills torchrun and its workers together; a non-zero
    exit fails the calling test with its stderr (the head and tail of a long one).
    """
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc else []
    cmd = [sys.executable, *launcher, "-m", "karuku", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    # torchrun's own report of a failed worker ends stderr; what the worker printed comes before it
    assert proc.returncode == 0, err if len(err) <= 6000 else f"{err[:3000]}\n[...]\n{err[-3000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
