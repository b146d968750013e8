"""Per-op geometry for both C generators (the integer build `codegen`, the float build `codegen_float`).

One table of shape extraction by op kind, so that the two builds call their kernels with the same numbers
and a new op's shapes are read in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from karuku.quant.engine.graph import IntegerModel, Op


@dataclass(frozen=True)
class Geometry:
    """What a kernel call needs of an op's shapes: input C×H×W, output OC×OH×OW, window (kernel, stride, top /
    left padding), groups; linear layers: rows × k_in → k_out; every op: n, the output's element count."""

    n: int
    c: int = 0
    h: int = 0
    w: int = 0
    oc: int = 0
    oh: int = 0
    ow: int = 0
    kh: int = 0
    kw: int = 0
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0
    groups: int = 1
    symmetric: bool = True  # padding given as (H, W), not (top, left, bottom, right)
    rows: int = 1
    k_in: int = 0
    k_out: int = 0

    @property
    def window(self) -> str:
        """The C arguments `kh, kw, sh, sw, ph, pw`."""
        return f"{self.kh}, {self.kw}, {self.sh}, {self.sw}, {self.ph}, {self.pw}"


def _spatial(im: IntegerModel, op: Op, kernel: tuple[int, int]) -> dict:
    a = op.attrs
    padding = a.get("padding", [0, 0])
    (c, h, w), (oc, oh, ow) = im.values[op.inputs[0]].shape, im.values[op.output].shape
    return dict(c=c, h=h, w=w, oc=oc, oh=oh, ow=ow, kh=kernel[0], kw=kernel[1], sh=a["stride"][0],
                sw=a["stride"][1], ph=padding[0], pw=padding[1], symmetric=len(padding) == 2)


def _conv(im: IntegerModel, op: Op) -> dict:
    return dict(_spatial(im, op, im.arrays[op.arrays["weight"]].shape[2:]), groups=op.attrs["groups"])


def _pool(im: IntegerModel, op: Op) -> dict:
    return _spatial(im, op, op.attrs["kernel"])


def _linear(im: IntegerModel, op: Op) -> dict:  # [..., K]: each of the leading positions is one row
    vin, vout = im.values[op.inputs[0]], im.values[op.output]
    return dict(rows=math.prod(vin.shape[:-1]), k_in=vin.shape[-1], k_out=vout.shape[-1])


SHAPES = {"conv2d": _conv, "maxpool2d": _pool, "avgpool2d": _pool, "linear": _linear}


def geometry(im: IntegerModel, op: Op) -> Geometry:
    """The geometry of `op` (the output's element count alone for ops without a window or rows)."""
    extract = SHAPES.get(op.kind)
    return Geometry(n=math.prod(im.values[op.output].shape), **(extract(im, op) if extract else {}))
