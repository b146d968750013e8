"""Engine values as TFLite tensors: each value's tensor, where its integers lie in it (its layout), and the
TRANSPOSE / RESHAPE that put a value in the layout an operator needs (once per value and layout).

uint8 values q with zero point z are stored as q − 128 with zero point z − 128 (each op's sums use q − z, so
nothing else changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from karuku.deploy import layout as lay
from karuku.deploy.tflite.graph import Graph, Tensor
from karuku.deploy.tflite.tables import Probe
from karuku.quant.engine.graph import IntegerModel, Op, Value


def offset(v: Value) -> int:
    """What the int8 tensor subtracts from the engine's integers: 128 for uint8 values, 0 for int8."""
    return 128 if v.dtype == "uint8" else 0



@dataclass(frozen=True)
class Rep:
    """A value in a tensor: `layout` over the batched engine dims, `pad` unit axes after the batch."""

    tensor: int
    layout: lay.Layout
    pad: int = 0


class Placement:
    """The graph being built and where every engine value lies in it (`rep`)."""

    def __init__(self, im: IntegerModel, probe: Probe | None):
        self.im, self.g, self.probe = im, Graph(), probe
        self.rep: dict[str, Rep] = {}
        self.made: dict[tuple[str, lay.Layout, int], Rep] = {}
        self.perm: dict[str, np.ndarray] = {}  # flat values in tensor order: engine index of each position
        self.consumers: dict[str, list[Op]] = {}
        for op in im.ops:
            for v in op.inputs:
                self.consumers.setdefault(v, []).append(op)

    # ---- tensors -------------------------------------------------------------------------------
    def batched(self, name: str) -> list[int]:
        return [1, *self.im.values[name].shape]

    def quant(self, v: Value) -> tuple[list[float], list[int]]:
        return [float(v.scale)], [v.zero_point - offset(v)]

    def tensor(self, label: str, value: str, layout: lay.Layout, pad: int = 0) -> int:
        """A fresh int8 tensor holding `value` (its scale and zero point) in `layout` with `pad` unit axes."""
        shape = lay.shape_in(layout, self.batched(value))
        scale, zp = self.quant(self.im.values[value])
        return self.g.add(Tensor(label, [1] + [1] * pad + shape[1:], "int8", scale, zp))

    def like(self, label: str, t: int, shape: list[int] | None = None, dtype: str = "int8") -> int:
        """A fresh tensor with `t`'s quantization (and shape unless given)."""
        src = self.g.tensors[t]
        quant = (list(src.scale), list(src.zero_point)) if dtype == "int8" and src.scale else (None, None)
        return self.g.add(Tensor(label, list(shape or src.shape), dtype, *quant))

    def out(self, op: Op, layout: lay.Layout, pad: int = 0) -> int:
        """The tensor `op` writes its output into, recorded as that value's representation."""
        t = self.tensor(op.output, op.output, layout, pad)
        self.rep[op.output] = Rep(t, tuple(layout), pad)
        return t

    def const_like(self, name: str, like: int, value: int) -> int:
        t = self.g.tensors[like]
        return self.g.const(name, np.array([value], dtype=np.int8), scale=list(t.scale), zero_point=list(t.zero_point))

    def reshape(self, name: str, x: int, y: int) -> int:
        shape = [-1, *self.g.tensors[y].shape[1:]]
        self.g.emit("RESHAPE", [x, self.g.const(f"{name}/shape", np.array(shape, dtype=np.int32))], [y], name)
        return y

    def get(self, name: str, layout: lay.Layout, pad: int | None = 0) -> Rep:
        """`name` in `layout` with `pad` unit axes (None: any), transposing / reshaping (once) if it is not."""
        r = self.rep[name]
        layout = tuple(layout)
        if r.layout == layout and (pad is None or r.pad == pad):
            return r
        pad = 0 if pad is None else pad
        key = (name, layout, pad)
        if key not in self.made:
            if r.layout != layout:
                x = r.tensor
                if r.pad:
                    x = self.reshape(f"{name}/flat", x, self.tensor(f"{name}/flat", name, r.layout))
                t = self.tensor(f"{name}/{''.join(map(str, layout))}", name, layout)
                perm = self.g.const(f"{name}/perm{''.join(map(str, layout))}",
                                    np.array(lay.transpose_perm(r.layout, layout), dtype=np.int32))
                rank = len(layout)
                self.g.emit("TRANSPOSE", [x, perm], [t], name, version=6 if rank > 5 else 4 if rank > 4 else None)
                r = Rep(t, layout)
            if r.pad != pad:
                r = Rep(self.reshape(f"{name}/{pad}d", r.tensor, self.tensor(f"{name}/{pad}d", name, layout, pad)),
                        layout, pad)
            self.made[key] = r
        return self.made[key]

