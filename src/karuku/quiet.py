"""torch's tracers without their own printing: karuku turns their failures into one line (`--debug` shows its
traceback), so what they print on the way goes nowhere.

`ShapeProp` prints the traceback of a node that fails (`traceback.print_exc()`) before it raises; the TorchScript
ONNX exporter prints its whole IR graph from C++ (file descriptor 1) when an op has no ONNX form.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator

from torch import fx


def propagate_shapes(gm: fx.GraphModule, *args) -> None:
    """Run `gm` on `args` recording each node's shape and dtype (`node.meta["tensor_meta"]`)."""
    from torch.fx.passes.shape_prop import ShapeProp

    with contextlib.redirect_stderr(io.StringIO()):
        ShapeProp(gm).propagate(*args)


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null while the block runs (what C++ code prints there too)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)
