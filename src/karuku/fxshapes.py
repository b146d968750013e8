"""torch.fx shape propagation for quantization and structured pruning, without torch's own traceback.

`ShapeProp` prints the traceback of a node that fails (`traceback.print_exc()`) before it raises; karuku turns that
failure into one line, so the print goes to a buffer instead of the user's terminal (`--debug` shows karuku's).
"""

from __future__ import annotations

import contextlib
import io

from torch import fx


def propagate_shapes(gm: fx.GraphModule, *args) -> None:
    """Run `gm` on `args` recording each node's shape and dtype (`node.meta["tensor_meta"]`)."""
    from torch.fx.passes.shape_prop import ShapeProp

    with contextlib.redirect_stderr(io.StringIO()):
        ShapeProp(gm).propagate(*args)
